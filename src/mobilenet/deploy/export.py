"""Deployable copies of a model: ONNX (for onnxruntime / OpenVINO) and a `torch.export` program.

Both are written atomically (a temporary file in the target directory, renamed on success), so a failed
export never leaves a half-written file. The ONNX graph has BN folded into the convs, each ReLU6 as one
`Clip(0, 6)`, a dynamic batch dimension and a fixed resolution; `verify_onnx` runs it in onnxruntime and
compares with PyTorch (`mobilenet.deploy.verify`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from mobilenet.files import atomic_path
from mobilenet.layers import fold_bn
from mobilenet.models import MobileNet

log = logging.getLogger("mobilenet")

FORMATS: tuple[str, ...] = ("onnx", "torch-export")
INPUT_NAME, OUTPUT_NAME = "images", "logits"


@contextlib.contextmanager
def out_of_place(module: nn.Module) -> Iterator[nn.Module]:
    """`module` with its in-place activations (`ReLU6(inplace=True)`) out of place until the block ends.
    torch.export decomposes each in-place op through a slow generic path: an ONNX export of MobileNetV2
    took 7 s in place and 2.5 s out of place, for the same graph (an exporter turns both into `Clip`)."""
    flipped = [m for m in module.modules() if getattr(m, "inplace", False) is True]
    for m in flipped:
        setattr(m, "inplace", False)  # noqa: B010 (not every module declares it)
    try:
        yield module
    finally:
        for m in flipped:
            setattr(m, "inplace", True)  # noqa: B010


def _example(model: MobileNet, resolution: int, batch: int = 2) -> Tensor:
    return torch.randn(batch, model.spec.in_channels, resolution, resolution)


def export_onnx(model: MobileNet, path: str | Path, resolution: int = 224, *, opset: int = 18) -> Path:
    """Write `model` as ONNX with BN folded and a dynamic batch; returns the path."""
    return onnx_export(fold_bn(model), path, _example(model, resolution), opset=opset)


EXPORTERS: tuple[str, ...] = ("auto", "torchscript", "dynamo")


def onnx_export(
    module: nn.Module, path: str | Path, example: Tensor, *, opset: int = 18, exporter: str = "auto"
) -> Path:
    """Any image model to ONNX: input `images`, output `logits`, batch dynamic, the rest of `example`'s
    shape fixed. Written atomically.

    `exporter="auto"` traces with PyTorch's TorchScript exporter and cleans the graph with onnxscript's
    optimizer (about 0.5 s for MobileNetV2 1.0), and falls back to the torch.export-based exporter (5-7 s,
    most of it in decompositions) where tracing fails or a PyTorch no longer has it. Both give the same
    graph of Conv, Clip and Add nodes and the same outputs; the engines run either at the same speed."""
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown ONNX exporter {exporter!r}; expected one of: {', '.join(EXPORTERS)}")
    with atomic_path(path, ".onnx") as tmp, warnings.catch_warnings(), _quiet_exporter(), out_of_place(module):
        warnings.simplefilter("ignore")
        if exporter != "dynamo":
            try:
                _torchscript_export(module, example, tmp, opset)
                return Path(path)
            except Exception as err:  # any tracing failure: the other exporter may take it
                if exporter == "torchscript":
                    raise
                log.debug("TorchScript ONNX export failed (%s); using the torch.export-based exporter", err)
        _dynamo_export(module, example, tmp, opset)
    return Path(path)


def _torchscript_export(module: nn.Module, example: Tensor, path: Path, opset: int) -> None:
    import onnx
    import onnxscript.optimizer

    torch.onnx.export(
        module,
        (example,),
        str(path),
        dynamo=False,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        opset_version=opset,
        do_constant_folding=True,
    )
    # the tracer leaves Identity and Constant nodes (shared weights, Clip bounds); the optimizer folds them
    model = onnxscript.optimizer.optimize(onnx.load(str(path)))
    onnx.save(model, str(path))


def _dynamo_export(module: nn.Module, example: Tensor, path: Path, opset: int) -> None:
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(
        module,
        (example,),
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: batch},),
        opset_version=opset,
        optimize=True,
        verbose=False,
    )
    assert program is not None
    program.save(str(path))


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter logs each of its steps at INFO; keep the CLI's output to our own lines."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it also prints a progress line per step
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def export_program(model: MobileNet, path: str | Path, resolution: int = 224) -> Path:
    """Write a `torch.export` program (.pt2) with a dynamic batch, for PyTorch runtimes (`torch.export.load`)."""
    folded = fold_bn(model)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with out_of_place(folded):
        program = torch.export.export(folded, (_example(model, resolution),), dynamic_shapes=({0: batch},))
    with atomic_path(path, ".pt2") as tmp:
        torch.export.save(program, str(tmp))
    return Path(path)
