"""MobileNet V1 and V2 as the papers define them, with an analytic cost model.

The cost model (`model_costs`, `totals`) and the specs import without torch; the models need it and are
imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mobilenet.config import ModelConfig
from mobilenet.costs import LayerCost, compare_separable, model_costs, totals
from mobilenet.specs import make_divisible, network_spec

if TYPE_CHECKING:
    from mobilenet.models import (
        BUILDERS,
        MobileNet,
        MobileNetV1,
        MobileNetV2,
        build_model,
        conv_mobilenet,
        count_params,
        mobilenet_v1,
        mobilenet_v2,
    )

_MODEL_NAMES = {
    "BUILDERS",
    "MobileNet",
    "MobileNetV1",
    "MobileNetV2",
    "build_model",
    "conv_mobilenet",
    "count_params",
    "mobilenet_v1",
    "mobilenet_v2",
}

__all__ = [
    "BUILDERS",
    "LayerCost",
    "MobileNet",
    "MobileNetV1",
    "MobileNetV2",
    "ModelConfig",
    "build_model",
    "compare_separable",
    "conv_mobilenet",
    "count_params",
    "make_divisible",
    "mobilenet_v1",
    "mobilenet_v2",
    "model_costs",
    "network_spec",
    "totals",
]


def __getattr__(name: str) -> Any:
    # The torch-backed names load lazily so `mobilenet tables` and the cost model stay torch-free.
    if name in _MODEL_NAMES:
        from mobilenet import models

        return getattr(models, name)
    raise AttributeError(f"module 'mobilenet' has no attribute {name!r}")
