"""Figures that only ever go to a file (PNG): matplotlib's `Figure` without pyplot.

No backend is chosen or switched, so a session that has its own (a notebook) keeps it and its open
figures, and matplotlib is imported when a figure is drawn, not with the code that may draw one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def file_figure(width: float, height: float) -> Figure:
    """An empty figure of `width` x `height` inches; draw on `fig.subplots(...)`, then `fig.savefig(path)`."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))
