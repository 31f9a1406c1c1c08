"""The CPU cores this process may use (its affinity, as `taskset`, a container or a job scheduler set it),
the thread count inference takes by default, and the machine's memory."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

INFERENCE_THREADS = 2  # the papers' and the phone runtimes' usual setting: two big cores


def physical_memory() -> int:
    """Bytes of RAM in this machine (0 where the OS does not say)."""
    if hasattr(os, "sysconf"):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return 0


def available_cores() -> int:
    """Cores this process may run on (not all of the machine's when it is pinned)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def inference_threads(threads: int | None = None) -> int:
    """`threads` if given, else 2 or the cores available if fewer: more threads than cores makes the
    engines' spinning thread pools wait on each other (a pinned one-core run took 100x longer)."""
    return threads if threads else min(INFERENCE_THREADS, available_cores())


def restores_torch_threads(fn: Callable[P, R]) -> Callable[P, R]:
    """For library calls that set PyTorch's thread count for their own timing: the caller's count is
    back when they return, so a benchmark run inside a program does not change the rest of it."""

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        import torch

        before = torch.get_num_threads()
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return call
