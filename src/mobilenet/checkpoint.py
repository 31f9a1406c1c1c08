"""Checkpoints written atomically and loaded without executing pickled code; run directories."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

REQUIRED_KEYS = ("model", "model_config", "classes", "epoch")


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """Write to a temporary file in the same folder, flush to disk, then rename over `path`.

    A crash at any moment leaves either the old file or the new one, never a torn mix.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load with `weights_only=True` (tensors and plain containers only), or raise ValueError naming the file."""
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} is not a readable mobilenet checkpoint: {first_line}") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        raise ValueError(f"{path} is not a mobilenet checkpoint (expected keys {', '.join(REQUIRED_KEYS)})")
    return ckpt


def new_run_dir(out: str | None, stem: str, root: str | Path = "runs") -> Path:
    """`out` if given and absent or empty; else the first free runs/<stem>, <stem>-2, ... Never an existing run."""
    if out:
        path = Path(out)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
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
