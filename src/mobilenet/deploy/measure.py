"""Measurement helpers shared by the CLI and the benchmarks: latency statistics and peak memory.

Peak memory comes from the allocator itself: PyTorch's profiler records every CPU (and CUDA) allocation
and free made while `fn` runs, with sizes, so the running sum of those events is the exact number of
bytes alive at each moment above what existed before the call.
"""

from __future__ import annotations

import contextlib
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _walk(nodes: list[Any]) -> Iterator[Any]:
    for node in nodes:
        yield node
        yield from _walk(node.children)


def peak_allocated(fn: Callable[[], object]) -> int:
    """Most bytes the allocator held at once while `fn()` ran, above what was allocated before it.

    Tensors `fn` returns count (they are alive at the end); the caller's inputs do not.
    """
    import torch  # here, not at the top: the engines import this module, and a process that only runs an
    from torch.profiler import ProfilerActivity, profile  # exported file needs no torch (a second less)

    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    prof = profile(activities=activities, profile_memory=True)
    with _quiet_stderr():  # the profiler's C++ side logs its start and stop on fd 2
        prof.start()
    try:
        result = fn()
    finally:
        with _quiet_stderr():
            prof.stop()
    events = []
    for node in _walk(prof.profiler.kineto_results.experimental_event_tree()):  # type: ignore[union-attr]
        fields = node.extra_fields
        if type(fields).__name__ == "_ExtraFields_Allocation":
            events.append((node.start_time_ns, fields.alloc_size))
    del result
    events.sort(key=lambda e: e[0])
    live = top = 0
    for _, size in events:
        live += size
        top = max(top, live)
    return top


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p90_ms: float
    runs: int
    batch: int
    samples: tuple[float, ...] = ()  # every timed call, ms

    @property
    def images_per_s(self) -> float:
        return self.batch / (self.median_ms / 1e3)

    @classmethod
    def from_samples(cls, samples: list[float], batch: int = 1) -> Timing:
        times = sorted(samples)
        p90 = times[min(len(times) - 1, round(0.9 * (len(times) - 1)))]
        return cls(statistics.median(times), p90, len(times), batch, tuple(samples))


def time_fn(
    fn: Callable[[], object], *, batch: int = 1, runs: int = 50, warmup: int = 5, min_seconds: float = 0.0
) -> Timing:
    """Median and 90th-percentile wall time of `fn()` after `warmup` untimed calls.

    Runs at least `runs` times and until `min_seconds` of timed calls have passed.
    """
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return Timing.from_samples(times, batch)


def time_interleaved(
    calls: Sequence[Callable[[], object]],
    *,
    runs: int,
    min_seconds: float,
    rounds: int = 5,
    seed: int = 0,
    names: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
) -> list[list[float]]:
    """Every call's timed samples (ms), each call warmed up, then timed in `rounds` slices taken in a
    shuffled turn, so drift in the machine's speed (other tenants, frequency) lands on all calls alike
    instead of on whichever ran last. In all, each call runs at least `runs` times and `min_seconds`."""
    samples: list[list[float]] = [[] for _ in calls]
    for i, call in enumerate(calls):
        if progress:
            progress(f"warming up {names[i] if names else i}")
        time_fn(call, runs=1, warmup=3)
    order, shuffle = list(range(len(calls))), random.Random(seed)
    for r in range(rounds):
        if progress:
            progress(f"round {r + 1}/{rounds}")
        shuffle.shuffle(order)  # no call always runs right after the same neighbour
        for i in order:
            timing = time_fn(calls[i], runs=max(1, runs // rounds), warmup=1, min_seconds=min_seconds / rounds)
            samples[i] += timing.samples
    return samples


_MEMORY_PROBE = """
import resource, sys
import numpy as np
from mobilenet.deploy import engines
path, engine, precision, batch, size, threads = sys.argv[1:7]
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize()
before = rss()
run = engines.load(path, engine, threads=int(threads), precision=precision)
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
    args = [str(path), engine, precision, str(batch), str(resolution), str(threads)]
    try:
        out = subprocess.run(
            [sys.executable, "-c", _MEMORY_PROBE, *args], capture_output=True, text=True, check=True, timeout=300
        )
        return int(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        return None
