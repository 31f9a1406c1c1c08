"""Shared test helpers. Peers (torchvision, timm) are imported through `mobilenet.peers`, which copes
with CUDA-only torchvision wheels; a test that needs a missing peer is skipped."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import torch

from mobilenet.peers import import_peer as _import_peer


def import_peer(name: str) -> ModuleType:
    """Import torchvision or timm, or skip the test if it is not installed."""
    try:
        return _import_peer(name)
    except ImportError as err:
        pytest.skip(str(err))


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every BN non-trivial statistics and affine params, so equal outputs mean equal mapping."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def import_keras() -> ModuleType:
    """Keras 3 on its torch backend (no TensorFlow needed), or skip."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"keras runs on {keras.backend.backend()}, these tests compare on torch")
    return keras


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's main job (`mobilenet train`), run once per session and shared by every test module
    that needs a trained checkpoint. Tests may add files to the run directory but never change its own."""
    from mobilenet.cli import main

    out = tmp_path_factory.mktemp("main-job") / "digits"
    assert main(["train", "--out", str(out)]) == 0
    return out
