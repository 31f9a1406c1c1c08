"""The recipes' optimizers as their references define them: TF RMSProp, decay groups, EMA warm-up,
the learning rate of a global batch, and the measured precision choice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.optim.swa_utils import AveragedModel

from mobilenet.checkpoint import Checkpoint
from mobilenet.cli import main
from mobilenet.config import DataConfig, ModelConfig, TrainConfig
from mobilenet.models import mobilenet_v2
from mobilenet.train import optim
from mobilenet.train.fit import fit
from mobilenet.train.optim import TFRMSprop, ema_avg_fn, ema_decay_at, param_groups


def test_rmsprop_follows_tensorflows_formula() -> None:
    """tf.compat.v1.train.RMSPropOptimizer: ms starts at 1, epsilon inside the root, momentum on the step."""
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(5)
    grads = [rng.standard_normal(5) for _ in range(3)]
    lr, rho, mu, eps, wd = 0.045, 0.9, 0.9, 1.0, 4e-5
    w, ms, mom = w0.copy(), np.ones(5), np.zeros(5)
    for g in grads:  # TF's documented update, with Slim's L2 term in the gradient
        g = g + wd * w
        ms = rho * ms + (1 - rho) * g * g
        mom = mu * mom + lr * g / np.sqrt(ms + eps)
        w = w - mom
    p = torch.nn.Parameter(torch.tensor(w0))
    opt = TFRMSprop([p], lr, rho=rho, momentum=mu, eps=eps, weight_decay=wd)
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-12, atol=1e-14)
    # PyTorch's RMSprop (ms from 0, eps outside the root) takes a first step ~lr/sqrt(0.1) ~ 3x lr per
    # coordinate; TF's starts near lr * g / sqrt(2): about an order of magnitude smaller for |g| ~ 1.
    q = torch.nn.Parameter(torch.tensor(w0))
    torch_opt = torch.optim.RMSprop([q], lr=lr, alpha=rho, momentum=mu, eps=1e-8)
    q.grad = torch.tensor(grads[0])
    torch_opt.step()
    p2 = torch.nn.Parameter(torch.tensor(w0))
    p2.grad = torch.tensor(grads[0])
    TFRMSprop([p2], lr, rho=rho, momentum=mu, eps=eps).step()
    ratio = (q.detach() - torch.tensor(w0)).abs().mean() / (p2.detach() - torch.tensor(w0)).abs().mean()
    assert ratio > 2.5


def test_depthwise_weights_are_not_decayed_in_the_paper_recipe() -> None:
    model = mobilenet_v2(0.5)
    depthwise = sum(1 for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1)
    convs = sum(1 for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    slim = param_groups(model, 4e-5, decay_depthwise=False)
    every = param_groups(model, 4e-5, decay_depthwise=True)
    assert len(every[0]["params"]) == convs + 1  # every conv weight and the classifier's
    assert len(slim[0]["params"]) == convs + 1 - depthwise == 52 + 1 - 17
    assert all(p.ndim > 1 for p in slim[0]["params"]) and slim[1]["weight_decay"] == 0.0
    total = sum(len(g["params"]) for g in slim)
    assert total == len(list(model.parameters()))


def test_ema_decay_ramps_like_tensorflow() -> None:
    assert ema_decay_at(0.9999, 0) == pytest.approx(0.1)
    assert ema_decay_at(0.9999, 90) == pytest.approx(0.91)
    assert ema_decay_at(0.9999, 10**6) == 0.9999
    assert ema_decay_at(0.9, 10**3) == 0.9


def test_ema_of_a_short_run_follows_the_weights(tmp_path: Path) -> None:
    """Without the warm-up, decay 0.9999 keeps a short run's average at its random start (the main job
    then scores 10%, chance); with TensorFlow's ramp it follows the weights, lagging by a few steps."""
    model = torch.nn.Linear(3, 2)
    start = model.weight.detach().clone()
    ema = AveragedModel(model, multi_avg_fn=ema_avg_fn(0.9999), use_buffers=True)
    ema.update_parameters(model)  # the first call copies the weights
    expected = start.clone()
    for n in range(1, 300):
        with torch.no_grad():
            model.weight.add_(1.0)  # weights that move steadily, as in training
        ema.update_parameters(model)
        d = min(0.9999, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * model.weight.detach()
    averaged = ema.module.weight.detach()
    torch.testing.assert_close(averaged, expected, rtol=1e-5, atol=1e-4)
    assert ((model.weight.detach() - averaged) < 40).all() and ((averaged - start) > 250).all()  # ~30 steps behind


def test_auto_precision_is_measured_and_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = mobilenet_v2(0.25, cifar=True)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    cpu = torch.device("cpu")
    times = optim.step_times(model, x, y, cpu, rounds=1)
    assert set(times) == {"fp32", "bf16"} and all(t > 0 for t in times.values())
    assert optim.choose_bf16(model, x, y, TrainConfig(precision="bf16"), cpu)
    assert not optim.choose_bf16(model, x, y, TrainConfig(precision="fp32"), cpu)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(optim, "step_times", lambda *a, **k: {"fp32": 1.0, "bf16": 0.5})
    assert optim.choose_bf16(model, x, y, TrainConfig(), cpu)
    monkeypatch.setattr(optim, "step_times", lambda *a, **k: {"fp32": 1.0, "bf16": 0.95})  # not 10% faster
    assert not optim.choose_bf16(model, x, y, TrainConfig(), cpu)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(optim, "step_times", lambda *a, **k: pytest.fail("no AVX-512: nothing to measure"))
    assert not optim.choose_bf16(model, x, y, TrainConfig(), cpu)
    # on a GPU bf16 is timed too (an H200 trained this model faster in fp32), where the GPU has bf16 at all
    gpu = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.setattr(optim, "step_times", lambda *a, **k: {"fp32": 1.0, "bf16": 1.2})
    assert not optim.choose_bf16(model, x, y, TrainConfig(), gpu)
    monkeypatch.setattr(optim, "step_times", lambda *a, **k: {"fp32": 1.0, "bf16": 0.5})
    assert optim.choose_bf16(model, x, y, TrainConfig(), gpu)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert not optim.choose_bf16(model, x, y, TrainConfig(), gpu)


def test_the_chosen_precision_is_saved_for_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(optim, "step_times", lambda *a, **k: {"fp32": 1.0, "bf16": 2.0})
    cfg = TrainConfig(epochs=1, batch_size=128, lr_batch=128, threads=1)
    fit(ModelConfig(arch="mobilenet_v1", width=0.25, cifar=True), DataConfig("digits", resolution=16), cfg,
        out=str(tmp_path / "r"))  # fmt: skip
    saved = Checkpoint.load(tmp_path / "r").train_config
    assert saved.precision == "fp32" and saved.threads == 1
    assert json.loads((tmp_path / "r" / "config.json").read_text())["train"]["precision"] == "fp32"


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path: Path) -> None:
    """torchrun with 2 x 128 images per step must use the learning rate of a 256-image batch; the run
    directory is the one a single process writes, written by rank 0 alone."""
    common = ["train", "--arch", "mobilenet_v1", "--width", "0.25", "--resolution", "16", "--epochs", "2",
              "--lr", "0.2", "--lr-batch", "128", "--precision", "fp32", "--train-images", "768",
              "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29541",
           "-m", "mobilenet", *common, "--batch-size", "128", "--out", str(tmp_path / "two")]  # fmt: skip
    done = subprocess.run(two, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "scaled to the global batch 128 x 2 processes" in done.stderr
    assert main([*common, "--batch-size", "256", "--out", str(tmp_path / "one")]) == 0  # one process: this one

    def rows(run: str) -> list[dict[str, float]]:
        return [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]

    out = tmp_path / "two"
    saved = json.loads((out / "config.json").read_text())
    assert saved["world_size"] == 2 and saved["resolution"] == 16 and saved["train"]["precision"] == "fp32"
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".pt") == ["best.pt", "last.pt"]
    assert not list(out.glob(".*.tmp"))  # the second rank wrote nothing
    two_rows, one_rows = rows("two"), rows("one")
    assert len(two_rows) == 2 and all(0 <= r["test_acc"] <= 1 for r in two_rows)
    for a, b in zip(two_rows, one_rows, strict=True):
        assert a["lr"] == pytest.approx(b["lr"])  # same schedule: the rate of a 256-image batch at every step
    # BN sees 128 images per process instead of 256, so the runs are close, not equal
    assert two_rows[-1]["train_loss"] == pytest.approx(one_rows[-1]["train_loss"], rel=0.25)
