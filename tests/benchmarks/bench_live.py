"""Live mode benchmarks: the page server before (standard library, commit e47e1d1) and after
(aiohttp), interleaved in one run, with a tracker of known cost (``SlowTracker``: sleeps).

    python tests/benchmarks/bench_live.py [--rounds 3] [--seconds 8]

- ``keepalive``: one kept-alive connection, sequential GET /api/state and POST /api/objects:
  per-request time p50 / p95 (the old server wrote headers and body separately: Nagle's
  algorithm with delayed ACKs added ~40 ms to every POST on a kept-alive connection).
- ``display``: a synthetic 30 fps source, the tracker at 50 ms per frame, a client that long-polls
  /frame as the page does: capture to frame received p50 / p95.
- ``websocket``: the browser-camera protocol (after only): a client sends 320x240 JPEG frames
  at 30 fps with one in flight and receives the mask PNGs: capture to masks received.
- ``click``: a client clicks on the frame it has just received; the error is the capture index
  the prompt was applied on minus the one clicked on, before (no frame id: the next frame) and
  after (the click's frame id), with 50 ms and 300 ms trackers.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.worker.runtimes.live.live_support import SlowTracker  # noqa: E402
from worker.runtimes.live.capture import Capture  # noqa: E402
from worker.runtimes.live.server import LiveServer  # noqa: E402
from worker.runtimes.live.session import LiveSession  # noqa: E402
from worker.runtimes.live.sources import SyntheticSource  # noqa: E402

OLD_COMMIT = "e47e1d1"


def old_server_class():
    """The standard-library LiveServer as it was before issue 13."""
    source = subprocess.run(
        ["git", "show", f"{OLD_COMMIT}:worker/runtimes/live/server.py"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "old_live_server.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_live_server", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LiveServer


def servers():
    return {"before (stdlib)": old_server_class(), "after (aiohttp)": LiveServer}


def pct(values: list[float]) -> str:
    if not values:
        return "-"
    p50, p95 = np.percentile(np.array(values) * 1000, [50, 95])
    return f"{p50:.1f} / {p95:.1f}"


class _Final:
    """Where a recorder would be: the first final capture index of each object."""

    def __init__(self) -> None:
        self.first: dict[int, int] = {}

    def add(self, frame, objects) -> None:
        for obj in objects:
            if obj.visible:
                self.first.setdefault(obj.obj_id, frame.index)

    def close(self) -> list:
        return []


def _session(cost: float, recorder=None) -> LiveSession:
    capture = Capture(SyntheticSource(320, 240, 30, None))
    return LiveSession(capture, lambda: SlowTracker(cost), recorder=recorder)


def _port(server) -> int:
    return int(server.url.rstrip("/").rsplit(":", 1)[1].split("/")[0])


def keepalive(server_class, requests: int = 100) -> dict[str, list[float]]:
    """Request times alone: the session is not started (no frames compete for the CPU)."""
    session = _session(0.0)
    times: dict[str, list[float]] = {"GET": [], "POST": []}
    with server_class(session) as server:
        connection = http.client.HTTPConnection("127.0.0.1", _port(server), timeout=10)
        for _ in range(requests):
            for method in ("GET", "POST"):
                path = "/api/state" if method == "GET" else "/api/objects"
                started = time.perf_counter()
                connection.request(method, path, b"{}", {"Content-Type": "application/json"})
                connection.getresponse().read()
                times[method].append(time.perf_counter() - started)
        connection.close()
    return times


def display(server_class, seconds: float) -> list[float]:
    session = _session(0.05)
    captured: dict[int, float] = {}
    session.display.add_listener(lambda: _note(session, captured))
    latencies: list[float] = []
    with session, server_class(session) as server:
        session.controls.click(None, 100, 120)
        connection = http.client.HTTPConnection("127.0.0.1", _port(server), timeout=10)
        seq = shown = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            connection.request("GET", f"/frame?after={seq}&shown={shown}")
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                continue
            seq = int(response.getheader("X-Seq"))
            if seq in captured:
                latencies.append(time.monotonic() - captured[seq])
            shown = seq
        connection.close()
    return latencies[5:]


def _note(session: LiveSession, captured: dict[int, float]) -> None:
    latest = session.display.latest
    if latest is not None:
        captured[latest.seq] = latest.captured_at


def websocket(seconds: float) -> list[float]:
    import aiohttp
    import cv2

    from worker.runtimes.live.browser_camera import BrowserCameraSource
    from worker.runtimes.live.sources import synthetic_frame

    camera = BrowserCameraSource(320, 240)
    session = LiveSession(Capture(camera), lambda: SlowTracker(0.05), stall_timeout=1e9)
    frames = [
        cv2.imencode(".jpg", cv2.cvtColor(synthetic_frame(i, 320, 240), cv2.COLOR_RGB2BGR))[
            1
        ].tobytes()
        for i in range(30)
    ]

    async def run(url: str) -> list[float]:
        sent_at: dict[int, float] = {}
        latencies: list[float] = []
        async with aiohttp.ClientSession() as client, client.ws_connect(url) as ws:
            await ws.receive_json()
            started, count, pending, header = time.monotonic(), 0, None, None
            await ws.send_bytes(frames[0])
            pending = time.monotonic()
            while time.monotonic() - started < seconds:
                message = await ws.receive(timeout=5)
                if message.type is aiohttp.WSMsgType.BINARY:
                    if header and header["frame"] in sent_at:
                        latencies.append(time.monotonic() - sent_at[header["frame"]])
                    continue
                data = json.loads(message.data)
                if data["type"] == "result":
                    header = data
                elif data["type"] == "ack":
                    if data["frame"] is not None:
                        sent_at[data["frame"]] = pending
                    count += 1
                    next_at = started + count / 30.0  # a 30 fps camera: wait for its frame
                    await asyncio.sleep(max(next_at - time.monotonic(), 0))
                    pending = time.monotonic()
                    await ws.send_bytes(frames[count % len(frames)])
        return latencies[5:]

    with session, LiveServer(session, camera=camera) as server:
        session.controls.click(None, 100, 120)
        url = server.base_url.replace("http", "ws") + "ws/camera"
        return asyncio.run(run(url))


def click_error(cost: float, with_frame: bool, clicks: int = 12) -> list[int]:
    final = _Final()
    session = _session(cost, recorder=final)
    clicked: list[int] = []
    with session, LiveServer(session) as server:
        connection = http.client.HTTPConnection("127.0.0.1", _port(server), timeout=30)
        seq = 0
        for obj in range(1, clicks + 1):
            connection.request("GET", f"/frame?after={seq}")
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                continue
            seq, frame = int(response.getheader("X-Seq")), int(response.getheader("X-Frame"))
            body = {"obj": None, "x": 20 + obj * 10, "y": 120}
            if with_frame:
                body["frame"] = frame
            connection.request(
                "POST", "/api/click", json.dumps(body), {"Content-Type": "application/json"}
            )
            connection.getresponse().read()
            clicked.append(frame)
            time.sleep(0.3)
        connection.close()
        time.sleep(1.0)  # the last click reaches the tracker
    # frames become final (kept for rewinding) later: the session's end flushed them
    applied = [final.first.get(obj) for obj in range(1, len(clicked) + 1)]
    return [a - c for a, c in zip(applied, clicked, strict=True) if a is not None]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--only", choices=["keepalive"], help="run only this part")
    args = parser.parse_args()
    if args.only == "keepalive":
        for _ in range(args.rounds):
            for name, server_class in servers().items():
                times = keepalive(server_class)
                print(f"{name}: GET {pct(times['GET'])} ms, POST {pct(times['POST'])} ms")
        return
    classes = servers()
    keep: dict[str, dict[str, list[float]]] = {n: {"GET": [], "POST": []} for n in classes}
    shown: dict[str, list[float]] = {n: [] for n in classes}
    ws: list[float] = []
    clicks: dict[tuple[float, bool], list[int]] = {}
    for round_index in range(args.rounds):
        for name, server_class in classes.items():  # interleaved
            for method, values in keepalive(server_class).items():
                keep[name][method] += values
            shown[name] += display(server_class, args.seconds)
        ws += websocket(args.seconds)
        for cost in (0.05, 0.3):
            for with_frame in (False, True):
                clicks.setdefault((cost, with_frame), []).extend(click_error(cost, with_frame))
        print(f"round {round_index + 1} done", file=sys.stderr)
    print("| server | GET /api/state p50 / p95 ms | POST /api/objects p50 / p95 ms |"
          " capture to frame received p50 / p95 ms (tracker 50 ms) |")  # fmt: skip
    print("|---|---|---|---|")
    for name in classes:
        print(f"| {name} | {pct(keep[name]['GET'])} | {pct(keep[name]['POST'])} | "
              f"{pct(shown[name])} |")  # fmt: skip
    print(f"\nbrowser camera over a WebSocket (tracker 50 ms, 30 fps, 320x240): capture to masks "
          f"received p50 / p95 {pct(ws)} ms ({len(ws)} frames)")  # fmt: skip
    print("\n| tracker | click carries its frame | error (frames) median | mean | max | n |")
    print("|---|---|---|---|---|---|")
    for (cost, with_frame), errors in clicks.items():
        print(f"| {cost * 1000:.0f} ms | {'yes (after)' if with_frame else 'no (before)'} | "
              f"{statistics.median(errors):.0f} | {statistics.mean(errors):.1f} | "
              f"{max(errors)} | {len(errors)} |")  # fmt: skip


if __name__ == "__main__":
    threading.current_thread().name = "bench-live"
    main()
