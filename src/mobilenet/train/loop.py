"""Training and evaluation: recipes, the epoch loop, metrics, checkpoints and resume.

Recipes: "paper" (Sandler et al. 2018, sec. 6.1: RMSProp decay 0.9 momentum 0.9, weight decay 4e-5,
lr 0.045 at batch 96 decayed x0.98 per epoch), "cifar" (SGD momentum 0.9, lr 0.1 at batch 128, cosine),
and "digits", the quick default on scikit-learn's bundled digits.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from mobilenet.checkpoint import TrainingState
from mobilenet.config import TrainConfig
from mobilenet.data.splits import Split
from mobilenet.layers import fold_bn
from mobilenet.train import distributed

log = logging.getLogger("mobilenet")


def lr_factor(cfg: TrainConfig, progress: float) -> float:
    """Learning-rate multiplier at `progress` epochs: linear warm-up, then cosine or x lr_decay per epoch."""
    if progress < cfg.warmup_epochs:
        return (progress + 1e-3) / cfg.warmup_epochs
    if cfg.schedule == "exponential":
        return cfg.lr_decay ** math.floor(progress)
    span = max(cfg.epochs - cfg.warmup_epochs, 1e-9)
    return 0.5 * (1 + math.cos(math.pi * (progress - cfg.warmup_epochs) / span))


@dataclass
class EvalResult:
    loss: float
    top1: float
    top5: float
    confusion: Tensor  # (true, predicted) counts

    @property
    def per_class(self) -> Tensor:
        return self.confusion.diag() / self.confusion.sum(1).clamp(min=1)

    def accuracy_text(self, sep: str = " ") -> str:
        """Top-1 and, where there are more than 5 classes (with 5 or fewer it is always 100%), top-5."""
        top5 = f"{sep}top-5 {self.top5:.2%}" if self.confusion.shape[0] > 5 else ""
        return f"top-1 {self.top1:.2%}{top5}"


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: Split,
    *,
    batch_size: int = 256,
    bf16: bool = False,
    channels_last: bool = True,
    ctx: distributed.Context | None = None,
    progress: bool = False,
) -> EvalResult:
    """Loss, top-1/top-5 and the confusion matrix of `model` on `split` (summed over ranks). It runs a
    copy with BN folded into the convs (about half the time per image on a CPU; the same function)."""
    ctx = ctx or distributed.Context(device=next(model.parameters()).device)
    model.eval()
    model = fold_bn(model)
    k = len(split.classes)
    confusion = torch.zeros(k, k, dtype=torch.int64)
    loss_sum, top5 = 0.0, 0.0
    batches = split.batches(batch_size, train=False, rank=ctx.rank, world=ctx.world, device=ctx.device)
    total = -(-len(split) // (batch_size * ctx.world))  # batches on this rank
    for images, labels in tqdm(batches, desc="eval", total=total, disable=not progress, leave=False):
        images, labels = _to(images, labels, ctx.device, channels_last)
        with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(images)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        top = logits.topk(min(5, k), dim=1).indices
        top5 += (top == labels[:, None]).any(1).sum().item()
        confusion += torch.bincount(labels.cpu() * k + top[:, 0].cpu(), minlength=k * k).view(k, k)
    confusion = torch.tensor(distributed.all_sum(ctx, confusion.flatten().tolist()), dtype=torch.int64).view(k, k)
    loss_sum, top5 = distributed.all_sum(ctx, [loss_sum, top5])
    n = max(int(confusion.sum()), 1)
    return EvalResult(loss_sum / n, float(confusion.diag().sum()) / n, top5 / n, confusion)


def _to(images: Tensor, labels: Tensor, device: torch.device, channels_last: bool) -> tuple[Tensor, Tensor]:
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels.to(device, non_blocking=True)


def restore_rng(state: TrainingState, device: torch.device) -> None:
    """The random streams a resumed run continues from: the CPU generator, and the GPU's where the run
    trained on one (dropout on a GPU draws from the GPU's generator)."""
    torch.set_rng_state(state.rng)
    if device.type == "cuda" and state.cuda_rng is not None:
        torch.cuda.set_rng_state(state.cuda_rng.cpu(), device)


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    split: Split,
    cfg: TrainConfig,
    epoch: int,
    *,
    ctx: distributed.Context,
    bf16: bool,
    ema: AveragedModel | None = None,
    resume: TrainingState | None = None,
    on_step: Callable[[int, tuple[float, float, int]], None] | None = None,
) -> dict[str, float]:
    """One pass over this rank's shard; returns loss, accuracy and images/s summed over ranks.

    `on_step(steps_done, partial_sums)` is called every `cfg.checkpoint_every` steps (not after the last);
    `resume` (a step checkpoint's state) continues the epoch where it stopped: the batches before it are
    drawn again without training, so augmentation and order replay exactly, and the RNG is restored.
    """
    model.train()
    torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout noise depends only on (seed, epoch): resumable
    steps = math.ceil(math.ceil(len(split) / ctx.world) / cfg.batch_size)
    skip = resume.step if resume is not None else 0
    loss_sum, correct, seen = resume.partial if resume is not None else (0.0, 0.0, 0)
    start = time.perf_counter()
    batches = split.batches(
        cfg.batch_size, train=True, epoch=epoch, seed=cfg.seed, rank=ctx.rank, world=ctx.world, device=ctx.device
    )
    bar = tqdm(batches, total=steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not ctx.is_main, leave=False)
    for step, (images, labels) in enumerate(bar):
        if step < skip:
            continue
        if resume is not None and step == skip:
            restore_rng(resume, ctx.device)
        for group in optimizer.param_groups:
            group["lr"] = cfg.scaled_lr(ctx.world) * lr_factor(cfg, epoch + step / steps)
        images, labels = _to(images, labels, ctx.device, cfg.channels_last)
        with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(images)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}, step {step}: lower the lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.update_parameters(model)
        loss_sum += loss.item() * len(labels)
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
        rate = seen * ctx.world / (time.perf_counter() - start)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", img_s=f"{rate:.0f}")
        done = step + 1
        if on_step is not None and cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < steps:
            on_step(done, (loss_sum, correct, seen))
    loss_sum, correct, total = distributed.all_sum(ctx, [loss_sum, correct, float(seen)])
    elapsed = time.perf_counter() - start
    return {"train_loss": loss_sum / total, "train_acc": correct / total, "images_per_s": total / elapsed}
