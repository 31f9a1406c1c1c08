"""A `.tflite` or `.pte` file exported and proven in its own runtime before it gets its name.

fp32: the file's logits must match PyTorch eager within `tolerance` (1e-4) on random inputs and on held-out
images. int8: the file's held-out top-1 must be within one point of the fp32 model's (PyTorch eager), and
the share of images where both pick the same class is reported. The file is written under a temporary
name (`files.atomic_path`) and renamed only if every check passes: a failed check leaves nothing.

`export_mobile` is the shared core (any model and its preprocessing); `export_checkpoint_mobile` and
`export_weights_mobile` are thin wrappers for a trained run and for converted pretrained weights.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mobilenet.checkpoint import Checkpoint, Expected
from mobilenet.data.splits import load_splits
from mobilenet.deploy.mobile import RUNNERS, RUNTIMES, SUFFIXES, WRITERS, Preprocessing, deployable, require
from mobilenet.deploy.verify import Verification, compare_outputs
from mobilenet.files import atomic_path, beside, output_file
from mobilenet.models import MobileNet
from mobilenet.specs import check_resolution, network_spec

MAX_INT8_DROP = 0.01  # int8 may lose at most one point of held-out top-1


@dataclass(frozen=True)
class HeldOut:
    """Labelled held-out images, preprocessed as for the float model: (N, C, H, W) floats and (N,) labels."""

    images: Tensor
    labels: Tensor


@dataclass(frozen=True)
class Int8Check:
    images: int
    fp32_top1: float  # PyTorch eager, fp32
    int8_top1: float  # the file, in its runtime
    agreement: float  # images where the int8 file and fp32 PyTorch pick the same class
    max_drop: float = MAX_INT8_DROP

    @property
    def ok(self) -> bool:
        return self.int8_top1 >= self.fp32_top1 - self.max_drop

    def line(self) -> str:
        verdict = "OK" if self.ok else "FAILED"
        return (
            f"{verdict}: held-out top-1 int8 {self.int8_top1:.2%} vs fp32 {self.fp32_top1:.2%} "
            f"({(self.int8_top1 - self.fp32_top1) * 100:+.2f} points, allowed -{self.max_drop * 100:g}), "
            f"top-1 agreement {self.agreement:.1%} ({self.images} images)"
        )


@dataclass
class MobileExport:
    path: Path
    fmt: str
    int8: bool
    uint8_nhwc: bool
    resolution: int
    checks: list[Verification] = field(default_factory=list)
    int8_check: Int8Check | None = None
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        size = self.path.stat().st_size / 1e6
        r = self.resolution
        shape = f"uint8 (1, {r}, {r}, 3) pixels" if self.uint8_nhwc else f"float (1, 3, {r}, {r})"
        output = "float logits"
        if self.int8 and self.fmt == "tflite":  # LiteRT's full-integer file: int8 tensors at both ends
            if not self.uint8_nhwc:
                shape = f"int8 (1, 3, {r}, {r}), quantized with the file's input scale and zero point"
            output = "int8 logits (dequantize with the file's output scale and zero point)"
        kind = "int8" if self.int8 else "fp32"
        lines = [f"wrote {self.path} ({self.fmt}, {kind}, {size:.2f} MB): input {shape}; output {output}"]
        runtime = RUNTIMES[self.fmt]
        lines += [f"check vs PyTorch eager in {runtime}: {c.line()}" for c in self.checks]
        if self.int8_check is not None:
            lines.append(f"check vs PyTorch fp32 in {runtime}: {self.int8_check.line()}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def variant_name(stem: str, fmt: str, int8: bool, uint8_nhwc: bool) -> str:
    """model.tflite, model.int8.pte, model-uint8-nhwc.int8.tflite, ..."""
    return f"{stem}{'-uint8-nhwc' if uint8_nhwc else ''}{'.int8' if int8 else ''}{SUFFIXES[fmt]}"


def export_mobile(
    model: MobileNet,
    path: str | Path,
    *,
    fmt: str,
    pre: Preprocessing,
    int8: bool = False,
    uint8_nhwc: bool = False,
    calibration: Sequence[Tensor] | None = None,
    held_out: HeldOut | None = None,
    tolerance: float = 1e-4,
    threads: int = 2,
) -> MobileExport:
    """Export `model` to `fmt` (batch 1, `pre.resolution`), run the file in its runtime and check it.

    `calibration` (float batches, preprocessed) is needed for int8; `held_out` is needed for int8 and
    adds real images to the fp32 check. Raises ValueError, leaving nothing at `path`, if a check fails.
    """
    require(fmt)
    check_resolution(model.spec, pre.resolution)
    if int8 and (not calibration or held_out is None):
        raise ValueError("int8 export needs calibration images and labelled held-out images to check accuracy")
    model = model.eval()
    module = deployable(model, pre, uint8_nhwc)
    size = pre.resolution

    def feed(x: Tensor) -> tuple[Tensor, Tensor]:
        """(what the file takes, what the float model takes) for a preprocessed float batch."""
        if not uint8_nhwc:
            return x, x
        pixels = pre.to_pixels(x)
        return pixels, pre.normalize(pixels)

    g = torch.Generator().manual_seed(0)
    if uint8_nhwc:
        pixels = torch.randint(0, 256, (8, size, size, 3), dtype=torch.uint8, generator=g)
        batches = {"random inputs": (pixels, pre.normalize(pixels))}
    else:
        x = torch.randn(8, 3, size, size, generator=g)
        batches = {"random inputs": (x, x)}
    if held_out is not None:
        batches["held-out images"] = feed(held_out.images[:64])
    example = batches["random inputs"][0][:1]
    calibration_inputs = [feed(b)[0] for b in calibration] if int8 and calibration else None
    result = MobileExport(Path(path), fmt, int8, uint8_nhwc, size)
    with atomic_path(path, SUFFIXES[fmt]) as tmp:
        WRITERS[fmt](module, tmp, example, calibration_inputs)
        run = RUNNERS[fmt](tmp, threads)
        if int8:
            assert held_out is not None
            result.int8_check = _int8_check(model, run, feed(held_out.images), held_out.labels)
            failed = [] if result.int8_check.ok else [result.int8_check.line()]
        else:
            with torch.no_grad():
                result.checks = [
                    compare_outputs(model(ref), run(inp.numpy()), name, tolerance)
                    for name, (inp, ref) in batches.items()
                ]
            failed = [c.line() for c in result.checks if not c.ok]
        if failed:
            raise ValueError(f"{fmt} export verification failed, nothing written: {failed[0]}")
    return result


def _int8_check(model: MobileNet, run: object, inputs: tuple[Tensor, Tensor], labels: Tensor) -> Int8Check:
    file_input, model_input = inputs
    with torch.no_grad():
        fp32 = model(model_input).argmax(1).numpy()
    int8 = np.asarray(run(file_input.numpy())).argmax(1)  # type: ignore[operator]
    y = labels.numpy()
    return Int8Check(len(y), float((fp32 == y).mean()), float((int8 == y).mean()), float((int8 == fp32).mean()))


def held_out_images(split: object, limit: int = 2000) -> HeldOut:
    """Up to `limit` labelled held-out images of a split, in its fixed evaluation order."""
    xs, ys, seen = [], [], 0
    for x, y in split.batches(256, train=False):  # type: ignore[attr-defined]
        xs.append(x)
        ys.append(y)
        seen += len(y)
        if seen >= limit:
            break
    if not xs:
        raise ValueError("the held-out split is empty")
    return HeldOut(torch.cat(xs)[:limit].contiguous(), torch.cat(ys)[:limit])


def export_checkpoint_mobile(
    checkpoint: str | Path,
    output: str | Path | None = None,
    *,
    fmt: str,
    int8: bool = False,
    uint8_nhwc: bool = False,
    calibration: int = 256,
    resolution: int | None = None,
    tolerance: float = 1e-4,
    expect: Expected | None = None,
) -> MobileExport:
    """A trained checkpoint to `fmt`: its own normalisation, calibrated (int8) on its training images and
    checked on its held-out images. Written beside the run unless `output` is given."""
    from mobilenet.deploy.qdq import calibration_batches

    require(fmt)
    ckpt = Checkpoint.load(checkpoint)
    if expect is not None:
        expect.check(ckpt.model_config)
    size = ckpt.resolution if resolution is None else resolution
    check_resolution(network_spec(ckpt.model_config), size)
    pre = Preprocessing(ckpt.mean, ckpt.std, size)
    notes: list[str] = []
    held_out = calib = None
    if int8 and calibration < 1:
        raise ValueError(f"--calibration must be at least 1 training image for int8, got {calibration}")
    if size != ckpt.resolution:
        notes.append(f"held-out images skipped: exported at {size}, trained at {ckpt.resolution}")
    else:
        try:
            train, test = load_splits(ckpt.data_config)
            ckpt.check_classes(train.classes, ckpt.data_config.dataset)
            held_out = held_out_images(test)
            if int8:
                calib = [torch.from_numpy(b) for b in calibration_batches(train, calibration)]
        except (OSError, ValueError) as err:
            if int8:
                raise ValueError(f"int8 export needs the checkpoint's data: {err}") from None
            notes.append(f"held-out images skipped: {err}")
    if int8 and held_out is None:
        raise ValueError(f"int8 export needs held-out images at the training resolution {ckpt.resolution}")
    path = output_file(output, beside(checkpoint, variant_name("model", fmt, int8, uint8_nhwc)), SUFFIXES[fmt])
    result = export_mobile(
        ckpt.build_model(),
        path,
        fmt=fmt,
        pre=pre,
        int8=int8,
        uint8_nhwc=uint8_nhwc,
        calibration=calib,
        held_out=held_out,
        tolerance=tolerance,
    )
    result.notes += notes
    return result


def export_weights_mobile(
    weights: str | Path,
    output: str | Path | None = None,
    *,
    fmt: str,
    uint8_nhwc: bool = False,
    resolution: int | None = None,
    tolerance: float = 1e-4,
) -> MobileExport:
    """Converted pretrained weights (`mobilenet convert`'s .safetensors, or a registry name) to fp32 `fmt`, with the
    normalisation stored in the file, checked on random inputs (there are no labelled images to hand;
    for int8, call `export_mobile` with calibration and held-out images)."""
    from mobilenet.weights import load_pretrained
    from mobilenet.weights.hub import local_stem

    require(fmt)
    model, metadata = load_pretrained(weights)
    resolution = int(metadata.get("resolution", 224)) if resolution is None else resolution
    try:
        pre = Preprocessing(tuple(json.loads(metadata["mean"])), tuple(json.loads(metadata["std"])), resolution)
    except (KeyError, json.JSONDecodeError) as err:
        raise ValueError(
            f"{weights} holds no input normalisation ({err}); convert it with `mobilenet convert`"
        ) from None
    source = local_stem(weights, metadata.get("registry_name"))
    path = output_file(output, source.with_name(variant_name(source.name, fmt, False, uint8_nhwc)), SUFFIXES[fmt])
    result = export_mobile(model, path, fmt=fmt, pre=pre, uint8_nhwc=uint8_nhwc, tolerance=tolerance)
    result.notes.append("checked on random inputs only: converted weights come without labelled images")
    return result
