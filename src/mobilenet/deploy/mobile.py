"""Phone formats: LiteRT (`.tflite`, formerly TensorFlow Lite) and ExecuTorch (`.pte`, XNNPACK delegate),
fp32 or full-integer int8, each with a runner in its own runtime.

int8 uses each exporter's own PT2E quantizer: litert-torch's `PT2EQuantizer` for LiteRT and ExecuTorch's
`XNNPACKQuantizer` for `.pte`, both with symmetric per-channel int8 weights and int8 activations calibrated
on real images. The `.tflite` file then takes and returns int8 tensors (quantized with the scale and zero
point stored in the file); the `.pte` file quantizes and dequantizes inside, so it takes floats.

`uint8_nhwc=True` exports the camera convention: uint8 (N, H, W, 3) pixels in, logits out. The division
by 255 * std is folded into the stem convolution's weights; the mean is subtracted (255 * mean, one
subtraction per pixel) before the stem. Folding the mean into the stem's bias instead would be exact only
away from the border: the stem zero-pads the *normalised* image, and a zero there is the mean pixel, not
pixel 0. Subtracting first keeps the padding where the float model has it, so the result is exact.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mobilenet.deploy.export import out_of_place
from mobilenet.layers import fold_bn
from mobilenet.models import MobileNet

SUFFIXES = {"tflite": ".tflite", "executorch": ".pte"}
RUNTIMES = {"tflite": "LiteRT interpreter", "executorch": "ExecuTorch runtime (XNNPACK)"}
Runner = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Preprocessing:
    """What turns [0, 1] RGB pixels into the model's input: (x - mean) / std at `resolution` x `resolution`."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    resolution: int

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive and match mean, got mean={self.mean} std={self.std}")
        if self.resolution < 1:
            raise ValueError(f"resolution must be >= 1, got {self.resolution}")

    def normalize(self, pixels: Tensor) -> Tensor:
        """uint8 (N, H, W, C) pixels -> the float (N, C, H, W) batch the model was trained on."""
        x = pixels.permute(0, 3, 1, 2).float() / 255
        return (x - _channels(self.mean)) / _channels(self.std)

    def to_pixels(self, x: Tensor) -> Tensor:
        """A normalised float batch back to the uint8 NHWC pixels a camera would give (rounded, clipped)."""
        rgb = (x * _channels(self.std) + _channels(self.mean)).clamp(0, 1)
        return (rgb * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _channels(values: tuple[float, ...]) -> Tensor:
    return torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)


class Uint8NHWC(nn.Module):
    """uint8 (N, H, W, C) pixels -> logits, with the normalisation folded into the stem (see module doc)."""

    def __init__(self, model: MobileNet, pre: Preprocessing) -> None:
        super().__init__()
        self.model = fold_bn(model)
        with torch.no_grad():
            self.model.stem.conv.weight /= 255 * _channels(pre.std)  # per input channel
        self.mean_pixel: Tensor
        self.register_buffer("mean_pixel", 255 * _channels(pre.mean))

    def forward(self, pixels: Tensor) -> Tensor:
        return self.model(pixels.permute(0, 3, 1, 2).float() - self.mean_pixel)


def deployable(model: MobileNet, pre: Preprocessing, uint8_nhwc: bool) -> nn.Module:
    """The module that is exported: BN folded, eval mode; with the camera input convention if asked."""
    return (Uint8NHWC(model, pre) if uint8_nhwc else fold_bn(model)).eval()


# what writing a file needs (the converter and the runtime that checks it), and what running one needs
_EXPORT_MODULES = {"tflite": ("litert_torch", "ai_edge_litert.interpreter"), "executorch": ("executorch.exir",)}
_RUNTIME_MODULES = {"tflite": ("ai_edge_litert.interpreter",), "executorch": ("executorch.runtime",)}


def require(fmt: str, *, runtime_only: bool = False) -> None:
    """Raise a one-line ValueError naming the extra to install if `fmt`'s exporter or runtime is missing.
    `runtime_only`: only what runs a file, so that running one never loads a converter (litert-torch
    brings JAX and two seconds of imports)."""
    if fmt not in SUFFIXES:
        raise ValueError(f"unknown mobile format {fmt!r}; expected one of: {', '.join(SUFFIXES)}")
    modules = (_RUNTIME_MODULES if runtime_only else _EXPORT_MODULES)[fmt]
    extra = "litert" if fmt == "tflite" else "executorch"
    for name in modules:
        try:
            with quiet():  # importing the LiteRT converter logs C++ start-up lines
                __import__(name)
        except ImportError as err:
            raise ValueError(
                f"{fmt} export needs {name.split('.')[0]} ({err}); pip install 'mobilenet[{extra}]'"
            ) from None


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The converters print progress and C++ log lines to both streams; keep them off the command's output
    unless the conversion fails, then show them on stderr."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as log, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        failed = True
        try:
            with contextlib.redirect_stdout(sys.stderr):
                yield
            failed = False
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            if failed:
                log.seek(0)
                sys.stderr.write(log.read().decode(errors="replace")[-4000:])


def _calibrated(
    module: nn.Module, example: Tensor, quantizer: Any, calibration: Sequence[Tensor], *, fold: bool
) -> nn.Module:
    """PT2E post-training quantization: observe `calibration` images, then fix the int8 scales. `fold`
    stores weights as int8 constants (ExecuTorch); litert-torch wants them as float + quantize ops."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if not calibration:
        raise ValueError("int8 export needs calibration images, got none")
    # A dynamic batch while observing: whole batches, not one image at a time (the histograms are slow).
    batch = torch.export.Dim("batch", min=1, max=4096)
    two = torch.cat([example, example])  # an example batch of 1 would pin the batch to 1
    graph = torch.export.export(module, (two,), dynamic_shapes=({0: batch},)).module()
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for images in calibration:
            prepared(images)
    return convert_pt2e(prepared, fold_quantize=fold)


def write_tflite(module: nn.Module, path: Path, example: Tensor, calibration: Sequence[Tensor] | None) -> None:
    """litert-torch conversion; with `calibration`, full-integer int8 through its PT2E quantizer."""
    require("tflite")
    import litert_torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig

    with quiet(), out_of_place(module):
        if calibration is None:
            converted = litert_torch.convert(module, (example,))
        else:
            config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
            quantizer = PT2EQuantizer().set_global(config)
            graph = _calibrated(module, example, quantizer, calibration, fold=False)
            converted = litert_torch.convert(graph, (example,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
        converted.export(str(path))


def write_pte(module: nn.Module, path: Path, example: Tensor, calibration: Sequence[Tensor] | None) -> None:
    """torch.export -> Edge dialect -> XNNPACK delegate -> `.pte`; with `calibration`, int8 through PT2E."""
    require("executorch")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from executorch.exir import to_edge_transform_and_lower

    with quiet(), out_of_place(module):
        if calibration is not None:
            quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
            module = _calibrated(module, example, quantizer, calibration, fold=True)
        program = torch.export.export(module, (example,))
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
        path.write_bytes(lowered.buffer)


WRITERS = {"tflite": write_tflite, "executorch": write_pte}


def tflite_runner(path: str | Path, threads: int = 2) -> Runner:
    """Run a `.tflite` file in the LiteRT interpreter, one image at a time (its batch is 1). int8 inputs
    and outputs are quantized and dequantized with the file's own scale and zero point."""
    require("tflite", runtime_only=True)
    from ai_edge_litert.interpreter import Interpreter

    with quiet():
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def run(x: np.ndarray) -> np.ndarray:
        results = []
        for i in range(len(x)):
            image = x[i : i + 1]
            if inp["dtype"] == np.int8:
                scale, zero = inp["quantization"]
                image = np.clip(np.round(image / scale) + zero, -128, 127)
            interpreter.set_tensor(inp["index"], image.astype(inp["dtype"]))
            interpreter.invoke()
            y = interpreter.get_tensor(out["index"])
            if out["dtype"] == np.int8:
                scale, zero = out["quantization"]
                y = (y.astype(np.float32) - zero) * scale
            results.append(y.astype(np.float32))
        return np.concatenate(results)

    return run


def pte_runner(path: str | Path, threads: int = 2) -> Runner:
    """Run a `.pte` file in the ExecuTorch runtime (XNNPACK kernels), one image at a time."""
    require("executorch", runtime_only=True)
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime

    with quiet():
        portable_lib._unsafe_reset_threadpool(threads)
        method = Runtime.get().load_program(Path(path)).load_method("forward")
    if method is None:
        raise ValueError(f"{path} has no forward method")

    def run(x: np.ndarray) -> np.ndarray:
        outputs = [method.execute([torch.from_numpy(x[i : i + 1])])[0] for i in range(len(x))]
        return torch.cat(outputs).numpy()

    return run


RUNNERS: dict[str, Callable[[str | Path, int], Runner]] = {"tflite": tflite_runner, "executorch": pte_runner}
