"""Reading peers' weight files and writing ours, with no pickle execution anywhere.

Read: PyTorch state dicts (.pt/.pth/.bin, `weights_only=True`), safetensors, Keras Applications' .h5
files (h5py), TF-Slim checkpoints (our own reader of TF's format: no TensorFlow) or variables in .npz.
Write: our converted weights as safetensors with their conventions in the metadata; exports as .pth,
.safetensors, Keras .h5 or .npz.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mobilenet.config import ModelConfig, replace_from_dict
from mobilenet.files import atomic_path
from mobilenet.weights.convert import Converted
from mobilenet.weights.tf_checkpoint import read_tf_checkpoint

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def _fail(path: Path, err: BaseException) -> ValueError:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # torch colours its messages for terminals
    if "Weights only load failed" in text:  # torch.load(weights_only=True) met pickled objects, not tensors
        blocked = re.search(r"GLOBAL ([\w.]+)", text)
        what = f" ({blocked.group(1)})" if blocked else ""
        return ValueError(
            f"{path} holds pickled Python objects{what} besides tensors; they are never loaded or run here. "
            "Re-save the weights as a plain state dict or .safetensors from a trusted environment"
        )
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return ValueError(f"{path} is not a readable weights file: {first}")


def read_tensors(path: str | Path) -> dict[str, Any]:
    """Name -> array of every tensor in a weights file, by its format (the suffix, or a TF checkpoint prefix)."""
    path = Path(path)
    # a TF checkpoint is named by its prefix; accept the .index file or a data shard too
    tf_prefix = Path(re.sub(r"\.(index|data-\d{5}-of-\d{5})$", "", str(path)))
    if Path(f"{tf_prefix}.index").is_file():
        return read_tf_checkpoint(tf_prefix)
    if path.is_dir():
        raise ValueError(
            f"{path} is a directory: --from reads a peer's weights file; to write a run's weights in a peer's "
            "layout, use --to"
        )
    if not path.is_file():
        raise ValueError(f"weights file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(path))
        if suffix in (".h5", ".hdf5", ".keras"):
            return _read_keras_h5(path)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                try:
                    return {k: data[k] for k in data.files}
                except ValueError:
                    raise ValueError(
                        f"{path} holds object arrays (pickled Python objects), which are never loaded here: "
                        "save plain numeric arrays (np.savez with float arrays)"
                    ) from None
        if suffix in TORCH_SUFFIXES:
            return _unwrap(torch.load(path, map_location="cpu", weights_only=True), path)
    except ValueError:
        raise
    except Exception as err:  # each reader has its own error types for a damaged file
        raise _fail(path, err) from None
    raise ValueError(
        f"unknown weights format {path.name!r}: expected .safetensors, .pt/.pth/.bin, .h5, .npz "
        "or a TF checkpoint prefix"
    )


def _unwrap(obj: Any, path: Path) -> dict[str, Any]:
    """A state dict, or a training checkpoint holding one under a usual key."""
    if isinstance(obj, dict) and not all(isinstance(v, Tensor) for v in obj.values()):
        for key in ("state_dict", "model", "state_dict_ema", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                return _unwrap(obj[key], path)
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise ValueError("reading or writing Keras .h5 files needs h5py: pip install 'mobilenet[keras]'") from None
    return h5py


def _read_keras_h5(path: Path) -> dict[str, Any]:
    """Keras weights: Keras Applications' files and Keras 2's `save_weights('x.h5')` (tensors by layer
    name), Keras 3's `save_weights('x.weights.h5')` and `.keras` archives (by class counter: see layouts)."""
    h5py = _h5py()
    if path.suffix.lower() == ".keras":
        import io
        import zipfile

        with zipfile.ZipFile(path) as archive:
            if "model.weights.h5" not in archive.namelist():
                raise ValueError(f"{path} is a zip file without model.weights.h5: not a Keras 3 .keras archive")
            source: Any = io.BytesIO(archive.read("model.weights.h5"))
    else:
        source = path
    out: dict[str, Any] = {}
    with h5py.File(source, "r") as f:
        root = f.get("model_weights", f)  # a whole-model .h5 keeps its weights there
        if "layer_names" in root.attrs:
            for layer in root.attrs["layer_names"]:
                group = root[layer.decode() if isinstance(layer, bytes) else layer]
                for name in group.attrs.get("weight_names", []):
                    name = name.decode() if isinstance(name, bytes) else name
                    out[name] = np.array(group[name])
        elif "layers" in f:  # Keras 3: layers/<class>_<k>/vars/<i>
            f.visititems(
                lambda name, item: out.__setitem__(name, np.array(item)) if isinstance(item, h5py.Dataset) else None
            )
        else:
            raise ValueError(f"{path} is an HDF5 file but not Keras weights (no layer_names, no layers group)")
    return out


def keras_model_tensors(model: Any) -> dict[str, Any]:
    """The tensors of an in-memory Keras model, named `<layer>/<variable>` (Keras 2 and 3)."""
    return {
        f"{layer.name}/{w.name.split('/')[-1].removesuffix(':0')}": np.asarray(w.numpy())
        for layer in model.layers
        for w in layer.weights
    }


def _atomic(path: Path, write: Callable[[str], None]) -> None:
    """Write through `write(tmp_path)` beside `path`, then rename: a crash never leaves a torn file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create directory {path.parent}: {err.strerror}") from None
    with atomic_path(path, path.suffix) as tmp:
        write(str(tmp))


def save_weights(converted: Converted, path: str | Path) -> Path:
    """Our weights as safetensors; the metadata records the model config and the source's conventions."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"converted weights are written as .safetensors, got {path.name!r}")
    _atomic(path, lambda tmp: save_file(converted.state_dict, tmp, metadata=converted.metadata))
    return path


def read_weights(path: str | Path) -> tuple[dict[str, Tensor], ModelConfig, dict[str, str]]:
    """A file `save_weights` wrote: (state dict, config, metadata), or ValueError naming the problem."""
    from safetensors import safe_open

    from mobilenet.weights.hub import resolve

    path = resolve(path)  # a registry name: downloaded, converted and cached on first use
    if not path.is_file():
        raise ValueError(f"weights file {path} does not exist (nor is it a name in `mobilenet weights list`)")
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iteration
    except Exception as err:
        raise ValueError(
            f"{path} is not a readable safetensors file ({err}); convert peer weights first with `mobilenet convert`"
        ) from None
    if not metadata.get("format", "").startswith("mobilenet-weights/"):
        raise ValueError(
            f"{path} is a safetensors file but not mobilenet weights (no format metadata): convert "
            "it with `mobilenet convert --from ...`"
        )
    config = replace_from_dict(ModelConfig(), json.loads(metadata["model_config"]))
    return state, config, metadata


def write_export(
    tensors: dict[str, Tensor], target: str, path: str | Path, keras3: dict[str, str] | None = None
) -> Path:
    """Exported tensors in the file type `target`'s users load: .pth/.safetensors, Keras .h5 (Keras 2 and
    Keras Applications' layout) or .weights.h5 (Keras 3's; `keras3` maps names to its keys), or .npz."""
    path = Path(path)
    suffix = path.suffix.lower()
    if target in ("torchvision", "timm") and suffix in (".pt", ".pth"):
        _atomic(path, lambda tmp: torch.save(tensors, tmp))
    elif target in ("torchvision", "timm") and suffix == ".safetensors":
        from safetensors.torch import save_file

        _atomic(path, lambda tmp: save_file(tensors, tmp))
    elif target == "keras" and path.name.lower().endswith(".weights.h5"):
        if keras3 is None:
            raise ValueError("a Keras 3 .weights.h5 file needs the layer order: use export_file")
        _atomic(path, lambda tmp: _write_keras3_h5({keras3[k]: v for k, v in tensors.items()}, tmp))
    elif target == "keras" and suffix == ".h5":
        _atomic(path, lambda tmp: _write_keras_h5(tensors, tmp))
    elif target == "slim" and suffix == ".npz":
        arrays: dict[str, Any] = {k: v.numpy() for k, v in tensors.items()}
        _atomic(path, lambda tmp: np.savez(tmp, **arrays))
    else:
        wanted = {
            "torchvision": ".pth or .safetensors",
            "timm": ".pth or .safetensors",
            "keras": ".h5 or .weights.h5",
            "slim": ".npz",
        }.get(target, "?")
        raise ValueError(f"{target} weights are written as {wanted}, got {path.name!r}")
    return path


def _write_keras3_h5(tensors: dict[str, Tensor], path: str) -> None:
    """Keras 3's `.weights.h5`: `layers/<class>_<k>/vars/<i>`, read by `model.load_weights`."""
    with _h5py().File(path, "w") as f:
        f.create_group("vars")  # the model's own variables: none
        for key, value in tensors.items():
            f.create_dataset(key, data=value.numpy())


def _write_keras_h5(tensors: dict[str, Tensor], path: str) -> None:
    """The layout Keras' `load_weights(..., by_name=...)` and Keras Applications' files use."""
    h5py = _h5py()

    layers: dict[str, list[str]] = {}
    for name in tensors:
        layers.setdefault(name.split("/")[0], []).append(name)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in layers]
        f.attrs["backend"] = b"tensorflow"
        for layer, names in layers.items():
            group = f.create_group(layer)
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name in names:
                group.create_dataset(name, data=tensors[name].numpy())
