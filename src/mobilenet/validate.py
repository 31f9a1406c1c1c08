"""Field types of the frozen configs, checked before their own rules compare values. No torch import."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

_HINTS: dict[Any, dict[str, Any]] = {}  # per config class: its string annotations, evaluated once


def check_types(config: Any) -> None:
    """Raise ValueError naming the first field whose value is not of its declared type (a config file's
    `epochs = "1"` or `batch_size = 16.0`), before any rule compares it. An int is a valid float."""
    cls = type(config)
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    hints = _HINTS[cls]
    for f in dataclasses.fields(config):
        value, want = getattr(config, f.name), hints[f.name]
        allowed = typing.get_args(want) if isinstance(want, types.UnionType) else (want,)
        if not any(_is_a(value, kind) for kind in allowed):
            names = " or ".join(_KINDS.get(kind, str(kind)) for kind in allowed)
            raise ValueError(f"{f.name} must be {names}, got {value!r}")


_KINDS: dict[object, str] = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    type(None): "empty",
}


def _is_a(value: object, kind: object) -> bool:
    if kind is type(None):
        return value is None
    if kind is bool or kind is str:
        return isinstance(value, kind)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True  # other field types keep their own rules
