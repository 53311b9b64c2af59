"""``streamseg live`` serving options in a real subprocess: beyond loopback it warns and prints
a URL with a token (nothing works without it); ``--tls-self-signed`` serves HTTPS with the
certificate whose fingerprint it printed; ``--source browser`` serves the camera page; bad
options are one clear line and exit 2, before any camera or model is opened."""

from __future__ import annotations

import hashlib
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest

from tests.conftest import PROJECT_ROOT
from tests.worker.runtimes.live.live_support import free_port, http_request

LINE_PREFIX = "streamseg live: "


@contextmanager
def _live(*flags: str) -> Iterator[tuple[subprocess.Popen, list[str]]]:
    command = [sys.executable, "-m", "worker.cli", "live", "--model", "lite", *flags]
    process = subprocess.Popen(
        command, cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    lines: list[str] = []
    try:
        while not lines or "open " not in lines[-1]:
            line = process.stderr.readline()
            assert line, f"the command ended: {lines}"
            lines.append(line.strip())
        yield process, lines
    finally:
        if process.poll() is None:
            process.terminate()
            process.communicate(timeout=60)


def test_beyond_loopback_it_warns_and_the_url_carries_the_token() -> None:
    port = free_port()
    with _live("--source", "synthetic:64x48@5", "--host", "0.0.0.0", "--port", str(port)) as (
        _,
        lines,
    ):
        assert any("serving beyond this machine on 0.0.0.0" in line for line in lines)
        url = lines[-1].removeprefix(LINE_PREFIX + "open ").removesuffix(" (Ctrl-C to stop)")
        parts = urlsplit(url)
        token = parts.query.removeprefix("token=")
        assert parts.port == port and len(token) >= 24
        assert http_request(port, "GET", "/api/state")[0] == 403
        assert http_request(port, "GET", f"/api/state?token={token}")[0] == 200


def test_a_self_signed_certificate_serves_https_with_the_printed_fingerprint() -> None:
    port = free_port()
    with _live("--source", "browser:320x240", "--tls-self-signed", "--port", str(port)) as (
        _,
        lines,
    ):
        printed = next(line for line in lines if "self-signed certificate, SHA-256" in line)
        assert lines[-1] == f"{LINE_PREFIX}open https://127.0.0.1:{port}/ (Ctrl-C to stop)"
        der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port)))
        digest = hashlib.sha256(der).hexdigest().upper()
        assert printed.endswith(":".join(digest[i : i + 2] for i in range(0, 64, 2)))
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        import json
        import urllib.request

        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/api/state", context=context, timeout=10
        ) as response:
            state = json.loads(response.read())
        assert state["camera"] is True and (state["width"], state["height"]) == (320, 240)
        assert state["source"] == "browser camera 320x240"


def test_clients_that_leave_mid_response_leave_no_traceback() -> None:
    import socket
    import struct

    port = free_port()
    with _live("--source", "synthetic:640x480@30", "--port", str(port)) as (process, lines):
        for index in range(40):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(f"GET /frame?after={index} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            if index % 2:
                sock.recv(100)  # part of the answer, then gone
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # a reset, as a browser tab closing mid-frame
        assert http_request(port, "GET", "/api/state")[0] == 200
        process.terminate()
        rest = process.communicate(timeout=60)[1]
    assert "Traceback" not in rest and "BrokenPipe" not in rest and "Error" not in rest, rest
    assert "streamseg live: stopped: stopped by the user" in rest


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tls-cert", "cert.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"],
         "cannot use --tls-cert /nonexistent/c.pem / --tls-key /nonexistent/k.pem"),
        (["--tls-self-signed", "--tls-cert", "c", "--tls-key", "k"],
         "--tls-self-signed or --tls-cert/--tls-key, not both"),
        (["--source", "browser:5x5"], "invalid browser camera size 5x5"),
    ],
)  # fmt: skip
def test_bad_serving_options_are_one_line_and_exit_2(flags: list[str], message: str) -> None:
    source = [] if "--source" in flags else ["--source", "synthetic:64x48"]
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "live", *source, *flags, "--port", "0"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
