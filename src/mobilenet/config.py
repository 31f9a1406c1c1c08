"""Every config of the package, small and frozen: model, data, training and the named recipes. No torch import.

The CLI, the cost model, training, deployment and the experiments all read these same dataclasses; a
config file or command-line flags are applied with `replace_from_dict`, which rejects unknown keys.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mobilenet.validate import check_types

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
# "keras-v1" is Keras Applications' MobileNet (V1): SAME everywhere except that each stride-2 depthwise conv
# is padded (0, 1) whatever the input size, which equals SAME only for even sides.
PADDINGS: tuple[str, ...] = ("symmetric", "tf-same", "keras-v1")
# The ModelConfig fields that decide the network's graph and so its weights' shapes and meaning. Pretrained
# weights and a resumed run fix them; dropout and num_classes (a new head) may still change.
GRAPH_FIELDS: tuple[str, ...] = (
    "arch",
    "width",
    "cifar",
    "activation",
    "bottleneck",
    "shortcut",
    "block",
    "padding",
    "bn_eps",
)
# The GRAPH_FIELDS that change strides but no tensor: weights trained without them still fit, so
# fine-tuning may switch them on (ImageNet weights on 32x32 images with the CIFAR stride variant).
STRIDE_FIELDS: tuple[str, ...] = ("cifar",)


def plural(count: int, noun: str) -> str:
    """ "1 epoch", "2 epochs"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _choice(field: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {field} {value!r}; expected one of: {', '.join(allowed)}")


def check_width(width: object, hint: str = "") -> None:
    """The width multiplier's one rule: a number above 0 and below 10,000 (beyond that no layer fits)."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width < 1e4:
        raise ValueError(f"width must be a number > 0 and below 10,000, got {width!r}{hint}")


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
        check_types(self)
        _choice("architecture", self.arch, ARCHS)
        check_width(self.width)
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


DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and at what side they are fed; the normalisation is the data's own."""

    dataset: str = "digits"
    data_dir: str | None = None  # CIFAR: archive or extracted folder (downloaded here if absent); ImageFolder root
    resolution: int = 0  # 0: the dataset's native side (32 for digits and CIFAR, 224 for ImageFolder)
    download: bool = True
    workers: int = 2  # ImageFolder decoding threads
    train_images: int = 0  # 0: every training image; N: a fixed class-stratified subset of N (the test set is whole)

    def __post_init__(self) -> None:
        check_types(self)
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; expected one of: {', '.join(DATASETS)}")
        for name in ("resolution", "workers", "train_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.dataset == "digits" and self.data_dir:
            raise ValueError(f"the digits ship with scikit-learn and read no --data-dir (got {self.data_dir!r})")


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation: none of these fields changes the inference graph (TF-Slim's training_scope rule)."""

    epochs: int = 12
    batch_size: int = 64
    optimizer: str = "sgd"  # sgd (Nesterov momentum) | rmsprop (TF-style, the papers')
    lr: float = 0.1
    lr_batch: int = 64  # lr is for this global batch size; it scales linearly with batch_size x processes
    momentum: float = 0.9
    weight_decay: float = 4e-5  # on conv and linear weights, not on BN or biases
    decay_depthwise: bool = True  # also decay depthwise weights (TF-Slim's MobileNet scopes do not)
    rmsprop_eps: float = 1.0  # inside the square root, as TensorFlow's RMSProp (TF-Slim's opt_epsilon)
    schedule: str = "cosine"  # cosine | exponential
    lr_decay: float = 0.98  # per epoch, for the exponential schedule
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    ema_decay: float = 0.0  # 0 disables the exponential moving average of weights
    precision: str = "auto"  # auto (bf16 where fast) | fp32 | bf16
    channels_last: bool = True
    seed: int = 0
    device: str = "auto"
    init: str = ""  # converted pretrained weights (.safetensors) to start from; the classifier is new
    freeze_backbone: bool = False  # with init: train the classifier only
    threads: int = 0  # CPU threads per process; 0: the cores this process may use, shared among local ranks
    checkpoint_every: int = 0  # also save last.pt every N steps within an epoch (0: at epoch ends only)

    def __post_init__(self) -> None:
        check_types(self)
        for name, allowed in (
            ("optimizer", ("sgd", "rmsprop")),
            ("schedule", ("cosine", "exponential")),
            ("precision", ("auto", "fp32", "bf16")),
        ):
            _choice(name, getattr(self, name), allowed)
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "momentum": 0 <= self.momentum < 1,
            "weight_decay": self.weight_decay >= 0,
            "lr_decay": 0 < self.lr_decay <= 1,
            "label_smoothing": 0 <= self.label_smoothing < 1,
            "ema_decay": 0 <= self.ema_decay < 1,
            "warmup_epochs": self.warmup_epochs >= 0,
            "rmsprop_eps": self.rmsprop_eps > 0,
            "threads": self.threads >= 0,
            "checkpoint_every": self.checkpoint_every >= 0,
            "lr_batch": self.lr_batch >= 1,
            "freeze_backbone": not self.freeze_backbone or bool(self.init),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if not bad and self.warmup_epochs > self.epochs:
            raise ValueError(
                f"warmup_epochs ({self.warmup_epochs:g}) is longer than the run ({plural(self.epochs, 'epoch')}): "
                "the lr would never reach its peak"
            )
        if bad == ["freeze_backbone"]:
            raise ValueError("freeze_backbone needs init: pretrained weights to freeze (--init WEIGHTS)")
        if bad:
            raise ValueError(f"invalid {bad[0]}: {getattr(self, bad[0])!r}")

    def scaled_lr(self, world: int = 1) -> float:
        """The learning rate for the global batch: `batch_size` images on each of `world` processes."""
        return self.lr * self.batch_size * world / self.lr_batch


@dataclass(frozen=True)
class Recipe:
    """A named starting point: "paper" (Sandler et al. 2018, sec. 6.1: RMSProp decay 0.9 momentum 0.9,
    weight decay 4e-5, lr 0.045 at batch 96 decayed x0.98 per epoch), "cifar" (SGD momentum 0.9, lr 0.1 at
    batch 128, cosine) and "digits", the quick default on scikit-learn's bundled digits."""

    model: ModelConfig
    data: DataConfig
    train: TrainConfig


RECIPES: dict[str, Recipe] = {
    # batch 32 (lr 0.05): twice the steps of batch 64 in the same time; 99.4-99.7% top-1 in ~90 s on 2 cores
    "digits": Recipe(
        ModelConfig(width=0.5, num_classes=10, cifar=True), DataConfig("digits"), TrainConfig(batch_size=32)
    ),
    "cifar": Recipe(
        ModelConfig(num_classes=10, cifar=True),
        DataConfig("cifar10"),
        # kuangliu/pytorch-cifar: SGD 0.1, momentum 0.9, weight decay 5e-4 on every weight, cosine, 200 epochs
        TrainConfig(epochs=200, batch_size=128, lr=0.1, lr_batch=128, weight_decay=5e-4),
    ),
    "paper": Recipe(
        ModelConfig(),
        DataConfig("imagefolder"),
        TrainConfig(
            epochs=300,
            batch_size=96,
            optimizer="rmsprop",
            lr=0.045,
            lr_batch=96,
            schedule="exponential",
            warmup_epochs=0.0,
            decay_depthwise=False,  # TF-Slim's mobilenet training_scope: regularize_depthwise=False
        ),
    ),
}


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


def model_graph(config: ModelConfig) -> dict[str, Any]:
    """The GRAPH_FIELDS of `config`: what two configs must share for one's weights to fit the other."""
    return {name: getattr(config, name) for name in GRAPH_FIELDS}


def resolve_recipe(name: str, config_file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Recipe:
    """A recipe with a config file's [model]/[data]/[train] tables applied, then `overrides` (flags).

    Each override goes to the config that has a field of that name; `num_classes` is left to the data.
    Unknown tables, unknown keys and overrides no config knows are errors.
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; expected one of: {', '.join(sorted(RECIPES))}")
    recipe = RECIPES[name]
    configs: dict[str, Any] = {"model": recipe.model, "data": recipe.data, "train": recipe.train}
    if config_file:
        tables = load_config_file(config_file)
        unknown = sorted(set(tables) - set(configs))
        if unknown:
            raise ValueError(f"unknown config file tables: {', '.join(unknown)} (expected model, data, train)")
        configs = {key: replace_from_dict(cfg, tables.get(key, {})) for key, cfg in configs.items()}
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    placed: set[str] = set()
    for key, cfg in configs.items():
        names = {f.name for f in dataclasses.fields(cfg)} - {"num_classes"}
        given = {k: v for k, v in overrides.items() if k in names}
        placed |= set(given)
        configs[key] = replace_from_dict(cfg, given)
    stray = sorted(set(overrides) - placed)
    if stray:
        raise ValueError(f"unknown training options: {', '.join(stray)}")
    return Recipe(configs["model"], configs["data"], configs["train"])
