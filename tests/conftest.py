"""Shared test helpers. Peers (torchvision, timm) are imported through `mobilenet.peers`, which copes
with CUDA-only torchvision wheels; a test that needs a missing peer is skipped."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import torch

# torch is imported where it is used: pytest's main process (which only hands tests to the workers) loads
# this file before it starts them, and would otherwise spend 2 s importing torch first.

# Python code that makes `import torch` fail in the process it starts, as on a machine without torch.
BLOCK_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, NoTorch())
"""


def import_peer(name: str) -> ModuleType:
    """Import torchvision or timm, or skip the test if it is not installed."""
    from mobilenet.peers import import_peer as _import_peer

    try:
        return _import_peer(name)
    except ImportError as err:
        pytest.skip(str(err))


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every BN non-trivial statistics and affine params, so equal outputs mean equal mapping."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def import_keras() -> ModuleType:
    """Keras 3 on its torch backend (no TensorFlow needed), or skip."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"keras runs on {keras.backend.backend()}, these tests compare on torch")
    return keras


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (one worker process per core) each worker is pinned to its own share of the
    cores: the library sizes its thread pools from the cores it may use, and so do the processes the
    tests start, so the workers never fight over a core (spinning thread pools make that very slow)."""
    # processes the converters start write their imports' deprecation warnings straight to the terminal
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker.removeprefix("gw")) % count  # a worker that replaces a crashed one gets a new number
    share = len(cores) // count
    if share >= 1:
        mine = set(cores[index * share : (index + 1) * share])
        os.sched_setaffinity(0, mine)
        import torch

        torch.set_num_threads(len(mine))


MAIN_JOB_FIRST = "test_main_job_reaches_98_percent"
ALONE_FIRST = "test_main_job_with_ema_stays_within_a_point"
# First after the main job on its worker, before a phone-format conversion loads JAX into that worker: run
# later, this test (its own work is in a subprocess) has seen its test worker die silently, in 3 of 6 CI
# runs before and once since; a standalone process that converts to LiteRT, then runs the same subprocess
# six times, does not crash. Not root-caused.
EARLY = "test_order_and_bad_files_hold_with_decoding_threads"
# One after the other on one worker, which then imports ExecuTorch's lowering and warms it up once (8 s).
TOGETHER = ("test_executorch_fp32_uint8_nhwc", "test_int8_within_one_point")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the suite for pytest-xdist's work-stealing scheduler, which hands worker k the k-th run of
    len(items) // workers consecutive items and lets an idle worker take half of the longest queue's tail:
    - the first worker starts with the 5-epoch main job (width 0.25, 16 px) with `--ema-decay`, the second with
      the main job, so the two long trainings run side by side;
    - the tests that share the trained run follow the main job on its worker, so none waits for it;
    - slow tests come before quick ones, the longest first, so what is left to steal at the end is small;
    - one test runs first among them (see EARLY), two run one after the other (see TOGETHER)."""

    def name(item: pytest.Item) -> str:
        return getattr(item, "originalname", item.name)

    def seconds(item: pytest.Item) -> float:
        slow = item.get_closest_marker("slow")
        return 0.0 if slow is None else float(slow.kwargs.get("seconds", 20))

    def slow_first(group: list[pytest.Item]) -> list[pytest.Item]:
        return sorted(group, key=lambda item: (name(item) != EARLY, -seconds(item)))

    alone = [item for item in items if name(item) == ALONE_FIRST]
    main_job = [item for item in items if name(item) == MAIN_JOB_FIRST]
    rest = [item for item in items if item not in alone and item not in main_job]
    shared = slow_first([item for item in rest if "digits_run" in getattr(item, "fixturenames", ())])
    others = slow_first([item for item in rest if item not in shared])
    if together := [item for item in shared if name(item) in TOGETHER]:  # where the first of them stood
        at = shared.index(together[0])
        apart = [item for item in shared if item not in together]
        shared = apart[:at] + together + apart[at:]
    # The main job and the slow tests that share it are more than half of all the work: the second slowest
    # of those that need no partner goes last, where another worker, out of its own tests long after the
    # main job ended, takes it from this queue's tail (a worker's last two tests cannot be taken from it).
    # Chosen with a simulation of the scheduler on measured durations, which predicted a run's end to 1 s.
    unpaired = [item for item in shared if name(item) not in TOGETHER and seconds(item) > 0]
    last = sorted(unpaired, key=seconds, reverse=True)[1:2]
    shared = [item for item in shared if item not in last]
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    first = max(0, len(items) // max(workers, 2) - len(alone))
    items[:] = alone + others[:first] + main_job + shared + others[first:] + last


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's main job (`mobilenet train`), run once per test run and shared by every test module
    that needs a trained checkpoint. With pytest-xdist the first worker to need it trains it (the others
    wait on a file lock), and each worker gets its own copy of the run directory, so a test may add files
    to it without seeing another worker's half-written ones; no test changes what training wrote."""
    import shutil

    from filelock import FileLock

    from mobilenet.cli import main

    mine = tmp_path_factory.getbasetemp()
    shared = mine.parent if "PYTEST_XDIST_WORKER" in os.environ else mine
    trained = shared / "main-job" / "digits"
    with FileLock(str(shared / "main-job.lock")):
        if not (shared / "main-job" / "done").is_file():
            shutil.rmtree(trained, ignore_errors=True)
            assert main(["train", "--out", str(trained)]) == 0
            (shared / "main-job" / "done").touch()
    if shared == mine:
        return trained
    return Path(shutil.copytree(trained, tmp_path_factory.mktemp("main-job") / "digits"))
