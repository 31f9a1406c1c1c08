"""The V2 paper's Figure 1: ReLU destroys a low-dimensional manifold unless it is embedded in enough dimensions.

A 2-D spiral is embedded into n dimensions by a random Gaussian matrix T (n x 2), passed through ReLU, and
projected back with the pseudo-inverse of T. For small n most points lose coordinates to ReLU's zeros and
cannot be recovered; as n grows, each point keeps enough positive coordinates for T^+ to invert the map.
This is the argument for the *linear* bottleneck: the narrow tensors must not go through a ReLU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DIMENSIONS: tuple[int, ...] = (2, 3, 5, 15, 30)


def spiral(points: int = 1000, turns: float = 3.0) -> np.ndarray:
    """(points, 2) Archimedean spiral centred on the origin, so every direction has negative coordinates."""
    t = np.linspace(0.0, 1.0, points)
    angle = 2 * np.pi * turns * t
    radius = 0.1 + t
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)


@dataclass(frozen=True)
class ManifoldResult:
    n: int
    recovered: np.ndarray  # (points, 2): the reconstruction of the median trial, for the figure
    error: float  # median over trials of the mean squared reconstruction error / the spiral's mean power
    error_q25: float  # its quartiles over the trials: a near-singular T (n = 2) makes the mean meaningless
    error_q75: float
    shape_error: float  # the same after the best single rescaling of T^+ ReLU(T x): loss of shape, not size
    zeroed: float  # mean fraction of ReLU outputs that are zero


def relu_manifold(
    dimensions: tuple[int, ...] = DIMENSIONS, *, points: int = 1000, trials: int = 20, seed: int = 0
) -> list[ManifoldResult]:
    """Embed, ReLU and project back the spiral for each n, over `trials` random matrices T. Each n draws
    from its own stream, seeded by (seed, n), so its row does not depend on the other dimensions asked for."""
    if not dimensions or min(dimensions) < 1:
        raise ValueError(f"dimensions must be integers >= 1, got {dimensions!r}")
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    x = spiral(points)
    power = float((x**2).sum(1).mean())
    results = []
    for n in dimensions:
        rng = np.random.default_rng([seed, n])
        errors, shapes, zeros, reconstructions = [], [], [], []
        for _ in range(trials):
            t = rng.standard_normal((n, 2))
            y = np.maximum(x @ t.T, 0.0)
            recovered = y @ np.linalg.pinv(t).T
            errors.append(float(((recovered - x) ** 2).sum(1).mean()) / power)
            # ReLU halves a Gaussian embedding's energy, so T^+ returns a shrunken spiral even when no
            # information is lost; the best scalar factor separates shrinking from destroying.
            scale = float((recovered * x).sum() / max(float((recovered**2).sum()), 1e-12))
            shapes.append(float(((scale * recovered - x) ** 2).sum(1).mean()) / power)
            zeros.append(float((y == 0).mean()))
            reconstructions.append(recovered)
        q25, median, q75 = np.percentile(errors, [25, 50, 75])
        typical = int(np.argsort(errors)[(trials - 1) // 2])  # the trial at the median (the lower one if even)
        results.append(
            ManifoldResult(
                n,
                reconstructions[typical],
                float(median),
                float(q25),
                float(q75),
                float(np.median(shapes)),
                float(np.mean(zeros)),
            )
        )
    return results


def manifold_table(results: list[ManifoldResult]) -> str:
    lines = [
        "n | reconstruction error, median [quartiles] over T | after best rescaling (median) | ReLU outputs that are 0",
        "---|---|---|---",
    ]
    for r in results:
        lines.append(
            f"{r.n} | {r.error:.4f} [{r.error_q25:.4f}, {r.error_q75:.4f}] | {r.shape_error:.4f} | {r.zeroed:.1%}"
        )
    return "\n".join(lines)


def plot_manifold(results: list[ManifoldResult], path: str | Path, points: int = 1000) -> Path:
    from mobilenet.figures import file_figure

    x = spiral(points)
    fig = file_figure(2.6 * (len(results) + 1), 2.8)
    axes = fig.subplots(1, len(results) + 1)
    colors = np.linspace(0, 1, len(x))
    panels = [("Input", x), *((f"n = {r.n}\nmedian trial: error {r.error:.3f}", r.recovered) for r in results)]
    for ax, (title, data) in zip(axes, panels, strict=True):
        ax.scatter(data[:, 0], data[:, 1], c=colors, cmap="viridis", s=2)
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("ReLU(T x) projected back with T^+ (Sandler et al. 2018, Fig. 1)", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    return out


def run_relu_manifold(
    out: str | Path, dims: tuple[int, ...] = (2, 3, 5, 15, 30), *, trials: int = 20, seed: int = 0
) -> str:
    """The whole experiment: results, `relu_manifold.md` and `relu_manifold.png` in `out`; returns the report."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        results = relu_manifold(dims, trials=trials, seed=seed)
        table = manifold_table(results)
        (out / "relu_manifold.md").write_text(table + "\n")
        figure = plot_manifold(results, out / "relu_manifold.png")
    except OSError as err:
        raise ValueError(f"cannot write the results to {out}: {err.strerror or err}") from None
    return f"{table}\nwrote {out / 'relu_manifold.md'} and {figure}"
