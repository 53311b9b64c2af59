"""The browser's own camera, end to end in headless Chromium with a fake camera (a Y4M clip of
a moving disc): the page captures and streams its camera over a WebSocket; a click on the disc
gives a mask on the disc in the frame clicked on, which follows it, and the page draws the
masks over its live video. Over plain http://127.0.0.1 and over HTTPS with a self-signed
certificate. The camera WebSocket also refuses another origin and a missing token."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from jobs.overlay import object_color
from tests.worker.runtimes.live.live_support import chromium_driver, torch_threads, wait_until
from worker.runtimes.live.browser_camera import BrowserCameraSource
from worker.runtimes.live.capture import Capture
from worker.runtimes.live.server import LiveServer
from worker.runtimes.live.session import LiveSession
from worker.runtimes.live.sources import synthetic_frame
from worker.runtimes.live.tls import self_signed_context

WIDTH, HEIGHT, FPS = 320, 240, 10
CLIP_FRAMES = 300


def write_y4m(path: Path) -> Path:
    """A Y4M clip (Chromium's fake camera format): the synthetic disc, 1 px per frame."""
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for index in range(CLIP_FRAMES):
            rgb = synthetic_frame(index // 2, WIDTH, HEIGHT)
            out.write(b"FRAME\n" + cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def disc_in(rgb: np.ndarray) -> np.ndarray:
    """Where the yellow disc is in a received frame (H, W) bool: the ground truth."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return (r > 170) & (g > 130) & (b < 120)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


class RecordingCamera(BrowserCameraSource):
    """The real browser-camera source, keeping every frame it accepted (by capture index)."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__(width, height)
        self.received: dict[int, np.ndarray] = {}

    def offer(self, rgb: np.ndarray) -> int | None:
        index = super().offer(rgb)
        if index is not None:
            self.received[index] = rgb
        return index


class FinalMasks:
    """Stands where a recorder would: each final frame's masks, by capture index."""

    def __init__(self) -> None:
        self.frames: dict[int, dict[int, np.ndarray]] = {}

    def add(self, frame, objects) -> None:
        self.frames[frame.index] = {o.obj_id: o.mask for o in objects if o.visible}

    def close(self) -> list:
        return []


@pytest.fixture(scope="module")
def lite_engine():
    from configs.settings import TrackerSettings
    from worker.engines.registry import load_engine

    return load_engine(TrackerSettings(model="lite", device="cpu"), show_progress=False)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_browser_camera_click_masks_the_object_in_the_frame_clicked(
    tmp_path: Path, lite_engine, scheme: str
) -> None:
    from jobs.media import VideoInfo

    clip = write_y4m(tmp_path / "camera.y4m")
    camera = RecordingCamera(WIDTH, HEIGHT)
    final = FinalMasks()
    info = VideoInfo(WIDTH, HEIGHT, FPS, None, None, 0, "camera")
    session = LiveSession(
        Capture(camera), lambda: lite_engine.make_tracker(info),
        stall_timeout=float("inf"), recorder=final,
    )  # fmt: skip
    given: list = []
    submit = session.tracking.queue.submit
    session.tracking.queue.submit = lambda command: (given.append(command), submit(command))
    tls = self_signed_context(("127.0.0.1",)).context if scheme == "https" else None
    flags = (
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={clip}",
        "--ignore-certificate-errors",
    )
    driver = chromium_driver(tmp_path / "profile", flags)
    try:
        with torch_threads(1), session, LiveServer(session, tls=tls, camera=camera) as server:
            assert server.url.startswith(f"{scheme}://")
            driver.get(server.url)
            assert wait_until(lambda: _page(driver)["acked"] >= 5, 30), _page(driver)
            clicked_on = _click_on_the_disc(driver, camera)
            command = wait_until(lambda: given[0] if given else None, 20)
            assert command is not None and command.frame is not None
            x, y = command.points[0]
            truth = disc_in(camera.received[command.frame])
            assert truth[round(y), round(x)], "the click missed the disc in its own frame"
            assert command.frame >= clicked_on  # the frame on screen, not an older one
            assert wait_until(lambda: len([i for i in final.frames if 1 in final.frames[i]])
                              >= 12, 120), "the mask did not follow for 12 frames"  # fmt: skip
            drawn = wait_until(lambda: _overlay_on_disc(driver, camera), 30)
            assert drawn, "the page draws no mask over its video on the disc"
        first = min(i for i, masks in final.frames.items() if 1 in masks)
        assert command.frame <= first <= command.frame + 3, (command.frame, first)
        ious = [iou(masks[1], disc_in(camera.received[i]))
                for i, masks in sorted(final.frames.items()) if 1 in masks]  # fmt: skip
        print(
            f"\n{scheme} camera: clicked frame {command.frame}, mask from frame {first}; "
            f"IoU first {ious[0]:.2f}, median {np.median(ious):.2f} over {len(ious)} frames"
        )
        assert ious[0] >= 0.7  # on the disc in the frame clicked
        assert np.median(ious) >= 0.7 and np.mean(np.array(ious) >= 0.5) >= 0.8  # follows it
    finally:
        driver.quit()


def _page(driver) -> dict:
    return driver.execute_script(
        "const l = window.streamsegLive; return {acked: l.acked, frame: l.frame, "
        "results: l.results, camera: l.camera, status: document.getElementById('status')"
        ".textContent};"
    )


def _click_on_the_disc(driver, camera: RecordingCamera) -> int:
    """Click where the disc is in the newest frame the page has sent; that frame's index."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    newest = _page(driver)["frame"]
    ys, xs = np.nonzero(disc_in(camera.received[newest]))
    assert len(xs) > 100, "no disc in the camera's frame"
    x, y = float(xs.mean()), float(ys.mean())
    view = driver.find_element(By.ID, "view")
    width, height = view.size["width"], view.size["height"]
    dx, dy = x * width / WIDTH - width / 2, y * height / HEIGHT - height / 2
    ActionChains(driver).move_to_element_with_offset(view, round(dx), round(dy)).click().perform()
    return newest


_OVERLAY_JS = """
const live = window.streamsegLive, view = document.getElementById("view");
if (!live.lastResult) return null;
const data = view.getContext("2d").getImageData(0, 0, view.width, view.height).data;
return {frame: live.lastResult.frame, alpha: Array.from(data.filter((_, i) => i % 4 === 3)),
        red: Array.from(data.filter((_, i) => i % 4 === 0))};
"""


def _overlay_on_disc(driver, camera: RecordingCamera) -> bool:
    """The page's overlay canvas: object 1's colour, half opaque, on the disc of its frame."""
    raw = driver.execute_script(_OVERLAY_JS)
    if raw is None or raw["frame"] not in camera.received:
        return False
    alpha = np.array(raw["alpha"], np.uint8).reshape(HEIGHT, WIDTH) > 64
    red = np.array(raw["red"], np.uint8).reshape(HEIGHT, WIDTH)
    truth = disc_in(camera.received[raw["frame"]])
    colour_ok = abs(int(np.median(red[alpha])) - object_color(1)[0]) < 40 if alpha.any() else False
    return iou(alpha, truth) >= 0.6 and colour_ok


@pytest.mark.parametrize(
    ("origin", "token", "refused"),
    [
        ("http://127.0.0.1:1", "TOKEN", True),  # another origin
        (None, None, True),  # no token
        (None, "wrong", True),
        ("OWN", "TOKEN", False),
    ],
)
def test_the_camera_websocket_refuses_strangers(origin, token, refused) -> None:
    import aiohttp

    camera = BrowserCameraSource(64, 48)
    session = LiveSession(Capture(camera), lambda: None, stall_timeout=float("inf"))
    with session, LiveServer(session, host="0.0.0.0", camera=camera) as server:
        base = server.base_url
        own = base.rstrip("/")
        headers = {"Origin": own if origin == "OWN" else origin} if origin else {}
        real = server.policy.token
        query = "" if token is None else f"?token={real if token == 'TOKEN' else token}"
        url = base.replace("http", "ws") + "ws/camera" + query

        async def connect() -> str:
            async with aiohttp.ClientSession() as client:
                try:
                    async with client.ws_connect(url, headers=headers) as ws:
                        hello = await ws.receive_json(timeout=10)
                        return hello["type"]
                except aiohttp.WSServerHandshakeError as error:
                    return f"refused {error.status}"

        outcome = asyncio.run(connect())
    assert outcome == ("refused 403" if refused else "hello")


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("text", "send binary JPEG frames only"),
        (b"not a jpeg", "frames must be 64x48 JPEGs"),
        ("jpeg:32x24", "frames must be 64x48 JPEGs"),
    ],
)
def test_the_camera_websocket_refuses_bad_frames_and_a_second_camera(message, error) -> None:
    import aiohttp

    camera = BrowserCameraSource(64, 48)
    session = LiveSession(Capture(camera), lambda: None, stall_timeout=float("inf"))
    if message == "jpeg:32x24":
        message = cv2.imencode(".jpg", np.zeros((24, 32, 3), np.uint8))[1].tobytes()
    good = cv2.imencode(".jpg", np.zeros((48, 64, 3), np.uint8))[1].tobytes()

    async def run(url: str) -> tuple[list, str, dict]:
        async with aiohttp.ClientSession() as client, client.ws_connect(url) as ws:
            assert (await ws.receive_json(timeout=10))["type"] == "hello"
            await ws.send_bytes(good)
            ack = await ws.receive_json(timeout=10)
            try:
                async with client.ws_connect(url) as second:
                    await second.receive(timeout=10)
                    other = "accepted"
            except aiohttp.WSServerHandshakeError as refusal:
                other = f"refused {refusal.status}"
            if isinstance(message, str):
                await ws.send_str(message)
            else:
                await ws.send_bytes(message)
            replies = []
            async for reply in ws:
                if reply.type is aiohttp.WSMsgType.TEXT:
                    replies.append(json.loads(reply.data))
            return replies, other, ack

    with session, LiveServer(session, camera=camera) as server:
        url = server.base_url.replace("http", "ws") + "ws/camera"
        replies, other, ack = asyncio.run(run(url))
    assert ack == {"type": "ack", "frame": 0}
    assert other == "refused 409"  # one camera page at a time
    assert {"type": "error", "error": error} in replies  # and then the server closed
