"""The building blocks, one class per idea.

ConvBNAct: conv + BatchNorm + optional activation (BN everywhere: both papers).
DepthwiseSeparable: Howard et al. 2017, Fig. 3 (3x3 depthwise then 1x1 pointwise, each with BN + act).
InvertedResidual: Sandler et al. 2018, Table 1 (1x1 expand + act, 3x3 depthwise + act, linear 1x1 project).
ClassicBottleneck: the wide-narrow-wide residual block the V2 paper contrasts with (Fig. 3a).
"""

from __future__ import annotations

import copy
from typing import TypeVar

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

M = TypeVar("M", bound=nn.Module)


def make_activation(name: str | None) -> nn.Module:
    """ReLU6 = min(max(0, x), 6) (robust under low-precision arithmetic: V2 sec. 3.2); None is linear."""
    if name is None or name == "linear":
        return nn.Identity()
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "relu":
        return nn.ReLU(inplace=True)
    raise ValueError(f"unknown activation {name!r}; expected relu6, relu or linear")


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding of one axis: (before, after), the odd pixel after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class ConvBNAct(nn.Module):
    """The only place that knows padding is kernel // 2 and that a conv before BN has no bias.

    padding="tf-same" pads a strided conv like TensorFlow (0 before and 1 after for a 3x3/2 conv on
    an even input), so weights trained in Keras or TF-Slim give their own outputs here.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        groups: int = 1,
        activation: str | None = "relu6",
        padding: str = "symmetric",
    ) -> None:
        super().__init__()
        # Stride 1: TF's SAME is symmetric too, so only strided convs pad themselves in forward().
        self.tf_same = padding in ("tf-same", "keras-v1") and stride > 1
        # Keras' MobileNet (V1) pads its strided depthwise convs by (0, 1) on both axes at every input size
        self.keras_v1_depthwise = padding == "keras-v1" and stride > 1 and groups > 1
        # pad k // 2 so a stride-2 layer gives ceil(h / 2), like TF "SAME" (the cost model assumes it)
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size=kernel_size,
            stride=stride,
            padding=0 if self.tf_same else kernel_size // 2,
            groups=groups,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = make_activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        if self.keras_v1_depthwise:
            x = F.pad(x, (0, 1, 0, 1))
        elif self.tf_same:
            k, s = self.conv.kernel_size[0], self.conv.stride[0]
            top, bottom = tf_same_padding(x.shape[-2], k, s)
            left, right = tf_same_padding(x.shape[-1], k, s)
            x = F.pad(x, (left, right, top, bottom))
        return self.act(self.bn(self.conv(x)))


class DepthwiseSeparable(nn.Module):
    """V1 block: per-channel 3x3 filtering, then a 1x1 conv that combines channels."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        activation: str = "relu6",
        padding: str = "symmetric",
    ) -> None:
        super().__init__()
        self.depthwise = ConvBNAct(
            in_channels, in_channels, 3, stride=stride, groups=in_channels, activation=activation, padding=padding
        )
        self.pointwise = ConvBNAct(in_channels, out_channels, 1, activation=activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


def _check_residual(use_residual: bool, stride: int, in_channels: int, out_channels: int) -> None:
    """A skip connection adds the input to the output, so both must have the same shape."""
    if use_residual and (stride != 1 or in_channels != out_channels):
        raise ValueError(
            f"a residual needs stride 1 and in == out channels, got stride={stride}, "
            f"in_channels={in_channels}, out_channels={out_channels}"
        )


class InvertedResidual(nn.Module):
    """V2 block: narrow -> wide (expand) -> depthwise -> narrow (project), skip between the narrow ends.

    `hidden_channels == in_channels` means t = 1: there is no expansion conv (TF-Slim, torchvision).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        use_residual: bool = True,
        activation: str = "relu6",
        bottleneck: str = "linear",
        padding: str = "symmetric",
    ) -> None:
        super().__init__()
        _check_residual(use_residual, stride, in_channels, out_channels)
        self.use_residual = use_residual
        self.expand = (
            nn.Identity()
            if hidden_channels == in_channels
            else ConvBNAct(in_channels, hidden_channels, 1, activation=activation)
        )
        self.depthwise = ConvBNAct(
            hidden_channels,
            hidden_channels,
            3,
            stride=stride,
            groups=hidden_channels,
            activation=activation,
            padding=padding,
        )
        # Linear bottleneck: a ReLU on the low-dimensional projection would destroy information
        # (V2 sec. 3.2); bottleneck="relu6" exists only for the Fig. 6a ablation.
        self.project = ConvBNAct(hidden_channels, out_channels, 1, activation=bottleneck)

    def forward(self, x: Tensor) -> Tensor:
        y = self.project(self.depthwise(self.expand(x)))  # expand is nn.Identity() when t == 1
        return x + y if self.use_residual else y


class ClassicBottleneck(nn.Module):
    """Wide -> narrow (reduce) -> depthwise -> wide (expand, linear), skip between the wide ends.

    The residual bottleneck of ResNet-style networks, with the same depthwise 3x3 as the inverted block,
    so an ablation changes only which ends the shortcut joins (V2 paper, Fig. 3).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        use_residual: bool = True,
        activation: str = "relu6",
        padding: str = "symmetric",
    ) -> None:
        super().__init__()
        _check_residual(use_residual, stride, in_channels, out_channels)
        self.use_residual = use_residual
        self.reduce = ConvBNAct(in_channels, hidden_channels, 1, activation=activation)
        self.depthwise = ConvBNAct(
            hidden_channels,
            hidden_channels,
            3,
            stride=stride,
            groups=hidden_channels,
            activation=activation,
            padding=padding,
        )
        self.expand = ConvBNAct(hidden_channels, out_channels, 1, activation=None)

    def forward(self, x: Tensor) -> Tensor:
        y = self.expand(self.depthwise(self.reduce(x)))
        return x + y if self.use_residual else y


def fold_bn(model: M) -> M:
    """An eval-mode copy with every BatchNorm folded into the conv before it (the conv gains a bias): the
    same function with one op fewer per layer, for inference (exports, and evaluation during training)."""
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if isinstance(module, ConvBNAct) and isinstance(module.bn, nn.BatchNorm2d):
            if module.bn.running_mean is None:
                continue  # no statistics to fold
            module.conv = fuse_conv_bn_eval(module.conv, module.bn)
            module.bn = nn.Identity()  # type: ignore[assignment]
    return folded
