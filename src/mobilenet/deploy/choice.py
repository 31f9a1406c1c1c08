"""The engine `mobilenet quantize` picked for a run, recorded beside its files and reused by `predict`.

`quantize RUN` writes `RUN/deploy/choice.json` (engine, precision, file, the accuracy it kept, the
checkpoint's SHA-256 and the file's size and SHA-256). `predict --checkpoint RUN` then feeds camera pixels
to that file on that engine, so the photo-to-label pipeline runs at the speed and accuracy `quantize`
measured. A choice made for other weights (retrained since), another input side, a file changed since,
or an engine not installed is ignored, and `predict` says why. The record holds no paths or times: a
copied, moved or unpacked run keeps its choice.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from mobilenet.deploy import engines
from mobilenet.deploy.mobile import Preprocessing
from mobilenet.download import sha256sum
from mobilenet.files import atomic_path

CHOICE_FILE = "choice.json"


def checkpoint_stamp(path: Path) -> dict[str, Any]:
    """What identifies a checkpoint's contents wherever the run is moved or copied: size and SHA-256."""
    return {"checkpoint_size": path.stat().st_size, "checkpoint_sha256": sha256sum(path)}


def _file_stamp(path: Path, old: bool = False) -> dict[str, Any]:
    """The chosen file's size and SHA-256: a copy (`cp -r`, tar, scp) keeps it, any change breaks it.
    `old`: size and time, as choices written before the hash recorded them."""
    stat = path.stat()
    if old:
        return {"file_size": stat.st_size, "file_mtime_ns": stat.st_mtime_ns}
    return {"file_size": stat.st_size, "file_sha256": sha256sum(path)}


def write_choice(out: Path, choice: engines.EngineChoice, checkpoint: Path, resolution: int, file: Path) -> Path:
    """Record `choice` in `out/choice.json`, atomically."""
    record = {
        "engine": choice.engine,
        "precision": choice.precision,
        "file": file.name,
        "resolution": resolution,
        "top1": choice.top1[(choice.engine, choice.precision)],
        "reference_top1": choice.reference_top1,
        "checkpoint": checkpoint.name,
        **checkpoint_stamp(checkpoint),
        **_file_stamp(file),
    }
    path = out / CHOICE_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return path


def forget_choice(out: Path) -> None:
    """Remove a choice recorded by an earlier `quantize` (a later run that picked nothing replaced its files)."""
    with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
        (out / CHOICE_FILE).unlink()


def read_choice(deploy_dir: Path, checkpoint: Path, resolution: int) -> tuple[dict[str, Any] | None, str]:
    """(the recorded choice, "") if it was made for this very checkpoint at this side and its file is
    unchanged and runs here; else (None, why not), with "" when nothing was recorded."""
    path = deploy_dir / CHOICE_FILE
    if not path.exists():
        return None, ""
    try:
        record = json.loads(path.read_text())
        engine, file = record["engine"], deploy_dir / record["file"]
        if engine not in engines.available() and engine not in engines.PHONE_RUNTIMES:
            return None, f"{engine} is not installed"
        if record["resolution"] != resolution:
            return None, f"it was made at {record['resolution']} px, this prediction runs at {resolution}"
        stamp = checkpoint_stamp(checkpoint)
        if {k: record.get(k) for k in stamp} != stamp:
            made_from = record.get("checkpoint")
            if made_from and made_from != checkpoint.name:  # e.g. the run's last.pt, and this is its best.pt
                return None, (
                    f"it was made from {made_from}, not {checkpoint.name} (`mobilenet quantize "
                    f"{checkpoint}` deploys this one)"
                )
            return None, f"it was made for another version of {checkpoint.name} (retrained since?)"
        if not file.is_file():
            return None, f"{file.name} is missing"
        made = _file_stamp(file, old="file_sha256" not in record)
        if {k: record.get(k) for k in made} != made:
            return None, f"{file.name} has changed since"
        return dict(record), ""
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return None, f"it cannot be read ({type(err).__name__}: {err})"


def chosen_runner(deploy_dir: Path, checkpoint: Path, pre: Preprocessing, threads: int = 0) -> tuple[Any, str]:
    """A callable from uint8 (N, H, W, 3) pixels to logits on the recorded engine and file, and its name;
    (None, why not) when there is no usable choice ("" when none was recorded).

    The conversion to float, the normalisation and the layout change are the engine's (`engines.load`'s
    `pixels`): inside the graph on OpenVINO, in NumPy before onnxruntime and the phone runtimes (LiteRT,
    ExecuTorch, when `quantize --mobile` timed them and one was fastest)."""
    record, why = read_choice(deploy_dir, checkpoint, pre.resolution)
    if record is None:
        return None, why
    path, engine, precision = deploy_dir / record["file"], record["engine"], record["precision"]
    try:
        run = engines.load(path, engine, threads=threads, precision=precision, pixels=(pre.mean, pre.std))
    except Exception as err:  # a damaged file: the default engine still answers
        return None, f"{path.name} cannot be loaded by {engine} ({type(err).__name__}: {str(err)[:200]})"
    return run, f"{engine} {precision} (quantize's choice, {path.name})"
