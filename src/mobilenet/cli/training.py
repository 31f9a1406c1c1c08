"""`train` and `eval`: parse flags into configs, call the training library, print its report."""

from __future__ import annotations

import argparse

from mobilenet.config import ARCHS, DATASETS, RECIPES


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="digits", choices=sorted(RECIPES), help="preset to start from (default digits)")
    p.add_argument("--config", help="TOML/JSON file with [model], [data], [train] tables; flags override it")
    p.add_argument("--out", help="run directory (default: a new runs/<dataset>-<arch>[-N])")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint and saved config")
    g = p.add_argument_group("model")
    g.add_argument("--arch", help=f"one of: {', '.join(ARCHS)}")
    g.add_argument("--width", type=float, help="width multiplier alpha")
    g.add_argument("--dropout", type=float, help="dropout before the classifier")
    g.add_argument("--cifar", action=argparse.BooleanOptionalAction, default=None, help="CIFAR stride variant")
    g.add_argument("--activation", help="relu6 | relu")
    g.add_argument("--bottleneck", help="linear | relu6 (V2 projection)")
    g.add_argument("--shortcut", help="bottleneck | expansion | none (V2)")
    g.add_argument("--block", help="inverted | classic (V2)")
    g.add_argument("--padding", help="symmetric (PyTorch) | tf-same (TensorFlow's stride-2 padding)")
    g.add_argument("--bn-eps", type=float, help="BatchNorm epsilon (default 1e-5; Keras/Slim weights use 1e-3)")
    g.add_argument("--num-classes", type=int, help="classifier outputs; must match the data (default: the data's)")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help=" | ".join(DATASETS))
    g.add_argument("--data-dir", help="CIFAR archive/folder (downloaded if absent) or ImageFolder root")
    g.add_argument("--resolution", type=int, help="input side (default: 32 for digits/CIFAR, 224 for folders)")
    g.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="download CIFAR when --data-dir lacks it (default: yes)",
    )
    g.add_argument("--workers", type=int, help="image decoding threads (ImageFolder)")
    g.add_argument(
        "--train-images",
        type=int,
        help="train on a fixed class-stratified subset of N training images (default: all); the test set stays whole",
    )
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, help="passes over the training data")
    g.add_argument("--batch-size", type=int, help="images per step (per process)")
    g.add_argument("--optimizer", help="sgd | rmsprop")
    g.add_argument("--lr", type=float, help="learning rate at --lr-batch; scaled linearly with --batch-size")
    g.add_argument("--lr-batch", type=int, help="the batch size --lr is given for")
    g.add_argument("--momentum", type=float, help="SGD momentum, or RMSProp's (default 0.9)")
    g.add_argument("--weight-decay", type=float, help="L2 penalty on conv and linear weights")
    g.add_argument(
        "--decay-depthwise",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="apply the weight decay to depthwise weights too (the paper recipe does not)",
    )
    g.add_argument("--rmsprop-eps", type=float, help="RMSProp epsilon, inside the square root (default 1.0)")
    g.add_argument("--schedule", help="cosine | exponential")
    g.add_argument("--lr-decay", type=float, help="per-epoch factor of the exponential schedule")
    g.add_argument("--warmup-epochs", type=float, help="linear learning-rate warm-up, in epochs")
    g.add_argument("--label-smoothing", type=float, help="cross-entropy label smoothing (0: off)")
    g.add_argument("--ema-decay", type=float, help="EMA of weights, e.g. 0.9999 (0: off)")
    g.add_argument("--precision", help="auto (default: bf16 only if timed faster here) | fp32 | bf16")
    g.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="NHWC tensors (default: yes; faster convolutions on CPU)",
    )
    g.add_argument("--seed", type=int, help="initial weights, data order, augmentation and dropout")
    g.add_argument(
        "--init",
        metavar="WEIGHTS",
        help="start from converted weights (.safetensors); new head; only --cifar may change their graph",
    )
    g.add_argument(
        "--freeze-backbone",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --init: train only the classifier (BN statistics stay frozen too)",
    )
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    g.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="also save last.pt every N steps, for long epochs; resumes exactly (one process)",
    )
    g.add_argument("--threads", type=int, help="CPU threads per process (default: the cores this process may use)")


# Flags that are not config fields: they choose where the run goes and which configs start it.
_NOT_CONFIG = ("recipe", "config", "out", "resume", "num_classes", "command", "run")


def train(args: argparse.Namespace) -> str:
    from mobilenet.train.run import train_run

    if args.resolution is not None and args.resolution < 1:
        raise ValueError(f"--resolution must be >= 1, got {args.resolution} (leave it out for the data's own side)")
    overrides = {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG}
    train_run(args.recipe, args.config, overrides, out=args.out, resume=args.resume, num_classes=args.num_classes)
    return ""  # the run reports each epoch and where it was written


def evaluate(args: argparse.Namespace) -> str | tuple[str, int]:
    from mobilenet.config import DataConfig
    from mobilenet.train.evaluation import evaluation_text

    if args.weights:
        from mobilenet.train.evaluation import weights_evaluation_text

        if args.checkpoint or (args.dataset and args.dataset != "imagefolder") or not args.data_dir:
            raise ValueError("--weights evaluates on an image folder: give --data-dir DIR and no checkpoint")
        return weights_evaluation_text(args.weights, args.data_dir, args.batch_size, args.full_decode)
    if not args.checkpoint:
        raise ValueError("give a checkpoint (RUN_OR_CKPT) or --weights NAME_OR_FILE with --data-dir")
    data = DataConfig(args.dataset) if args.dataset else None
    return evaluation_text(args.checkpoint, data, args.out, args.batch_size, args.full_decode, args.data_dir)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train on digits (default), CIFAR-10/100 or an ImageFolder tree")
    add_train_args(p)
    p.set_defaults(run=train)

    p = sub.add_parser("eval", help="top-1/top-5, per-class accuracy and confusion matrix of a checkpoint")
    p.add_argument("checkpoint", nargs="?", help="a .pt file or a run directory (its last.pt)")
    p.add_argument(
        "--weights",
        metavar="NAME_OR_FILE",
        help="instead of a checkpoint: published weights (`mobilenet weights list`) or converted .safetensors, "
        "evaluated on --data-dir (an ImageNet-style val folder) with their own preprocessing",
    )
    p.add_argument("--dataset", help="default: the dataset the checkpoint was trained on")
    p.add_argument("--data-dir", help="the data set's folder or archive (default: the checkpoint's)")
    p.add_argument(
        "--out",
        help="where to write confusion.png/.txt (default: <run dir>/eval, or eval-<folder> for --data-dir)",
    )
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default 256)")
    p.add_argument(
        "--full-decode",
        action="store_true",
        help="image folders: decode every JPEG pixel (default: large JPEGs at reduced size, faster)",
    )
    p.set_defaults(run=evaluate)
