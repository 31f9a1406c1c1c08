"""The analytic cost model: published numbers (convention beside each) and agreement with the modules."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from torch import nn

from mobilenet.config import ModelConfig
from mobilenet.costs import compare_separable, model_costs, totals
from mobilenet.models import build_model, count_params
from mobilenet.published import SLIM_V1_LAYERS, TABLES, V1_TABLE3, compare


def test_v2_headline_numbers() -> None:
    t = totals(model_costs(ModelConfig(), 224))
    assert t.macs == 300_774_272  # conv + FC multiply-adds (TF-Slim "300", tonylins "300.775 M")
    assert t.params == 3_504_872  # + BN gamma/beta, 1000 classes: torchvision's num_params, Keras "Trainable"
    assert t.params_without_bn == 3_470_760  # TF-Slim "3.47M" convention (with 1000 classes)
    assert t.params + t.bn_buffers == 3_538_984  # Keras "Total params" (running mean/var included)


def test_v1_headline_numbers() -> None:
    t = totals(model_costs(ModelConfig(arch="mobilenet_v1"), 224))
    assert t.macs == 568_740_352  # Slim docstring body 567,716,352 + 1024 x 1000 FC; paper "569"
    assert t.params_without_bn == 4_210_088  # paper "4.2M"
    assert t.params + t.bn_buffers == 4_253_864  # Keras MobileNet(1.0) total params


def _body(config: ModelConfig, resolution: int) -> list:
    return [c for c in model_costs(config, resolution) if c.name not in ("pool", "classifier")]


def test_v1_body_matches_slim_per_layer_table() -> None:
    # TF-Slim mobilenet_v1.py docstring: conv weights only (no BN, no classifier), 1.0/224.
    body = _body(ModelConfig(arch="mobilenet_v1"), 224)
    assert [(c.weights, c.macs) for c in body] == [(p, m) for _, p, m in SLIM_V1_LAYERS]
    assert sum(c.weights for c in body) == 3_185_088
    assert sum(c.macs for c in body) == 567_716_352


def test_v1_075_128_body_matches_slim_docstring() -> None:
    body = _body(ModelConfig(arch="mobilenet_v1", width=0.75), 128)
    assert sum(c.weights for c in body) == 1_800_144
    assert sum(c.macs for c in body) == 106_002_432


@pytest.mark.parametrize("name", sorted(TABLES))
def test_published_tables_match_except_documented_cells(name: str) -> None:
    """Every cell agrees under its table's convention (see TABLES), or carries a written reason why not."""
    for c in compare(TABLES[name]):
        assert c.agrees == (c.row.discrepancy == ""), (c.row.label, c.macs_m, c.params_m)


def test_slim_v2_table_all_22_cells_exact() -> None:
    # TF-Slim README: 1001 classes, no BN params (exact to 0.01M), MACs truncated to millions.
    comparisons = compare(TABLES["slim_v2"])
    assert len(comparisons) == 22 and all(c.agrees for c in comparisons)


def test_conv_mobilenet_matches_table4_without_its_fc() -> None:
    t = totals(model_costs(ModelConfig(arch="conv_mobilenet"), 224))
    assert round(t.params_without_bn / 1e6, 1) == 29.3
    fc_macs = 1024 * 1000
    assert abs((t.macs - fc_macs) / 1e6 - 4866) < 1.0
    separable = totals(model_costs(ModelConfig(arch="mobilenet_v1"), 224))
    assert 8 < t.macs / separable.macs < 9  # "8 to 9 times less computation" (V1 sec. 3.1)


def test_lecture_note_example() -> None:
    c = compare_separable(kernel=3, in_channels=3, out_channels=3, feature_size=6)
    assert (c.standard, c.separable) == (2_916, 1_296)
    assert Fraction(c.separable, c.standard) == Fraction(1, 3) + Fraction(1, 9)


@pytest.mark.parametrize("k,m,n,df", [(3, 512, 512, 14), (3, 32, 64, 112), (5, 7, 11, 13), (1, 4, 4, 2)])
def test_separable_ratio_is_one_over_n_plus_one_over_k_squared(k: int, m: int, n: int, df: int) -> None:
    c = compare_separable(k, m, n, df)
    assert Fraction(c.separable, c.standard) == Fraction(1, n) + Fraction(1, k * k)


def test_v1_table3_one_layer() -> None:
    for label, k, m, n, df, macs, params in V1_TABLE3:
        c = compare_separable(k, m, n, df)
        ours = c.standard if label == "Convolution" else c.separable
        ours_params = k * k * m * n if label == "Convolution" else k * k * m + m * n
        assert abs(ours / 1e6 - macs) < 0.05 * macs, label
        assert round(ours_params / 1e6, 2) == params, label


def test_compare_separable_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="in_channels must be a positive integer, got 0"):
        compare_separable(3, 0, 3, 6)


# --- the cost model must agree with the real modules ---------------------------------------------------

CONFIGS = [
    ModelConfig(),
    ModelConfig(width=0.35, num_classes=10),
    ModelConfig(width=1.4),
    ModelConfig(width=0.75, cifar=True, num_classes=100),
    ModelConfig(arch="mobilenet_v1"),
    ModelConfig(arch="mobilenet_v1", width=0.25, num_classes=7),
    ModelConfig(arch="mobilenet_v1", width=0.6, cifar=True),
    ModelConfig(arch="conv_mobilenet", width=0.5),
    ModelConfig(block="classic", width=0.5),
    ModelConfig(shortcut="expansion", bottleneck="relu6", activation="relu"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.arch}-{c.width}-{c.block}-{c.cifar}")
def test_params_equal_module_parameters(config: ModelConfig) -> None:
    t = totals(model_costs(config, 224))
    model = build_model(config)
    assert t.params == count_params(model)
    buffers = sum(b.numel() for name, b in model.named_buffers() if "running_" in name)
    assert t.bn_buffers == buffers


def _hooked_costs(model: nn.Module, resolution: int) -> dict[str, tuple[int, tuple[int, ...]]]:
    """MACs and output shape of every conv/linear, counted from the tensors a forward pass produces."""
    found: dict[str, tuple[int, tuple[int, ...]]] = {}

    def hook(name: str):
        def record(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
            if isinstance(module, nn.Conv2d):
                k = module.kernel_size[0] * module.kernel_size[1]
                macs = output[0].numel() * (module.in_channels // module.groups) * k
            else:
                macs = module.in_features * module.out_features
            found[name.removesuffix(".conv")] = (macs, tuple(output.shape[1:]))

        return record

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.register_forward_hook(hook(name))
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, resolution, resolution))
    return found


@pytest.mark.parametrize("resolution", [224, 97])
@pytest.mark.parametrize("config", CONFIGS[:9], ids=lambda c: f"{c.arch}-{c.width}-{c.block}-{c.cifar}")
def test_macs_and_shapes_equal_forward_hook_counts(config: ModelConfig, resolution: int) -> None:
    if config.cifar:
        resolution //= 4  # the CIFAR variants are meant for small inputs; 56 and 24 here
    analytic = {c.name: c for c in model_costs(config, resolution) if c.name != "pool"}
    hooked = _hooked_costs(build_model(config), resolution)
    assert set(analytic) == set(hooked)
    for name, (macs, shape) in hooked.items():
        c = analytic[name]
        assert c.macs == macs, name
        assert (c.out_shape if name != "classifier" else (c.out_shape[0],)) == shape, name
