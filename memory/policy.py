"""How many frames the memory bank keeps: the only knobs that bound its size."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MemoryPolicy:
    """Window sizes of the streaming memory bank.

    SAM 2 reads, for frame t: every prompted (conditioning) frame; the spatial memory of
    frames t-1 .. t-``num_recent_features``; the object pointers of frames
    t-1 .. t-``num_recent_pointers``. Everything older is evicted.
    """

    num_recent_features: int  # SAM 2: num_maskmem - 1 (6)
    num_recent_pointers: int  # SAM 2: max_obj_ptrs_in_encoder - 1 (15)

    def __post_init__(self) -> None:
        if self.num_recent_features < 0 or self.num_recent_pointers < 0:
            raise ValueError("memory windows must be non-negative")

    @property
    def window(self) -> int:
        """How many recent frames are kept at all (features or pointers)."""
        return max(self.num_recent_features, self.num_recent_pointers)

    @classmethod
    def for_sam2(cls, model: object) -> MemoryPolicy:
        """The exact windows the given ``SAM2Base`` model reads."""
        return cls(
            num_recent_features=max(int(model.num_maskmem) - 1, 0),
            num_recent_pointers=max(int(model.max_obj_ptrs_in_encoder) - 1, 0),
        )
