"""overlay.mp4: the source frames with each object's mask tinted, outlined and labelled.

:class:`OverlayWriter` encodes H.264 (libx264, yuv420p, BT.601 limited range, tagged so players
convert it back correctly) with the source's frame count and timestamps: every output frame
takes its pts from the source frame in the source's time base (image folders: 1/fps). MP4
needs increasing timestamps, so a frame whose pts is not after the previous output frame's (two
frames sharing a timestamp, as Matroska allows) gets the previous one plus one tick (1 ms in
Matroska's usual 1/1000 time base); later frames keep their own. The file is written under a
temporary name and renamed to its final name only on a successful close; on an exception
nothing is left.

Same input, same bytes, on any machine (crash-resume re-encodes the overlay and must reproduce
it): the RGB -> yuv420p conversion is this module's own integer arithmetic
(:func:`rgb_to_yuv420p`, every plane byte written here, no swscale), libx264 runs with a
fixed thread count (its output depends on the count, and "auto" follows the CPU count), and on
CPUs with AVX-512 libx264 is told to use its instruction sets up to AVX2 only: its AVX-512
code reads memory it never wrote, so the same frames gave other bytes from one encoder to the
next in one process (measured on a Xeon with AVX-512; AVX2 and plain C are reproducible).

Odd sizes: yuv420p needs even width and height, so a frame with an odd side is padded by one
pixel on the right and/or bottom, repeating the edge pixels (a 101x57 source gives a 102x58
overlay whose top-left 101x57 is the picture).
"""

from __future__ import annotations

import colorsys
import functools
import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from jobs.media import Frame, VideoInfo

# 20 distinct RGB colours (Sasha Trubetskoy's list with its two near-white entries replaced by
# greens, so every colour shows as a tint); any two are more than 50 apart in RGB.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (67, 99, 216), (245, 130, 49),
    (145, 30, 180), (66, 212, 244), (240, 50, 230), (191, 239, 69), (250, 190, 212),
    (70, 153, 144), (220, 190, 255), (154, 99, 36), (0, 96, 0), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (0, 240, 0), (0, 0, 117), (169, 169, 169),
)  # fmt: skip
_GOLDEN = 0.618033988749895
_BT601 = 6  # AVCOL_SPC_SMPTE170M / AVCOL_PRI_SMPTE170M / AVCOL_TRC_SMPTE170M
_LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG
_ENCODER_THREADS = 1  # fixed: x264's output depends on its thread count (see the docstring)


# x264's names for the instruction sets it may use (common/cpu.c), by the Linux cpuinfo flag
# that says the CPU has them; AVX-512 is left out on purpose (see the module docstring).
_X264_SETS = (
    ("sse", "MMX2"), ("sse", "SSE"), ("sse2", "SSE2"), ("sse2", "SSE2Fast"), ("pni", "SSE3"),
    ("ssse3", "SSSE3"), ("sse4_1", "SSE4.1"), ("sse4_2", "SSE4.2"), ("abm", "LZCNT"),
    ("avx", "AVX"), ("fma", "FMA3"), ("bmi1", "BMI1"), ("bmi2", "BMI2"), ("avx2", "AVX2"),
)  # fmt: skip


@functools.lru_cache(maxsize=1)
def x264_cpu_options() -> dict[str, str]:
    """Extra libx264 options for this CPU: on one with AVX-512, the instruction sets up to
    AVX2 (``x264-params asm=...``); elsewhere none (x264 detects the CPU itself)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return {}
    flags_line = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
    flags = set(flags_line.partition(":")[2].split())
    if "avx512f" not in flags:
        return {}
    names = [name for flag, name in _X264_SETS if flag in flags]
    return {"x264-params": "asm=" + ",".join(names) + ",Cache64"}


def object_color(obj_id: int) -> tuple[int, int, int]:
    """Stable RGB colour of an object: the palette for ids 1..20, golden-ratio hues after."""
    if 1 <= obj_id <= len(PALETTE):
        return PALETTE[obj_id - 1]
    hue = (obj_id * _GOLDEN) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return (round(red * 255), round(green * 255), round(blue * 255))


# --- drawing -------------------------------------------------------------------------------


def draw_overlay(rgb: np.ndarray, masks: dict[int, np.ndarray]) -> np.ndarray:
    """(H, W, 3) uint8 RGB + ``{id: (H, W) bool}`` -> new (H, W, 3) uint8 with every mask
    blended 50% with its colour, outlined in it, and labelled with its id near its centroid."""
    out = rgb.copy()
    shown = {}
    for obj_id, mask in sorted(masks.items()):
        pixels = np.ascontiguousarray(_check(mask, rgb)).view(np.uint8)  # 0/1, no copy
        box = cv2.boundingRect(pixels)
        if box[2] > 0:
            shown[obj_id] = (pixels, box)
            _tint(out, pixels, box, object_color(obj_id))
    thickness = max(1, round(min(rgb.shape[:2]) / 360))
    for obj_id, (pixels, _) in shown.items():
        contours, _ = cv2.findContours(pixels, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, object_color(obj_id), thickness, cv2.LINE_AA)
    for obj_id, (pixels, box) in shown.items():
        _draw_label(out, str(obj_id), _label_anchor(pixels, box), thickness)
    return out


def _check(mask: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        raise TypeError(f"masks must be bool arrays, got {getattr(mask, 'dtype', type(mask))}")
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match the frame {rgb.shape[:2]}")
    return mask


def _tint(out: np.ndarray, pixels: np.ndarray, box: tuple, color: tuple[int, int, int]) -> None:
    """Blend ``color`` 50/50 into ``out`` where ``pixels`` (H, W uint8 0/1) is set, in place.

    Through a lookup table of ``cv2.addWeighted``'s own results for every byte value (the same
    bytes as blending the region directly, ``test_tint_table_matches_add_weighted``) and
    ``cv2.copyTo`` under the mask: ~10x faster than blending the region with a colour image.
    """
    x, y, width, height = box
    region = out[y : y + height, x : x + width]
    blended = cv2.LUT(region, _tint_table(color))
    cv2.copyTo(blended, pixels[y : y + height, x : x + width], region)


def _tint_table(color: tuple[int, int, int]) -> np.ndarray:
    """(256, 1, 3) uint8: entry v, channel c = ``cv2.addWeighted`` of v and color[c], 50/50."""
    ramp = np.repeat(np.arange(256, dtype=np.uint8).reshape(256, 1, 1), 3, axis=2)
    return cv2.addWeighted(ramp, 0.5, np.full_like(ramp, color), 0.5, 0.0)


def _label_anchor(pixels: np.ndarray, box: tuple) -> tuple[int, int]:
    """(x, y) of the mask's centroid, or of its pixel nearest to it when it falls outside."""
    moments = cv2.moments(pixels, binaryImage=True)
    cx, cy = moments["m10"] / moments["m00"], moments["m01"] / moments["m00"]
    if pixels[int(round(cy)), int(round(cx))]:
        return int(round(cx)), int(round(cy))
    x, y, width, height = box
    ys, xs = np.nonzero(pixels[y : y + height, x : x + width])
    nearest = int(np.argmin((xs + x - cx) ** 2 + (ys + y - cy) ** 2))
    return int(xs[nearest]) + x, int(ys[nearest]) + y


def _draw_label(out: np.ndarray, text: str, anchor: tuple[int, int], thickness: int) -> None:
    """White text with a black border, centred on ``anchor`` and kept inside the frame."""
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thickness
    (width, height), _ = cv2.getTextSize(text, font, scale, thickness)
    x = min(max(anchor[0] - width // 2, 0), max(out.shape[1] - width, 0))
    y = min(max(anchor[1] + height // 2, height), out.shape[0] - 1)
    cv2.putText(out, text, (x, y), font, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(out, text, (x, y), font, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def pad_to_even(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H + H % 2, W + W % 2, 3), repeating the last row/column."""
    height, width = rgb.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return rgb
    return cv2.copyMakeBorder(rgb, 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE)


# --- encoding ------------------------------------------------------------------------------


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB, H and W even -> (H * 3 / 2, W) uint8: the Y plane, then U and V
    (each (H/2, W/2), flattened), PyAV's ``yuv420p`` ndarray layout.

    BT.601 limited range in integers (the ITU-R BT.601 8-bit coefficients / 256, rounded):
    Y = (66 R + 129 G + 25 B + 128) >> 8 + 16 per pixel; U, V from the sums of each 2x2 block:
    U = (-38 R - 74 G + 112 B + 512) >> 10 + 128, V = (112 R - 94 G - 18 B + 512) >> 10 + 128.
    """
    height, width = rgb.shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"yuv420p needs even sides, got {width}x{height}")
    red, green, blue = cv2.split(rgb)
    luma = np.multiply(red, 66, dtype=np.uint16)  # at most 56228 + 128: uint16 suffices
    luma += np.multiply(green, 129, dtype=np.uint16)
    luma += np.multiply(blue, 25, dtype=np.uint16)
    luma += 128
    luma >>= 8
    luma += 16
    r4, g4, b4 = (_block_sums(channel) for channel in (red, green, blue))
    u = ((-38 * r4 - 74 * g4 + 112 * b4 + 512) >> 10) + 128
    v = ((112 * r4 - 94 * g4 - 18 * b4 + 512) >> 10) + 128
    out = np.empty(height * width * 3 // 2, np.uint8)
    pixels, quarter = height * width, height * width // 4
    out[:pixels], out[pixels : pixels + quarter], out[pixels + quarter :] = (
        luma.reshape(-1), u.reshape(-1), v.reshape(-1)
    )  # fmt: skip
    return out.reshape(height * 3 // 2, width)


def _block_sums(channel: np.ndarray) -> np.ndarray:
    """(H, W) uint8 -> (H/2, W/2) int32 sums of each 2x2 block."""
    wide = channel.astype(np.uint16)
    return (wide[0::2, 0::2] + wide[1::2, 0::2] + wide[0::2, 1::2] + wide[1::2, 1::2]).astype(
        np.int32
    )


class OverlayWriter:
    """Encodes overlay frames to ``path`` (see the module docstring); a context manager.

    ``write()`` every source frame in order, then ``close()`` (or leave the ``with`` block
    normally) to finish the file; an exception in the block removes the partial file.
    """

    def __init__(
        self, path: str | os.PathLike[str], info: VideoInfo, *, crf: int = 20,
        preset: str = "veryfast",
    ) -> None:  # fmt: skip
        self.path = Path(path)
        self.info = info
        self._time_base = info.time_base or 1 / Fraction(info.fps).limit_denominator(1_000_000)
        self._partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        self._container = av.open(
            str(self._partial), "w", format="mp4", options={"movflags": "+faststart"}
        )
        self._stream = self._add_stream(crf, preset)
        self._last_pts: int | None = None
        self.frames_written = 0
        self._done = False

    def _add_stream(self, crf: int, preset: str) -> av.VideoStream:
        rate = Fraction(self.info.fps).limit_denominator(1_000_000)
        stream = self._container.add_stream("libx264", rate=rate)
        stream.width = self.info.width + self.info.width % 2
        stream.height = self.info.height + self.info.height % 2
        stream.pix_fmt = "yuv420p"
        stream.time_base = stream.codec_context.time_base = self._time_base
        context = stream.codec_context
        context.colorspace = context.color_primaries = context.color_trc = _BT601
        context.color_range = _LIMITED_RANGE
        context.thread_count = _ENCODER_THREADS
        stream.options = {"crf": str(crf), "preset": preset, **x264_cpu_options()}
        return stream

    def write(self, frame: Frame, masks: dict[int, np.ndarray]) -> None:
        """Encode ``frame.rgb`` (H, W, 3 uint8) with ``masks`` ({id: (H, W) bool}) drawn."""
        if self._done:
            raise RuntimeError(f"the overlay writer of {self.path} is closed")
        pts = self._pts(frame)
        picture = pad_to_even(draw_overlay(frame.rgb, masks))
        video_frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(picture), format="yuv420p")
        video_frame.pts, video_frame.time_base = pts, self._time_base
        self._container.mux(self._stream.encode(video_frame))
        self._last_pts = pts
        self.frames_written += 1

    def _pts(self, frame: Frame) -> int:
        """Source pts (without one, or without a source time base, time / time_base), made
        strictly increasing as MP4 requires: one tick after the previous frame's at least."""
        if frame.pts is not None and self.info.time_base is not None:
            pts = frame.pts
        else:
            pts = round(Fraction(frame.time) / self._time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            return self._last_pts + 1
        return pts

    def close(self) -> Path:
        """Flush the encoder, finish the file and move it to ``path``; returns ``path``."""
        if self._done:
            return self.path
        if self.frames_written == 0:
            self.abort()
            raise RuntimeError(f"no frames were written to {self.path}")
        try:
            self._container.mux(self._stream.encode(None))
            self._container.close()
            os.replace(self._partial, self.path)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return self.path

    def abort(self) -> None:
        """Stop and delete the partial file; ``path`` is left untouched."""
        self._done = True
        try:
            self._container.close()
        except (av.FFmpegError, OSError, ValueError):
            pass  # an encoder with nothing in it may refuse to finish; the file goes anyway
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> OverlayWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.close()
        elif not self._done:
            self.abort()
