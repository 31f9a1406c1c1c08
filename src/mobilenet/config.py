"""Small frozen configs shared by the library, the cost model and the CLI. No torch import."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

# The networks this package builds. "conv_mobilenet" is V1 with every depthwise-separable pair replaced
# by one full 3x3 convolution: the "Conv MobileNet" of Howard et al. 2017, Table 4.
ARCHS: tuple[str, ...] = ("mobilenet_v1", "conv_mobilenet", "mobilenet_v2")
ACTIVATIONS: tuple[str, ...] = ("relu6", "relu")
BOTTLENECKS: tuple[str, ...] = ("linear", "relu6")  # activation after the V2 projection (Sandler et al. 3.2)
SHORTCUTS: tuple[str, ...] = ("bottleneck", "expansion", "none")  # where V2's skip connects (Fig. 6b)
BLOCKS: tuple[str, ...] = ("inverted", "classic")  # V2 block shape: narrow-wide-narrow or wide-narrow-wide
# How a stride-2 conv pads: "symmetric" (k // 2 on every side: PyTorch, torchvision, timm) or "tf-same"
# (TensorFlow's SAME: the extra pixel goes bottom/right for even inputs: Keras, TF-Slim). Both give
# ceil(size / stride) outputs; only weights trained with one reproduce their outputs with it.
PADDINGS: tuple[str, ...] = ("symmetric", "tf-same")


def _choice(field: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {field} {value!r}; expected one of: {', '.join(allowed)}")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that decides a network's graph. Resolution is not here: the models are
    resolution-agnostic (global pooling), so it belongs to the data and the cost model.

    The last four fields are the switches of the V2 paper's ablations; their defaults are the paper's
    network, and they are rejected for V1, which has no bottlenecks or shortcuts.
    """

    arch: str = "mobilenet_v2"
    width: float = 1.0  # alpha, the width multiplier of both papers
    num_classes: int = 1000
    dropout: float = 0.2  # before the classifier
    cifar: bool = False  # stride-1 stem and first strided stage for 32x32 inputs (not in the papers)
    activation: str = "relu6"
    bottleneck: str = "linear"
    shortcut: str = "bottleneck"
    block: str = "inverted"
    padding: str = "symmetric"
    bn_eps: float = 1e-5  # BatchNorm's epsilon: PyTorch's 1e-5; Keras and TF-Slim weights were trained with 1e-3

    def __post_init__(self) -> None:
        _choice("architecture", self.arch, ARCHS)
        if isinstance(self.width, bool) or not isinstance(self.width, (int, float)) or not self.width > 0:
            raise ValueError(f"width must be a number > 0, got {self.width!r}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1, got {self.num_classes!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("bottleneck", self.bottleneck, BOTTLENECKS)
        _choice("shortcut", self.shortcut, SHORTCUTS)
        _choice("block", self.block, BLOCKS)
        _choice("padding", self.padding, PADDINGS)
        if isinstance(self.bn_eps, bool) or not isinstance(self.bn_eps, (int, float)) or not 0 < self.bn_eps < 1:
            raise ValueError(f"bn_eps must be a number in (0, 1), got {self.bn_eps!r}")
        if self.arch != "mobilenet_v2":
            for name in ("bottleneck", "shortcut", "block"):
                value, default = getattr(self, name), getattr(ModelConfig, name)
                if value != default:
                    raise ValueError(f"{name}={value!r} only applies to mobilenet_v2, not {self.arch}")
        if self.block == "classic" and self.shortcut == "expansion":
            # A classic block's skip already joins its wide (expanded) ends; the switch would mean nothing.
            raise ValueError("shortcut='expansion' is the inverted block's ablation; use block='inverted'")


C = TypeVar("C")


def replace_from_dict(config: C, values: dict[str, Any]) -> C:
    """Return `config` with `values` applied; unknown keys are an error, never silently ignored."""
    known = {f.name for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {type(config).__name__} keys: {', '.join(unknown)}")
    return dataclasses.replace(config, **values)  # type: ignore[type-var]


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON file into a dict (the caller applies it with `replace_from_dict`)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ValueError(f"cannot read config file {path}: {err.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"config file {path} is not valid {path.suffix.lstrip('.') or 'TOML'}: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a table of keys, got {type(data).__name__}")
    return data
