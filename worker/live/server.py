"""The live page's web server (standard library only), bound to localhost unless told otherwise.

Routes::

    GET  /                       the page (static/index.html, app.js, style.css)
    GET  /frame?after=N&shown=M  the newest overlay JPEG newer than N (waits up to 1 s: 204);
                                 M = the frame the page has just shown; 410 once the session
                                 is over. Headers X-Seq and X-Frame (capture index).
    GET  /api/state              status, stats, objects (JSON)
    POST /api/objects            {} -> {"obj": new id}
    POST /api/click              {"obj": id|null, "x", "y", "positive": bool} -> {"obj": id}
    POST /api/box                {"obj": id|null, "box": [x0, y0, x1, y1]} -> {"obj": id}
    POST /api/remove             {"obj": id}
    POST /api/reset              {}

Coordinates are pixels of the source frame. Bad requests answer 400 with ``{"error": ...}``.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol
from urllib.parse import SplitResult, parse_qs, urlsplit

from jobs.errors import InputError
from worker.live.controls import Controls
from worker.live.display import Display
from worker.live.session import SessionState

STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
FRAME_WAIT_S = 1.0
_MAX_BODY = 64 * 1024


class LiveApi(Protocol):
    """What the page talks to: a local ``LiveSession`` or a remote session's capture side."""

    controls: Controls
    display: Display

    def state(self) -> SessionState: ...

    def shown(self, seq: int) -> None: ...


class LiveServer:
    """Serves ``api`` on ``host:port`` (port 0: any free port) from a daemon thread."""

    def __init__(self, api: LiveApi, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = type("BoundLiveHandler", (_Handler,), {"api": api})
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as error:
            raise InputError(f"cannot serve the live page on {host}:{port}: {error}") from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://{shown}:{port}/" if ":" not in shown else f"http://[{shown}]:{port}/"

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    api: LiveApi
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass  # the page polls many times a second; keep the terminal for what matters

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        try:
            self._get(urlsplit(self.path))
        except InputError as error:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(error)})

    def _get(self, url: SplitResult) -> None:
        if url.path in STATIC_FILES:
            name, content_type = STATIC_FILES[url.path]
            self._send(HTTPStatus.OK, (STATIC_DIR / name).read_bytes(), content_type)
        elif url.path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        elif url.path == "/frame":
            self._frame(parse_qs(url.query))
        elif url.path == "/api/state":
            self._json(HTTPStatus.OK, self.api.state().to_json())
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {url.path}"})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        try:
            body = self._body()
            reply = self._action(urlsplit(self.path).path, body)
        except InputError as error:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(error)})
        except LookupError:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such action: {self.path}"})
        else:
            self._json(HTTPStatus.OK, reply)

    def _action(self, path: str, body: dict) -> dict:
        controls = self.api.controls
        if path == "/api/objects":
            return {"obj": controls.new_object()}
        if path == "/api/click":
            x, y = _number(body, "x"), _number(body, "y")
            return {"obj": controls.click(_obj(body), x, y, bool(body.get("positive", True)))}
        if path == "/api/box":
            box = body.get("box")
            if not isinstance(box, list) or len(box) != 4:
                raise InputError("box must be [x0, y0, x1, y1]")
            return {"obj": controls.box(_obj(body), tuple(_number({"v": v}, "v") for v in box))}
        if path == "/api/remove":
            controls.remove(_required_obj(body))
            return {}
        if path == "/api/reset":
            controls.reset()
            return {}
        raise LookupError(path)

    def _frame(self, query: dict[str, list[str]]) -> None:
        after = _int_param(query, "after", 0)
        shown = _int_param(query, "shown", 0)
        if shown:
            self.api.shown(shown)
        display = self.api.display
        frame = display.wait_newer(after, FRAME_WAIT_S)
        if frame is None:
            status = HTTPStatus.GONE if display.closed else HTTPStatus.NO_CONTENT
            self._send(status, b"", "text/plain")
            return
        headers = {"X-Seq": str(frame.seq), "X-Frame": str(frame.capture_index)}
        self._send(HTTPStatus.OK, frame.jpeg, "image/jpeg", headers)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise InputError("request body too large")
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as error:
            raise InputError(f"request body is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise InputError("request body must be a JSON object")
        return body

    def _json(self, status: HTTPStatus, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(body)


def _number(body: dict, key: str) -> float:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{key} must be a number")
    return float(value)


def _obj(body: dict) -> int | None:
    value = body.get("obj")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError("obj must be an integer object id or null")
    return value


def _required_obj(body: dict) -> int:
    obj_id = _obj(body)
    if obj_id is None:
        raise InputError("obj is required")
    return obj_id


def _int_param(query: dict[str, list[str]], name: str, default: int) -> int:
    try:
        return int(query.get(name, [default])[0])
    except ValueError:
        raise InputError(f"{name} must be an integer") from None
