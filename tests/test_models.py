"""Model behaviour, parametrized over BUILDERS so every architecture gets every test."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mobilenet.config import ModelConfig
from mobilenet.layers import ClassicBottleneck, ConvBNAct, InvertedResidual
from mobilenet.models import (
    BUILDERS,
    MobileNetV1,
    MobileNetV2,
    build_model,
    conv_mobilenet,
    count_params,
    mobilenet_v1,
    mobilenet_v2,
)

ARCHS = sorted(BUILDERS)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("resolution,side", [(224, 7), (192, 6), (160, 5), (128, 4), (96, 3)])
def test_final_feature_map_side(arch: str, resolution: int, side: int) -> None:
    # TF-Slim: 7/6/5/4/3 for 224/192/160/128/96 inputs
    model = build_model(ModelConfig(arch=arch, width=0.25)).eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, 3, resolution, resolution))
    assert features.shape[-2:] == (side, side)


@pytest.mark.parametrize("arch", ARCHS)
def test_num_classes_resizes_head_and_every_parameter_gets_a_gradient(arch: str) -> None:
    model = build_model(ModelConfig(arch=arch, width=0.25, num_classes=7, cifar=True))
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)
    out.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(
    "shape,message",
    [
        ((3, 224, 224), r"\(N, 3, H, W\), got \(3, 224, 224\)"),
        ((1, 1, 224, 224), r"got \(1, 1, 224, 224\)"),
        ((1, 3, 224, 16), r"input \(224, 16\) is too small"),
    ],
)
def test_wrong_input_shape_is_a_clear_error(arch: str, shape: tuple[int, ...], message: str) -> None:
    model = build_model(ModelConfig(arch=arch, width=0.25))
    with pytest.raises(ValueError, match=message):
        model(torch.randn(*shape))


def test_named_constructors() -> None:
    m = mobilenet_v2(width=1.4, num_classes=10)
    assert isinstance(m, MobileNetV2) and m.classifier.out_features == 10 and m.config.width == 1.4
    assert m.stem.conv.out_channels == 48 and m.head.conv.out_channels == 1792
    v1 = mobilenet_v1(width=0.5)
    assert isinstance(v1, MobileNetV1) and v1.classifier.in_features == 512
    assert isinstance(v1.head, nn.Identity)
    conv = conv_mobilenet(width=0.25, cifar=True)
    assert all(isinstance(b, ConvBNAct) for b in conv.blocks)
    assert count_params(mobilenet_v2()) == 3_504_872  # torchvision's MobileNet_V2_Weights num_params
    with pytest.raises(ValueError, match="MobileNetV2 builds mobilenet_v2"):
        MobileNetV2(ModelConfig(arch="mobilenet_v1"))
    for build in (mobilenet_v1, mobilenet_v2):  # 0 is an impossible value, not "the default"
        with pytest.raises(ValueError, match="width must be a number > 0 and below 10,000, got 0"):
            build(width=0)
        with pytest.raises(ValueError, match="num_classes must be an integer >= 1, got 0"):
            build(0.5, num_classes=0)


def test_v2_block_parts_and_activations() -> None:
    model = mobilenet_v2()
    first = model.blocks[0]
    assert isinstance(first, InvertedResidual) and isinstance(first.expand, nn.Identity)
    for block in model.blocks:
        assert isinstance(block.project.act, nn.Identity)  # linear bottleneck
        assert isinstance(block.depthwise.act, nn.ReLU6)
        assert block.depthwise.conv.groups == block.depthwise.conv.in_channels
    ablated = build_model(ModelConfig(bottleneck="relu6", activation="relu"))
    assert all(isinstance(b.project.act, nn.ReLU6) for b in ablated.blocks)
    assert not any(isinstance(m, nn.ReLU6) for n, m in ablated.named_modules() if "project" not in n)


def test_relu6_clips_at_six() -> None:
    layer = ConvBNAct(1, 1, 1)
    with torch.no_grad():
        layer.conv.weight.fill_(1.0)
    x = torch.tensor([-3.0, 0.5, 5.0, 9.0]).view(1, 1, 2, 2)
    y = layer.eval()(x)
    eps = layer.bn.eps
    expected = torch.clamp(x / (1 + eps) ** 0.5, 0, 6)
    assert torch.allclose(y, expected)


@pytest.mark.parametrize("block_cls", [InvertedResidual, ClassicBottleneck])
def test_residual_adds_the_input(block_cls: type[nn.Module]) -> None:
    block = block_cls(16, 8 if block_cls is ClassicBottleneck else 96, 16).eval()
    last = block.project if isinstance(block, InvertedResidual) else block.expand
    with torch.no_grad():  # zero the last BN: the residual branch outputs 0, so the block is identity
        last.bn.weight.zero_()
        last.bn.bias.zero_()
    x = torch.randn(2, 16, 9, 9)
    assert torch.equal(block(x), x)
    with pytest.raises(ValueError, match="a residual needs stride 1"):
        block_cls(16, 32, 16, stride=2, use_residual=True)


def test_expansion_shortcut_adds_previous_expanded_tensor() -> None:
    model = build_model(ModelConfig(shortcut="expansion", width=0.35, num_classes=3)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        h, carry = model.stem(x), None
        for block, spec in zip(model.blocks, model.spec.blocks, strict=True):
            hidden = block.expand(h)
            if spec.expansion_skip:
                hidden = hidden + carry
            h, carry = block.project(block.depthwise(hidden)), hidden
        expected = model.head(h)
        plain = build_model(ModelConfig(shortcut="none", width=0.35, num_classes=3)).eval()
        plain.load_state_dict(model.state_dict())
        assert torch.allclose(model.forward_features(x), expected, atol=1e-5)
        difference = (plain.forward_features(x) - expected).abs().max()
        assert difference > 0.1 * expected.abs().max()  # the skips really change the output


@pytest.mark.parametrize("arch", ARCHS)
def test_any_input_size_at_least_the_stride(arch: str) -> None:
    model = build_model(ModelConfig(arch=arch, width=0.25, num_classes=5)).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 45)).shape == (1, 5)


def test_dropout_only_in_training() -> None:
    model = mobilenet_v2(width=0.35, num_classes=4, dropout=0.5, cifar=True)
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    assert model.dropout.p == 0.5


@pytest.mark.parametrize("arch", ARCHS)
def test_torch_export_matches_eager_with_dynamic_batch(arch: str) -> None:
    model = build_model(ModelConfig(arch=arch, width=0.35, num_classes=10)).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(model, (torch.randn(2, 3, 96, 96),), dynamic_shapes=({0: batch},))
    x = torch.randn(5, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(program.module()(x), model(x), atol=1e-5)
