"""onnxruntime's static quantization of an ONNX file to int8 QDQ, and the calibration images it reads.

Per-channel int8 weights, uint8 activations with min/max ranges calibrated on N training images. The
QDQ file runs in onnxruntime and in OpenVINO (which reads QDQ as int8). Used by `quantize` and, with
random calibration, by `bench` for our model and the peers' alike.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from mobilenet.data.splits import Split
from mobilenet.deploy.export import INPUT_NAME
from mobilenet.files import atomic_path


def calibration_batches(split: Split, images: int, batch_size: int = 32) -> list[np.ndarray]:
    """The first `images` training images in a fixed shuffled order, preprocessed as in evaluation."""
    if images < 1:
        raise ValueError(f"calibration needs at least 1 image, got {images}")
    if len(split) == 0:
        raise ValueError("calibration data is missing: the training split is empty")
    out, seen = [], 0
    for x, _ in split.batches(batch_size, train=False, seed=0):
        out.append(x.numpy().astype(np.float32))
        seen += len(x)
        if seen >= images:
            break
    remove = seen - images
    if remove > 0:
        out[-1] = out[-1][: len(out[-1]) - remove]
    return out


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over preprocessed batches."""

    def __init__(self, batches: list[np.ndarray]) -> None:
        self._batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize_onnx(fp32_path: str | Path, int8_path: str | Path, batches: list[np.ndarray]) -> Path:
    """Static QDQ quantization: per-channel int8 weights, uint8 activations calibrated (min/max) on `batches`."""
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as err:
        raise ValueError(f"quantization needs onnxruntime ({err}); pip install 'mobilenet[deploy]'") from None
    with tempfile.TemporaryDirectory() as tmp, atomic_path(int8_path, ".onnx") as out:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(out),
            _Reader(batches),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"CalibTensorRangeSymmetric": False, "ActivationSymmetric": False},
        )
    return Path(int8_path)
