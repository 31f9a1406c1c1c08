"""`mobilenet train` as one call: a recipe, then a config file, then the flags; or a run resumed as saved,
with only the settings of the machine (not of the result) allowed to change."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mobilenet.config import GRAPH_FIELDS, STRIDE_FIELDS, DataConfig, ModelConfig, TrainConfig, resolve_recipe
from mobilenet.files import LAST
from mobilenet.train.fit import fit


def train_run(
    recipe: str = "digits",
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    out: str | None = None,
    resume: str | None = None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """`mobilenet train`: a recipe, then a config file, then `overrides` (flags); or resume a run as saved."""
    given = sorted(k for k, v in (overrides or {}).items() if v is not None)
    if resume is not None and not str(resume).strip():
        raise ValueError("--resume needs a run directory (it was given an empty one)")
    if resume:
        if out:
            raise ValueError("--resume continues the run in its own directory; drop --out")
        fixed = [k for k in given if k not in MACHINE_FIELDS]
        if fixed or config_file or num_classes is not None:
            first = fixed[0] if fixed else "config" if config_file else "num_classes"
            raise ValueError(
                f"--resume continues with the run's saved configs; drop --{first.replace('_', '-')} (only "
                f"{', '.join('--' + k.replace('_', '-') for k in MACHINE_FIELDS)} may change: they do not "
                "change the result)"
            )
        machine = {k: _absolute(v) if k == "data_dir" else v for k, v in (overrides or {}).items() if k in given}
        return fit(ModelConfig(), DataConfig(), TrainConfig(), resume=_run_of(resume), machine=machine)
    adapt = {}  # with --init: the stride changes asked for on the command line (the recipe's are not)
    if (overrides or {}).get("init"):
        fixed = [k for k in GRAPH_FIELDS if k in given and k not in STRIDE_FIELDS]
        if fixed:
            raise ValueError(f"--init weights fix the architecture; drop --{fixed[0].replace('_', '-')}")
        adapt = {k: (overrides or {})[k] for k in STRIDE_FIELDS if k in given}
    configs = resolve_recipe(recipe, config_file, overrides)
    data = configs.data
    if data.data_dir:
        data = dataclasses.replace(data, data_dir=_absolute(data.data_dir))
    return fit(configs.model, data, configs.train, out=out, num_classes=num_classes, adapt=adapt)


def _absolute(data_dir: str) -> str:
    """Saved as an absolute path: the run resumes and evaluates from any directory."""
    return str(Path(data_dir).expanduser().resolve())


# Settings that decide where and how fast a run computes, not what it computes: a resumed run may change them.
MACHINE_FIELDS: tuple[str, ...] = ("threads", "device", "workers", "data_dir")


def _run_of(resume: str) -> str:
    """The run directory `--resume` names: the directory itself, or its last.pt."""
    path = Path(resume)
    if path.is_file():
        if path.name != LAST:
            raise ValueError(f"--resume continues a run from its {LAST}: give the run directory, not {path.name}")
        return str(path.parent)
    return resume
