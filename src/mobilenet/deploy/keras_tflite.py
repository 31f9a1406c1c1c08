"""Keras Applications' MobileNetV2 through TensorFlow's own `TFLiteConverter`: the Keras user's path to a
phone, fp32 and full-integer int8, written as `.tflite` files for `mobilenet bench` to time in the same
LiteRT interpreter as ours.

TensorFlow is only a benchmark extra (`pip install 'mobilenet[tensorflow]'`), and it never shares a
process with PyTorch here: `convert_keras` runs this module as a script (`python -m
mobilenet.deploy.keras_tflite OUT WIDTH CLASSES SIDE PRECISION...`), which imports neither torch nor
the rest of the package.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

KERAS_WIDTHS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)  # the alphas keras.applications.MobileNetV2 builds


def has_tensorflow() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def keras_files(out: Path, width: float, classes: int, side: int, precisions: tuple[str, ...]) -> dict[str, Path]:
    """Convert Keras' MobileNetV2 (random weights) to `out/keras.<precision>.tflite` in a TensorFlow process."""
    if not has_tensorflow():
        raise ValueError("TensorFlow is not installed: pip install 'mobilenet[tensorflow]'")
    if width not in KERAS_WIDTHS:
        raise ValueError(f"Keras builds MobileNetV2 only at widths {', '.join(map(str, KERAS_WIDTHS))}, not {width:g}")
    argv = [str(out), str(width), str(classes), str(side), *precisions]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "mobilenet.deploy.keras_tflite", *argv], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        raise ValueError(f"TFLiteConverter failed: {done.stderr.strip().splitlines()[-1:]}")
    return {p: out / f"keras.{p}.tflite" for p in precisions}


def _convert(out: Path, width: float, classes: int, side: int, precisions: list[str]) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    model = keras.applications.MobileNetV2(
        input_shape=(side, side, 3), alpha=width, weights=None, classes=classes, classifier_activation=None
    )

    def representative() -> object:  # the calibration our int8 paths get: 8 standard-normal images
        rng = np.random.default_rng(1)
        for _ in range(8):
            yield [rng.standard_normal((1, side, side, 3), dtype=np.float32)]

    for precision in precisions:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if precision == "int8":  # full-integer: every op int8, float input and output as the model has
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        (out / f"keras.{precision}.tflite").write_bytes(converter.convert())


if __name__ == "__main__":
    folder, alpha, n, size, *kinds = sys.argv[1:]
    _convert(Path(folder), float(alpha), int(n), int(size), kinds)
