"""Frozen EfficientNet-Lite0 features at strides 8 and 16, BN folded for fast CPU inference.

The trunk is the packaged ImageNet network up to the end of its stride-16 stage (blocks 0-10);
batch norms are folded into the convolutions, TensorFlow "SAME" padding is kept exactly
(explicit asymmetric padding only where a stride-2 convolution needs it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from worker.engines.lite.efficientnet_lite0 import (
    MEAN,
    STD,
    EfficientNetLite0,
    MBConvBlock,
    SameConv2d,
)

STRIDE8_BLOCK = 4  # last block of the stride-8 stage (40 channels)
STRIDE16_BLOCK = 10  # last block of the stride-16 stage (112 channels)
MAX_INPUT_PIXELS = 4 * 320 * 576  # 4x the area of 854x480 at the default short side


def fold_bn(conv: SameConv2d, bn: nn.BatchNorm2d) -> FusedConv:
    """A convolution with the following batch norm folded into its weight and bias."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    weight = conv.weight * scale[:, None, None, None]
    bias = bn.bias - bn.running_mean * scale
    return FusedConv(weight.detach(), bias.detach(), conv.stride[0], conv.groups)


class FusedConv(nn.Module):
    """Conv + folded BN with TensorFlow "SAME" padding. Weights: (O, I/groups, k, k) float32."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, stride: int, groups: int):
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False)
        self.stride = stride
        self.groups = groups
        self.kernel = weight.shape[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            pad = self.kernel // 2
            return F.conv2d(x, self.weight, self.bias, 1, pad, 1, self.groups)
        pads = []
        for size in (x.shape[-1], x.shape[-2]):
            total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel - size, 0)
            pads += [total // 2, total - total // 2]
        x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)


class FusedBlock(nn.Module):
    """An ``MBConvBlock`` with its three batch norms folded."""

    def __init__(self, block: MBConvBlock) -> None:
        super().__init__()
        self.expand = fold_bn(block._expand_conv, block._bn0) if block.has_expand else None
        self.depthwise = fold_bn(block._depthwise_conv, block._bn1)
        self.project = fold_bn(block._project_conv, block._bn2)
        self.residual = block.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.hardtanh_(self.expand(x), 0.0, 6.0) if self.expand is not None else x
        y = F.hardtanh_(self.depthwise(y), 0.0, 6.0)
        y = self.project(y)
        return y.add_(x) if self.residual else y


class LiteTrunk(nn.Module):
    """Stem + blocks 0-10 of EfficientNet-Lite0, returning the stride-8 and stride-16 maps."""

    def __init__(self, net: EfficientNetLite0) -> None:
        super().__init__()
        self.stem = fold_bn(net._conv_stem, net._bn0)
        self.blocks = nn.ModuleList(FusedBlock(b) for b in net._blocks[: STRIDE16_BLOCK + 1])
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("inv_std", 1.0 / (torch.tensor(STD).view(1, 3, 1, 1) * 255.0))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, 3, H, W) float32 RGB in 0..255 -> (1, 40, H/8, W/8), (1, 112, H/16, W/16)."""
        x = ((image - self.mean) * self.inv_std).contiguous(memory_format=torch.channels_last)
        x = F.hardtanh_(self.stem(x), 0.0, 6.0)
        f8 = x
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == STRIDE8_BLOCK:
                f8 = x
        return f8.contiguous(), x.contiguous()


@dataclass(frozen=True)
class FeatureParams:
    """How a frame becomes descriptors: processing size and the weight of each stride.

    ``short_side``: the frame is resized so its shorter side is this many pixels (rounded to
    a multiple of 16). ``weight8``/``weight16``: relative weight of the L2-normalised stride-8
    and (upsampled) stride-16 features in the concatenated descriptor. ``dims``: principal
    directions kept by the per-video ``Projection``.
    """

    short_side: int = 320
    weight8: float = 1.0
    weight16: float = 1.0
    dims: int = 64


def processing_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(h, w) of the network input: shorter side ~``short_side``, both multiples of 16, and at
    most about ``MAX_INPUT_PIXELS`` in all (scaled down further where it would be more; the
    rounding to 16 may add a few rows or columns).

    A frame's key patches grow with the processed area and the readout's score table with
    its square (every query meets every stride-16 position of the prompted frames), so
    without the bound a very wide or tall video (16x4000 -> 320x80,000) or a large
    ``--image-size`` would take gigabytes a frame. 854x480 at the default 320 is 320x576.
    """
    scale = min(short_side / min(height, width), math.sqrt(MAX_INPUT_PIXELS / (height * width)))
    return (
        max(16, int(round(height * scale / 16)) * 16),
        max(16, int(round(width * scale / 16)) * 16),
    )


def to_input(rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, h, w) float32 in 0..255, area-resized to ``size``."""
    import cv2

    if rgb.shape[:2] != size:
        rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()


def descriptors(f8: torch.Tensor, f16: torch.Tensor, params: FeatureParams) -> torch.Tensor:
    """Stride-8 descriptors: (1, 40, h, w), (1, 112, h/2, w/2) -> (152, h, w) unit vectors."""
    up = F.interpolate(f16, size=f8.shape[-2:], mode="bilinear", align_corners=False)
    parts = [F.normalize(f8, dim=1) * params.weight8, F.normalize(up, dim=1) * params.weight16]
    return F.normalize(torch.cat(parts, dim=1), dim=1)[0]


@dataclass(frozen=True)
class Projection:
    """Centring and PCA of the descriptors, fitted once on the first prompted frame.

    ``mean``: (C,) float32; ``basis``: (C, d) float32 orthonormal principal directions.
    Centring removes what every position shares, so cosine affinities separate object and
    background more; keeping the top ``d`` directions drops noise and makes the readout cheaper.
    """

    mean: torch.Tensor
    basis: torch.Tensor

    @classmethod
    def fit(cls, desc: torch.Tensor, dims: int) -> Projection:
        """(C, h, w) descriptors of one frame -> their mean and top-``dims`` directions."""
        x = desc.flatten(1).t().double()  # (N, C)
        mean = x.mean(dim=0)
        _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
        return cls(mean.float(), vh[: min(dims, vh.shape[0])].t().float().contiguous())

    def apply(self, desc: torch.Tensor) -> torch.Tensor:
        """(C, h, w) -> (d, h, w) float32 unit vectors."""
        c, h, w = desc.shape
        x = (desc.flatten(1).t() - self.mean) @ self.basis  # (N, d)
        return F.normalize(x.t().reshape(-1, h, w), dim=0)
