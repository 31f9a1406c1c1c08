"""A whole training run: its directory, metrics files, curves, checkpoints every epoch, and resume.

Resuming restores model, optimizer, EMA, RNG and epoch. Data order, augmentation and dropout depend only
on (seed, epoch), so a run killed and resumed ends with the same weights as one that never stopped.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from mobilenet.checkpoint import Checkpoint, TrainingState, check_class_count
from mobilenet.config import DataConfig, ModelConfig, TrainConfig, plural
from mobilenet.data.splits import Split, load_splits
from mobilenet.files import BEST, LAST, atomic_path, interrupts_deferred, new_run_dir
from mobilenet.models import MobileNet, build_model
from mobilenet.train import distributed
from mobilenet.train.loop import evaluate, restore_rng, train_one_epoch
from mobilenet.train.optim import ema_avg_fn, make_optimizer
from mobilenet.train.plots import plot_curves
from mobilenet.train.setup import check_training_fits, choose_precision, guarded, set_threads

log = logging.getLogger("mobilenet")


def _choose_run_dir(ctx: distributed.Context, out: str | None, resume: str | None, stem: str) -> Path:
    """Rank 0 picks (or checks) the directory; every rank gets the answer, or the same error."""
    answer: str | tuple[str, str]
    if ctx.is_main:
        try:
            answer = str(Path(resume) if resume else new_run_dir(out, stem))
        except ValueError as err:
            answer = ("error", str(err))
    else:
        answer = ""
    answer = distributed.broadcast(ctx, answer)
    if isinstance(answer, (tuple, list)):
        raise ValueError(answer[1])
    return Path(answer)


def _pretrained(
    path: str, model_cfg: ModelConfig, num_classes: int, splits: tuple[Split, Split], adapt: dict[str, Any]
) -> tuple[MobileNet, ModelConfig]:
    """Converted weights with a new `num_classes` head; the architecture is the weights', the inputs are
    normalised as the weights were trained (e.g. [-1, 1] for Keras/Slim)."""
    from mobilenet.weights import load_pretrained

    model, meta = load_pretrained(path, num_classes=num_classes, dropout=model_cfg.dropout, **adapt)
    mean, std = tuple(json.loads(meta["mean"])), tuple(json.loads(meta["std"]))
    for split in splits:
        split.mean, split.std = mean, std
    log.info(
        "starting from %s (%s weights: %s width %g, %s)",
        path,
        meta.get("source", "converted"),
        model.config.arch,
        model.config.width,
        meta.get("preprocessing", ""),
    )
    return model.train(), model.config


PLOT_EVERY_S = 30.0  # curves.png is redrawn at most this often (and after the last epoch)


def _write_metrics(run_dir: Path, rows: list[dict[str, Any]], *, plot: bool = True) -> None:
    """Metrics as CSV and JSON lines after every epoch; the plot (0.3 s of matplotlib) when `plot`."""
    with (run_dir / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if plot:
        with atomic_path(run_dir / "curves.png", ".png") as tmp:
            plot_curves(rows, tmp)


def fit(
    model_cfg: ModelConfig,
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    *,
    out: str | None = None,
    resume: str | None = None,
    num_classes: int | None = None,
    machine: dict[str, Any] | None = None,
    adapt: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train; with `resume` (a run directory) continue it from its last checkpoint with its saved configs,
    except for `machine`: the `MACHINE_FIELDS` given anew (threads, device, workers, data_dir). With
    `train_cfg.init`, the network is the weights' own, changed only by `adapt` (STRIDE_FIELDS: `cifar`).

    The classifier gets as many outputs as the data has classes; `num_classes`, if given, must agree.
    """
    ckpt = Checkpoint.load(Path(resume) / LAST) if resume else None
    if ckpt is not None:
        model_cfg, data_cfg, train_cfg = ckpt.model_config, ckpt.data_config, ckpt.train_config
        data_fields = {f.name for f in dataclasses.fields(data_cfg)}
        data_cfg = dataclasses.replace(data_cfg, **{k: v for k, v in (machine or {}).items() if k in data_fields})
        train_cfg = dataclasses.replace(train_cfg, **{k: v for k, v in (machine or {}).items() if k not in data_fields})
    ctx = distributed.setup(train_cfg.device)
    try:
        return _fit(ctx, model_cfg, data_cfg, train_cfg, out, resume, ckpt, num_classes, adapt or {})
    finally:
        distributed.teardown(ctx)


def _fit(
    ctx: distributed.Context,
    model_cfg: ModelConfig,
    data_cfg: DataConfig,
    cfg: TrainConfig,
    out: str | None,
    resume: str | None,
    ckpt: Checkpoint | None,
    num_classes: int | None,
    adapt: dict[str, Any],
) -> dict[str, Any]:
    if not (cfg.init and ckpt is None):  # with --init the network is the weights' own, known once they are read
        check_training_fits(model_cfg, data_cfg, cfg.batch_size)
    train, test = load_splits(data_cfg)
    if num_classes is not None:
        check_class_count(num_classes, len(train.classes), data_cfg.dataset)
    if ckpt is None:
        model_cfg = dataclasses.replace(model_cfg, num_classes=len(train.classes))
    else:
        ckpt.check_classes(train.classes, data_cfg.dataset)
    made = Path(out).is_dir() if out else False  # by the user, empty: kept if the run fails
    run_dir = _choose_run_dir(ctx, out, resume, f"{data_cfg.dataset}-{model_cfg.arch}")
    with guarded(run_dir, ctx, fresh=resume is None, keep_dir=made):
        if ckpt is not None and ckpt.epoch >= cfg.epochs:  # checked under the run's lock
            if ctx.is_main:
                log.info(f"{run_dir} has finished all {plural(cfg.epochs, 'epoch')}; nothing to train")
            final = ckpt.history[-1] if ckpt.history else {}
            return {"run_dir": str(run_dir), "best_acc": ckpt.best_acc, "final": final}
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank and every run
        model: MobileNet
        if cfg.init and ckpt is None:
            model, model_cfg = _pretrained(cfg.init, model_cfg, len(train.classes), (train, test), adapt)
        else:
            model = build_model(model_cfg)
            if ckpt is not None:  # the normalisation the run started with (pretrained weights bring their own)
                for split in (train, test):
                    split.mean, split.std = ckpt.mean, ckpt.std
        if cfg.freeze_backbone:
            model.freeze_backbone()
        model = model.to(ctx.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        ema = None
        if cfg.ema_decay:
            ema = AveragedModel(model, multi_avg_fn=ema_avg_fn(cfg.ema_decay), use_buffers=True)
        lr = cfg.scaled_lr(ctx.world)
        optimizer = make_optimizer(model, cfg, lr)
        rows: list[dict[str, Any]] = []
        best, start = 0.0, 0
        if ckpt is not None:
            state = ckpt.training
            if state is None:
                raise ValueError(f"{ckpt.path} holds no optimizer state, so it cannot be resumed")
            model.load_state_dict(state.raw_model if state.raw_model is not None else ckpt.weights)
            optimizer.load_state_dict(state.optimizer)
            if ema is not None:
                if state.ema is None:
                    raise ValueError(f"{ckpt.path} was trained without EMA, so it cannot resume with it")
                ema.load_state_dict(state.ema)
            restore_rng(state, ctx.device)
            rows, best, start = list(ckpt.history), ckpt.best_acc, ckpt.epoch
        trained: nn.Module = DistributedDataParallel(model) if ctx.world > 1 else model
        threads = set_threads(cfg, ctx)
        cfg = choose_precision(model, train, cfg, ctx)
        bf16 = cfg.precision == "bf16"
        if ctx.is_main:
            config = {
                "model": dataclasses.asdict(model_cfg),
                "data": dataclasses.asdict(data_cfg),
                "train": dataclasses.asdict(cfg),
                "classes": train.classes,
                "resolution": train.resolution,  # the side trained at (data.resolution 0 means the data's own)
                "world_size": ctx.world,
            }
            (run_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
            log.info(
                "training %s (width %s) on %s: %d train / %d test images, %s, %s x %d threads, "
                "lr %.4g (%g at batch %d, scaled to the global batch %d x %d processes), run dir %s",
                model_cfg.arch,
                model_cfg.width,
                data_cfg.dataset,
                len(train),
                len(test),
                "bf16" if bf16 else "fp32",
                ctx.device,
                threads,
                lr,
                cfg.lr,
                cfg.lr_batch,
                cfg.batch_size,
                ctx.world,
                run_dir,
            )

        def snapshot(epochs_done: int, step: int = 0, partial: tuple[float, float, int] = (0, 0, 0)) -> Checkpoint:
            return Checkpoint(
                weights=(ema.module if ema is not None else model).state_dict(),  # deploy what was scored
                model_config=model_cfg,
                data_config=data_cfg,
                train_config=cfg,
                classes=train.classes,
                mean=tuple(train.mean),
                std=tuple(train.std),
                resolution=train.resolution,
                epoch=epochs_done,
                best_acc=best,
                history=rows,
                training=TrainingState(
                    optimizer=optimizer.state_dict(),
                    rng=torch.get_rng_state(),
                    cuda_rng=torch.cuda.get_rng_state(ctx.device) if ctx.device.type == "cuda" else None,
                    ema=ema.state_dict() if ema is not None else None,
                    raw_model=model.state_dict() if ema is not None else None,
                    step=step,
                    partial=partial,
                ),
            )

        def save_step(epoch: int) -> Callable[[int, tuple[float, float, int]], None] | None:
            if not (ctx.is_main and cfg.checkpoint_every):
                return None

            def save(step: int, partial: tuple[float, float, int]) -> None:
                with interrupts_deferred():
                    snapshot(epoch, step, partial).save(run_dir / LAST)

            return save

        if cfg.checkpoint_every and ctx.world > 1:
            raise ValueError("--checkpoint-every saves one process's place in an epoch; use it without torchrun")
        resume_step = ckpt.training if ckpt is not None and ckpt.training is not None and ckpt.training.step else None
        plotted = -PLOT_EVERY_S  # the first epoch draws one
        for epoch in range(start, cfg.epochs):
            partway = resume_step if epoch == start else None
            stats = train_one_epoch(
                trained,
                optimizer,
                train,
                cfg,
                epoch,
                ctx=ctx,
                bf16=bf16,
                ema=ema,
                resume=partway,
                on_step=save_step(epoch),
            )
            scored = ema.module if ema is not None else model
            result = evaluate(
                scored, test, batch_size=2 * cfg.batch_size, bf16=bf16, channels_last=cfg.channels_last, ctx=ctx
            )
            row = {
                "epoch": epoch + 1,
                "lr": optimizer.param_groups[0]["lr"],
                **stats,
                "test_loss": result.loss,
                "test_acc": result.top1,
                "test_top5": result.top5,
            }
            rows.append(row)
            improved = result.top1 > best or not (run_dir / BEST).exists()  # a first best.pt even at 0%
            best = max(best, result.top1)
            if ctx.is_main:
                tqdm.write(
                    f"epoch {epoch + 1}/{cfg.epochs}: train loss {stats['train_loss']:.4f} acc {stats['train_acc']:.2%}"
                    f" | test loss {result.loss:.4f} {result.accuracy_text()}"
                    f" | {stats['images_per_s']:.0f} img/s"
                )
                with interrupts_deferred():  # the epoch's files are written whole, then Ctrl-C acts
                    saved = snapshot(epoch + 1)
                    saved.save(run_dir / LAST)
                    if improved:
                        saved.save(run_dir / BEST)
                    due = epoch + 1 == cfg.epochs or time.monotonic() - plotted >= PLOT_EVERY_S
                    _write_metrics(run_dir, rows, plot=due)
                if due:
                    plotted = time.monotonic()
    if ctx.is_main:
        log.info("best test top-1 %.2f%%; checkpoints, metrics and curves in %s", 100 * best, run_dir)
    return {"run_dir": str(run_dir), "best_acc": best, "final": rows[-1] if rows else {}}
