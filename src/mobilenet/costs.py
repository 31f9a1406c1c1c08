"""Analytic, per-layer cost of a network spec: parameters, multiply-adds, output shape. No torch import.

Counting convention (the one every published MobileNet table uses):
- MACs are multiply-adds of conv and fully connected layers only, per image. BN, activations, residual
  adds and pooling count 0. One MAC is one multiply plus one add (torchvision's "GFLOPS" are MACs too).
- A conv's output side is ceil(input / stride), as TF "SAME" padding and PyTorch's pad = k // 2 both give.
- `weights` are conv weights plus the classifier's weights and bias; `bn_params` are BatchNorm's
  trainable gamma and beta. Their sum is what `sum(p.numel() for p in model.parameters())` gives.
  BN running mean/var (2 per channel) are buffers: Keras reports them as "non-trainable params".
"""

from __future__ import annotations

from dataclasses import dataclass

from mobilenet.config import ModelConfig
from mobilenet.specs import BlockSpec, NetworkSpec, check_resolution, network_spec, output_size


@dataclass(frozen=True)
class LayerCost:
    name: str  # the module path in the PyTorch model, e.g. "blocks.3.project"
    operator: str  # e.g. "conv3x3/2 relu6", "dw3x3 relu6", "conv1x1 linear", "avgpool", "linear"
    out_shape: tuple[int, int, int]  # (channels, height, width) of one image's output
    weights: int
    bn_params: int
    macs: int

    @property
    def params(self) -> int:
        return self.weights + self.bn_params

    @property
    def activations(self) -> int:
        """Elements in this layer's output for one image."""
        c, h, w = self.out_shape
        return c * h * w


@dataclass(frozen=True)
class Totals:
    params: int  # trainable: weights + BN gamma/beta
    params_without_bn: int
    bn_buffers: int  # BN running mean and variance
    macs: int
    activations: int  # sum of every layer's output elements, one image
    max_activation: int  # largest single layer output, one image


def conv_cost(
    name: str,
    in_channels: int,
    out_channels: int,
    kernel: int,
    in_size: int,
    *,
    stride: int = 1,
    groups: int = 1,
    activation: str = "relu6",
    note: str = "",
) -> LayerCost:
    """A conv with no bias followed by BN; `activation` is only a label ("linear" for none)."""
    out = output_size(in_size, stride)
    weights = (in_channels // groups) * out_channels * kernel * kernel
    kind = "dw" if groups == in_channels == out_channels and groups > 1 else "conv"
    operator = f"{kind}{kernel}x{kernel}{f'/{stride}' if stride > 1 else ''} {activation}{note}"
    return LayerCost(name, operator, (out_channels, out, out), weights, 2 * out_channels, weights * out * out)


def _block_costs(name: str, block: BlockSpec, size: int, spec: NetworkSpec) -> list[LayerCost]:
    act = spec.config.activation
    if block.kind == "conv":
        return [conv_cost(name, block.in_channels, block.out_channels, 3, size, stride=block.stride, activation=act)]
    if block.kind == "separable":
        dw = conv_cost(
            f"{name}.depthwise",
            block.in_channels,
            block.in_channels,
            3,
            size,
            stride=block.stride,
            groups=block.in_channels,
            activation=act,
        )
        pw = conv_cost(f"{name}.pointwise", block.in_channels, block.out_channels, 1, dw.out_shape[1], activation=act)
        return [dw, pw]
    hidden = block.hidden_channels
    skip = " +skip" if block.use_residual else ""
    if block.kind == "classic":
        reduce = conv_cost(f"{name}.reduce", block.in_channels, hidden, 1, size, activation=act)
        dw = conv_cost(f"{name}.depthwise", hidden, hidden, 3, size, stride=block.stride, groups=hidden, activation=act)
        expand = conv_cost(
            f"{name}.expand", hidden, block.out_channels, 1, dw.out_shape[1], activation="linear", note=skip
        )
        return [reduce, dw, expand]
    layers = []
    if block.has_expand:
        note = " +skip(expanded)" if block.expansion_skip else ""
        layers.append(conv_cost(f"{name}.expand", block.in_channels, hidden, 1, size, activation=act, note=note))
    dw = conv_cost(f"{name}.depthwise", hidden, hidden, 3, size, stride=block.stride, groups=hidden, activation=act)
    project_act = "linear" if spec.config.bottleneck == "linear" else act
    project = conv_cost(
        f"{name}.project", hidden, block.out_channels, 1, dw.out_shape[1], activation=project_act, note=skip
    )
    return [*layers, dw, project]


def spec_costs(spec: NetworkSpec, resolution: int = 224) -> list[LayerCost]:
    """Per-layer costs of `spec` for square `resolution` x `resolution` inputs, in execution order."""
    check_resolution(spec, resolution)
    act = spec.config.activation
    stem = conv_cost(
        "stem", spec.in_channels, spec.stem_channels, 3, resolution, stride=spec.stem_stride, activation=act
    )
    layers = [stem]
    size = stem.out_shape[1]
    for i, block in enumerate(spec.blocks):
        layers += _block_costs(f"blocks.{i}", block, size, spec)
        size = layers[-1].out_shape[1]
    if spec.head_channels is not None:
        layers.append(conv_cost("head", spec.blocks[-1].out_channels, spec.head_channels, 1, size, activation=act))
    features, classes = spec.feature_channels, spec.config.num_classes
    layers.append(LayerCost("pool", f"avgpool{size}x{size}", (features, 1, 1), 0, 0, 0))
    layers.append(
        LayerCost("classifier", "linear", (classes, 1, 1), features * classes + classes, 0, features * classes)
    )
    return layers


def model_costs(config: ModelConfig, resolution: int = 224) -> list[LayerCost]:
    """Per-layer costs of the network `config` describes (see the module docstring for conventions)."""
    return spec_costs(network_spec(config), resolution)


def totals(layers: list[LayerCost]) -> Totals:
    return Totals(
        params=sum(layer.params for layer in layers),
        params_without_bn=sum(layer.weights for layer in layers),
        bn_buffers=sum(layer.bn_params for layer in layers),  # 2 per channel, like gamma/beta
        macs=sum(layer.macs for layer in layers),
        activations=sum(layer.activations for layer in layers),
        max_activation=max(layer.activations for layer in layers),
    )


@dataclass(frozen=True)
class SeparableComparison:
    """One layer as a standard conv vs a depthwise separable conv (Howard et al. 2017, sec. 3.1)."""

    kernel: int  # D_K
    in_channels: int  # M
    out_channels: int  # N
    feature_size: int  # D_F, the output feature map side

    @property
    def standard(self) -> int:
        """D_K^2 * M * N * D_F^2 multiply-adds."""
        return self.kernel**2 * self.in_channels * self.out_channels * self.feature_size**2

    @property
    def depthwise(self) -> int:
        """D_K^2 * M * D_F^2: one k x k filter per input channel."""
        return self.kernel**2 * self.in_channels * self.feature_size**2

    @property
    def pointwise(self) -> int:
        """M * N * D_F^2: the 1x1 conv that mixes channels."""
        return self.in_channels * self.out_channels * self.feature_size**2

    @property
    def separable(self) -> int:
        return self.depthwise + self.pointwise

    @property
    def ratio(self) -> float:
        """separable / standard, which simplifies to 1/N + 1/D_K^2."""
        return self.separable / self.standard

    def standard_params(self, bias: bool = False) -> int:
        """D_K^2 * M * N weights (+ N biases)."""
        return self.kernel**2 * self.in_channels * self.out_channels + (self.out_channels if bias else 0)

    def depthwise_params(self, bias: bool = False) -> int:
        """D_K^2 * M weights (+ M biases)."""
        return self.kernel**2 * self.in_channels + (self.in_channels if bias else 0)

    def pointwise_params(self, bias: bool = False) -> int:
        """M * N weights (+ N biases)."""
        return self.in_channels * self.out_channels + (self.out_channels if bias else 0)

    def separable_params(self, bias: bool = False) -> int:
        return self.depthwise_params(bias) + self.pointwise_params(bias)


def compare_separable(kernel: int, in_channels: int, out_channels: int, feature_size: int) -> SeparableComparison:
    for name, value in (
        ("kernel", kernel),
        ("in_channels", in_channels),
        ("out_channels", out_channels),
        ("feature_size", feature_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return SeparableComparison(kernel, in_channels, out_channels, feature_size)
