"""Motion prior for the lite engine: dense optical flow from the current to the previous frame.

OpenCV's DIS optical flow (Kroeger et al., "Fast Optical Flow using Dense Inverse Search",
ECCV 2016; ``cv2.DISOpticalFlow``) runs on the grey frame at the processing size. The flow,
averaged onto the stride-8 grid, is used two ways:

* ``warp``: the previous frame's keys and soft masks are resampled where each current cell came
  from, so the local search window of that memory frame is centred on the motion-compensated
  position (camera pans and fast objects stay inside the window);
* ``gate``: the previous soft mask, warped and dilated by ``gate_margin`` cells, multiplies the
  readout's foreground (never below ``gate_floor``), so look-alikes far from where the object
  is going lose to the background.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class MotionParams:
    """``warp``: centre the previous frame's search on the flow; ``gate_floor`` < 1 enables the
    spatial gate (1.0: off); ``gate_margin``: its dilation in stride-8 cells."""

    warp: bool = False
    gate_floor: float = 1.0
    gate_margin: int = 3

    @property
    def enabled(self) -> bool:
        return self.warp or self.gate_floor < 1.0


def grey(image: torch.Tensor) -> np.ndarray:
    """(1, 3, h, w) float32 RGB 0..255 network input -> (h, w) uint8 grey."""
    rgb = image[0].permute(1, 2, 0).clamp(0, 255).to(torch.uint8).numpy()
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


class FlowField:
    """Backward flow of one frame on the stride-8 grid, as a ``grid_sample`` sampling grid."""

    def __init__(self, previous: np.ndarray, current: np.ndarray, grid: tuple[int, int]):
        """``previous``, ``current``: (h, w) uint8 grey at the processing size; ``grid``: the
        stride-8 (h8, w8). Flow is computed current -> previous (where each pixel came from)."""
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        flow = dis.calc(current, previous, None)  # (h, w, 2) pixels
        h8, w8 = grid
        cells = cv2.resize(flow, (w8, h8), interpolation=cv2.INTER_AREA)
        scale = np.array([w8 / current.shape[1], h8 / current.shape[0]], np.float32)
        self.cells = torch.from_numpy(cells * scale)  # (h8, w8, 2) in stride-8 cells
        ys, xs = torch.meshgrid(
            torch.arange(h8, dtype=torch.float32),
            torch.arange(w8, dtype=torch.float32),
            indexing="ij",
        )
        x = (xs + self.cells[..., 0] + 0.5) / w8 * 2 - 1
        y = (ys + self.cells[..., 1] + 0.5) / h8 * 2 - 1
        self.grid = torch.stack([x, y], dim=-1)[None]  # (1, h8, w8, 2)

    def warp(self, x: torch.Tensor) -> torch.Tensor:
        """(C, h8, w8) on the previous frame -> (C, h8, w8) resampled onto the current one."""
        out = F.grid_sample(
            x[None].float(), self.grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        return out[0]


def gate(warped: torch.Tensor, params: MotionParams) -> torch.Tensor:
    """(h8, w8) warped previous soft mask -> (h8, w8) multiplier in [gate_floor, 1]."""
    if float(warped.max()) < 0.5:  # the object was lost: no prior, let the readout find it
        return torch.ones_like(warped)
    side = 2 * params.gate_margin + 1
    grown = F.max_pool2d(warped[None, None], side, stride=1, padding=params.gate_margin)
    grown = F.avg_pool2d(
        grown, side, stride=1, padding=params.gate_margin, count_include_pad=False
    )[0, 0]
    return params.gate_floor + (1.0 - params.gate_floor) * grown.clamp(0.0, 1.0)
