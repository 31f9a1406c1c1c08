"""From photo files to labels, fast: what `predict` runs and `benchmarks/photo_to_label.py` times.

1. Decode (worker threads, overlapped with inference when there are several files): large JPEGs at
   reduced size by DCT scaling, EXIF orientation applied, resize and centre crop as the weights say,
   uint8 pixels out (`mobilenet.data.photos`).
2. Infer: the network takes uint8 NHWC pixels; the layout change, the cast and the normalisation are
   inside the graph (normalisation folded into the stem convolution, exact). On OpenVINO when it is
   installed (the ONNX file is exported once per model and cached), else in PyTorch.

`PhotoPrep(reduced_decode=False)` is the full-decode path (the same pixels as the peers' documented
preprocessing up to resize details); `predict --full-decode` selects it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mobilenet.cores import available_cores
from mobilenet.data.ahead import map_ahead
from mobilenet.data.photos import PhotoPrep, load_pixels
from mobilenet.deploy.mobile import Preprocessing, Uint8NHWC
from mobilenet.download import cache_home
from mobilenet.files import atomic_path
from mobilenet.models import MobileNet

log = logging.getLogger("mobilenet")

Runner = Callable[[np.ndarray], np.ndarray]
ENGINES = ("auto", "openvino", "torch")


def _digest(model: MobileNet, pre: Preprocessing) -> str:
    h = hashlib.sha1(repr((model.config, pre)).encode())
    for value in model.state_dict().values():
        h.update(value.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def uint8_runner(
    model: MobileNet, pre: Preprocessing, engine: str = "auto", threads: int = 0, images: int = 1000
) -> tuple[Runner, str]:
    """A callable from uint8 (N, H, W, 3) pixels to logits, and the engine's name.

    "auto" takes OpenVINO where installed, once the model's export is cached or when there are at least
    32 `images` to label (the first export takes seconds, which a single photo would wait for)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of: {', '.join(ENGINES)}")
    module = Uint8NHWC(model, pre).eval()
    path = cache_home() / "engines" / f"{_digest(model, pre)}-u8-{pre.resolution}.onnx"
    worth_it = path.is_file() or images >= 32
    if engine == "openvino" or (engine == "auto" and worth_it and _openvino_available()):
        from mobilenet.deploy.engines import load
        from mobilenet.deploy.export import onnx_export

        example = torch.zeros(2, pre.resolution, pre.resolution, 3, dtype=torch.uint8)
        if path.is_file():
            try:
                return load(path, "openvino", threads=threads), "openvino"
            except Exception as err:  # a damaged cache file (a disk error, an edit): made again below
                reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                log.warning(f"the cached export {path} cannot be loaded ({reason}); making it again")
                path.unlink(missing_ok=True)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path, ".onnx") as tmp:
                onnx_export(module, tmp, example)
        except (OSError, ValueError) as err:  # an unwritable or odd MOBILENET_HOME: export for this run only
            log.warning(f"cannot cache the OpenVINO export under {path.parent} ({err}); exporting it for this run")
            with tempfile.TemporaryDirectory() as scratch:
                onnx_export(module, Path(scratch) / "model.onnx", example)
                return load(Path(scratch) / "model.onnx", "openvino", threads=threads), "openvino"
        return load(path, "openvino", threads=threads), "openvino"

    @torch.no_grad()
    def run(pixels: np.ndarray) -> np.ndarray:
        return module(torch.from_numpy(pixels)).numpy()

    return run, "torch"


@dataclass
class Labelled:
    path: str
    logits: np.ndarray | None
    error: str | None = None


def _decoded(paths: Sequence[str], prep: PhotoPrep, workers: int) -> Iterator[np.ndarray | str]:
    """Each file's pixels (or error), in order, decoded in `workers` threads a bounded way ahead."""
    return map_ahead(functools.partial(load_pixels, prep=prep), paths, workers)


def label_photos(
    paths: Iterable[str | Path], prep: PhotoPrep, run: Runner, *, batch: int = 8, workers: int | None = None
) -> Iterator[Labelled]:
    """Logits for each file in order; unreadable files come back with their error. Decoding runs in
    `workers` threads (default: one per available core, when there is more than one file) while the
    engine runs batches, so the two overlap."""
    names = [str(p) for p in paths]
    if workers is None:
        workers = available_cores() if len(names) > 1 else 0
    pending: list[tuple[str, np.ndarray]] = []

    def flush() -> Iterator[Labelled]:
        logits = run(np.stack([pixels for _, pixels in pending]))
        yield from (Labelled(name, row) for (name, _), row in zip(pending, logits, strict=True))
        pending.clear()

    for name, pixels in zip(names, _decoded(names, prep, workers), strict=True):
        if isinstance(pixels, str):
            yield from flush() if pending else ()
            yield Labelled(name, None, pixels)
            continue
        pending.append((name, pixels))
        if len(pending) == batch:
            yield from flush()
    if pending:
        yield from flush()
