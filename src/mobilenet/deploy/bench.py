"""`mobilenet bench`: our inference paths and the peers', built from the options and timed in one run on
the same inputs (`bench_paths.run_paths`). Peers are optional: a missing one is skipped with a note.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mobilenet.checkpoint import Checkpoint, Expected
from mobilenet.config import ModelConfig
from mobilenet.deploy.bench_paths import BenchReport, engine_paths, run_paths, torch_paths
from mobilenet.models import MobileNet, build_model
from mobilenet.specs import check_resolution


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
    seconds: float = 1.0  # timed seconds per path and batch size, at least (with at least `runs` calls)
    splits: tuple[int, ...] = ()
    engines: tuple[str, ...] = ("torch", "onnxruntime", "openvino")
    precisions: tuple[str, ...] = ("fp32", "int8", "bf16")
    peers: bool = True

    def __post_init__(self) -> None:
        if self.runs < 1:
            raise ValueError(f"runs must be >= 1, got {self.runs}")
        if not 0 <= self.seconds < float("inf"):
            raise ValueError(f"seconds must be a finite number >= 0, got {self.seconds}")
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
            from mobilenet.layers import fold_bn

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
            if "litert" in mobile:  # Keras users' path to a phone: TensorFlow's own converter
                from mobilenet.deploy.bench_mobile import keras_tflite_paths

                paths += keras_tflite_paths(
                    config.num_classes,
                    config.width,
                    resolution,
                    workdir,
                    notes,
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
            min_seconds=options.seconds,
            progress=progress,
        )
    report.notes += notes
    return report
