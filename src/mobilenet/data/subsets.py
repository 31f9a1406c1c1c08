"""A fixed, class-stratified subset of a training split (`--train-images N`): the same N images on every run."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def stratified_subset(labels: Sequence[int], n: int, seed: int = 0) -> list[int]:
    """Indices of `n` items, each class kept in proportion (largest remainders), chosen by `seed`, sorted."""
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(i)
    if not len(by_class) <= n <= len(labels):
        raise ValueError(
            f"train_images must be between {len(by_class)} (one per class) and {len(labels)} "
            f"(the whole training split), got {n}"
        )
    g = torch.Generator().manual_seed(seed)
    share = {c: n * len(items) / len(labels) for c, items in by_class.items()}
    take = {c: max(1, int(q)) for c, q in share.items()}  # every class keeps at least one image
    while sum(take.values()) > n:  # the minimum of one pushed the total over: trim the largest class
        take[max(take, key=lambda c: take[c])] -= 1
    for c in sorted(share, key=lambda c: share[c] - int(share[c]), reverse=True)[: n - sum(take.values())]:
        take[c] += 1
    chosen: list[int] = []
    for c, items in sorted(by_class.items()):
        order = torch.randperm(len(items), generator=g)[: take[c]]
        chosen += [items[int(j)] for j in order]
    return sorted(chosen)
