"""Shared test helpers.

torchvision's only wheel here is a CUDA build: against the CPU torch its C ops cannot load, and its
import then fails registering fakes for `torchvision::nms`/`qnms`. Defining those two schemas first
lets the pure-Python model code import; we use torchvision (and timm) only as peer references.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest
import torch

_schemas: torch.library.Library | None = None


def import_peer(name: str) -> ModuleType:
    """Import torchvision or timm (which imports torchvision), or skip the test if not installed."""
    global _schemas
    if _schemas is None:
        try:
            torch.ops.torchvision.nms  # noqa: B018 - a real build registers the op itself
        except (AttributeError, RuntimeError):
            _schemas = torch.library.Library("torchvision", "DEF")
            _schemas.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            _schemas.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    try:
        return importlib.import_module(name)
    except ImportError as err:
        pytest.skip(f"{name} not installed: {err}")


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
