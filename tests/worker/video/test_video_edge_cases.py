"""worker.video.source at the edges: inputs made here (PyAV, numpy, PIL), as small as they can be.

Valid but unusual input must come out right (frame count, timestamps, size, picture); damaged
input must end as one ``VideoDecodeError`` line naming the file, never as frames that look fine.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from configs.errors import VideoDecodeError
from worker.video.source import open_video

RNG_SEED = 7


def one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def gradient(height: int, width: int, shift: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 smooth colour ramps (codecs keep them well), moved by ``shift``."""
    yy, xx = np.mgrid[:height, :width]
    return np.stack(
        [(xx * 4 + shift * 9) % 256, (yy * 5 + shift * 3) % 256, (xx + yy + shift * 5) % 256], -1
    ).astype(np.uint8)


def encode(
    path: Path,
    frames: list[np.ndarray],
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    pts: list[int] | None = None,
    time_base: Fraction = Fraction(1, 10),
    audio_first: bool = False,
    options: dict[str, str] | None = None,
) -> Path:
    """RGB frames -> a video file; one encoder thread so the bytes are the same everywhere."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        if audio_first:
            audio = container.add_stream("pcm_s16le", rate=8000)
        stream = container.add_stream(codec, rate=round(1 / time_base))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = time_base
        stream.codec_context.thread_count = 1
        stream.options = options or {}
        if audio_first:
            samples = np.zeros((1, 800), np.int16)
            sound = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            sound.sample_rate, sound.pts = 8000, 0
            container.mux(audio.encode(sound))
            container.mux(audio.encode())
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = (index if pts is None else pts[index]), time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def decode_all(path: Path) -> tuple[object, list]:
    with open_video(path) as video:
        return video.info, list(video)


# --- valid but unusual videos ----------------------------------------------------------------


def _clip(codec: str, pix_fmt: str, suffix: str, **kw) -> Callable[[Path], Path]:
    frames = [gradient(24, 40, shift) for shift in range(6)]
    return lambda tmp: encode(tmp / f"clip{suffix}", frames, codec=codec, pix_fmt=pix_fmt, **kw)


VFR_PTS = [0, 1, 3, 7, 8, 20]
VALID_VIDEOS = {
    # name: (maker, expected pts (None: the codec's own), max mean abs error vs the source;
    # "grey": the source's luma, within 3)
    "grey ffv1": (_clip("ffv1", "gray", ".mkv"), list(range(6)), "grey"),
    "10-bit H.264": (_clip("libx264", "yuv420p10le", ".mp4"), list(range(6)), 3.0),
    "4:4:4 H.264": (_clip("libx264", "yuv444p", ".mp4"), list(range(6)), 3.0),
    "VP9 WebM": (_clip("libvpx-vp9", "yuv420p", ".webm", options={"lossless": "1"}), None, 3.0),
    "audio stream first": (_clip("libx264", "yuv420p", ".mkv", audio_first=True), None, 4.0),
    "variable frame rate": (_clip("ffv1", "yuv444p", ".mkv", pts=VFR_PTS), VFR_PTS, 1.0),
}


@pytest.mark.parametrize("case", list(VALID_VIDEOS))
def test_unusual_valid_videos_decode_right(tmp_path: Path, case: str) -> None:
    make, expected_pts, tolerance = VALID_VIDEOS[case]
    info, frames = decode_all(make(tmp_path))
    assert (info.width, info.height, info.rotation) == (40, 24, 0)
    assert [f.index for f in frames] == list(range(6))
    times = [f.time for f in frames]
    if expected_pts is not None:  # in the container's own time base (Matroska: ms)
        assert times == pytest.approx([p / 10 for p in expected_pts], abs=1e-3)
    assert all(later > earlier for earlier, later in zip(times, times[1:], strict=False))
    for shift, frame in enumerate(frames):
        source = gradient(24, 40, shift).astype(float)
        if tolerance == "grey":
            source = cv2.cvtColor(gradient(24, 40, shift), cv2.COLOR_RGB2GRAY)[..., None]
        assert frame.rgb.shape == (24, 40, 3) and frame.rgb.dtype == np.uint8
        error = np.abs(frame.rgb.astype(float) - source).mean()
        assert error <= (3.0 if tolerance == "grey" else tolerance), (case, shift)


# --- which video stream ----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_the_largest_of_two_video_streams_is_read(tmp_path: Path, suffix: str) -> None:
    """ffmpeg maps the larger stream; a small first one (a preview) must not win."""
    path = tmp_path / f"two{suffix}"
    small, large = np.full((24, 32, 3), (220, 30, 30), np.uint8), gradient(64, 96)
    with av.open(str(path), "w") as container:
        streams = []
        for rgb in (small, large):
            stream = container.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv420p"
            stream.codec_context.thread_count = 1
            streams.append(stream)
        for index in range(4):
            for stream, rgb in zip(streams, (small, large), strict=True):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = index
                container.mux(stream.encode(frame))
        for stream in streams:
            container.mux(stream.encode())
    info, frames = decode_all(path)
    assert (info.width, info.height, len(frames)) == (96, 64, 4)
    assert np.abs(frames[0].rgb.astype(float) - large).mean() < 6  # not the red one (~100)


# --- timestamps that the overlay must cope with ----------------------------------------------


def test_frames_sharing_a_timestamp_keep_it(tmp_path: Path) -> None:
    """Matroska allows two frames with one pts; both come out, with the container's pts."""
    pts = [0, 40, 80, 80, 120]
    frames = [gradient(24, 32, i) for i in range(5)]
    path = tmp_path / "dup.mkv"
    encode(path, frames, codec="ffv1", pix_fmt="yuv444p", pts=pts, time_base=Fraction(1, 1000))
    info, decoded = decode_all(path)
    assert info.time_base == Fraction(1, 1000)
    assert [f.pts for f in decoded] == pts
    for source, frame in zip(frames, decoded, strict=True):  # the two at 80 ms not swapped
        assert np.abs(frame.rgb.astype(float) - source).mean() < 2


# --- stated duration vs truncation (Matroska) --------------------------------------------------


def _mkv(tmp: Path, name: str = "clip.mkv") -> Path:
    return encode(tmp / name, [gradient(48, 64, i) for i in range(12)], codec="ffv1")


def _overstated_duration(tmp: Path) -> Path:
    """A complete file whose Info/Duration says 100 s for 12 frames at 10 fps."""
    path = _mkv(tmp)
    data = bytearray(path.read_bytes())
    at = data.index(b"\x44\x89\x88")  # Duration element, 8-byte float
    data[at + 3 : at + 11] = struct.pack(">d", 100_000.0)  # in TimestampScale units (ms)
    path.write_bytes(bytes(data))
    return path


def _long_last_frame(tmp: Path) -> Path:
    """A slideshow: the last frame is shown for 5 s, so the stated duration is 6.1 s."""
    path = tmp / "slides.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        packets = []
        for index in range(12):
            frame = av.VideoFrame.from_ndarray(gradient(48, 64, index), format="rgb24")
            frame.pts = index
            packets += stream.encode(frame)
        packets += stream.encode()
        packets[-1].duration = 50
        for packet in packets:
            container.mux(packet)
    return path


@pytest.mark.parametrize("make", [_overstated_duration, _long_last_frame])
def test_complete_matroska_with_a_longer_stated_duration_is_not_truncated(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    path = make(tmp_path)
    with av.open(str(path)) as container:
        assert container.duration / av.time_base > 5  # the header does overstate it
    info, frames = decode_all(path)
    assert len(frames) == 12
    assert [f.pts for f in frames] == [100 * i for i in range(12)]


def _cut_at(fraction: float | None) -> Callable[[Path], tuple[Path, int]]:
    def make(tmp: Path) -> tuple[Path, int]:
        path = _mkv(tmp)
        data = path.read_bytes()
        with av.open(str(path)) as container:
            positions = [p.pos for p in container.demux(video=0) if p.size]
        cut = positions[7] if fraction is None else int(len(data) * fraction)
        path.write_bytes(data[:cut])
        return path, cut

    return make


@pytest.mark.parametrize("cut", [_cut_at(0.6), _cut_at(None)], ids=["mid-block", "block start"])
def test_truncated_matroska_fails_at_open(tmp_path: Path, cut) -> None:
    """The Segment's size is known from the first bytes: no frame is decoded in vain."""
    path, size = cut(tmp_path)
    with pytest.raises(VideoDecodeError) as error:
        open_video(path)
    assert re.match(
        rf"^truncated video {re.escape(str(path))}: the file has {size} bytes, its Matroska "
        r"header promises \d+$",
        one_line(error),
    )


# --- damaged H.264 packets -------------------------------------------------------------------


def _h264_clip(tmp: Path) -> tuple[Path, list[tuple[int, int]]]:
    rng = np.random.default_rng(RNG_SEED)
    base = rng.integers(0, 256, (96, 160, 3), dtype=np.uint8)
    frames = [np.roll(base, 3 * i, axis=1) for i in range(12)]
    path = encode(tmp / "clean.mp4", frames, options={"preset": "veryfast"})
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    return path, packets


@pytest.mark.parametrize("packet", [0, 2, 5, 9, 11])
def test_six_damaged_bytes_in_one_packet_are_reported(tmp_path: Path, packet: int) -> None:
    """Six bytes overwritten just after the NAL header (the slice header): an error naming a
    frame, never 12 frames of which some are silently wrong or missing."""
    clean, packets = _h264_clip(tmp_path)
    with open_video(clean) as video:
        good = [frame.rgb for frame in video]
    data = bytearray(clean.read_bytes())
    at = packets[packet][0] + 6
    data[at : at + 6] = bytes([0x5A, 0xA5, 0xFF, 0x00, 0x33, 0xCC])
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    seen = []
    with pytest.raises(VideoDecodeError) as error, open_video(damaged) as video:
        for frame in video:
            seen.append(frame)
    message = one_line(error)
    assert str(damaged) in message
    assert re.search(rf"frame {len(seen)}\b", message)
    assert len(seen) < 12
    for frame in seen:  # what came out before the error is the true picture
        np.testing.assert_array_equal(frame.rgb, good[frame.index])


# --- image folders: high bit depth ------------------------------------------------------------


def _ramp16(height: int = 6, width: int = 8) -> np.ndarray:
    return np.linspace(0, 65535, height * width).round().astype(np.uint16).reshape(height, width)


def _save_rgb16_png(path: Path) -> None:
    ramp = _ramp16()
    cv2.imwrite(str(path), np.stack([ramp, ramp[::-1], np.full_like(ramp, 32768)], -1)[..., ::-1])


def _expected_from_16(values: np.ndarray) -> np.ndarray:
    return np.rint(values.astype(float) / 257).astype(np.uint8)


HIGH_BIT_DEPTH = {
    # name: (writer of 00000.png, expected (H, W, 3) uint8, tolerance)
    "16-bit grey PNG": (
        lambda p: Image.fromarray(_ramp16()).save(p),
        np.repeat(_expected_from_16(_ramp16())[..., None], 3, 2),
        0,
    ),
    "16-bit RGB PNG": (
        _save_rgb16_png,
        np.stack(
            [
                _expected_from_16(_ramp16()),
                _expected_from_16(_ramp16()[::-1]),
                np.full((6, 8), 128, np.uint8),
            ],
            -1,
        ),
        1,  # Pillow keeps the high byte (v >> 8), one below round(v / 257) at most
    ),
    "32-bit integer (mode I) data": (
        lambda p: Image.fromarray(_ramp16().astype(np.int32)).save(p, format="TIFF"),
        np.repeat(_expected_from_16(_ramp16())[..., None], 3, 2),
        0,
    ),
    "float (mode F) data": (
        lambda p: Image.fromarray((_ramp16() / 65535).astype(np.float32)).save(p, format="TIFF"),
        np.repeat(_expected_from_16(_ramp16())[..., None], 3, 2),
        0,
    ),
    "16-bit big-endian (mode I;16B) data": (
        lambda p: Image.frombytes("I;16B", (8, 6), _ramp16().astype(">u2").tobytes()).save(
            p, format="TIFF"
        ),
        np.repeat(_expected_from_16(_ramp16())[..., None], 3, 2),
        0,
    ),
}


@pytest.mark.parametrize("case", list(HIGH_BIT_DEPTH))
def test_high_bit_depth_images_are_scaled_not_clipped(tmp_path: Path, case: str) -> None:
    write, expected, tolerance = HIGH_BIT_DEPTH[case]
    write(tmp_path / "00000.png")  # TIFF data under .png: Pillow reads by content
    with open_video(tmp_path) as video:
        rgb = next(iter(video)).rgb
    assert rgb.shape == (6, 8, 3) and rgb.dtype == np.uint8
    assert int(np.abs(rgb.astype(int) - expected).max()) <= tolerance
    assert 0 < (rgb == 255).mean() < 0.1  # the old bug: almost everything white


# --- image folders: damaged images ------------------------------------------------------------


def _jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    noise = np.random.default_rng(RNG_SEED).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(cv2.GaussianBlur(noise, (5, 5), 0)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(gradient(48, 64)).save(buffer, "PNG")
    return buffer.getvalue()


def _garbage(data: bytes, start: float, stop: float) -> bytes:
    rng = np.random.default_rng(RNG_SEED)
    out = bytearray(data)
    i, j = int(len(data) * start), int(len(data) * stop)
    out[i:j] = rng.integers(0, 256, j - i, dtype=np.uint8).tobytes()
    return bytes(out)


def _flip_one_idat_byte(data: bytes) -> bytes:
    out = bytearray(data)
    at = data.index(b"IDAT") + 4 + 20
    out[at] ^= 0x40
    return bytes(out)


def _png_bomb() -> bytes:
    """A PNG header claiming 20000 x 20000 pixels (Pillow refuses over 2 x 89.5 M)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 20000, 20000, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


DAMAGED_IMAGES = {
    # name: (suffix, damaged bytes)
    "JPEG, second half garbage": (".jpg", lambda: _garbage(_jpeg_bytes(), 0.5, 1.0)),
    "JPEG, middle overwritten": (".jpg", lambda: _garbage(_jpeg_bytes(), 0.4, 0.6)),
    "JPEG, garbage before its end": (".jpg", lambda: _garbage(_jpeg_bytes(), 0.9, 0.99)),
    "JPEG, truncated": (".jpg", lambda: _jpeg_bytes()[: len(_jpeg_bytes()) * 3 // 4]),
    "PNG, truncated before IEND": (".png", lambda: _png_bytes()[:-12]),
    "PNG, truncated mid IDAT": (".png", lambda: _png_bytes()[: len(_png_bytes()) // 2]),
    "PNG, one IDAT bit flipped": (".png", lambda: _flip_one_idat_byte(_png_bytes())),
    "PNG, decompression bomb": (".png", _png_bomb),
}


@pytest.mark.parametrize("case", list(DAMAGED_IMAGES))
def test_a_damaged_image_in_a_folder_is_an_error(tmp_path: Path, case: str) -> None:
    suffix, damaged = DAMAGED_IMAGES[case]
    Image.fromarray(gradient(48, 64)).save(tmp_path / "00000.png")
    (tmp_path / f"00001{suffix}").write_bytes(damaged())
    Image.fromarray(gradient(48, 64, 1)).save(tmp_path / "00002.png")
    seen: list[int] = []
    with pytest.raises(VideoDecodeError) as error, open_video(tmp_path) as video:
        for frame in video:
            seen.append(frame.index)
    assert seen in ([], [0])  # at open (a damaged header) or at the frame itself
    assert re.match(rf"^cannot read image {re.escape(str(tmp_path))}/00001\{suffix} \(frame 1\): ",
                    one_line(error))  # fmt: skip


def test_valid_jpeg_variants_still_read(tmp_path: Path) -> None:
    """Grey, CMYK and progressive JPEGs pass the strict check and match Pillow's pixels."""
    rgb = cv2.GaussianBlur(gradient(48, 64), (3, 3), 0)
    Image.fromarray(rgb).convert("L").save(tmp_path / "00000.jpg")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "00001.jpg")
    Image.fromarray(rgb).save(tmp_path / "00002.jpg", progressive=True, quality=85)
    with open_video(tmp_path) as video:
        frames = list(video)
    assert len(frames) == 3
    for frame in frames:
        path = tmp_path / f"{frame.index:05d}.jpg"
        np.testing.assert_array_equal(frame.rgb, np.asarray(Image.open(path).convert("RGB")))
