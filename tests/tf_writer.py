"""A minimal writer of TensorFlow's checkpoint format (one uncompressed table block, one data shard), so
tests can build whole TF-Slim checkpoints without TensorFlow. The reader it feeds was validated against a
file TensorFlow itself wrote (tests/data/tf_checkpoint)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_DTYPE = {np.dtype(np.float32): 1, np.dtype(np.int64): 9, np.dtype(np.int32): 3}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in entries)
    return body + struct.pack("<I", 0) + struct.pack("<I", 1)  # one restart point at offset 0


def write_tf_checkpoint(prefix: Path, tensors: dict[str, np.ndarray]) -> None:
    data, entries = bytearray(), [(b"", _field(1, 1))]  # BundleHeaderProto: one shard
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        dims = b"".join(_field(2, _field(1, d)) for d in array.shape)
        entry = _field(1, _DTYPE[array.dtype]) + _field(2, dims) + _field(4, len(data)) + _field(5, array.nbytes)
        entries.append((name.encode(), entry))
        data += array.astype(array.dtype.newbyteorder("<")).tobytes()
    Path(f"{prefix}.data-00000-of-00001").write_bytes(bytes(data))
    table = _block(entries)
    index = _block([(entries[-1][0], _varint(0) + _varint(len(table)))])
    out = bytearray(table + b"\0" + b"\0\0\0\0")  # block type (uncompressed) + crc (not checked)
    index_offset = len(out)
    out += index + b"\0" + b"\0\0\0\0"
    handles = _varint(0) + _varint(0) + _varint(index_offset) + _varint(len(index))
    out += handles.ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)
    Path(f"{prefix}.index").write_bytes(bytes(out))
