"""Training curves and confusion matrices as PNG (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mobilenet.figures import file_figure


def plot_curves(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Loss and accuracy per epoch, train vs test."""
    epochs = [r["epoch"] for r in rows]
    fig = file_figure(10, 4)
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    loss_ax.plot(epochs, [r["test_loss"] for r in rows], "o-", label="test")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    acc_ax.plot(epochs, [100 * r["train_acc"] for r in rows], "o-", label="train")
    acc_ax.plot(epochs, [100 * r["test_acc"] for r in rows], "o-", label="test top-1")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_confusion(matrix: torch.Tensor, classes: Sequence[str], path: Path) -> None:
    """Rows are true classes, columns predictions; cells show counts (labels drawn for up to 30 classes)."""
    k = len(classes)
    size = min(4 + 0.4 * k, 20)
    fig = file_figure(size, size)
    ax = fig.subplots()
    ax.imshow(matrix.numpy(), cmap="Blues")
    if k <= 30:
        ax.set_xticks(range(k), classes, rotation=90)
        ax.set_yticks(range(k), classes)
        peak = float(matrix.max()) or 1.0
        for i in range(k):
            for j in range(k):
                value = int(matrix[i, j])
                if value:
                    color = "white" if value > peak / 2 else "black"
                    ax.text(j, i, str(value), ha="center", va="center", color=color, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
