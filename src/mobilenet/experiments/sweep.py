"""Train many variants of one recipe over several seeds, each run cached on disk, and summarise them.

A run lives in `<out>/runs/<variant>-s<seed>-<hash>`, where the hash covers every config that decides
its result: asking again for the same run reads its finished checkpoint, a run that was interrupted
resumes from its last epoch (bit-identical to never stopping, see `fit`), and a changed recipe (say more
epochs) gets a new directory instead of mixing results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import math
import shutil
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobilenet.config import RECIPES, DataConfig, ModelConfig, Recipe, TrainConfig
from mobilenet.costs import model_costs, totals
from mobilenet.files import LAST

log = logging.getLogger("mobilenet")

# The recipe each dataset trains with in the experiments (the `mobilenet train` presets).
RECIPE_FOR_DATASET = {"digits": "digits", "cifar10": "cifar", "cifar100": "cifar", "imagefolder": "paper"}


# The default regime on digits: the whole training split saturates near 98-99% for every variant, so
# the runs learn from a fixed stratified 300 of its 1,437 images (30 per class), where they separate.
DEFAULT_TRAIN_IMAGES = {"digits": 300}


def experiment_recipe(
    dataset: str, data_dir: str | None, epochs: int | None, resolution: int = 0, train_images: int | None = None
) -> Recipe:
    """The preset for `dataset`, pointed at `data_dir`, with `epochs`, `resolution` and a training subset
    of `train_images` where given (None: the dataset's default regime, 0: every training image)."""
    if train_images is None:
        train_images = DEFAULT_TRAIN_IMAGES.get(dataset, 0)
    if dataset not in RECIPE_FOR_DATASET:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of: {', '.join(RECIPE_FOR_DATASET)}")
    recipe = RECIPES[RECIPE_FOR_DATASET[dataset]]
    data = DataConfig(dataset, data_dir, resolution=resolution or recipe.data.resolution, train_images=train_images)
    train = recipe.train if epochs is None else dataclasses.replace(recipe.train, epochs=epochs)
    return Recipe(recipe.model, data, train)


def subset_text(data: DataConfig) -> str:
    """ ", trained on N of the training images" where the runs use a subset; "" otherwise."""
    return f", trained on a stratified {data.train_images} of the training images" if data.train_images else ""


def native_resolution(data: DataConfig) -> int:
    return data.resolution or (224 if data.dataset == "imagefolder" else 32)


@dataclass(frozen=True)
class Variant:
    """One network to train: a short name for tables and plots, its model and its data (resolution)."""

    name: str
    model: ModelConfig
    data: DataConfig

    @property
    def macs(self) -> int:
        return totals(model_costs(self.model, native_resolution(self.data))).macs

    @property
    def params(self) -> int:
        return totals(model_costs(self.model, native_resolution(self.data))).params


@dataclass(frozen=True)
class RunResult:
    variant: Variant
    seed: int
    history: list[dict[str, Any]]  # one row per epoch: train/test loss and accuracy
    run_dir: Path
    precision: str  # what the run trained in ("fp32" or "bf16"; "auto" resolved)

    @property
    def final_acc(self) -> float:
        return float(self.history[-1]["test_acc"])

    @property
    def best_acc(self) -> float:
        return max(float(r["test_acc"]) for r in self.history)


def run_key(variant: Variant, train: TrainConfig) -> str:
    """A short hash of everything that decides a run's result except the seed."""
    data = dataclasses.asdict(variant.data)
    if not data["train_images"]:  # the whole training set: keys stay those of runs cached before the subset option
        del data["train_images"]
    blob = json.dumps([dataclasses.asdict(variant.model), data, dataclasses.asdict(train)], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def run_variant(variant: Variant, train: TrainConfig, seed: int, out: Path, precision: str | None = None) -> RunResult:
    """Train `variant` with `seed`, or read/resume the cached run of the same configs. `precision` (an
    answer to `train.precision="auto"` found by an earlier run) is used instead of timing it again; the
    run's cache key stays that of `train`."""
    from mobilenet.checkpoint import Checkpoint  # torch and the training stack load only when something trains
    from mobilenet.train.fit import fit

    cfg = dataclasses.replace(train, seed=seed)
    if precision is not None and train.precision == "auto":
        cfg = dataclasses.replace(cfg, precision=precision)
    run_dir = out / "runs" / f"{variant.name}-s{seed}-{run_key(variant, train)}"
    if not run_dir.exists():
        run_dir = _same_configs(out, variant, cfg) or run_dir
    last = run_dir / LAST
    if last.is_file():
        ckpt = Checkpoint.load(last)
        if ckpt.epoch >= cfg.epochs:
            log.info("cached: %s seed %d (%s)", variant.name, seed, run_dir)
            return RunResult(variant, seed, ckpt.history, run_dir, ckpt.train_config.precision)
        log.info("resuming %s seed %d from epoch %d", variant.name, seed, ckpt.epoch)
        fit(variant.model, variant.data, cfg, resume=str(run_dir))
    else:
        if run_dir.exists():  # killed before its first checkpoint: nothing there to keep
            shutil.rmtree(run_dir)
        log.info("training %s seed %d", variant.name, seed)
        fit(variant.model, variant.data, cfg, out=str(run_dir))
    ckpt = Checkpoint.load(last)
    return RunResult(variant, seed, ckpt.history, run_dir, ckpt.train_config.precision)


def _same_configs(out: Path, variant: Variant, cfg: TrainConfig) -> Path | None:
    """A run of this variant and seed whose saved configs equal the requested ones, though its key differs
    (it was keyed before a config field was added: loading fills the new field with its default)."""
    from mobilenet.checkpoint import Checkpoint

    for run_dir in sorted((out / "runs").glob(f"{variant.name}-s{cfg.seed}-*")):
        try:
            ckpt = Checkpoint.load(run_dir / LAST)
            model = dataclasses.replace(ckpt.model_config, num_classes=variant.model.num_classes)
            same = (model, ckpt.data_config, ckpt.train_config) == (variant.model, variant.data, cfg)
        except (ValueError, TypeError):  # unreadable, or saved by a version with other fields
            continue
        if same:
            return run_dir
    return None


def check_runs(variants: Sequence[Variant], seeds: Sequence[int]) -> None:
    """ValueError unless the variant names and the seeds are distinct (checked before any folder is made)."""
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, got {names}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {list(seeds)}")


def run_all(variants: Sequence[Variant], train: TrainConfig, seeds: Sequence[int], out: Path) -> list[RunResult]:
    """Every variant with every seed, seed-major so a short interruption leaves whole seeds done. With
    `train.precision="auto"` the first run decides (by timing) and the others train in the same precision:
    the variants are compared under one arithmetic, and the timing is done once."""
    check_runs(variants, seeds)
    results: list[RunResult] = []
    total = len(variants) * len(seeds)
    for k, (seed, variant) in enumerate(((s, v) for s in seeds for v in variants), start=1):
        log.info("[%d/%d] %s, seed %d", k, total, variant.name, seed)
        results.append(run_variant(variant, train, seed, out, results[0].precision if results else None))
    return results


@dataclass(frozen=True)
class Summary:
    """Test top-1 of one variant over its seeds (final epoch: no selection on the test set)."""

    variant: Variant
    accs: tuple[float, ...]
    curves: tuple[tuple[float, ...], ...]  # test top-1 per epoch, one tuple per seed

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accs)

    @property
    def std(self) -> float:
        return statistics.stdev(self.accs) if len(self.accs) > 1 else 0.0

    @property
    def sem(self) -> float:
        """Standard error of the mean (0 with one seed: no spread is known)."""
        return self.std / math.sqrt(len(self.accs))

    def flags(self) -> list[str]:
        """Warnings that make an ordering of this variant meaningless: at chance, or diverged."""
        out = []
        classes = self.variant.model.num_classes
        if any(not math.isfinite(a) for a in self.accs):
            out.append("diverged (non-finite accuracy)")
        elif self.mean <= 1.5 / classes:
            out.append(f"at chance ({100 * self.mean:.1f}% with {classes} classes)")
        elif any(max(curve) - curve[-1] > 0.3 for curve in self.curves if curve):
            out.append("diverged (final accuracy far below its best)")
        return out

    def cell(self) -> str:
        spread = f" +- {100 * self.std:.2f}" if len(self.accs) > 1 else ""
        return f"{100 * self.mean:.2f}{spread}"


def summarise(results: Sequence[RunResult]) -> dict[str, Summary]:
    """Variant name -> Summary, in the order the variants first appear."""
    by_name: dict[str, list[RunResult]] = {}
    for r in results:
        by_name.setdefault(r.variant.name, []).append(r)
    return {
        name: Summary(
            runs[0].variant,
            tuple(r.final_acc for r in runs),
            tuple(tuple(float(row["test_acc"]) for row in r.history) for r in runs),
        )
        for name, runs in by_name.items()
    }


@dataclass(frozen=True)
class Comparison:
    """Welch's t-test of "a is more accurate than b" over their seeds (unequal variances, small samples)."""

    gap: float  # mean(a) - mean(b)
    p_value: float | None  # one-sided, for a > b; None where it cannot be estimated
    low: float | None  # 95% confidence interval of the gap
    high: float | None
    reason: str = ""  # why there is no estimate

    @classmethod
    def of(cls, a: Summary, b: Summary) -> Comparison:
        gap = a.mean - b.mean
        if math.isclose(a.mean, b.mean, rel_tol=0, abs_tol=1e-9):
            gap = 0.0  # equal means summed in another order differ in the last bit: a tie, not a reversal
        if len(a.accs) < 2 or len(b.accs) < 2:
            return cls(gap, None, None, None, "one seed: no spread to test against")
        va, vb = a.std**2 / len(a.accs), b.std**2 / len(b.accs)
        if va + vb == 0:
            return cls(gap, None, None, None, "every seed gave the same accuracy: no spread to test against")
        from scipy import stats

        se = math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (len(a.accs) - 1) + vb**2 / (len(b.accs) - 1))  # Welch-Satterthwaite
        t = gap / se
        half = float(stats.t.ppf(0.975, df)) * se
        return cls(gap, float(stats.t.sf(t, df)), gap - half, gap + half)

    def text(self, a: str, b: str) -> str:
        relation = ">" if self.gap > 0 else "<" if self.gap < 0 else "="
        head = f"{a} {relation} {b}: {100 * self.gap:+.2f} points"
        if self.p_value is None:
            return f"{head} ({self.reason})"
        assert self.low is not None and self.high is not None
        ci = f"two-sided 95% CI {100 * self.low:+.2f} to {100 * self.high:+.2f}"
        return f"{head} ({ci}, one-sided p = {self.p_value:.3f})"


def ordering_verdict(ordered: Sequence[Summary], alpha: float = 0.05) -> tuple[str, str]:
    """Is mean accuracy ordered as listed (best first)? Returns (verdict, every step with its test).

    Each step is a one-sided Welch t-test at level `alpha` (with 2-3 seeds a t-test, not a z-threshold:
    2 degrees of freedom need t > 2.9 for p < 0.05). Verdicts: "reproduced" (every step significant),
    "same order, not significant", "tie" (equal means), "reversed, not significant", "not reproduced"
    (some step significantly the other way), "no estimate" (one seed or no spread), and a warning first
    when a variant sits at chance or diverged (then no ordering of it means anything).
    """
    flagged = [f"{s.variant.name} {flag}" for s in ordered for flag in s.flags()]
    steps, comparisons = [], []
    for a, b in itertools.pairwise(ordered):
        c = Comparison.of(a, b)
        comparisons.append(c)
        steps.append(c.text(a.variant.name, b.variant.name))
    why = "; ".join(steps)
    if flagged:
        return "no estimate: " + ", ".join(flagged), why
    if any(c.p_value is None for c in comparisons):
        return "no estimate", why
    significant = [c.p_value is not None and c.p_value < alpha for c in comparisons]
    against = [c.p_value is not None and 1 - c.p_value < alpha for c in comparisons]
    if any(against):
        return "not reproduced", why
    if all(significant):
        return "reproduced", why
    if any(c.gap < 0 for c in comparisons):
        return "reversed, not significant", why
    if any(c.gap == 0 for c in comparisons):
        return "tie", why
    return "same order, not significant", why
