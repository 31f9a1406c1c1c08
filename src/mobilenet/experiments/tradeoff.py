"""Accuracy against multiply-adds: width and resolution sweeps of V1, V2 and the full-conv MobileNet.

The papers' claims checked here: accuracy falls smoothly as the width multiplier (V1 Table 6) or the
resolution (V1 Table 7) shrinks; depthwise separable convolutions cost ~1 point of accuracy for ~8x fewer
multiply-adds than full convolutions (V1 Table 4); V2 is more accurate than V1 at lower cost (V2 Fig. 5,
Table 4).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from mobilenet.config import ARCHS, DataConfig, ModelConfig, plural
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

SHORT = {"mobilenet_v1": "v1", "mobilenet_v2": "v2", "conv_mobilenet": "conv"}
LABEL = {"mobilenet_v1": "MobileNetV1", "mobilenet_v2": "MobileNetV2", "conv_mobilenet": "Conv MobileNet"}


def tradeoff_variants(
    base: ModelConfig,
    data: DataConfig,
    *,
    archs: Sequence[str],
    widths: Sequence[float],
    conv_widths: Sequence[float],
    resolutions: Sequence[int],
    resolution_width: float,
) -> list[Variant]:
    """Every arch at every width (the full-conv net at `conv_widths`) at the native resolution, then V1
    and V2 at `resolution_width` at every resolution."""
    for arch in archs:
        if arch not in ARCHS:
            raise ValueError(f"unknown architecture {arch!r}; expected some of: {', '.join(ARCHS)}")
    native = native_resolution(data)
    grid = [(a, w, native) for a in archs for w in (conv_widths if a == "conv_mobilenet" else widths)]
    grid += [(a, resolution_width, r) for a in archs if a != "conv_mobilenet" for r in resolutions if r != native]
    variants: dict[str, Variant] = {}
    for arch, width, res in grid:
        model = ModelConfig(arch, width, base.num_classes, base.dropout, base.cifar)
        name = f"{SHORT[arch]}-{width:g}-r{res}"
        variants[name] = Variant(name, model, dataclasses.replace(data, resolution=res))
    return list(variants.values())


def run_tradeoff(
    *,
    dataset: str = "digits",
    data_dir: str | None = None,
    epochs: int | None = 10,
    seeds: Sequence[int] = (0, 1, 2, 3),
    archs: Sequence[str] = ARCHS,
    widths: Sequence[float] = (0.25, 0.5, 1.0),
    conv_widths: Sequence[float] = (0.25, 0.5),
    resolutions: Sequence[int] | None = None,
    resolution_width: float = 0.5,
    resolution: int = 0,
    train_images: int | None = None,
    out: str | Path = "runs/experiments/tradeoff",
) -> str:
    """Train the grid (cached per run), write tradeoff.md/.json/.png into `out`, return the table."""
    out = Path(out)
    recipe = experiment_recipe(dataset, data_dir, epochs, resolution, train_images)
    if resolutions is None:  # the papers' 128-224 for ImageNet-like folders; 16-32 for the small images
        resolutions = (128, 160, 192, 224) if dataset == "imagefolder" else (16, 24, 32)
    variants = tradeoff_variants(
        recipe.model,
        recipe.data,
        archs=archs,
        widths=widths,
        conv_widths=conv_widths,
        resolutions=resolutions,
        resolution_width=resolution_width,
    )
    for v in variants:
        _ = v.macs  # a resolution too small for an arch fails here, before anything trains
    check_runs(variants, seeds)
    out.mkdir(parents=True, exist_ok=True)
    summaries = summarise(run_all(variants, recipe.train, seeds, out))
    text = tradeoff_report(summaries, dataset=dataset, epochs=recipe.train.epochs, seeds=seeds)
    (out / "tradeoff.md").write_text(text + "\n")
    data = {
        n: {
            "model": dataclasses.asdict(s.variant.model),
            "resolution": native_resolution(s.variant.data),
            "macs": s.variant.macs,
            "params": s.variant.params,
            "final_test_acc": list(s.accs),
        }
        for n, s in summaries.items()
    }
    (out / "tradeoff.json").write_text(json.dumps(data, indent=2) + "\n")
    plot_tradeoff(summaries, out / "tradeoff.png")
    return f"{text}\nwrote {out / 'tradeoff.md'}, {out / 'tradeoff.json'} and {out / 'tradeoff.png'}"


def _res(s: Summary) -> int:
    return native_resolution(s.variant.data)


def _rising(points: list[Summary], key: str) -> str:
    """Verdict on "accuracy rises with `key`" (width or resolution): the points ordered largest first."""
    ordered = sorted(points, key=lambda s: s.variant.model.width if key == "width" else _res(s), reverse=True)
    verdict, why = ordering_verdict(ordered)
    return f"**{verdict}** ({why})"


def tradeoff_report(summaries: dict[str, Summary], *, dataset: str, epochs: int, seeds: Sequence[int]) -> str:
    items = list(summaries.values())
    native = max(_res(s) for s in items)
    lines = [
        f"Accuracy against cost on {dataset}: {plural(epochs, 'epoch')}, seeds {', '.join(map(str, seeds))}"
        f"{subset_text(items[0].variant.data)}; top-1 is the "
        "test accuracy after the last epoch (mean +- std over seeds). Multiply-adds per image at the input side.",
        "",
        "| network | width | resolution | multiply-adds | params | test top-1 (%) |",
        "|---|---|---|---|---|---|",
    ]
    for s in sorted(items, key=lambda s: (s.variant.model.arch, s.variant.model.width, _res(s))):
        m = s.variant.model
        lines.append(
            f"| {LABEL[m.arch]} | {m.width:g} | {_res(s)} | {s.variant.macs:,} | {s.variant.params:,} | {s.cell()} |"
        )
    lines.append("")
    by = {(s.variant.model.arch, s.variant.model.width, _res(s)): s for s in items}
    for arch in ARCHS:
        at_native = [s for (a, _, r), s in by.items() if a == arch and r == native]
        if len(at_native) > 1:
            lines.append(
                f"- Width (V1 Table 6: accuracy falls as the width shrinks), {LABEL[arch]}: "
                f"{_rising(at_native, 'width')}."
            )
        widths = {w for (a, w, r) in by if a == arch and r != native}
        for w in sorted(widths):
            sweep = [s for (a, ww, _), s in by.items() if a == arch and ww == w]
            lines.append(
                f"- Resolution (V1 Table 7: accuracy falls with the input side), {LABEL[arch]} {w:g}: "
                f"{_rising(sweep, 'resolution')}."
            )
    for (arch, w, r), conv in sorted(by.items()):
        sep = by.get(("mobilenet_v1", w, r))
        if arch == "conv_mobilenet" and sep is not None:
            verdict, why = ordering_verdict([conv, sep])
            lines.append(
                f"- Full vs depthwise separable conv (V1 Table 4: full convs 1.1 points more accurate on ImageNet at "
                f"8.6x the multiply-adds), width {w:g}: {conv.variant.macs / sep.variant.macs:.1f}x the "
                f"multiply-adds; full conv more accurate: **{verdict}** ({why})."
            )
    for (arch, w, r), v2 in sorted(by.items()):
        v1 = by.get(("mobilenet_v1", w, r))
        if arch == "mobilenet_v2" and v1 is not None:
            verdict, why = ordering_verdict([v2, v1])
            lines.append(
                f"- V2 vs V1 (V2 Table 4: 72.0% at 300M vs 70.6% at 575M multiply-adds), width {w:g}, side {r}: V2 "
                f"at {v2.variant.macs / v1.variant.macs:.2f}x V1's multiply-adds; V2 more accurate: **{verdict}** "
                f"({why})."
            )
    return "\n".join(lines)


def plot_tradeoff(summaries: dict[str, Summary], path: Path) -> Path:
    """Top-1 against multiply-adds (log scale): a solid line per network over widths, dashed over resolutions."""
    from mobilenet.figures import file_figure

    items = list(summaries.values())
    native = max(_res(s) for s in items)
    fig = file_figure(7, 5)
    ax = fig.subplots()
    for k, arch in enumerate(ARCHS):
        color = f"C{k}"
        for sweep, style in (("width", "o-"), ("resolution", "s--")):
            if sweep == "width":
                pts = [s for s in items if s.variant.model.arch == arch and _res(s) == native]
                pts.sort(key=lambda s: s.variant.model.width)
            else:
                widths = {s.variant.model.width for s in items if s.variant.model.arch == arch and _res(s) != native}
                pts = [s for s in items if s.variant.model.arch == arch and s.variant.model.width in widths]
                pts.sort(key=_res)
            if len(pts) < 2 and not (sweep == "width" and pts):
                continue
            x = [s.variant.macs / 1e6 for s in pts]
            y = [100 * s.mean for s in pts]
            ax.errorbar(
                x,
                y,
                yerr=[100 * s.std for s in pts],
                fmt=style,
                color=color,
                capsize=3,
                label=f"{LABEL[arch]}, {sweep}s",
            )
            for s, xi, yi in zip(pts, x, y, strict=True):
                if sweep == "resolution" and _res(s) == native:
                    continue  # the width line already labels this point
                tag = f"{s.variant.model.width:g}" if sweep == "width" else f"{_res(s)}px"
                ax.annotate(tag, (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize=7, color=color)
    ax.set_xscale("log")
    ax.set(
        xlabel="multiply-adds per image (millions, log scale)", ylabel="test top-1 (%)", title="Accuracy against cost"
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
