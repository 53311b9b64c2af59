"""The live page's web server: aiohttp on its own event-loop thread, refusing strangers.

aiohttp rather than the standard library's ``http.server``: one event loop instead of a thread
per connection, idle and slow connections time out (keep-alive timeout from the first byte),
headers and body leave in one write with ``TCP_NODELAY`` (no Nagle/delayed-ACK stalls), a
client that leaves mid-response is no traceback, and WebSockets and TLS are built in.

Routes (``access`` says who may call them)::

    GET  /                       the page (static/index.html, app.js, style.css)
    GET  /frame?after=N&shown=M  the newest overlay JPEG newer than N (waits up to 1 s: 204);
                                 M = the frame the page has just shown; 410 once the session
                                 is over. Headers X-Seq and X-Frame (capture index).
    GET  /api/state              status, stats, objects (JSON)
    POST /api/objects            {} -> {"obj": new id}
    POST /api/click              {"obj": id|null, "x", "y", "positive": bool, "frame": n|null}
    POST /api/box                {"obj": id|null, "box": [x0, y0, x1, y1], "frame": n|null}
    POST /api/remove             {"obj": id}
    POST /api/reset              {}
    GET  /ws/camera              WebSocket: the browser's camera (see ``browser_camera``)
    GET  /api/state includes "camera": true when the page is to send its camera

``frame``: the capture index of the frame the user clicked on (the page's X-Frame); the
tracker applies the prompt there. Coordinates are pixels of the source frame. Bad requests
answer 4xx with ``{"error": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import ssl
import sys
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from aiohttp import web

from configs.errors import InputError
from worker.runtimes.live.access import (
    SECURITY_HEADERS,
    TOKEN_COOKIE,
    TOKEN_PARAM,
    AccessDenied,
    AccessPolicy,
    check_json_type,
)
from worker.runtimes.live.controls import MAX_OBJECT_ID, Controls
from worker.runtimes.live.display import Display
from worker.runtimes.live.session import SessionState

STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
FRAME_WAIT_S = 1.0
MAX_BODY = 16 * 1024
BODY_TIMEOUT_S = 10.0
DEFAULT_IDLE_TIMEOUT_S = 20.0
MAX_CONNECTIONS = 256  # open at once; more are closed on arrival (file descriptors, memory)
_START_TIMEOUT_S = 10.0


class LiveApi(Protocol):
    """What the page talks to: a local ``LiveSession`` or a remote session's capture side."""

    controls: Controls
    display: Display

    def state(self) -> SessionState: ...

    def shown(self, seq: int) -> None: ...


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LiveServer:
    """Serves ``api`` on ``host:port`` (port 0: any free port) from a daemon thread.

    ``token``: required on every request (None: one is made when ``host`` is not loopback);
    ``tls``: serve HTTPS; ``idle_timeout``: seconds a connection may stay without a request
    (also bounds a request's headers arriving slowly); ``body_timeout``: for a POST's body;
    ``max_connections``: connections open at once (more are closed as they arrive);
    ``camera``: the browser-camera source fed from ``/ws/camera`` (None: that route is 404).
    """

    def __init__(
        self,
        api: LiveApi,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        allow_hosts: tuple[str, ...] = (),
        tls: ssl.SSLContext | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S,
        body_timeout: float = BODY_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
        camera=None,
    ) -> None:
        self.api, self.camera, self.tls = api, camera, tls
        self.policy = AccessPolicy.for_bind(host, token, allow_hosts)
        self._socket = _bind(host, port)
        self._idle_timeout, self.body_timeout = idle_timeout, body_timeout
        self.max_connections = max_connections
        self._tcp_server: asyncio.AbstractServer | None = None
        self._listener_fn: Callable[[], None] | None = None
        self._loop = asyncio.new_event_loop()
        self._frame_event: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="live-http", daemon=True
        )
        self._started = False
        self.refused: Counter[int] = Counter()  # refusals by HTTP status, for the curious

    @property
    def base_url(self) -> str:
        """``scheme://host:port/`` (no token)."""
        host, port = self._socket.getsockname()[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
        scheme = "https" if self.tls else "http"
        netloc = f"[{shown}]:{port}" if ":" in shown else f"{shown}:{port}"
        return f"{scheme}://{netloc}/"

    @property
    def url(self) -> str:
        """The page's URL to open, with the token when one is needed."""
        token = self.policy.token
        return self.base_url + (f"?{TOKEN_PARAM}={token}" if token else "")

    def start(self) -> LiveServer:
        _quiet_aiohttp_logs()
        self._thread.start()
        self._loop.call_soon_threadsafe(self._loop.set_exception_handler, _ignore_disconnects)
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(_START_TIMEOUT_S)
        self._started = True
        return self

    async def _start(self) -> None:
        self._frame_event = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._listener_fn = lambda: loop.call_soon_threadsafe(self._new_frame)
        self.api.display.add_listener(self._listener_fn)
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._route)
        app.on_response_prepare.append(_add_security_headers)
        self._runner = web.AppRunner(
            app, access_log=None, keepalive_timeout=self._idle_timeout, handle_signals=False
        )
        await self._runner.setup()
        handlers = self._runner.server
        limit = self.max_connections

        def protocol() -> asyncio.BaseProtocol:
            """aiohttp's connection handler, or a refusal once ``limit`` are open."""
            return handlers() if len(handlers.connections) < limit else _Refuse()

        self._tcp_server = await loop.create_server(protocol, sock=self._socket, ssl=self.tls)

    def _new_frame(self) -> None:
        if self._frame_event is not None:
            self._frame_event.set()
            self._frame_event = asyncio.Event()

    def close(self) -> None:
        if self._started:
            future = asyncio.run_coroutine_threadsafe(self._stop(), self._loop)
            try:
                future.result(_START_TIMEOUT_S)
            except (TimeoutError, asyncio.TimeoutError):
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_START_TIMEOUT_S)
        self._socket.close()

    async def _stop(self) -> None:
        if self._listener_fn is not None:
            self.api.display.remove_listener(self._listener_fn)
        if self._tcp_server is not None:
            self._tcp_server.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ----- access ----------------------------------------------------------------------
    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            self.policy.check_host(request.headers.get("Host"))
            if not self.policy.token_ok(_given_token(request)):
                raise AccessDenied(
                    403, "refused: this page needs its token (open the URL streamseg printed)"
                )
            if request.method not in ("GET", "HEAD"):
                check_json_type(request.headers.get("Content-Type"))
            if request.method not in ("GET", "HEAD") or request.path.startswith("/ws/"):
                self.policy.check_origin(
                    request.headers.get("Origin"),
                    request.headers.get("Sec-Fetch-Site"),
                    f"{request.scheme}://{request.host}",
                )
            return await handler(request)
        except AccessDenied as error:
            self.refused[error.status] += 1
            return _error(error.status, str(error))
        except InputError as error:
            return _error(400, str(error))

    # ----- routes ----------------------------------------------------------------------
    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if request.method in ("GET", "HEAD"):
            if path in STATIC_FILES:
                return self._static(request, path)
            if path == "/favicon.ico":
                return web.Response(status=204)
            if path == "/frame":
                return await self._frame(request)
            if path == "/api/state":
                state = self.api.state().to_json()
                return web.json_response({**state, "camera": self.camera is not None})
            if path == "/ws/camera" and self.camera is not None:
                return await self.camera.serve(request, self.api.display)
            return _error(404, f"no such page: {path}")
        if request.method == "POST":
            body = await _json_body(request, self.body_timeout)
            try:
                return web.json_response(self._action(path, body))
            except LookupError:
                return _error(404, f"no such action: {path}")
        return _error(405, f"method {request.method} not allowed")

    def _static(self, request: web.Request, path: str) -> web.StreamResponse:
        name, content_type = STATIC_FILES[path]
        response = web.Response(body=(STATIC_DIR / name).read_bytes())
        response.headers["Content-Type"] = content_type
        given = request.query.get(TOKEN_PARAM)
        if path == "/" and given and self.policy.token is not None:
            # keep the token in a cookie and take it out of the address bar (and history)
            response = web.Response(status=302, headers={"Location": "/"})
        if self.policy.token is not None:
            response.set_cookie(
                TOKEN_COOKIE, self.policy.token, httponly=True, samesite="Strict",
                secure=self.tls is not None, path="/",
            )  # fmt: skip
        return response

    def _action(self, path: str, body: dict) -> dict:
        controls = self.api.controls
        if path == "/api/objects":
            return {"obj": controls.new_object()}
        if path == "/api/click":
            x, y = _number(body, "x"), _number(body, "y")
            positive = body.get("positive", True)
            if not isinstance(positive, bool):
                raise InputError("positive must be true or false")
            return {"obj": controls.click(_obj(body), x, y, positive, frame=_frame(body))}
        if path == "/api/box":
            box = body.get("box")
            if not isinstance(box, list) or len(box) != 4:
                raise InputError("box must be [x0, y0, x1, y1]")
            corners = tuple(_number({"v": v}, "v") for v in box)
            return {"obj": controls.box(_obj(body), corners, frame=_frame(body))}
        if path == "/api/remove":
            controls.remove(_required_obj(body))
            return {}
        if path == "/api/reset":
            controls.reset()
            return {}
        raise LookupError(path)

    async def _frame(self, request: web.Request) -> web.StreamResponse:
        after = _int_param(request, "after")
        shown = _int_param(request, "shown")
        if shown:
            self.api.shown(shown)
        display = self.api.display
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FRAME_WAIT_S
        frame = display.newest_after(after)
        while frame is None and not display.closed and loop.time() < deadline:
            event = self._frame_event
            try:
                await asyncio.wait_for(event.wait(), deadline - loop.time())
            except (TimeoutError, asyncio.TimeoutError):
                pass
            frame = display.newest_after(after)
        if frame is None:
            return web.Response(status=410 if display.closed else 204)
        headers = {"X-Seq": str(frame.seq), "X-Frame": str(frame.capture_index)}
        return web.Response(body=frame.jpeg, content_type="image/jpeg", headers=headers)


class _Refuse(asyncio.Protocol):
    """A connection over the limit: closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound now so that a taken port is an error before any model loads."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        raise InputError(f"cannot serve the live page on {host}:{port}: {error}") from None
    sock.setblocking(False)
    return sock


def _given_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("token "):
        return header[6:].strip()
    return request.query.get(TOKEN_PARAM) or request.cookies.get(TOKEN_COOKIE)


async def _add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


async def _json_body(request: web.Request, timeout: float) -> dict:
    """The request's JSON object, at most ``MAX_BODY`` bytes whatever Content-Length says."""
    declared = request.content_length
    if declared is not None and declared > MAX_BODY:
        raise AccessDenied(413, "request body too large")
    try:
        raw = await asyncio.wait_for(_read_at_most(request.content, MAX_BODY + 1), timeout)
    except (TimeoutError, asyncio.TimeoutError):
        raise AccessDenied(408, "request body too slow") from None
    if len(raw) > MAX_BODY:
        raise AccessDenied(413, "request body too large")
    if declared is not None and len(raw) != declared:
        raise InputError("request body shorter than its Content-Length")
    try:
        body = json.loads(raw or b"{}", parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        raise InputError(f"request body is not JSON: {str(error)[:80]}") from None
    if not isinstance(body, dict):
        raise InputError("request body must be a JSON object")
    return body


async def _read_at_most(content, limit: int) -> bytes:
    """The body up to its end or ``limit`` bytes, whichever comes first."""
    data = bytearray()
    while len(data) < limit:
        chunk = await content.read(limit - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _number(body: dict, key: str) -> float:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{key} must be a number")
    if isinstance(value, int) and abs(value) > 1 << 31 or not math.isfinite(value):
        raise InputError(f"{key} is out of range")
    return float(value)


def _bounded_int(value: object, name: str, top: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be an integer")
    if not 0 <= value <= top:
        raise InputError(f"{name} must be between 0 and {top}")
    return value


def _obj(body: dict) -> int | None:
    value = body.get("obj")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError("obj must be an integer object id or null")
    if not 1 <= value <= MAX_OBJECT_ID:
        raise InputError(f"object ids are 1 to {MAX_OBJECT_ID}, got {str(value)[:24]}")
    return value


def _frame(body: dict) -> int | None:
    value = body.get("frame")
    return None if value is None else _bounded_int(value, "frame", 1 << 53)


def _required_obj(body: dict) -> int:
    obj_id = _obj(body)
    if obj_id is None:
        raise InputError("obj is required")
    return obj_id


def _int_param(request: web.Request, name: str) -> int:
    text = request.query.get(name, "0")
    if not text.isdigit() or len(text) > 16:
        raise InputError(f"{name} must be a non-negative integer")
    return int(text)


def _ignore_disconnects(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """Clients that leave mid-response are normal; anything else gets one line, no trace."""
    error = context.get("exception")
    if isinstance(error, ConnectionError | ssl.SSLError):
        return
    print(f"streamseg live: server: {context.get('message')}: {error!r}", file=sys.stderr)


def _quiet_aiohttp_logs() -> None:
    """aiohttp logs client disconnects and bad requests; without a handler Python would print
    them (with tracebacks) to the terminal."""
    for name in ("aiohttp.server", "aiohttp.access", "aiohttp.web", "aiohttp.internal"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(logging.NullHandler())
            logger.propagate = False
