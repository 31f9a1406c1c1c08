"""Files and run directories: atomic writes, the run-directory layout, the overwrite guard. No torch import.

A run directory is what `mobilenet train` writes: `last.pt`, `best.pt`, `config.json`, `metrics.csv`,
`curves.png`, and beside them the outputs of later commands (`eval/`, `deploy/`, `model.onnx`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

LAST, BEST = "last.pt", "best.pt"


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C inside the block takes effect when the block ends, so a checkpoint that is being written
    is finished first (else an interrupt during epoch 1's save would leave nothing to keep). Only where
    Python's own Ctrl-C handler is in place, in the main thread; elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    pending: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pending:
        raise KeyboardInterrupt


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` if the block succeeds, else delete it.

    A crash at any moment leaves either the old file or the new one, never a torn mix. `suffix` is kept
    on the temporary name for writers that choose a format by extension.
    """
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{target} is a directory; give a file name")
    parent = target.parent if str(target.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"cannot write {target}: {parent} is a file, not a directory")
    if not parent.is_dir():
        raise ValueError(f"cannot write {target}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"cannot write {target}: directory {parent} is not writable")
    try:
        tmp = _new_file(parent, f".{target.name}.", ".tmp" + suffix)
    except OSError as err:  # e.g. a read-only or special file system that access() let through
        raise ValueError(f"cannot write {target}: {err.strerror}") from None
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:  # on disk before the rename, so a power cut cannot publish a torn file
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        for extra in parent.glob(f"{Path(tmp).name}*"):  # side files some writers add (ONNX external data)
            extra.unlink()


def _new_file(parent: Path, prefix: str, suffix: str) -> Path:
    """A new empty file with a unique name in `parent`, created as any file is (mode 0666 less the umask;
    `tempfile.mkstemp` would make it private, and the written checkpoint or export with it)."""
    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free temporary name in {parent}")


def refuse_overwrite(path: str | Path, force: bool = False, *, flag: str = "--force") -> Path:
    """`path`, unless a file is already there and `force` is off: a user's file is never replaced silently."""
    target = Path(path)
    if target.exists() and not force:
        raise ValueError(f"{target} already exists; pass {flag} to replace it, or choose another output")
    return target


def output_file(output: str | Path | None, default: Path, suffix: str) -> Path:
    """Where an export goes: `default` without `output`, the default name inside an `output` directory,
    else `output` itself, which must end in `suffix`. Re-exporting replaces an earlier export, but a
    file of another kind (a checkpoint, a config, another format) is never overwritten by a typo."""
    if output is None or str(output) == "":
        return default
    target = Path(output)
    if target.is_dir():
        return target / default.name
    if target.suffix.lower() != suffix:
        raise ValueError(f"-o {target}: this format is written to a {suffix} file; give a name ending in {suffix}")
    return target


def checkpoint_file(path: str | Path) -> Path:
    """The checkpoint a user means: a run directory stands for its `last.pt`."""
    path = Path(path)
    return path / LAST if path.is_dir() else path


def run_dir_of(path: str | Path) -> Path:
    """The run directory a checkpoint path or run directory belongs to."""
    path = Path(path)
    return path if path.is_dir() else path.parent


def beside(checkpoint: str | Path, name: str) -> Path:
    """Where a later command writes its outputs for a run (e.g. `eval`, `deploy`, `model.onnx`)."""
    return run_dir_of(checkpoint) / name


def new_run_dir(out: str | None, stem: str, root: str | Path = "runs") -> Path:
    """`out` if given and absent or empty; else the first free runs/<stem>, <stem>-2, ... Never an existing run."""
    if out:
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise ValueError(f"--out {path} is a file, not a run directory; choose another --out")
        if path.exists() and any(path.iterdir()):
            raise ValueError(
                f"run directory {path} already exists and is not empty: pass --resume {path} to continue it, "
                "or choose another --out"
            )
    else:
        path, n = Path(root) / stem, 2
        while path.exists():
            path, n = Path(root) / f"{stem}-{n}", n + 1
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"cannot write to run directory {path}: {err.strerror}") from None
    return path


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir` for one training process: a second `train` or `--resume` into it fails at once.

    The lock is an OS file lock, so a process that is killed releases it: a later resume is never blocked
    by a stale lock file.
    """
    handle: IO[str] = open(run_dir / ".lock", "a+")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise ValueError(f"run directory {run_dir} is in use by {owner}; wait for it or train elsewhere") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"training process {os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()
