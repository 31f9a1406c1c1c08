"""MobileNetV1, the full-convolution "Conv MobileNet", and MobileNetV2, built from the specs.

Submodule names are stable checkpoint keys: `stem`, `blocks.{i}.<part>`, `head` (V2 only), `classifier`.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor, nn

from mobilenet.config import ModelConfig
from mobilenet.layers import ClassicBottleneck, ConvBNAct, DepthwiseSeparable, InvertedResidual
from mobilenet.specs import BlockSpec, NetworkSpec, network_spec


def _make_block(block: BlockSpec, config: ModelConfig) -> nn.Module:
    act, pad = config.activation, config.padding
    if block.kind == "separable":
        return DepthwiseSeparable(
            block.in_channels, block.out_channels, stride=block.stride, activation=act, padding=pad
        )
    if block.kind == "conv":
        return ConvBNAct(block.in_channels, block.out_channels, 3, stride=block.stride, activation=act, padding=pad)
    if block.kind == "classic":
        return ClassicBottleneck(
            block.in_channels,
            block.hidden_channels,
            block.out_channels,
            stride=block.stride,
            use_residual=block.use_residual,
            activation=act,
            padding=pad,
        )
    return InvertedResidual(
        block.in_channels,
        block.hidden_channels,
        block.out_channels,
        stride=block.stride,
        use_residual=block.use_residual,
        activation=act,
        bottleneck=config.bottleneck,
        padding=pad,
    )


def check_input(spec: NetworkSpec, x: Tensor) -> None:
    """Raise ValueError unless `x` is an (N, C, H, W) batch the network `spec` can take."""
    if x.dim() != 4 or x.shape[1] != spec.in_channels:
        raise ValueError(f"expected a batch of images shaped (N, {spec.in_channels}, H, W), got {tuple(x.shape)}")
    if min(x.shape[-2:]) < spec.total_stride:
        raise ValueError(
            f"input {tuple(x.shape[-2:])} is too small for {spec.config.arch}: its strides downsample "
            f"{spec.total_stride}x, so H and W must be at least {spec.total_stride}"
        )


class MobileNet(nn.Module):
    """stem -> blocks -> (head) -> global average pool -> dropout -> classifier, from a `NetworkSpec`.

    Any input size at least the network's total stride works (global pooling); inputs are (N, 3, H, W).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.spec: NetworkSpec = network_spec(config)
        spec = self.spec
        self.stem = ConvBNAct(
            spec.in_channels,
            spec.stem_channels,
            3,
            stride=spec.stem_stride,
            activation=config.activation,
            padding=config.padding,
        )
        self.blocks = nn.Sequential(*(_make_block(b, config) for b in spec.blocks))
        self.head: nn.Module = (
            nn.Identity()
            if spec.head_channels is None
            else ConvBNAct(spec.blocks[-1].out_channels, spec.head_channels, 1, activation=config.activation)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(spec.feature_channels, config.num_classes)
        # Only the Fig. 6b ablation threads expanded tensors from block to block.
        self._expansion_skips = [b.expansion_skip for b in spec.blocks]
        self._uses_expansion_skips = any(self._expansion_skips)
        _init_weights(self)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = config.bn_eps

    def freeze_backbone(self) -> None:
        """Train the classifier only: every other parameter stops learning and every BN keeps its
        running statistics (train() leaves them in eval mode), as in the usual fine-tuning recipe."""
        self._frozen = True
        for name, param in self.named_parameters():
            param.requires_grad = name.startswith("classifier.")
        self.train(self.training)

    def train(self, mode: bool = True) -> MobileNet:
        super().train(mode)
        if getattr(self, "_frozen", False):
            for module in (self.stem, self.blocks, self.head):
                module.eval()
        return self

    def _check_input(self, x: Tensor) -> None:
        check_input(self.spec, x)

    def _run_blocks(self, x: Tensor) -> Tensor:
        if not self._uses_expansion_skips:
            return self.blocks(x)
        carry: Tensor | None = None
        for module, joins in zip(self.blocks, self._expansion_skips, strict=True):
            block = cast(InvertedResidual, module)
            hidden = block.expand(x)
            if joins and carry is not None:
                hidden = hidden + carry
            x = block.project(block.depthwise(hidden))
            carry = hidden
        return x

    def forward_features(self, x: Tensor) -> Tensor:
        """The final feature map, before pooling: (N, C, ceil(H / stride), ceil(W / stride))."""
        self._check_input(x)
        return self.head(self._run_blocks(self.stem(x)))

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.forward_features(x)).flatten(1)
        return self.classifier(self.dropout(x))


class MobileNetV1(MobileNet):
    """Howard et al. 2017, Table 1 (arch "mobilenet_v1"), or its Table 4 full-conv twin ("conv_mobilenet")."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        config = config or ModelConfig(arch="mobilenet_v1")
        if config.arch not in ("mobilenet_v1", "conv_mobilenet"):
            raise ValueError(f"MobileNetV1 builds mobilenet_v1 or conv_mobilenet, got arch={config.arch!r}")
        super().__init__(config)


class MobileNetV2(MobileNet):
    """Sandler et al. 2018, Table 2: inverted residuals with linear bottlenecks."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        config = config or ModelConfig(arch="mobilenet_v2")
        if config.arch != "mobilenet_v2":
            raise ValueError(f"MobileNetV2 builds mobilenet_v2, got arch={config.arch!r}")
        super().__init__(config)


BUILDERS: dict[str, type[MobileNet]] = {
    "mobilenet_v1": MobileNetV1,
    "conv_mobilenet": MobileNetV1,
    "mobilenet_v2": MobileNetV2,
}


def build_model(config: ModelConfig) -> MobileNet:
    return BUILDERS[config.arch](config)


def _pretrained(arch: str, weights: str, width: float | None, num_classes: int | None, dropout: float) -> Any:
    from mobilenet.weights import load_pretrained

    name = f"{arch}_{float(width or 1.0)}" if weights == "DEFAULT" else weights
    changes: dict[str, Any] = {"arch": arch, "dropout": dropout}
    if width is not None:
        changes["width"] = width
    model, _ = load_pretrained(name, num_classes=num_classes, **changes)
    return model


def mobilenet_v1(
    width: float | None = None,
    num_classes: int | None = None,
    *,
    dropout: float = 0.2,
    cifar: bool = False,
    weights: str | None = None,
) -> MobileNetV1:
    """MobileNet V1 (default width 1.0, 1000 classes). `weights`: a registry name (`mobilenet weights
    list`), "DEFAULT" (the best published file for this width) or a converted .safetensors file; with
    them, a different `num_classes` gets a new classifier for fine-tuning."""
    if weights:
        return cast(MobileNetV1, _pretrained("mobilenet_v1", weights, width, num_classes, dropout))
    return MobileNetV1(ModelConfig("mobilenet_v1", *_defaults(width, num_classes), dropout, cifar))


def conv_mobilenet(
    width: float = 1.0, num_classes: int = 1000, *, dropout: float = 0.2, cifar: bool = False
) -> MobileNetV1:
    return MobileNetV1(ModelConfig("conv_mobilenet", width, num_classes, dropout, cifar))


def mobilenet_v2(
    width: float | None = None,
    num_classes: int | None = None,
    *,
    dropout: float = 0.2,
    cifar: bool = False,
    weights: str | None = None,
) -> MobileNetV2:
    """MobileNet V2 (default width 1.0, 1000 classes); `weights` as for `mobilenet_v1`."""
    if weights:
        return cast(MobileNetV2, _pretrained("mobilenet_v2", weights, width, num_classes, dropout))
    return MobileNetV2(ModelConfig("mobilenet_v2", *_defaults(width, num_classes), dropout, cifar))


def _defaults(width: float | None, num_classes: int | None) -> tuple[float, int]:
    """None means the paper's default; any other value, 0 included, is checked by `ModelConfig`."""
    return (1.0 if width is None else width), (1000 if num_classes is None else num_classes)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def _init_weights(model: nn.Module) -> None:
    """torchvision's MobileNetV2 scheme: He (fan-out) for convs, N(0, 0.01) for the classifier."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
