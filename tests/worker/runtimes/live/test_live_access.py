"""The live server refuses whoever should not drive it: a missing or wrong token, a foreign
Host (DNS rebinding), cross-origin and non-JSON POSTs, Content-Length tricks, slow bodies,
huge or unknown object ids, too many objects, malformed bodies; idle sockets are closed after
the idle timeout while the server keeps answering; no server path reaches the API."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.worker.runtimes.live.live_support import (
    SlowTracker,
    http_request,
    wait_until,
    write_synthetic_clip,
)
from worker.runtimes.live.capture import Capture
from worker.runtimes.live.controls import MAX_OBJECTS
from worker.runtimes.live.server import MAX_BODY, LiveServer
from worker.runtimes.live.session import LiveSession
from worker.runtimes.live.sources import SyntheticSource, VideoFileSource

TOKEN = "s3cret-token-for-tests"
JSON = {"Content-Type": "application/json"}


@contextmanager
def _serving(**server_options) -> Iterator[tuple[LiveSession, LiveServer, SlowTracker]]:
    tracker = SlowTracker(0.01)
    session = LiveSession(Capture(SyntheticSource(320, 240, 30, None)), lambda: tracker)
    with session, LiveServer(session, **server_options) as server:
        yield session, server, tracker


def _port(server: LiveServer) -> int:
    return urlsplit(server.base_url).port


def _click(port: int, body: object, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """POST /api/click: status, reply headers, reply body."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http_request(port, "POST", "/api/click", raw, {**JSON, **(headers or {})})


def test_beyond_loopback_a_token_is_made_and_required_everywhere() -> None:
    with _serving(host="0.0.0.0") as (session, server, _):
        port = _port(server)
        token = server.policy.token
        assert token and len(token) >= 24 and server.url.endswith(f"/?token={token}")
        for method, path in (("GET", "/"), ("GET", "/api/state"), ("GET", "/frame?after=0"),
                             ("GET", "/app.js"), ("POST", "/api/reset")):  # fmt: skip
            status, _, body = http_request(port, method, path, b"{}", JSON)
            assert status == 403 and b"token" in body, (method, path)
            wrong = f"{path}{'&' if '?' in path else '?'}token=not-{token}"
            assert http_request(port, method, wrong, b"{}", JSON)[0] == 403
        assert _click(port, {"x": 10, "y": 10})[0] == 403
        assert session.controls.objects == []
        # the printed URL: the page, which keeps the token in a strict cookie
        status, headers, _ = http_request(port, "GET", f"/?token={token}")
        assert status == 302 and headers["location"] == "/"
        cookie = headers["set-cookie"]
        assert f"streamseg_live_token={token}" in cookie
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        with_cookie = {"Cookie": f"streamseg_live_token={token}"}
        assert http_request(port, "GET", "/api/state", headers=with_cookie)[0] == 200
        by_header = {"Authorization": f"token {token}"}
        assert _click(port, {"x": 10, "y": 10}, by_header)[::2] == (200, b'{"obj": 1}')
        assert session.controls.objects == [1]


def test_loopback_can_be_given_a_token_too() -> None:
    with _serving(token=TOKEN) as (_, server, _tracker):
        port = _port(server)
        assert http_request(port, "GET", "/api/state")[0] == 403
        assert http_request(port, "GET", f"/api/state?token={TOKEN}")[0] == 200


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("evil.example", False),
        ("evil.example:{port}", False),
        ("127.0.0.1.evil.example:{port}", False),
        ("", False),
        ("localhost:{port}", True),
        ("127.0.0.1:{port}", True),
        ("[::1]:{port}", True),
        ("10.1.2.3:{port}", True),  # an IP literal cannot be rebound to another name
    ],
)
def test_the_host_header_must_name_this_machine(host: str, allowed: bool) -> None:
    with _serving(token=TOKEN) as (session, server, _):
        port = _port(server)
        headers = {"Host": host.format(port=port), "Authorization": f"token {TOKEN}"}
        status, _, body = http_request(port, "GET", "/api/state", headers=headers)
        assert (status == 200) is allowed, (status, body)
        click = _click(port, {"x": 5, "y": 5}, headers)
        assert (click[0] == 200) is allowed
        assert session.controls.objects == ([1] if allowed else [])


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "text/plain;charset=UTF-8"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({"Content-Type": "multipart/form-data; boundary=x"}, 415),
        ({"Content-Type": ""}, 415),
        ({"Content-Type": "application/json", "Origin": "http://127.0.0.1:1"}, 403),
        ({"Content-Type": "application/json", "Origin": "null"}, 403),
        ({"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403),
        ({"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"}, 403),
    ],
)
def test_state_changing_requests_need_json_from_the_same_origin(headers, status) -> None:
    with _serving() as (session, server, tracker):
        port = _port(server)
        body = json.dumps({"x": 5, "y": 5}).encode()
        for path in ("/api/click", "/api/objects", "/api/reset"):
            assert http_request(port, "POST", path, body, headers)[0] == status, path
        assert session.controls.objects == [] and tracker.prompts == []
        own = {"Content-Type": "application/json", "Origin": server.base_url.rstrip("/")}
        assert http_request(port, "POST", "/api/click", body, own)[0] == 200


def test_every_response_forbids_framing_and_sniffing() -> None:
    with _serving() as (_, server, _tracker):
        port = _port(server)
        for path in ("/", "/app.js", "/api/state", "/nope"):
            _, headers, _ = http_request(port, "GET", path)
            assert headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("content_length", "sent", "status"),
    [
        ("-1", b'{"x": 1, "y": 1}', 400),
        ("abc", b'{"x": 1, "y": 1}', 400),
        (str(10**12), b'{"x": 1, "y": 1}', 413),
        (str(MAX_BODY + 1), b"{" + b" " * (MAX_BODY - 1) + b"}", 413),
        ("200", b'{"x": 1, "y": 1}', 408),  # claims more than it sends: timed out, not held
    ],
)
def test_the_body_limit_holds_whatever_content_length_says(content_length, sent, status) -> None:
    with _serving(body_timeout=1.0) as (session, server, _):
        port = _port(server)
        head = (
            f"POST /api/click HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n"
        ).encode()
        reply = _raw_exchange(port, head + sent)
        assert reply.split(b" ")[1] == str(status).encode(), reply[:200]  # HTTP/1.0 or 1.1
        assert session.controls.objects == []
        assert http_request(port, "GET", "/api/state")[0] == 200  # still serving


def test_a_chunked_body_over_the_limit_is_refused() -> None:
    with _serving() as (session, server, _):
        port = _port(server)
        chunk = b"{" + b" " * (4 * MAX_BODY) + b"}"
        head = (
            f"POST /api/click HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
        body = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n"
        assert _raw_exchange(port, head + body).startswith(b"HTTP/1.1 413 ")
        assert session.controls.objects == []


def _raw_exchange(port: int, data: bytes, timeout: float = 60.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may refuse before reading everything; its answer is still there
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


@pytest.mark.parametrize(
    "body",
    [
        {"obj": 10**29, "x": 5, "y": 5},
        {"obj": -1, "x": 5, "y": 5},
        {"obj": 0, "x": 5, "y": 5},
        {"obj": 2**31 + 1, "x": 5, "y": 5},
        {"obj": 7, "x": 5, "y": 5},  # never given out by the server
        {"obj": 1.5, "x": 5, "y": 5},
        {"obj": "1", "x": 5, "y": 5},
        {"obj": True, "x": 5, "y": 5},
    ],
)
def test_object_ids_are_bounded_and_must_exist(body: dict) -> None:
    with _serving() as (session, server, _):
        port = _port(server)
        status, _, reply = _click(port, body)
        assert status == 400 and "obj" in json.loads(reply)["error"]
        assert session.controls.objects == []
        assert _click(port, {"x": 5, "y": 5})[::2] == (200, b'{"obj": 1}')  # later clicks work


def test_a_thousand_new_objects_are_capped() -> None:
    with _serving() as (session, server, tracker):
        port = _port(server)
        codes = [_click(port, {"x": 5 + i % 300, "y": 5})[0] for i in range(1000)]
        assert codes[:MAX_OBJECTS] == [200] * MAX_OBJECTS
        assert set(codes[MAX_OBJECTS:]) == {400}
        assert len(session.controls.objects) == MAX_OBJECTS
        status, _, reply = _click(port, {"x": 5, "y": 5})
        assert status == 400 and f"at most {MAX_OBJECTS} objects" in json.loads(reply)["error"]
        ids = wait_until(lambda: [o.obj_id for o in session.state().objects], timeout=30)
        assert wait_until(lambda: len(session.state().objects) == MAX_OBJECTS, timeout=30), ids
        assert http_request(port, "POST", "/api/remove", b'{"obj": 3}', JSON)[0] == 200
        assert _click(port, {"x": 5, "y": 5})[0] == 200  # room again for one


BAD_BODIES = [
    b"not json",
    b"",
    b"[1, 2]",
    b'"text"',
    b'{"x": NaN, "y": 1}',
    b'{"x": Infinity, "y": 1}',
    b'{"x": 1e999, "y": 1}',
    b'{"x": 1' + b"0" * 5000 + b', "y": 1}',
    b"[" * 5000 + b"]" * 5000,
    b'{"x": "a", "y": 1}',
    b'{"x": 1, "y": 1, "positive": "yes"}',
    b'{"x": 1, "y": 1, "frame": -1}',
    b'{"x": 1, "y": 1, "frame": "7"}',
    b'{"x": 1, "y": 1, "frame": 1e30}',
    b'{"x": 400, "y": 1}',
    b"\xff\xfe{}",
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_malformed_bodies_get_one_clear_error(body: bytes) -> None:
    with _serving() as (session, server, _):
        port = _port(server)
        status, headers, reply = _click(port, body)
        assert status == 400 and headers["content-type"].startswith("application/json")
        message = json.loads(reply)["error"]
        assert message and "\n" not in message and "Traceback" not in message
        assert session.controls.objects == []
    box = b'{"box": [1, 2, 3]}'
    with _serving() as (session, server, _):
        assert http_request(_port(server), "POST", "/api/box", box, JSON)[0] == 400


def test_idle_sockets_are_closed_and_the_server_keeps_answering() -> None:
    with _serving(idle_timeout=1.0) as (_, server, _tracker):
        port = _port(server)
        threads_before = threading.active_count()
        sockets = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(200)]
        try:
            for index, sock in enumerate(sockets):
                if index % 2:  # half of them start a request and never finish its headers
                    sock.sendall(b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            assert http_request(port, "GET", "/api/state")[0] == 200  # still answering
            assert threading.active_count() <= threads_before + 2  # no thread per socket
            closed = [_closed_by_server(sock) for sock in sockets]
            assert all(closed), f"{closed.count(False)} idle sockets still open"
        finally:
            for sock in sockets:
                sock.close()
        assert http_request(port, "GET", "/api/state")[0] == 200


def test_connections_over_the_limit_are_closed_on_arrival() -> None:
    with _serving(idle_timeout=60.0, max_connections=20) as (_, server, _tracker):
        port = _port(server)
        sockets = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(20)]
        assert wait_until(lambda: len(server._runner.server.connections) == 20, 10)
        extra = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(20)]
        try:
            assert all(_closed_by_server(sock) for sock in extra)  # at once: no idle wait
        finally:
            for sock in sockets + extra:
                sock.close()
        assert wait_until(lambda: _status_or_none(port) == 200, 30)  # room again


def _status_or_none(port: int) -> int | None:
    try:
        return http_request(port, "GET", "/api/state")[0]
    except OSError:
        return None


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server closes ``sock`` (reads to EOF; any reply bytes are skipped)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def test_the_api_shows_no_server_path(tmp_path: Path) -> None:
    (tmp_path / "secret-dir").mkdir()
    clip = write_synthetic_clip(tmp_path / "secret-dir" / "clip.mp4", num_frames=15, fps=15)
    session = LiveSession(
        Capture(VideoFileSource(str(clip), realtime=True)), lambda: SlowTracker(0.01)
    )
    with session, LiveServer(session) as server:
        assert session.wait(30)
        status, _, body = http_request(_port(server), "GET", "/api/state")
    state = json.loads(body)
    assert status == 200 and state["source"] == "clip.mp4"
    assert state["message"] == "clip.mp4 ended after 15 frames"
    assert str(tmp_path) not in body.decode() and "secret-dir" not in body.decode()
