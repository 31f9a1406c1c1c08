"""The papers' architecture tables as data, the width rules, and their expansion into block specs.

No torch import: the cost model and the CLI use this in milliseconds.

Howard et al. 2017, "MobileNets" (arXiv:1704.04861), Table 1.
Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks" (arXiv:1801.04381), Table 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from mobilenet.config import ModelConfig


class IRStage(NamedTuple):
    t: int  # expansion factor
    c: int  # output channels at width 1.0
    n: int  # number of blocks in the stage
    s: int  # stride of the stage's first block (the others use 1)


# Sandler et al. 2018, Table 2: the rows between the 3x3 stem (32 ch) and the 1x1 head (1280 ch).
V2_STEM = 32
V2_STAGES: tuple[IRStage, ...] = (
    IRStage(1, 16, 1, 1),
    IRStage(6, 24, 2, 2),
    IRStage(6, 32, 3, 2),
    IRStage(6, 64, 4, 2),
    IRStage(6, 96, 3, 1),
    IRStage(6, 160, 3, 2),
    IRStage(6, 320, 1, 1),
)
V2_HEAD = 1280

# Howard et al. 2017, Table 1: (out channels, stride) of each depthwise-separable layer after the
# 3x3/2 stem (32 ch). The paper prints s2 for the last dw layer, but its 7x7 output implies s1; TF-Slim
# uses 1 too.
V1_STEM = 32
V1_LAYERS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    *((512, 1),) * 5, (1024, 2), (1024, 1),
)  # fmt: skip

STEM_STRIDE = 2


def make_divisible(value: float, divisor: int = 8) -> int:
    """Nearest multiple of `divisor` (ties round up), at least `divisor`, never >10% below `value`.

    The V2 rounding rule of TF-Slim's `_make_divisible`, also used by torchvision, timm and Keras.
    """
    nearest = divisor * int(value / divisor + 0.5)
    result = max(divisor, nearest)
    return result + divisor if result < 0.9 * value else result


def v1_channels(channels: int, width: float) -> int:
    """V1 width rule: truncate, at least 8 (TF-Slim `mobilenet_v1.py`: max(int(d * alpha), min_depth))."""
    return max(int(channels * width), 8)


def v2_channels(channels: int, width: float) -> int:
    """V2 width rule for the stem and every stage: `make_divisible(c * alpha, 8)` (TF-Slim, torchvision)."""
    return make_divisible(channels * width)


def v2_head_channels(width: float) -> int:
    """V2's last 1x1 conv keeps 1280 channels for width < 1 and is scaled above 1 (V2 paper, sec. 6.1)."""
    return make_divisible(V2_HEAD * max(1.0, width))


@dataclass(frozen=True)
class BlockSpec:
    """One block of a network, with its channels already rounded.

    kind: "separable" (V1 dw 3x3 + pw 1x1), "conv" (one full 3x3 conv: Conv MobileNet),
    "inverted" (V2: expand, depthwise, linear project) or "classic" (reduce, depthwise, expand).
    hidden_channels: the middle width of an inverted (expanded) or classic (reduced) block; an inverted
    block with hidden == in has no expansion conv (t = 1, as in TF-Slim; adding one costs 12.8M MACs).
    use_residual: output = input + block(input) (stride 1 and in == out, unless disabled).
    expansion_skip: the previous block's expanded tensor is added to this block's (Fig. 6b ablation).
    """

    kind: str
    in_channels: int
    out_channels: int
    stride: int
    hidden_channels: int = 0
    use_residual: bool = False
    expansion_skip: bool = False

    @property
    def has_expand(self) -> bool:
        return self.kind == "inverted" and self.hidden_channels != self.in_channels


@dataclass(frozen=True)
class NetworkSpec:
    """A whole network: the stem, the blocks, the optional 1x1 head conv, pooling and the classifier."""

    config: ModelConfig
    stem_channels: int
    stem_stride: int
    blocks: tuple[BlockSpec, ...]
    head_channels: int | None  # V2's final 1x1 conv; V1 has none

    in_channels: int = 3

    @property
    def feature_channels(self) -> int:
        return self.head_channels if self.head_channels is not None else self.blocks[-1].out_channels

    @property
    def total_stride(self) -> int:
        return self.stem_stride * math.prod(b.stride for b in self.blocks)


def _strides(config: ModelConfig, table_strides: list[int]) -> list[int]:
    """The table's strides, with the first stride-2 block demoted to 1 for the CIFAR variants.

    Common CIFAR ports (e.g. kuangliu/pytorch-cifar) keep 32x32 inputs from shrinking to 1x1: stride 1
    in the stem and in the first strided block, so the network downsamples 8x (32 -> 4), not 32x.
    """
    if config.cifar:
        first = table_strides.index(2)
        return [1 if i == first else s for i, s in enumerate(table_strides)]
    return table_strides


def _v1_blocks(config: ModelConfig, in_channels: int) -> list[BlockSpec]:
    kind = "conv" if config.arch == "conv_mobilenet" else "separable"
    strides = _strides(config, [s for _, s in V1_LAYERS])
    blocks = []
    for (channels, _), stride in zip(V1_LAYERS, strides, strict=True):
        out_channels = v1_channels(channels, config.width)
        blocks.append(BlockSpec(kind, in_channels, out_channels, stride))
        in_channels = out_channels
    return blocks


def _v2_blocks(config: ModelConfig, in_channels: int) -> list[BlockSpec]:
    rows = [(t, c, s if i == 0 else 1) for t, c, n, s in V2_STAGES for i in range(n)]
    strides = _strides(config, [s for _, _, s in rows])
    blocks: list[BlockSpec] = []
    for (t, c, _), stride in zip(rows, strides, strict=True):
        narrow = v2_channels(c, config.width)
        if config.block == "classic":
            # Wide-narrow-wide: the skip joins the wide ends, which carry t times the table's width.
            wide = narrow if t == 1 else make_divisible(narrow * t)
            residual = stride == 1 and in_channels == wide and config.shortcut != "none"
            blocks.append(BlockSpec("classic", in_channels, wide, stride, narrow, residual))
            in_channels = wide
            continue
        # The expanded width is computed from the already-rounded input channels (TF-Slim).
        hidden = in_channels if t == 1 else make_divisible(in_channels * t)
        residual = stride == 1 and in_channels == narrow
        prev = blocks[-1] if blocks else None
        # Fig. 6b "shortcut between expansions": join this block's expanded tensor to the previous
        # block's wherever the bottleneck shortcut would have joined their narrow ends.
        expansion_skip = (
            config.shortcut == "expansion"
            and prev is not None
            and prev.stride == 1
            and prev.in_channels == prev.out_channels
            and prev.hidden_channels == hidden
            and hidden != in_channels
        )
        use_residual = residual and config.shortcut == "bottleneck"
        blocks.append(BlockSpec("inverted", in_channels, narrow, stride, hidden, use_residual, expansion_skip))
        in_channels = narrow
    return blocks


def network_spec(config: ModelConfig) -> NetworkSpec:
    """Expand the paper table of `config.arch` into concrete blocks at `config.width`."""
    v2 = config.arch == "mobilenet_v2"
    stem = v2_channels(V2_STEM, config.width) if v2 else v1_channels(V1_STEM, config.width)
    blocks = _v2_blocks(config, stem) if v2 else _v1_blocks(config, stem)
    head = v2_head_channels(config.width) if v2 else None
    return NetworkSpec(config, stem, 1 if config.cifar else STEM_STRIDE, tuple(blocks), head)


def output_size(size: int, stride: int) -> int:
    """Spatial size after a 'SAME'-padded conv: ceil(size / stride) (pad k // 2 gives the same for k odd)."""
    return -(-size // stride)


def check_resolution(spec: NetworkSpec, resolution: int) -> None:
    """Raise ValueError unless `resolution` survives every stride with at least one real pixel each."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive integer, got {resolution!r}")
    if resolution < spec.total_stride:
        raise ValueError(
            f"resolution {resolution} is too small for {spec.config.arch}"
            f"{' (cifar)' if spec.config.cifar else ''}: its strides downsample {spec.total_stride}x, "
            f"so inputs must be at least {spec.total_stride}x{spec.total_stride}"
        )
