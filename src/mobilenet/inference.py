"""Use a trained checkpoint: rebuild its model, evaluate it on a dataset, classify image files."""

from __future__ import annotations

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


@torch.no_grad()
def predict(
    path: str | Path, images: list[str | Path], top_k: int = 5, *, splits: int | None = None
) -> list[Prediction]:
    """Top-k classes for each image file, preprocessed the way the checkpoint's training data was.

    `splits`: run the memory-efficient executor (`SplitInference`) with that many groups per block.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    model: torch.nn.Module
    model, ckpt = load_model(path)
    if splits is not None:
        model = SplitInference(model, splits)
    size, dataset = int(ckpt["resolution"]), ckpt["data_config"]["dataset"]
    tensors = []
    for image_path in images:
        image = open_image(Path(image_path))
        if dataset == "imagefolder":
            image = T.resize_center_crop(image, size)
        else:  # digits and CIFAR were trained on whole images at their native side
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        tensors.append(T.pil_to_tensor(image))
    batch = T.normalize(torch.stack(tensors), tuple(ckpt["mean"]), tuple(ckpt["std"]))
    probs = model(batch).softmax(1)
    k = min(top_k, probs.shape[1])
    top = probs.topk(k, dim=1)
    classes = ckpt["classes"]
    return [
        Prediction(str(p), [classes[i] for i in idx.tolist()], val.tolist())
        for p, idx, val in zip(images, top.indices, top.values, strict=True)
    ]
