"""Same network as the peers: timm's parameter counts agree (weights: see test_weights.py)."""

from __future__ import annotations

import pytest

from conftest import import_peer
from mobilenet.config import ModelConfig
from mobilenet.costs import model_costs, totals
from mobilenet.models import count_params, mobilenet_v1, mobilenet_v2


@pytest.mark.parametrize(
    "name,width", [("mobilenetv2_035", 0.35), ("mobilenetv2_050", 0.5), ("mobilenetv2_075", 0.75),
                   ("mobilenetv2_100", 1.0), ("mobilenetv2_140", 1.4)],
)  # fmt: skip
def test_timm_v2_param_counts(name: str, width: float) -> None:
    timm = import_peer("timm")
    assert count_params(timm.create_model(name)) == count_params(mobilenet_v2(width=width))


def test_timm_v1_param_count_and_analytic_count() -> None:
    timm = import_peer("timm")
    theirs = count_params(timm.create_model("mobilenetv1_100"))
    assert theirs == count_params(mobilenet_v1()) == totals(model_costs(ModelConfig(arch="mobilenet_v1"))).params
