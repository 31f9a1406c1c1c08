"""Same network as the peers: torchvision's weights give torchvision's outputs; timm's counts agree."""

from __future__ import annotations

import pytest
import torch

from conftest import import_peer, randomize_bn
from mobilenet.config import ModelConfig
from mobilenet.weights import convert_tensors
from mobilenet.costs import model_costs, totals
from mobilenet.models import count_params, mobilenet_v1, mobilenet_v2


@pytest.mark.parametrize("width", [0.5, 1.0, 1.4])
def test_torchvision_v2_weights_give_torchvision_outputs(width: float) -> None:
    tv = import_peer("torchvision").models.mobilenet_v2(width_mult=width, num_classes=1000)
    torch.manual_seed(0)
    randomize_bn(tv)
    ours = mobilenet_v2(width=width)
    load_torchvision_v2(ours, tv.state_dict())
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected, got = tv.eval()(x), ours.eval()(x)
    assert (got - expected).abs().max().item() <= 1e-5
    assert count_params(ours) == count_params(tv)


def test_torchvision_mismatch_names_the_tensor() -> None:
    tv = import_peer("torchvision").models.mobilenet_v2(width_mult=0.5)
    with pytest.raises(ValueError, match=r"tensor 'features.0.0.weight' has shape \(16, 3, 3, 3\)"):
        load_torchvision_v2(mobilenet_v2(width=1.0), tv.state_dict())
    state = tv.state_dict()
    state["features.99.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"unexpected tensor .features\.99\.weight."):
        load_torchvision_v2(mobilenet_v2(width=0.5), state)
    del state["features.99.weight"], state["classifier.1.bias"]
    with pytest.raises(ValueError, match=r"missing, first: .classifier\.bias."):
        load_torchvision_v2(mobilenet_v2(width=0.5), state)


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
