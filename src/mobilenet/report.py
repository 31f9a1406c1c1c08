"""Human-readable and JSON reports of costs and published-table comparisons. No torch import."""

from __future__ import annotations

from typing import Any

from mobilenet.config import ModelConfig
from mobilenet.costs import LayerCost, SeparableComparison, model_costs, totals
from mobilenet.published import (
    SLIM_V1_LAYERS,
    TABLES,
    Table,
    compare,
    table3_counts,
)

CONVENTION = (
    "MACs: multiply-adds of conv and FC layers per image (BN, activations, adds, pooling count 0). "
    "Params: conv weights + FC weights and bias + BN gamma/beta. Activations: output values per image."
)

TITLES = {
    "mobilenet_v1": "MobileNetV1",
    "conv_mobilenet": "Conv MobileNet (V1, full 3x3 convs)",
    "mobilenet_v2": "MobileNetV2",
}


def _shape(shape: tuple[int, int, int]) -> str:
    return "x".join(str(d) for d in shape)


def summary_data(config: ModelConfig, resolution: int) -> dict[str, Any]:
    layers = model_costs(config, resolution)
    t = totals(layers)
    return {
        "arch": config.arch,
        "width": config.width,
        "resolution": resolution,
        "num_classes": config.num_classes,
        "cifar": config.cifar,
        "convention": CONVENTION,
        "layers": [
            {
                "name": layer.name,
                "operator": layer.operator,
                "output_shape": list(layer.out_shape),
                "params": layer.params,
                "params_without_bn": layer.weights,
                "macs": layer.macs,
                "activations": layer.activations,
            }
            for layer in layers
        ],
        "totals": {
            "params": t.params,
            "params_without_bn": t.params_without_bn,
            "bn_buffers": t.bn_buffers,
            "macs": t.macs,
            "activations": t.activations,
            "max_activation": t.max_activation,
        },
    }


def summary_text(config: ModelConfig, resolution: int) -> str:
    layers = model_costs(config, resolution)
    t = totals(layers)
    biggest = max(layers, key=lambda layer: layer.activations)
    head = ("Layer", "Operator", "Output (CxHxW)", "Params", "MACs", "Activations")
    rows = [head] + [_layer_row(layer) for layer in layers]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        f"{TITLES[config.arch]}{' (CIFAR variant)' if config.cifar else ''}: width {config.width}, "
        f"input {resolution}x{resolution}, {config.num_classes} classes",
    ]
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    for i, row in enumerate(rows):
        cells = [c.ljust(w) if j < 3 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append(rule)
    lines += [
        rule,
        f"Total params: {t.params:,} ({t.params_without_bn:,} without BN; BN running stats add "
        f"{t.bn_buffers:,} non-trainable values)",
        f"Multiply-adds: {t.macs:,} ({t.macs / 1e6:.1f}M)",
        f"Activations: {t.activations:,} values per image in all; largest output {biggest.activations:,} "
        f"({biggest.name})",
        f"Convention: {CONVENTION}",
    ]
    return "\n".join(lines)


def _layer_row(layer: LayerCost) -> tuple[str, ...]:
    return (
        layer.name,
        layer.operator,
        _shape(layer.out_shape),
        f"{layer.params:,}",
        f"{layer.macs:,}",
        f"{layer.activations:,}",
    )


def cost_text(c: SeparableComparison) -> str:
    k, m, n, df = c.kernel, c.in_channels, c.out_channels, c.feature_size
    return "\n".join(
        [
            f"One layer: kernel D_K={k}, input channels M={m}, output channels N={n}, feature map D_F={df}",
            f"Standard convolution   D_K^2*M*N*D_F^2           = {k}^2*{m}*{n}*{df}^2 = {c.standard:,} mult-adds",
            f"Depthwise separable    D_K^2*M*D_F^2 + M*N*D_F^2 = {c.depthwise:,} + {c.pointwise:,} "
            f"= {c.separable:,} mult-adds",
            f"Ratio separable/standard = 1/N + 1/D_K^2 = 1/{n} + 1/{k * k} = {c.ratio:.4f} "
            + (f"({1 / c.ratio:.2f}x fewer mult-adds)" if c.ratio < 1 else f"({c.ratio:.2f}x more mult-adds)"),
            f"Parameters, weights only: standard D_K^2*M*N = {c.standard_params():,}; separable D_K^2*M + M*N = "
            f"{c.depthwise_params():,} + {c.pointwise_params():,} = {c.separable_params():,}",
            f"Parameters with biases:   standard {c.standard_params(True):,}; separable "
            f"{c.depthwise_params(True):,} + {c.pointwise_params(True):,} = {c.separable_params(True):,}",
        ]
    )


def cost_data(c: SeparableComparison) -> dict[str, Any]:
    return {
        "kernel": c.kernel,
        "in_channels": c.in_channels,
        "out_channels": c.out_channels,
        "feature_size": c.feature_size,
        "standard": c.standard,
        "depthwise": c.depthwise,
        "pointwise": c.pointwise,
        "separable": c.separable,
        "ratio": c.ratio,
        "params": {
            "standard": c.standard_params(),
            "separable": c.separable_params(),
            "standard_with_bias": c.standard_params(True),
            "separable_with_bias": c.separable_params(True),
        },
    }


def _table_text(table: Table) -> list[str]:
    lines = [
        f"== {table.title} ({table.source})",
        f"   counted as: {table.num_classes} classes, "
        f"{table.bn_per_channel} values per BN channel, MACs {table.macs_rule}"
        f"{'d to millions' if table.macs_rule == 'truncate' else ' million'}"
        f"{'; ' + table.note if table.note else ''}",
    ]
    lines.append(f"   {'model':<24}{'MACs M':>8}{'ours':>9}{'diff':>8}{'params M':>10}{'ours':>9}{'diff':>8}  ok")
    for c in compare(table):
        r = c.row
        mark = "yes" if c.agrees else ("known" if r.discrepancy else "NO")
        lines.append(
            f"   {r.label:<24}{r.macs_m:>8g}{c.macs_m:>9.2f}{c.macs_m - r.macs_m:>+8.2f}"
            f"{r.params_m:>10g}{c.params_m:>9.3f}{c.params_m - r.params_m:>+8.3f}  {mark}"
            f"{'  (' + r.discrepancy + ')' if r.discrepancy else ''}"
        )
    return lines


def _slim_layers_text() -> list[str]:
    ours = [c for c in model_costs(ModelConfig(arch="mobilenet_v1"), 224) if c.name not in ("pool", "classifier")]
    lines = [
        "== V1 body per layer, 1.0/224 (TF-Slim mobilenet_v1.py docstring; conv weights only, no BN/FC)",
        f"   {'slim layer':<22}{'ours':<22}{'params':>10}{'ours':>10}{'MACs':>13}{'ours':>13}  ok",
    ]
    for (name, params, macs), layer in zip(SLIM_V1_LAYERS, ours, strict=True):
        ok = "yes" if (params, macs) == (layer.weights, layer.macs) else "NO"
        lines.append(
            f"   {name:<22}{layer.name:<22}{params:>10,}{layer.weights:>10,}{macs:>13,}{layer.macs:>13,}  {ok}"
        )
    total_p, total_m = sum(p for _, p, _ in SLIM_V1_LAYERS), sum(m for _, _, m in SLIM_V1_LAYERS)
    lines.append(
        f"   {'Total':<44}{total_p:>10,}{sum(c.weights for c in ours):>10,}{total_m:>13,}"
        f"{sum(c.macs for c in ours):>13,}"
    )
    return lines


def tables_text() -> str:
    lines: list[str] = []
    for table in TABLES.values():
        lines += [*_table_text(table), ""]
    lines.append("== V1 Table 3: one 14x14, 512 -> 512 layer (Howard et al. 2017)")
    for label, macs, ours_macs, params, ours_params in table3_counts():
        lines.append(
            f"   {label:<26}{macs:>8g}M MACs (ours {ours_macs:.2f}M)   {params:g}M params (ours {ours_params:.3f}M)"
        )
    lines.append("")
    lines += _slim_layers_text()
    return "\n".join(lines)


def columns(rows: list[tuple[str, ...]]) -> list[str]:
    """Text table: the first column left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
