"""Peak activation memory and latency of split inference for t = 1, 2, 4, ..., beside torchvision eager.

    python benchmarks/split_memory.py [--width 1.0] [--resolution 224] [--batch 1] [--threads 2]

Peak memory is read from the allocator (PyTorch profiler allocation events) and includes the input batch,
which the caller holds through the whole pass; the bound is `memory.split_memory` with that input held.
Ratios are measured in this run: torchvision's peak over ours, and our latency over t = 1.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from mobilenet.deploy.measure import peak_allocated, time_fn
from mobilenet.deploy.split import SplitInference
from mobilenet.memory import max_splits, peak_bytes, split_memory
from mobilenet.models import mobilenet_v2
from mobilenet.peers import import_peer
from mobilenet.report import columns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = mobilenet_v2(args.width).eval()
    r = args.resolution
    x = torch.randn(args.batch, 3, r, r).contiguous(memory_format=torch.channels_last)
    image = x.numel() * x.element_size()

    peer_peak = peer_ms = None
    try:
        tv = import_peer("torchvision").models.mobilenet_v2(width_mult=args.width).eval()
        nchw = x.contiguous()

        def peer() -> torch.Tensor:
            with torch.no_grad():
                return tv(nchw)

        peer_peak = peak_allocated(peer) + image
        peer_ms = time_fn(peer, runs=args.runs, min_seconds=1.0).median_ms
    except ImportError as err:
        print(f"(torchvision skipped: {err})")

    ts = [t for t in (1, 2, 3, 4, 5, 8, 16, 32, 64, 1280) if t <= max_splits(model.config)]
    rows: list[tuple[str, ...]] = [
        ("t", "median ms", "vs t=1", "peak MB", "bound MB", "peak/bound", "torchvision/ours")
    ]
    base_ms = None
    for t in ts:
        executor = SplitInference(model, t)
        call = functools.partial(executor, x)
        ms = time_fn(call, runs=args.runs if t < 64 else 5, min_seconds=1.0 if t < 64 else 0.0).median_ms
        base_ms = base_ms or ms
        peak = peak_allocated(call) + image
        bound = peak_bytes(split_memory(model.config, r, t), batch=args.batch, input_held=True)
        rows.append((str(t), f"{ms:.2f}", f"{ms / base_ms:.2f}x", f"{peak / 1e6:.3f}", f"{bound / 1e6:.3f}",
                     f"{peak / bound:.3f}", f"{peer_peak / peak:.2f}x" if peer_peak else "-"))  # fmt: skip
    if peer_peak and peer_ms:
        rows.append(("torchvision", f"{peer_ms:.2f}", f"{peer_ms / base_ms:.2f}x", f"{peer_peak / 1e6:.3f}",
                     "", "", "1.00x"))  # fmt: skip
    print(f"MobileNetV2 {args.width} {r}x{r}, batch {args.batch}, fp32, {args.threads} threads")
    print("\n".join(columns(rows)))


if __name__ == "__main__":
    main()
