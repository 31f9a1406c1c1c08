"""The peers' inference paths for `mobilenet bench`: their own models, run the way their users run them,
through the same engines and settings as ours. A peer that is not installed is skipped with a note."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from mobilenet.deploy.bench import BenchPath, engine_runner, random_calibration, to_numpy


def _torchvision_model(num_classes: int, width: float, notes: list[str], what: str) -> nn.Module | None:
    """torchvision's mobilenet_v2 with random weights, or None (and a note saying `what` was skipped)."""
    from mobilenet.peers import import_peer

    try:
        tv = import_peer("torchvision")
    except ImportError as err:
        notes.append(f"{what} skipped: {err}")
        return None
    return tv.models.mobilenet_v2(num_classes=num_classes, width_mult=width).eval()


def torchvision_path(num_classes: int, width: float, notes: list[str]) -> BenchPath | None:
    """torchvision's mobilenet_v2 eager, as its users run it (NCHW, BN unfolded); None if not installed."""
    peer = _torchvision_model(num_classes, width, notes, "torchvision")
    if peer is None:
        return None

    def run(x: Tensor) -> Tensor:
        with torch.no_grad():
            return peer(x.contiguous())

    return BenchPath("torchvision mobilenet_v2 eager", False, run)


def torchvision_onnx_paths(
    num_classes: int, width: float, resolution: int, workdir: Path, notes: list[str], *, threads: int = 2
) -> list[BenchPath]:
    """The usual peer deployment: torchvision's model -> torch.onnx.export -> onnxruntime, fp32 and int8
    (onnxruntime's own static QDQ quantizer, per-channel, the same calibration as ours)."""
    from mobilenet.deploy import engines as eng
    from mobilenet.deploy.export import onnx_export
    from mobilenet.deploy.quantize import quantize_onnx

    if "onnxruntime" not in eng.available():
        notes.append("torchvision -> onnxruntime skipped: onnxruntime not installed")
        return []
    peer = _torchvision_model(num_classes, width, notes, "torchvision -> onnxruntime")
    if peer is None:
        return []
    fp32 = onnx_export(peer, workdir / "torchvision.onnx", torch.randn(1, 3, resolution, resolution))
    int8 = quantize_onnx(fp32, workdir / "torchvision.int8.onnx", random_calibration(resolution))
    files = {"fp32": fp32, "int8": int8}
    return [
        BenchPath(
            f"torchvision -> onnxruntime {precision}",
            False,
            engine_runner(file, "onnxruntime", precision, threads),
            False,
            to_numpy,
            (file, "onnxruntime", precision),
        )
        for precision, file in files.items()
    ]


def torchvision_mobile_paths(
    num_classes: int,
    width: float,
    resolution: int,
    workdir: Path,
    notes: list[str],
    *,
    engines: tuple[str, ...],
    precisions: tuple[str, ...],
    threads: int = 2,
) -> list[BenchPath]:
    """torchvision's model through the same phone exporters, quantizers and runtimes as ours."""
    from mobilenet.deploy.bench_mobile import mobile_paths

    peer = _torchvision_model(num_classes, width, notes, "torchvision phone paths")
    if peer is None:
        return []
    return mobile_paths(
        peer,
        "torchvision ->",
        False,
        resolution,
        workdir,
        notes,
        engines=engines,
        precisions=precisions,
        threads=threads,
    )
