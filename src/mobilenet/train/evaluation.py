"""Evaluate a trained checkpoint on a dataset: top-1/top-5, per-class accuracy and a confusion matrix."""

from __future__ import annotations

from pathlib import Path

from mobilenet.checkpoint import Checkpoint
from mobilenet.config import DataConfig
from mobilenet.data.splits import load_splits
from mobilenet.files import beside, checkpoint_file
from mobilenet.train.loop import EvalResult, evaluate
from mobilenet.train.plots import plot_confusion


def evaluate_checkpoint(
    path: str | Path, data: DataConfig | None = None, out_dir: str | Path | None = None, batch_size: int = 256
) -> tuple[EvalResult, list[str], Path]:
    """Top-1/top-5, per-class accuracy and confusion matrix on the test split; PNG and text written to
    `out_dir` (default: `eval/` in the run directory)."""
    ckpt = Checkpoint.load(path)
    data = data or ckpt.data_config
    _, test = load_splits(data)
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
    path: str | Path, data: DataConfig | None = None, out_dir: str | Path | None = None, batch_size: int = 256
) -> str:
    """`mobilenet eval`: evaluate, write the confusion matrix, and say which checkpoint was scored."""
    result, classes, out = evaluate_checkpoint(path, data, out_dir, batch_size)
    images = int(result.confusion.sum())
    return "\n".join(
        [
            f"checkpoint {checkpoint_file(path)}",
            f"top-1 {result.top1:.2%}  top-5 {result.top5:.2%}  loss {result.loss:.4f}  ({images} images)",
            confusion_text(result, classes),
            f"confusion matrix: {out / 'confusion.png'} and {out / 'confusion.txt'}",
        ]
    )
