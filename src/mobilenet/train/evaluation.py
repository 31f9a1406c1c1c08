"""Evaluate a trained checkpoint on a dataset: top-1/top-5, per-class accuracy and a confusion matrix."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mobilenet.checkpoint import Checkpoint
from mobilenet.config import DataConfig, plural
from mobilenet.data.photos import EVAL_CROP_FRACTION
from mobilenet.data.splits import ArraySplit, FolderSplit, load_splits, scan_folder
from mobilenet.files import beside, checkpoint_file
from mobilenet.train.loop import EvalResult, evaluate
from mobilenet.train.plots import plot_confusion


def held_out_split(
    ckpt: Checkpoint, data: DataConfig | None = None, data_dir: str | Path | None = None, full_decode: bool = False
) -> ArraySplit | FolderSplit:
    """The held-out split to score `ckpt` on, fed as its training fed it: its resolution and normalisation.

    `data`: another dataset (default: the one it was trained on); `data_dir`: that dataset's folder or
    archive. An image folder needs only its `val/` (or the class folders themselves), matched to the
    checkpoint's classes by name; an unreadable image there is left out and listed in `skipped`."""
    data = data or ckpt.data_config
    if data_dir is not None:
        if data.dataset == "digits":
            raise ValueError(
                "digits ships with scikit-learn and has no folder; to score images on disk give "
                "--dataset imagefolder with --data-dir (DIR/val/CLASS/*.png or DIR/CLASS/*.png)"
            )
        data = dataclasses.replace(data, data_dir=str(data_dir))
    if data.dataset != "imagefolder":
        _, test = load_splits(dataclasses.replace(data, resolution=data.resolution or ckpt.resolution))
        ckpt.check_classes(test.classes, data.dataset)
        return test
    if not data.data_dir:
        raise ValueError("dataset 'imagefolder' needs --data-dir (a folder holding val/, or the class folders)")
    root = Path(data.data_dir)
    folder = root / "val" if (root / "val").is_dir() else root
    _, samples = scan_folder(folder, ckpt.classes)
    own = ckpt.data_config.dataset == "imagefolder"  # else digits/CIFAR: the whole image, no border cut
    return FolderSplit(
        samples,
        ckpt.classes,
        ckpt.resolution,
        data.workers,
        ckpt.mean,
        ckpt.std,
        crop=EVAL_CROP_FRACTION if own else 1.0,
        reduced_decode=not full_decode,
        skip_unreadable=True,
    )


def eval_dir(
    path: str | Path,
    own: DataConfig,
    out_dir: str | Path | None = None,
    data: DataConfig | None = None,
    data_dir: str | Path | None = None,
) -> Path:
    """Where `eval` writes: `out_dir` if given; else `eval/` in the run directory for the run's own data
    (`own`, its data config), `eval-<folder or data set>/` for any other, so that scoring a folder does
    not overwrite the held-out split's confusion matrix."""
    if out_dir:
        return Path(out_dir)
    dataset = data.dataset if data else own.dataset
    folder = data_dir or (data.data_dir if data else None)
    same_folder = folder is None or (own.data_dir and Path(folder).resolve() == Path(own.data_dir).resolve())
    if dataset == own.dataset and same_folder:
        return beside(path, "eval")
    return beside(path, f"eval-{Path(folder).resolve().name if folder else dataset}")


def score_checkpoint(
    path: str | Path,
    data: DataConfig | None = None,
    batch_size: int = 256,
    full_decode: bool = False,
    data_dir: str | Path | None = None,
) -> tuple[EvalResult, Checkpoint, list[str]]:
    """Top-1/top-5, per-class accuracy and confusion matrix on the test split (`held_out_split`), the
    checkpoint, and the images that could not be read. Image folders decode large JPEGs at reduced
    size unless `full_decode`."""
    ckpt = Checkpoint.load(path)
    test = held_out_split(ckpt, data, data_dir, full_decode)
    result = evaluate(ckpt.build_model(), test, batch_size=batch_size, channels_last=False, progress=True)
    skipped = test.skipped if isinstance(test, FolderSplit) else []
    _check_scored(result, skipped)
    return result, ckpt, skipped


def write_confusion(result: EvalResult, classes: list[str], out: Path) -> None:
    """confusion.png and confusion.txt in `out`; ValueError naming the folder when it cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        plot_confusion(result.confusion, classes, out / "confusion.png")
        (out / "confusion.txt").write_text(confusion_text(result, classes) + "\n")
    except OSError as err:
        raise ValueError(f"cannot write the confusion matrix to {out}: {err.strerror}") from None


def evaluate_checkpoint(
    path: str | Path,
    data: DataConfig | None = None,
    out_dir: str | Path | None = None,
    batch_size: int = 256,
    full_decode: bool = False,
    data_dir: str | Path | None = None,
) -> tuple[EvalResult, list[str], Path, list[str]]:
    """`score_checkpoint`, with the confusion matrix (PNG and text) written to `eval_dir`."""
    result, ckpt, skipped = score_checkpoint(path, data, batch_size, full_decode, data_dir)
    out = eval_dir(path, ckpt.data_config, out_dir, data, data_dir)
    write_confusion(result, ckpt.classes, out)
    return result, ckpt.classes, out, skipped


def confusion_text(result: EvalResult, classes: list[str]) -> str:
    """The matrix as text. Columns are headed by the class names when they all fit in 5 characters,
    else by class number (each row names its number and class). A class with no images has no accuracy."""
    short = all(len(c) <= 5 for c in classes)
    columns = classes if short else [str(i) for i in range(len(classes))]
    rows = classes if short else [f"{i} {c}" for i, c in enumerate(classes)]
    width = max(5, *(len(r) for r in rows))
    head = " " * width + " | " + " ".join(f"{c:>5}" for c in columns) + " | accuracy"
    title = "rows: true class, columns: predicted class" + ("" if short else " (by number)")
    lines = [title, head, "-" * len(head)]
    counts = result.confusion.sum(1).tolist()
    for name, row, acc, n in zip(rows, result.confusion.tolist(), result.per_class.tolist(), counts, strict=True):
        cell = f"{acc:8.2%}" if n else f"{'n/a':>8}"
        lines.append(f"{name:>{width}} | " + " ".join(f"{v:>5}" for v in row) + f" | {cell}")
    return "\n".join(lines)


def evaluation_text(
    path: str | Path,
    data: DataConfig | None = None,
    out_dir: str | Path | None = None,
    batch_size: int = 256,
    full_decode: bool = False,
    data_dir: str | Path | None = None,
) -> tuple[str, int]:
    """`mobilenet eval`: evaluate, write the confusion matrix, and say which checkpoint was scored; exit
    code 1 when some images could not be read (each is named; the rest are scored) or the confusion
    matrix could not be written (the scores are still shown)."""
    result, ckpt, skipped = score_checkpoint(path, data, batch_size, full_decode, data_dir)
    classes = ckpt.classes
    out = eval_dir(path, ckpt.data_config, out_dir, data, data_dir)
    try:
        write_confusion(result, classes, out)
        written, unwritten = f"confusion matrix: {out / 'confusion.png'} and {out / 'confusion.txt'}", False
    except ValueError as err:
        written, unwritten = f"{err}; give --out DIR to write it elsewhere", True
    images = int(result.confusion.sum())
    lines = [
        f"checkpoint {checkpoint_file(path)}",
        f"{result.accuracy_text('  ')}  loss {result.loss:.4f}  ({plural(images, 'image')})",
        confusion_text(result, classes),
        written,
    ]
    return "\n".join(lines + _skipped_lines(skipped)), 1 if skipped or unwritten else 0


def evaluate_weights(
    weights: str | Path, data_dir: str | Path, *, batch_size: int = 64, workers: int = 2, full_decode: bool = False
) -> tuple[EvalResult, dict[str, str], list[str]]:
    """Published or converted weights on an ImageNet-style folder (`DIR/val/CLASS/*.jpg` or
    `DIR/CLASS/*.jpg`), preprocessed the way the weights' source evaluates them.

    Class folders are matched to the weights' classes by name (e.g. `tench/`), or, when there is one
    folder per class, by sorted position (ImageNet's `n01440764/` ... WordNet IDs)."""
    from mobilenet.weights import load_pretrained

    model, meta = load_pretrained(weights)
    split = dataclasses.replace(
        _weights_folder(model, meta, Path(data_dir), "val", workers, full_decode), skip_unreadable=True
    )
    result = evaluate(model, split, batch_size=batch_size, channels_last=False, progress=True)
    _check_scored(result, split.skipped)
    return result, meta, split.skipped


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
) -> tuple[str, int]:
    """`mobilenet eval --weights`: top-1/top-5 beside the source's published top-1 (exit code 1 when some
    images could not be read: they are named and left out)."""
    result, meta, skipped = evaluate_weights(weights, data_dir, batch_size=batch_size, full_decode=full_decode)
    images = int(result.confusion.sum())
    published = meta.get("published_top1", "")
    lines = [
        f"weights {meta.get('registry_name') or weights} at {meta.get('resolution', 224)} px "
        f"(crop {float(meta.get('crop', 0.875)):.3f}, {meta.get('interpolation', 'bilinear')}, "
        f"{'full' if full_decode else 'reduced-size'} JPEG decoding)",
        f"{result.accuracy_text('  ')}  loss {result.loss:.4f}  ({plural(images, 'image')})",
    ]
    if published:
        lines.append(f"published top-1 {published}% on the 50,000 ImageNet validation images")
    return "\n".join(lines + _skipped_lines(skipped)), 1 if skipped else 0


def _check_scored(result: EvalResult, skipped: list[str]) -> None:
    if not int(result.confusion.sum()):
        raise ValueError(f"no image could be read: {skipped[0] if skipped else 'there are none'}")


def _skipped_lines(skipped: list[str]) -> list[str]:
    if not skipped:
        return []
    return [f"left out {plural(len(skipped), 'unreadable image')}:"] + [f"  {r}" for r in skipped]
