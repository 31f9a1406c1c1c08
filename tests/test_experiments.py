"""The training experiments (ablation, tradeoff): variants, equal-cost matching, verdicts, caching, CLI."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from PIL import Image

import mobilenet.train.fit
from mobilenet.cli import main
from mobilenet.config import ARCHS, DataConfig, ModelConfig, TrainConfig
from mobilenet.costs import model_costs, totals
from mobilenet.experiments.ablation import GROUPS, ablation_variants, equal_cost_width
from mobilenet.experiments.sweep import Summary, Variant, ordering_verdict, run_variant
from mobilenet.experiments.tradeoff import tradeoff_variants

BASE = ModelConfig(width=0.5, num_classes=10, cifar=True)
DIGITS = DataConfig("digits")
TINY = DataConfig("digits", resolution=8)  # the CIFAR strides downsample 8x: one pixel left at the end
QUICK = TrainConfig(epochs=2, batch_size=256, lr_batch=256, precision="fp32", warmup_epochs=0.5)


def test_ablation_variants_change_one_switch_each() -> None:
    variants = {v.name: v.model for v in ablation_variants(list(GROUPS), BASE, DIGITS)}
    assert list(variants) == ["baseline", "relu6-bottleneck", "expansion-shortcut", "no-shortcut", "relu",
                              "classic-block"]  # fmt: skip
    assert variants["baseline"] == BASE
    changed = {name: {f.name for f in dataclasses.fields(m) if getattr(m, f.name) != getattr(BASE, f.name)}
               for name, m in variants.items()}  # fmt: skip
    assert changed["relu6-bottleneck"] == {"bottleneck"}
    assert changed["expansion-shortcut"] == changed["no-shortcut"] == {"shortcut"}
    assert changed["relu"] == {"activation"}
    assert changed["classic-block"] == {"block", "width"}  # its width is re-chosen to match the cost


def test_classic_block_is_matched_to_the_inverted_blocks_cost() -> None:
    for resolution in (32, 16):
        target = totals(model_costs(BASE, resolution)).macs
        width = equal_cost_width(BASE, {"block": "classic"}, resolution)
        classic = totals(model_costs(dataclasses.replace(BASE, block="classic", width=width), resolution)).macs
        assert width < BASE.width  # the wide-narrow-wide block must shrink to cost the same
        assert abs(classic - target) / target < 0.05, (width, classic, target)


def test_ablation_rejects_unknown_groups_and_v1() -> None:
    with pytest.raises(ValueError, match="unknown ablation group 'depth'"):
        ablation_variants(["depth"], BASE, DIGITS)
    with pytest.raises(ValueError, match="must be mobilenet_v2"):
        ablation_variants(["bottleneck"], ModelConfig("mobilenet_v1"), DIGITS)


def test_tradeoff_grid_covers_widths_resolutions_and_full_conv() -> None:
    variants = tradeoff_variants(BASE, DIGITS, archs=ARCHS, widths=(0.25, 1.0), conv_widths=(0.25,),
                                 resolutions=(16, 32), resolution_width=0.25)  # fmt: skip
    names = [v.name for v in variants]
    assert names == ["v1-0.25-r32", "v1-1-r32", "conv-0.25-r32", "v2-0.25-r32", "v2-1-r32", "v1-0.25-r16",
                     "v2-0.25-r16"]  # fmt: skip
    by = {v.name: v for v in variants}
    # Full convolutions cost many times the separable ones (V1 Table 4: 8.6x at 224); fewer pixels cost less.
    assert by["conv-0.25-r32"].macs > 5 * by["v1-0.25-r32"].macs
    assert by["v1-0.25-r16"].macs < by["v1-0.25-r32"].macs
    assert by["v1-0.25-r16"].params == by["v1-0.25-r32"].params  # resolution is not a model parameter


def _summary(name: str, accs: tuple[float, ...]) -> Summary:
    return Summary(Variant(name, BASE, DIGITS), accs, tuple((a,) for a in accs))


def test_ordering_verdict_separates_clear_wins_noise_and_reversals() -> None:
    a, b = _summary("a", (0.90, 0.91, 0.92)), _summary("b", (0.80, 0.81, 0.82))
    close = _summary("c", (0.89, 0.92, 0.90))
    verdict, why = ordering_verdict([a, b])
    assert (
        verdict == "reproduced"
        and why == "a > b: +10.00 points (two-sided 95% CI +7.73 to +12.27, one-sided p = 0.000)"
    )
    assert ordering_verdict([a, close])[0] == "same order, not significant"
    # the same accuracies in another order: equal means that floating point sums differ in the last bit
    same = _summary("s", tuple(k / 360 for k in (344, 339, 340, 344)))  # 1367 of 1440 correct ...
    other = _summary("o", tuple(k / 360 for k in (341, 346, 342, 338)))  # ... and 1367 again
    assert same.mean != other.mean  # in floating point
    assert ordering_verdict([same, other])[0] == "tie" and ordering_verdict([other, same])[0] == "tie"
    assert ordering_verdict([close, a, b])[0] == "reversed, not significant"  # c < a, but within noise
    verdict, why = ordering_verdict([b, a])
    assert verdict == "not reproduced" and why.startswith("b < a: -10.00 points")
    assert ordering_verdict([_summary("x", (0.9,)), _summary("y", (0.8,))]) == (
        "no estimate", "x > y: +10.00 points (one seed: no spread to test against)")  # fmt: skip
    assert ordering_verdict([_summary("x", (0.9, 0.8)), _summary("y", (0.8, 0.9))])[0] == "tie"


def test_welch_t_test_matches_scipy_and_needs_more_than_two_standard_errors() -> None:
    from scipy import stats

    from mobilenet.experiments.sweep import Comparison

    a, b = _summary("a", (0.90, 0.93, 0.91)), _summary("b", (0.88, 0.89, 0.90))
    c = Comparison.of(a, b)
    ref = stats.ttest_ind(a.accs, b.accs, equal_var=False, alternative="greater")
    assert c.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    # the old rule called a gap of 2 standard errors clear; with 3 seeds each that is p ~ 0.07, not < 0.05
    assert c.gap / math.hypot(a.sem, b.sem) > 2 and c.p_value > 0.05
    assert ordering_verdict([a, b])[0] == "same order, not significant"


def test_variants_at_chance_or_diverged_are_flagged() -> None:
    chance = _summary("chance", (0.10, 0.11, 0.09))
    good = _summary("good", (0.95, 0.96, 0.97))
    verdict, _ = ordering_verdict([good, chance])
    assert verdict.startswith("no estimate: chance at chance")
    diverged = Summary(Variant("d", BASE, DIGITS), (0.2, 0.25), ((0.9, 0.2), (0.9, 0.25)))
    assert "diverged" in ordering_verdict([good, diverged])[0]


def test_interrupted_run_resumes_to_the_same_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    variant = Variant("tiny", dataclasses.replace(BASE, width=0.25), TINY)
    fresh = run_variant(variant, QUICK, seed=3, out=tmp_path / "fresh")
    assert [r["epoch"] for r in fresh.history] == [1, 2]

    real = mobilenet.train.fit.train_one_epoch

    def dies_in_epoch_two(*args: object, **kwargs: object) -> dict[str, float]:  # fmt: skip
        if args[4] == 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(mobilenet.train.fit, "train_one_epoch", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        run_variant(variant, QUICK, seed=3, out=tmp_path / "cut")
    monkeypatch.setattr(mobilenet.train.fit, "train_one_epoch", real)
    resumed = run_variant(variant, QUICK, seed=3, out=tmp_path / "cut")
    assert resumed.run_dir.name == fresh.run_dir.name  # same configs, same cache key
    for a, b in zip(resumed.history, fresh.history, strict=True):
        assert a["test_acc"] == b["test_acc"] and a["train_loss"] == b["train_loss"]

    stamp = (resumed.run_dir / "last.pt").stat().st_mtime_ns
    again = run_variant(variant, QUICK, seed=3, out=tmp_path / "cut")  # finished: read, not retrained
    assert (again.run_dir / "last.pt").stat().st_mtime_ns == stamp and again.history == resumed.history
    renamed = again.run_dir.with_name("tiny-s3-0000beef")  # keyed by an older version of the configs
    again.run_dir.rename(renamed)
    found = run_variant(variant, QUICK, seed=3, out=tmp_path / "cut")
    assert found.run_dir == renamed and (renamed / "last.pt").stat().st_mtime_ns == stamp
    longer = run_variant(variant, dataclasses.replace(QUICK, epochs=3), seed=3, out=tmp_path / "cut")
    assert longer.run_dir != resumed.run_dir and len(longer.history) == 3  # a new recipe, a new run


def _png_ok(path: Path) -> None:
    with Image.open(path) as image:
        assert image.size[0] > 300 and image.size[1] > 200


def test_ablation_command_writes_table_json_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import mobilenet.train.optim as optim
    from mobilenet.checkpoint import Checkpoint

    timed: list[int] = []
    real_step_times = optim.step_times

    def counted(*args: object, **kwargs: object) -> dict[str, float]:
        timed.append(1)
        return real_step_times(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(optim, "step_times", counted)
    args = ["experiment", "ablation", "--groups", "bottleneck", "activation", "--epochs", "1", "--seeds", "0", "1",
            "--width", "0.25", "--resolution", "8", "--out", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    # precision "auto" is timed by the first run only, and all six train in the precision it chose
    assert len(timed) == ("AVX512" in torch.backends.cpu.get_cpu_capability())
    saved = {Checkpoint.load(run).train_config.precision for run in (tmp_path / "runs").iterdir()}
    assert len(saved) == 1 and saved <= {"fp32", "bf16"}
    text = capsys.readouterr().out
    assert "| bottleneck | relu6-bottleneck | 0.25 |" in text and "| activation | relu | 0.25 |" in text
    assert "Paper: linear bottleneck > ReLU6 after the projection. Here: **" in text
    data = json.loads((tmp_path / "ablation.json").read_text())
    assert set(data) == {"baseline", "relu6-bottleneck", "relu"}
    assert all(len(v["final_test_acc"]) == 2 and all(0 <= a <= 1 for a in v["final_test_acc"]) for v in data.values())
    assert data["relu"]["model"]["activation"] == "relu"
    _png_ok(tmp_path / "ablation.png")
    assert len(list((tmp_path / "runs").iterdir())) == 6  # 3 variants x 2 seeds, the baseline trained once
    assert main(args) == 0  # everything cached: the same table again, and nothing trained
    again = capsys.readouterr().out
    assert "epoch 1/1" not in again
    assert again[again.index("Ablations on") :] == text[text.index("Ablations on") :]


def test_tradeoff_command_writes_table_json_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["experiment", "tradeoff", "--widths", "0.25", "0.5", "--conv-widths", "0.25", "--resolution", "16",
            "--resolutions", "8", "--resolution-width", "0.25", "--epochs", "1", "--seeds", "0", "--out",
            str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    for row in ("| MobileNetV1 | 0.25 | 16 |", "| MobileNetV1 | 0.25 | 8 |", "| Conv MobileNet | 0.25 | 16 |",
                "| MobileNetV2 | 0.5 | 16 |"):  # fmt: skip
        assert row in text
    assert "Full vs depthwise separable conv" in text and "V2 vs V1" in text and "Resolution (V1 Table 7" in text
    data = json.loads((tmp_path / "tradeoff.json").read_text())
    assert len(data) == 7
    assert data["conv-0.25-r16"]["macs"] > data["v1-0.25-r16"]["macs"]
    _png_ok(tmp_path / "tradeoff.png")


def test_experiment_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "tradeoff", "--dataset", "mnist", "--out", str(tmp_path)]) == 2
    assert "unknown dataset 'mnist'" in capsys.readouterr().err
    assert main(["experiment", "tradeoff", "--resolution", "4", "--epochs", "1", "--out", str(tmp_path)]) == 2
    assert "too small" in capsys.readouterr().err
    for kind in ("ablation", "tradeoff"):  # refused before the output folder is made
        out = tmp_path / kind
        assert main(["experiment", kind, "--seeds", "0", "0", "--epochs", "1", "--out", str(out)]) == 2
        assert "seeds must be distinct" in capsys.readouterr().err and not out.exists()


def test_the_default_regime_on_digits_is_a_fixed_subset_and_keeps_old_cache_keys() -> None:
    from mobilenet.experiments.sweep import Variant, experiment_recipe, run_key

    digits = experiment_recipe("digits", None, None)
    assert digits.data.train_images == 300  # where the variants separate; the test set stays whole
    assert experiment_recipe("digits", None, None, train_images=0).data.train_images == 0
    assert experiment_recipe("cifar10", "x", None).data.train_images == 0  # real data sets train on all
    whole = dataclasses.replace(digits.data, train_images=0)
    variant = Variant("baseline", digits.model, whole)
    # runs cached before the subset option existed keep their key (the field is left out when 0)
    old_blob = json.dumps(
        [dataclasses.asdict(digits.model), {k: v for k, v in dataclasses.asdict(whole).items() if k != "train_images"},
         dataclasses.asdict(digits.train)], sort_keys=True,
    )  # fmt: skip
    import hashlib

    assert run_key(variant, digits.train) == hashlib.sha256(old_blob.encode()).hexdigest()[:8]
    assert run_key(dataclasses.replace(variant, data=digits.data), digits.train) != run_key(variant, digits.train)
