"""Optional peer libraries (torchvision, timm), imported only for comparisons: benchmarks and tests.

The library never needs them. Some torchvision wheels are CUDA builds whose C ops cannot load against a
CPU-only torch; their import then fails while registering fakes for `torchvision::nms`/`qnms`. Only then
are those two schemas defined and the import tried again, which lets the pure-Python model code import:
all a comparison needs. A working build is imported as it is (defining its ops first would abort it).
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import torch

_schemas: torch.library.Library | None = None


def import_peer(name: str) -> ModuleType:
    """Import torchvision or timm; ImportError (with the reason) when it is not installed or broken."""
    global _schemas
    try:
        return importlib.import_module(name)
    except Exception as err:  # a broken install raises more than ImportError
        first = err
    if name in ("torchvision", "timm") and _schemas is None and "torchvision::nms" in str(first):
        for module in [m for m in sys.modules if m.split(".")[0] in ("torchvision", name)]:
            del sys.modules[module]  # the half-imported package, so that it is imported afresh
        _schemas = torch.library.Library("torchvision", "DEF")
        _schemas.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _schemas.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        try:
            return importlib.import_module(name)
        except Exception as err:
            first = err
    raise ImportError(f"{name} is not usable here: {type(first).__name__}: {first}") from first
