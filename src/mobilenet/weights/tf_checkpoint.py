"""Read TensorFlow checkpoints (TF-Slim's `.ckpt` files) without TensorFlow.

A checkpoint `PREFIX` is `PREFIX.index`, a sorted key -> value table in LevelDB's format (uncompressed
blocks of prefix-compressed entries, an index block, a 48-byte footer), and `PREFIX.data-0000K-of-0000N`
shards of raw little-endian tensor bytes. The index maps each variable name to a `BundleEntryProto`
(dtype, shape, shard, offset, size); the empty key holds the `BundleHeaderProto` (number of shards).
Only the few protobuf fields needed are decoded, by hand: no protobuf or TensorFlow import.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_MAGIC = 0xDB4775248B80FB57  # LevelDB table magic number, the footer's last 8 bytes
# tensorflow/core/framework/types.proto DataType -> numpy (strings and quantized types are not weights)
_DTYPES = {
    1: np.float32,
    2: np.float64,
    3: np.int32,
    4: np.uint8,
    5: np.int16,
    6: np.int8,
    9: np.int64,
    10: np.bool_,
    17: np.uint16,
    19: np.float16,
    22: np.uint32,
    23: np.uint64,
}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: ints for varint/fixed fields, bytes for the others."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((number, value))
    return out


def _block(data: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of one table block; keys share prefixes with the entry before them."""
    if offset + size + 5 > len(data):
        raise ValueError("index block beyond the end of the file")
    if data[offset + size] != 0:
        raise ValueError("compressed index blocks are not supported (TensorFlow writes them uncompressed)")
    block = data[offset : offset + size]
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * restarts
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + length]))
        pos += length
    return entries


def _table(path: Path) -> list[tuple[bytes, bytes]]:
    data = path.read_bytes()
    if len(data) < 48 or struct.unpack_from("<Q", data, len(data) - 8)[0] != _MAGIC:
        raise ValueError(f"{path} is not a TensorFlow checkpoint index (bad footer)")
    footer = data[-48:]
    _, pos = _varint(footer, 0)  # metaindex handle: unused
    _, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)
    entries = []
    for _, handle in _block(data, index_offset, index_size):
        offset, pos = _varint(handle, 0)
        size, _ = _varint(handle, pos)
        entries += _block(data, offset, size)
    return entries


def read_tf_checkpoint(prefix: str | Path) -> dict[str, np.ndarray]:
    """Every variable of the checkpoint `prefix` (the path without `.index`) as a numpy array."""
    prefix = Path(prefix)
    try:
        entries = _table(Path(f"{prefix}.index"))
    except (ValueError, struct.error, IndexError, OSError) as err:
        raise ValueError(f"{prefix}.index is not a readable TensorFlow checkpoint index: {err}") from None
    shards: dict[int, bytes] = {}
    num_shards = 1
    out: dict[str, np.ndarray] = {}
    for key, value in entries:
        fields = _fields(value)
        if not key:  # BundleHeaderProto
            num_shards = next((int(v) for n, v in fields if n == 1 and isinstance(v, int)), 1)
            continue
        name = key.decode()
        entry = {n: v for n, v in fields if n != 2}
        dims = [
            d
            for n, shape in fields
            if n == 2 and isinstance(shape, bytes)
            for k, d in _fields(shape)
            if k == 2 and isinstance(d, bytes)
        ]
        shape = tuple(int(next((v for n, v in _fields(d) if n == 1), 0)) for d in dims)
        dtype = _DTYPES.get(int(entry.get(1, 0)))
        if dtype is None or 7 in entry:  # a string or quantized tensor, or a sliced (partitioned) variable
            raise ValueError(f"{prefix}: variable {name!r} has a type or layout this reader does not handle")
        shard, offset, size = int(entry.get(3, 0)), int(entry.get(4, 0)), int(entry.get(5, 0))
        if shard not in shards:
            path = Path(f"{prefix}.data-{shard:05d}-of-{num_shards:05d}")
            if not path.is_file():
                raise ValueError(f"{prefix}: data file {path.name} is missing")
            shards[shard] = path.read_bytes()
        blob = shards[shard]
        if size != int(np.prod(shape)) * np.dtype(dtype).itemsize or offset + size > len(blob):
            raise ValueError(f"{prefix}: variable {name!r} does not fit its data file (truncated?)")
        out[name] = (
            np.frombuffer(
                blob, dtype=np.dtype(dtype).newbyteorder("<"), count=size // np.dtype(dtype).itemsize, offset=offset
            )
            .reshape(shape)
            .copy()
        )
    return out
