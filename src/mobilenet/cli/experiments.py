"""`experiment relu-manifold | ablation | tradeoff`: the papers' experiments, one library call each."""

from __future__ import annotations

import argparse

from mobilenet.config import ARCHS, DATASETS
from mobilenet.experiments.groups import GROUPS


def experiment(args: argparse.Namespace) -> str:
    if args.name == "ablation":
        from mobilenet.experiments.ablation import run_ablation

        return run_ablation(
            groups=args.groups,
            dataset=args.dataset,
            data_dir=args.data_dir,
            epochs=args.epochs,
            seeds=args.seeds,
            width=args.width,
            resolution=args.resolution,
            train_images=args.train_images,
            out=args.out,
        )
    if args.name == "tradeoff":
        from mobilenet.experiments.tradeoff import run_tradeoff

        return run_tradeoff(
            dataset=args.dataset,
            data_dir=args.data_dir,
            epochs=args.epochs,
            seeds=args.seeds,
            archs=args.archs,
            widths=args.widths,
            conv_widths=args.conv_widths,
            resolutions=args.resolutions,
            resolution_width=args.resolution_width,
            resolution=args.resolution,
            train_images=args.train_images,
            out=args.out,
        )
    from mobilenet.experiments.manifold import run_relu_manifold

    return run_relu_manifold(args.out, tuple(args.dims), trials=args.trials, seed=args.seed)


def _add_sweep_args(p: argparse.ArgumentParser, out: str, seeds: list[int], epochs: int = 10) -> None:
    p.add_argument("--dataset", default="digits", help=" | ".join(DATASETS) + " (default digits)")
    p.add_argument("--data-dir", help="CIFAR archive/folder (downloaded if absent) or ImageFolder root")
    p.add_argument(
        "--resolution", type=int, default=0, help="input side of the runs (default: the dataset's, 32 for digits/CIFAR)"
    )
    p.add_argument("--epochs", type=int, default=epochs, help=f"epochs per run (default {epochs})")
    p.add_argument("--seeds", type=int, nargs="+", default=seeds, help=f"seeds per variant (default {seeds})")
    p.add_argument(
        "--train-images",
        type=int,
        help="train on a fixed stratified subset of N training images, 0: all (default: 300 on digits, where the "
        "whole set saturates every variant near 99%%; all elsewhere)",
    )
    p.add_argument("--out", default=out, help=f"results and cached runs (default {out}); rerun to resume")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="rerun a paper experiment: relu-manifold, ablation, tradeoff")
    kinds = p.add_subparsers(dest="name", required=True, metavar="EXPERIMENT")
    q = kinds.add_parser("relu-manifold", help="V2 Fig. 1: a spiral through ReLU in n dimensions and back")
    q.add_argument("--out", default="runs/experiments", help="directory for the table and figure")
    q.add_argument("--dims", type=int, nargs="+", default=[2, 3, 5, 15, 30], help="embedding dimensions n")
    q.add_argument("--trials", type=int, default=20, help="random matrices T per n (mean and spread)")
    q.add_argument("--seed", type=int, default=0, help="seed of the random matrices")
    q = kinds.add_parser("ablation", help="V2 Fig. 6 and block comparisons, trained with one recipe")
    q.add_argument("--groups", nargs="+", default=list(GROUPS), choices=list(GROUPS), help="default: all four")
    q.add_argument("--width", type=float, help="baseline width (default: the dataset's recipe, 0.5 on digits)")
    _add_sweep_args(q, "runs/experiments/ablation", seeds=[0, 1, 2, 3])
    q = kinds.add_parser("tradeoff", help="accuracy vs multiply-adds: widths, resolutions, V1/V2/full conv")
    q.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS, help="architectures (default: all)")
    q.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5, 1.0], help="V1/V2 widths")
    q.add_argument(
        "--conv-widths",
        type=float,
        nargs="+",
        default=[0.25, 0.5],
        help="full-conv widths (default 0.25 0.5: width 1 costs 1.5G multiply-adds at 32 px)",
    )
    q.add_argument(
        "--resolutions",
        type=int,
        nargs="+",
        help="input sides for the resolution sweep (default 16 24 32; 128-224 for imagefolder)",
    )
    q.add_argument("--resolution-width", type=float, default=0.5, help="width of the resolution sweep (0.5)")
    _add_sweep_args(q, "runs/experiments/tradeoff", seeds=[0, 1, 2, 3])
    p.set_defaults(run=experiment)
