"""The paper tables and width rules: structure and rounding, without torch."""

from __future__ import annotations

import subprocess
import sys
from itertools import accumulate, pairwise

import pytest

from conftest import BLOCK_TORCH
from mobilenet.config import ModelConfig
from mobilenet.specs import (
    V1_LAYERS,
    V2_STAGES,
    check_resolution,
    make_divisible,
    network_spec,
    v1_channels,
    v2_head_channels,
)

# Runs a CLI command in a process where `import torch` fails, as on a machine without it.
NO_TORCH = (
    BLOCK_TORCH
    + """
import mobilenet.config, mobilenet.specs, mobilenet.costs, mobilenet.memory, mobilenet.published, mobilenet.report
from mobilenet.cli import build_parser, main
build_parser()
sys.exit(main(sys.argv[1:]))
"""
)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["summary", "mobilenet_v2"], "Total params: 3,504,872"),
        (["tables"], "MobileNetV2"),
        (["memory", "mobilenet_v2", "--split", "4"], "400K"),
        (["cost", "--in-channels", "3", "--out-channels", "6", "--feature-size", "28"], "Ratio"),
    ],
)
def test_cost_commands_run_without_torch(argv: list[str], expected: str) -> None:
    done = subprocess.run([sys.executable, "-c", NO_TORCH, *argv], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-1500:]
    assert expected in done.stdout


def test_the_torch_blocker_really_blocks() -> None:
    """The check above would pass vacuously if the blocker let torch through: a command that needs it fails."""
    done = subprocess.run([sys.executable, "-c", NO_TORCH, "bench", "--engine", "torch", "--runs", "1"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode != 0 and "torch is blocked" in done.stderr


@pytest.mark.parametrize(
    "value,expected",
    [
        (32 * 1.4, 48),  # torchvision PR #1005: 44.8 must give 48, not 44
        (32 * 0.35, 16),  # nearest is 8, but that is > 10% below 11.2
        (16 * 0.75, 16),
        (24 * 0.75, 24),  # 16 would be > 10% below 18
        (1280 * 1.4, 1792),
        (4, 8),  # never below the divisor
        (36, 40),  # ties round up
    ],
)
def test_make_divisible(value: float, expected: int) -> None:
    assert make_divisible(value) == expected


def test_v2_width_075_channels_match_released_checkpoint() -> None:
    # d-li14/mobilenetv2.pytorch#25: 0.75 stem and stage widths are [24, 16, 24, 24, 48, 72, 120, 240]
    spec = network_spec(ModelConfig(width=0.75))
    stage_ends = [spec.blocks[end - 1].out_channels for end in accumulate(s.n for s in V2_STAGES)]
    assert [spec.stem_channels, *stage_ends] == [24, 16, 24, 24, 48, 72, 120, 240]


@pytest.mark.parametrize("width,head", [(0.35, 1280), (0.5, 1280), (0.75, 1280), (1.0, 1280), (1.3, 1664), (1.4, 1792)])
def test_v2_head_kept_at_1280_below_width_one(width: float, head: int) -> None:
    assert v2_head_channels(width) == head
    assert network_spec(ModelConfig(width=width)).head_channels == head


def test_v1_truncates_with_floor_of_8() -> None:
    assert v1_channels(32, 0.25) == 8
    assert v1_channels(1024, 0.75) == 768
    assert v1_channels(64, 0.1) == 8
    spec = network_spec(ModelConfig(arch="mobilenet_v1", width=0.5))
    assert spec.stem_channels == 16
    assert [b.out_channels for b in spec.blocks] == [c // 2 for c, _ in V1_LAYERS]
    assert spec.head_channels is None


def test_v2_structure_17_blocks_10_residual_first_without_expand() -> None:
    blocks = network_spec(ModelConfig()).blocks
    assert len(blocks) == 17
    assert sum(b.use_residual for b in blocks) == 10
    assert not blocks[0].has_expand and all(b.has_expand for b in blocks[1:])
    # hidden width is computed from the already-rounded input: 16 * 6 = 96 for block 1
    assert [b.hidden_channels for b in blocks[:3]] == [32, 96, 144]
    assert all(b.use_residual == (b.stride == 1 and b.in_channels == b.out_channels) for b in blocks)


def test_v1_structure_13_separable_layers() -> None:
    spec = network_spec(ModelConfig(arch="mobilenet_v1"))
    assert len(spec.blocks) == 13 and {b.kind for b in spec.blocks} == {"separable"}
    assert [b.stride for b in spec.blocks].count(2) == 4
    assert spec.total_stride == 32
    conv = network_spec(ModelConfig(arch="conv_mobilenet"))
    assert {b.kind for b in conv.blocks} == {"conv"}


@pytest.mark.parametrize("arch", ["mobilenet_v1", "conv_mobilenet", "mobilenet_v2"])
def test_cifar_variant_downsamples_8x(arch: str) -> None:
    spec = network_spec(ModelConfig(arch=arch, cifar=True))
    assert spec.stem_stride == 1 and spec.total_stride == 8
    imagenet = network_spec(ModelConfig(arch=arch))
    changed = [i for i, (a, b) in enumerate(zip(spec.blocks, imagenet.blocks, strict=True)) if a != b]
    assert len(changed) == 1 and imagenet.blocks[changed[0]].stride == 2


def test_shortcut_switches() -> None:
    none = network_spec(ModelConfig(shortcut="none")).blocks
    assert not any(b.use_residual or b.expansion_skip for b in none)
    expansion = network_spec(ModelConfig(shortcut="expansion")).blocks
    assert not any(b.use_residual for b in expansion)
    # each of the 10 bottleneck shortcuts becomes one between that block's and the next one's expansion
    assert sum(b.expansion_skip for b in expansion) == 10
    for prev, b in pairwise(expansion):
        if b.expansion_skip:
            assert prev.hidden_channels == b.hidden_channels and prev.stride == 1


def test_classic_blocks_are_wide_narrow_wide() -> None:
    blocks = network_spec(ModelConfig(block="classic")).blocks
    assert {b.kind for b in blocks} == {"classic"}
    assert all(b.hidden_channels < b.out_channels for b in blocks[1:])
    assert sum(b.use_residual for b in blocks) == 10


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"arch": "mobilenet_v3"}, "unknown architecture 'mobilenet_v3'"),
        ({"width": 0}, "width must be a number > 0 and below 10,000, got 0"),
        ({"width": -0.5}, "got -0.5"),
        ({"num_classes": 0}, "num_classes must be an integer >= 1, got 0"),
        ({"num_classes": True}, "num_classes"),
        ({"dropout": 1.0}, "dropout must be in [0, 1)"),
        ({"activation": "gelu"}, "unknown activation 'gelu'"),
        ({"arch": "mobilenet_v1", "shortcut": "none"}, "only applies to mobilenet_v2"),
        ({"block": "classic", "shortcut": "expansion"}, "use block='inverted'"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as err:
        ModelConfig(**kwargs)  # type: ignore[arg-type]
    assert message in str(err.value)


@pytest.mark.parametrize("arch,cifar,smallest", [("mobilenet_v2", False, 32), ("mobilenet_v1", True, 8)])
def test_resolution_too_small_is_rejected(arch: str, cifar: bool, smallest: int) -> None:
    spec = network_spec(ModelConfig(arch=arch, cifar=cifar))
    check_resolution(spec, smallest)
    with pytest.raises(ValueError, match=f"resolution {smallest - 1} is too small"):
        check_resolution(spec, smallest - 1)
    with pytest.raises(ValueError, match="positive integer"):
        check_resolution(spec, 0)
