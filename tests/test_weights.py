"""Pretrained weights in and out: every converter is proven on the peer's own model definition with
random weights (same input, same output), plus round trips, conventions and bad input."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conftest import import_keras, import_peer, randomize_bn
from mobilenet.checkpoint import Checkpoint
from mobilenet.cli import main
from mobilenet.config import ModelConfig
from mobilenet.models import build_model, count_params
from mobilenet.weights import (
    convert_file,
    convert_tensors,
    export_file,
    export_tensors,
    keras_model_tensors,
    load_pretrained,
    read_tensors,
    save_weights,
)
from mobilenet.weights.layouts import tensor_table

TOL = 2e-4  # float32 rounding: sums in another order (another thread count) moved outputs by 1.0e-4


def _ours(converted: Any) -> torch.nn.Module:
    model = build_model(converted.config).eval()
    model.load_state_dict(converted.state_dict)
    return model


def _close(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, tol: float = TOL) -> float:
    a, b = torch.as_tensor(np.asarray(a)), torch.as_tensor(np.asarray(b))
    assert a.abs().max() > 0.1, "outputs too small to compare meaningfully"
    diff = (a - b).abs().max().item()
    assert diff <= tol, diff
    return diff


# --- torchvision --------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [0.5, 1.0, 1.4])
def test_torchvision_v2_in_and_out(width: float) -> None:
    tv = import_peer("torchvision").models.mobilenet_v2(width_mult=width)
    torch.manual_seed(0)
    randomize_bn(tv)
    ours = _ours(convert_tensors(tv.state_dict(), "torchvision", width=width))
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        _close(ours(x), tv.eval()(x), 1e-5)
    assert count_params(ours) == count_params(tv)
    back = import_peer("torchvision").models.mobilenet_v2(width_mult=width).eval()
    back.load_state_dict(export_tensors(ours, "torchvision")[0])  # strict: every key, nothing extra
    with torch.no_grad():
        _close(back(x), ours(x), 1e-6)


# --- timm ---------------------------------------------------------------------------------------

TIMM = [("mobilenetv1_100", "mobilenet_v1", 1.0), ("mobilenetv1_125", "mobilenet_v1", 1.25),
        ("mobilenetv2_035", "mobilenet_v2", 0.35), ("mobilenetv2_050", "mobilenet_v2", 0.5),
        ("mobilenetv2_075", "mobilenet_v2", 0.75), ("mobilenetv2_100", "mobilenet_v2", 1.0),
        ("mobilenetv2_140", "mobilenet_v2", 1.4)]  # fmt: skip


@pytest.mark.parametrize("name,arch,width", TIMM)
def test_timm_in_and_out(name: str, arch: str, width: float) -> None:
    timm = import_peer("timm")
    theirs = timm.create_model(name, pretrained=False).eval()
    randomize_bn(theirs)
    ours = _ours(convert_tensors(theirs.state_dict(), "timm", arch=arch, width=width))
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        _close(ours(x), theirs(x))
    back = timm.create_model(name, pretrained=False).eval()
    back.load_state_dict(export_tensors(ours, "timm")[0])
    with torch.no_grad():
        _close(back(x), ours(x), 1e-6)


# --- Keras --------------------------------------------------------------------------------------


def _keras_model(arch: str, alpha: float, side: int, include_top: bool = True) -> Any:
    keras = import_keras()
    make = keras.applications.MobileNet if arch == "mobilenet_v1" else keras.applications.MobileNetV2
    model = make(weights=None, alpha=alpha, input_shape=(side, side, 3), classifier_activation=None,
                 include_top=include_top)  # fmt: skip
    rng = np.random.default_rng(0)
    for var in model.weights:  # random but well-scaled: activations stay O(1) through the depth
        shape, name = tuple(var.shape), var.path.split("/")[-1]
        if name in ("kernel", "depthwise_kernel"):
            fan_in = int(np.prod(shape[:-1])) if "depthwise" not in var.path and "dw" not in var.path else 9
            value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif name in ("gamma", "moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        else:  # beta, moving_mean, bias
            value = rng.standard_normal(shape) * 0.1
        var.assign(value.astype("float32"))
    return model


def _keras_run(model: Any, x: np.ndarray) -> np.ndarray:
    return model(x, training=False).detach().cpu().numpy()


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


KERAS = (
    [("mobilenet_v1", a, 128) for a in (0.25, 0.5, 0.75, 1.0)]
    + [("mobilenet_v1", 0.25, 97)]
    + [("mobilenet_v2", a, 96) for a in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)]
)


@pytest.mark.parametrize("arch,alpha,side", KERAS)
def test_keras_in_exactly_with_tf_same_padding(arch: str, alpha: float, side: int) -> None:
    km = _keras_model(arch, alpha, side)
    converted = convert_tensors(keras_model_tensors(km), "keras", arch=arch, width=alpha)
    # Keras' V1 pads its strided depthwise convs (0, 1) at every size; odd sides (97) show the difference
    assert converted.config.padding == ("keras-v1" if arch == "mobilenet_v1" else "tf-same")
    assert converted.config.num_classes == 1000
    x = np.random.default_rng(1).standard_normal((2, side, side, 3)).astype("float32")
    with torch.no_grad():
        _close(_ours(converted)(_nchw(x)), _keras_run(km, x))


def test_keras_odd_input_and_what_symmetric_padding_changes() -> None:
    km = _keras_model("mobilenet_v2", 0.5, 97)  # odd sides: TF pads 1 on both sides, like PyTorch
    tensors = keras_model_tensors(km)
    x = np.random.default_rng(2).standard_normal((2, 97, 97, 3)).astype("float32")
    with torch.no_grad():
        exact = _ours(convert_tensors(tensors, "keras", width=0.5))(_nchw(x))
        _close(exact, _keras_run(km, x))
        sym = _ours(convert_tensors(tensors, "keras", width=0.5, padding="symmetric"))(_nchw(x))
        _close(sym, exact)  # at odd sizes both rules pad the same
        even = np.random.default_rng(3).standard_normal((2, 96, 96, 3)).astype("float32")
        tf_same = _ours(convert_tensors(tensors, "keras", width=0.5))(_nchw(even))
        shifted = _ours(convert_tensors(tensors, "keras", width=0.5, padding="symmetric"))(_nchw(even))
    assert (tf_same - shifted).abs().max() > 1e-2  # at even sizes the windows shift: outputs differ


@pytest.mark.parametrize("arch,alpha", [("mobilenet_v1", 0.5), ("mobilenet_v2", 0.35)])
def test_keras_h5_file_in_and_out(arch: str, alpha: float, tmp_path: Path) -> None:
    import h5py

    km = _keras_model(arch, alpha, 128)  # Keras on its torch backend, or skip where it is not installed
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(tmp_path / "published.h5", "w") as f:  # the layout of Keras Applications' files
        legacy_h5_format.save_weights_to_hdf5_group(f, km)
    converted = convert_file(tmp_path / "published.h5", "keras", arch=arch, width=alpha)
    assert converted.metadata["source_file"] == "published.h5"
    ours = _ours(converted)
    x = np.random.default_rng(4).standard_normal((1, 128, 128, 3)).astype("float32")
    with torch.no_grad():
        _close(ours(_nchw(x)), _keras_run(km, x))
    path, warnings = export_file(ours, "keras", tmp_path / "ours.h5")
    assert warnings == []  # same padding, every variance above the epsilon gap
    fresh = _keras_model(arch, alpha, 128)
    fresh.load_weights(path)
    _close(_keras_run(fresh, x), _keras_run(km, x))


@pytest.mark.parametrize("arch,alpha", [("mobilenet_v1", 0.25), ("mobilenet_v2", 0.5)])
def test_keras3_weights_file_and_keras_archive_in_and_out(arch: str, alpha: float, tmp_path: Path) -> None:
    km = _keras_model(arch, alpha, 128)
    km.save_weights(tmp_path / "model.weights.h5")  # Keras 3's own format: layers named by class and order
    km.save(tmp_path / "model.keras")
    x = np.random.default_rng(5).standard_normal((1, 128, 128, 3)).astype("float32")
    for name in ("model.weights.h5", "model.keras"):
        converted = convert_file(tmp_path / name, "keras", arch=arch, width=alpha)
        assert "Keras 3" in converted.metadata["keras_format"]
        ours = _ours(converted)
        with torch.no_grad():
            _close(ours(_nchw(x)), _keras_run(km, x))
    path, warnings = export_file(ours, "keras", tmp_path / "ours.weights.h5")
    assert warnings == []
    fresh = _keras_model(arch, alpha, 128)
    fresh.load_weights(path)
    _close(_keras_run(fresh, x), _keras_run(km, x))
    other = "mobilenet_v2" if arch == "mobilenet_v1" else "mobilenet_v1"  # wrong --arch: named, not guessed
    with pytest.raises(ValueError, match="missing tensor|unexpected tensor|has shape"):
        convert_file(tmp_path / "model.weights.h5", "keras", arch=other, width=alpha)
    keras = import_keras()
    wrapped = keras.Sequential([km, keras.layers.Dense(3)])  # a fine-tuned model around the MobileNet
    wrapped.save_weights(tmp_path / "wrapped.weights.h5")
    with pytest.raises(ValueError, match="nested inside another"):
        convert_file(tmp_path / "wrapped.weights.h5", "keras", arch=arch, width=alpha)


@pytest.mark.parametrize("arch,alpha", [("mobilenet_v1", 0.5), ("mobilenet_v2", 0.35)])
def test_keras_no_top_file_is_a_backbone_for_fine_tuning(arch: str, alpha: float, tmp_path: Path) -> None:
    import h5py

    km = _keras_model(arch, alpha, 128, include_top=False)  # or skip where Keras is not installed
    from keras.src.legacy.saving import legacy_h5_format

    # Keras Applications' *_no_top.h5 files
    with h5py.File(tmp_path / "no_top.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, km)
    converted = convert_file(tmp_path / "no_top.h5", "keras", arch=arch, width=alpha)
    assert "classifier" in converted.metadata and not any(k.startswith("classifier.") for k in converted.state_dict)
    save_weights(converted, tmp_path / "backbone.safetensors")
    with pytest.raises(ValueError, match="has no classifier"):
        load_pretrained(tmp_path / "backbone.safetensors")
    x = np.random.default_rng(6).standard_normal((1, 128, 128, 3)).astype("float32")
    for k in (10, 1000):  # any head is new, even one of the placeholder's size
        model, _ = load_pretrained(tmp_path / "backbone.safetensors", num_classes=k)
        assert model.classifier.out_features == k
        with torch.no_grad():
            features = model.forward_features(_nchw(x)).permute(0, 2, 3, 1)
        _close(features, _keras_run(km, x), tol=1e-3)  # unpooled maps reach 6: float32 rounding is ~1e-4 of that


def test_keras_eps_is_kept_and_moved_into_the_variance_for_pytorch_peers() -> None:
    km = _keras_model("mobilenet_v2", 0.35, 96)
    tensors = keras_model_tensors(km)
    converted = convert_tensors(tensors, "keras", width=0.35)
    assert converted.config.bn_eps == 1e-3 and converted.metadata["bn_eps"].startswith("0.001")
    ours = _ours(converted)
    assert ours.stem.bn.eps == 1e-3
    assert torch.equal(
        converted.state_dict["stem.bn.running_var"], torch.from_numpy(tensors["bn_Conv1/moving_variance"])
    )
    assert json.loads(converted.metadata["mean"]) == [0.5, 0.5, 0.5]  # Keras scales inputs to [-1, 1]
    # To torchvision (eps 1e-5): the variance takes the difference, so the outputs stay the same.
    state, warnings = export_tensors(ours, "torchvision")
    assert torch.allclose(state["features.0.1.running_var"], ours.stem.bn.running_var + (1e-3 - 1e-5))
    assert any("BN eps 0.001 here, 1e-05 in torchvision" in w for w in warnings)
    assert any("pads tf-same, torchvision pads symmetric" in w and "8 random 224x224" in w for w in warnings)
    _, warnings = export_tensors(ours, "torchvision", resolution=96)  # measured at the side the model is used at
    assert any("8 random 96x96 inputs" in w for w in warnings)
    tv = import_peer("torchvision").models.mobilenet_v2(width_mult=0.35).eval()
    tv.load_state_dict(state)
    tiny = ours.state_dict()
    tiny["blocks.3.expand.bn.running_var"][:5] = 1e-4  # below the gap: cannot be expressed with eps 1e-5 + shift
    ours.load_state_dict(tiny)
    _, warnings = export_tensors(ours, "torchvision")
    assert not any("clamped" in w for w in warnings)  # moving to a smaller eps only adds
    pytorch_born = _ours(convert_tensors(_tv_state(0.35), "torchvision", width=0.35))
    small = pytorch_born.state_dict()
    small["blocks.3.expand.bn.running_var"][:5] = 1e-4
    pytorch_born.load_state_dict(small)
    _, warnings = export_tensors(pytorch_born, "keras")  # to eps 1e-3: 1e-4 - 0.00099 < 0
    assert any(w.startswith("5 BN variances below 0.00099 were clamped") for w in warnings)
    x = torch.randn(1, 3, 97, 97)  # odd side: both paddings agree, so only eps could differ
    with torch.no_grad():
        _close(tv(x), _ours(convert_tensors(tensors, "keras", width=0.35))(x))


# --- TF-Slim ------------------------------------------------------------------------------------


def test_slim_names_are_the_published_checkpoints() -> None:
    from mobilenet.config import ModelConfig
    from mobilenet.specs import network_spec

    v1 = {t.theirs for t in tensor_table("slim", network_spec(ModelConfig("mobilenet_v1")))}
    v2 = {t.theirs for t in tensor_table("slim", network_spec(ModelConfig("mobilenet_v2")))}
    for name in ("MobilenetV1/Conv2d_0/weights", "MobilenetV1/Conv2d_1_depthwise/depthwise_weights",
                 "MobilenetV1/Conv2d_13_pointwise/BatchNorm/moving_variance",
                 "MobilenetV1/Logits/Conv2d_1c_1x1/biases"):  # fmt: skip
        assert name in v1
    for name in ("MobilenetV2/Conv/BatchNorm/gamma", "MobilenetV2/expanded_conv/depthwise/depthwise_weights",
                 "MobilenetV2/expanded_conv_1/expand/weights", "MobilenetV2/expanded_conv_16/project/BatchNorm/beta",
                 "MobilenetV2/Conv_1/weights", "MobilenetV2/Logits/Conv2d_1c_1x1/weights"):  # fmt: skip
        assert name in v2
    assert len(v1) == 27 * 5 + 2 and len(v2) == (1 + 2 + 16 * 3 + 1) * 5 + 2  # every conv + BN, and the logits
    assert not any("expanded_conv/expand" in n for n in v2)  # the t = 1 block has no expansion


@pytest.mark.parametrize("arch,alpha", [("mobilenet_v1", 0.25), ("mobilenet_v2", 0.5)])
def test_slim_checkpoint_with_background_class_and_ema(arch: str, alpha: float, tmp_path: Path) -> None:
    km = _keras_model(arch, alpha, 128)  # Keras' MobileNets are TF-Slim's, renamed: same math, same padding
    ours = _ours(convert_tensors(keras_model_tensors(km), "keras", arch=arch, width=alpha))
    slim, _ = export_tensors(ours, "slim")
    logits = f"{'MobilenetV1' if arch == 'mobilenet_v1' else 'MobilenetV2'}/Logits/Conv2d_1c_1x1"
    w, b = slim[f"{logits}/weights"], slim[f"{logits}/biases"]  # prepend class 0, "background", as Slim has
    slim[f"{logits}/weights"] = torch.cat([torch.randn(1, 1, w.shape[2], 1), w], dim=3)
    slim[f"{logits}/biases"] = torch.cat([torch.tensor([5.0]), b])
    stem = f"{logits.split('/')[0]}/{'Conv2d_0' if arch == 'mobilenet_v1' else 'Conv'}/weights"
    arrays = {k: v.numpy() for k, v in slim.items()}
    arrays[f"{stem}/ExponentialMovingAverage"], arrays[stem] = arrays[stem], np.zeros_like(arrays[stem])
    arrays["global_step"] = np.array(1000)
    np.savez(tmp_path / "slim.npz", **arrays)

    dropped = convert_file(tmp_path / "slim.npz", "slim", arch=arch, width=alpha)
    kept = convert_file(tmp_path / "slim.npz", "slim", arch=arch, width=alpha, background="keep")
    assert dropped.config.num_classes == 1000 and kept.config.num_classes == 1001
    assert dropped.metadata["background_class"] == "dropped" and "ExponentialMovingAverage" in dropped.metadata[
        "slim_ema"]  # fmt: skip
    assert dropped.ignored == ["global_step"]
    x = np.random.default_rng(5).standard_normal((2, 128, 128, 3)).astype("float32")
    with torch.no_grad():
        expected = torch.from_numpy(_keras_run(km, x))
        _close(_ours(dropped)(_nchw(x)), expected)
        with_background = _ours(kept)(_nchw(x))
    _close(with_background[:, 1:], expected)


# --- files, metadata and bad input --------------------------------------------------------------


def _tv_state(width: float = 0.5) -> dict[str, torch.Tensor]:
    return import_peer("torchvision").models.mobilenet_v2(width_mult=width).state_dict()


def test_converted_file_round_trip_and_new_head(tmp_path: Path) -> None:
    converted = convert_tensors(_tv_state(), "torchvision", width=0.5)
    path = save_weights(converted, tmp_path / "v2.safetensors")
    model, meta = load_pretrained(path)
    assert meta["source"] == "torchvision" and model.config.width == 0.5 and model.config.num_classes == 1000
    for key, value in converted.state_dict.items():
        assert torch.equal(model.state_dict()[key], value)
    tuned, _ = load_pretrained(path, num_classes=7)
    assert tuned.classifier.out_features == 7
    assert torch.equal(tuned.blocks[3].expand.conv.weight, model.blocks[3].expand.conv.weight)
    with pytest.raises(ValueError, match="holds width=0.5, not 1.0"):
        load_pretrained(path, width=1.0)


def test_bad_tensors_are_named() -> None:
    state = _tv_state()
    with pytest.raises(ValueError, match=r"'features.0.0.weight' has shape \(16, 3, 3, 3\).*width 1 needs"):
        convert_tensors(state, "torchvision", width=1.0)
    state["features.99.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"1 unexpected tensor.*'features.99.weight'"):
        convert_tensors(state, "torchvision", width=0.5)
    del state["features.99.weight"], state["features.5.conv.1.1.running_var"]
    with pytest.raises(ValueError, match=r"missing tensor 'features.5.conv.1.1.running_var' \(our 'blocks.4"):
        convert_tensors(state, "torchvision", width=0.5)
    with pytest.raises(ValueError, match="is this a keras mobilenet_v2 file"):
        convert_tensors(_tv_state(), "keras", width=0.5)
    with pytest.raises(ValueError, match="torchvision has no mobilenet_v1 layout"):
        convert_tensors(_tv_state(), "torchvision", arch="mobilenet_v1")
    with pytest.raises(ValueError, match="unknown weights layout 'caffe'"):
        convert_tensors(_tv_state(), "caffe")
    with pytest.raises(ValueError, match="width must be a number > 0 and below 10,000"):
        convert_tensors(_tv_state(), "torchvision", width=0)


class _Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, ("raise SystemExit('pickle code ran')",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_bad_files_are_refused_without_running_code(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"features.0.0.weight": _Boom()}))
    with pytest.raises(
        ValueError, match=r"evil.pth holds pickled Python objects besides tensors; they are never loaded or run"
    ) as info:
        read_tensors(evil)
    assert "\x1b[" not in str(info.value) and "weights_only` set to `False" not in str(info.value)
    good = save_weights(convert_tensors(_tv_state(), "torchvision", width=0.5), tmp_path / "v2.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="cut.safetensors is not a readable safetensors file"):
        load_pretrained(cut)
    with pytest.raises(ValueError, match="cut.safetensors is not a readable weights file"):
        read_tensors(cut)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="not mobilenet weights"):
        load_pretrained(tmp_path / "other.safetensors")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="unknown weights format 'notes.txt'"):
        read_tensors(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="does not exist"):
        read_tensors(tmp_path / "missing.pth")
    (tmp_path / "model.ckpt.index").write_bytes(b"")
    with pytest.raises(ValueError, match="model.ckpt.index is not a readable TensorFlow checkpoint index"):
        read_tensors(tmp_path / "model.ckpt")


FIXTURE = Path(__file__).parent / "data" / "tf_checkpoint"


def test_tf_checkpoint_written_by_tensorflow_reads_without_it(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(FIXTURE.parent))
    from make_tf_checkpoint import expected_tensors

    got = read_tensors(FIXTURE / "model.ckpt")  # the prefix, as TF names it; "model.ckpt.index" works too
    want = expected_tensors()
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        assert np.array_equal(got[name], value), name
    assert sorted(read_tensors(FIXTURE / "model.ckpt.index")) == sorted(want)
    for part in ("model.ckpt.index", "model.ckpt.data-00000-of-00001"):
        (tmp_path / part).write_bytes((FIXTURE / part).read_bytes())
    data = tmp_path / "model.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(ValueError, match="does not fit its data file"):
        read_tensors(tmp_path / "model.ckpt")
    data.unlink()
    with pytest.raises(ValueError, match="data file model.ckpt.data-00000-of-00001 is missing"):
        read_tensors(tmp_path / "model.ckpt")


# --- command line: convert, fine-tune, predict, export back -------------------------------------


def test_cli_convert_finetune_predict_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.save(_tv_state(0.35), tmp_path / "tv.pth")
    assert main(["convert", str(tmp_path / "tv.pth"), "--from", "torchvision", "--width", "0.35"]) == 0
    out = capsys.readouterr().out
    assert "mobilenet_v2 width 0.35, 1000 classes" in out and "skipped: 52" in out
    weights = tmp_path / "tv.safetensors"
    image = Path(__file__).parents[1] / "docs" / "digit-3.png"
    assert main(["predict", str(image), "--weights", str(weights), "--top-k", "2", "--json"]) == 0
    [pred] = json.loads(capsys.readouterr().out)
    names = (Path(__file__).parents[1] / "src/mobilenet/imagenet_classes.txt").read_text().splitlines()
    assert len(pred["labels"]) == 2 and all(label in names for label in pred["labels"])

    run = tmp_path / "ft"
    args = ["train", "--init", str(weights), "--num-classes", "10", "--freeze-backbone", "--epochs", "1",
            "--resolution", "32",
            "--out", str(run), "--precision", "fp32"]  # fmt: skip
    assert main(args) == 0
    ckpt = torch.load(run / "last.pt", weights_only=True)
    start, _ = load_pretrained(weights)
    assert ckpt["model_config"]["width"] == 0.35 and ckpt["model"]["classifier.weight"].shape == (10, 1280)
    for key in ("blocks.5.expand.conv.weight", "head.bn.running_var", "stem.bn.running_mean"):
        assert torch.equal(ckpt["model"][key], start.state_dict()[key]), key  # frozen: untouched, BN stats too
    assert ckpt["mean"] == [0.485, 0.456, 0.406]  # the weights' own normalisation
    assert ckpt["model_config"]["cifar"] is False  # the weights' strides: the digits recipe's cifar is not applied
    # --cifar, asked for, switches them to the CIFAR strides: the same tensors, a different network
    cifar = tmp_path / "ft-cifar"
    assert main([*args[:-4], "--cifar", "--train-images", "64", "--out", str(cifar), "--precision", "fp32"]) == 0
    adapted = Checkpoint.load(cifar)
    assert adapted.model_config.cifar is True and adapted.model_config.width == 0.35
    assert torch.equal(
        adapted.weights["blocks.5.expand.conv.weight"], start.state_dict()["blocks.5.expand.conv.weight"]
    )
    assert main(["convert", str(cifar), "--to", "torchvision", "-o", str(tmp_path / "c.pth")]) == 2
    assert "differs (cifar=True)" in capsys.readouterr().err  # torchvision's network has the ImageNet strides
    assert main(["convert", str(run), "--to", "torchvision", "-o", str(tmp_path / "back.pth")]) == 0
    assert "in the torchvision layout" in capsys.readouterr().out
    before = (tmp_path / "back.pth").read_bytes()
    assert main(["convert", str(run), "--to", "timm", "-o", str(tmp_path / "back.pth")]) == 2
    assert "back.pth already exists; pass --force" in capsys.readouterr().err
    assert (tmp_path / "back.pth").read_bytes() == before  # the user's file is untouched
    assert main(["convert", str(weights), "--from", "torchvision", "-o", str(tmp_path / "back.pth")]) == 2
    assert main(["convert", str(run), "--to", "torchvision", "-o", str(tmp_path / "back.pth"), "--force"]) == 0
    capsys.readouterr()
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    assert torch.equal(back["features.6.conv.0.0.weight"], ckpt["model"]["blocks.5.expand.conv.weight"])

    assert main(["train", "--init", str(weights), "--num-classes", "5", "--out", str(tmp_path / "z")]) == 2
    assert "the model has 5 classes but digits has 10" in capsys.readouterr().err
    assert main(["train", "--freeze-backbone", "--epochs", "1", "--out", str(tmp_path / "x")]) == 2
    assert "freeze_backbone needs init" in capsys.readouterr().err
    assert main(["train", "--init", str(weights), "--arch", "mobilenet_v1", "--out", str(tmp_path / "y")]) == 2
    assert "--init weights fix the architecture; drop --arch" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "tv.pth"), "--from", "timm", "--width", "0.35"]) == 2
    assert "missing tensor" in capsys.readouterr().err
    assert main(["convert", str(weights), "--to", "keras", "-o", str(tmp_path / "k.pth")]) == 2
    assert "keras weights are written as .h5" in capsys.readouterr().err


def test_cli_headless_weights_fine_tune_but_do_not_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = {k: v for k, v in _tv_state(0.35).items() if not k.startswith("classifier.")}  # a bare backbone
    torch.save(state, tmp_path / "backbone.pth")
    assert main(["convert", str(tmp_path / "backbone.pth"), "--from", "torchvision", "--width", "0.35"]) == 0
    assert "width 0.35, no classifier" in capsys.readouterr().out
    weights = tmp_path / "backbone.safetensors"
    image = Path(__file__).parents[1] / "docs" / "digit-3.png"
    assert main(["predict", str(image), "--weights", str(weights)]) == 2
    assert "has no classifier" in capsys.readouterr().err
    assert main(["convert", str(weights), "--to", "keras", "-o", str(tmp_path / "k.h5")]) == 2
    assert "--to writes whole networks; fine-tune it first" in capsys.readouterr().err
    assert main(["export", "--weights", str(weights), "--format", "onnx", "-o", str(tmp_path / "w.onnx")]) == 2
    assert "for onnx, `mobilenet quantize --weights W --data-dir DIR` writes model.onnx" in capsys.readouterr().err
    run = tmp_path / "ft"
    args = ["train", "--init", str(weights), "--freeze-backbone", "--epochs", "1", "--resolution", "32", "--out",
            str(run), "--precision", "fp32"]  # fmt: skip
    assert main(args) == 0
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["model"]["classifier.weight"].shape == (10, 1280)
    assert torch.equal(ckpt["model"]["blocks.5.expand.conv.weight"], state["features.6.conv.0.0.weight"])
    del state["features.3.conv.1.1.running_var"]  # a backbone tensor missing is still an error, head or not
    torch.save(state, tmp_path / "broken.pth")
    assert main(["convert", str(tmp_path / "broken.pth"), "--from", "torchvision", "--width", "0.35"]) == 2
    assert "missing tensor 'features.3.conv.1.1.running_var'" in capsys.readouterr().err


def test_timm_hub_safetensors_file_and_class_names(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from mobilenet.weights import class_names

    timm = import_peer("timm")
    theirs = timm.create_model("mobilenetv1_100", pretrained=False).eval()
    save_file(theirs.state_dict(), tmp_path / "model.safetensors")  # how the Hub ships timm weights
    converted = convert_file(tmp_path / "model.safetensors", "timm", arch="mobilenet_v1")
    assert converted.config.arch == "mobilenet_v1" and converted.metadata["classes"] == "imagenet"
    names = class_names(converted.metadata, 1000)
    assert len(names) == 1000 and names[0] == "tench" and names[-1] == "toilet tissue"
    with_background = class_names({"classes": "imagenet+background"}, 1001)
    assert with_background[:2] == ["background", "tench"] and len(with_background) == 1001
    assert class_names({}, 3) == ["0", "1", "2"]
    with pytest.raises(ValueError, match="missing tensor 'features.0.0.weight' .*is this a torchvision mobilenet_v2"):
        convert_file(tmp_path / "model.safetensors", "torchvision", arch="mobilenet_v2")


def test_convert_infers_architecture_and_width_from_the_shapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.save(_tv_state(0.5), tmp_path / "tv.pth")
    capsys.readouterr()
    assert main(["convert", str(tmp_path / "tv.pth"), "--from", "torchvision"]) == 0
    out = capsys.readouterr().out
    assert "mobilenet_v2 width 0.5, 1000 classes" in out and "inferred: mobilenet_v2 width 0.5" in out
    torch.save({"features.0.0.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "odd.pth")
    assert main(["convert", str(tmp_path / "odd.pth"), "--from", "torchvision"]) == 2
    assert "no mobilenet_v2 or mobilenet_v1 at the widths tried" in capsys.readouterr().err
    assert main(["convert", str(tmp_path), "--from", "torchvision"]) == 2  # a run directory: --to is meant
    assert "is a directory: --from reads a peer's weights file" in capsys.readouterr().err


def test_file_errors_name_what_is_in_the_file(tmp_path: Path) -> None:
    np.savez(tmp_path / "objects.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="objects.npz holds object arrays"):
        read_tensors(tmp_path / "objects.npz")
    shard = Path(__file__).parent / "data" / "tf_checkpoint" / "model.ckpt.data-00000-of-00001"
    by_prefix = read_tensors(shard.parent / "model.ckpt")
    by_shard = read_tensors(shard)  # the file a user sees and picks: the data shard
    assert by_shard.keys() == by_prefix.keys() and len(by_shard) > 0


def test_timm_depth_multiplier_models_are_named_as_unsupported() -> None:
    timm = import_peer("timm")
    deeper = timm.create_model("mobilenetv2_120d", pretrained=False).state_dict()
    with pytest.raises(ValueError, match="depth-multiplier models .* Depth multiplier not supported"):
        convert_tensors(deeper, "timm", arch="mobilenet_v2", width=1.0)


def test_weights_of_the_wrong_shape_name_the_tensor(tmp_path: Path) -> None:
    converted = convert_tensors(_tv_state(0.5), "torchvision", width=0.5)
    converted.state_dict["blocks.3.expand.conv.weight"] = torch.zeros(7, 7, 1, 1)
    save_weights(converted, tmp_path / "bent.safetensors")
    with pytest.raises(ValueError, match=r"bent.safetensors does not fit .* size mismatch for blocks.3.expand.conv"):
        load_pretrained(tmp_path / "bent.safetensors")


def test_keras3_file_of_another_model_names_what_it_holds(tmp_path: Path) -> None:
    """A Keras 3 `.weights.h5` that is not a MobileNet: the error lists names that exist in the file, not
    the Keras Applications names they would have been mapped to."""
    import h5py

    with h5py.File(tmp_path / "small.weights.h5", "w") as f:  # Keras 3's layout: layers/<class>_<k>/vars/<i>
        f.create_dataset("layers/dense/vars/0", data=np.zeros((8, 4), np.float32))
        f.create_dataset("layers/dense/vars/1", data=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"the file holds 2 tensors, e.g. 'layers/dense/vars/0' \(8, 4\)"):
        convert_file(tmp_path / "small.weights.h5", "keras", arch="mobilenet_v2", width=1.0)


def test_ours_to_a_peer_refuses_a_network_the_peer_does_not_have(tmp_path: Path) -> None:
    from mobilenet.weights.layouts import check_layout

    with pytest.raises(ValueError, match=r"keras's model is the paper's network, and this one differs \(cifar=True\)"):
        check_layout("keras", ModelConfig(cifar=True))
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"")
    assert main(["convert", str(weights), "--to", "timm", "-o", str(weights), "--force"]) == 2  # never onto itself
    assert main(["convert", str(weights), "--from", "timm", "--to", "torchvision"]) == 2
