"""Published weights by name: downloaded once, verified, converted once and cached as safetensors.

    path = get("torchvision/mobilenet_v2.imagenet1k_v2")   # or a short default: get("mobilenet_v2")
    model, meta = load_pretrained("mobilenet_v2")          # the same through mobilenet.weights

Cache layout under `cache_home()` (`$MOBILENET_HOME`): `downloads/SOURCE/FILE` (the peer's file as
published) and `weights/NAME.safetensors` (ours, with the entry's preprocessing in the metadata).
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mobilenet.download import cache_home, fetch, file_lock
from mobilenet.weights.registry import ENTRIES, WeightsEntry, is_name, lookup


def download_path(entry: WeightsEntry) -> Path:
    return cache_home() / "downloads" / entry.source / entry.file_name


def converted_path(entry: WeightsEntry) -> Path:
    return cache_home() / "weights" / (entry.name.replace("/", "__") + ".safetensors")


def is_cached(entry: WeightsEntry) -> bool:
    return converted_path(entry).is_file()


def _unpack_checkpoint(archive: Path, work: Path) -> Path:
    """Extract the TF checkpoint (`*.ckpt.index` and data shards) of a TF-Slim archive; return its prefix.

    Only regular files with plain relative names are extracted (no links, no `..`, no absolute paths)."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = []
            for m in tar.getmembers():
                name = Path(m.name)
                if ".ckpt." not in name.name or name.suffix == ".meta":
                    continue
                if not m.isfile() or name.is_absolute() or ".." in name.parts:
                    raise ValueError(f"unsafe archive member {m.name!r}")
                members.append(m)
            if not any(m.name.endswith(".ckpt.index") for m in members):
                raise ValueError("no TF checkpoint (*.ckpt.index) inside")
            for m in members:
                source = tar.extractfile(m)
                if source is None:
                    raise ValueError(f"cannot read {m.name!r}")
                with source, (work / Path(m.name).name).open("wb") as out:
                    shutil.copyfileobj(source, out)
    except (tarfile.TarError, EOFError, OSError, ValueError) as err:
        archive.unlink(missing_ok=True)  # a truncated or damaged archive is fetched afresh next time
        raise ValueError(f"{archive.name} is not a usable TF-Slim archive ({err}); it was removed") from None
    index = next(work.glob("*.ckpt.index"))
    return work / index.name.removesuffix(".index")


def _convert(entry: WeightsEntry, download: Path, out: Path) -> None:
    from mobilenet.weights import convert_file, save_weights

    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        source = _unpack_checkpoint(download, Path(tmp)) if download.suffix == ".tgz" else download
        converted = convert_file(source, entry.source, arch=entry.arch, width=entry.width)
    p = entry.preprocess
    converted.metadata.update(
        {
            "registry_name": entry.name,
            "source_url": entry.url,
            "published_top1": "" if entry.top1 is None else f"{entry.top1}",
            "resolution": str(p.resolution),
            "crop": f"{p.crop:.6f}",
            "interpolation": p.interpolation,
            "mean": json.dumps(list(p.mean)),
            "std": json.dumps(list(p.std)),
        }
    )
    save_weights(converted, out)


def get(name: str, *, progress: bool = True) -> Path:
    """The cached, converted weights file for a registry name; downloads and converts on first use."""
    entry = lookup(name)
    out = converted_path(entry)
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(out.with_name(out.name + ".lock")):
        if out.is_file():  # another process converted it while this one waited
            return out
        download = fetch(
            entry.download_url(), download_path(entry), sha256=entry.sha256, size=entry.size, progress=progress
        )
        try:
            _convert(entry, download, out)
        except ValueError as err:
            raise ValueError(f"{entry.name}: {err}") from None
    return out


def resolve(name_or_path: str | Path) -> Path:
    """A local file stays itself; a registry name becomes its cached, converted file."""
    text = str(name_or_path)
    if not Path(text).exists() and is_name(text):
        return get(text)
    if not Path(text).exists() and "/" in text and text.split("/", 1)[0] in ("torchvision", "timm", "keras", "slim"):
        lookup(text)  # an unknown registry-like name: say so, with suggestions
    return Path(text)


@dataclass(frozen=True)
class Row:
    name: str
    source: str
    arch: str
    width: float
    resolution: int
    top1: str
    megabytes: str
    check: str
    cached: bool
    note: str


def local_stem(source: str | Path, registry_name: str | None = None) -> Path:
    """The default name, without suffix, of a file made from `source`: beside an existing file, or, for
    weights named from the registry, in the working directory under the name ("/" -> "_"), never in the
    cache. Registry names keep their dots (`keras_mobilenet_v2_1.0_224`)."""
    if Path(source).exists() or not (registry_name or is_name(str(source))):
        return Path(source).with_suffix("")
    return Path(str(registry_name or source).replace("/", "_"))


def rows(source: str | None = None, arch: str | None = None) -> list[Row]:
    out = []
    for e in ENTRIES.values():
        if (source and e.source != source) or (arch and e.arch != arch):
            continue
        top1 = "no top" if e.classes == 0 else f"{e.top1:.2f}" if e.top1 is not None else "-"
        note = f"unsupported: {e.unsupported}" if e.unsupported else e.top1_note
        download = download_path(e)
        size = download.stat().st_size / 1e6 if download.is_file() else e.megabytes
        mb = f"{size:.1f}" if size else "-"
        out.append(
            Row(e.name, e.source, e.arch, e.width, e.preprocess.resolution, top1, mb, e.check, is_cached(e), note)
        )
    return out


def list_text(source: str | None = None, arch: str | None = None) -> str:
    """`mobilenet weights list`: one line per published file."""
    from mobilenet.weights.registry import DEFAULTS

    table = rows(source, arch)
    width = max(len(r.name) for r in table) if table else 10
    head = f"{'name':<{width}}  {'arch':<12} {'width':>5} {'res':>4} {'top-1':>7} {'MB':>5}  {'cached':<6}  checked by"
    lines = [head, "-" * len(head)]
    for r in table:
        cached = "yes" if r.cached else "no"
        line = (
            f"{r.name:<{width}}  {r.arch:<12} {r.width:>5g} {r.resolution:>4} {r.top1:>7} {r.megabytes:>5}  "
            f"{cached:<6}  {r.check}"
        )
        lines.append(line + (f"  ({r.note})" if r.note else ""))
    defaults = ", ".join(f"{k} = {v}" for k, v in sorted(DEFAULTS.items()))
    lines += [
        f"{len(table)} files; top-1: the source's published ImageNet-1k top-1 (%) at the file's resolution; "
        "MB: the downloaded file, or the size the source publishes (- where it publishes none).",
        f"cache: {cache_home()} (set MOBILENET_HOME to move it; MOBILENET_WEIGHTS_URL for a mirror)",
        f"short names: {defaults}",
    ]
    return "\n".join(lines)
