"""`mobilenet bench` results as a table (ratios against a reference path) or as JSON-ready data."""

from __future__ import annotations

from mobilenet.deploy.bench_paths import BenchReport, BenchResult
from mobilenet.report import columns


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
        "fastest_peer": {
            str(batch): best.name
            for batch in sorted({r.batch for r in report.results})
            if (best := fastest_peer(report, batch))
        },
        "notes": report.notes,
    }


def _reference(report: BenchReport, batch: int, prefer: str) -> BenchResult | None:
    rows = [r for r in report.results if r.batch == batch]
    for r in rows:
        if r.name == prefer:
            return r
    return next((r for r in rows if not r.ours), None)


def fastest_peer(report: BenchReport, batch: int) -> BenchResult | None:
    """The peer path with the lowest median time at `batch`: the bar our paths are held to."""
    peers = [r for r in report.results if r.batch == batch and not r.ours]
    return min(peers, key=lambda r: r.timing.median_ms) if peers else None


def report_text(report: BenchReport, reference: str = "torchvision mobilenet_v2 eager") -> str:
    """One table per batch size; ratios are the reference's time (or memory) over each path's."""
    lines = [
        f"{report.resolution}x{report.resolution}, {report.threads} threads; ratio = reference / path "
        "(above 1: faster than the reference); vs fastest peer = the fastest peer path at that batch / path; "
        "act. MB = PyTorch allocator peak incl. the input; engine MB = peak resident memory an engine adds "
        "(libraries, model, arena, activations) in a fresh process"
    ]
    for batch in sorted({r.batch for r in report.results}):
        ref = _reference(report, batch, reference)
        best = fastest_peer(report, batch)
        lines += ["", f"batch {batch}" + (f" (reference: {ref.name})" if ref else " (no peer measured)")]
        if best is not None:
            lines.append(f"fastest peer path: {best.name}, {best.timing.median_ms:.2f} ms")
        header = (
            "path",
            "median ms",
            "p90 ms",
            "img/s",
            "vs fastest peer",
            "speed vs ref",
            "act. MB",
            "memory vs ref",
            "engine MB",
        )
        rows: list[tuple[str, ...]] = [header]
        for r in (r for r in report.results if r.batch == batch):
            speed = f"{ref.timing.median_ms / r.timing.median_ms:.2f}x" if ref else ""
            vs_best = f"{best.timing.median_ms / r.timing.median_ms:.2f}x" if best else ""
            mem = f"{r.peak_bytes / 1e6:.2f}" if r.peak_bytes is not None else "-"
            mem_ratio = (
                f"{ref.peak_bytes / r.peak_bytes:.2f}x"
                if ref and ref.peak_bytes is not None and r.peak_bytes is not None
                else ""
            )
            rows.append(
                (
                    r.name,
                    f"{r.timing.median_ms:.2f}",
                    f"{r.timing.p90_ms:.2f}",
                    f"{r.timing.images_per_s:.1f}",
                    vs_best,
                    speed,
                    mem,
                    mem_ratio,
                    "-" if r.rss_bytes is None else f"{r.rss_bytes / 1e6:.1f}",
                )
            )
        lines += columns(rows)
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)
