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


def test_a_working_peer_is_imported_as_it_is_and_a_cpu_torch_gets_the_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    """A torchvision whose C ops load must not find `torchvision::nms` defined first (that aborts the
    process); only an import that failed for want of that op is retried with the two schemas defined."""
    import types

    from mobilenet import peers

    defined: list[str] = []

    class Library:
        def __init__(self, ns: str, kind: str) -> None:
            pass

        def define(self, schema: str) -> None:
            defined.append(schema.split("(")[0])

    monkeypatch.setattr(peers.torch.library, "Library", Library)
    monkeypatch.setattr(peers, "_schemas", None)
    loaded = {"torchvision": 1, "torchvision.ops": 2, "timm": 3, "numpy": 4}  # the real sys.modules stays as it is
    monkeypatch.setattr(peers, "sys", types.SimpleNamespace(modules=loaded))
    fine = types.ModuleType("torchvision")
    monkeypatch.setattr(peers.importlib, "import_module", lambda name: fine)
    assert peers.import_peer("torchvision") is fine and defined == [] and peers._schemas is None
    calls: list[str] = []

    def cpu_torch(name: str) -> types.ModuleType:
        calls.append(name)
        if len(calls) == 1:
            raise RuntimeError("operator torchvision::nms does not exist")
        return fine

    monkeypatch.setattr(peers.importlib, "import_module", cpu_torch)
    assert peers.import_peer("timm") is fine and defined == ["nms", "qnms"] and calls == ["timm", "timm"]
    assert loaded == {"numpy": 4}  # the half-imported packages were dropped before the second try
    monkeypatch.setattr(peers.importlib, "import_module", lambda name: (_ for _ in ()).throw(ValueError("broken")))
    with pytest.raises(ImportError, match="timm is not usable here: ValueError: broken"):
        peers.import_peer("timm")
