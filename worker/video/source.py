"""Streaming video input: a video file or URL (PyAV) or a folder of images, as RGB frames.

``open_video(source)`` returns a :class:`VideoSource` context manager. Iterating it decodes one
frame at a time (the whole video is never held in memory) and yields :class:`Frame` objects
whose ``rgb`` is (H, W, 3) uint8 in display orientation: a container's display matrix
(rotation and mirroring) is applied, so ``info.width``/``info.height`` are the display size.

Videos: the video stream with the largest picture is decoded, as ffmpeg's command line maps
it (a tie goes to one flagged default, then to the lower index; cover art is never taken;
ffmpeg would also let a default-flagged stream beat one up to 5,000,000 pixels larger, but MP4
muxers flag the first track of each kind by habit); audio, data and other streams are ignored.
The decoder runs strict (ffmpeg's ``err_detect=crccheck+bitstream+buffer+explode``, one
thread, since threaded H.264 decoding drops damaged frames or their errors): damaged data the
decoder detects, a frame it flags corrupt, a read error, or a file that ends before its index
(or, Matroska, before its stated Segment size) raises :class:`VideoDecodeError` naming the
frame index instead of silently ending or altering the stream. Damage that still decodes as
valid data cannot be seen (H.264 in MP4 carries no checksum). A stated duration longer than
the frames is no evidence of a cut in MP4 or Matroska (a last frame may be shown for long, a
header may overstate it); elsewhere frames ending well before it are. Frame timestamps are the
container's, as they are, even where two frames share one.

Image folders (DAVIS layout): the sorted ``*.jpg``, ``*.jpeg`` and ``*.png`` files are the
frames, at 24 fps unless told otherwise; all must have the same size. Every image is checked
whole before use (JPEG: libjpeg-turbo's strict decode, where any "corrupt data" warning is an
error; PNG: every chunk's CRC and the end chunk), EXIF orientation is applied, and it becomes
8-bit RGB: 16-bit images are scaled (round(v / 257)), not clipped; Pillow's 32-bit integer mode
``I`` is taken as 16-bit (0..65535) and float mode ``F`` as 0..1.
"""

from __future__ import annotations

import io
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import simplejpeg
from PIL import Image, ImageOps, UnidentifiedImageError

from configs.errors import ReadInterrupted, VideoDecodeError
from configs.models import MAX_SOURCE_PIXELS
from jobs.image_files import open_image
from jobs.media import Frame, VideoInfo
from jobs.urls import is_url
from worker.video.pipe_reader import PipeReader, is_pipe_like, stops_passed_through

DEFAULT_IMAGE_FPS = 24.0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_FALLBACK_FPS = 30.0
_URL_TIMEOUT_S = 30.0
_DURATION_SLACK_S = 0.5  # tolerated gap between the last frame and the stated duration
# ffmpeg's strictest error detection: checksums where the format has them, bitstream and
# buffer-size violations, and "explode" turns each detected error into a decode failure.
_STRICT_DECODER_OPTIONS = {"err_detect": "crccheck+bitstream+buffer+explode"}
_EBML_ID, _SEGMENT_ID = b"\x1a\x45\xdf\xa3", b"\x18\x53\x80\x67"
_EXIF_ORIENTATION = 0x0112


class VideoSource:
    """An open source of frames: ``info``, a single pass of ``iter()``, ``close()``."""

    info: VideoInfo

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file handles; safe to call twice."""

    def interrupt(self) -> None:
        """Make a read that waits on a stalled source give up soon, in whichever thread it
        waits (thread-safe; only FIFOs and other pipes can stall, see ``pipe_reader``)."""

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_video(source: str | os.PathLike[str], *, fps: float | None = None) -> VideoSource:
    """Open a video file, URL or image folder for streaming decode.

    ``fps`` sets the frame rate of an image folder (default 24); videos keep their own rate.
    Raises :class:`VideoDecodeError` (one line) if the source is missing, not a video, has no
    video stream or no frames, or (folders) holds no images or images of differing sizes.
    """
    text = os.fspath(source)
    if fps is not None and not (fps > 0 and np.isfinite(fps)):
        raise VideoDecodeError(f"frame rate must be a positive number, got {fps}")
    if is_url(text):
        return _within_size_limit(_AvVideoSource(text), text)
    path = Path(text)
    if path.is_dir():
        folder = _ImageFolderSource(path, DEFAULT_IMAGE_FPS if fps is None else fps)
        return _within_size_limit(folder, text)
    if not path.exists():
        raise VideoDecodeError(f"no such file: {text}")
    if path.is_file() and path.stat().st_size == 0:
        raise VideoDecodeError(f"empty file: {text}")
    return _within_size_limit(_AvVideoSource(text), text)


def _within_size_limit(video: VideoSource, text: str) -> VideoSource:
    """``video``, if its frames are at most ``MAX_SOURCE_PIXELS``; else closed, and refused."""
    width, height = video.info.width, video.info.height
    if width * height <= MAX_SOURCE_PIXELS:
        return video
    video.close()
    raise VideoDecodeError(
        f"{text} is {width}x{height} ({width * height / 1e6:.1f} MP): frames over "
        f"{MAX_SOURCE_PIXELS / 1e6:.1f} MP (8192x4320) are not supported; scale it down first "
        "(e.g. ffmpeg -i IN -vf scale=-2:2160 OUT)"
    )


# --- display orientation -----------------------------------------------------------------


@dataclass(frozen=True)
class _Orientation:
    """Mirror left-right (if ``mirrored``), then rotate ``rotation`` degrees clockwise."""

    rotation: int = 0
    mirrored: bool = False

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) -> display-oriented (H', W', 3), C-contiguous."""
        if self.mirrored:
            rgb = rgb[:, ::-1]
        if self.rotation:
            rgb = np.rot90(rgb, k=-self.rotation // 90)
        return np.ascontiguousarray(rgb)

    def display_size(self, width: int, height: int) -> tuple[int, int]:
        return (height, width) if self.rotation in (90, 270) else (width, height)


def orientation_from_matrix(matrix: np.ndarray | None) -> _Orientation:
    """FFmpeg display matrix (9 int32, 16.16 fixed point) -> mirror + clockwise rotation.

    A point (x, y) of the decoded frame is shown at (a*x + c*y, b*x + d*y) with a, b, c, d =
    matrix[0], [1], [3], [4]. A negative determinant means a mirror, taken out first by
    negating x. Angles that are not multiples of 90 degrees snap to the nearest one.
    """
    if matrix is None:
        return _Orientation()
    a, b, c, d = (float(matrix[i]) for i in (0, 1, 3, 4))
    mirrored = a * d - b * c < 0
    if mirrored:
        a, b = -a, -b
    if abs(a) < 1e-9 and abs(b) < 1e-9:
        return _Orientation(mirrored=mirrored)
    key = (int(np.sign(a)), 0) if abs(a) >= abs(b) else (0, int(np.sign(b)))
    rotation = {(1, 0): 0, (0, 1): 90, (-1, 0): 180, (0, -1): 270}[key]
    return _Orientation(rotation, mirrored)


def _frame_display_matrix(frame: av.VideoFrame) -> np.ndarray | None:
    for side_data in frame.side_data:
        if side_data.type.name == "DISPLAYMATRIX":
            return np.frombuffer(bytes(side_data), dtype=np.int32)
    return None


# --- videos (PyAV) -----------------------------------------------------------------------


class _AvVideoSource(VideoSource):
    """A video file or URL decoded by PyAV, one frame at a time."""

    def __init__(self, source: str) -> None:
        self._source = source
        self._container, self._pipe = _open_container(source)
        try:
            _check_matroska_size(source, self._container)
            self._stream = _pick_video_stream(self._container, source)
            _configure_strict_decoding(self._stream)
            self._packets_read = self._produced = 0
            self._last_time: float | None = None
            self._decoded = self._decode_frames()
            first = _first_frame(self._decoded, source)
        except BaseException:
            self._close_handles()
            raise
        self._pending: av.VideoFrame | None = first
        self._orientation = orientation_from_matrix(_frame_display_matrix(first))
        self.info = self._make_info(first)

    def _make_info(self, first: av.VideoFrame) -> VideoInfo:
        width, height = self._orientation.display_size(first.width, first.height)
        return VideoInfo(
            width=width,
            height=height,
            fps=_stream_fps(self._stream),
            num_frames=self._stream.frames or None,
            time_base=self._stream.time_base,
            rotation=self._orientation.rotation,
            source=self._source,
            mirrored=self._orientation.mirrored,
        )

    def __iter__(self) -> Iterator[Frame]:
        if self._pending is None:
            raise RuntimeError(f"{self._source} can be iterated once; open it again")
        first, self._pending = self._pending, None
        yield self._to_frame(0, first)
        for index, frame in enumerate(self._decoded, start=1):
            yield self._to_frame(index, frame)

    def _to_frame(self, index: int, frame: av.VideoFrame) -> Frame:
        rgb = self._orientation.apply(frame.to_ndarray(format="rgb24"))
        if rgb.shape[:2] != (self.info.height, self.info.width):
            raise VideoDecodeError(
                f"frame {index} of {self._source} is {rgb.shape[1]}x{rgb.shape[0]} but the "
                f"video is {self.info.width}x{self.info.height}; size changes are not supported"
            )
        time = float(frame.pts * frame.time_base) if frame.pts is not None else None
        return Frame(index, rgb, frame.pts, index / self.info.fps if time is None else time)

    def _decode_frames(self) -> Iterator[av.VideoFrame]:
        """Decoded frames in display order; damaged or missing data raises, naming the frame."""
        self._produced = 0
        for packet in self._demux():
            try:
                frames = self._stream.decode(packet)
            except av.FFmpegError as error:
                _raise_if_interrupted(error)
                raise VideoDecodeError(
                    f"cannot decode frame {self._produced} of {self._source}: {_reason(error)}"
                ) from None
            for frame in frames:
                if frame.is_corrupt:
                    raise self._truncated(self._produced, "the decoder flags a frame corrupt")
                yield frame
                self._produced += 1
                self._last_time = _frame_time(frame, self._last_time)
        if self._produced and self._packets_read < len(self._stream.index_entries):
            raise self._truncated(self._produced, "the file ends early")
        if self._produced and self._ends_before_its_duration():
            raise self._truncated(self._produced, "the file ends before its stated duration")

    def _ends_before_its_duration(self) -> bool:
        """Frames stop well before the stated duration, in a container that has no better
        evidence: neither an index of every packet (MP4) nor a stated size (Matroska, where
        the duration may rightly run past the last frame or simply be overstated)."""
        if self._stream.index_entries or _is_matroska(self._container):
            return False
        end = _stated_end_seconds(self._container, self._stream)
        if end is None or self._last_time is None:
            return False
        frame_s = 1.0 / _stream_fps(self._stream)
        return end - (self._last_time + frame_s) > max(3 * frame_s, _DURATION_SLACK_S)

    def _demux(self) -> Iterator[av.Packet]:
        """The video stream's packets; a partial packet or a read error raises."""
        packets = self._container.demux(self._stream)
        while True:
            try:
                with stops_passed_through(self._pipe):
                    packet = next(packets, None)
            except av.FFmpegError as error:
                _raise_if_interrupted(error)
                raise self._truncated(self._produced, _reason(error)) from None
            if packet is None:
                return
            if packet.size and packet.is_corrupt:
                raise self._truncated(self._produced, "damaged or incomplete data")
            self._packets_read += bool(packet.size)
            yield packet

    def _truncated(self, index: int, what: str) -> VideoDecodeError:
        expected = f" of {self._stream.frames}" if self._stream.frames else ""
        hint = ""
        if self._pipe is not None and "mp4" in self._container.format.name:
            hint = (
                " (a pipe cannot seek: send an MP4 with its index first, ffmpeg -movflags "
                "+faststart, or as Matroska)"
            )
        return VideoDecodeError(
            f"truncated or corrupt video {self._source}: {what} at frame {index}{expected}{hint}"
        )

    def close(self) -> None:
        self._decoded.close()
        self._close_handles()

    def _close_handles(self) -> None:
        self._container.close()
        if self._pipe is not None:
            self._pipe.close()

    def interrupt(self) -> None:
        if self._pipe is not None:
            self._pipe.interrupt()


def _frame_time(frame: av.VideoFrame, previous: float | None) -> float | None:
    if frame.pts is None or frame.time_base is None:
        return previous
    return max(previous or 0.0, float(frame.pts * frame.time_base))


def _stated_end_seconds(
    container: av.container.InputContainer, stream: av.VideoStream
) -> float | None:
    """When the header says the video stream ends, in seconds (None if it does not say).

    The container's duration counts only when the video is its only stream (an audio track
    may legitimately run longer than the video).
    """
    if stream.duration and stream.time_base:
        return float(((stream.start_time or 0) + stream.duration) * stream.time_base)
    if len(container.streams) == 1 and container.duration:
        return (container.duration + (container.start_time or 0)) / av.time_base
    return None


def _open_container(source: str) -> tuple[av.container.InputContainer, PipeReader | None]:
    """The container, and the :class:`PipeReader` it reads where ``source`` is a FIFO or
    another pipe (None otherwise)."""
    if is_url(source) or not is_pipe_like(source):
        timeout = _URL_TIMEOUT_S if is_url(source) else None
        return _open_with_pyav(source, None, timeout), None
    try:
        pipe = PipeReader(source)
    except OSError as error:
        _raise_if_interrupted(error)
        raise VideoDecodeError(f"cannot open {source}: {_reason(error)}") from None
    try:
        return _open_with_pyav(source, pipe, None), pipe
    except BaseException:
        pipe.close()
        raise


def _open_with_pyav(
    source: str, pipe: PipeReader | None, timeout: float | None
) -> av.container.InputContainer:
    try:
        with stops_passed_through(pipe):
            return av.open(source if pipe is None else pipe, mode="r", timeout=timeout)
    except av.EOFError:
        raise VideoDecodeError(f"no frames in video {source} (the file ends early)") from None
    except (av.FFmpegError, OSError) as error:
        _raise_if_interrupted(error)
        raise VideoDecodeError(f"not a readable video: {source} ({_reason(error)})") from None


def _pick_video_stream(container: av.container.InputContainer, source: str) -> av.VideoStream:
    """The largest video stream, by ffmpeg's command-line rule (fftools' map_auto_video)
    except that the default flag only breaks ties (see the module docstring)."""
    cover = av.stream.Disposition.attached_pic
    videos = [s for s in container.streams.video if not s.disposition & cover]
    if not videos:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise VideoDecodeError(f"no video stream in {source} (it has: {', '.join(kinds)})")
    return max(videos, key=_stream_rank)


def _stream_rank(stream: av.VideoStream) -> tuple[int, bool, int]:
    pixels = (stream.codec_context.width or 0) * (stream.codec_context.height or 0)
    return pixels, bool(stream.disposition & av.stream.Disposition.default), -stream.index


def _configure_strict_decoding(stream: av.VideoStream) -> None:
    """Errors the decoder detects become exceptions (see the module docstring)."""
    stream.thread_type = "NONE"  # threaded H.264 drops or ignores some errors
    stream.codec_context.thread_count = 1
    stream.codec_context.options = dict(_STRICT_DECODER_OPTIONS)


def _is_matroska(container: av.container.InputContainer) -> bool:
    return "matroska" in container.format.name or "webm" in container.format.name


def _check_matroska_size(source: str, container: av.container.InputContainer) -> None:
    """Raise if a local Matroska/WebM file is shorter than its Segment element says (cut off).

    The muxer writes the Segment's size when it finishes; a live-written file may leave it
    unknown, and then nothing is concluded.
    """
    if is_url(source) or not _is_matroska(container) or not os.path.isfile(source):
        return  # a pipe's first bytes are the decoder's: reading them here would take them
    try:
        with open(source, "rb") as handle:
            head = handle.read(4096)
            size = os.fstat(handle.fileno()).st_size
    except OSError:
        return
    segment_end = _matroska_segment_end(head)
    if segment_end is not None and size < segment_end:
        raise VideoDecodeError(
            f"truncated video {source}: the file has {size} bytes, its Matroska header "
            f"promises {segment_end}"
        )


def _matroska_segment_end(head: bytes) -> int | None:
    """Byte offset where the Segment ends, from the file's first bytes (None: unknown)."""
    if not head.startswith(_EBML_ID):
        return None
    header_size, offset = _ebml_vint(head, len(_EBML_ID))
    position = offset + (header_size or 0)
    if header_size is None or head[position : position + 4] != _SEGMENT_ID:
        return None
    segment_size, data_start = _ebml_vint(head, position + 4)
    return None if segment_size is None else data_start + segment_size


def _ebml_vint(data: bytes, position: int) -> tuple[int | None, int]:
    """EBML variable-size integer at ``position`` -> (value or None if unknown/invalid, end)."""
    if position >= len(data) or data[position] == 0:
        return None, position
    length = 9 - data[position].bit_length()
    raw = data[position : position + length]
    if len(raw) < length:
        return None, position
    value = int.from_bytes(raw, "big") & ((1 << (7 * length)) - 1)
    unknown = value == (1 << (7 * length)) - 1
    return (None if unknown else value), position + length


def _first_frame(frames: Iterator[av.VideoFrame], source: str) -> av.VideoFrame:
    first = next(frames, None)
    if first is None:
        raise VideoDecodeError(f"no frames in video {source}")
    return first


def _stream_fps(stream: av.VideoStream) -> float:
    """Average rate, else the guessed rate, else frames / duration, else 30."""
    for rate in (stream.average_rate, stream.guessed_rate):
        if rate and rate > 0:
            return float(rate)
    if stream.frames and stream.duration and stream.time_base:
        return stream.frames / float(stream.duration * stream.time_base)
    return _FALLBACK_FPS


def _raise_if_interrupted(error: Exception) -> None:
    """A read that a signal interrupted is not bad input: FFmpeg's call returned EINTR and
    PyAV raised ``InterruptedError`` in place of whatever the signal's handler raised (a
    stop, Ctrl-C). It is raised as the interruption it was. (Signal handlers run in the main
    thread only: in another thread the error stays a read error.)"""
    main = threading.current_thread() is threading.main_thread()
    if isinstance(error, InterruptedError) and main:
        raise ReadInterrupted(f"interrupted while reading the video: {_reason(error)}")


def _reason(error: Exception) -> str:
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return " ".join(str(text).split())


# --- image folders -----------------------------------------------------------------------


class _ImageFolderSource(VideoSource):
    """A folder of same-sized images, read one at a time in natural sort order."""

    def __init__(self, folder: Path, fps: float) -> None:
        self._paths = _list_images(folder)
        width, height = _common_size(self._paths)
        self.info = VideoInfo(
            width=width,
            height=height,
            fps=float(fps),
            num_frames=len(self._paths),
            time_base=1 / Fraction(fps).limit_denominator(1_000_000),
            rotation=0,
            source=str(folder),
        )

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self._paths):
            rgb = _read_rgb(path, index)
            if rgb.shape[:2] != (self.info.height, self.info.width):
                raise VideoDecodeError(_size_mismatch(path, rgb.shape[1], rgb.shape[0], self.info))
            yield Frame(index, rgb, index, index / self.info.fps)


def _natural_key(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _list_images(folder: Path) -> list[Path]:
    paths = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not paths:
        raise VideoDecodeError(f"no images (*.jpg, *.jpeg, *.png) in folder {folder}")
    return sorted(paths, key=_natural_key)


def _common_size(paths: list[Path]) -> tuple[int, int]:
    """(width, height) shared by every image (EXIF orientation applied); reads headers only."""
    first = _header_size(paths[0], 0)
    for index, path in enumerate(paths[1:], start=1):
        size = _header_size(path, index)
        if size != first:
            raise VideoDecodeError(
                f"image {path} is {size[0]}x{size[1]} but {paths[0].name} is "
                f"{first[0]}x{first[1]}; all frames must have the same size"
            )
    return first


def _header_size(path: Path, index: int) -> tuple[int, int]:
    try:
        with open_image(path) as image:
            width, height = image.size
            transposed = image.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise VideoDecodeError(f"cannot read image {path} (frame {index}): {error}") from None
    return (height, width) if transposed else (width, height)


def _read_rgb(path: Path, index: int) -> np.ndarray:
    """Image file -> (H, W, 3) uint8 RGB: checked whole, EXIF orientation applied, any PIL
    mode converted (high bit depths scaled; see the module docstring)."""
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            _check_whole(image, data)
            return _to_rgb8(ImageOps.exif_transpose(image))
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise VideoDecodeError(f"cannot read image {path} (frame {index}): {reason}") from None


def _check_whole(image: Image.Image, data: bytes) -> None:
    """Raise (ValueError / SyntaxError / OSError) if the file is damaged anywhere.

    Pillow decodes damaged JPEG data and a PNG cut after its pixel data without a word.
    """
    if image.format in ("JPEG", "MPO"):
        colorspace = simplejpeg.decode_jpeg_header(data, strict=True)[2]
        target = {"Gray": "GRAY", "CMYK": "CMYK", "YCCK": "CMYK"}.get(colorspace, "RGB")
        simplejpeg.decode_jpeg(data, colorspace=target, strict=True)
    elif image.format == "PNG":
        with Image.open(io.BytesIO(data)) as again:
            again.verify()  # every chunk's CRC, and the end chunk


def _to_rgb8(image: Image.Image) -> np.ndarray:
    """PIL image -> (H, W, 3) uint8; 16-bit, 32-bit integer and float modes scaled to 8 bits."""
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
        grey = ((values * 255 + 32767) // 65535).astype(np.uint8)
    elif image.mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0)
        grey = np.rint(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)
    else:
        return np.array(image.convert("RGB"), dtype=np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _size_mismatch(path: Path, width: int, height: int, info: VideoInfo) -> str:
    return (
        f"image {path} is {width}x{height} but the folder's frames are "
        f"{info.width}x{info.height}; all frames must have the same size"
    )
