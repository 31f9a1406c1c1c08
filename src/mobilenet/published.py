"""Published cost tables, verbatim, each with the counting convention needed to reproduce it.

`compare(table)` puts our analytic counts beside every cell. No torch import.
Sources: Howard et al. 2017 (arXiv:1704.04861) Tables 3, 4, 6, 7; TF-Slim `research/slim/nets/
mobilenet_v1.md`, `mobilenet_v1.py` docstring and `mobilenet/README.md` (tensorflow/models).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mobilenet.config import ModelConfig
from mobilenet.costs import compare_separable, model_costs, totals


@dataclass(frozen=True)
class Row:
    label: str
    arch: str
    width: float
    resolution: int
    macs_m: float  # millions of multiply-adds
    params_m: float  # millions of parameters
    discrepancy: str = ""  # why a cell is known not to match a direct count (empty: it matches)


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    source: str
    num_classes: int
    bn_per_channel: int  # BN values counted per channel: 0 (none), 2 (gamma, beta), 3 (Slim V1 README)
    macs_rule: str  # "truncate": the table truncates to millions; "nearest": within 1M (rounding varies)
    params_decimals: int  # the table's params are rounded (half up) to this many decimals of millions
    rows: tuple[Row, ...]
    note: str = ""


_V2_SLIM_CELLS = (  # (width, resolution, MACs M, params M): README "Mobilenet V2 Imagenet Checkpoints"
    (1.4, 224, 582, 6.06), (1.3, 224, 509, 5.34),
    (1.0, 224, 300, 3.47), (1.0, 192, 221, 3.47), (1.0, 160, 154, 3.47), (1.0, 128, 99, 3.47), (1.0, 96, 56, 3.47),
    (0.75, 224, 209, 2.61), (0.75, 192, 153, 2.61), (0.75, 160, 107, 2.61), (0.75, 128, 69, 2.61),
    (0.75, 96, 39, 2.61),
    (0.5, 224, 97, 1.95), (0.5, 192, 71, 1.95), (0.5, 160, 50, 1.95), (0.5, 128, 32, 1.95), (0.5, 96, 18, 1.95),
    (0.35, 224, 59, 1.66), (0.35, 192, 43, 1.66), (0.35, 160, 30, 1.66), (0.35, 128, 20, 1.66),
    (0.35, 96, 11, 1.66),
)  # fmt: skip

_V1_SLIM_CELLS = (  # (width, resolution, MACs M, params M): mobilenet_v1.md, float checkpoints
    (1.0, 224, 569, 4.24), (1.0, 192, 418, 4.24), (1.0, 160, 291, 4.24), (1.0, 128, 186, 4.24),
    (0.75, 224, 317, 2.59), (0.75, 192, 233, 2.59), (0.75, 160, 162, 2.59), (0.75, 128, 104, 2.59),
    (0.5, 224, 150, 1.34), (0.5, 192, 110, 1.34), (0.5, 160, 77, 1.34), (0.5, 128, 49, 1.34),
    (0.25, 224, 41, 0.47), (0.25, 192, 34, 0.47), (0.25, 160, 21, 0.47), (0.25, 128, 14, 0.47),
)  # fmt: skip

_SLIM_075 = "README is ~2.6% below a direct count; see the note"

_CONV_FC = "a count with the 1000-way FC gives 4867.3M; without the FC's 1.0M it gives 4866.3M"

TABLES: dict[str, Table] = {
    "slim_v2": Table(
        "slim_v2",
        "MobileNetV2 checkpoints (22 widths x resolutions)",
        "TF-Slim research/slim/nets/mobilenet/README.md",
        num_classes=1001,
        bn_per_channel=0,
        macs_rule="truncate",
        params_decimals=2,
        rows=tuple(Row(f"mobilenet_v2_{w}_{r}", "mobilenet_v2", w, r, m, p) for w, r, m, p in _V2_SLIM_CELLS),
        note="class 0 is background; BN parameters are not counted",
    ),
    "slim_v1": Table(
        "slim_v1",
        "MobileNetV1 checkpoints (16 widths x resolutions)",
        "TF-Slim research/slim/nets/mobilenet_v1.md",
        num_classes=1001,
        bn_per_channel=3,
        macs_rule="nearest",
        params_decimals=2,
        rows=tuple(
            Row(
                f"MobileNet_v1_{w}_{r}",
                "mobilenet_v1",
                w,
                r,
                m,
                p,
                _SLIM_075 if w == 0.75 else ("a direct count gives 30.2" if (w, r) == (0.25, 192) else ""),
            )
            for w, r, m, p in _V1_SLIM_CELLS
        ),
        note=(
            "3 BN values per channel match the checkpoints' beta, mean, var. Width 0.75 MACs: the README is "
            "below a direct count and below the paper's 325 at 224, while Slim's own docstring gives 106.0M "
            "base MACs for 0.75/128, as a count does"
        ),
    ),
    "paper_v1_width": Table(
        "paper_v1_width",
        "V1 Table 6: width multiplier",
        "Howard et al. 2017, Table 6",
        num_classes=1000,
        bn_per_channel=0,
        macs_rule="nearest",
        params_decimals=1,
        rows=tuple(
            Row(f"{w} MobileNet-224", "mobilenet_v1", w, 224, m, p)
            for w, m, p in ((1.0, 569, 4.2), (0.75, 325, 2.6), (0.5, 149, 1.3), (0.25, 41, 0.5))
        ),
    ),
    "paper_v1_resolution": Table(
        "paper_v1_resolution",
        "V1 Table 7: resolution",
        "Howard et al. 2017, Table 7",
        num_classes=1000,
        bn_per_channel=0,
        macs_rule="nearest",
        params_decimals=1,
        rows=tuple(
            Row(f"1.0 MobileNet-{r}", "mobilenet_v1", 1.0, r, m, 4.2)
            for r, m in ((224, 569), (192, 418), (160, 290), (128, 186))
        ),
        note="the paper prints 290 at 160 where a count gives 290.7 (Slim's README prints 291)",
    ),
    "paper_v1_conv": Table(
        "paper_v1_conv",
        "V1 Table 4: depthwise separable vs full convolution",
        "Howard et al. 2017, Table 4",
        num_classes=1000,
        bn_per_channel=0,
        macs_rule="nearest",
        params_decimals=1,
        rows=(
            Row("Conv MobileNet", "conv_mobilenet", 1.0, 224, 4866, 29.3, _CONV_FC),
            Row("MobileNet", "mobilenet_v1", 1.0, 224, 569, 4.2),
        ),
    ),
}

# Howard et al. 2017, Table 3: one 14x14x512 -> 512 layer, cumulative modifications.
# (label, D_K, M, N, D_F, MACs M, params M)
V1_TABLE3: tuple[tuple[str, int, int, int, int, float, float], ...] = (
    ("Convolution", 3, 512, 512, 14, 462, 2.36),
    ("Depthwise Separable Conv", 3, 512, 512, 14, 52.3, 0.27),
    ("alpha = 0.75", 3, 384, 384, 14, 29.6, 0.15),
    ("rho = 0.714", 3, 384, 384, 10, 15.1, 0.15),
)

# TF-Slim mobilenet_v1.py docstring, "100% Mobilenet V1 (base) with input size 224x224": per layer
# (params, MACs), conv weights only (no BN, no classifier). Total 3,185,088 / 567,716,352.
SLIM_V1_LAYERS: tuple[tuple[str, int, int], ...] = (
    ("Conv2d_0", 864, 10_838_016),
    ("Conv2d_1_depthwise", 288, 3_612_672), ("Conv2d_1_pointwise", 2_048, 25_690_112),
    ("Conv2d_2_depthwise", 576, 1_806_336), ("Conv2d_2_pointwise", 8_192, 25_690_112),
    ("Conv2d_3_depthwise", 1_152, 3_612_672), ("Conv2d_3_pointwise", 16_384, 51_380_224),
    ("Conv2d_4_depthwise", 1_152, 903_168), ("Conv2d_4_pointwise", 32_768, 25_690_112),
    ("Conv2d_5_depthwise", 2_304, 1_806_336), ("Conv2d_5_pointwise", 65_536, 51_380_224),
    ("Conv2d_6_depthwise", 2_304, 451_584), ("Conv2d_6_pointwise", 131_072, 25_690_112),
    ("Conv2d_7_depthwise", 4_608, 903_168), ("Conv2d_7_pointwise", 262_144, 51_380_224),
    ("Conv2d_8_depthwise", 4_608, 903_168), ("Conv2d_8_pointwise", 262_144, 51_380_224),
    ("Conv2d_9_depthwise", 4_608, 903_168), ("Conv2d_9_pointwise", 262_144, 51_380_224),
    ("Conv2d_10_depthwise", 4_608, 903_168), ("Conv2d_10_pointwise", 262_144, 51_380_224),
    ("Conv2d_11_depthwise", 4_608, 903_168), ("Conv2d_11_pointwise", 262_144, 51_380_224),
    ("Conv2d_12_depthwise", 4_608, 225_792), ("Conv2d_12_pointwise", 524_288, 25_690_112),
    ("Conv2d_13_depthwise", 9_216, 451_584), ("Conv2d_13_pointwise", 1_048_576, 51_380_224),
)  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    row: Row
    macs_m: float  # our exact count, in millions
    params_m: float
    macs_agree: bool
    params_agree: bool

    @property
    def agrees(self) -> bool:
        return self.macs_agree and self.params_agree


def _round_half_up(value: float, decimals: int) -> float:
    scale = 10**decimals
    return math.floor(value * scale + 0.5) / scale


def compare_row(table: Table, row: Row) -> Comparison:
    config = ModelConfig(arch=row.arch, width=row.width, num_classes=table.num_classes)
    t = totals(model_costs(config, row.resolution))
    bn_values = t.bn_buffers // 2 * table.bn_per_channel  # bn_buffers holds 2 values per BN channel
    macs, params = t.macs / 1e6, (t.params_without_bn + bn_values) / 1e6
    if table.macs_rule == "truncate":
        macs_agree = math.floor(macs) == row.macs_m
    else:
        macs_agree = abs(macs - row.macs_m) < 1.0
    params_agree = _round_half_up(params, table.params_decimals) == row.params_m
    return Comparison(row, macs, params, macs_agree, params_agree)


def compare(table: Table) -> list[Comparison]:
    return [compare_row(table, row) for row in table.rows]


def table3_counts() -> list[tuple[str, float, float, float, float]]:
    """V1 Table 3 rows as (label, published MACs M, ours, published params M, ours)."""
    rows = []
    for label, k, m, n, df, macs, params in V1_TABLE3:
        c = compare_separable(k, m, n, df)
        standard = label == "Convolution"
        ours_macs = c.standard if standard else c.separable
        ours_params = k * k * m * n if standard else k * k * m + m * n
        rows.append((label, macs, ours_macs / 1e6, params, ours_params / 1e6))
    return rows


# Sandler et al. 2018, Table 3: the most channels / kB (16-bit activations) that must be materialised at
# each spatial size, ImageNet 224x224. (size, V1 channels, V1 kB, V2 channels, V2 kB), verbatim; the
# ShuffleNet column is not reproduced (not a network this package builds).
V2_TABLE3: tuple[tuple[int, int, int, int, int], ...] = (
    (112, 64, 1600, 16, 400),
    (56, 128, 800, 32, 200),
    (28, 256, 400, 64, 100),
    (14, 512, 200, 160, 62),
    (7, 1024, 199, 320, 32),
    (1, 1024, 2, 1280, 2),
)
V2_TABLE3_MAX_KB = {"mobilenet_v1": 1600, "mobilenet_v2": 400}
# Another arXiv revision shows the 112x112 row as O(1) for every network: the whole first resolution
# computed without materialising it ("stream" below), with these maxima.
V2_TABLE3_STREAM_MAX_KB = {"mobilenet_v1": 800, "mobilenet_v2": 200}
V2_TABLE3_NOTE = (
    "V1 matches every row except 7x7, where 1024 ch x 7x7 x 2 B = 100 kB (the paper prints 199). V2's "
    "56x56, 28x28 and 14x14 rows list 32, 64 and 160 channels, widths V2 has only at the next smaller "
    "size (it has 24, 32 and 96 there); its 112x112 row, 7x7 row and maximum (16 ch = 401 kB) match. "
    "In the streamed variant the V2 maximum is 24 ch x 56x56 = 151 kB, not the paper's 200 kB (32 ch)."
)
