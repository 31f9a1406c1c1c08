"""Peer weights -> our state dict (and back), every tensor accounted for.

Strict by construction: each tensor of our model is looked up under the peer's name from the layout
table, transposed from the peer's layout, and shape-checked; anything the peer file holds beyond that is
an error naming it, except counters and optimizer state, which are listed in the result (`ignored`).

BatchNorm epsilon: Keras and TF-Slim normalise with var + 1e-3, PyTorch with var + 1e-5. Converted
models keep the source's epsilon (`ModelConfig.bn_eps`), so inference and fine-tuning match it exactly.
Exporting to a peer with another epsilon moves the difference into the running variance.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mobilenet.config import ModelConfig
from mobilenet.specs import NetworkSpec, network_spec
from mobilenet.weights.layouts import CONVENTIONS, keras3_keys, tensor_table

# Entries that are not weights: BN step counters, TF's global step and optimizer slots.
_NOT_WEIGHTS = re.compile(r"(num_batches_tracked|global_step|/RMSProp(_1)?|/Momentum|/Adam(_1)?)$")
_EMA = "/ExponentialMovingAverage"
_KERAS3 = re.compile(r"^layers/[a-z0-9_]+/vars/\d+$")


NO_CLASSIFIER = "none: the source has no top; load it with a num_classes to fine-tune"


@dataclass
class Converted:
    """Our state dict for `config`, and the facts a user needs to trust and use it."""

    state_dict: dict[str, Tensor]
    config: ModelConfig
    metadata: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


def _as_tensor(value: Any) -> Tensor:
    return value.detach().cpu() if isinstance(value, Tensor) else torch.from_numpy(np.array(value))


def _normalise_keys(tensors: Mapping[str, Any], source: str) -> tuple[dict[str, Any], list[str], bool]:
    """Strip TF's ':0', Keras 2's `depthwise_kernel` spelling and non-weights; prefer Slim's EMA values."""
    out: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in tensors.items():
        name = key.removesuffix(":0")
        if source == "keras":
            name = name.replace("/depthwise_kernel", "/kernel")
        if _NOT_WEIGHTS.search(name):
            ignored.append(key)
            continue
        out[name] = value
    ema = [k for k in out if k.endswith(_EMA)]
    for key in ema:  # TF-Slim evaluates (and publishes) the moving averages of its weights
        out[key.removesuffix(_EMA)] = out.pop(key)
    return out, ignored, bool(ema)


def _from_keras3(named: dict[str, Any], spec: NetworkSpec) -> tuple[dict[str, Any], bool]:
    """Keras 3 file keys (`layers/conv2d_3/vars/0`) -> Keras Applications names, by class and layer order."""
    nested = [k for k in named if re.match(r"^layers/.+/layers/.+/vars/\d+$", k)]
    if nested:
        raise ValueError(
            f"this Keras 3 file holds a model nested inside another ({nested[0]!r}): save the MobileNet "
            "itself, e.g. `base_model.save_weights('base.weights.h5')`, and convert that"
        )
    if not any(_KERAS3.match(k) for k in named):
        return named, False
    back = {v: k for k, v in keras3_keys(spec).items()}
    return {back.get(k, k): v for k, v in named.items()}, True


def _held(named: Mapping[str, Any], show: int = 3) -> str:
    """What a file holds, for errors: the count and the first few names with their shapes."""
    first = ", ".join(f"{k!r} {tuple(np.shape(v))}" for k, v in list(named.items())[:show])
    return f"{len(named)} tensors" + (f", e.g. {first}" if first else "")


def _from_layout(t: Tensor, kind: str, leaf: str, source: str) -> Tensor:
    if source in ("torchvision", "timm") or kind == "bn" or leaf == "bias":
        return t
    if kind == "conv":  # H, W, in, out -> out, in, H, W
        return t.permute(3, 2, 0, 1)
    if kind == "depthwise":  # H, W, C, 1 -> C, 1, H, W
        return t.permute(2, 3, 0, 1)
    if kind == "linear_conv":  # 1, 1, in, out -> out, in
        return t.reshape(t.shape[-2], t.shape[-1]).t()
    return t.t()  # Dense: in, out -> out, in


def _to_layout(t: Tensor, kind: str, leaf: str, source: str) -> Tensor:
    if source in ("torchvision", "timm") or kind == "bn" or leaf == "bias":
        return t
    if kind == "conv":
        return t.permute(2, 3, 1, 0)
    if kind == "depthwise":
        return t.permute(2, 3, 0, 1)
    if kind == "linear_conv":
        return t.t().reshape(1, 1, t.shape[1], t.shape[0])
    return t.t()


def native_padding(source: str, arch: str) -> str:
    """The padding that reproduces `source`'s own outputs for `arch` (see config.PADDINGS)."""
    if source == "keras" and arch == "mobilenet_v1":
        return "keras-v1"
    return CONVENTIONS[source].padding


def convert_tensors(
    tensors: Mapping[str, Any],
    source: str,
    *,
    arch: str = "mobilenet_v2",
    width: float = 1.0,
    background: str = "drop",
    padding: str | None = None,
) -> Converted:
    """Convert a peer's named tensors (numpy arrays or torch tensors) into our `arch` at `width`.

    background: for 1001-class TF-Slim heads, "drop" class 0 ("background") or "keep" it.
    padding: default the peer's own (symmetric for PyTorch peers, "tf-same" for Keras/Slim), which
    reproduces its outputs exactly; "symmetric" for Keras/Slim weights gives PyTorch-style padding.
    """
    from mobilenet.models import build_model

    if background not in ("drop", "keep"):
        raise ValueError(f"background must be 'drop' or 'keep', got {background!r}")
    conv = CONVENTIONS.get(source)
    probe = ModelConfig(arch, width)  # validates arch and width before anything else
    named, ignored, used_ema = _normalise_keys(tensors, source)
    spec = network_spec(probe)
    blocks = {m.group(1, 2) for k in named if (m := re.match(r"blocks\.(\d+)\.(\d+)\.", k))}
    if source == "timm" and len(blocks) > len(spec.blocks):
        raise ValueError(
            f"{len(blocks)} blocks where the paper's {arch} has {len(spec.blocks)}: this is one of timm's "
            "depth-multiplier models (e.g. mobilenetv2_110d, mobilenetv2_120d). Depth multiplier not supported"
        )
    table = tensor_table(source, spec)
    keras3 = False
    if source == "keras":
        named, keras3 = _from_keras3(named, spec)
    head = [e.theirs for e in table if e.ours.startswith("classifier.")]
    headless = not any(k in named for k in head)  # a "no top" file: a feature extractor for fine-tuning
    if headless:
        if table[0].theirs not in named:
            raise ValueError(
                f"missing tensor {table[0].theirs!r} (the first conv) and no classifier: is this a "
                f"{source} {arch} file? It holds {_held(tensors)}"
            )
        table = [e for e in table if e.theirs not in head]
    elif head[-1] not in named:
        raise ValueError(
            f"missing tensor {head[-1]!r} (the classifier): is this a {source} {arch} file? It holds {_held(tensors)}"
        )
    num_classes = probe.num_classes if headless else int(np.shape(named[head[-1]])[0])
    drop = source == "slim" and num_classes == 1001 and background == "drop"
    assert conv is not None  # tensor_table checked the source
    native = native_padding(source, arch)
    config = ModelConfig(arch, width, num_classes - int(drop), padding=padding or native, bn_eps=conv.bn_eps)
    expected = build_model(config).state_dict()
    if headless:
        expected = {k: v for k, v in expected.items() if not k.startswith("classifier.")}
    state: dict[str, Tensor] = {}
    for entry in table:
        if entry.theirs not in named:
            raise ValueError(
                f"missing tensor {entry.theirs!r} (our {entry.ours!r}) in the {source} weights; "
                f"the file holds {_held(tensors)}"
            )
        leaf = entry.ours.rsplit(".", 1)[1]
        value = _from_layout(_as_tensor(named.pop(entry.theirs)).float(), entry.kind, leaf, source)
        if drop and entry.ours.startswith("classifier."):
            value = value[1:]
        want = tuple(expected[entry.ours].shape)
        if tuple(value.shape) != want:
            raise ValueError(
                f"tensor {entry.theirs!r} has shape {tuple(value.shape)} in our layout, but {entry.ours!r} of "
                f"{arch} width {width:g} needs {want}: check --arch and --width"
            )
        state[entry.ours] = value.contiguous()
    if named:
        extra = sorted(named)
        raise ValueError(
            f"{len(extra)} unexpected tensor(s) for {arch} width {width:g} in the {source} layout, first "
            f"{extra[0]!r}: nothing is dropped silently; check --from, --arch and --width"
        )
    for key, value in expected.items():  # BN step counters: ours start at 0
        state.setdefault(key, torch.zeros_like(value))
    classes = "imagenet+background" if num_classes == 1001 and not drop else "imagenet" if num_classes >= 1000 else ""
    if headless:
        classes = ""
    metadata = {
        "format": "mobilenet-weights/1",
        "model_config": json.dumps(dataclasses.asdict(config)),
        "source": source,
        "source_tensor_layout": conv.tensor_layout,
        "bn_eps": f"{conv.bn_eps:g}, the source's (kept in the model config)",
        "padding": config.padding,
        "mean": json.dumps(conv.mean),
        "std": json.dumps(conv.std),
        "preprocessing": conv.preprocessing,
        "classes": classes,
        "background_class": ("dropped" if drop else "kept") if num_classes == 1001 else "none",
        "slim_ema": "used the ExponentialMovingAverage values" if used_ema else "",
        "keras_format": "Keras 3 weights file: layers matched by class and order" if keras3 else "",
        "classifier": NO_CLASSIFIER if headless else "",
    }
    return Converted(state, config, {k: v for k, v in metadata.items() if v}, ignored)


@torch.no_grad()
def _padding_effect(model: torch.nn.Module, padding: str, resolution: int = 224) -> tuple[float, float]:
    """How much `model`'s outputs change when the same weights run with another padding rule, on random
    inputs at the side the model is used at (the shift matters more at small sides)."""
    import copy
    import dataclasses

    from mobilenet.models import build_model

    config: ModelConfig = model.config  # type: ignore[assignment]
    other = build_model(dataclasses.replace(config, padding=padding)).eval()
    other.load_state_dict(copy.deepcopy(model.state_dict()))
    x = torch.randn(8, 3, resolution, resolution, generator=torch.Generator().manual_seed(0))
    a, b = model.eval()(x), other(x)
    return float((a - b).abs().max()), float((a.argmax(1) == b.argmax(1)).float().mean())


def export_tensors(model: torch.nn.Module, target: str, resolution: int = 224) -> tuple[dict[str, Tensor], list[str]]:
    """Our model's tensors in `target`'s names and layout, and warnings (e.g. clamped variances);
    `resolution`: the side the model is used at, where a padding difference is measured."""
    config: ModelConfig = model.config  # type: ignore[assignment]
    conv = CONVENTIONS.get(target)
    table = tensor_table(target, network_spec(config))
    assert conv is not None
    ours = model.state_dict()
    out: dict[str, Tensor] = {}
    warnings = []
    clamped = 0
    for entry in table:
        leaf = entry.ours.rsplit(".", 1)[1]
        value = ours[entry.ours].detach().cpu().float()
        if leaf == "running_var" and conv.bn_eps != config.bn_eps:  # same normalisation under their epsilon
            value = value - (conv.bn_eps - config.bn_eps)
            clamped += int((value < 0).sum())
            value = value.clamp(min=0)
        out[entry.theirs] = _to_layout(value, entry.kind, leaf, target).contiguous()
        if target in ("torchvision", "timm") and leaf == "running_var":
            out[entry.theirs.replace("running_var", "num_batches_tracked")] = torch.tensor(0)
    if clamped:
        warnings.append(
            f"{clamped} BN variances below {conv.bn_eps - config.bn_eps:g} were clamped to 0 for "
            f"{target}'s eps {conv.bn_eps:g}: those channels will differ there"
        )
    if conv.bn_eps != config.bn_eps:
        warnings.append(f"BN eps {config.bn_eps:g} here, {conv.bn_eps:g} in {target}: the variances were shifted")
    native = native_padding(target, config.arch)
    if config.padding != native:
        moved, agree = _padding_effect(model, native, resolution)
        warnings.append(
            f"this model pads {config.padding}, {target} pads {native}: every strided layer sees windows shifted "
            f"by a pixel there. Measured on 8 random {resolution}x{resolution} inputs: logits move by up to "
            f"{moved:.3g} and top-1 agrees on {agree:.0%}; fine-tune in {target} before relying on it"
        )
    return out, warnings
