"""worker.video.source on the shared real clips and DAVIS folders, and on bad files made here."""

from __future__ import annotations

import itertools
import re
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from configs.errors import VideoDecodeError
from jobs.media import Frame, VideoInfo
from tests.support.clips import write_clip
from worker.video.source import open_video, orientation_from_matrix

# name, width, height, frames, fps (02_cups and test-sample2 also carry an aac stream)
SHARED_CLIPS = [
    ("bedroom.mp4", 960, 540, 200, 30.0),
    ("02_cups.mp4", 1280, 720, 300, 30000 / 1001),
    ("05_default_juggle.mp4", 1280, 720, 247, 24.0),
    ("test-sample2.mp4", 568, 320, 149, 3725 / 126),
    ("bikes.mp4", 640, 272, 250, 25.0),
]


def marker_frame(height: int = 32, width: int = 64) -> np.ndarray:
    """Grey frame with a red block in the top-left corner: shows any rotation or flip."""
    rgb = np.full((height, width, 3), 60, np.uint8)
    rgb[: height // 2, : width // 4] = (230, 40, 40)
    return rgb


def one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# --- real clips ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "width", "height", "count", "fps"), SHARED_CLIPS)
def test_shared_clip_sizes_counts_and_timestamps(
    videos_dir: Path, name: str, width: int, height: int, count: int, fps: float
) -> None:
    with open_video(videos_dir / name) as video:
        info = video.info
        assert (info.width, info.height, info.num_frames) == (width, height, count)
        assert info.fps == pytest.approx(fps, rel=1e-6)
        assert (info.rotation, info.mirrored, info.source) == (0, False, str(videos_dir / name))
        decoded = 0
        previous_pts = -1
        for frame in video:
            assert frame.index == decoded
            assert frame.pts is not None and frame.pts > previous_pts
            assert frame.time == pytest.approx(float(frame.pts * info.time_base))
            previous_pts, decoded = frame.pts, decoded + 1
        assert frame.rgb.shape == (height, width, 3) and frame.rgb.dtype == np.uint8
    assert decoded == count


@pytest.mark.parametrize("name", [clip[0] for clip in SHARED_CLIPS])
def test_first_frame_matches_opencv_decoder(videos_dir: Path, name: str) -> None:
    """An independent decoder (OpenCV's FFmpeg, BGR output) sees the same RGB picture."""
    capture = cv2.VideoCapture(str(videos_dir / name))
    ok, bgr = capture.read()
    capture.release()
    assert ok
    with open_video(videos_dir / name) as video:
        rgb = next(iter(video)).rgb
    assert rgb.shape == bgr.shape
    assert np.abs(rgb.astype(int) - bgr[..., ::-1]).mean() < 2.0


def test_odd_frame_rate_keeps_container_timestamps(videos_dir: Path) -> None:
    """test-sample2 is ~29.56 fps with uneven gaps: times come from pts, not index / fps."""
    with open_video(videos_dir / "test-sample2.mp4") as video:
        assert video.info.time_base == Fraction(1, 600)
        frames = [(f.pts, f.time) for f in video]
    gaps = {b[0] - a[0] for a, b in itertools.pairwise(frames)}
    assert {20, 21, 40} <= gaps
    assert frames[-1] == (3003, pytest.approx(3003 / 600))
    assert frames[-1][1] != pytest.approx(148 / video.info.fps, abs=1e-3)


def test_stopping_early_and_closing_is_clean(videos_dir: Path) -> None:
    video = open_video(videos_dir / "02_cups.mp4")
    first_three = [f.index for f in itertools.islice(video, 3)]
    video.close()
    video.close()
    assert first_three == [0, 1, 2]


def test_a_video_is_a_single_pass(videos_dir: Path) -> None:
    with open_video(videos_dir / "bikes.mp4") as video:
        next(iter(video))
        with pytest.raises(RuntimeError, match="once"):
            next(iter(video))


# --- DAVIS folders -------------------------------------------------------------------------


def test_davis_folder(davis_root: Path) -> None:
    folder = davis_root / "JPEGImages" / "dog-agility"
    with open_video(folder) as video:
        assert video.info == VideoInfo(854, 480, 24.0, 25, Fraction(1, 24), 0, str(folder))
        frames = list(video)
    assert [f.index for f in frames] == list(range(25))
    assert [f.pts for f in frames] == list(range(25))
    assert frames[24].time == pytest.approx(1.0)
    expected = np.asarray(Image.open(folder / "00013.jpg").convert("RGB"))
    np.testing.assert_array_equal(frames[13].rgb, expected)


def test_folder_frame_rate_can_be_given(davis_root: Path) -> None:
    with open_video(davis_root / "JPEGImages" / "dog-agility", fps=30) as video:
        assert video.info.fps == 30.0 and video.info.time_base == Fraction(1, 30)
        frame = next(itertools.islice(video, 3, None))
    assert (frame.index, frame.pts, frame.time) == (3, 3, pytest.approx(0.1))


def test_davis_annotation_folder_mixes_l_and_la_modes(davis_root: Path) -> None:
    folder = davis_root / "Annotations" / "bear"
    assert Image.open(folder / "00077.png").mode == "LA"
    with open_video(folder) as video:
        frame = next(itertools.islice(video, 77, None))
    luminance = np.asarray(Image.open(folder / "00077.png"))[..., 0]
    assert frame.rgb.shape == (480, 854, 3)
    for channel in range(3):
        np.testing.assert_array_equal(frame.rgb[..., channel], luminance)
    assert set(np.unique(luminance)) == {0, 255}


@pytest.mark.parametrize(("mode", "suffix"), [
    ("L", ".png"), ("LA", ".png"), ("P", ".png"), ("RGBA", ".png"),
    ("1", ".png"), ("RGB", ".jpg"), ("L", ".jpeg"), ("CMYK", ".jpg"),
])  # fmt: skip
def test_any_image_mode_becomes_rgb(tmp_path: Path, mode: str, suffix: str) -> None:
    """8-bit modes as Pillow converts them (16-bit ones: test_video_edge_cases)."""
    source = Image.fromarray(np.random.default_rng(0).integers(0, 255, (9, 13, 3), np.uint8))
    path = tmp_path / f"00000{suffix}"
    source.convert(mode).save(path)
    with open_video(tmp_path) as video:
        rgb = next(iter(video)).rgb
    assert rgb.shape == (9, 13, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, np.asarray(Image.open(path).convert("RGB")))


def test_folder_order_is_natural_and_ignores_other_files(tmp_path: Path) -> None:
    for number in (10, 2, 1):
        Image.new("L", (4, 4), number).save(tmp_path / f"frame_{number}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / "sub.png").mkdir()
    with open_video(tmp_path) as video:
        assert video.info.num_frames == 3
        assert [int(f.rgb[0, 0, 0]) for f in video] == [1, 2, 10]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to display
    Image.fromarray(marker_frame(8, 16)).save(tmp_path / "0.jpg", exif=exif, quality=100)
    with open_video(tmp_path) as video:
        assert (video.info.width, video.info.height) == (8, 16)
        rgb = next(iter(video)).rgb
    assert rgb.shape == (16, 8, 3)
    assert rgb[1, -2, 0] > 180 and rgb[-2, 1, 0] < 100  # red block moved to the top-right


# --- rotation, odd sizes -------------------------------------------------------------------

# PyAV's set_display_rotation: counter-clockwise degrees, then an optional left-right mirror.
ROTATIONS = [
    # ccw, hflip, VideoInfo.rotation (clockwise), expected picture from the encoded one
    (0, False, 0, lambda a: a),
    (90, False, 270, lambda a: np.rot90(a, 1)),
    (-90, False, 90, lambda a: np.rot90(a, -1)),
    (180, False, 180, lambda a: np.rot90(a, 2)),
    (0, True, 0, lambda a: a[:, ::-1]),
    (90, True, 90, lambda a: np.rot90(a, 1)[:, ::-1]),
    (180, True, 180, lambda a: a[::-1]),
]


@pytest.mark.parametrize(("ccw", "hflip", "clockwise", "expected"), ROTATIONS)
def test_display_matrix_is_applied(
    tmp_path: Path, ccw: int, hflip: bool, clockwise: int, expected
) -> None:
    source = marker_frame(32, 64)
    path = tmp_path / "rotated.mp4"
    write_clip(path, [source] * 3, rotation=ccw, hflip=hflip)
    want = expected(source)
    with open_video(path) as video:
        assert (video.info.rotation, video.info.mirrored) == (clockwise, hflip)
        assert (video.info.height, video.info.width) == want.shape[:2]
        frames = list(video)
    assert len(frames) == 3
    assert frames[0].rgb.flags.c_contiguous
    assert np.abs(frames[0].rgb.astype(int) - want).mean() < 3.0
    if not hflip:  # OpenCV auto-rotates (it ignores mirroring): an independent check
        ok, bgr = cv2.VideoCapture(str(path)).read()
        assert ok and np.abs(frames[0].rgb.astype(int) - bgr[..., ::-1]).mean() < 3.0


@pytest.mark.parametrize(("matrix", "rotation", "mirrored"), [
    (None, 0, False),
    ([65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30], 0, False),
    ([0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30], 90, False),
    ([0, -65536, 0, 65536, 0, 0, 0, 0, 1 << 30], 270, False),
    ([-65536, 0, 0, 0, -65536, 0, 0, 0, 1 << 30], 180, False),
    ([65536, 0, 0, 0, -65536, 0, 0, 0, 1 << 30], 180, True),  # vflip
    ([56756, 32768, 0, -32768, 56756, 0, 0, 0, 1 << 30], 0, False),  # 30 degrees snaps to 0
    ([23170, 56000, 0, -56000, 23170, 0, 0, 0, 1 << 30], 90, False),  # ~67 snaps to 90
])  # fmt: skip
def test_orientation_from_matrix(matrix, rotation: int, mirrored: bool) -> None:
    array = None if matrix is None else np.array(matrix, np.int32)
    orientation = orientation_from_matrix(array)
    assert (orientation.rotation, orientation.mirrored) == (rotation, mirrored)


@pytest.mark.parametrize(("codec", "pix_fmt"), [("ffv1", "yuv420p"), ("libx264", "yuv444p")])
def test_odd_frame_size(tmp_path: Path, codec: str, pix_fmt: str) -> None:
    """101x57: neither a multiple of 16 nor even."""
    ramp = np.linspace(0, 255, 101, dtype=np.uint8)
    source = np.stack([np.tile(ramp, (57, 1))] * 3, axis=-1)
    path = tmp_path / "odd.mkv"
    write_clip(path, [source] * 2, codec=codec, pix_fmt=pix_fmt)
    with open_video(path) as video:
        assert (video.info.width, video.info.height, video.info.num_frames) == (101, 57, None)
        frames = list(video)
    assert [f.rgb.shape for f in frames] == [(57, 101, 3)] * 2
    assert np.abs(frames[1].rgb.astype(int) - source).mean() < 3.0


# --- bad inputs ----------------------------------------------------------------------------


def _text_as_mp4(tmp_path: Path) -> Path:
    path = tmp_path / "notes.mp4"
    path.write_text("this is a shopping list, not a video\n" * 20)
    return path


def _empty_file(tmp_path: Path) -> Path:
    path = tmp_path / "empty.mp4"
    path.touch()
    return path


def _audio_only(tmp_path: Path, name: str, codec: str, sample_format: str) -> Path:
    path = tmp_path / name
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=8000)
        samples = np.zeros((1, 4000), np.int16 if sample_format == "s16" else np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format=sample_format, layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _video_without_frames(tmp_path: Path) -> Path:
    """Matroska with a 64x48 H.264 track whose only packet is an access-unit delimiter."""
    path = tmp_path / "noframes.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
        packet = av.Packet(b"\x00\x00\x00\x02\x09\xf0")
        packet.pts = packet.dts = 0
        packet.time_base = Fraction(1, 25)
        packet.stream = stream
        container.mux(packet)
    return path


def _header_only(tmp_path: Path) -> Path:
    path = tmp_path / "header.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    return path


BAD_FILES = {
    "missing": (lambda tmp: tmp / "nope.mp4", r"^no such file: .*nope\.mp4$"),
    "empty": (_empty_file, r"^empty file: .*empty\.mp4$"),
    "text renamed .mp4": (_text_as_mp4, r"^not a readable video: .*notes\.mp4 \(Invalid data"),
    "wav audio only": (
        lambda tmp: _audio_only(tmp, "a.wav", "pcm_s16le", "s16"),
        r"^no video stream in .*a\.wav \(it has: audio\)$",
    ),
    "aac audio only": (
        lambda tmp: _audio_only(tmp, "a.m4a", "aac", "fltp"),
        r"^no video stream in .*a\.m4a \(it has: audio\)$",
    ),
    "video track, no frames": (_video_without_frames, r"^no frames in video .*noframes\.mkv$"),
    "header only": (_header_only, r"^no frames in video .*header\.mkv \(the file ends early\)$"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_fail_at_open_with_one_line(tmp_path: Path, case: str) -> None:
    make, pattern = BAD_FILES[case]
    with pytest.raises(VideoDecodeError) as error:
        open_video(make(tmp_path))
    assert re.search(pattern, one_line(error))


def _truncated_copy(videos_dir: Path, tmp_path: Path, name: str, size: int | None = None) -> Path:
    data = (videos_dir / name).read_bytes()
    path = tmp_path / f"cut-{name}"
    path.write_bytes(data[: len(data) // 2 if size is None else size])
    return path


def _decode_until_error(path: Path) -> tuple[list[Frame], str]:
    seen: list[Frame] = []
    with pytest.raises(VideoDecodeError) as error, open_video(path) as video:
        for frame in video:
            seen.append(frame)
    return seen, one_line(error)


@pytest.mark.parametrize(
    ("name", "total"), [("test-sample2.mp4", 149), ("05_default_juggle.mp4", 247)]
)
def test_truncated_mid_packet_raises_naming_the_frame(
    videos_dir: Path, tmp_path: Path, name: str, total: int
) -> None:
    """Index first, data cut at half its bytes: the frames before the cut, then an error."""
    seen, message = _decode_until_error(_truncated_copy(videos_dir, tmp_path, name))
    assert total // 4 < len(seen) < total
    assert [f.index for f in seen] == list(range(len(seen)))
    assert message.startswith(f"truncated or corrupt video {tmp_path / ('cut-' + name)}: ")
    assert message.endswith(f": damaged or incomplete data at frame {len(seen)} of {total}")


def test_truncated_on_a_packet_boundary_is_not_a_short_video(
    videos_dir: Path, tmp_path: Path
) -> None:
    """Cut right after packet 60: the demuxer sees a clean end, the index knows better."""
    with av.open(str(videos_dir / "test-sample2.mp4")) as container:
        stream = container.streams.video[0]
        packets = [(p.pos, p.size) for p in itertools.islice(container.demux(stream), 61)]
    cut = sum(packets[60])
    seen, message = _decode_until_error(
        _truncated_copy(videos_dir, tmp_path, "test-sample2.mp4", size=cut)
    )
    assert 50 < len(seen) <= 61
    assert re.search(rf"the file ends early at frame {len(seen)} of 149$", message)


def test_truncated_with_index_at_the_end_fails_at_open(videos_dir: Path, tmp_path: Path) -> None:
    """bedroom.mp4 keeps its index (moov) after the data: half the file has no index."""
    with pytest.raises(VideoDecodeError) as error:
        open_video(_truncated_copy(videos_dir, tmp_path, "bedroom.mp4"))
    assert re.search(r"^not a readable video: .*cut-bedroom\.mp4 \(", one_line(error))


def _folder_of_sizes(tmp: Path, sizes: list[tuple[int, int]]) -> Path:
    for index, size in enumerate(sizes):
        Image.new("RGB", size, (index, 0, 0)).save(tmp / f"{index:05d}.png")
    return tmp


def _folder_with_broken_image(tmp: Path) -> Path:
    _folder_of_sizes(tmp, [(8, 6), (8, 6)])
    (tmp / "00002.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return tmp


def _folder_with_text_only(tmp: Path) -> Path:
    (tmp / "readme.txt").write_text("no frames here")
    return tmp


BAD_FOLDERS = {
    "empty": (lambda tmp: tmp, r"^no images \(\*\.jpg, \*\.jpeg, \*\.png\) in folder "),
    "no image files": (_folder_with_text_only, r"^no images .* in folder "),
    "differing sizes": (
        lambda tmp: _folder_of_sizes(tmp, [(8, 6), (8, 6), (6, 8)]),
        r"^image .*00002\.png is 6x8 but 00000\.png is 8x6; all frames must have the same size$",
    ),
    "broken image": (_folder_with_broken_image, r"^cannot read image .*00002\.jpg \(frame 2\): "),
}


@pytest.mark.parametrize("case", list(BAD_FOLDERS))
def test_bad_image_folders(tmp_path: Path, case: str) -> None:
    make, pattern = BAD_FOLDERS[case]
    with pytest.raises(VideoDecodeError) as error:
        open_video(make(tmp_path))
    assert re.search(pattern, one_line(error))


@pytest.mark.parametrize("fps", [0, -5, float("nan")])
def test_bad_folder_frame_rate(davis_root: Path, fps: float) -> None:
    with pytest.raises(VideoDecodeError, match="frame rate must be a positive number"):
        open_video(davis_root / "JPEGImages" / "dog-agility", fps=fps)
