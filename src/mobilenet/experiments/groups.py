"""The ablation groups of the V2 paper's Fig. 6 and the block comparisons, as data. No torch import."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Group:
    title: str
    variants: tuple[tuple[str, dict[str, Any]], ...]  # (name, ModelConfig changes from the baseline)
    claim: str  # what the paper says, in words
    ordered: bool  # whether the claim is an accuracy ordering of `variants` (best first)


BASELINE = "baseline"  # the paper's block: linear bottleneck, bottleneck shortcut, ReLU6, inverted
GROUPS: dict[str, Group] = {
    "bottleneck": Group(
        "(a) linear vs non-linear bottleneck (V2 Fig. 6a)",
        ((BASELINE, {}), ("relu6-bottleneck", {"bottleneck": "relu6"})),
        "linear bottleneck > ReLU6 after the projection",
        True,
    ),
    "shortcut": Group(
        "(b) where the residual connects (V2 Fig. 6b)",
        ((BASELINE, {}), ("expansion-shortcut", {"shortcut": "expansion"}), ("no-shortcut", {"shortcut": "none"})),
        "shortcut between bottlenecks > between expansions > no residual",
        True,
    ),
    "activation": Group(
        "(c) ReLU6 vs ReLU",
        ((BASELINE, {}), ("relu", {"activation": "relu"})),
        "no accuracy ordering claimed: ReLU6 is chosen for robustness in low-precision arithmetic",
        False,
    ),
    "block": Group(
        "(d) inverted vs classic block, equal cost (V2 Fig. 3)",
        ((BASELINE, {}), ("classic-block", {"block": "classic"})),
        "inverted residual >= classic residual at equal cost (and needs far less memory)",
        True,
    ),
}
