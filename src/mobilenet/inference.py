"""Use a trained checkpoint: rebuild its model, evaluate it on a dataset, classify image files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from mobilenet import transforms as T
from mobilenet.checkpoint import load_checkpoint
from mobilenet.config import ModelConfig
from mobilenet.data import DataConfig, load_splits, open_image
from mobilenet.models import MobileNet, build_model
from mobilenet.plots import plot_confusion
from mobilenet.split import SplitInference
from mobilenet.train import EvalResult, evaluate


def load_model(path: str | Path) -> tuple[MobileNet, dict[str, Any]]:
    """The checkpoint's model in eval mode, and the checkpoint (configs, classes, normalization)."""
    ckpt = load_checkpoint(path)
    model = build_model(ModelConfig(**ckpt["model_config"]))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        lines = str(err).strip().splitlines()
        detail = lines[1].strip() if len(lines) > 1 else lines[0]
        raise ValueError(f"{path}: weights do not fit {model.config.arch}: {detail}") from None
    return model.eval(), ckpt


def evaluate_checkpoint(
    path: str | Path, data: DataConfig | None = None, out_dir: str | Path | None = None, batch_size: int = 256
) -> tuple[EvalResult, list[str], Path]:
    """Top-1/top-5, per-class accuracy and confusion matrix on the test split; PNG and text written to out_dir."""
    model, ckpt = load_model(path)
    data = data or DataConfig(**ckpt["data_config"])
    _, test = load_splits(data)
    classes: list[str] = ckpt["classes"]
    if test.classes != classes:
        raise ValueError(
            f"the checkpoint was trained on {len(classes)} classes ({', '.join(classes[:5])}, ...), "
            f"but {data.dataset} has {len(test.classes)} ({', '.join(test.classes[:5])}, ...)"
        )
    result = evaluate(model, test, batch_size=batch_size, channels_last=False, progress=True)
    ckpt_path = Path(path)
    out = Path(out_dir) if out_dir else (ckpt_path if ckpt_path.is_dir() else ckpt_path.parent) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    plot_confusion(result.confusion, classes, out / "confusion.png")
    (out / "confusion.txt").write_text(confusion_text(result, classes) + "\n")
    return result, classes, out


def confusion_text(result: EvalResult, classes: list[str]) -> str:
    width = max(5, *(len(c) for c in classes))
    head = " " * width + " | " + " ".join(f"{c[:5]:>5}" for c in classes) + " | accuracy"
    lines = ["rows: true class, columns: predicted class", head, "-" * len(head)]
    for name, row, acc in zip(classes, result.confusion.tolist(), result.per_class.tolist(), strict=True):
        lines.append(f"{name:>{width}} | " + " ".join(f"{v:>5}" for v in row) + f" | {acc:8.2%}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Prediction:
    path: str
    labels: list[str]
    probabilities: list[float]


@dataclass(frozen=True)
class Predictor:
    """A model with what its inputs need: classes, input side, crop rule and normalisation."""

    model: torch.nn.Module
    classes: list[str]
    size: int
    crop: bool  # resize + centre crop (ImageNet style), or resize the whole image (digits, CIFAR)
    mean: tuple[float, ...]
    std: tuple[float, ...]


def load_predictor(path: str | Path, resolution: int | None = None) -> Predictor:
    """From a training checkpoint (run dir or .pt), or from converted weights (.safetensors)."""
    if Path(path).suffix == ".safetensors":
        from mobilenet.weights import class_names, load_pretrained

        model, meta = load_pretrained(path)
        names = class_names(meta, model.config.num_classes)
        mean, std = tuple(json.loads(meta["mean"])), tuple(json.loads(meta["std"]))
        return Predictor(model, names, resolution or 224, True, mean, std)
    model, ckpt = load_model(path)
    crop = ckpt["data_config"]["dataset"] == "imagefolder"
    size = resolution or int(ckpt["resolution"])
    return Predictor(model, ckpt["classes"], size, crop, tuple(ckpt["mean"]), tuple(ckpt["std"]))


@torch.no_grad()
def predict(
    path: str | Path,
    images: list[str | Path],
    top_k: int = 5,
    *,
    splits: int | None = None,
    resolution: int | None = None,
) -> list[Prediction]:
    """Top-k classes for each image file, preprocessed the way the model's training data was.

    `path`: a training checkpoint or run directory, or converted pretrained weights (.safetensors).
    `splits`: run the memory-efficient executor (`SplitInference`) with that many groups per block.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    p = load_predictor(path, resolution)
    model = SplitInference(p.model, splits) if splits is not None else p.model  # type: ignore[arg-type]
    tensors = []
    for image_path in images:
        image = open_image(Path(image_path))
        if p.crop:
            image = T.resize_center_crop(image, p.size)
        else:  # digits and CIFAR were trained on whole images at their native side
            image = image.resize((p.size, p.size), Image.Resampling.BILINEAR)
        tensors.append(T.pil_to_tensor(image))
    batch = T.normalize(torch.stack(tensors), p.mean, p.std)
    probs = model(batch).softmax(1)
    k = min(top_k, probs.shape[1])
    top = probs.topk(k, dim=1)
    return [
        Prediction(str(path_), [p.classes[i] for i in idx.tolist()], val.tolist())
        for path_, idx, val in zip(images, top.indices, top.values, strict=True)
    ]
