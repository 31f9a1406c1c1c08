"""Optional peer libraries (torchvision, timm), imported only for comparisons: benchmarks and tests.

The library never needs them. Some torchvision wheels are CUDA builds whose C ops cannot load against a
CPU-only torch; their import then fails while registering fakes for `torchvision::nms`/`qnms`. Defining
those two schemas first lets the pure-Python model code import, which is all a comparison needs.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch

_schemas: torch.library.Library | None = None


def import_peer(name: str) -> ModuleType:
    """Import torchvision or timm; ImportError (with the reason) when it is not installed or broken."""
    global _schemas
    if _schemas is None and name in ("torchvision", "timm"):
        try:
            torch.ops.torchvision.nms  # noqa: B018 - a working build registers the op itself
        except (AttributeError, RuntimeError):
            _schemas = torch.library.Library("torchvision", "DEF")
            _schemas.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            _schemas.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    try:
        return importlib.import_module(name)
    except Exception as err:  # a broken install raises more than ImportError
        raise ImportError(f"{name} is not usable here: {type(err).__name__}: {err}") from err
