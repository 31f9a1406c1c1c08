"""`mobilenet bench`: our inference paths and the peers', timed in one run on the same inputs.

Every path is a callable on one (N, 3, H, W) float batch. Each is warmed up, then timed (median, p90);
PyTorch paths also report their peak activation memory from the allocator (`measure.peak_allocated`,
plus the input batch the caller holds). Peers are optional: a missing one is skipped with a note.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mobilenet.measure import Timing, peak_allocated, time_fn
from mobilenet.models import MobileNet
from mobilenet.report import columns


def _identity(x: Tensor) -> object:
    return x


def _to_numpy(x: Tensor) -> object:
    return np.ascontiguousarray(x.numpy(), dtype=np.float32)


@dataclass(frozen=True)
class BenchPath:
    name: str
    ours: bool
    run: Callable[[Any], object]
    torch_memory: bool = True  # the allocator sees its tensors (PyTorch paths)
    prepare: Callable[[Tensor], object] = _identity  # converts the shared input once, outside the timing
    engine: tuple[Path, str, str] | None = None  # (file, engine, precision) of an exported-model path


@dataclass(frozen=True)
class BenchResult:
    name: str
    ours: bool
    batch: int
    timing: Timing
    peak_bytes: int | None  # activation peak incl. the input batch; None where it cannot be measured
    rss_bytes: int | None = None  # engine paths: resident memory of loading the engine and running it


@dataclass
class BenchReport:
    resolution: int
    threads: int
    results: list[BenchResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def torch_paths(model: MobileNet, splits: list[int] | None = None, *, channels_last: bool = True) -> list[BenchPath]:
    """Our PyTorch eager model and, for each t in `splits`, the memory-efficient split executor."""
    from mobilenet.split import SplitInference

    model = model.eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def eager(x: Tensor) -> Tensor:
        with torch.no_grad():
            return model(x)

    layout = "channels-last" if channels_last else "NCHW"
    paths = [BenchPath(f"mobilenet torch eager ({layout})", True, eager)]
    for t in splits or []:
        paths.append(BenchPath(f"mobilenet split t={t}", True, SplitInference(model, t)))
    return paths


def torchvision_path(num_classes: int, width: float, notes: list[str]) -> BenchPath | None:
    """torchvision's mobilenet_v2 eager, as its users run it (NCHW, BN unfolded); None if not installed."""
    from mobilenet.peers import import_peer

    try:
        tv = import_peer("torchvision")
    except ImportError as err:
        notes.append(f"torchvision skipped: {err}")
        return None
    peer = tv.models.mobilenet_v2(num_classes=num_classes, width_mult=width).eval()

    def run(x: Tensor) -> Tensor:
        with torch.no_grad():
            return peer(x.contiguous())

    return BenchPath("torchvision mobilenet_v2 eager", False, run)


def run_paths(
    paths: list[BenchPath],
    *,
    resolution: int = 224,
    batches: tuple[int, ...] = (1,),
    threads: int = 2,
    runs: int = 30,
    min_seconds: float = 1.0,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> BenchReport:
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    report = BenchReport(resolution, threads)
    g = torch.Generator().manual_seed(seed)
    for batch in batches:
        if batch < 1:
            raise ValueError(f"batch sizes must be >= 1, got {batch}")
        x = torch.randn(batch, 3, resolution, resolution, generator=g).contiguous(memory_format=torch.channels_last)
        calls = [functools.partial(path.run, path.prepare(x)) for path in paths]
        # Interleave: every path is timed in `rounds` slices taken in turn, so drift in the machine's speed
        # (other tenants, frequency) lands on all paths alike instead of on whichever ran last.
        samples: list[list[float]] = [[] for _ in paths]
        for path, call in zip(paths, calls, strict=True):
            if progress:
                progress(f"batch {batch}: warming up {path.name}")
            time_fn(call, runs=1, warmup=3)
        rounds = 5
        order = list(range(len(paths)))
        shuffle = random.Random(seed)
        for r in range(rounds):
            if progress:
                progress(f"batch {batch}: round {r + 1}/{rounds}")
            shuffle.shuffle(order)  # no path always runs right after the same neighbour
            for i in order:
                call = calls[i]
                t = time_fn(call, runs=max(1, runs // rounds), warmup=1, min_seconds=min_seconds / rounds)
                samples[i] += t.samples
        for path, call, times in zip(paths, calls, samples, strict=True):
            timing = Timing.from_samples(times, batch)
            peak = None
            if path.torch_memory:
                peak = peak_allocated(call) + x.numel() * x.element_size()
            rss = None
            if path.engine is not None:
                rss = engine_memory(*path.engine, batch=batch, resolution=resolution, threads=threads)
            report.results.append(BenchResult(path.name, path.ours, batch, timing, peak, rss))
    return report


def report_data(report: BenchReport) -> dict[str, object]:
    return {
        "resolution": report.resolution,
        "threads": report.threads,
        "results": [
            {
                "name": r.name,
                "ours": r.ours,
                "batch": r.batch,
                "median_ms": r.timing.median_ms,
                "p90_ms": r.timing.p90_ms,
                "images_per_s": r.timing.images_per_s,
                "runs": r.timing.runs,
                "peak_bytes": r.peak_bytes,
                "rss_bytes": r.rss_bytes,
            }
            for r in report.results
        ],
        "notes": report.notes,
    }


def _reference(report: BenchReport, batch: int, prefer: str) -> BenchResult | None:
    rows = [r for r in report.results if r.batch == batch]
    for r in rows:
        if r.name == prefer:
            return r
    return next((r for r in rows if not r.ours), None)


def report_text(report: BenchReport, reference: str = "torchvision mobilenet_v2 eager") -> str:
    """One table per batch size; ratios are the reference's time (or memory) over each path's."""
    lines = [
        f"{report.resolution}x{report.resolution}, {report.threads} threads; ratio = reference / path; "
        "act. MB = PyTorch allocator peak incl. the input; engine MB = peak resident memory an engine adds "
        "(libraries, model, arena, activations) in a fresh process"
    ]
    for batch in sorted({r.batch for r in report.results}):
        ref = _reference(report, batch, reference)
        lines += ["", f"batch {batch}" + (f" (reference: {ref.name})" if ref else " (no peer measured)")]
        header = ("path", "median ms", "p90 ms", "img/s", "speed vs ref", "act. MB", "memory vs ref", "engine MB")
        rows: list[tuple[str, ...]] = [header]
        for r in (r for r in report.results if r.batch == batch):
            speed = f"{ref.timing.median_ms / r.timing.median_ms:.2f}x" if ref else ""
            mem = f"{r.peak_bytes / 1e6:.2f}" if r.peak_bytes is not None else "-"
            mem_ratio = (
                f"{ref.peak_bytes / r.peak_bytes:.2f}x"
                if ref and ref.peak_bytes is not None and r.peak_bytes is not None
                else ""
            )
            rows.append((r.name, f"{r.timing.median_ms:.2f}", f"{r.timing.p90_ms:.2f}",
                         f"{r.timing.images_per_s:.1f}", speed, mem, mem_ratio,
                         "-" if r.rss_bytes is None else f"{r.rss_bytes / 1e6:.1f}"))  # fmt: skip
        lines += columns(rows)
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def _engine_runner(path: Path, engine: str, precision: str, threads: int) -> Callable[[Any], object]:
    from mobilenet import engines

    return engines.load(path, engine, threads=threads, precision=precision)


def _random_calibration(resolution: int, images: int = 16) -> list[np.ndarray]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(images, 3, resolution, resolution, generator=g).numpy()]


def engine_paths(
    model: MobileNet,
    resolution: int,
    workdir: Path,
    notes: list[str],
    *,
    engines: tuple[str, ...] = ("onnxruntime", "openvino"),
    precisions: tuple[str, ...] = ("fp32", "int8", "bf16"),
    threads: int = 2,
    calibration: list[np.ndarray] | None = None,
) -> list[BenchPath]:
    """Our model exported to ONNX (BN folded) and int8 QDQ, on each installed engine and precision."""
    from mobilenet import engines as eng
    from mobilenet.export import export_onnx
    from mobilenet.quantize import quantize_onnx

    installed = [e for e in engines if e in eng.available()]
    for e in engines:
        if e not in installed:
            notes.append(f"{e} not installed: its paths were skipped (pip install 'mobilenet[{_extra(e)}]')")
    if not installed:
        return []
    fp32 = export_onnx(model, workdir / "mobilenet.onnx", resolution)
    int8 = None
    if "int8" in precisions:
        int8 = quantize_onnx(fp32, workdir / "mobilenet.int8.onnx", calibration or _random_calibration(resolution))
    paths = []
    for engine in installed:
        for precision in precisions:
            if precision == "bf16" and (engine != "openvino" or not eng.cpu_has_bf16()):
                continue
            file = int8 if precision == "int8" else fp32
            assert file is not None
            run = _engine_runner(file, engine, "bf16" if precision == "bf16" else "fp32", threads)
            paths.append(BenchPath(f"mobilenet {engine} {precision}", True, run, False, _to_numpy,
                                   (file, engine, precision)))  # fmt: skip
    if "bf16" in precisions and not eng.cpu_has_bf16():
        notes.append("bf16 skipped: this CPU has neither AVX512-BF16 nor AMX")
    return paths


def _extra(engine: str) -> str:
    return "openvino" if engine == "openvino" else "deploy"


def torchvision_onnx_paths(
    num_classes: int, width: float, resolution: int, workdir: Path, notes: list[str], *, threads: int = 2
) -> list[BenchPath]:
    """The usual peer deployment: torchvision's model -> torch.onnx.export -> onnxruntime, fp32 and int8
    (onnxruntime's own static QDQ quantizer, per-channel, the same calibration as ours)."""
    from mobilenet import engines as eng
    from mobilenet.export import onnx_export
    from mobilenet.peers import import_peer
    from mobilenet.quantize import quantize_onnx

    if "onnxruntime" not in eng.available():
        notes.append("torchvision -> onnxruntime skipped: onnxruntime not installed")
        return []
    try:
        tv = import_peer("torchvision")
    except ImportError as err:
        notes.append(f"torchvision -> onnxruntime skipped: {err}")
        return []
    peer = tv.models.mobilenet_v2(num_classes=num_classes, width_mult=width).eval()
    fp32 = onnx_export(peer, workdir / "torchvision.onnx", torch.randn(1, 3, resolution, resolution))
    int8 = quantize_onnx(fp32, workdir / "torchvision.int8.onnx", _random_calibration(resolution))
    return [
        BenchPath("torchvision -> onnxruntime fp32", False, _engine_runner(fp32, "onnxruntime", "fp32", threads),
                  False, _to_numpy, (fp32, "onnxruntime", "fp32")),
        BenchPath("torchvision -> onnxruntime int8", False, _engine_runner(int8, "onnxruntime", "fp32", threads),
                  False, _to_numpy, (int8, "onnxruntime", "int8")),
    ]  # fmt: skip


_MEMORY_PROBE = """
import resource, sys
import numpy as np
from mobilenet import engines
path, engine, precision, batch, size, threads = sys.argv[1:7]
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize()
before = rss()
run = engines.load(path, engine, threads=int(threads), precision='bf16' if precision == 'bf16' else 'fp32')
x = np.zeros((int(batch), 3, int(size), int(size)), dtype=np.float32)
for _ in range(3):
    run(x)
hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM:')][0]
print(int(hwm.split()[1]) * 1024 - before)
"""


def engine_memory(path: Path, engine: str, precision: str, *, batch: int, resolution: int, threads: int) -> int | None:
    """Peak resident memory an engine adds to a fresh process (after its imports) to load `path` and run
    three batches: its weights, arena and activations. None where it cannot be measured (non-Linux).
    (VmHWM, not ru_maxrss: the latter survives exec and would report the parent's peak.)"""
    import subprocess
    import sys

    args = [str(path), engine, precision, str(batch), str(resolution), str(threads)]
    try:
        out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, *args], capture_output=True, text=True,
                             check=True, timeout=300)  # fmt: skip
        return int(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        return None
