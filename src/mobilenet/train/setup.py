"""What a training process sets up around the loop: threads, the precision choice, and its hold on the
run directory (a lock, cleanup of a run that never finished an epoch, the message on Ctrl-C)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from mobilenet.checkpoint import Checkpoint
from mobilenet.config import DataConfig, ModelConfig, TrainConfig
from mobilenet.cores import available_cores, physical_memory
from mobilenet.data.splits import Split
from mobilenet.files import LAST, run_lock
from mobilenet.specs import check_resolution, network_spec
from mobilenet.train import distributed
from mobilenet.train.optim import choose_bf16

log = logging.getLogger("mobilenet")


def set_threads(cfg: TrainConfig, ctx: distributed.Context) -> int:
    """`cfg.threads`, or the cores this process may use shared among the ranks on this machine: more
    threads than cores makes every step wait on the slowest (an epoch ran 8x slower oversubscribed)."""
    threads, cores = cfg.threads, available_cores()
    if not threads:
        threads = max(1, cores // ctx.local_world)
    elif threads * ctx.local_world > cores and ctx.is_main:
        log.warning(
            f"--threads {threads} x {ctx.local_world} process(es) on {cores} core(s): more threads than cores "
            "slows every step (leave --threads out to use the cores; a resumed run may change it)"
        )
    torch.set_num_threads(threads)
    return threads


def choose_precision(model: nn.Module, train: Split, cfg: TrainConfig, ctx: distributed.Context) -> TrainConfig:
    """Resolve `precision="auto"` once, by timing (see `choose_bf16`), and record the answer in the config,
    so a resumed run trains exactly as it started."""
    if cfg.precision != "auto":
        return cfg
    images, labels = next(iter(train.batches(cfg.batch_size, train=True, seed=cfg.seed, device=ctx.device)))
    if cfg.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    bf16 = choose_bf16(model, images, labels.to(ctx.device), cfg, ctx.device)
    bf16 = bool(distributed.broadcast(ctx, bf16))  # every rank trains alike
    if ctx.is_main:
        log.info(
            "precision auto: %s (timed a few training steps of both on this %s)",
            "bf16" if bf16 else "fp32",
            ctx.device.type,
        )
    return dataclasses.replace(cfg, precision="bf16" if bf16 else "fp32")


IN_MEMORY_IMAGES = {"digits": 1797, "cifar10": 60000, "cifar100": 60000}  # held whole, as uint8


def check_training_fits(model_cfg: ModelConfig, data_cfg: DataConfig, batch: int) -> None:
    """Refuse, before any data is loaded or directory made, a run whose smallest possible memory is more
    than this machine has: every layer's output kept for the backward pass (fp32, the whole batch), the
    weights with their gradients and one optimizer buffer, and an in-memory data set at the chosen side
    (digits are resized in fp32 first). Real use is a few times this; the check only catches what cannot
    run at all, e.g. `--resolution 100000` or `--width 5000`, which used to end in an allocator traceback."""
    from mobilenet.costs import model_costs, totals

    side = data_cfg.resolution or (224 if data_cfg.dataset == "imagefolder" else 32)
    check_resolution(network_spec(model_cfg), side)
    counts = totals(model_costs(dataclasses.replace(model_cfg, num_classes=1), side))
    need = 4 * (batch * counts.activations + 3 * counts.params)
    images = IN_MEMORY_IMAGES.get(data_cfg.dataset, 0)
    need += images * side * side * (3 + (4 if data_cfg.dataset == "digits" else 0))
    total = physical_memory()
    if total and need > total:
        raise ValueError(
            f"width {model_cfg.width:g} at {side} px with batch {batch} needs at least {need / 1e9:,.0f} GB "
            f"(activations kept for training, weights with gradients and optimizer state, the data set), "
            f"more than this machine's {total / 1e9:,.0f} GB; lower --resolution, --width or --batch-size"
        )


@contextlib.contextmanager
def guarded(run_dir: Path, ctx: distributed.Context, fresh: bool, keep_dir: bool = False) -> Iterator[None]:
    """Rank 0 holds the run directory's lock. A new run that fails before its first checkpoint leaves no
    directory behind (it could be neither resumed nor re-run), or, with `keep_dir` (an empty directory the
    user made for it), an empty one; an interrupted run says what it kept."""
    if not ctx.is_main:
        yield
        return
    with run_lock(run_dir):
        try:
            yield
        except KeyboardInterrupt:
            if (run_dir / LAST).exists():
                ckpt = Checkpoint.load(run_dir / LAST)
                step = ckpt.training.step if ckpt.training is not None else 0
                where = f"step {step} of epoch {ckpt.epoch + 1}" if step else f"after epoch {ckpt.epoch}"
                log.error(
                    f"interrupted: {run_dir / LAST} ({where}) is kept; continue: mobilenet train --resume {run_dir}"
                )
            elif fresh:
                _discard(run_dir, keep_dir)
                log.error("interrupted before the first epoch ended: nothing was kept")
            raise
        except BaseException:
            if fresh and not (run_dir / LAST).exists():
                _discard(run_dir, keep_dir)
            raise


def _discard(run_dir: Path, keep_dir: bool) -> None:
    if not keep_dir:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for child in run_dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
