"""`mobilenet memory` as text and JSON: the V2 paper's Table 3 beside our counts, live memory per op,
and the split-inference plan. No torch import."""

from __future__ import annotations

from typing import Any

from mobilenet.config import ModelConfig
from mobilenet.memory import (
    OpMemory,
    dtype_bytes,
    live_totals,
    materialised,
    per_op_memory,
    split_memory,
)
from mobilenet.published import (
    V2_TABLE3,
    V2_TABLE3_MAX_KB,
    V2_TABLE3_NOTE,
    V2_TABLE3_STREAM_MAX_KB,
)
from mobilenet.report import TITLES, columns


def _parts(name: str) -> list[str]:
    return name.split("+")


def _belongs(op: OpMemory, prefixes: list[str]) -> bool:
    return any(op.name == p or op.name.startswith(p + ".") for p in prefixes)


def memory_data(
    config: ModelConfig,
    resolution: int = 224,
    *,
    dtype: str = "float16",
    splits: int | None = None,
    batch: int = 1,
    first_layer: str = "split",
) -> dict[str, Any]:
    """Table 3 rows (ours and the paper's) and per-op live memory, plain and split, as plain data."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    nbytes = dtype_bytes(dtype)
    rows = materialised(config, resolution, first_layer)
    # the paper's Table 3 is for the 1.0 networks at 224
    paper = (
        {size: row for size, *row in V2_TABLE3} if resolution == 224 and not config.cifar and config.width == 1 else {}
    )
    column = {"mobilenet_v1": 0, "mobilenet_v2": 2}.get(config.arch)
    data: dict[str, Any] = {
        "arch": config.arch,
        "width": config.width,
        "resolution": resolution,
        "dtype": dtype,
        "bytes_per_element": nbytes,
        "batch": batch,
        "first_layer": first_layer,
        "materialised": [
            {
                "size": r.size,
                "channels": r.channels,
                "bytes": r.bytes(dtype) * batch,
                "producer": r.name,
                "paper": None if column is None or r.size not in paper else paper[r.size][column : column + 2],
            }
            for r in rows
        ],
        "materialised_max_bytes": max(r.bytes(dtype) for r in rows) * batch,
    }
    if column is not None and paper and config.width == 1.0:
        table = V2_TABLE3_STREAM_MAX_KB if first_layer == "stream" else V2_TABLE3_MAX_KB
        data["paper_max_kb"] = table[config.arch]
    plain = per_op_memory(config, resolution)
    data["per_op"] = [{"name": op.name, "elements": op.total} for op in plain]
    data["per_op_peak_bytes"] = max(op.total for op in plain) * nbytes * batch
    if splits is not None:
        ops = split_memory(config, resolution, splits)
        data["splits"] = splits
        data["split"] = [
            {
                "name": op.name,
                "elements": op.total,
                "per_op_elements": max(p.total for p in plain if _belongs(p, _parts(op.name))),
            }
            for op in ops
        ]
        data["split_peak_bytes"] = max(op.total for op in ops) * nbytes * batch
        data["split_peak_bytes_input_held"] = max(live_totals(ops, input_held=True)) * nbytes * batch
    return data


def _kb(nbytes: int) -> str:
    return f"{nbytes / 1000:,.1f}"


def memory_text(config: ModelConfig, resolution: int = 224, **kwargs: Any) -> str:
    d = memory_data(config, resolution, **kwargs)
    title = TITLES.get(config.arch, config.arch)
    lines = [
        f"{title} {config.width}, {resolution}x{resolution}, batch {d['batch']}, {d['dtype']} activations "
        f"({d['bytes_per_element']} B/element); kB = 1000 bytes",
        "",
        f"Largest tensor that must exist whole at each spatial size (V2 paper Table 3; first layer: "
        f"{d['first_layer']})",
    ]
    rows: list[tuple[str, ...]] = [("size", "channels", "kB", "producer", "paper ch/kB")]
    for r in d["materialised"]:
        paper = "" if r["paper"] is None else f"{r['paper'][0]}/{r['paper'][1]}"
        rows.append((f"{r['size']}x{r['size']}", str(r["channels"]), _kb(r["bytes"]), r["producer"], paper))
    paper_max = f"{d['paper_max_kb']}K" if "paper_max_kb" in d else ""
    rows.append(("max", "", _kb(d["materialised_max_bytes"]), "", paper_max))
    lines += columns(rows)
    if paper_max:
        lines.append(f"note: {V2_TABLE3_NOTE}")
    lines.append("")
    nbytes = d["bytes_per_element"] * d["batch"]
    if "split" in d:
        lines.append(
            f"Live activations per op (inputs + outputs + held residual input + scratch), elements per image: "
            f"every conv its own op vs each block one op with its inner tensor in t={d['splits']} groups"
        )
        rows = [("op", "per conv (max)", f"split t={d['splits']}", "ratio")]
        for op in d["split"]:
            ratio = op["per_op_elements"] / op["elements"]
            rows.append((op["name"], f"{op['per_op_elements']:,}", f"{op['elements']:,}", f"{ratio:.2f}x"))
        per_op, split = d["per_op_peak_bytes"], d["split_peak_bytes"]
        rows.append(("peak kB", _kb(per_op), _kb(split), f"{per_op / split:.2f}x"))
        lines += columns(rows)
        lines.append(
            f"with the caller's input batch alive throughout (what a measurement sees): "
            f"{_kb(d['split_peak_bytes_input_held'])} kB"
        )
    else:
        peak = max(d["per_op"], key=lambda op: op["elements"])
        lines.append(
            f"Peak live activations with every conv its own op: {_kb(peak['elements'] * nbytes)} kB "
            f"at {peak['name']}"
            + ("" if config.arch != "mobilenet_v2" else "; add --split T for the memory-efficient plan")
        )
    return "\n".join(lines)
