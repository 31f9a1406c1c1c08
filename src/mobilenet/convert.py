"""Load peers' state dicts into our models by an explicit key mapping (no torchvision import).

torchvision `mobilenet_v2` layout: `features.0` stem (0 conv, 1 BN), `features.{i+1}.conv` block i
(a Conv2dNormActivation per expand/depthwise part, then the bare projection conv and its BN),
`features.18` head, `classifier.1` the Linear. Our names stay ours; only this table knows theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import torch
from torch import Tensor, nn

from mobilenet.specs import NetworkSpec


def torchvision_v2_prefixes(spec: NetworkSpec) -> dict[str, str]:
    """Our module path -> torchvision's, for every module that holds tensors."""
    if spec.config.arch != "mobilenet_v2" or spec.config.block != "inverted":
        raise ValueError(f"torchvision's layout is for the paper's mobilenet_v2, got {spec.config.arch}")
    mapping = {"stem.conv": "features.0.0", "stem.bn": "features.0.1"}
    for i, block in enumerate(spec.blocks):
        theirs = f"features.{i + 1}.conv"
        parts = ["expand", "depthwise"] if block.has_expand else ["depthwise"]
        for k, part in enumerate(parts):
            mapping[f"blocks.{i}.{part}.conv"] = f"{theirs}.{k}.0"
            mapping[f"blocks.{i}.{part}.bn"] = f"{theirs}.{k}.1"
        mapping[f"blocks.{i}.project.conv"] = f"{theirs}.{len(parts)}"
        mapping[f"blocks.{i}.project.bn"] = f"{theirs}.{len(parts) + 1}"
    last = len(spec.blocks) + 1
    mapping |= {
        "head.conv": f"features.{last}.0",
        "head.bn": f"features.{last}.1",
        "classifier": "classifier.1",
    }
    return mapping


def convert_state_dict(
    state_dict: Mapping[str, Tensor], prefixes: dict[str, str], expected: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """Rename `state_dict` (their keys) into ours and check it against `expected` (our model's).

    Every tensor must map, none may be missing, and every shape must match: the error names the tensor.
    """
    ours_by_theirs = {theirs: ours for ours, theirs in prefixes.items()}
    converted: dict[str, Tensor] = {}
    for key, tensor in state_dict.items():
        prefix, _, leaf = key.rpartition(".")
        if prefix not in ours_by_theirs:
            raise ValueError(f"unexpected tensor {key!r}: it has no place in this architecture")
        ours = f"{ours_by_theirs[prefix]}.{leaf}"
        if ours not in expected:
            raise ValueError(f"unexpected tensor {key!r} (would be {ours!r})")
        if tuple(tensor.shape) != tuple(expected[ours].shape):
            raise ValueError(
                f"tensor {key!r} has shape {tuple(tensor.shape)}, but {ours!r} needs "
                f"{tuple(expected[ours].shape)}: check the width and number of classes"
            )
        converted[ours] = tensor
    missing = [k for k in expected if k not in converted]
    if missing:
        raise ValueError(f"{len(missing)} tensors missing, first: {missing[0]!r}")
    return converted


def load_torchvision_v2(model: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Load a torchvision `mobilenet_v2` state dict into `model`, one of our MobileNetV2s of the same width."""
    spec = cast(NetworkSpec, model.spec)
    converted = convert_state_dict(state_dict, torchvision_v2_prefixes(spec), model.state_dict())
    with torch.no_grad():
        model.load_state_dict(converted)
