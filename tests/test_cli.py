"""The command line prints the pinned numbers and turns bad input into one-line errors (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mobilenet.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's own errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_v2_prints_pinned_totals(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", "mobilenet_v2")
    assert code == 0
    assert "Total params: 3,504,872 (3,470,760 without BN" in out
    assert "Multiply-adds: 300,774,272 (300.8M)" in out
    assert "blocks.16.project" in out and "1280x7x7" in out


def test_summary_json_layers_add_up(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", "mobilenet_v1", "--width", "0.75", "--resolution", "128", "--json")
    data = json.loads(out)
    assert code == 0 and data["arch"] == "mobilenet_v1" and data["resolution"] == 128
    assert sum(layer["macs"] for layer in data["layers"]) == data["totals"]["macs"]
    assert sum(layer["params"] for layer in data["layers"]) == data["totals"]["params"]
    body = [layer for layer in data["layers"] if layer["name"] not in ("pool", "classifier")]
    assert sum(layer["macs"] for layer in body) == 106_002_432  # TF-Slim docstring, 0.75/128 base


def test_summary_num_classes_and_cifar(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", "mobilenet_v2", "--cifar", "--resolution", "32", "--num-classes", "10",
                       "--json")  # fmt: skip
    data = json.loads(out)
    assert code == 0 and data["layers"][-1]["output_shape"] == [10, 1, 1]
    assert data["layers"][-3]["output_shape"] == [1280, 4, 4]


def test_cost_prints_lecture_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "cost", "--kernel", "3", "--in-channels", "3", "--out-channels", "3",
                       "--feature-size", "6")  # fmt: skip
    assert code == 0
    assert "= 2,916 mult-adds" in out and "= 972 + 324 = 1,296 mult-adds" in out
    assert "1/N + 1/D_K^2 = 1/3 + 1/9 = 0.4444" in out
    code, out, _ = run(capsys, "cost", "--in-channels", "512", "--out-channels", "512", "--feature-size", "14",
                       "--json")  # fmt: skip
    assert json.loads(out)["standard"] == 462_422_016
    # a 1x1 kernel: "separable" is a 1x1 depthwise then the same 1x1 conv, so it costs more, and says so
    code, out, _ = run(capsys, "cost", "--kernel", "1", "--in-channels", "4", "--out-channels", "4",
                       "--feature-size", "2")  # fmt: skip
    assert code == 0 and "= 1.2500 (1.25x more mult-adds)" in out and "fewer" not in out


def test_cost_reproduces_the_lecture_keras_parameter_count(capsys: pytest.CaptureFixture[str]) -> None:
    """The lecture notes' Keras example: a 30x30x3 input, DepthwiseConv2D 3x3 (valid, so 28x28x3), then a
    1x1 Conv2D to 6 channels: a 28x28x6 output and 54 parameters with biases (30 + 24)."""
    code, out, _ = run(capsys, "cost", "--kernel", "3", "--in-channels", "3", "--out-channels", "6",
                       "--feature-size", "28")  # fmt: skip
    assert code == 0 and "separable 30 + 24 = 54" in out and "standard 168" in out
    assert "separable D_K^2*M + M*N = 27 + 18 = 45" in out
    code, out, _ = run(capsys, "cost", "--kernel", "3", "--in-channels", "3", "--out-channels", "6",
                       "--feature-size", "28", "--json")  # fmt: skip
    params = json.loads(out)["params"]
    assert (params["separable_with_bias"], params["separable"], params["standard_with_bias"]) == (54, 45, 168)


def test_tables_show_every_published_cell(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "tables")
    assert code == 0
    rows = [line for line in out.splitlines() if line.rstrip().endswith((" yes", " NO")) or " known " in line]
    assert len(rows) == 22 + 16 + 4 + 4 + 2 + 27
    assert not any(line.rstrip().endswith(" NO") for line in rows)
    assert "mobilenet_v2_1.0_224         300   300.78" in out  # 1001 classes: 300,775,552


@pytest.mark.parametrize(
    "argv,message",
    [
        (["summary", "mobilenet_v3"], "unknown architecture 'mobilenet_v3'"),
        (["summary", "mobilenet_v2", "--width", "0"], "width must be a number > 0 and below 10,000, got 0.0"),
        (["summary", "mobilenet_v2", "--resolution", "16"], "resolution 16 is too small"),
        (["summary", "mobilenet_v1", "--num-classes", "0"], "num_classes must be an integer >= 1, got 0"),
        (
            ["cost", "--in-channels", "-1", "--out-channels", "3", "--feature-size", "6"],
            "in_channels must be",
        ),
        (["summary", "mobilenet_v2", "--width", "wide"], "invalid float value: 'wide'"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 or err.startswith("usage:")


def test_module_entry_point_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "mobilenet", "summary", "mobilenet_v2", "--width", "0.5"],
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert "Total params: 1,968,680" in result.stdout  # d-li14 "1.968M" (BN affine, 1000 classes)
    bad = subprocess.run([sys.executable, "-m", "mobilenet", "summary", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_lecture_example_matches_keras_itself() -> None:
    from conftest import import_keras
    from mobilenet.costs import compare_separable

    keras = import_keras()
    model = keras.Sequential([keras.Input((30, 30, 3)), keras.layers.DepthwiseConv2D(3), keras.layers.Conv2D(6, 1)])
    c = compare_separable(3, 3, 6, 28)
    assert model.output_shape == (None, 28, 28, 6)
    assert model.count_params() == c.separable_params(bias=True) == 54


def test_inference_threads_follow_the_cores_a_process_may_use() -> None:
    """Default inference threads: 2, or fewer when the process is pinned to fewer cores (taskset, a
    container): more threads than cores make spinning thread pools wait on each other."""
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from mobilenet.cores import available_cores, inference_threads; "
        "print(available_cores(), inference_threads(), inference_threads(3))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1", "3"]


def test_a_benchmark_gives_pytorchs_thread_count_back() -> None:
    import torch

    from mobilenet.cores import restores_torch_threads

    @restores_torch_threads
    def timing_on_one_thread() -> int:
        torch.set_num_threads(1)
        return torch.get_num_threads()

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        assert timing_on_one_thread() == 1 and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
