"""Pretrained weights from the peers (torchvision, timm, Keras Applications, TF-Slim) and back.

converted = convert_file("mobilenet_v2_1.0_224.h5", "keras", arch="mobilenet_v2", width=1.0)
save_weights(converted, "v2.safetensors")
model, meta = load_pretrained("v2.safetensors")                  # outputs equal Keras'
model, meta = load_pretrained("v2.safetensors", num_classes=10)  # new head, for fine-tuning
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path
from typing import Any

from mobilenet.config import GRAPH_FIELDS, STRIDE_FIELDS, check_width
from mobilenet.files import refuse_overwrite
from mobilenet.specs import network_spec
from mobilenet.weights.convert import NO_CLASSIFIER, Converted, convert_tensors, export_tensors
from mobilenet.weights.files import keras_model_tensors, read_tensors, read_weights, save_weights, write_export
from mobilenet.weights.layouts import SOURCES, keras3_keys

__all__ = [
    "SOURCES",
    "Converted",
    "class_names",
    "convert_file",
    "convert_from_peer",
    "convert_tensors",
    "convert_to_peer",
    "export_file",
    "export_tensors",
    "keras_model_tensors",
    "load_pretrained",
    "read_tensors",
    "save_weights",
]


# The widths the peers publish weights for; `convert_file` tries these when the width is not given.
PUBLISHED_WIDTHS = (1.0, 0.75, 0.5, 0.35, 0.25, 1.3, 1.4)


def convert_file(
    path: str | Path,
    source: str,
    *,
    arch: str | None = None,
    width: float | None = None,
    background: str = "drop",
    padding: str | None = None,
) -> Converted:
    """Read a peer's weights file and convert it (see `convert_tensors`); records the file name.

    Without `arch` or `width`, every published (architecture, width) is tried and the one whose tensor
    names and shapes fit exactly is taken (and recorded in the metadata as inferred).
    """
    if width is not None:
        check_width(width, " (leave it out to infer it)")
    tensors = read_tensors(path)
    archs = (arch,) if arch else ("mobilenet_v2", "mobilenet_v1")
    widths = (width,) if width is not None else PUBLISHED_WIDTHS
    first_error = None
    for a in archs:
        for w in widths:
            try:
                converted = convert_tensors(tensors, source, arch=a, width=w, background=background, padding=padding)
            except ValueError as err:
                first_error = first_error or err
                continue
            converted.metadata["source_file"] = Path(path).name
            if not (arch and width):
                converted.metadata["inferred"] = f"{a} width {w:g}, from the tensor shapes"
            return converted
    if arch and width:
        raise first_error  # type: ignore[misc]
    tried = ", ".join(f"{x:g}" for x in widths)
    raise ValueError(
        f"{Path(path).name}: no {' or '.join(archs)} at the widths tried ({tried}) fits its tensors "
        f"({first_error}); give {'--width' if arch else '--arch and --width'}"
    )


def load_pretrained(path: str | Path, num_classes: int | None = None, **changes: Any) -> tuple[Any, dict[str, str]]:
    """Our model with converted weights (a .safetensors file, or a registry name such as
    "mobilenet_v2" or "keras/mobilenet_v2_0.35_96", downloaded and cached on first use), in eval mode.
    A different `num_classes` gets a new, freshly initialised classifier (transfer learning); `changes`
    (e.g. dropout) must not alter the graph's tensors (STRIDE_FIELDS such as `cifar` may change)."""
    from mobilenet.models import build_model

    state, config, metadata = read_weights(path)
    clash = sorted(
        k for k, v in changes.items() if k in GRAPH_FIELDS and k not in STRIDE_FIELDS and v != getattr(config, k)
    )
    if clash:
        raise ValueError(f"{path} holds {clash[0]}={getattr(config, clash[0])!r}, not {changes[clash[0]]!r}")
    config = dataclasses.replace(config, **changes)
    headless = metadata.get("classifier") == NO_CLASSIFIER
    if headless and num_classes is None:
        raise ValueError(
            f"{path} has no classifier (converted from a file without the top): give the number of "
            "classes to fine-tune it, e.g. `mobilenet train --init ...`"
        )
    new_head = num_classes is not None and (headless or num_classes != config.num_classes)
    if num_classes is not None and new_head:
        config = dataclasses.replace(config, num_classes=num_classes)
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    model = build_model(config)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shapes that do not fit: name the first tensor torch lists
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = next((line for line in lines if line.startswith("size mismatch for")), lines[0])
        raise ValueError(f"{path} does not fit {config.arch} width {config.width:g}: {detail}") from None
    missing = [k for k in missing if not (new_head and k.startswith("classifier."))]
    if missing or unexpected:
        what = f"lacks {missing[0]!r}" if missing else f"has an unexpected {unexpected[0]!r}"
        raise ValueError(f"{path} does not fit {config.arch} width {config.width:g}: it {what}")
    return model.eval(), metadata


def export_file(model: Any, target: str, path: str | Path, resolution: int = 224) -> tuple[Path, list[str]]:
    """Write our model's weights in `target`'s layout and file type; returns (path, warnings).
    `resolution`: the side the model is used at (where a padding difference is measured)."""
    tensors, warnings = export_tensors(model, target, resolution)
    keras3 = keras3_keys(network_spec(model.config)) if target == "keras" else None
    return write_export(tensors, target, path, keras3), warnings


def class_names(metadata: dict[str, str], num_classes: int) -> list[str]:
    """ImageNet names for 1000/1001-class heads converted from the peers; else "0", "1", ..."""
    kind = metadata.get("classes", "")
    if kind.startswith("imagenet") and num_classes in (1000, 1001):
        names = resources.files("mobilenet").joinpath("imagenet_classes.txt").read_text().splitlines()
        return ["background", *names] if num_classes == 1001 else names
    if kind.startswith("["):
        return list(json.loads(kind))
    return [str(i) for i in range(num_classes)]


def convert_from_peer(
    src: str | Path,
    source: str,
    output: str | Path | None = None,
    *,
    arch: str | None = None,
    width: float | None = None,
    background: str = "drop",
    padding: str | None = None,
    force: bool = False,
) -> list[str]:
    """`mobilenet convert --from`: a peer's file to our .safetensors (default: SRC with that suffix).
    Returns the report lines: what was written and the conventions recorded with it."""
    out = Path(output or Path(src).with_suffix(".safetensors"))
    if out.resolve() == Path(src).resolve():
        raise ValueError(f"refusing to overwrite the source file {out}: pass -o")
    converted = convert_file(src, source, arch=arch, width=width, background=background, padding=padding)
    refuse_overwrite(out, force)
    save_weights(converted, out)
    c = converted.config
    head = "no classifier" if "classifier" in converted.metadata else f"{c.num_classes} classes"
    lines = [
        f"wrote {out}: {c.arch} width {c.width:g}, {head}, {len(converted.state_dict)} tensors from the {source} layout"
    ]
    lines += [f"  {k}: {v}" for k, v in converted.metadata.items() if k not in ("format", "model_config")]
    if converted.ignored:
        lines.append(f"  not weights, skipped: {len(converted.ignored)} ({', '.join(converted.ignored[:3])}, ...)")
    return lines


TARGET_SUFFIX = {"torchvision": ".pth", "timm": ".pth", "keras": ".h5", "slim": ".npz"}


def convert_to_peer(
    src: str | Path, target: str, output: str | Path | None = None, *, force: bool = False
) -> list[str]:
    """`mobilenet convert --to`: our converted weights (.safetensors) or a training checkpoint, written in
    `target`'s layout (default: SRC with the target's usual suffix). Returns the report lines."""
    if target not in TARGET_SUFFIX:
        raise ValueError(f"unknown target {target!r}; expected one of: {', '.join(TARGET_SUFFIX)}")
    from mobilenet.weights.hub import local_stem
    from mobilenet.weights.registry import is_name

    named = not Path(src).exists() and is_name(str(src))
    if Path(src).suffix == ".safetensors" or named:
        if read_weights(src)[2].get("classifier") == NO_CLASSIFIER:
            raise ValueError(
                f"{src} has no classifier (converted from a file without the top), and --to writes whole "
                "networks; fine-tune it first (`mobilenet train --init SRC --num-classes K`) and convert the run"
            )
        model, meta = load_pretrained(src)
        resolution = int(meta.get("resolution", 224))
    else:
        from mobilenet.checkpoint import Checkpoint

        ckpt = Checkpoint.load(src)
        model, resolution = ckpt.build_model(), ckpt.resolution
    suffix = TARGET_SUFFIX[target]  # a registry name is written here, not into the cache
    default = Path(f"{local_stem(src)}{suffix}")
    out = refuse_overwrite(output or default, force)
    path, warnings = export_file(model, target, out, resolution)
    lines = [f"wrote {path}: {model.config.arch} width {model.config.width:g} in the {target} layout"]
    return lines + [f"warning: {w}" for w in warnings]
