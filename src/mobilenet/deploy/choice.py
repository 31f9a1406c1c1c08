"""The engine `mobilenet quantize` picked for a run, recorded beside its files and reused by `predict`.

`quantize RUN` writes `RUN/deploy/choice.json` (engine, precision, file, the accuracy it kept, the
checkpoint's SHA-256 and the file's size and time). `predict --checkpoint RUN` then feeds camera pixels
to that file on that engine, so the photo-to-label pipeline runs at the speed and accuracy `quantize`
measured. A choice made for other weights (retrained since), another input side, a file changed since,
or an engine not installed is ignored, and `predict` says why.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet.deploy import engines
from mobilenet.deploy.mobile import Preprocessing
from mobilenet.files import atomic_path

CHOICE_FILE = "choice.json"
USABLE = ("openvino", "onnxruntime")  # engines `predict` can feed uint8 pixels here (phone runtimes are not)


def checkpoint_stamp(path: Path) -> dict[str, Any]:
    """What identifies a checkpoint's contents wherever the run is moved or copied: size and SHA-256."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"checkpoint_size": path.stat().st_size, "checkpoint_sha256": digest.hexdigest()}


def _file_stamp(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"file_size": stat.st_size, "file_mtime_ns": stat.st_mtime_ns}


def write_choice(out: Path, choice: engines.EngineChoice, checkpoint: Path, resolution: int, file: Path) -> Path:
    """Record `choice` in `out/choice.json`, atomically."""
    record = {
        "engine": choice.engine,
        "precision": choice.precision,
        "file": file.name,
        "resolution": resolution,
        "top1": choice.top1[(choice.engine, choice.precision)],
        "reference_top1": choice.reference_top1,
        **checkpoint_stamp(checkpoint),
        **_file_stamp(file),
    }
    path = out / CHOICE_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return path


def forget_choice(out: Path) -> None:
    """Remove a choice recorded by an earlier `quantize` (its files are about to be replaced)."""
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
        if engine not in USABLE:
            return None, f"its engine, {engine}, is a phone runtime"
        if engine not in engines.available():
            return None, f"{engine} is not installed"
        if record["resolution"] != resolution:
            return None, f"it was made at {record['resolution']} px, this prediction runs at {resolution}"
        if not file.is_file() or _file_stamp(file) != {k: record[k] for k in ("file_size", "file_mtime_ns")}:
            return None, f"{file.name} is missing or has changed since"
        stamp = checkpoint_stamp(checkpoint)
        if {k: record.get(k) for k in stamp} != stamp:
            return None, f"it was made for another checkpoint than {checkpoint.name} (retrained since?)"
        return dict(record), ""
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return None, f"it cannot be read ({type(err).__name__}: {err})"


def chosen_runner(deploy_dir: Path, checkpoint: Path, pre: Preprocessing, threads: int = 0) -> tuple[Any, str]:
    """A callable from uint8 (N, H, W, 3) pixels to logits on the recorded engine and file, and its name;
    (None, why not) when there is no usable choice ("" when none was recorded).

    On OpenVINO the conversion to float, the normalisation and the layout change are added to the graph
    with its pre-processing API, so the pixels go in as they are; onnxruntime gets them normalised here."""
    record, why = read_choice(deploy_dir, checkpoint, pre.resolution)
    if record is None:
        return None, why
    path, engine, precision = deploy_dir / record["file"], record["engine"], record["precision"]
    try:
        if engine == "openvino":
            return _openvino_uint8(
                path, pre, precision, threads
            ), f"{engine} {precision} (quantize's choice, {path.name})"
        run = engines.load(path, engine, threads=threads, precision=precision)
    except Exception as err:  # a damaged file: the default engine still answers
        return None, f"{path.name} cannot be loaded by {engine} ({type(err).__name__}: {str(err)[:200]})"
    mean = np.asarray(pre.mean, np.float32)[:, None, None] * 255
    std = np.asarray(pre.std, np.float32)[:, None, None] * 255

    def run_ort(pixels: np.ndarray) -> np.ndarray:
        x = (pixels.transpose(0, 3, 1, 2).astype(np.float32) - mean) / std
        return np.asarray(run(np.ascontiguousarray(x)))

    return run_ort, f"{engine} {precision} (quantize's choice, {path.name})"


def _openvino_uint8(path: Path, pre: Preprocessing, precision: str, threads: int) -> Any:
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    core = ov.Core()
    model = core.read_model(str(path))
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    steps = ppp.input().preprocess().convert_element_type(ov.Type.f32)
    steps.mean([m * 255 for m in pre.mean]).scale([s * 255 for s in pre.std])
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(threads)
    compiled = core.compile_model(ppp.build(), "CPU", config)
    request = compiled.create_infer_request()

    def run(pixels: np.ndarray) -> np.ndarray:
        request.infer({0: pixels})
        return request.get_output_tensor(0).data.copy()

    return run
