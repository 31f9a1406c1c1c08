"""`weights list|get`: the published files by name; `convert`: a peer's layout to ours, or ours back."""

from __future__ import annotations

import argparse
from pathlib import Path

PEERS = ("torchvision", "timm", "keras", "slim")


def convert(args: argparse.Namespace) -> str:
    from mobilenet import weights
    from mobilenet.files import checkpoint_file

    if (args.source is None) == (args.to is None):
        both = "not both" if args.source else "one of them"
        raise ValueError(f"give --from SOURCE (peer weights -> ours) or --to TARGET (ours -> a peer's layout), {both}")
    src = Path(args.src)
    if args.output and Path(args.output).resolve() in {src.resolve(), checkpoint_file(src).resolve()}:
        raise ValueError(f"-o {args.output} is the file being converted; write the result to another file")
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


def weights_list(args: argparse.Namespace) -> str:
    from mobilenet.weights.hub import list_text

    return list_text(args.source, args.arch)


def weights_get(args: argparse.Namespace) -> str:
    from mobilenet.weights.hub import get
    from mobilenet.weights.registry import lookup

    lines = []
    for name in args.names:
        entry = lookup(name)
        path = get(name, progress=not args.quiet)
        top1 = f", published top-1 {entry.top1}%" if entry.top1 is not None else ", no classifier (for fine-tuning)"
        lines.append(f"{entry.name}: {path}{top1}")
    return "\n".join(lines)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("weights", help="the peers' published ImageNet weights: list them, download by name")
    wsub = w.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = wsub.add_parser("list", help="every published file: name, arch, width, resolution, top-1, cached")
    p.add_argument("--source", choices=PEERS, help="only this peer's files")
    p.add_argument("--arch", choices=("mobilenet_v1", "mobilenet_v2"), help="only this architecture")
    p.set_defaults(run=weights_list)
    p = wsub.add_parser("get", help="download, verify, convert and cache weights by name; prints the file")
    p.add_argument("names", nargs="+", metavar="NAME", help="registry names or short names such as mobilenet_v2")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=weights_get)

    p = sub.add_parser("convert", help="pretrained weights from torchvision/timm/Keras/TF-Slim, or back to them")
    p.add_argument(
        "src",
        help="weights file: .pth/.pt/.bin, .safetensors, Keras .h5/.weights.h5/.keras, Slim .npz or a TF "
        "checkpoint; with --to also a registry name (`mobilenet weights list`)",
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
