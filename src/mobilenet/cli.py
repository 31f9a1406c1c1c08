"""Command line: parse arguments into configs and call one library function per subcommand."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from mobilenet.config import ARCHS, ModelConfig


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("arch", help=f"one of: {', '.join(ARCHS)}")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier alpha (default 1.0)")
    p.add_argument("--resolution", type=int, default=224, help="input side in pixels (default 224)")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier outputs (default 1000)")
    p.add_argument("--cifar", action="store_true", help="CIFAR variant: stride-1 stem and first strided block")


def _model_config(args: argparse.Namespace) -> ModelConfig:
    return ModelConfig(arch=args.arch, width=args.width, num_classes=args.num_classes, cifar=args.cifar)


def _summary(args: argparse.Namespace) -> str:
    from mobilenet.report import summary_data, summary_text

    config = _model_config(args)
    if args.json:
        return json.dumps(summary_data(config, args.resolution), indent=2)
    return summary_text(config, args.resolution)


def _cost(args: argparse.Namespace) -> str:
    from mobilenet.costs import compare_separable
    from mobilenet.report import cost_data, cost_text

    c = compare_separable(args.kernel, args.in_channels, args.out_channels, args.feature_size)
    return json.dumps(cost_data(c), indent=2) if args.json else cost_text(c)


def _tables(args: argparse.Namespace) -> str:
    from mobilenet.report import tables_text

    return tables_text()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mobilenet", description="MobileNet V1/V2 as the papers define them.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("summary", help="per-layer table: output shape, params, multiply-adds, activations")
    _add_model_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_summary)

    p = sub.add_parser("cost", help="standard vs depthwise separable cost of one layer")
    p.add_argument("--kernel", type=int, default=3, help="D_K (default 3)")
    p.add_argument("--in-channels", type=int, required=True, help="M")
    p.add_argument("--out-channels", type=int, required=True, help="N")
    p.add_argument("--feature-size", type=int, required=True, help="D_F, the output feature map side")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_cost)

    p = sub.add_parser("tables", help="our counts beside the published V1 and V2 tables")
    p.set_defaults(run=_tables)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        output = args.run(args)
    except ValueError as err:
        # Bad input is the user's to fix: one line naming the value, exit 2 like argparse, no traceback.
        print(f"mobilenet {args.command}: error: {err}", file=sys.stderr)
        return 2
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
