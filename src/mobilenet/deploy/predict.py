"""Classify image files with a trained checkpoint or converted pretrained weights."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from mobilenet.checkpoint import Checkpoint
from mobilenet.config import ModelConfig
from mobilenet.cores import physical_memory
from mobilenet.data import transforms as T
from mobilenet.data.images import open_image
from mobilenet.deploy.split import SplitInference
from mobilenet.memory import peak_bytes, per_op_memory
from mobilenet.specs import check_resolution, network_spec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    path: str
    labels: list[str]
    probabilities: list[float]
    error: str | None = None  # why this file has no prediction (unreadable, not an image)


@dataclass(frozen=True)
class Predictor:
    """A model with what its inputs need: classes, input side, crop rule and normalisation."""

    model: torch.nn.Module
    classes: list[str]
    size: int
    crop: bool  # resize + centre crop (ImageNet style), or resize the whole image (digits, CIFAR)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_fraction: float = T.EVAL_CROP_FRACTION
    interpolation: str = "bilinear"
    checkpoint: Path | None = None  # the training checkpoint file, whose run may hold quantize's engine choice


def is_weights(path: str | Path) -> bool:
    """Converted weights (.safetensors) or a registry name, rather than a training checkpoint."""
    from mobilenet.weights.registry import is_name

    return Path(path).suffix == ".safetensors" or (not Path(path).exists() and is_name(str(path)))


def load_predictor(path: str | Path, resolution: int | None = None) -> Predictor:
    """From a training checkpoint (run dir or .pt), or from converted weights (.safetensors or a
    registry name, whose own resize, crop, interpolation and normalisation are used)."""
    if is_weights(path):
        from mobilenet.weights import class_names, load_pretrained

        model, meta = load_pretrained(path)
        names = class_names(meta, model.config.num_classes)
        mean, std = tuple(json.loads(meta["mean"])), tuple(json.loads(meta["std"]))
        size = resolution or int(meta.get("resolution", 224))
        check_fits(model.config, size)
        crop = float(meta.get("crop", T.EVAL_CROP_FRACTION))
        return Predictor(model, names, size, True, mean, std, crop, meta.get("interpolation", "bilinear"))
    ckpt = Checkpoint.load(path)
    crop = ckpt.data_config.dataset == "imagefolder"
    size = resolution or ckpt.resolution
    check_fits(ckpt.model_config, size)
    return Predictor(ckpt.build_model(), ckpt.classes, size, crop, ckpt.mean, ckpt.std, checkpoint=ckpt.path)


def check_fits(config: ModelConfig, size: int, batch: int = 1) -> None:
    """Refuse an input side whose activations alone (the analytic peak for one image, `mobilenet memory`)
    would take more than half of this machine's memory, before anything is decoded or allocated."""
    check_resolution(network_spec(config), size)
    need = peak_bytes(per_op_memory(config, size), batch=batch, input_held=True)
    total = physical_memory()
    if total and need > total / 2:
        raise ValueError(
            f"--resolution {size}: {'one image' if batch == 1 else f'a batch of {batch}'} needs "
            f"{need / 1e9:,.0f} GB for its activations alone, "
            f"more than half of this machine's {total / 1e9:,.0f} GB"
        )


@torch.no_grad()
def predict(
    path: str | Path,
    images: list[str | Path],
    top_k: int = 5,
    *,
    splits: int | None = None,
    resolution: int | None = None,
    full_decode: bool = False,
    engine: str = "auto",
) -> list[Prediction]:
    """Top-k classes for each image file, preprocessed the way the model's training data was.

    `path`: a training checkpoint or run directory, or converted pretrained weights (.safetensors or a
    registry name). By default the fast pipeline runs (`mobilenet.deploy.pipeline`: reduced-size JPEG
    decoding, uint8 input with the normalisation folded in, OpenVINO where installed, or the engine and
    file `mobilenet quantize` picked for the run when it has been quantized); `full_decode`
    decodes every pixel first. `splits`: the memory-efficient executor (`SplitInference`) in PyTorch.
    """
    if top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {top_k}")
    if splits is not None and engine != "auto":
        raise ValueError(f"--split runs in PyTorch (its own executor); leave out --engine {engine}")
    p = load_predictor(path, resolution)
    if splits is None:
        return _predict_fast(p, images, top_k, full_decode, engine)
    model = SplitInference(p.model, splits) if splits is not None else p.model  # type: ignore[arg-type]
    tensors, good, results = [], [], {}
    for image_path in images:
        try:  # one bad file is reported on its own line; the others are still predicted
            image = open_image(Path(image_path))
        except ValueError as err:
            results[str(image_path)] = Prediction(str(image_path), [], [], str(err))
            continue
        if p.crop:
            image = T.resize_center_crop(image, p.size, p.crop_fraction, p.interpolation)
        else:  # digits and CIFAR were trained on whole images at their native side
            image = image.resize((p.size, p.size), Image.Resampling.BILINEAR)
        tensors.append(T.pil_to_tensor(image))
        good.append(str(image_path))
    if tensors:
        probs = model(T.normalize(torch.stack(tensors), p.mean, p.std)).softmax(1)
        top = probs.topk(min(top_k, probs.shape[1]), dim=1)
        for name, idx, val, row in zip(good, top.indices, top.values, probs, strict=True):
            results[name] = _prediction(name, row, idx.tolist(), val.tolist(), p.classes)
    return [results[str(image_path)] for image_path in images]


def _predict_fast(
    p: Predictor, images: list[str | Path], top_k: int, full_decode: bool, engine: str
) -> list[Prediction]:
    from mobilenet.data.photos import PhotoPrep
    from mobilenet.deploy.mobile import Preprocessing
    from mobilenet.deploy.pipeline import label_photos, uint8_runner

    prep = PhotoPrep(p.size, p.crop, p.crop_fraction, p.interpolation, reduced_decode=not full_decode)
    pre = Preprocessing(p.mean, p.std, p.size)
    run = None
    if engine == "auto" and p.checkpoint is not None:  # the engine `quantize` measured and picked for this run
        from mobilenet.deploy.choice import chosen_runner
        from mobilenet.files import beside

        run, name = chosen_runner(beside(p.checkpoint, "deploy"), p.checkpoint, pre)
        if run is not None:
            log.info("inference: %s", name)
        elif name:  # a choice was recorded but cannot be used: say so, then answer on the default engine
            log.warning("not using quantize's engine choice: %s", name)
    if run is None:
        run, _ = uint8_runner(p.model, pre, engine, images=len(images))  # type: ignore[arg-type]
    out = []
    for item in label_photos(images, prep, run):
        if item.logits is None:
            out.append(Prediction(item.path, [], [], item.error))
            continue
        probs = torch.from_numpy(item.logits).float().softmax(0)
        top = probs.topk(min(top_k, probs.shape[0]))
        out.append(_prediction(item.path, probs, top.indices.tolist(), top.values.tolist(), p.classes))
    return out


def _prediction(
    path: str, probs: torch.Tensor, indices: list[int], values: list[float], classes: list[str]
) -> Prediction:
    """The top-k of one image, or an error when the network's outputs are not numbers (NaN or inf
    weights, as a diverged run leaves them): a label chosen among NaNs would mean nothing."""
    if not bool(torch.isfinite(probs).all()):
        return Prediction(path, [], [], f"{path}: the model's outputs are not finite numbers (a diverged run?)")
    return Prediction(path, [classes[i] for i in indices], values)
