"""Training throughput: our MobileNetV2 vs torchvision's, same loop, same run, printed as ratios.

Usage: python benchmarks/train_speed.py [--steps 6] [--batch 128] [--resolution 32] [--threads 2]
       [--device cpu|cuda] [--main-job]

Both models get identical inputs, optimizer (SGD momentum 0.9) and precision; each configuration is
warmed up for 2 steps, then timed over --steps steps (median step time). torchvision is an optional
peer: where it cannot be imported, only our rows print.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from mobilenet.models import mobilenet_v2
from mobilenet.peers import import_peer


def torchvision_v2(num_classes: int) -> nn.Module | None:
    try:
        return import_peer("torchvision").models.mobilenet_v2(num_classes=num_classes)
    except ImportError as err:
        print(f"(torchvision unavailable, skipped: {err})")
        return None


def step_time(
    model: nn.Module,
    batch: int,
    resolution: int,
    steps: int,
    bf16: bool,
    channels_last: bool,
    device: torch.device | None = None,
) -> float:
    device = device or torch.device("cpu")
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, resolution, resolution, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    for i in range(steps + 2):
        sync()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()  # on a GPU the step has only been queued until here
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu or cuda (the main job then trains there too)")
    p.add_argument("--main-job", action="store_true", help="also time `mobilenet train` (digits default)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )
    print(f"torch {torch.__version__}, {args.threads} threads, {where}, batch {args.batch}, {args.resolution}px")
    peer = torchvision_v2(10)
    print(f"{'precision':<10}{'layout':<15}{'ours img/s':>11}{'torchvision':>13}{'ratio':>7}{'ours CIFAR variant':>20}")
    for bf16 in (False, True):
        for channels_last in (False, True):
            kw = dict(batch=args.batch, resolution=args.resolution, steps=args.steps, bf16=bf16,
                      channels_last=channels_last, device=device)  # fmt: skip
            ours = args.batch / step_time(mobilenet_v2(num_classes=10), **kw)  # type: ignore[arg-type]
            theirs = args.batch / step_time(peer, **kw) if peer is not None else float("nan")  # type: ignore[arg-type]
            cifar = args.batch / step_time(mobilenet_v2(num_classes=10, cifar=True), **kw)  # type: ignore[arg-type]
            print(f"{'bf16' if bf16 else 'fp32':<10}{'channels_last' if channels_last else 'NCHW':<15}"
                  f"{ours:>11.0f}{theirs:>13.0f}{ours / theirs:>7.2f}{cifar:>20.0f}")  # fmt: skip
    if args.main_job:
        import dataclasses
        import tempfile

        from mobilenet.config import RECIPES
        from mobilenet.train.fit import fit

        recipe = RECIPES["digits"]
        train = dataclasses.replace(recipe.train, device=args.device)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            result = fit(recipe.model, recipe.data, train, out=f"{tmp}/run")
        print(f"main job (mobilenet train, digits): {time.perf_counter() - start:.0f} s wall, "
              f"final test top-1 {result['final']['test_acc']:.2%}, best {result['best_acc']:.2%}")  # fmt: skip


if __name__ == "__main__":
    main()
