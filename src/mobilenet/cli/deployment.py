"""`predict`, `export`, `quantize`: parse, call one deployment function, print its report."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from mobilenet.config import ARCHS
from mobilenet.cores import inference_threads

if TYPE_CHECKING:
    from mobilenet.checkpoint import Expected


def _expected(args: argparse.Namespace) -> Expected:
    from mobilenet.checkpoint import Expected

    return Expected(args.arch, args.width, args.num_classes)


def _add_expected(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", choices=ARCHS, help="fail unless the checkpoint is this architecture")
    p.add_argument("--width", type=float, help="fail unless the checkpoint has this width")
    p.add_argument("--num-classes", type=int, help="fail unless the checkpoint has this many classes")


def predict(args: argparse.Namespace) -> tuple[str, int]:
    from mobilenet.deploy.predict import predict as run_predict

    if args.resolution is not None and args.resolution < 1:
        raise ValueError(f"--resolution must be >= 1, got {args.resolution} (leave it out for the model's own side)")
    source = args.checkpoint or args.weights
    if not source:
        raise ValueError("give --checkpoint RUN_OR_CKPT or --weights NAME_OR_FILE")
    predictions = run_predict(
        source,
        args.images,
        args.top_k,
        splits=args.split,
        resolution=args.resolution,
        full_decode=args.full_decode,
        engine=args.engine,
    )
    failed = [p for p in predictions if p.error]
    for p in failed:
        print(f"mobilenet predict: error: {p.error}", file=sys.stderr)
    if args.json:
        return json.dumps([p.__dict__ for p in predictions], indent=2), 1 if failed else 0
    lines = []
    for p in predictions:
        if not p.error:
            ranked = ", ".join(f"{label} {prob:.1%}" for label, prob in zip(p.labels, p.probabilities, strict=True))
            lines.append(f"{p.path}: {ranked}")
    return "\n".join(lines), 1 if failed else 0


def export(args: argparse.Namespace) -> str:
    from mobilenet.deploy.predict import is_weights
    from mobilenet.deploy.verify import export_checkpoint

    if args.weights and args.checkpoint:
        raise ValueError("give a checkpoint or --weights, not both")
    if args.weights or is_weights(args.checkpoint or ""):
        from mobilenet.deploy.mobile_verify import export_weights_mobile

        if args.int8:
            raise ValueError(
                "converted weights export to fp32 tflite or executorch; for int8, fine-tune them "
                "(`mobilenet train --init`) and export the run, which brings calibration and held-out images"
            )
        if args.format not in ("tflite", "executorch"):
            raise ValueError(
                f"converted weights export to tflite or executorch here; for {args.format}, "
                "`mobilenet quantize --weights W --data-dir DIR` writes model.onnx (fp32) and model.int8.onnx, "
                "checked on your images, or fine-tune them (`mobilenet train --init`) and export the run"
            )
        weights = export_weights_mobile(
            args.weights or args.checkpoint,
            args.output,
            fmt=args.format,
            uint8_nhwc=args.uint8_nhwc,
            resolution=args.resolution,
        )
        return weights.text()
    if not args.checkpoint:
        raise ValueError("give a checkpoint (RUN_OR_CKPT) or --weights NAME_OR_FILE")
    if args.calibration is not None and not args.int8:
        raise ValueError("--calibration sets the int8 calibration images; it needs --int8")
    result = export_checkpoint(
        args.checkpoint,
        args.output,
        fmt=args.format,
        resolution=args.resolution,
        expect=_expected(args),
        int8=args.int8,
        uint8_nhwc=args.uint8_nhwc,
        calibration=256 if args.calibration is None else args.calibration,
    )
    return result.text()


def quantize(args: argparse.Namespace) -> str:
    from mobilenet.config import DataConfig
    from mobilenet.deploy.quantize import quantize_checkpoint, quantize_weights

    if args.weights:
        if args.checkpoint or not args.data_dir or args.qat_epochs or (args.dataset or "imagefolder") != "imagefolder":
            raise ValueError(
                "--weights quantizes on an image folder: give --data-dir DIR (DIR/train to calibrate, DIR/val "
                "to check), no checkpoint and no --qat-epochs"
            )
        report = quantize_weights(
            args.weights,
            args.data_dir,
            args.output,
            calibration=args.calibration,
            threads=inference_threads(args.threads),
            engine=args.engine,
        )
        return report.text()
    if not args.checkpoint:
        raise ValueError("give a checkpoint (RUN_OR_CKPT) or --weights NAME_OR_FILE with --data-dir")
    data = DataConfig(args.dataset, args.data_dir) if args.dataset else None
    report = quantize_checkpoint(
        args.checkpoint,
        args.output,
        data=data,
        calibration=args.calibration,
        qat_epochs=args.qat_epochs,
        threads=inference_threads(args.threads),
        engine=args.engine,
        expect=_expected(args),
        mobile=tuple(args.mobile or ()),
    )
    return report.text()


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="top-k labels with probabilities for image files")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any format Pillow reads)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", help="a .pt file or a run directory")
    which.add_argument(
        "--weights",
        metavar="NAME_OR_FILE",
        help="published weights by name (`mobilenet weights list`; downloaded once) or converted .safetensors",
    )
    p.add_argument("--resolution", type=int, help="input side (default: the training side, or the weights' own)")
    p.add_argument("--top-k", type=int, default=5, help="labels per image (default 5)")
    p.add_argument(
        "--full-decode",
        action="store_true",
        help="decode every JPEG pixel before resizing (default: large JPEGs are decoded at reduced size, faster)",
    )
    p.add_argument(
        "--engine",
        default="auto",
        choices=("auto", "openvino", "torch"),
        help="inference engine (auto: the engine and file `mobilenet quantize` picked for the run, else OpenVINO "
        "where installed and its export is cached or there are 32+ images, else PyTorch)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--split",
        type=int,
        metavar="T",
        help="memory-efficient inference: compute each expanded tensor in T channel groups",
    )
    p.set_defaults(run=predict)

    p = sub.add_parser(
        "export", help="ONNX, torch.export, LiteRT (.tflite) or ExecuTorch (.pte), verified in its own runtime"
    )
    p.add_argument(
        "checkpoint", nargs="?", help="a .pt file or a run directory (tflite/executorch: also a .safetensors)"
    )
    p.add_argument(
        "--weights",
        metavar="NAME_OR_FILE",
        help="instead of a checkpoint (tflite/executorch, fp32): published weights by name or converted .safetensors",
    )
    p.add_argument(
        "--format",
        default="onnx",
        choices=("onnx", "torch-export", "tflite", "executorch"),
        help="file type (default onnx); tflite and executorch are batch 1, for phones",
    )
    p.add_argument(
        "-o",
        "--output",
        help="output file, or a directory for the default name (default: model.<suffix> beside the checkpoint)",
    )
    p.add_argument("--resolution", type=int, help="input side (default: the checkpoint's training resolution)")
    p.add_argument(
        "--int8",
        action="store_true",
        help="tflite/executorch: full-integer int8 (PT2E), calibrated on training images, within 1 point of fp32",
    )
    p.add_argument(
        "--uint8-nhwc",
        action="store_true",
        help="tflite/executorch: take uint8 (N, H, W, 3) camera pixels; normalisation folded into the stem",
    )
    p.add_argument("--calibration", type=int, help="with --int8: training images (default 256)")
    _add_expected(p)
    p.set_defaults(run=export)

    p = sub.add_parser("quantize", help="int8 static quantization (QDQ ONNX), accuracy and size change")
    p.add_argument("checkpoint", nargs="?", help="a .pt file or a run directory")
    p.add_argument(
        "--weights",
        metavar="NAME_OR_FILE",
        help="instead of a checkpoint: published weights by name or converted .safetensors, with --data-dir",
    )
    p.add_argument(
        "--mobile",
        nargs="+",
        choices=("litert", "executorch"),
        help="also export fp32 and int8 files for these phone runtimes, check them on the held-out images and "
        "include them in the engine choice (each export takes tens of seconds)",
    )
    p.add_argument("-o", "--output", help="output directory (default: deploy/ beside the checkpoint)")
    p.add_argument("--calibration", type=int, default=256, help="training images to calibrate on (default 256)")
    p.add_argument(
        "--qat-epochs",
        type=int,
        default=0,
        help="quantization-aware fine-tuning epochs before calibration (default 0: plain PTQ)",
    )
    p.add_argument("--dataset", help="default: the dataset the checkpoint was trained on")
    p.add_argument("--data-dir", help="the data set's folder or archive (default: the checkpoint's)")
    p.add_argument(
        "--threads", type=int, default=None, help="inference threads (default 2, or the cores available if fewer)"
    )
    p.add_argument(
        "--engine",
        default="auto",
        choices=("auto", "none"),
        help="auto: time every installed engine and precision, pick the fastest accurate one",
    )
    _add_expected(p)
    p.set_defaults(run=quantize)
