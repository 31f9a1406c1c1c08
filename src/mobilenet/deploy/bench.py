"""`mobilenet bench`: our inference paths and the peers', timed in one run on the same inputs.

Every path is a callable on one (N, 3, H, W) float batch. Each is warmed up, then timed (median, p90);
PyTorch paths also report their peak activation memory from the allocator (`measure.peak_allocated`,
plus the input batch the caller holds). Peers are optional: a missing one is skipped with a note.
"""

from __future__ import annotations

import functools
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mobilenet.checkpoint import Checkpoint, Expected
from mobilenet.config import ModelConfig
from mobilenet.deploy.measure import Timing, engine_memory, peak_allocated, time_fn
from mobilenet.models import MobileNet, build_model
from mobilenet.specs import check_resolution


def _identity(x: Tensor) -> object:
    return x


def to_numpy(x: Tensor) -> object:
    return np.ascontiguousarray(x.numpy(), dtype=np.float32)


@dataclass(frozen=True)
class BenchPath:
    name: str
    ours: bool
    run: Callable[[Any], object]
    torch_memory: bool = True  # the allocator sees its tensors (PyTorch paths)
    prepare: Callable[[Tensor], object] = _identity  # converts the shared input once, outside the timing
    engine: tuple[Path, str, str] | None = None  # (file, engine, precision) of an exported-model path


@dataclass(frozen=True)
class BenchResult:
    name: str
    ours: bool
    batch: int
    timing: Timing
    peak_bytes: int | None  # activation peak incl. the input batch; None where it cannot be measured
    rss_bytes: int | None = None  # engine paths: resident memory of loading the engine and running it


@dataclass
class BenchReport:
    resolution: int
    threads: int
    results: list[BenchResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def torch_paths(model: MobileNet, splits: list[int] | None = None, *, channels_last: bool = True) -> list[BenchPath]:
    """Our PyTorch eager model and, for each t in `splits`, the memory-efficient split executor."""
    from mobilenet.deploy.split import SplitInference

    model = model.eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def eager(x: Tensor) -> Tensor:
        with torch.no_grad():
            return model(x)

    layout = "channels-last" if channels_last else "NCHW"
    paths = [BenchPath(f"mobilenet torch eager ({layout})", True, eager)]
    for t in splits or []:
        paths.append(BenchPath(f"mobilenet split t={t}", True, SplitInference(model, t)))
    return paths


def run_paths(
    paths: list[BenchPath],
    *,
    resolution: int = 224,
    batches: tuple[int, ...] = (1,),
    threads: int = 2,
    runs: int = 30,
    min_seconds: float = 1.0,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> BenchReport:
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    report = BenchReport(resolution, threads)
    g = torch.Generator().manual_seed(seed)
    for batch in batches:
        if batch < 1:
            raise ValueError(f"batch sizes must be >= 1, got {batch}")
        x = torch.randn(batch, 3, resolution, resolution, generator=g).contiguous(memory_format=torch.channels_last)
        calls = [functools.partial(path.run, path.prepare(x)) for path in paths]
        # Interleave: every path is timed in `rounds` slices taken in turn, so drift in the machine's speed
        # (other tenants, frequency) lands on all paths alike instead of on whichever ran last.
        samples: list[list[float]] = [[] for _ in paths]
        for path, call in zip(paths, calls, strict=True):
            if progress:
                progress(f"batch {batch}: warming up {path.name}")
            time_fn(call, runs=1, warmup=3)
        rounds = 5
        order = list(range(len(paths)))
        shuffle = random.Random(seed)
        for r in range(rounds):
            if progress:
                progress(f"batch {batch}: round {r + 1}/{rounds}")
            shuffle.shuffle(order)  # no path always runs right after the same neighbour
            for i in order:
                call = calls[i]
                t = time_fn(call, runs=max(1, runs // rounds), warmup=1, min_seconds=min_seconds / rounds)
                samples[i] += t.samples
        for path, call, times in zip(paths, calls, samples, strict=True):
            timing = Timing.from_samples(times, batch)
            peak = None
            if path.torch_memory:
                peak = peak_allocated(call) + x.numel() * x.element_size()
            rss = None
            if path.engine is not None:
                rss = engine_memory(*path.engine, batch=batch, resolution=resolution, threads=threads)
            report.results.append(BenchResult(path.name, path.ours, batch, timing, peak, rss))
    return report


def engine_runner(path: Path, engine: str, precision: str, threads: int) -> Callable[[Any], object]:
    from mobilenet.deploy import engines

    return engines.load(path, engine, threads=threads, precision=precision)


def random_calibration(resolution: int, images: int = 16) -> list[np.ndarray]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(images, 3, resolution, resolution, generator=g).numpy()]


def engine_paths(
    model: MobileNet,
    resolution: int,
    workdir: Path,
    notes: list[str],
    *,
    engines: tuple[str, ...] = ("onnxruntime", "openvino"),
    precisions: tuple[str, ...] = ("fp32", "int8", "bf16"),
    threads: int = 2,
    calibration: list[np.ndarray] | None = None,
) -> list[BenchPath]:
    """Our model exported to ONNX (BN folded) and int8 QDQ, on each installed engine and precision."""
    from mobilenet.deploy import engines as eng
    from mobilenet.deploy.export import export_onnx
    from mobilenet.deploy.quantize import quantize_onnx

    installed = [e for e in engines if e in eng.available()]
    for e in engines:
        if e not in installed:
            notes.append(f"{e} not installed: its paths were skipped (pip install 'mobilenet[{_extra(e)}]')")
    if not installed:
        return []
    fp32 = export_onnx(model, workdir / "mobilenet.onnx", resolution)
    int8 = None
    if "int8" in precisions:
        int8 = quantize_onnx(fp32, workdir / "mobilenet.int8.onnx", calibration or random_calibration(resolution))
    paths = []
    for engine in installed:
        for precision in precisions:
            if precision == "bf16" and (engine != "openvino" or not eng.cpu_has_bf16()):
                continue
            file = int8 if precision == "int8" else fp32
            assert file is not None
            run = engine_runner(file, engine, precision, threads)
            paths.append(
                BenchPath(f"mobilenet {engine} {precision}", True, run, False, to_numpy, (file, engine, precision))
            )
    if "bf16" in precisions and not eng.cpu_has_bf16():
        notes.append("bf16 skipped: this CPU has neither AVX512-BF16 nor AMX")
    return paths


def _extra(engine: str) -> str:
    return "openvino" if engine == "openvino" else "deploy"


@dataclass(frozen=True)
class BenchOptions:
    """What `mobilenet bench` times: the model (a checkpoint, or random weights from the model config),
    the engines and precisions of our paths, the batch sizes, and whether the peers run beside them."""

    checkpoint: str | None = None
    weights: str | None = None  # published weights by name, or converted .safetensors
    model: ModelConfig = field(default_factory=ModelConfig)
    resolution: int | None = None  # default: the checkpoint's training side, else 224
    batches: tuple[int, ...] = (1, 32)
    threads: int = 2
    runs: int = 30
    splits: tuple[int, ...] = ()
    engines: tuple[str, ...] = ("torch", "onnxruntime", "openvino")
    precisions: tuple[str, ...] = ("fp32", "int8", "bf16")
    peers: bool = True

    def __post_init__(self) -> None:
        if self.runs < 1:
            raise ValueError(f"runs must be >= 1, got {self.runs}")
        if self.resolution is not None and self.resolution < 1:
            raise ValueError(f"resolution must be >= 1, got {self.resolution}")


def _bench_model(options: BenchOptions, expect: Expected | None) -> tuple[MobileNet, int]:
    """The checkpoint's model (and its training resolution), or a randomly initialised one."""
    if options.checkpoint:
        ckpt = Checkpoint.load(options.checkpoint)
        if expect is not None:
            expect.check(ckpt.model_config)
        return ckpt.build_model(), options.resolution or ckpt.resolution
    if options.weights:
        from mobilenet.weights import load_pretrained

        model, meta = load_pretrained(options.weights)
        if expect is not None:
            expect.check(model.config)
        return model, options.resolution or int(meta.get("resolution", 224))
    return build_model(options.model).eval(), options.resolution or 224


def bench(
    options: BenchOptions, *, expect: Expected | None = None, progress: Callable[[str], None] | None = None
) -> BenchReport:
    """Build every requested path (ours, then the peers') and time them all, interleaved, in one run."""
    model, resolution = _bench_model(options, expect)
    check_resolution(model.spec, resolution)
    config = model.config
    notes: list[str] = []
    paths = torch_paths(model, list(options.splits)) if "torch" in options.engines else []
    peer_ok = config.arch == "mobilenet_v2" and config.block == "inverted" and not config.cifar
    from mobilenet.deploy.bench_peers import peer_engine_paths, torchvision_mobile_paths, torchvision_path

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        deploy = tuple(e for e in options.engines if e in ("onnxruntime", "openvino"))
        if deploy:
            paths += engine_paths(
                model,
                resolution,
                workdir,
                notes,
                engines=deploy,
                precisions=options.precisions,
                threads=options.threads,
            )
        mobile = tuple(e for e in options.engines if e in ("litert", "executorch"))
        if mobile:
            from mobilenet.deploy.bench_mobile import mobile_paths
            from mobilenet.deploy.export import fold_bn

            paths += mobile_paths(
                fold_bn(model),
                "mobilenet",
                True,
                resolution,
                workdir,
                notes,
                engines=mobile,
                precisions=options.precisions,
                threads=options.threads,
            )
        if options.peers and peer_ok:
            peer = torchvision_path(config.num_classes, config.width, notes)
            paths += [peer] if peer is not None else []
            if deploy:  # the peers through exactly the engines ours were asked for
                paths += peer_engine_paths(
                    config.num_classes,
                    config.width,
                    resolution,
                    workdir,
                    notes,
                    engines=deploy,
                    precisions=options.precisions,
                    threads=options.threads,
                )
            if mobile:
                paths += torchvision_mobile_paths(
                    config.num_classes,
                    config.width,
                    resolution,
                    workdir,
                    notes,
                    engines=mobile,
                    precisions=options.precisions,
                    threads=options.threads,
                )
        elif options.peers:
            notes.append("peers skipped: torchvision has no model matching this architecture")
        report = run_paths(
            paths,
            resolution=resolution,
            batches=options.batches,
            threads=options.threads,
            runs=options.runs,
            progress=progress,
        )
    report.notes += notes
    return report
