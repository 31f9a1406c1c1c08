"""Where each peer keeps each of our tensors: explicit tables generated from our network spec.

A table row is (our module, their name, kind). The kind says which tensors the module holds and how
they are laid out; the peer says how it names them:

- torchvision / timm: PyTorch modules, OIHW kernels; BN `weight bias running_mean running_var`, eps 1e-5.
- keras (Keras Applications): layers `<name>/kernel` in HWIO (depthwise: H, W, C, 1), BN
  `gamma beta moving_mean moving_variance` with eps 1e-3, V2 classifier a Dense (in, out), V1 classifier
  a 1x1 conv with bias; stride-2 convs pad like TF "SAME".
- slim (TF-Slim checkpoints): `<scope>/weights` (depthwise: `depthwise_weights`), `<scope>/BatchNorm/...`,
  eps 1e-3, classifier `Logits/Conv2d_1c_1x1` as a 1x1 conv with 1001 classes (0 is "background").

Layouts exist for the papers' networks only (no CIFAR strides or ablation switches).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from mobilenet.config import ModelConfig
from mobilenet.specs import V1_LAYERS, V2_STAGES, NetworkSpec

SOURCES: tuple[str, ...] = ("torchvision", "timm", "keras", "slim")


class Row(NamedTuple):
    ours: str  # our module path, e.g. "blocks.3.expand.conv"
    theirs: str  # their module path / layer name / variable scope
    kind: str  # "conv" | "depthwise" | "bn" | "linear" | "linear_conv" (a classifier stored as a 1x1 conv)


@dataclass(frozen=True)
class Conventions:
    """What a peer's weights assume, beyond names: recorded in every converted file."""

    bn_eps: float
    padding: str  # our ModelConfig.padding that reproduces the peer's outputs
    mean: tuple[float, float, float]  # input normalisation of [0, 1] RGB pixels
    std: tuple[float, float, float]
    preprocessing: str  # in the peer's words
    tensor_layout: str


IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "ImageNet mean/std on [0, 1] RGB")
TF_SCALE = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "x / 127.5 - 1 on [0, 255] RGB, i.e. [-1, 1]")
CONVENTIONS: dict[str, Conventions] = {
    "torchvision": Conventions(1e-5, "symmetric", *IMAGENET, "PyTorch OIHW"),
    "timm": Conventions(1e-5, "symmetric", *IMAGENET, "PyTorch OIHW"),
    "keras": Conventions(1e-3, "tf-same", *TF_SCALE, "TensorFlow HWIO (depthwise H, W, C, 1), NHWC"),
    "slim": Conventions(1e-3, "tf-same", *TF_SCALE, "TensorFlow HWIO (depthwise H, W, C, 1), NHWC"),
}
# Which architectures each peer publishes (timm V1 is its MobileNetV1 port; torchvision has V2 only).
ARCHS_OF: dict[str, tuple[str, ...]] = {
    "torchvision": ("mobilenet_v2",),
    "timm": ("mobilenet_v1", "mobilenet_v2"),
    "keras": ("mobilenet_v1", "mobilenet_v2"),
    "slim": ("mobilenet_v1", "mobilenet_v2"),
}


def check_layout(source: str, config: ModelConfig) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown weights layout {source!r}; expected one of: {', '.join(SOURCES)}")
    if config.arch not in ARCHS_OF[source]:
        raise ValueError(f"{source} has no {config.arch} layout (it publishes {', '.join(ARCHS_OF[source])})")
    changed = [
        n
        for n in ("cifar", "activation", "bottleneck", "shortcut", "block")
        if getattr(config, n) != getattr(ModelConfig, n)
    ]
    if changed:
        what = ", ".join(f"{n}={getattr(config, n)!r}" for n in changed)
        raise ValueError(
            f"{source}'s model is the paper's network, and this one differs ({what}): with these weights "
            f"{source} would compute something else (the tensors may fit, the strides or layers do not)"
        )


def _conv_bn(ours: str, theirs_conv: str, theirs_bn: str, kind: str = "conv") -> list[Row]:
    return [Row(f"{ours}.conv", theirs_conv, kind), Row(f"{ours}.bn", theirs_bn, "bn")]


def _parts(spec: NetworkSpec, i: int) -> list[tuple[str, str]]:
    """(our part, kind) of block i in forward order."""
    if spec.config.arch == "mobilenet_v1":
        return [("depthwise", "depthwise"), ("pointwise", "conv")]
    block = spec.blocks[i]
    expand = [("expand", "conv")] if block.has_expand else []
    return [*expand, ("depthwise", "depthwise"), ("project", "conv")]


def _stage_index(spec: NetworkSpec) -> list[tuple[int, int]]:
    """(stage, index in stage) of every block, as timm nests them."""
    if spec.config.arch == "mobilenet_v2":
        sizes = [stage.n for stage in V2_STAGES]
    else:  # timm starts a new stage at every stride-2 layer of V1's Table 1
        sizes = []
        for i, (_, stride) in enumerate(V1_LAYERS):
            if i == 0 or stride == 2:
                sizes.append(0)
            sizes[-1] += 1
    return [(s, k) for s, n in enumerate(sizes) for k in range(n)]


def torchvision_rows(spec: NetworkSpec) -> list[Row]:
    rows = _conv_bn("stem", "features.0.0", "features.0.1")
    for i, _ in enumerate(spec.blocks):
        theirs = f"features.{i + 1}.conv"
        parts = _parts(spec, i)
        for k, (part, kind) in enumerate(parts[:-1]):  # Conv2dNormActivation: .0 conv, .1 BN
            rows += _conv_bn(f"blocks.{i}.{part}", f"{theirs}.{k}.0", f"{theirs}.{k}.1", kind)
        k = len(parts) - 1  # the linear projection: a bare conv, then its BN
        rows += _conv_bn(f"blocks.{i}.project", f"{theirs}.{k}", f"{theirs}.{k + 1}")
    last = len(spec.blocks) + 1
    head = _conv_bn("head", f"features.{last}.0", f"features.{last}.1")
    return [*rows, *head, Row("classifier", "classifier.1", "linear")]


def timm_rows(spec: NetworkSpec) -> list[Row]:
    rows = _conv_bn("stem", "conv_stem", "bn1")
    for i, (stage, k) in enumerate(_stage_index(spec)):
        theirs = f"blocks.{stage}.{k}"
        parts = _parts(spec, i)
        if len(parts) == 3:  # timm InvertedResidual
            names = [("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")]
        else:  # timm DepthwiseSeparableConv
            names = [("conv_dw", "bn1"), ("conv_pw", "bn2")]
        for (part, kind), (conv, bn) in zip(parts, names, strict=True):
            rows += _conv_bn(f"blocks.{i}.{part}", f"{theirs}.{conv}", f"{theirs}.{bn}", kind)
    if spec.head_channels is not None:
        rows += _conv_bn("head", "conv_head", "bn2")
    return [*rows, Row("classifier", "classifier", "linear")]


def keras_rows(spec: NetworkSpec) -> list[Row]:
    if spec.config.arch == "mobilenet_v1":
        rows = _conv_bn("stem", "conv1", "conv1_bn")
        for i in range(len(spec.blocks)):
            rows += _conv_bn(f"blocks.{i}.depthwise", f"conv_dw_{i + 1}", f"conv_dw_{i + 1}_bn", "depthwise")
            rows += _conv_bn(f"blocks.{i}.pointwise", f"conv_pw_{i + 1}", f"conv_pw_{i + 1}_bn")
        return [*rows, Row("classifier", "conv_preds", "linear_conv")]
    rows = _conv_bn("stem", "Conv1", "bn_Conv1")
    for i in range(len(spec.blocks)):
        prefix = "expanded_conv" if i == 0 else f"block_{i}"
        for part, kind in _parts(spec, i):
            rows += _conv_bn(f"blocks.{i}.{part}", f"{prefix}_{part}", f"{prefix}_{part}_BN", kind)
    return [*rows, *_conv_bn("head", "Conv_1", "Conv_1_bn"), Row("classifier", "predictions", "linear")]


def slim_rows(spec: NetworkSpec) -> list[Row]:
    if spec.config.arch == "mobilenet_v1":
        rows = _conv_bn("stem", "MobilenetV1/Conv2d_0", "MobilenetV1/Conv2d_0/BatchNorm")
        for i in range(len(spec.blocks)):
            for part, kind in _parts(spec, i):
                scope = f"MobilenetV1/Conv2d_{i + 1}_{part}"
                rows += _conv_bn(f"blocks.{i}.{part}", scope, f"{scope}/BatchNorm", kind)
        return [*rows, Row("classifier", "MobilenetV1/Logits/Conv2d_1c_1x1", "linear_conv")]
    rows = _conv_bn("stem", "MobilenetV2/Conv", "MobilenetV2/Conv/BatchNorm")
    for i in range(len(spec.blocks)):
        block_scope = "MobilenetV2/expanded_conv" + (f"_{i}" if i else "")
        for part, kind in _parts(spec, i):
            rows += _conv_bn(f"blocks.{i}.{part}", f"{block_scope}/{part}", f"{block_scope}/{part}/BatchNorm", kind)
    rows += _conv_bn("head", "MobilenetV2/Conv_1", "MobilenetV2/Conv_1/BatchNorm")
    return [*rows, Row("classifier", "MobilenetV2/Logits/Conv2d_1c_1x1", "linear_conv")]


ROWS = {"torchvision": torchvision_rows, "timm": timm_rows, "keras": keras_rows, "slim": slim_rows}

# Tensor names inside a module, ours -> theirs, per naming family.
_TORCH = {"conv": {"weight": "weight"}, "depthwise": {"weight": "weight"},
          "bn": {"weight": "weight", "bias": "bias", "running_mean": "running_mean", "running_var": "running_var"},
          "linear": {"weight": "weight", "bias": "bias"}}  # fmt: skip
_KERAS_BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
_DENSE = {"weight": "kernel", "bias": "bias"}
_KERAS = {"conv": {"weight": "kernel"}, "depthwise": {"weight": "kernel"}, "bn": _KERAS_BN, "linear": _DENSE,
          "linear_conv": _DENSE}  # fmt: skip
_SLIM = {"conv": {"weight": "weights"}, "depthwise": {"weight": "depthwise_weights"}, "bn": _KERAS_BN,
         "linear_conv": {"weight": "weights", "bias": "biases"}}  # fmt: skip
LEAVES = {"torchvision": _TORCH, "timm": _TORCH, "keras": _KERAS, "slim": _SLIM}
SEPARATOR = {"torchvision": ".", "timm": ".", "keras": "/", "slim": "/"}


# Keras 3's own files (`model.save_weights("x.weights.h5")`, `.keras` archives) name each layer by its
# class and a counter in the model's layer order (`layers/conv2d_3/vars/0`), not by its name. Keras
# Applications build their layers in the forward order of our rows, so the k-th row of a class is that
# class's k-th layer; its variables are numbered in Keras' order (kernel, bias; gamma, beta, mean, var).
KERAS3_CLASS = {"conv": "conv2d", "depthwise": "depthwise_conv2d", "bn": "batch_normalization", "linear": "dense",
                "linear_conv": "conv2d"}  # fmt: skip


def keras3_keys(spec: NetworkSpec) -> dict[str, str]:
    """Keras 2 / Keras Applications tensor name (`Conv1/kernel`) -> Keras 3 file key (`layers/conv2d/vars/0`)."""
    check_layout("keras", spec.config)
    seen: dict[str, int] = {}
    keys = {}
    for row in keras_rows(spec):
        cls = KERAS3_CLASS[row.kind]
        k = seen[cls] = seen.get(cls, -1) + 1
        layer = f"layers/{cls}" + (f"_{k}" if k else "")
        for i, leaf in enumerate(_KERAS[row.kind].values()):
            keys[f"{row.theirs}/{leaf}"] = f"{layer}/vars/{i}"
    return keys


class Tensor(NamedTuple):
    ours: str  # full key in our state dict
    theirs: str  # full key in the peer's
    kind: str  # the module kind (decides the layout transform)


def tensor_table(source: str, spec: NetworkSpec) -> list[Tensor]:
    """Every tensor of `spec` with its key in `source`'s layout, in forward order."""
    check_layout(source, spec.config)
    table = []
    for row in ROWS[source](spec):
        for ours, theirs in LEAVES[source][row.kind].items():
            table.append(Tensor(f"{row.ours}.{ours}", f"{row.theirs}{SEPARATOR[source]}{theirs}", row.kind))
    return table
