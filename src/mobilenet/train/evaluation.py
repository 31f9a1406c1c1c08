"""Evaluate a trained checkpoint on a dataset: top-1/top-5, per-class accuracy and a confusion matrix."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mobilenet.checkpoint import Checkpoint
from mobilenet.config import DataConfig
from mobilenet.data.splits import FolderSplit, load_splits, scan_folder
from mobilenet.files import beside, checkpoint_file
from mobilenet.train.loop import EvalResult, evaluate
from mobilenet.train.plots import plot_confusion


def evaluate_checkpoint(
    path: str | Path,
    data: DataConfig | None = None,
    out_dir: str | Path | None = None,
    batch_size: int = 256,
    full_decode: bool = False,
) -> tuple[EvalResult, list[str], Path]:
    """Top-1/top-5, per-class accuracy and confusion matrix on the test split; PNG and text written to
    `out_dir` (default: `eval/` in the run directory). Image folders decode large JPEGs at reduced size
    unless `full_decode`."""
    ckpt = Checkpoint.load(path)
    data = data or ckpt.data_config
    _, test = load_splits(data)
    if isinstance(test, FolderSplit):
        test = dataclasses.replace(test, reduced_decode=not full_decode)
    ckpt.check_classes(test.classes, data.dataset)
    result = evaluate(ckpt.build_model(), test, batch_size=batch_size, channels_last=False, progress=True)
    out = Path(out_dir) if out_dir else beside(path, "eval")
    try:
        out.mkdir(parents=True, exist_ok=True)
        plot_confusion(result.confusion, ckpt.classes, out / "confusion.png")
        (out / "confusion.txt").write_text(confusion_text(result, ckpt.classes) + "\n")
    except OSError as err:
        raise ValueError(f"cannot write the confusion matrix to {out}: {err.strerror}") from None
    return result, ckpt.classes, out


def confusion_text(result: EvalResult, classes: list[str]) -> str:
    width = max(5, *(len(c) for c in classes))
    head = " " * width + " | " + " ".join(f"{c[:5]:>5}" for c in classes) + " | accuracy"
    lines = ["rows: true class, columns: predicted class", head, "-" * len(head)]
    for name, row, acc in zip(classes, result.confusion.tolist(), result.per_class.tolist(), strict=True):
        lines.append(f"{name:>{width}} | " + " ".join(f"{v:>5}" for v in row) + f" | {acc:8.2%}")
    return "\n".join(lines)


def evaluation_text(
    path: str | Path,
    data: DataConfig | None = None,
    out_dir: str | Path | None = None,
    batch_size: int = 256,
    full_decode: bool = False,
) -> str:
    """`mobilenet eval`: evaluate, write the confusion matrix, and say which checkpoint was scored."""
    result, classes, out = evaluate_checkpoint(path, data, out_dir, batch_size, full_decode)
    images = int(result.confusion.sum())
    return "\n".join(
        [
            f"checkpoint {checkpoint_file(path)}",
            f"top-1 {result.top1:.2%}  top-5 {result.top5:.2%}  loss {result.loss:.4f}  ({images} images)",
            confusion_text(result, classes),
            f"confusion matrix: {out / 'confusion.png'} and {out / 'confusion.txt'}",
        ]
    )


def evaluate_weights(
    weights: str | Path, data_dir: str | Path, *, batch_size: int = 64, workers: int = 2, full_decode: bool = False
) -> tuple[EvalResult, dict[str, str]]:
    """Published or converted weights on an ImageNet-style folder (`DIR/val/CLASS/*.jpg` or
    `DIR/CLASS/*.jpg`), preprocessed the way the weights' source evaluates them.

    Class folders are matched to the weights' classes by name (e.g. `tench/`), or, when there is one
    folder per class, by sorted position (ImageNet's `n01440764/` ... WordNet IDs)."""
    from mobilenet.weights import load_pretrained

    model, meta = load_pretrained(weights)
    split = _weights_folder(model, meta, Path(data_dir), "val", workers, full_decode)
    result = evaluate(model, split, batch_size=batch_size, channels_last=False, progress=True)
    return result, meta


def weights_folder_splits(model: Any, meta: dict[str, str], data_dir: str | Path) -> tuple[FolderSplit, FolderSplit]:
    """(calibration, held-out) image folders for converted weights: `DIR/train` (else `DIR/val`) and
    `DIR/val` (else DIR itself for either), preprocessed as the weights' source evaluates."""
    root = Path(data_dir)
    return _weights_folder(model, meta, root, "train", 2, False), _weights_folder(model, meta, root, "val", 2, False)


def _weights_folder(
    model: Any, meta: dict[str, str], root: Path, sub: str, workers: int, full_decode: bool
) -> FolderSplit:
    import json

    from mobilenet.weights import class_names

    names = class_names(meta, model.config.num_classes)
    root = next((d for d in (root / sub, root / "val") if d.is_dir()), root)
    if not root.is_dir():
        raise ValueError(f"image folder {root} does not exist")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if found and set(found) <= set(names):
        classes = names
    elif len(found) == len(names):
        classes = found
    else:
        raise ValueError(
            f"{root} has {len(found)} class folders; name them after the weights' classes (e.g. "
            f"{names[0]!r}) or give all {len(names)} (ImageNet's WordNet-ID folders, in sorted order)"
        )
    _, samples = scan_folder(root, classes)
    return FolderSplit(
        samples,
        classes,
        int(meta.get("resolution", 224)),
        workers,
        tuple(json.loads(meta["mean"])),
        tuple(json.loads(meta["std"])),
        float(meta.get("crop", 0.875)),
        meta.get("interpolation", "bilinear"),
        not full_decode,
    )


def weights_evaluation_text(
    weights: str | Path, data_dir: str | Path, batch_size: int = 64, full_decode: bool = False
) -> str:
    """`mobilenet eval --weights`: top-1/top-5 beside the source's published top-1."""
    result, meta = evaluate_weights(weights, data_dir, batch_size=batch_size, full_decode=full_decode)
    images = int(result.confusion.sum())
    published = meta.get("published_top1", "")
    lines = [
        f"weights {meta.get('registry_name') or weights} at {meta.get('resolution', 224)} px "
        f"(crop {float(meta.get('crop', 0.875)):.3f}, {meta.get('interpolation', 'bilinear')}, "
        f"{'full' if full_decode else 'reduced-size'} JPEG decoding)",
        f"top-1 {result.top1:.2%}  top-5 {result.top5:.2%}  loss {result.loss:.4f}  ({images} images)",
    ]
    if published:
        lines.append(f"published top-1 {published}% on the 50,000 ImageNet validation images")
    return "\n".join(lines)
