"""The engine `mobilenet quantize` picked for a run, recorded beside its files and reused by `predict`.

`quantize RUN` writes `RUN/deploy/choice.json` (engine, precision, file, the accuracy it kept, and a
stamp of the checkpoint it measured). `predict --checkpoint RUN` then feeds camera pixels to that file on
that engine, so the photo-to-label pipeline runs at the speed and accuracy `quantize` measured. A choice
made for another checkpoint file (retrained since) or another input side is ignored.
"""

from __future__ import annotations

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
    """What identifies a checkpoint file's contents cheaply: its resolved path, size and modification time."""
    stat = path.stat()
    return {"checkpoint": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


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
    }
    path = out / CHOICE_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return path


def read_choice(deploy_dir: Path, checkpoint: Path, resolution: int) -> dict[str, Any] | None:
    """The recorded choice if it was made for this very checkpoint file at this side, and its file is
    there and runs here; else None."""
    try:
        record = json.loads((deploy_dir / CHOICE_FILE).read_text())
        fresh = {k: record[k] for k in ("checkpoint", "size", "mtime_ns")} == checkpoint_stamp(checkpoint)
        usable = record["engine"] in USABLE and record["engine"] in engines.available()
        if fresh and usable and record["resolution"] == resolution and (deploy_dir / record["file"]).is_file():
            return dict(record)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def chosen_runner(deploy_dir: Path, checkpoint: Path, pre: Preprocessing, threads: int = 0) -> tuple[Any, str] | None:
    """A callable from uint8 (N, H, W, 3) pixels to logits on the recorded engine and file, and its name.

    On OpenVINO the conversion to float, the normalisation and the layout change are added to the graph
    with its pre-processing API, so the pixels go in as they are; onnxruntime gets them normalised here."""
    record = read_choice(deploy_dir, checkpoint, pre.resolution)
    if record is None:
        return None
    path, engine, precision = deploy_dir / record["file"], record["engine"], record["precision"]
    name = f"{engine} {precision} (quantize's choice, {path.name})"
    if engine == "openvino":
        return _openvino_uint8(path, pre, precision, threads), name
    run = engines.load(path, engine, threads=threads, precision=precision)
    mean = np.asarray(pre.mean, np.float32)[:, None, None] * 255
    std = np.asarray(pre.std, np.float32)[:, None, None] * 255

    def run_ort(pixels: np.ndarray) -> np.ndarray:
        x = (pixels.transpose(0, 3, 1, 2).astype(np.float32) - mean) / std
        return np.asarray(run(np.ascontiguousarray(x)))

    return run_ort, name


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
