"""Inference engines for exported models: onnxruntime (the `deploy` extra) and OpenVINO (`openvino` extra).

Each engine loads a file and returns a callable on a float32 NCHW numpy batch. A missing engine is a
clear error naming the extra to install.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mobilenet.cores import inference_threads
from mobilenet.deploy.measure import Timing, time_interleaved

if TYPE_CHECKING:
    from mobilenet.deploy.quantize import QuantizeReport

Runner = Callable[[np.ndarray], np.ndarray]
ENGINES: tuple[str, ...] = ("onnxruntime", "openvino")
PRECISIONS: tuple[str, ...] = ("fp32", "int8", "bf16")
# phone runtimes -> the file format each runs (deploy/mobile.py); `load` runs their files too
PHONE_RUNTIMES: dict[str, str] = {"litert": "tflite", "executorch": "executorch"}


def _require(module: str, extra: str) -> Any:
    try:
        return __import__(module)
    except ImportError as err:
        raise ValueError(
            f"engine {module} is not installed ({err}); install it with: pip install 'mobilenet[{extra}]'"
        ) from None


def available() -> list[str]:
    out = []
    for name in ENGINES:
        try:
            __import__(name)
        except ImportError:
            continue
        out.append(name)
    return out


def candidates() -> list[tuple[str, str]]:
    """(engine, precision) pairs this machine can run: fp32 and int8 everywhere, bf16 on OpenVINO where
    the CPU has native bf16."""
    out = []
    for engine in available():
        out += [(engine, "fp32"), (engine, "int8")]
        if engine == "openvino" and cpu_has_bf16():
            out.append((engine, "bf16"))
    return out


def onnxruntime_session(path: str | Path, *, threads: int = 0) -> Any:
    ort = _require("onnxruntime", "deploy")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for unreadable models
        raise ValueError(f"onnxruntime cannot load {path}: {err}") from None


def cpu_has_bf16() -> bool:
    """AVX512-BF16 or AMX: where bf16 inference is a hardware path, not an emulation."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def load(
    path: str | Path,
    engine: str = "onnxruntime",
    *,
    threads: int = 0,
    precision: str = "fp32",
    pixels: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> Runner:
    """A callable running the ONNX file at `path` on `engine` (or a phone runtime's file on LiteRT or
    ExecuTorch). `precision` is the path's name: "bf16" asks
    OpenVINO for bf16 inference; "fp32" and "int8" compute as the file says (a QDQ file runs in int8).
    `pixels=(mean, std)`: the callable takes uint8 (N, H, W, C) pixels for the file's normalised float
    NCHW input; OpenVINO converts them inside the graph (its pre-processing API), onnxruntime in NumPy."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of: {', '.join(PRECISIONS)}")
    if engine in PHONE_RUNTIMES:  # a .tflite / .pte file (its own precision); normalised in NumPy
        from mobilenet.deploy.mobile import RUNNERS

        net = RUNNERS[PHONE_RUNTIMES[engine]](path, inference_threads(threads))
        if pixels is None:
            return net
        to_nchw = pixels_to_nchw(*pixels)
        return lambda x: net(to_nchw(x))
    if engine == "onnxruntime":
        if precision == "bf16":
            raise ValueError("onnxruntime has no bf16 CPU path; use --engine openvino for bf16")
        session = onnxruntime_session(path, threads=threads)
        name = session.get_inputs()[0].name
        to_float = pixels_to_nchw(*pixels) if pixels is not None else None

        def run_ort(x: np.ndarray) -> np.ndarray:
            return session.run(None, {name: to_float(x) if to_float is not None else x})[0]

        return run_ort
    if engine == "openvino":
        ov = _require("openvino", "openvino")
        core = ov.Core()
        config: dict[str, str] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = str(threads)
        if precision == "bf16":
            if not cpu_has_bf16():
                raise ValueError("this CPU has neither AVX512-BF16 nor AMX: bf16 would be emulated")
            config["INFERENCE_PRECISION_HINT"] = "bf16"
        else:
            config["INFERENCE_PRECISION_HINT"] = "f32"
        try:
            model = core.read_model(str(path))
            if pixels is not None:
                model = _uint8_nhwc(ov, model, *pixels)
            compiled = core.compile_model(model, "CPU", config)
        except Exception as err:
            raise ValueError(f"OpenVINO cannot load {path}: {err}") from None
        request = compiled.create_infer_request()

        def run_ov(x: np.ndarray) -> np.ndarray:
            request.infer({0: x})
            return request.get_output_tensor(0).data.copy()

        return run_ov
    raise ValueError(f"unknown engine {engine!r}; expected one of: {', '.join(ENGINES)}")


def pixels_to_nchw(mean: tuple[float, ...], std: tuple[float, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 (N, H, W, C) pixels -> the normalised float32 (N, C, H, W) input, in NumPy (for engines
    without a pre-processing graph of their own)."""
    m, s = (np.asarray(v, np.float32)[:, None, None] * 255 for v in (mean, std))

    def convert(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((x.transpose(0, 3, 1, 2).astype(np.float32) - m) / s)

    return convert


def _uint8_nhwc(ov: Any, model: Any, mean: tuple[float, ...], std: tuple[float, ...]) -> Any:
    """`model` taking uint8 NHWC pixels: cast, normalisation and layout change added to its graph."""
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    steps = ppp.input().preprocess().convert_element_type(ov.Type.f32)
    steps.mean([m * 255 for m in mean]).scale([s * 255 for s in std])
    return ppp.build()


@dataclass
class EngineChoice:
    engine: str
    precision: str
    path: Path
    timings: dict[tuple[str, str], Timing]
    top1: dict[tuple[str, str], float]
    reference_top1: float
    tolerance: float

    def text(self) -> str:
        lines = ["engine choice (batch 1 latency on this machine, top-1 on held-out data):"]
        for key, t in sorted(self.timings.items(), key=lambda kv: kv[1].median_ms):
            drop = (self.reference_top1 - self.top1[key]) * 100
            ok = "ok" if drop <= self.tolerance * 100 else f"rejected: {drop:.2f} points below the reference"
            mark = "->" if key == (self.engine, self.precision) else "  "
            lines.append(f"{mark} {key[0]:<12} {key[1]:<5} {t.median_ms:7.3f} ms  top-1 {self.top1[key]:.2%}  {ok}")
        t = self.timings[(self.engine, self.precision)]
        lines.append(
            f"picked {self.engine} {self.precision} ({self.path.name}): the fastest at {t.median_ms:.3f} ms "
            f"whose accuracy is within {self.tolerance * 100:.0f} point of fp32"
        )
        return "\n".join(lines)


def choose(report: QuantizeReport, *, threads: int = 2, tolerance: float = 0.01) -> EngineChoice:
    """Time every measured (engine, precision) at batch 1 and pick the fastest within `tolerance` of fp32."""
    if not report.accuracy:
        raise ValueError("no engine is installed: pip install 'mobilenet[deploy]' (and optionally [openvino])")
    reference = report.reference_top1()
    x = np.random.default_rng(0).standard_normal((1, 3, report.resolution, report.resolution), dtype=np.float32)
    keys = [(a.engine, a.precision) for a in report.accuracy]
    top1 = {(a.engine, a.precision): a.top1 for a in report.accuracy}
    calls = [functools.partial(report.runner(engine, precision, threads), x) for engine, precision in keys]
    # Interleaved, as `mobilenet bench` times (one second each, one after the other, took twice as long
    # and let the last candidates carry any slowdown of the machine).
    samples = time_interleaved(calls, runs=50, min_seconds=0.5)
    timings = {key: Timing.from_samples(times) for key, times in zip(keys, samples, strict=True)}
    ok = [k for k in timings if reference - top1[k] <= tolerance]
    best = min(ok, key=lambda k: timings[k].median_ms)
    return EngineChoice(best[0], best[1], report.file(best[1], best[0]), timings, top1, reference, tolerance)
