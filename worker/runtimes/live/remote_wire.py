"""What a remote live session puts in Redis: stream entries and their encoding.

Three streams per session (names in ``jobs.redis_keys``)::

    frames   capture -> tracker  {seq, index, t, jpeg}              MAXLEN ~ FRAMES_MAXLEN,
                                 and what the tracker skipped is trimmed (XTRIM MINID)
    results  tracker -> capture  {seq, index, t, ms, skipped, w, h, objects, m<id>...,
                                 notice (a rejected prompt)}
                                 or {error} or {end}                  MAXLEN ~ RESULTS_MAXLEN
    control  capture -> tracker  {cmd: JSON command or {"type": "end"}}

``seq`` numbers the frames sent (1, 2, ...); ``index`` is the frame's capture index; ``t`` is
its capture time on the capture side's clock, echoed back untouched so latency is measured on
one clock even when the two sides are different machines. Masks travel bit-packed and
zlib-compressed, one field per object. Every key expires ``KEY_TTL_S`` after its last write.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

import cv2
import numpy as np
import redis

from configs.errors import InputError, TransientError
from worker.engines.contract import ObjectResult

FRAMES_MAXLEN = 8
RESULTS_MAXLEN = 32
CONTROL_MAXLEN = 10_000
KEY_TTL_S = 600
JPEG_QUALITY = 90


def connect(url: str) -> redis.Redis:
    """A client for ``url``; a one-line error when the server cannot be reached."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=15, socket_connect_timeout=5)
        client.ping()
    except ValueError as error:
        raise InputError(f"invalid Redis URL {url!r}: {error}") from None
    except redis.RedisError as error:
        raise TransientError(f"cannot reach Redis at {url}: {error}") from None
    return client


def stream_id(entry_id: bytes | str) -> tuple[int, int]:
    """``b"1712-3"`` -> (1712, 3), for ordering entry ids."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def add(client: redis.Redis, key: str, fields: dict, maxlen: int) -> None:
    """XADD with ``MAXLEN ~ maxlen`` trimming, and refresh the key's expiry."""
    with client.pipeline(transaction=False) as pipe:
        pipe.xadd(key, fields, maxlen=maxlen, approximate=True)
        pipe.expire(key, KEY_TTL_S)
        pipe.execute()


# --- frames ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class WireFrame:
    seq: int
    index: int
    captured_at: float
    jpeg: bytes

    def to_fields(self) -> dict:
        return {
            "seq": self.seq,
            "index": self.index,
            "t": repr(self.captured_at),
            "jpeg": self.jpeg,
        }

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> WireFrame:
        return cls(int(fields[b"seq"]), int(fields[b"index"]), float(fields[b"t"]), fields[b"jpeg"])

    def rgb(self) -> np.ndarray:
        return decode_jpeg(self.jpeg)


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError("a frame from the capture side is not a readable JPEG")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# --- results -----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class WireResult:
    """The tracker's answer for frame ``seq``; ``skipped``: frames it never processed so far."""

    seq: int
    index: int
    captured_at: float
    processing_ms: float
    skipped: int
    objects: list[ObjectResult]
    notice: str | None = None

    def to_fields(self, height: int, width: int) -> dict:
        fields = {
            "seq": self.seq,
            "index": self.index,
            "t": repr(self.captured_at),
            "ms": f"{self.processing_ms:.3f}",
            "skipped": self.skipped,
            "w": width,
            "h": height,
        }
        fields["objects"] = json.dumps([{"id": o.obj_id, "score": o.score} for o in self.objects])
        if self.notice:
            fields["notice"] = self.notice
        for obj in self.objects:
            fields[f"m{obj.obj_id}"] = pack_mask(obj.mask)
        return fields

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> WireResult:
        height, width = int(fields[b"h"]), int(fields[b"w"])
        objects = [
            ObjectResult(
                int(o["id"]),
                None,
                unpack_mask(fields[f"m{o['id']}".encode()], height, width),
                float(o["score"]),
            )
            for o in json.loads(fields[b"objects"])
        ]
        return cls(
            int(fields[b"seq"]),
            int(fields[b"index"]),
            float(fields[b"t"]),
            float(fields[b"ms"]),
            int(fields[b"skipped"]),
            objects,
            fields[b"notice"].decode() if b"notice" in fields else None,
        )


def pack_mask(mask: np.ndarray) -> bytes:
    return zlib.compress(np.packbits(mask, axis=None).tobytes(), 1)


def unpack_mask(data: bytes, height: int, width: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(zlib.decompress(data), np.uint8), count=height * width)
    return bits.reshape(height, width).astype(bool)


# --- control -----------------------------------------------------------------------------

END_COMMAND = {"type": "end"}


def control_fields(command: dict) -> dict:
    return {"cmd": json.dumps(command)}


def control_from_fields(fields: dict[bytes, bytes]) -> dict:
    return json.loads(fields[b"cmd"])
