"""Phone runtimes as `mobilenet bench` engines: LiteRT (.tflite) and ExecuTorch (.pte, XNNPACK), fp32 and
int8, for our model and for the peer's model through the same exporter, quantizer and runtime."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mobilenet.deploy.bench_paths import BenchPath, to_numpy
from mobilenet.deploy.mobile import RUNNERS, WRITERS

MOBILE_ENGINES = {"litert": "tflite", "executorch": "executorch"}  # engine name -> export format


def mobile_paths(
    module: nn.Module,
    label: str,
    ours: bool,
    resolution: int,
    workdir: Path,
    notes: list[str],
    *,
    engines: tuple[str, ...],
    precisions: tuple[str, ...],
    threads: int = 2,
) -> list[BenchPath]:
    """`module` (eval mode, BN folded for ours) exported to each phone format and precision; the files
    have batch 1, so a batch runs image by image, as an app would. Missing extras are noted and skipped."""
    # the exporters expect contiguous (NCHW) weights; the bench's PyTorch path made ours channels-last
    module = copy.deepcopy(module).to(memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]
    example = torch.zeros(1, 3, resolution, resolution)
    g = torch.Generator().manual_seed(1)
    calibration = [torch.randn(1, 3, resolution, resolution, generator=g) for _ in range(8)]
    paths = []
    for engine in engines:
        fmt = MOBILE_ENGINES[engine]
        for precision in (p for p in precisions if p in ("fp32", "int8")):
            path = workdir / f"{label.split()[0]}.{precision}{'.tflite' if fmt == 'tflite' else '.pte'}"
            try:
                WRITERS[fmt](module, path, example, calibration if precision == "int8" else None)
            except ValueError as err:  # the extra is not installed
                notes.append(f"{label} {engine} skipped: {err}")
                break
            run = RUNNERS[fmt](path, threads)
            paths.append(BenchPath(f"{label} {engine} {precision}", ours, run, False, to_numpy))
    return paths


def _to_nhwc(x: torch.Tensor) -> object:
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy(), dtype=np.float32)


def keras_tflite_paths(
    num_classes: int,
    width: float,
    resolution: int,
    workdir: Path,
    notes: list[str],
    *,
    precisions: tuple[str, ...],
    threads: int = 2,
) -> list[BenchPath]:
    """Keras Applications' MobileNetV2 through TensorFlow's TFLiteConverter (fp32, full-integer int8), in
    the same LiteRT interpreter and threads as ours; skipped with a note where TensorFlow is absent."""
    from mobilenet.deploy.keras_tflite import keras_files

    wanted = tuple(p for p in precisions if p in ("fp32", "int8"))
    try:
        files = keras_files(workdir, width, num_classes, resolution, wanted)
    except ValueError as err:
        notes.append(f"Keras -> TFLiteConverter paths skipped: {err}")
        return []
    return [
        BenchPath(f"keras -> TFLiteConverter litert {p}", False, RUNNERS["tflite"](f, threads), False, _to_nhwc)
        for p, f in files.items()
    ]
