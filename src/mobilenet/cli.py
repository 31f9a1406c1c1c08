"""Command line: parse arguments into configs and call one library function per subcommand."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mobilenet.config import ARCHS, ModelConfig

if TYPE_CHECKING:
    from mobilenet.models import MobileNet


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


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from mobilenet.train import RECIPES

    p.add_argument("--recipe", default="digits", choices=sorted(RECIPES), help="preset to start from (default digits)")
    p.add_argument("--config", help="TOML/JSON file with [model], [data], [train] tables; flags override it")
    p.add_argument("--out", help="run directory (default: a new runs/<dataset>-<arch>[-N])")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint and saved config")
    g = p.add_argument_group("model")
    g.add_argument("--arch", help=f"one of: {', '.join(ARCHS)}")
    g.add_argument("--width", type=float)
    g.add_argument("--dropout", type=float)
    g.add_argument("--cifar", action=argparse.BooleanOptionalAction, default=None, help="CIFAR stride variant")
    g.add_argument("--activation", help="relu6 | relu")
    g.add_argument("--bottleneck", help="linear | relu6 (V2 projection)")
    g.add_argument("--shortcut", help="bottleneck | expansion | none (V2)")
    g.add_argument("--block", help="inverted | classic (V2)")
    g.add_argument("--padding", help="symmetric (PyTorch) | tf-same (TensorFlow's stride-2 padding)")
    g.add_argument("--bn-eps", type=float, help="BatchNorm epsilon (default 1e-5; Keras/Slim weights use 1e-3)")
    g.add_argument("--num-classes", type=int, help="classifier outputs; must match the data (default: the data's)")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help="digits | cifar10 | cifar100 | imagefolder")
    g.add_argument("--data-dir", help="CIFAR archive/folder (downloaded if absent) or ImageFolder root")
    g.add_argument("--resolution", type=int, help="input side (default: 32 for digits/CIFAR, 224 for folders)")
    g.add_argument("--download", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--workers", type=int, help="image decoding processes (ImageFolder)")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--optimizer", help="sgd | rmsprop")
    g.add_argument("--lr", type=float, help="learning rate at --lr-batch; scaled linearly with --batch-size")
    g.add_argument("--lr-batch", type=int)
    g.add_argument("--momentum", type=float, help="SGD momentum, or RMSProp's (default 0.9)")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--schedule", help="cosine | exponential")
    g.add_argument("--lr-decay", type=float, help="per-epoch factor of the exponential schedule")
    g.add_argument("--warmup-epochs", type=float)
    g.add_argument("--label-smoothing", type=float)
    g.add_argument("--ema-decay", type=float, help="EMA of weights, e.g. 0.9999 (0: off)")
    g.add_argument("--precision", help="auto | fp32 | bf16")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--seed", type=int)
    g.add_argument("--init", metavar="WEIGHTS", help="start from converted weights (.safetensors); new head")
    g.add_argument("--freeze-backbone", action=argparse.BooleanOptionalAction, default=None,
                   help="with --init: train only the classifier (BN statistics stay frozen too)")  # fmt: skip
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N")


def _train(args: argparse.Namespace) -> str:
    import dataclasses

    from mobilenet.config import load_config_file, replace_from_dict
    from mobilenet.fit import fit
    from mobilenet.train import RECIPES

    if args.init:
        fixed = [k for k in ("arch", "width", "cifar", "activation", "bottleneck", "shortcut", "block", "padding",
                                 "bn_eps")
                 if getattr(args, k) is not None]  # fmt: skip
        if fixed:
            raise ValueError(f"--init weights fix the architecture; drop --{fixed[0].replace('_', '-')}")
    recipe = RECIPES[args.recipe]
    configs = {"model": recipe.model, "data": recipe.data, "train": recipe.train}
    if args.config:
        file = load_config_file(args.config)
        unknown = sorted(set(file) - set(configs))
        if unknown:
            raise ValueError(f"unknown config file tables: {', '.join(unknown)} (expected model, data, train)")
        configs = {name: replace_from_dict(cfg, file.get(name, {})) for name, cfg in configs.items()}
    for name, config in configs.items():
        # every config field with a flag of the same name; num_classes always comes from the data
        keys = [f.name for f in dataclasses.fields(config) if f.name != "num_classes"]  # type: ignore[arg-type]
        given = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
        configs[name] = replace_from_dict(configs[name], given)
    if args.resume and args.out:
        raise ValueError("--resume continues the run in its own directory; drop --out")
    fit(configs["model"], configs["data"], configs["train"], out=args.out, resume=args.resume,  # type: ignore[arg-type]
        num_classes=args.num_classes)  # fmt: skip
    return ""  # fit() reports each epoch and where the run was written


def _eval(args: argparse.Namespace) -> str:
    from mobilenet.data import DataConfig
    from mobilenet.inference import confusion_text, evaluate_checkpoint

    data = DataConfig(args.dataset, args.data_dir) if args.dataset else None
    result, classes, out = evaluate_checkpoint(args.checkpoint, data, args.out, args.batch_size)
    images = int(result.confusion.sum())
    return "\n".join(
        [
            f"top-1 {result.top1:.2%}  top-5 {result.top5:.2%}  loss {result.loss:.4f}  ({images} images)",
            confusion_text(result, classes),
            f"confusion matrix: {out / 'confusion.png'} and {out / 'confusion.txt'}",
        ]
    )


def _predict(args: argparse.Namespace) -> str:
    from mobilenet.inference import predict

    source = args.checkpoint or args.weights
    if not source:
        raise ValueError("give --checkpoint RUN_OR_CKPT or --weights FILE.safetensors")
    predictions = predict(source, args.images, args.top_k, splits=args.split, resolution=args.resolution)
    if args.json:
        return json.dumps([p.__dict__ for p in predictions], indent=2)
    lines = []
    for p in predictions:
        ranked = ", ".join(f"{label} {prob:.1%}" for label, prob in zip(p.labels, p.probabilities, strict=True))
        lines.append(f"{p.path}: {ranked}")
    return "\n".join(lines)


def _memory(args: argparse.Namespace) -> str:
    from mobilenet.report import memory_data, memory_text

    config = _model_config(args)
    kwargs = {"dtype": args.dtype, "splits": args.split, "batch": args.batch, "first_layer": args.first_layer}
    if args.json:
        return json.dumps(memory_data(config, args.resolution, **kwargs), indent=2)
    return memory_text(config, args.resolution, **kwargs)


def _bench_model(args: argparse.Namespace) -> tuple[MobileNet, int]:
    """The checkpoint's model (and its training resolution), or a randomly initialised one from flags."""
    from mobilenet.inference import load_model
    from mobilenet.models import build_model

    if args.checkpoint:
        model, ckpt = load_model(args.checkpoint)
        return model, args.resolution or int(ckpt["resolution"])
    config = ModelConfig(arch=args.arch, width=args.width, num_classes=args.num_classes, cifar=args.cifar)
    return build_model(config).eval(), args.resolution or 224


def _check_flags(model: MobileNet, args: argparse.Namespace) -> None:
    """A checkpoint must match any architecture flags given beside it."""
    for name in ("arch", "width", "num_classes"):
        given = getattr(args, name, None)
        actual = getattr(model.config, name)
        if given is not None and given != actual:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"the checkpoint holds {name}={actual!r} but {flag} asks for {given!r}")


def _bench(args: argparse.Namespace) -> str:
    import tempfile
    from pathlib import Path

    from mobilenet.benchmark import (
        engine_paths,
        report_data,
        report_text,
        run_paths,
        torch_paths,
        torchvision_onnx_paths,
        torchvision_path,
    )

    model, resolution = _bench_model(args)
    config = model.config
    notes: list[str] = []
    engines = tuple(args.engine)
    paths = torch_paths(model, args.split) if "torch" in engines else []
    peer_ok = config.arch == "mobilenet_v2" and config.block == "inverted" and not config.cifar
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        deploy = tuple(e for e in engines if e in ("onnxruntime", "openvino"))
        if deploy:
            paths += engine_paths(model, resolution, workdir, notes, engines=deploy,
                                  precisions=tuple(args.precision), threads=args.threads)  # fmt: skip
        if args.peers and peer_ok:
            peer = torchvision_path(config.num_classes, config.width, notes)
            paths += [peer] if peer is not None else []
            paths += torchvision_onnx_paths(config.num_classes, config.width, resolution, workdir, notes,
                                            threads=args.threads)  # fmt: skip
        elif args.peers:
            notes.append("peers skipped: torchvision has no model matching this architecture")
        report = run_paths(paths, resolution=resolution, batches=tuple(args.batch), threads=args.threads,
                           runs=args.runs, progress=lambda m: print(f"timing {m}", file=sys.stderr))  # fmt: skip
    report.notes += notes
    return json.dumps(report_data(report), indent=2) if args.json else report_text(report, args.reference)


def _export(args: argparse.Namespace) -> str:
    from mobilenet.deploy import export_checkpoint

    result = export_checkpoint(args.checkpoint, args.output, fmt=args.format, resolution=args.resolution,
                               check=lambda m: _check_flags(m, args))  # fmt: skip
    return result.text()


def _quantize(args: argparse.Namespace) -> str:
    from mobilenet.data import DataConfig
    from mobilenet.deploy import choose_engine
    from mobilenet.quantize import quantize_checkpoint

    data = DataConfig(args.dataset, args.data_dir) if args.dataset else None
    report = quantize_checkpoint(args.checkpoint, args.output or _default_out(args.checkpoint), data=data,
                                 calibration=args.calibration, qat_epochs=args.qat_epochs,
                                 threads=args.threads, check=lambda m: _check_flags(m, args))  # fmt: skip
    text = report.text()
    if args.engine == "auto":
        text += "\n" + choose_engine(report, threads=args.threads).text()
    return text


def _experiment(args: argparse.Namespace) -> str:
    from pathlib import Path

    if args.name == "ablation":
        from mobilenet.experiments.ablation import run_ablation

        return run_ablation(groups=args.groups, dataset=args.dataset, data_dir=args.data_dir, epochs=args.epochs,
                            seeds=args.seeds, width=args.width, resolution=args.resolution,
                            out=args.out)  # fmt: skip
    if args.name == "tradeoff":
        from mobilenet.experiments.tradeoff import run_tradeoff

        return run_tradeoff(dataset=args.dataset, data_dir=args.data_dir, epochs=args.epochs, seeds=args.seeds,
                            archs=args.archs, widths=args.widths, conv_widths=args.conv_widths,
                            resolutions=args.resolutions, resolution_width=args.resolution_width,
                            resolution=args.resolution, out=args.out)  # fmt: skip
    from mobilenet.experiments.manifold import manifold_table, plot_manifold, relu_manifold

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = relu_manifold(tuple(args.dims), trials=args.trials, seed=args.seed)
    table = manifold_table(results)
    (out / "relu_manifold.md").write_text(table + "\n")
    figure = plot_manifold(results, out / "relu_manifold.png")
    return f"{table}\nwrote {out / 'relu_manifold.md'} and {figure}"


def _add_experiments(sub: argparse._SubParsersAction) -> None:
    from mobilenet.experiments.ablation import GROUPS

    p = sub.add_parser("experiment", help="rerun a paper experiment: relu-manifold, ablation, tradeoff")
    kinds = p.add_subparsers(dest="name", required=True, metavar="EXPERIMENT")
    q = kinds.add_parser("relu-manifold", help="V2 Fig. 1: a spiral through ReLU in n dimensions and back")
    q.add_argument("--out", default="runs/experiments", help="directory for the table and figure")
    q.add_argument("--dims", type=int, nargs="+", default=[2, 3, 5, 15, 30], help="embedding dimensions n")
    q.add_argument("--trials", type=int, default=20, help="random matrices T per n (mean and spread)")
    q.add_argument("--seed", type=int, default=0)
    q = kinds.add_parser("ablation", help="V2 Fig. 6 and block comparisons, trained with one recipe")
    q.add_argument("--groups", nargs="+", default=list(GROUPS), choices=list(GROUPS), help="default: all four")
    q.add_argument("--width", type=float, help="baseline width (default: the dataset's recipe, 0.5 on digits)")
    _add_sweep_args(q, "runs/experiments/ablation", seeds=[0, 1, 2])
    q = kinds.add_parser("tradeoff", help="accuracy vs multiply-adds: widths, resolutions, V1/V2/full conv")
    q.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    q.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5, 1.0], help="V1/V2 widths")
    q.add_argument("--conv-widths", type=float, nargs="+", default=[0.25, 0.5],
                   help="full-conv widths (default 0.25 0.5: width 1 costs 1.5G multiply-adds at 32 px)")  # fmt: skip
    q.add_argument("--resolutions", type=int, nargs="+",
                   help="input sides for the resolution sweep (default 16 24 32; 128-224 for imagefolder)")  # fmt: skip
    q.add_argument("--resolution-width", type=float, default=0.5, help="width of the resolution sweep (0.5)")
    _add_sweep_args(q, "runs/experiments/tradeoff", seeds=[0, 1])
    p.set_defaults(run=_experiment)


def _add_sweep_args(p: argparse.ArgumentParser, out: str, seeds: list[int]) -> None:
    p.add_argument("--dataset", default="digits", help="digits (default) | cifar10 | cifar100 | imagefolder")
    p.add_argument("--data-dir", help="CIFAR archive/folder (downloaded if absent) or ImageFolder root")
    p.add_argument("--resolution", type=int, default=0,
                   help="input side of the runs (default: the dataset's, 32 for digits/CIFAR)")  # fmt: skip
    p.add_argument("--epochs", type=int, default=8, help="epochs per run (default 8)")
    p.add_argument("--seeds", type=int, nargs="+", default=seeds, help=f"seeds per variant (default {seeds})")
    p.add_argument("--out", default=out, help=f"results and cached runs (default {out}); rerun to resume")


def _convert(args: argparse.Namespace) -> str:
    from pathlib import Path

    from mobilenet import weights

    if (args.source is None) == (args.to is None):
        raise ValueError("give --from SOURCE (peer weights -> ours) or --to TARGET (ours -> a peer's layout)")
    if args.to:
        if Path(args.src).suffix == ".safetensors":
            model, _ = weights.load_pretrained(args.src)
        else:
            from mobilenet.inference import load_model

            model, _ = load_model(args.src)
        out = args.output or str(Path(args.src).with_suffix(".h5" if args.to == "keras" else ".npz" if args.to ==
                                                           "slim" else ".pth"))  # fmt: skip
        path, warnings = weights.export_file(model, args.to, out)
        lines = [f"wrote {path}: {model.config.arch} width {model.config.width:g} in the {args.to} layout"]
        return "\n".join(lines + [f"warning: {w}" for w in warnings])
    converted = weights.convert_file(args.src, args.source, arch=args.arch, width=args.width,
                                     background=args.background, padding=args.padding)  # fmt: skip
    out = Path(args.output or Path(args.src).with_suffix(".safetensors"))
    if out.resolve() == Path(args.src).resolve():
        raise ValueError(f"refusing to overwrite the source file {out}: pass -o")
    weights.save_weights(converted, out)
    c = converted.config
    head = "no classifier" if "classifier" in converted.metadata else f"{c.num_classes} classes"
    lines = [f"wrote {out}: {c.arch} width {c.width:g}, {head}, "
             f"{len(converted.state_dict)} tensors from the {args.source} layout"]  # fmt: skip
    lines += [f"  {k}: {v}" for k, v in converted.metadata.items() if k not in ("format", "model_config")]
    if converted.ignored:
        lines.append(f"  not weights, skipped: {len(converted.ignored)} ({', '.join(converted.ignored[:3])}, ...)")
    return "\n".join(lines)


def _default_out(checkpoint: str) -> str:
    from pathlib import Path

    path = Path(checkpoint)
    return str((path if path.is_dir() else path.parent) / "deploy")


def _add_flag_checks(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", choices=ARCHS, help="fail unless the checkpoint is this architecture")
    p.add_argument("--width", type=float, help="fail unless the checkpoint has this width")
    p.add_argument("--num-classes", type=int, help="fail unless the checkpoint has this many classes")


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

    p = sub.add_parser("train", help="train on digits (default), CIFAR-10/100 or an ImageFolder tree")
    _add_train_args(p)
    p.set_defaults(run=_train)

    p = sub.add_parser("eval", help="top-1/top-5, per-class accuracy and confusion matrix of a checkpoint")
    p.add_argument("checkpoint", help="a .pt file or a run directory (its last.pt)")
    p.add_argument("--dataset", help="default: the dataset the checkpoint was trained on")
    p.add_argument("--data-dir")
    p.add_argument("--out", help="where to write confusion.png/.txt (default: <run dir>/eval)")
    p.add_argument("--batch-size", type=int, default=256)
    p.set_defaults(run=_eval)

    p = sub.add_parser("predict", help="top-k labels with probabilities for image files")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", help="a .pt file or a run directory")
    which.add_argument("--weights", help="converted pretrained weights (.safetensors from `mobilenet convert`)")
    p.add_argument("--resolution", type=int, help="input side (default: the training side; 224 for --weights)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", action="store_true")
    p.add_argument("--split", type=int, metavar="T",
                   help="memory-efficient inference: compute each expanded tensor in T channel groups")  # fmt: skip
    p.set_defaults(run=_predict)

    p = sub.add_parser("memory", help="activation memory: V2 paper Table 3, per-op and split-inference peaks")
    _add_model_args(p)
    p.add_argument("--dtype", default="float16", choices=("float32", "float16", "bfloat16", "int8"),
                   help="activation type (default float16, as the paper's Table 3)")  # fmt: skip
    p.add_argument("--split", type=int, metavar="T", help="also plan split inference with T groups per block")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--first-layer", default="split", choices=("materialise", "split", "stream"),
                   help="Table 3 treatment of the stem's output (default split: the paper's table)")  # fmt: skip
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_memory)

    p = sub.add_parser("bench", help="latency, images/s and peak memory of our paths vs the peers, same run")
    p.add_argument("--checkpoint", help="a .pt file or run directory (default: random weights from the flags)")
    p.add_argument("--arch", default="mobilenet_v2", choices=ARCHS)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--cifar", action="store_true")
    p.add_argument("--resolution", type=int, help="default 224, or the checkpoint's training resolution")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 32], help="batch sizes (default 1 32)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=30, help="timed runs per path (at least 1 s of them)")
    p.add_argument("--split", type=int, nargs="+", metavar="T", help="also time split inference with these T")
    p.add_argument(
        "--engine",
        nargs="+",
        default=["torch", "onnxruntime", "openvino"],
        choices=("torch", "onnxruntime", "openvino"),
        help="our paths to time (default: all installed)",
    )
    p.add_argument(
        "--precision",
        nargs="+",
        default=["fp32", "int8", "bf16"],
        choices=("fp32", "int8", "bf16"),
        help="engine precisions (bf16 only on OpenVINO, where the CPU has AVX512-BF16 or AMX)",
    )
    p.add_argument(
        "--reference",
        default="torchvision -> onnxruntime fp32",
        help="the path every ratio is taken against (default: torchvision -> onnxruntime fp32)",
    )
    p.add_argument("--no-peers", dest="peers", action="store_false", help="skip the peer paths")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_bench)

    _add_experiments(sub)

    p = sub.add_parser("convert", help="pretrained weights from torchvision/timm/Keras/TF-Slim, or back to them")
    p.add_argument("src", help="weights file: .pth/.pt/.bin, .safetensors, Keras .h5/.weights.h5/.keras, Slim "
                               ".npz or a TF checkpoint")  # fmt: skip
    p.add_argument("--from", dest="source", choices=("torchvision", "timm", "keras", "slim"),
                   help="the layout SRC is in; writes our .safetensors")  # fmt: skip
    p.add_argument("--to", choices=("torchvision", "timm", "keras", "slim"),
                   help="write our SRC (.safetensors or a checkpoint) in this peer's layout instead")  # fmt: skip
    p.add_argument("--arch", default="mobilenet_v2", choices=("mobilenet_v1", "mobilenet_v2"))
    p.add_argument("--width", type=float, default=1.0, help="the width the weights were trained at (alpha)")
    p.add_argument("--background", default="drop", choices=("drop", "keep"),
                   help="TF-Slim's 1001-class heads: drop class 0 (background, default) or keep it")  # fmt: skip
    p.add_argument("--padding", choices=("symmetric", "tf-same"),
                   help="default: the source's own (tf-same for Keras/Slim), which reproduces its outputs")  # fmt: skip
    p.add_argument("-o", "--output", help="output file (default: SRC with the new suffix)")
    p.set_defaults(run=_convert)

    p = sub.add_parser("export", help="ONNX (BN folded, verified in onnxruntime) or torch.export program")
    p.add_argument("checkpoint", help="a .pt file or a run directory")
    p.add_argument("--format", default="onnx", choices=("onnx", "torch-export"))
    p.add_argument("-o", "--output", help="output file (default: model.onnx / model.pt2 beside the checkpoint)")
    p.add_argument("--resolution", type=int, help="input side (default: the checkpoint's training resolution)")
    _add_flag_checks(p)
    p.set_defaults(run=_export)

    p = sub.add_parser("quantize", help="int8 static quantization (QDQ ONNX), accuracy and size change")
    p.add_argument("checkpoint", help="a .pt file or a run directory")
    p.add_argument("-o", "--output", help="output directory (default: deploy/ beside the checkpoint)")
    p.add_argument("--calibration", type=int, default=256, help="training images to calibrate on (default 256)")
    p.add_argument(
        "--qat-epochs",
        type=int,
        default=0,
        help="quantization-aware fine-tuning epochs before calibration (default 0: plain PTQ)",
    )
    p.add_argument("--dataset", help="default: the dataset the checkpoint was trained on")
    p.add_argument("--data-dir")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--engine",
        default="auto",
        choices=("auto", "none"),
        help="auto: time every installed engine and precision and pick the fastest accurate one",
    )
    _add_flag_checks(p)
    p.set_defaults(run=_quantize)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        output = args.run(args)
    except (ValueError, FileExistsError) as err:
        # Bad input is the user's to fix: one line naming the value, exit 2 like argparse, no traceback.
        print(f"mobilenet {args.command}: error: {err}", file=sys.stderr)
        return 2
    if output:
        try:
            print(output)
            sys.stdout.flush()
        except BrokenPipeError:  # `mobilenet ... | head`: the reader left; say nothing more
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps Python's exit flush from failing again
    return 0


if __name__ == "__main__":
    sys.exit(main())
