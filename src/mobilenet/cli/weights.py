"""`convert`: pretrained weights from a peer's layout to ours, or ours back to a peer's."""

from __future__ import annotations

import argparse

PEERS = ("torchvision", "timm", "keras", "slim")


def convert(args: argparse.Namespace) -> str:
    from mobilenet import weights

    if (args.source is None) == (args.to is None):
        raise ValueError("give --from SOURCE (peer weights -> ours) or --to TARGET (ours -> a peer's layout)")
    if args.to:
        lines = weights.convert_to_peer(args.src, args.to, args.output, force=args.force)
    else:
        lines = weights.convert_from_peer(
            args.src,
            args.source,
            args.output,
            arch=args.arch,
            width=args.width,
            background=args.background,
            padding=args.padding,
            force=args.force,
        )
    return "\n".join(lines)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="pretrained weights from torchvision/timm/Keras/TF-Slim, or back to them")
    p.add_argument(
        "src",
        help="weights file: .pth/.pt/.bin, .safetensors, Keras .h5/.weights.h5/.keras, Slim .npz or a TF checkpoint",
    )
    p.add_argument("--from", dest="source", choices=PEERS, help="the layout SRC is in; writes our .safetensors")
    p.add_argument(
        "--to", choices=PEERS, help="write our SRC (.safetensors or a checkpoint) in this peer's layout instead"
    )
    p.add_argument(
        "--arch",
        choices=("mobilenet_v1", "mobilenet_v2"),
        help="the architecture of SRC (default: inferred from its tensor shapes)",
    )
    p.add_argument("--width", type=float, help="the width SRC was trained at, alpha (default: inferred)")
    p.add_argument(
        "--background",
        default="drop",
        choices=("drop", "keep"),
        help="TF-Slim's 1001-class heads: drop class 0 (background, default) or keep it",
    )
    p.add_argument(
        "--padding",
        choices=("symmetric", "tf-same", "keras-v1"),
        help="default: the source's own (tf-same for Keras/Slim), which reproduces its outputs",
    )
    p.add_argument("-o", "--output", help="output file (default: SRC with the new suffix)")
    p.add_argument("--force", action="store_true", help="replace the output file if it exists")
    p.set_defaults(run=convert)
