"""Phone runtimes as `mobilenet bench` engines: LiteRT (.tflite) and ExecuTorch (.pte, XNNPACK), fp32 and
int8, for our model and for the peer's model through the same exporter, quantizer and runtime."""

from __future__ import annotations

import copy
from pathlib import Path

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
