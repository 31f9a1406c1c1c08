"""`summary`, `cost`, `tables`, `memory`: the analytic cost model. These commands never import torch."""

from __future__ import annotations

import argparse
import json

from mobilenet.config import ARCHS, ModelConfig


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("arch", help=f"one of: {', '.join(ARCHS)}")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier alpha (default 1.0)")
    p.add_argument("--resolution", type=int, default=224, help="input side in pixels (default 224)")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier outputs (default 1000)")
    p.add_argument("--cifar", action="store_true", help="CIFAR variant: stride-1 stem and first strided block")


def _model_config(args: argparse.Namespace) -> ModelConfig:
    return ModelConfig(arch=args.arch, width=args.width, num_classes=args.num_classes, cifar=args.cifar)


def summary(args: argparse.Namespace) -> str:
    from mobilenet.report import summary_data, summary_text

    config = _model_config(args)
    if args.json:
        return json.dumps(summary_data(config, args.resolution), indent=2)
    return summary_text(config, args.resolution)


def cost(args: argparse.Namespace) -> str:
    from mobilenet.costs import compare_separable
    from mobilenet.report import cost_data, cost_text

    c = compare_separable(args.kernel, args.in_channels, args.out_channels, args.feature_size)
    return json.dumps(cost_data(c), indent=2) if args.json else cost_text(c)


def tables(args: argparse.Namespace) -> str:
    from mobilenet.report import tables_text

    return tables_text()


def memory(args: argparse.Namespace) -> str:
    from mobilenet.memory_report import memory_data, memory_text

    config = _model_config(args)
    kwargs = {"dtype": args.dtype, "splits": args.split, "batch": args.batch, "first_layer": args.first_layer}
    if args.json:
        return json.dumps(memory_data(config, args.resolution, **kwargs), indent=2)
    return memory_text(config, args.resolution, **kwargs)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="per-layer table: output shape, params, multiply-adds, activations")
    _add_model_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=summary)

    p = sub.add_parser("cost", help="standard vs depthwise separable cost of one layer")
    p.add_argument("--kernel", type=int, default=3, help="D_K (default 3)")
    p.add_argument("--in-channels", type=int, required=True, help="M")
    p.add_argument("--out-channels", type=int, required=True, help="N")
    p.add_argument("--feature-size", type=int, required=True, help="D_F, the output feature map side")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cost)

    p = sub.add_parser("tables", help="our counts beside the published V1 and V2 tables")
    p.set_defaults(run=tables)

    p = sub.add_parser("memory", help="activation memory: V2 paper Table 3, per-op and split-inference peaks")
    _add_model_args(p)
    p.add_argument(
        "--dtype",
        default="float16",
        choices=("float32", "float16", "bfloat16", "int8"),
        help="activation type (default float16, as the paper's Table 3)",
    )
    p.add_argument("--split", type=int, metavar="T", help="also plan split inference with T groups per block")
    p.add_argument("--batch", type=int, default=1, help="images per batch (default 1)")
    p.add_argument(
        "--first-layer",
        default="split",
        choices=("materialise", "split", "stream"),
        help="Table 3 treatment of the stem's output (default split: the paper's table)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=memory)
