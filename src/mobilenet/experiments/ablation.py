"""The V2 paper's ablations (Fig. 6) and the lecture notes' block comparisons, one recipe for all.

Each group changes one switch of the paper's network (the baseline, shared by every group):
(a) bottleneck: linear projection vs ReLU6 after it (Fig. 6a);
(b) shortcut: between bottlenecks vs between expansions vs none (Fig. 6b);
(c) activation: ReLU6 vs ReLU (sec. 3.2 picks ReLU6 for low-precision robustness, not for accuracy);
(d) block: inverted residual vs the classic wide-narrow-wide residual at equal multiply-adds (Fig. 3).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mobilenet.config import DataConfig, ModelConfig, plural
from mobilenet.costs import model_costs, totals
from mobilenet.experiments.groups import BASELINE, GROUPS
from mobilenet.experiments.sweep import (
    Summary,
    Variant,
    check_runs,
    experiment_recipe,
    native_resolution,
    ordering_verdict,
    run_all,
    subset_text,
    summarise,
)


def equal_cost_width(base: ModelConfig, changes: dict[str, Any], resolution: int) -> float:
    """The width at which `base` with `changes` costs closest to `base`'s multiply-adds (0.005 steps)."""
    target = totals(model_costs(base, resolution)).macs
    best_width, best_gap = base.width, float("inf")
    for step in range(10, 801):  # widths 0.05 .. 4.0
        width = step * 0.005
        macs = totals(model_costs(dataclasses.replace(base, width=width, **changes), resolution)).macs
        if abs(macs - target) < best_gap:
            best_width, best_gap = width, abs(macs - target)
    return round(best_width, 3)


def ablation_variants(groups: Sequence[str], base: ModelConfig, data: DataConfig) -> list[Variant]:
    """The distinct variants the chosen groups need (the baseline once)."""
    resolution = native_resolution(data)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ValueError(f"unknown ablation group {unknown[0]!r}; expected some of: {', '.join(GROUPS)}")
    if base.arch != "mobilenet_v2":
        raise ValueError("the ablations change MobileNetV2's blocks; the base network must be mobilenet_v2")
    seen: dict[str, Variant] = {}
    for group in groups:
        for name, changes in GROUPS[group].variants:
            if name in seen:
                continue
            model = dataclasses.replace(base, **changes)
            if changes.get("block") == "classic":
                model = dataclasses.replace(model, width=equal_cost_width(base, changes, resolution))
            seen[name] = Variant(name, model, data)
    return list(seen.values())


def run_ablation(
    *,
    groups: Sequence[str] = tuple(GROUPS),
    dataset: str = "digits",
    data_dir: str | None = None,
    epochs: int | None = 10,
    seeds: Sequence[int] = (0, 1, 2, 3),
    width: float | None = None,
    resolution: int = 0,
    train_images: int | None = None,
    out: str | Path = "runs/experiments/ablation",
) -> str:
    """Train every variant with every seed (cached), write ablation.md/.json/.png into `out`, return the table."""
    out = Path(out)
    recipe = experiment_recipe(dataset, data_dir, epochs, resolution, train_images)
    base = recipe.model if width is None else dataclasses.replace(recipe.model, width=width)
    variants = ablation_variants(groups, base, recipe.data)
    check_runs(variants, seeds)
    out.mkdir(parents=True, exist_ok=True)
    summaries = summarise(run_all(variants, recipe.train, seeds, out))
    text = ablation_report(groups, summaries, dataset=dataset, epochs=recipe.train.epochs, seeds=seeds)
    (out / "ablation.md").write_text(text + "\n")
    (out / "ablation.json").write_text(json.dumps(_data(summaries), indent=2) + "\n")
    plot_ablation(groups, summaries, out / "ablation.png")
    return f"{text}\nwrote {out / 'ablation.md'}, {out / 'ablation.json'} and {out / 'ablation.png'}"


def _data(summaries: dict[str, Summary]) -> dict[str, object]:
    return {
        name: {
            "model": dataclasses.asdict(s.variant.model),
            "macs": s.variant.macs,
            "params": s.variant.params,
            "final_test_acc": list(s.accs),
            "test_acc_curves": [list(c) for c in s.curves],
        }
        for name, s in summaries.items()
    }


def ablation_report(
    groups: Sequence[str], summaries: dict[str, Summary], *, dataset: str, epochs: int, seeds: Sequence[int]
) -> str:
    base = summaries[BASELINE].variant
    lines = [
        f"Ablations on {dataset}: {base.model.arch} width {base.model.width}"
        f"{' (CIFAR strides)' if base.model.cifar else ''}, {plural(epochs, 'epoch')}, "
        f"seeds {', '.join(map(str, seeds))}"
        f"{subset_text(base.data)}.",
        "Top-1 is the test accuracy after the last epoch, mean +- std over seeds.",
        "",
        "| group | variant | width | multiply-adds | params | test top-1 (%) |",
        "|---|---|---|---|---|---|",
    ]
    for group in groups:
        for name, _ in GROUPS[group].variants:
            s = summaries[name]
            v = s.variant
            lines.append(f"| {group} | {name} | {v.model.width} | {v.macs:,} | {v.params:,} | {s.cell()} |")
    lines.append("")
    for group in groups:
        g = GROUPS[group]
        if g.ordered:
            verdict, why = ordering_verdict([summaries[name] for name, _ in g.variants])
            lines.append(f"- {g.title}. Paper: {g.claim}. Here: **{verdict}** ({why}).")
        else:
            cells = ", ".join(f"{name} {summaries[name].cell()}%" for name, _ in g.variants)
            lines.append(f"- {g.title}. Paper: {g.claim}. Here: {cells}.")
    return "\n".join(lines)


def plot_ablation(groups: Sequence[str], summaries: dict[str, Summary], path: Path) -> Path:
    """Test top-1 against epoch, one panel per group, mean with a band of +- one std over seeds."""
    import numpy as np

    from mobilenet.figures import file_figure

    fig = file_figure(4.5 * len(groups), 4)
    axes = fig.subplots(1, len(groups), squeeze=False)
    for ax, group in zip(axes[0], groups, strict=True):
        for name, _ in GROUPS[group].variants:
            curves = np.array(summaries[name].curves) * 100
            epochs = np.arange(1, curves.shape[1] + 1)
            mean, std = curves.mean(0), curves.std(0)
            ax.plot(epochs, mean, "o-", ms=3, label=f"{name} ({summaries[name].cell()})")
            ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
        ax.set(title=GROUPS[group].title.split(" (")[0], xlabel="epoch", ylabel="test top-1 (%)")
        final = [summaries[name].mean * 100 for name, _ in GROUPS[group].variants]
        ax.set_ylim(max(0.0, min(final) - 15), min(100.0, max(final) + 3))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
