"""CIFAR-10 / CIFAR-100 from the official archives (Krizhevsky 2009), in either published layout.

Binary layout (preferred, no pickle): one record = label byte(s) + 3072 bytes of R, G, B planes.
Python layout (what torchvision downloads): pickled dicts, read with an unpickler that only admits
numpy arrays, so a tampered file cannot run code. Downloads are checked against the official MD5.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mobilenet.files import atomic_path

BASE_URL = "https://www.cs.toronto.edu/~kriz/"


@dataclass(frozen=True)
class CifarLayout:
    archive: str
    md5: str
    folder: str
    train: tuple[str, ...]
    test: str
    label_bytes: int  # binary layout: CIFAR-100 records carry (coarse, fine); we use fine
    names: str  # class-name file (binary layout) or meta pickle (python layout)
    names_key: str = ""
    labels_key: str = ""


LAYOUTS: dict[str, tuple[CifarLayout, CifarLayout]] = {
    "cifar10": (
        CifarLayout(
            "cifar-10-binary.tar.gz",
            "c32a1d4ab5d03f1284b67883e8d87530",
            "cifar-10-batches-bin",
            tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
            "test_batch.bin",
            1,
            "batches.meta.txt",
        ),
        CifarLayout(
            "cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a",
            "cifar-10-batches-py",
            tuple(f"data_batch_{i}" for i in range(1, 6)),
            "test_batch",
            0,
            "batches.meta",
            "label_names",
            "labels",
        ),
    ),
    "cifar100": (
        CifarLayout(
            "cifar-100-binary.tar.gz",
            "03b5dce01913d631647c71ecec9e9cb8",
            "cifar-100-binary",
            ("train.bin",),
            "test.bin",
            2,
            "fine_label_names.txt",
        ),
        CifarLayout(
            "cifar-100-python.tar.gz",
            "eb9058c3a382ffc7106e4002c42a8d85",
            "cifar-100-python",
            ("train",),
            "test",
            0,
            "meta",
            "fine_label_names",
            "fine_labels",
        ),
    ),
}

DEFAULT_DIR = Path(os.environ.get("MOBILENET_DATA", Path.home() / ".cache" / "mobilenet"))


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: Path, md5: str) -> None:
    """Fetch `url` to `dest` through a temporary file; a checksum mismatch leaves nothing behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(dest, dest.suffix) as tmp:
            with tmp.open("wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
            got = md5sum(tmp)
            if got != md5:
                raise ValueError(f"download of {url} is corrupt: MD5 {got}, expected {md5}")
    except OSError as err:
        raise ValueError(
            f"cannot download {url}: {err}. Without internet access, fetch that file elsewhere and give its "
            f"path (or its folder) as --data-dir; it is checked against MD5 {md5}"
        ) from None


def _extract(archive: Path, layout: CifarLayout, root: Path) -> Path:
    got = md5sum(archive)
    if got != layout.md5:
        raise ValueError(f"{archive} is not the official {layout.archive}: MD5 {got}, expected {layout.md5}")
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")  # "data" refuses absolute paths and links out of root
    except (tarfile.TarError, OSError) as err:
        raise ValueError(f"cannot extract {archive}: {err}") from None
    return root / layout.folder


def _find(dataset: str, data_dir: str | None, allow_download: bool) -> tuple[Path, CifarLayout]:
    root = Path(data_dir) if data_dir else DEFAULT_DIR
    if root.is_file():  # the archive itself: extracted beside it
        layout = next((lay for lay in LAYOUTS[dataset] if lay.archive == root.name), None)
        if layout is None:
            names = " or ".join(lay.archive for lay in LAYOUTS[dataset])
            raise ValueError(f"--data-dir {root} is a file, not {names}; give the archive or the folder that holds it")
        if (root.parent / layout.folder).is_dir():
            return root.parent / layout.folder, layout
        return _extract(root, layout, root.parent), layout
    for layout in LAYOUTS[dataset]:
        if root.name == layout.folder and root.is_dir():
            return root, layout
        if (root / layout.folder).is_dir():
            return root / layout.folder, layout
        if (root / layout.archive).is_file():
            return _extract(root / layout.archive, layout, root), layout
    if not allow_download and data_dir and not root.exists():
        raise ValueError(f"data directory {root} does not exist")
    if not allow_download:
        names = ", ".join(f"{lay.archive} or {lay.folder}/" for lay in LAYOUTS[dataset])
        raise ValueError(f"no {dataset} data in {root}: expected {names} (or allow downloading)")
    layout = LAYOUTS[dataset][0]
    download(BASE_URL + layout.archive, root / layout.archive, layout.md5)
    return _extract(root / layout.archive, layout, root), layout


def _read_binary(folder: Path, layout: CifarLayout, name: str) -> tuple[Tensor, Tensor]:
    raw = np.fromfile(_existing(folder / name), dtype=np.uint8)
    record = layout.label_bytes + 3072
    if raw.size == 0 or raw.size % record:
        raise ValueError(f"{folder / name} is truncated: {raw.size} bytes is not a multiple of {record}")
    rows = raw.reshape(-1, record)
    labels = torch.from_numpy(rows[:, layout.label_bytes - 1].astype(np.int64))
    images = torch.from_numpy(rows[:, layout.label_bytes :].copy()).view(-1, 3, 32, 32)
    return images, labels


class _ArraysOnly(pickle.Unpickler):
    ALLOWED: frozenset[tuple[str, str]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise ValueError(f"refusing to unpickle {module}.{name}: CIFAR files hold only arrays and lists")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        with _existing(path).open("rb") as f:
            data = _ArraysOnly(io.BufferedReader(f), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as err:
        raise ValueError(f"{path} is not a readable CIFAR batch: {err}") from None
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def _read_python(folder: Path, layout: CifarLayout, name: str) -> tuple[Tensor, Tensor]:
    batch = _unpickle(folder / name)
    images = torch.from_numpy(np.asarray(batch["data"], dtype=np.uint8)).view(-1, 3, 32, 32)
    return images, torch.tensor(batch[layout.labels_key], dtype=torch.int64)


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(f"missing CIFAR file {path}")
    return path


def load_cifar(
    dataset: str, data_dir: str | None = None, allow_download: bool = True
) -> tuple[Tensor, Tensor, Tensor, Tensor, list[str]]:
    """(train images, train labels, test images, test labels, class names); images uint8 (N, 3, 32, 32)."""
    folder, layout = _find(dataset, data_dir, allow_download)
    read = _read_binary if layout.label_bytes else _read_python
    parts = [read(folder, layout, name) for name in layout.train]
    train_x, train_y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    test_x, test_y = read(folder, layout, layout.test)
    if layout.label_bytes:
        classes = [line.strip() for line in _existing(folder / layout.names).read_text().splitlines() if line.strip()]
    else:
        classes = [
            c.decode() if isinstance(c, bytes) else str(c) for c in _unpickle(folder / layout.names)[layout.names_key]
        ]
    for labels in (train_y, test_y):
        if labels.numel() and int(labels.max()) >= len(classes):
            raise ValueError(f"{folder} has label {int(labels.max())} but only {len(classes)} class names")
    return train_x, train_y, test_x, test_y, classes
