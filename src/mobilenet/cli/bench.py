"""`bench`: parse, time our paths and the peers' (or the photo-to-label pipelines) in one run, print."""

from __future__ import annotations

import argparse
import json
import sys

from mobilenet.config import ARCHS
from mobilenet.cores import inference_threads

REFERENCE_DEFAULT = "torchvision -> onnxruntime fp32"


def bench(args: argparse.Namespace) -> str | tuple[str, int]:
    from mobilenet.checkpoint import Expected
    from mobilenet.config import ModelConfig
    from mobilenet.deploy.bench import BenchOptions
    from mobilenet.deploy.bench import bench as run_bench
    from mobilenet.deploy.bench_report import report_data, report_text

    expect = Expected(args.arch, args.width, args.num_classes) if args.checkpoint or args.weights else Expected()
    model = ModelConfig(
        arch=args.arch or "mobilenet_v2",
        width=1.0 if args.width is None else args.width,
        num_classes=1000 if args.num_classes is None else args.num_classes,
        cifar=args.cifar,
    )
    if args.photos:
        from mobilenet.deploy.bench_photos import PhotoBenchOptions, bench_photos

        if args.json:
            raise ValueError("--json is for the network benchmark; --photos prints a table")

        latency, web, camera = args.photo_counts
        if min(args.photo_counts) < 0 or not any(args.photo_counts):
            raise ValueError(f"--photo-counts must be >= 0 and not all 0, got {args.photo_counts}")
        photo_options = PhotoBenchOptions(
            threads=inference_threads(args.threads),
            latency=latency,
            folder_web=web,
            folder_camera=camera,
            checkpoint=args.checkpoint,
            precisions=photo_precisions(args.precision),
        )
        return bench_photos(photo_options, progress=lambda m: print(f"timing {m}", file=sys.stderr))
    if args.weights and args.checkpoint:
        raise ValueError("give --checkpoint or --weights, not both")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads} (leave it out for 2, or the cores if fewer)")
    options = BenchOptions(
        checkpoint=args.checkpoint,
        weights=args.weights,
        model=model,
        resolution=args.resolution,
        batches=tuple(args.batch),
        threads=inference_threads(args.threads),
        runs=args.runs,
        seconds=args.seconds,
        splits=tuple(args.split or ()),
        engines=tuple(args.engine),
        precisions=tuple(args.precision),
        peers=args.peers,
    )
    report = run_bench(options, expect=expect, progress=lambda m: print(f"timing {m}", file=sys.stderr))
    text = json.dumps(report_data(report), indent=2) if args.json else report_text(report, args.reference)
    names = {r.name for r in report.results}
    if args.reference != REFERENCE_DEFAULT and args.reference not in names:  # known once the paths ran
        print(
            f"mobilenet bench: error: --reference {args.reference!r} names no timed path, so the ratios are "
            f"against another; the paths: {', '.join(sorted(names))}",
            file=sys.stderr,
        )
        return text, 1
    return text


def photo_precisions(given: list[str]) -> tuple[str, ...]:
    """`--precision` for `--photos`: fp32 unless asked (the default list names all three), int8 too when
    asked; bf16 has no peer pipeline to compare with."""
    if given == PRECISION_DEFAULT:
        return ("fp32",)
    if "bf16" in given:
        raise ValueError("--photos times fp32 and int8 pipelines (bf16 has no peer pipeline): give fp32, int8 or both")
    return tuple(p for p in ("fp32", "int8") if p in given)


PRECISION_DEFAULT = ["fp32", "int8", "bf16"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="latency, images/s and peak memory of our paths vs the peers, same run")
    p.add_argument("--checkpoint", help="a .pt file or run directory (default: random weights from the flags)")
    p.add_argument("--weights", metavar="NAME_OR_FILE", help="or published weights by name, or converted .safetensors")
    p.add_argument("--arch", choices=ARCHS, help="architecture (default mobilenet_v2; with --checkpoint: a check)")
    p.add_argument("--width", type=float, help="width multiplier (default 1.0; with --checkpoint: a check)")
    p.add_argument("--num-classes", type=int, help="classifier outputs (default 1000; with --checkpoint: a check)")
    p.add_argument("--cifar", action="store_true", help="CIFAR variant of the random-weight model")
    p.add_argument("--resolution", type=int, help="default 224, or the checkpoint's training resolution")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 32], help="batch sizes (default 1 32)")
    p.add_argument(
        "--threads", type=int, default=None, help="inference threads (default 2, or the cores available if fewer)"
    )
    p.add_argument("--runs", type=int, default=30, help="timed runs per path, at least (default 30)")
    p.add_argument(
        "--seconds", type=float, default=1.0, help="timed seconds per path and batch size, at least (default 1)"
    )
    p.add_argument("--split", type=int, nargs="+", metavar="T", help="also time split inference with these T")
    p.add_argument(
        "--engine",
        nargs="+",
        default=["torch", "onnxruntime", "openvino"],
        choices=("torch", "onnxruntime", "openvino", "litert", "executorch"),
        help="our paths to time (default: torch onnxruntime openvino; the phone runtimes litert and executorch "
        "are opt-in: each export takes tens of seconds)",
    )
    p.add_argument(
        "--precision",
        nargs="+",
        default=PRECISION_DEFAULT,
        choices=("fp32", "int8", "bf16"),
        help="engine precisions (bf16 only on OpenVINO, where the CPU has AVX512-BF16 or AMX); with --photos: "
        "fp32 (default) and/or int8, every pipeline's network at that precision",
    )
    p.add_argument(
        "--reference",
        default=REFERENCE_DEFAULT,
        help=f"the path every ratio is taken against (default: {REFERENCE_DEFAULT})",
    )
    p.add_argument("--no-peers", dest="peers", action="store_false", help="skip the peer paths")
    p.add_argument(
        "--photos",
        action="store_true",
        help="instead: photo file to label, our pipeline vs torchvision's documented one (and Keras' with LiteRT "
        "where TensorFlow is installed) on camera and web-size "
        "JPEGs made from scikit-learn's sample photos; with --checkpoint RUN, a digits run, also reduced vs "
        "full decoding accuracy",
    )
    p.add_argument(
        "--photo-counts",
        type=int,
        nargs=3,
        default=[20, 500, 500],
        metavar=("LATENCY", "WEB", "CAMERA"),
        help="with --photos: photos per size for latency, web-size and camera-size folder sizes (default 20 500 500)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=bench)
