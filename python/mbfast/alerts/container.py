"""Avro object container files (the format of ZTF/Rubin alert dumps and Kafka archives), read packet by packet.

Unlike `fastavro.reader`, a bad block does not end the file: the problem is reported with its packet index and
reading resumes at the next sync marker. Records are decoded with a reader schema that keeps only the fields
the caller names, so cutouts and the ~100 unused candidate fields are skipped rather than built as Python objects.
This is not a general Avro library: it reads containers only (Confluent-framed Kafka messages: read_messages).
"""
from __future__ import annotations

import bz2
import io
import json
import lzma
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


MAGIC = b"Obj\x01"


def _fastavro() -> Any:
    """fastavro is optional (mbfast[alerts]): Parquet alerts and the rest of mbfast work without it."""
    try:
        import fastavro
    except ImportError:
        raise ValueError("reading Avro alert packets needs fastavro: pip install 'mbfast[alerts]'") from None
    return fastavro
SYNC_SIZE = 16


def describe(exc: Exception) -> str:
    """A decoding error in words: a string that is not UTF-8 says so rather than only naming the codec."""
    if isinstance(exc, UnicodeDecodeError):
        return f"a string field is not UTF-8 text ({exc.reason} at byte {exc.start} of the string)"
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Packet:
    """One decoded record (`record`) or one undecodable one (`error`), with its 0-based index in the file."""

    index: int
    record: dict[str, Any] | None
    error: str | None = None


def _read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """Avro zig-zag varint at buf[pos:] -> (value, new position); IndexError past the end."""
    shift = 0
    accum = 0
    while True:
        byte = buf[pos]
        pos += 1
        accum |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (accum >> 1) ^ -(accum & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _read_header(buf: bytes) -> tuple[dict[str, bytes], bytes, int]:
    """File metadata map, sync marker and the offset of the first block."""
    if buf[:4] != MAGIC:
        raise ValueError(f"not an Avro container file (starts with {buf[:4]!r}, expected {MAGIC!r})")
    pos = 4
    meta: dict[str, bytes] = {}
    while True:
        count, pos = _read_long(buf, pos)
        if count == 0:
            break
        if count < 0:  # negative count: a byte size follows
            count = -count
            _, pos = _read_long(buf, pos)
        for _ in range(count):
            size, pos = _read_long(buf, pos)
            try:
                key = buf[pos:pos + size].decode()
            except UnicodeDecodeError:
                raise ValueError(f"Avro header: metadata key at byte {pos} is not UTF-8 text") from None
            pos += size
            size, pos = _read_long(buf, pos)
            meta[key] = buf[pos:pos + size]
            pos += size
    sync = buf[pos:pos + SYNC_SIZE]
    if len(sync) != SYNC_SIZE:
        raise ValueError("header ends before its sync marker")
    return meta, sync, pos + SYNC_SIZE


def _decompressor(codec: str) -> Callable[[bytes], bytes]:
    if codec == "null":
        return bytes
    if codec == "deflate":
        return lambda data: zlib.decompress(data, -15)
    if codec == "bzip2":
        return bz2.decompress
    if codec == "xz":
        return lzma.decompress
    if codec in ("snappy", "zstandard"):
        try:
            import cramjam
        except ImportError:
            raise ValueError(f"codec {codec!r} needs cramjam: pip install 'mbfast[alerts]'") from None
        if codec == "zstandard":
            return lambda data: bytes(cramjam.zstd.decompress(data))

        def snappy(data: bytes) -> bytes:
            # Avro snappy blocks: raw snappy then a big-endian CRC-32 of the uncompressed bytes
            out = bytes(cramjam.snappy.decompress_raw(data[:-4]))
            if zlib.crc32(out) != int.from_bytes(data[-4:], "big"):
                raise ValueError("snappy block CRC mismatch")
            return out

        return snappy
    raise ValueError(f"unsupported Avro codec {codec!r}")


def project_schema(schema: Any, keep: frozenset[str]) -> Any:
    """Copy of a writer schema whose records keep only fields named in `keep` (at any depth).

    Used as the reader schema: Avro schema resolution then skips the dropped fields' bytes.
    """
    if isinstance(schema, list):
        return [project_schema(branch, keep) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if kind == "record":
        fields = [dict(field, type=project_schema(field["type"], keep)) for field in schema["fields"]
                  if field["name"] in keep]
        return dict(schema, fields=fields)
    if kind == "array":
        return dict(schema, items=project_schema(schema["items"], keep))
    if kind == "map":
        return dict(schema, values=project_schema(schema["values"], keep))
    if isinstance(kind, (dict, list)):
        return dict(schema, type=project_schema(kind, keep))
    return schema


@dataclass(frozen=True)
class Container:
    """An opened container: its writer schema (JSON), codec and sync marker, and the raw bytes."""

    data: bytes
    schema: dict[str, Any]
    codec: str
    sync: bytes
    start: int

    @classmethod
    def from_bytes(cls, data: bytes) -> Container:
        try:
            meta, sync, start = _read_header(data)
        except IndexError:
            raise ValueError("truncated Avro header") from None
        if "avro.schema" not in meta:
            raise ValueError("Avro header has no avro.schema")
        try:
            schema = json.loads(meta["avro.schema"].decode())
            codec = meta.get("avro.codec", b"null").decode()
        except UnicodeDecodeError as exc:
            raise ValueError(f"Avro header: avro.schema or avro.codec is not UTF-8 text ({exc.reason} at byte "
                             f"{exc.start} of the value)") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"Avro header: avro.schema is not JSON ({exc})") from None
        return cls(data, schema, codec, sync, start)

    def packets(self, keep: frozenset[str] | None = None) -> Iterator[Packet]:
        """Decode every record; a bad block yields one error Packet per record it held, then reading resyncs."""
        fastavro = _fastavro()
        decompress = _decompressor(self.codec)
        writer = fastavro.parse_schema(self.schema)
        reader = fastavro.parse_schema(project_schema(self.schema, keep)) if keep is not None else writer
        data, pos, index = self.data, self.start, 0
        while pos < len(data):
            block_start = pos
            try:
                count, pos = _read_long(data, pos)
                size, pos = _read_long(data, pos)
            except (IndexError, ValueError):
                yield Packet(index, None, f"truncated block header at byte {block_start}")
                return
            if count <= 0 or size < 0:
                yield Packet(index, None, f"corrupt block header at byte {block_start} (count {count}, size {size})")
                pos = self._resync(block_start + 1)
                continue
            end = pos + size
            if end + SYNC_SIZE > len(data):
                for i in range(index, index + count):
                    yield Packet(i, None, f"truncated: block at byte {block_start} with {count} packet(s) needs "
                                          f"{size + SYNC_SIZE} bytes, file has {len(data) - pos} left")
                return
            if data[end:end + SYNC_SIZE] != self.sync:
                for i in range(index, index + count):
                    yield Packet(i, None, f"corrupt block at byte {block_start}: sync marker missing after it")
                index += count
                pos = self._resync(block_start + 1)
                continue
            yield from self._decode_block(data[pos:end], count, index, block_start, decompress, writer, reader)
            index += count
            pos = end + SYNC_SIZE

    def _resync(self, pos: int) -> int:
        """Offset of the first block after the next sync marker at or after `pos` (end of data if none)."""
        found = self.data.find(self.sync, pos)
        return len(self.data) if found < 0 else found + SYNC_SIZE

    @staticmethod
    def _decode_block(raw: bytes, count: int, first: int, block_start: int, decompress: Callable[[bytes], bytes],
                      writer: Any, reader: Any) -> Iterator[Packet]:
        fastavro = _fastavro()
        try:
            stream = io.BytesIO(decompress(raw))
        except Exception as exc:  # any codec failure means the block is unreadable
            for i in range(first, first + count):
                yield Packet(i, None, f"block at byte {block_start} does not decompress: {exc}")
            return
        records = []
        for i in range(first, first + count):
            try:
                records.append(fastavro.schemaless_reader(stream, writer, reader))
            except Exception as exc:  # fastavro raises EOFError, UnicodeDecodeError, ValueError, IndexError ...
                yield from (Packet(k, record) for k, record in enumerate(records, first))  # type: ignore[arg-type]
                yield Packet(i, None, f"undecodable record in block at byte {block_start}: {describe(exc)}")
                # the block has no index: where the next record starts is lost with this one
                for j in range(i + 1, first + count):
                    yield Packet(j, None, f"not read: packet {i} before it in the block at byte {block_start} "
                                          "could not be decoded")
                return
        left = len(stream.getbuffer()) - stream.tell()
        if left:  # the null codec has no checksum: bytes left over are the one sign of a corrupt block
            for i in range(first, first + count):
                yield Packet(i, None, f"corrupt block at byte {block_start}: {left} bytes left after its "
                                      f"{count} record(s)")
            return
        yield from (Packet(k, record) for k, record in enumerate(records, first))  # type: ignore[arg-type]
