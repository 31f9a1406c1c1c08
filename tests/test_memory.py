"""Memory-efficient inference: the V2 paper's Table 3, split execution equal to normal inference with the
same multiply-adds for every t, and allocator-measured peaks that match the analytic bound."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from conftest import import_peer, randomize_bn
from mobilenet.checkpoint import Checkpoint
from mobilenet.cli import main
from mobilenet.config import ModelConfig
from mobilenet.costs import model_costs, totals
from mobilenet.data.splits import load_digits_splits
from mobilenet.deploy.measure import peak_allocated
from mobilenet.deploy.predict import predict
from mobilenet.deploy.split import SplitInference
from mobilenet.memory import (
    groups_of,
    materialised,
    max_splits,
    peak_bytes,
    per_op_memory,
    split_memory,
)
from mobilenet.models import build_model, mobilenet_v2
from mobilenet.published import V2_TABLE3

V1, V2 = ModelConfig("mobilenet_v1"), ModelConfig("mobilenet_v2")


def _kb(channels: int, size: int) -> float:
    return channels * size * size * 2 / 1000  # 16-bit activations, the table's convention


def test_table3_maxima_match_the_paper() -> None:
    # 64 ch x 112 x 112 x 2 B = 1,605,632 B ("1600K"); V2's 16-ch bottleneck at 112x112 is 401,408 ("400K")
    assert max(r.bytes("float16") for r in materialised(V1)) == 1_605_632
    assert max(r.bytes("float16") for r in materialised(V2)) == 401_408
    # Without the first-layer trick V2's stem output (32 ch at 112x112) must exist: 802,816 B.
    assert max(r.bytes("float16") for r in materialised(V2, first_layer="materialise")) == 802_816
    # The revision that streams the whole first resolution: V1 800K (128 ch at 56x56), V2 24 ch at 56x56.
    assert max(r.bytes("float16") for r in materialised(V1, first_layer="stream")) == 802_816
    assert max(r.bytes("float16") for r in materialised(V2, first_layer="stream")) == 150_528


def test_table3_v1_rows_match_except_the_documented_7x7_cell() -> None:
    paper = {size: (c1, kb1) for size, c1, kb1, _, _ in V2_TABLE3}
    rows = materialised(V1)
    assert [r.size for r in rows] == [112, 56, 28, 14, 7, 1]
    for r in rows:
        channels, kb = paper[r.size]
        assert r.channels == channels
        if r.size != 7:  # the paper prints 199 kB for 1024 x 7 x 7 x 2 B = 100 kB
            assert abs(_kb(r.channels, r.size) - kb) <= 0.02 * kb + 1, r
    v2 = {r.size: r.channels for r in materialised(V2)}
    assert v2[112] == 16 and v2[1] == 1280 and v2[7] == 320


def test_split_plan_shrinks_with_t_and_beats_per_op() -> None:
    per_op = peak_bytes(per_op_memory(V2))
    peaks = [peak_bytes(split_memory(V2, 224, t)) for t in (1, 2, 4, 8, 16, 32)]
    assert all(a > b for a, b in itertools.pairwise(peaks)), peaks
    assert peaks[-1] <= peaks[-2]
    assert peaks[2] * 2 < per_op  # t = 4 already needs less than half of "every conv its own op"
    # With one channel per group the bound approaches the bottleneck tensors alone.
    ops = split_memory(V2, 224, 32)
    assert max(op.total for op in ops) < 1.2 * max(op.inputs + op.outputs for op in ops)


def test_groups_cover_every_channel_once() -> None:
    for channels, t in ((96, 4), (10, 3), (5, 8), (1280, 1280)):
        g = groups_of(channels, t)
        assert len(g) == min(t, channels) and g[0][0] == 0 and g[-1][1] == channels
        assert all(a[1] == b[0] for a, b in itertools.pairwise(g))
        assert max(b - a for a, b in g) - min(b - a for a, b in g) <= 1


@pytest.mark.parametrize(
    ("width", "resolution", "batch", "splits"),
    [
        (1.0, 224, 1, (1, 2, 4)),
        (0.35, 96, 3, (1, 3, 7)),
        (1.4, 160, 2, (2, 5)),
        (0.5, 97, 1, (6, "max")),
        (0.25, 64, 2, (1, 2)),  # stem and first block both 8 wide: that block has a skip, so no fused stem
    ],
)
def test_split_outputs_equal_normal_inference(width: float, resolution: int, batch: int, splits: tuple) -> None:
    torch.manual_seed(0)
    model = mobilenet_v2(width).eval()
    randomize_bn(model)
    x = torch.randn(batch, 3, resolution, resolution)
    with torch.no_grad():
        ref = model(x)
    assert ref.abs().max() > 0.05  # a real signal, not all-zero logits
    for t in splits:
        t = max_splits(model.config) if t == "max" else t
        out = SplitInference(model, t)(x)
        assert out.shape == ref.shape
        assert (out - ref).abs().max().item() <= 1e-5, t


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig("mobilenet_v2", 0.5, 10, cifar=True),
        ModelConfig("mobilenet_v2", 0.5, activation="relu"),
        ModelConfig("mobilenet_v2", 0.5, bottleneck="relu6"),
        ModelConfig("mobilenet_v2", 0.5, shortcut="none"),
    ],
    ids=["cifar", "relu", "relu6-bottleneck", "no-shortcut"],
)
def test_split_handles_every_splittable_variant(config: ModelConfig) -> None:
    torch.manual_seed(1)
    model = build_model(config).eval()
    randomize_bn(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
    for t in (1, 3, 16):
        assert (SplitInference(model, t)(x) - ref).abs().max().item() <= 1e-5


def _flops(fn: object) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()  # type: ignore[operator]
    return counter.get_total_flops()


@pytest.mark.parametrize(("width", "resolution"), [(1.0, 224), (0.75, 128)])
def test_multiply_adds_do_not_depend_on_t(width: float, resolution: int) -> None:
    model = mobilenet_v2(width).eval()
    x = torch.randn(2, 3, resolution, resolution)
    config = model.config
    expected = 2 * 2 * totals(model_costs(config, resolution)).macs  # FLOPs = 2 x MACs, batch 2
    with torch.no_grad():
        assert _flops(lambda: model(x)) == expected
    for t in (1, 2, 5, 64):
        assert _flops(lambda t=t: SplitInference(model, t)(x)) == expected


def test_measured_peak_matches_the_bound_and_falls_with_t() -> None:
    torch.manual_seed(0)
    model = mobilenet_v2(1.0).eval()
    x = torch.randn(1, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    image = x.numel() * 4
    measured = []
    for t in (1, 2, 4, 8):
        executor = SplitInference(model, t)
        peak = peak_allocated(lambda e=executor: e(x)) + image
        bound = peak_bytes(split_memory(model.config, 224, t), input_held=True)
        assert bound <= peak <= 1.2 * bound, (t, peak, bound)
        measured.append(peak)
    assert all(a > b for a, b in itertools.pairwise(measured)), measured
    tv = import_peer("torchvision").models.mobilenet_v2().eval()
    with torch.no_grad():
        peer = peak_allocated(lambda: tv(x.contiguous())) + image
    assert peer >= 3 * measured[2], (peer, measured)  # t = 4: at least 3x below torchvision eager


@pytest.mark.parametrize(
    ("config", "t", "message"),
    [
        (V2, 0, "splits must be an integer >= 1"),
        (V2, 1281, "larger than the widest expanded tensor .1280 channels"),
        (V1, 2, "needs inverted residual blocks"),
        (ModelConfig("mobilenet_v2", block="classic"), 2, "classic residual blocks has none"),
        (ModelConfig("mobilenet_v2", shortcut="expansion"), 2, "cannot run shortcut='expansion'"),
    ],
)
def test_bad_splits_are_clear_errors(config: ModelConfig, t: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_memory(config, 224, t)
    with pytest.raises(ValueError, match=message):
        SplitInference(build_model(config), t)


def test_split_rejects_wrong_inputs() -> None:
    executor = SplitInference(mobilenet_v2(0.35).eval(), 2)
    with pytest.raises(ValueError, match=r"shaped \(N, 3, H, W\)"):
        executor(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="at least 32"):
        executor(torch.randn(1, 3, 16, 16))
    with pytest.raises(NotImplementedError, match="build SplitInference from a model already on"):
        executor.to(torch.float64)


def test_memory_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["memory", "mobilenet_v1"]) == 0
    out = capsys.readouterr().out
    assert "1,605.6" in out and "64/1600" in out and "1600K" in out
    assert main(["memory", "mobilenet_v2", "--split", "4", "--dtype", "float32", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["materialised_max_bytes"] == 802_816  # 16 x 112 x 112 x 4 B
    assert data["split_peak_bytes"] == peak_bytes(split_memory(V2, 224, 4))
    assert data["per_op_peak_bytes"] == peak_bytes(per_op_memory(V2))
    assert main(["memory", "mobilenet_v2", "--first-layer", "stream"]) == 0
    assert "200K" in capsys.readouterr().out
    assert main(["memory", "mobilenet_v1", "--split", "2"]) == 2
    assert "needs inverted residual blocks" in capsys.readouterr().err
    for batch in ("0", "-3"):  # printed negative kilobytes before
        assert main(["memory", "mobilenet_v2", "--batch", batch]) == 2
        assert "batch must be an integer >= 1" in capsys.readouterr().err
    # the paper's column is the 1.0 network's: left empty at other widths
    assert main(["memory", "mobilenet_v2", "--width", "0.5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "paper_max_kb" not in data and all(row["paper"] is None for row in data["materialised"])


def test_predict_split_on_a_trained_checkpoint(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, _ = load_digits_splits()
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"d{i}.png")
        Image.fromarray(train.images[i, 0].numpy()).save(paths[-1])
    plain = predict(digits_run, paths, top_k=10)
    for t in (2, 7):
        split = predict(digits_run, paths, top_k=10, splits=t)
        for a, b in zip(plain, split, strict=True):  # compare label -> probability: ties may swap order
            probs = dict(zip(b.labels, b.probabilities, strict=True))
            assert [probs[label] for label in a.labels] == pytest.approx(a.probabilities, abs=1e-5)
    capsys.readouterr()
    assert main(["predict", str(paths[0]), "--checkpoint", str(digits_run), "--split", "3", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)[0]["labels"]) <= set(plain[0].labels)
    assert (
        Checkpoint.load(digits_run).build_model().config.cifar
    )  # the digits recipe trains the CIFAR variant (stride-1 stem)


def test_bench_cli_split(digits_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "bench",
        "--checkpoint",
        str(digits_run),
        "--batch",
        "1",
        "2",
        "--runs",
        "3",
        "--seconds",
        "0.1",
        "--split",
        "1",
        "8",
        "--engine",
        "torch",
        "--json",
    ]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["resolution"] == 32 and len(data["results"]) == 6
    by_name = {(r["name"], r["batch"]): r for r in data["results"]}
    assert by_name[("mobilenet split t=8", 2)]["peak_bytes"] < by_name[("mobilenet split t=1", 2)]["peak_bytes"]
    assert all(r["median_ms"] > 0 and r["p90_ms"] >= r["median_ms"] for r in data["results"])
    assert any("no model matching" in n for n in data["notes"])


def test_predict_refuses_an_input_side_whose_activations_cannot_fit() -> None:
    """The analytic peak decides before anything is decoded: at 100,000 px one image of the CIFAR variant
    would need terabytes, where the process used to be killed by the kernel."""
    from mobilenet.deploy.predict import check_fits

    config = ModelConfig(width=0.5, num_classes=10, cifar=True)
    check_fits(config, 224)  # a few hundred MB: fine
    with pytest.raises(ValueError, match=r"--resolution 100000: one image needs [\d,]+ GB for its activations"):
        check_fits(config, 100_000)
    with pytest.raises(ValueError, match="too small"):
        check_fits(config, 4)
