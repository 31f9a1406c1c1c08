"""`mobilenet bench`: our inference paths and the peers', timed in one run on the same inputs.

Every path is a callable on one (N, 3, H, W) float batch. Each is warmed up, then timed (median, p90);
PyTorch paths also report their peak activation memory from the allocator (`measure.peak_allocated`,
plus the input batch the caller holds). Peers are optional: a missing one is skipped with a note.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from mobilenet.measure import Timing, peak_allocated, time_fn
from mobilenet.models import MobileNet
from mobilenet.report import columns

Runner = Callable[[Tensor], object]


@dataclass(frozen=True)
class BenchPath:
    name: str
    ours: bool
    run: Runner
    torch_memory: bool = True  # the allocator sees its tensors (PyTorch paths)


@dataclass(frozen=True)
class BenchResult:
    name: str
    ours: bool
    batch: int
    timing: Timing
    peak_bytes: int | None  # activation peak incl. the input batch; None where it cannot be measured


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
        for path in paths:
            if progress:
                progress(f"batch {batch}: {path.name}")
            call = functools.partial(path.run, x)
            timing = time_fn(call, batch=batch, runs=runs, min_seconds=min_seconds)
            peak = None
            if path.torch_memory:
                peak = peak_allocated(call) + x.numel() * x.element_size()
            report.results.append(BenchResult(path.name, path.ours, batch, timing, peak))
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
    lines = [f"{report.resolution}x{report.resolution}, {report.threads} threads; ratio = reference / path"]
    for batch in sorted({r.batch for r in report.results}):
        ref = _reference(report, batch, reference)
        lines += ["", f"batch {batch}" + (f" (reference: {ref.name})" if ref else " (no peer measured)")]
        header = ("path", "median ms", "p90 ms", "img/s", "speed vs ref", "peak MB", "memory vs ref")
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
                         f"{r.timing.images_per_s:.1f}", speed, mem, mem_ratio))  # fmt: skip
        lines += columns(rows)
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)
