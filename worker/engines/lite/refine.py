"""Decode soft masks at source resolution, snapped to the image's edges and colours.

The stride-8 probabilities are upsampled and passed through a colour guided filter (He, Sun
and Tang, "Guided Image Filtering", 2010/2013) whose guide is the frame itself: inside every
``radius`` window the output is an affine function of the RGB colour fitted to the coarse
probability, so mask edges move onto colour edges. As in the "fast guided filter" the affine
coefficients are fitted at 1/``subsample`` resolution and applied to the full-resolution frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class RefineParams:
    """Guided-filter settings: window radius in source pixels, regulariser, fitting scale."""

    radius: int = 8
    eps: float = 1e-3
    subsample: int = 4


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    side = 2 * radius + 1
    return cv2.blur(x, (side, side), borderType=cv2.BORDER_REFLECT)


def _inverse3(c: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Element-wise inverse of symmetric 3x3 matrices given as nested lists of (h, w) maps."""
    a, b, d = c[0][0], c[0][1], c[0][2]
    e, f, i = c[1][1], c[1][2], c[2][2]
    m00, m01, m02 = e * i - f * f, d * f - b * i, b * f - d * e
    m11, m12, m22 = a * i - d * d, b * d - a * f, a * e - b * b
    inv_det = 1.0 / (a * m00 + b * m01 + d * m02)
    rows = [[m00, m01, m02], [m01, m11, m12], [m02, m12, m22]]
    return [[x * inv_det for x in row] for row in rows]


class GuidedFilter:
    """A colour guided filter for one frame, shared by all objects' probability maps."""

    def __init__(self, rgb: np.ndarray, params: RefineParams) -> None:
        """``rgb``: (H, W, 3) uint8 source frame (the guide)."""
        self.full = rgb.astype(np.float32) * (1.0 / 255.0)
        height, width = rgb.shape[:2]
        self.size = (max(1, height // params.subsample), max(1, width // params.subsample))
        self.radius = max(1, params.radius // params.subsample)
        small = cv2.resize(self.full, self.size[::-1], interpolation=cv2.INTER_AREA)
        self.small = [np.ascontiguousarray(small[..., k]) for k in range(3)]
        self.mean = [_box(ch, self.radius) for ch in self.small]
        cov = [[None] * 3 for _ in range(3)]
        for i in range(3):
            for j in range(i, 3):
                c = _box(self.small[i] * self.small[j], self.radius) - self.mean[i] * self.mean[j]
                if i == j:
                    c += params.eps
                cov[i][j] = cov[j][i] = c
        self.inv_cov = _inverse3(cov)

    def low_res(self, prob: torch.Tensor) -> np.ndarray:
        """(h8, w8) probabilities -> (h, w) float32 at the fitting resolution (bilinear)."""
        up = F.interpolate(
            prob[None, None].float(), size=self.size, mode="bilinear", align_corners=False
        )
        return up[0, 0].numpy()

    def apply(self, prob: torch.Tensor) -> np.ndarray:
        """(h8, w8) float probabilities -> (H, W) float32 refined probabilities."""
        p = self.low_res(prob)
        mean_p = _box(p, self.radius)
        cov_ip = [
            _box(ch * p, self.radius) - m * mean_p
            for ch, m in zip(self.small, self.mean, strict=True)
        ]
        a = [sum(self.inv_cov[i][j] * cov_ip[j] for j in range(3)) for i in range(3)]
        b = mean_p - sum(a[i] * self.mean[i] for i in range(3))
        coeffs = np.dstack([_box(x, self.radius) for x in (*a, b)])
        height, width = self.full.shape[:2]
        coeffs = cv2.resize(coeffs, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.einsum("hwi,hwi->hw", coeffs[..., :3], self.full) + coeffs[..., 3]
