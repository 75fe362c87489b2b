"""Read and write the mbfast model file with NumPy only (no torch).

Byte layout (little-endian, FORMAT_VERSION 1):
    magic b"MBFAST\\x00\\x01"  u32 format_version  u32 layout_revision
    u64 config_len  config JSON (utf-8)
    u32 n_tensors, then per tensor:
        u16 name_len  name (utf-8)  u8 dtype (0 = float32)  u8 ndim  ndim x u64 shape
        zero padding to a multiple of 64 bytes from the file start, then the float32 data
    u32 CRC-32 (zlib) of every byte before it
"""
from __future__ import annotations

import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mbfast.model.config import ModelConfig
from mbfast.model.layout import FORMAT_VERSION, LAYOUT_REVISION, weight_layout

MAGIC = b"MBFAST\x00\x01"
ALIGNMENT = 64
DTYPE_FLOAT32 = 0


class ModelFileError(ValueError):
    """A model file that cannot be read: corrupt, truncated, newer than this mbfast, or not matching its config."""


@dataclass(frozen=True)
class ModelFile:
    config: ModelConfig
    tensors: dict[str, np.ndarray]  # name -> float32 array, shapes as weight_layout(config)


def check_tensors(config: ModelConfig, tensors: dict[str, np.ndarray]) -> None:
    """Raise one ModelFileError listing every missing, extra or mis-shaped tensor."""
    expected = dict(weight_layout(config))
    problems = [f"missing {name} {shape}" for name, shape in expected.items() if name not in tensors]
    problems += [f"extra {name}" for name in tensors if name not in expected]
    problems += [
        f"mis-shaped {name}: expected {expected[name]}, got {tuple(array.shape)}"
        for name, array in tensors.items()
        if name in expected and tuple(array.shape) != expected[name]
    ]
    if problems:
        raise ModelFileError("model tensors do not match the layout:\n  " + "\n  ".join(problems))


def write_model(path: str | os.PathLike[str], config: ModelConfig, tensors: dict[str, np.ndarray]) -> None:
    """Write config + tensors (in weight_layout order) atomically to `path`."""
    check_tensors(config, tensors)
    body = bytearray(MAGIC)
    body += struct.pack("<II", FORMAT_VERSION, LAYOUT_REVISION)
    config_bytes = config.to_json().encode("utf-8")
    body += struct.pack("<Q", len(config_bytes)) + config_bytes
    layout = weight_layout(config)
    body += struct.pack("<I", len(layout))
    for name, shape in layout:
        name_bytes = name.encode("utf-8")
        body += struct.pack("<H", len(name_bytes)) + name_bytes
        body += struct.pack("<BB", DTYPE_FLOAT32, len(shape)) + struct.pack(f"<{len(shape)}Q", *shape)
        body += b"\x00" * (-len(body) % ALIGNMENT)
        body += np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
    body += struct.pack("<I", zlib.crc32(body))
    atomic_write(Path(path), bytes(body))


def atomic_write(path: Path, data: bytes) -> None:
    """Temp file in the same folder + fsync + rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


class _Reader:
    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.offset = 0
        self.source = source

    def take(self, size: int, what: str) -> bytes:
        if self.offset + size > len(self.data):
            raise ModelFileError(f"{self.source}: truncated while reading {what} at byte {self.offset}")
        chunk = self.data[self.offset:self.offset + size]
        self.offset += size
        return chunk

    def unpack(self, fmt: str, what: str) -> tuple[int, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))


def read_model(path: str | os.PathLike[str]) -> ModelFile:
    """Read and validate a model file; every problem raises ModelFileError naming the file."""
    source = str(path)
    data = Path(path).read_bytes()
    reader = _Reader(data, source)
    if reader.take(len(MAGIC), "magic") != MAGIC:
        raise ModelFileError(f"{source}: not an mbfast model file (bad magic)")
    format_version, layout_revision = reader.unpack("<II", "versions")
    if format_version > FORMAT_VERSION:
        raise ModelFileError(f"{source}: model file format {format_version} is newer than this mbfast "
                             f"(reads up to {FORMAT_VERSION}); upgrade mbfast")
    if layout_revision > LAYOUT_REVISION:
        raise ModelFileError(f"{source}: model layout revision {layout_revision} is newer than this mbfast "
                             f"(reads up to {LAYOUT_REVISION}); upgrade mbfast")
    if len(data) < len(MAGIC) + 4:
        raise ModelFileError(f"{source}: truncated")
    (stored_crc,) = struct.unpack("<I", data[-4:])
    if zlib.crc32(data[:-4]) != stored_crc:
        raise ModelFileError(f"{source}: checksum mismatch (file corrupt or truncated)")
    (config_len,) = reader.unpack("<Q", "config length")
    config = ModelConfig.from_json(reader.take(config_len, "config").decode("utf-8"))
    (n_tensors,) = reader.unpack("<I", "tensor count")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = reader.unpack("<H", "tensor name length")
        name = reader.take(name_len, "tensor name").decode("utf-8")
        dtype, ndim = reader.unpack("<BB", f"dtype of {name}")
        if dtype != DTYPE_FLOAT32:
            raise ModelFileError(f"{source}: tensor {name} has unknown dtype code {dtype}")
        shape = reader.unpack(f"<{ndim}Q", f"shape of {name}")
        reader.offset += -reader.offset % ALIGNMENT
        count = int(np.prod(shape, dtype=np.int64))
        raw = reader.take(4 * count, f"data of {name}")
        tensors[name] = np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)
        bad = np.flatnonzero(~np.isfinite(tensors[name]))
        if len(bad):
            raise ModelFileError(f"{source}: tensor {name} holds {tensors[name].flat[bad[0]]} at flat index "
                                 f"{bad[0]}; every weight must be finite")
    if reader.offset != len(data) - 4:
        raise ModelFileError(f"{source}: {len(data) - 4 - reader.offset} unexpected bytes after the tensors")
    try:
        check_tensors(config, tensors)
    except ModelFileError as error:
        raise ModelFileError(f"{source}: {error}") from None
    return ModelFile(config=config, tensors=tensors)
