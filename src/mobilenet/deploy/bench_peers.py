"""The peers' inference paths for `mobilenet bench`: their own models, run the way their users run them,
through the same engines and settings as ours. A peer that is not installed is skipped with a note."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from mobilenet.deploy.bench_paths import BenchPath, onnx_engine_paths, random_calibration


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


def _timm_model(num_classes: int, width: float, notes: list[str]) -> nn.Module | None:
    """timm's MobileNetV2 at `width` with random weights, or None (with a note)."""
    from mobilenet.peers import import_peer

    try:
        timm = import_peer("timm")
    except ImportError as err:
        notes.append(f"timm paths skipped: {err}")
        return None
    names = {0.35: "mobilenetv2_035", 0.5: "mobilenetv2_050", 0.75: "mobilenetv2_075", 1.0: "mobilenetv2_100"}
    names[1.4] = "mobilenetv2_140"
    if width not in names:
        notes.append(f"timm paths skipped: timm registers no mobilenetv2 at width {width:g}")
        return None
    return timm.create_model(names[width], num_classes=num_classes).eval()


def peer_engine_paths(
    num_classes: int,
    width: float,
    resolution: int,
    workdir: Path,
    notes: list[str],
    *,
    engines: tuple[str, ...] = ("onnxruntime", "openvino"),
    precisions: tuple[str, ...] = ("fp32", "int8", "bf16"),
    threads: int = 2,
) -> list[BenchPath]:
    """The peers' models through exactly our engine paths: torch.onnx.export, then each installed engine
    at each precision (int8: onnxruntime's static QDQ quantizer, per-channel, the same calibration as
    ours; bf16: OpenVINO's hint), for torchvision and timm."""
    from mobilenet.deploy import engines as eng
    from mobilenet.deploy.export import onnx_export
    from mobilenet.deploy.qdq import quantize_onnx

    installed = [e for e in engines if e in eng.available()]
    if not installed:
        notes.append("peer engine paths skipped: no engine installed")
        return []
    peers = {
        "torchvision": _torchvision_model(num_classes, width, notes, "torchvision engine paths"),
        "timm": _timm_model(num_classes, width, notes),
    }
    paths = []
    for name, peer in peers.items():
        if peer is None:
            continue
        files = {"fp32": onnx_export(peer, workdir / f"{name}.onnx", torch.randn(1, 3, resolution, resolution))}
        if "int8" in precisions:
            calibration = random_calibration(resolution)
            files["int8"] = quantize_onnx(files["fp32"], workdir / f"{name}.int8.onnx", calibration)
        paths += onnx_engine_paths(f"{name} ->", False, files, installed, precisions, threads)
    return paths


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
