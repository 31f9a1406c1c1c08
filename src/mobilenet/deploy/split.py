"""Memory-efficient inference for MobileNetV2 (Sandler et al. 2018, sec. 5.1).

Each inverted residual block is one operation F(x) = sum_i project_i(depthwise_i(expand_i(x))) over
`splits` channel groups of its expanded tensor: every group is expanded, filtered and projected, and its
projection is accumulated into the block's output, so only one group of the t-times-wider tensor is ever
alive. The stem acts as the first block's expansion (that block has t = 1), and the 1x1 head is split the
same way because global pooling consumes it channel by channel. Multiply-adds do not depend on `splits`.

Tensors are channels-last: a 1x1 conv is then one matrix multiply on a (N*H*W, C) view, written into
preallocated outputs with `addmm_`, and depthwise convs allocate only their output. Every intermediate
is dropped as soon as it is dead, so the peak matches `mobilenet.memory.split_memory`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from mobilenet.layers import ConvBNAct, InvertedResidual
from mobilenet.memory import check_splittable, fuses_stem, groups_of
from mobilenet.models import MobileNet, check_input


def _folded(layer: ConvBNAct) -> tuple[Tensor, Tensor]:
    """The conv's weight and bias with its (eval-mode) BatchNorm folded in."""
    bn = layer.bn
    assert bn.running_mean is not None and bn.running_var is not None
    w, b = fuse_conv_bn_weights(
        layer.conv.weight, layer.conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    )
    return w.detach(), b.detach()


def _activation(name: str) -> Callable[[Tensor], Tensor] | None:
    if name == "relu6":
        return lambda t: t.clamp_(0.0, 6.0)
    if name == "relu":
        return lambda t: t.clamp_(min=0.0)
    return None  # linear


def _rows(t: Tensor) -> Tensor:
    """A channels-last (N, C, H, W) tensor as its (N*H*W, C) matrix, without copying."""
    n, c, h, w = t.shape
    if not t.is_contiguous(memory_format=torch.channels_last):
        raise RuntimeError("internal error: expected a channels-last tensor")
    return t.permute(0, 2, 3, 1).view(n * h * w, c)


def _empty_like_nhwc(n: int, c: int, h: int, w: int, like: Tensor) -> Tensor:
    return torch.empty((n, h, w, c), dtype=like.dtype, device=like.device).permute(0, 3, 1, 2)


@dataclass
class _Group:
    """One channel group of a block's inner tensor: its slices of the three folded convs."""

    expand_w: Tensor | None  # (C_in, g) for the 1x1 matmul, or a (g, C_in, k, k) stem conv weight
    expand_b: Tensor | None
    depthwise_w: Tensor  # (g, 1, 3, 3)
    depthwise_b: Tensor
    project_w: Tensor  # (g, C_out)
    in_range: tuple[int, int]  # the group's channels, for a block without expansion


@dataclass
class _Block:
    groups: list[_Group]
    project_b: Tensor
    stride: int
    out_channels: int
    residual: bool
    stem_stride: int = 0  # > 0: the group's "expansion" is this stride-s 3x3 stem conv (first-layer trick)


class SplitInference(nn.Module):
    """Inference-only MobileNetV2 whose inverted residuals never materialise their expanded tensors.

    Build it from a trained model (BN is folded from its eval statistics); `splits` is t, the number of
    channel groups each inner tensor is computed in (blocks narrower than t use one channel per group).
    Outputs equal `model.eval()(x)` up to float reassociation.
    """

    def __init__(self, model: MobileNet, splits: int = 1) -> None:
        super().__init__()
        config = model.config
        check_splittable(config, splits)
        self.config, self.spec, self.splits = config, model.spec, splits
        self._act = _activation(config.activation)
        self._bottleneck_act = _activation(config.bottleneck)
        blocks = list(model.blocks)
        self._blocks: list[_Block] = []
        if fuses_stem(config):
            self._blocks.append(self._plan(blocks[0], model.stem))
            blocks = blocks[1:]
        else:
            self._stem = _folded(model.stem)
        self._blocks += [self._plan(b) for b in blocks]
        head = model.head
        assert isinstance(head, ConvBNAct)
        hw, hb = _folded(head)
        self._head = [(hw[a:b, :, 0, 0].t(), hb[a:b], (a, b)) for a, b in groups_of(hw.shape[0], splits)]
        self._classifier = (model.classifier.weight.detach(), model.classifier.bias.detach())

    def _plan(self, module: nn.Module, stem: ConvBNAct | None = None) -> _Block:
        block = module
        assert isinstance(block, InvertedResidual)
        dw, db = _folded(block.depthwise)
        pw, pb = _folded(block.project)
        pw = pw[:, :, 0, 0].t().contiguous()  # (hidden, out): a group's rows are contiguous
        ew: Tensor | None = None
        eb: Tensor | None = None
        if stem is not None:
            ew, eb = _folded(stem)
        elif isinstance(block.expand, ConvBNAct):
            ew, eb = _folded(block.expand)
            ew = ew[:, :, 0, 0]
        groups = []
        for a, b in groups_of(dw.shape[0], self.splits):
            g_ew = None if ew is None else (ew[a:b] if stem is not None else ew[a:b].t())
            g_eb = None if eb is None else eb[a:b]
            groups.append(_Group(g_ew, g_eb, dw[a:b], db[a:b], pw[a:b], (a, b)))
        stride = block.depthwise.conv.stride[0]
        return _Block(
            groups, pb, stride, pw.shape[1], block.use_residual, stem.conv.stride[0] if stem is not None else 0
        )

    def _run_block(self, x: Tensor, block: _Block) -> Tensor:
        n, _, h, w = x.shape
        if block.stem_stride:
            h, w = -(-h // block.stem_stride), -(-w // block.stem_stride)
        oh, ow = -(-h // block.stride), -(-w // block.stride)
        out = _empty_like_nhwc(n, block.out_channels, oh, ow, x)
        acc = _rows(out)
        linear_skip = block.residual and self._bottleneck_act is None
        if linear_skip:
            acc.copy_(_rows(x)).add_(block.project_b)  # accumulate straight onto the shortcut
        else:
            acc.copy_(block.project_b.expand_as(acc))
        x_rows = None if block.stem_stride else _rows(x)
        for g in block.groups:
            inner = self._inner(x, x_rows, g, block, n, h, w)
            mid = F.conv2d(inner, g.depthwise_w, g.depthwise_b, block.stride, 1, 1, g.depthwise_w.shape[0])
            del inner
            if self._act is not None:
                self._act(mid)
            torch.addmm(acc, _rows(mid), g.project_w, out=acc)  # in place: beta * acc + mid @ w
            del mid
        if self._bottleneck_act is not None:
            self._bottleneck_act(acc)
            if block.residual:
                acc.add_(_rows(x))
        return out

    def _inner(self, x: Tensor, x_rows: Tensor | None, g: _Group, block: _Block, n: int, h: int, w: int) -> Tensor:
        """One group of the block's inner (expanded) tensor, channels-last, activation applied."""
        if block.stem_stride:
            assert g.expand_w is not None
            inner = F.conv2d(x, g.expand_w, g.expand_b, block.stem_stride, 1)
        elif g.expand_w is None:
            a, b = g.in_range
            return x[:, a:b] if (a, b) != (0, x.shape[1]) else x  # t = 1: the input is the inner tensor
        else:
            assert x_rows is not None and g.expand_b is not None
            rows = torch.addmm(g.expand_b, x_rows, g.expand_w)
            inner = rows.view(n, h, w, -1).permute(0, 3, 1, 2)
        if self._act is not None:
            self._act(inner)
        return inner

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        check_input(self.spec, x)
        x = x.contiguous(memory_format=torch.channels_last)
        if not self._blocks[0].stem_stride:
            sw, sb = self._stem
            x = F.conv2d(x, sw, sb, self.spec.stem_stride, 1)
            if self._act is not None:
                self._act(x)
        for block in self._blocks:
            x = self._run_block(x, block)
        n, _, h, w = x.shape
        x_rows = _rows(x)
        pooled = x.new_empty((n, self.spec.feature_channels))
        for hw_t, hb, (a, b) in self._head:
            part = torch.addmm(hb, x_rows, hw_t)
            if self._act is not None:
                self._act(part)
            pooled[:, a:b] = part.view(n, h * w, b - a).mean(1)
            del part
        del x, x_rows
        weight, bias = self._classifier
        return F.linear(pooled, weight, bias)

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> SplitInference:
        # The folded weights are plain tensors: moving them here would silently do nothing.
        raise NotImplementedError("build SplitInference from a model already on the device and dtype you want")
