"""jobs.overlay: colours, drawing, and the H.264 overlay file read back with PyAV."""

from __future__ import annotations

import itertools
import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from jobs.media import Frame, VideoInfo
from jobs.overlay import OverlayWriter, draw_overlay, object_color, pad_to_even, rgb_to_yuv420p
from worker.video.source import open_video


def decode_overlay(path: Path) -> tuple[av.VideoStream, list[Fraction], dict[int, np.ndarray]]:
    """(stream, every frame's time as an exact Fraction, {index: rgb} of a few frames)."""
    times, pictures = [], {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for index, frame in enumerate(container.decode(stream)):
            times.append(frame.pts * frame.time_base)
            if index in (0, 10, 20):
                pictures[index] = frame.to_ndarray(format="rgb24")
    return stream, times, pictures


def blended(rgb: np.ndarray, obj_id: int) -> np.ndarray:
    return (rgb.astype(float) + np.array(object_color(obj_id))) / 2


# --- colours and drawing -------------------------------------------------------------------


def test_object_colors_are_stable_and_distinct() -> None:
    colors = [object_color(i) for i in range(1, 21)]
    assert colors == [object_color(i) for i in range(1, 21)]
    assert all(len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c) for c in colors)
    distances = [np.linalg.norm(np.subtract(a, b)) for a, b in itertools.combinations(colors, 2)]
    assert min(distances) > 50
    more = [object_color(i) for i in range(21, 60)]
    assert all(0 <= v <= 255 for c in more for v in c) and len(set(more)) == len(more)


def _grey_frame() -> np.ndarray:
    rgb = np.full((120, 200, 3), 100, np.uint8)
    rgb[:, 100:] = 180
    return rgb


def test_draw_overlay_tints_outlines_and_labels() -> None:
    rgb = _grey_frame()
    mask = np.zeros((120, 200), bool)
    mask[20:100, 30:170] = True
    out = draw_overlay(rgb, {3: mask})
    assert out.shape == rgb.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(rgb, _grey_frame())  # input untouched
    interior = (slice(30, 50), slice(40, 80))
    assert np.abs(out[interior] - blended(rgb[interior], 3)).max() <= 1
    outside = np.ones_like(mask)
    outside[15:105, 25:175] = False
    np.testing.assert_array_equal(out[outside], rgb[outside])
    assert np.abs(out[20, 60].astype(int) - object_color(3)).max() <= 8  # outline on the edge
    label = out[50:70, 90:110]
    assert (label.min(axis=-1) > 240).sum() > 5  # white id text at the centroid (100, 60)


@pytest.mark.parametrize("obj_id", [1, 2, 7, 20, 33])
def test_tint_table_matches_add_weighted(obj_id: int) -> None:
    """The tint through a lookup table gives cv2.addWeighted's bytes, for every byte value,
    under a random (non-rectangular) mask, and leaves unmasked pixels alone."""
    from jobs.overlay import _tint

    rng = np.random.default_rng(obj_id)
    rgb = np.arange(256 * 3, dtype=np.uint8).reshape(16, 48, 1).repeat(3, axis=2)
    rgb[..., 1], rgb[..., 2] = rgb[..., 1][::-1], rng.integers(0, 256, (16, 48))
    mask = rng.random((16, 48)) < 0.6
    color = object_color(obj_id)
    expected = rgb.copy()
    reference = cv2.addWeighted(rgb, 0.5, np.full_like(rgb, color), 0.5, 0.0)
    expected[mask] = reference[mask]
    out = rgb.copy()
    pixels = mask.view(np.uint8)
    _tint(out, pixels, cv2.boundingRect(pixels), color)
    np.testing.assert_array_equal(out, expected)


def test_label_of_a_ring_sits_on_the_ring() -> None:
    rgb = np.zeros((100, 100, 3), np.uint8)
    ring = np.zeros((100, 100), np.uint8)
    cv2.circle(ring, (50, 50), 35, 1, thickness=10)
    out = draw_overlay(rgb, {12: ring.astype(bool)})
    white = np.argwhere(out.min(axis=-1) > 240)
    assert len(white) > 5
    distance = np.hypot(*(white.mean(axis=0) - 50))
    assert 20 < distance < 50  # on the ring, not in the empty centre


def test_draw_overlay_skips_empty_masks_and_checks_inputs() -> None:
    rgb = _grey_frame()
    np.testing.assert_array_equal(draw_overlay(rgb, {1: np.zeros((120, 200), bool)}), rgb)
    with pytest.raises(ValueError, match="does not match the frame"):
        draw_overlay(rgb, {1: np.zeros((120, 199), bool)})
    with pytest.raises(TypeError, match="bool"):
        draw_overlay(rgb, {1: np.zeros((120, 200), np.uint8)})


@pytest.mark.parametrize(("height", "width", "padded"), [
    (57, 101, (58, 102)), (56, 101, (56, 102)), (57, 100, (58, 100)), (56, 100, (56, 100)),
])  # fmt: skip
def test_pad_to_even(height: int, width: int, padded: tuple[int, int]) -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8)
    out = pad_to_even(rgb)
    assert out.shape == (*padded, 3)
    np.testing.assert_array_equal(out[:height, :width], rgb)
    np.testing.assert_array_equal(out[-1, :width], rgb[-1])
    np.testing.assert_array_equal(out[:height, -1], rgb[:, -1])


# --- encoded files -------------------------------------------------------------------------


def test_overlay_of_odd_rate_video_keeps_count_and_timestamps(
    videos_dir: Path, tmp_path: Path
) -> None:
    source = videos_dir / "test-sample2.mp4"
    mask = np.zeros((320, 568), bool)
    mask[40:280, 60:300] = True
    path = tmp_path / "overlay.mp4"
    times, originals = [], {}
    with open_video(source) as video, OverlayWriter(path, video.info) as writer:
        for frame in video:
            writer.write(frame, {1: mask})
            times.append(frame.pts * video.info.time_base)
            if frame.index in (10, 20):
                originals[frame.index] = frame.rgb
    assert os.listdir(tmp_path) == ["overlay.mp4"]
    stream, out_times, pictures = decode_overlay(path)
    assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
    assert (stream.codec_context.width, stream.codec_context.height) == (568, 320)
    assert len(out_times) == 149 and out_times == times
    for index, original in originals.items():
        inside = (slice(60, 120), slice(80, 160))  # away from the outline and the label
        assert np.abs(blended(original[inside], 1) - original[inside]).mean() > 25
        assert np.abs(pictures[index][inside] - blended(original[inside], 1)).mean() < 6
        far = (slice(40, 300), slice(360, 560))
        assert np.abs(pictures[index][far].astype(int) - original[far]).mean() < 4


def test_overlay_of_davis_folder_with_its_annotations(davis_root: Path, tmp_path: Path) -> None:
    images = davis_root / "JPEGImages" / "dog-agility"
    annotations = davis_root / "Annotations" / "dog-agility"
    path = tmp_path / "overlay.mp4"
    with open_video(images) as video, OverlayWriter(path, video.info) as writer:
        for frame in video:
            mask = np.asarray(Image.open(annotations / f"{frame.index:05d}.png").convert("L")) > 0
            writer.write(frame, {2: mask})
            if frame.index == 10:
                original, original_mask = frame.rgb, mask
    stream, out_times, pictures = decode_overlay(path)
    assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
    assert out_times == [Fraction(i, 24) for i in range(25)]
    kernel = np.ones((15, 15), np.uint8)
    inside = cv2.erode(original_mask.astype(np.uint8), kernel).astype(bool)
    far = ~cv2.dilate(original_mask.astype(np.uint8), kernel, iterations=6).astype(bool)
    assert inside.sum() > 1000 and far.sum() > 100_000
    tinted = pictures[10][inside].astype(float)
    assert np.abs(tinted - blended(original[inside], 2)).mean() < 8
    assert np.abs(pictures[10][far].astype(int) - original[far]).mean() < 4


def test_odd_sized_frames_are_padded_by_one_pixel(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    ramp = np.tile(np.linspace(0, 255, 101, dtype=np.uint8), (57, 1))
    for index in range(3):
        Image.fromarray(np.stack([ramp, ramp[::-1], np.full_like(ramp, 80)], -1)).save(
            folder / f"{index}.png"
        )
    path = tmp_path / "overlay.mp4"
    with open_video(folder, fps=10) as video, OverlayWriter(path, video.info) as writer:
        for frame in video:
            writer.write(frame, {})
    stream, times, pictures = decode_overlay(path)
    assert (stream.codec_context.width, stream.codec_context.height) == (102, 58)
    assert times == [Fraction(0), Fraction(1, 10), Fraction(2, 10)]
    assert np.abs(pictures[0][:57, :101].astype(int) - frame.rgb).mean() < 4


def test_exception_leaves_no_file_and_keeps_an_old_one(videos_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "overlay.mp4"
    path.write_bytes(b"previous overlay")
    with pytest.raises(KeyError), open_video(videos_dir / "bikes.mp4") as video:
        with OverlayWriter(path, video.info) as writer:
            for frame in itertools.islice(video, 5):
                writer.write(frame, {})
            raise KeyError("tracker failed")
    assert os.listdir(tmp_path) == ["overlay.mp4"]
    assert path.read_bytes() == b"previous overlay"


def test_no_frames_is_an_error_and_leaves_nothing(videos_dir: Path, tmp_path: Path) -> None:
    with open_video(videos_dir / "bikes.mp4") as video:
        writer = OverlayWriter(tmp_path / "overlay.mp4", video.info)
    with pytest.raises(RuntimeError, match="no frames"):
        writer.close()
    assert os.listdir(tmp_path) == []


def test_close_returns_the_path_and_exit_after_close_is_quiet(
    videos_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "overlay.mp4"
    with open_video(videos_dir / "bikes.mp4") as video, OverlayWriter(path, video.info) as writer:
        frames = list(itertools.islice(video, 3))
        for frame in frames:
            writer.write(frame, {})
        assert writer.close() == path
        assert writer.close() == path
        with pytest.raises(RuntimeError, match="closed"):
            writer.write(frames[0], {})
    assert decode_overlay(path)[1] == [Fraction(n, 25) for n in range(3)]


def test_frames_sharing_a_timestamp_get_one_tick_more(tmp_path: Path) -> None:
    """MP4 needs increasing pts: a repeated (or earlier) pts becomes the previous one + 1."""
    info = VideoInfo(32, 24, 25.0, 6, Fraction(1, 1000), 0, "dup.mkv")
    source_pts = [0, 40, 80, 80, 80, 120, 75, 200]
    path = tmp_path / "overlay.mp4"
    with OverlayWriter(path, info) as writer:
        for index, pts in enumerate(source_pts):
            rgb = np.full((24, 32, 3), 30 * index, np.uint8)
            writer.write(Frame(index, rgb, pts, pts / 1000), {})
    assert decode_overlay(path)[1] == [
        Fraction(pts, 1000) for pts in (0, 40, 80, 81, 82, 120, 121, 200)
    ]
    assert os.listdir(tmp_path) == ["overlay.mp4"]


def test_the_overlay_of_a_matroska_with_shared_timestamps(tmp_path: Path) -> None:
    """End to end: decoded from a Matroska file whose frames 2 and 3 share pts 80."""
    source = tmp_path / "dup.mkv"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        for index, pts in enumerate([0, 40, 80, 80, 120]):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 40 * index, np.uint8))
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    path = tmp_path / "overlay.mp4"
    with open_video(source) as video, OverlayWriter(path, video.info) as writer:
        for frame in video:
            writer.write(frame, {})
    _, times, pictures = decode_overlay(path)
    assert times == [Fraction(pts, 1000) for pts in (0, 40, 80, 81, 120)]
    assert abs(int(pictures[0].mean()) - 0) <= 2


# --- byte-identical output -------------------------------------------------------------------


def _frames(width: int, height: int, count: int = 8) -> list[Frame]:
    rng = np.random.default_rng(width * 1000 + height)
    base = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (5, 5), 0)
    return [Frame(i, np.roll(base, 3 * i, axis=1), i, i / 10) for i in range(count)]


def _encode(path: Path, frames: list[Frame]) -> bytes:
    height, width = frames[0].rgb.shape[:2]
    info = VideoInfo(width, height, 10.0, len(frames), Fraction(1, 10), 0, "frames")
    mask = np.zeros((height, width), bool)
    mask[height // 4 : height // 2, width // 5 : width // 2] = True
    with OverlayWriter(path, info) as writer:
        for frame in frames:
            writer.write(frame, {1: mask, 7: ~mask})
    return path.read_bytes()


@pytest.mark.parametrize(("width", "height"), [(64, 48), (101, 57), (854, 480), (35, 201)])
def test_same_frames_give_the_same_bytes(tmp_path: Path, width: int, height: int) -> None:
    frames = _frames(width, height)
    first = _encode(tmp_path / "a.mp4", frames)
    np.random.default_rng(0).integers(0, 256, 50_000_000, dtype=np.uint8)  # reused heap junk
    assert _encode(tmp_path / "b.mp4", frames) == first


_CHILD = """
import os, sys
from pathlib import Path
from tests.jobs.test_overlay import _encode, _frames
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
sys.stdout.buffer.write(_encode(Path(sys.argv[1]), _frames(854, 480)))
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to vary")
def test_bytes_do_not_depend_on_the_cpus_the_process_may_use(tmp_path: Path) -> None:
    """A job resumed on another worker (other CPU count) must reproduce the overlay: libx264's
    automatic thread count follows the CPUs and changes the bytes, so it is fixed."""
    import subprocess
    import sys

    here = _encode(tmp_path / "here.mp4", _frames(854, 480))
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "one-cpu.mp4")],
        capture_output=True, check=True, cwd=Path(__file__).parents[2], timeout=300,
    )  # fmt: skip
    assert child.stdout == here


def test_rgb_to_yuv420p_is_bt601_limited_range() -> None:
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[:, :2] = 255  # a white 2x2 block, then a black one
    yuv = rgb_to_yuv420p(rgb)
    assert yuv.shape == (3, 4)
    np.testing.assert_array_equal(yuv[:2], [[235, 235, 16, 16]] * 2)
    np.testing.assert_array_equal(yuv[2], [128, 128, 128, 128])  # U of both blocks, then V
    rng = np.random.default_rng(3)
    blocks = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8).repeat(2, 0).repeat(2, 1)
    reference = av.VideoFrame.from_ndarray(blocks, format="rgb24").reformat(
        format="yuv420p", dst_colorspace=6, dst_color_range=1, interpolation="POINT"
    )  # swscale, on flat 2x2 blocks where chroma siting cannot matter
    assert np.abs(rgb_to_yuv420p(blocks).astype(int) - reference.to_ndarray()).max() <= 1
    with pytest.raises(ValueError, match="even sides"):
        rgb_to_yuv420p(np.zeros((3, 4, 3), np.uint8))
