"""Resumable, verified downloads into a cache (no torch import).

A transfer goes to `FILE.part`; an interrupted one is continued with an HTTP range request next time.
Only a complete file whose hash (or size) checks out is renamed to `FILE`, so the cache never holds a
torn or wrong file. A lock file serialises two processes fetching the same file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1 << 20


def cache_home() -> Path:
    """`$MOBILENET_HOME`, else `$XDG_CACHE_HOME/mobilenet`, else `~/.cache/mobilenet`."""
    if os.environ.get("MOBILENET_HOME"):
        return Path(os.environ["MOBILENET_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mobilenet"


def sha256sum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock held while the block runs (released by the OS if the process dies). The lock
    file is removed when the block ends, while still held; a process that waited on the removed file
    sees that the path no longer names what it locked and locks the path afresh."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path, "a")  # noqa: SIM115 - held across the yield below
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()  # closing releases the lock


def verify(path: Path, sha256: str = "", size: int = 0) -> None:
    """Raise ValueError unless the file's SHA-256 equals (or, for a published prefix, starts with)
    `sha256` and its size equals `size` (each check only where given)."""
    if size and path.stat().st_size != size:
        raise ValueError(f"size {path.stat().st_size:,} bytes, expected {size:,}")
    if sha256:
        got = sha256sum(path)
        if not got.startswith(sha256.lower()):
            raise ValueError(f"SHA-256 {got[: max(len(sha256), 16)]}..., expected {sha256}")


def _transfer(url: str, part: Path, progress: bool) -> None:
    from tqdm import tqdm

    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "mobilenet"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the range starts at the end: the part is already whole
            return
        raise
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0  # the server ignored the range: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else None
        with (
            part.open("ab" if resumed else "wb") as out,
            tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=part.stem, disable=not progress) as bar,
        ):
            while chunk := response.read(CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
        if total is not None and part.stat().st_size < total:
            raise OSError(f"connection closed after {part.stat().st_size:,} of {total:,} bytes")


def fetch(url: str, dest: Path, *, sha256: str = "", size: int = 0, progress: bool = True) -> Path:
    """Download `url` to `dest` unless it is already there; resume a partial transfer; verify.

    A hash or size mismatch deletes the transfer and raises ValueError; a network failure keeps the
    partial `dest.part` for the next attempt and raises ValueError saying how to place the file by hand.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with file_lock(dest.with_name(dest.name + ".lock")):
        if dest.is_file():  # downloaded before, or placed there by hand: checked all the same
            try:
                verify(dest, sha256, size)
            except ValueError as err:
                raise ValueError(f"{dest} is not the file {url} names: {err}; delete it and retry") from None
            return dest
        try:
            _transfer(url, part, progress)
        except (OSError, urllib.error.URLError) as err:
            reason = getattr(err, "reason", None) or err
            raise ValueError(
                f"cannot download {url} ({reason}). Without internet access, fetch that file elsewhere and "
                f"place it at {dest}, or set MOBILENET_WEIGHTS_URL to a mirror that serves it"
            ) from None
        try:
            verify(part, sha256, size)
        except ValueError as err:
            part.unlink(missing_ok=True)
            raise ValueError(f"download of {url} refused: {err}; nothing was kept") from None
        with open(part, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(part, dest)
    return dest
