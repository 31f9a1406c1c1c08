"""Decoding images in threads, a bounded way ahead of whoever consumes them.

Threads, not processes: Pillow releases the GIL while it decodes and resizes, and PyTorch and the
inference engines release it while they compute, so threads overlap with each other and with the model
without pickling pixels between processes, and without forking a process whose other threads (an
engine's pool, JAX's runtime) hold locks the child would inherit held.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

AHEAD = 4  # items in flight per thread


def map_ahead(fn: Callable[[In], Out], items: Sequence[In], workers: int, ahead: int = AHEAD) -> Iterator[Out]:
    """`fn(item)` for each item, in order, computed by `workers` threads (none: in this thread). At most
    `ahead` items per thread are in flight, so memory stays bounded on a large folder; an exception from
    `fn` is raised here, in order; and a consumer that stops (Ctrl-C, an error, `break`) waits only for
    the items being computed, not for the queued ones."""
    if workers <= 0 or len(items) < 2:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="mobilenet-decode")
    pending: deque[Future[Out]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= ahead * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
