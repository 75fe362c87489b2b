"""Read alert files (Avro containers, Fink Parquet) and Kafka messages into AlertRows, packet by packet.

The survey and schema version come from each file or schema; a batch holds one survey. Corrupt, truncated or
unsupported packets are collected as problems naming file and packet (`errors="collect"`, the default) or raised as
AlertError (`errors="raise"`). Decoding one packet into rows is ztf.py's and lsst.py's job; ordering,
deduplication across packets and scoring are mbfast.jobs.stream's.
"""
from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mbfast.alerts import lsst, ztf
from mbfast.alerts.container import MAGIC as AVRO_MAGIC
from mbfast.alerts.container import Container, describe, project_schema
from mbfast.alerts.container import _fastavro as fastavro_module
from mbfast.alerts.rows import AlertError, AlertProblem, AlertRows, RowBuilder
from mbfast.alerts.schema import Tree, arrow_tree, avro_tree, check
from mbfast.alerts.ztf import ZtfCuts
from mbfast.lightcurves.surveys import LSST, ZTF, Survey

PARQUET_MAGIC = b"PAR1"
# Parquet rows are decoded this many at a time (bounded memory for large Fink files)
PARQUET_BATCH = 1024

# Confluent wire format: this byte, a big-endian 4-byte schema id, then one Avro-encoded packet
CONFLUENT_MAGIC = 0

__all__ = ["read_alerts", "read_messages"]


def read_alerts(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
                cuts: ZtfCuts | None = None, errors: str = "collect") -> AlertRows:
    """Read alert files into step rows.

    Parameters
    ----------
    paths : path or iterable of paths
        Avro containers (.avro, any codec) or Fink-style Parquet files; ZTF or LSST, not both.
    cuts : ZtfCuts, optional
        Quality cuts for ZTF detections (default `ZtfCuts()`); LSST keeps psfFlux > psfFluxErr > 0.
    errors : {"collect", "raise"}
        "collect": bad packets go to `AlertRows.problems` and every other packet is read;
        "raise": the first bad packet raises AlertError.

    Returns
    -------
    AlertRows
        Rows in read order (file, then packet, then current detection before history).

    Raises
    ------
    AlertError
        With errors="raise": a corrupt, truncated or unsupported packet, naming file and packet index.

    Examples
    --------
    >>> rows = read_alerts("tests/data/alerts/ztf/ztf_v3p2_ZTF17aaacxxf.avro")  # doctest: +SKIP
    >>> rows.survey.name, rows.n_alerts                                               # doctest: +SKIP
    ('ztf', 1)
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return _read(((str(path), lambda path=path: _open(Path(path))) for path in paths), cuts, errors)


def read_messages(messages: Iterable[bytes], schemas: Mapping[int, dict[str, Any] | str | os.PathLike[str]], *,
                  cuts: ZtfCuts | None = None, errors: str = "collect", source: str = "kafka") -> AlertRows:
    """Read Kafka messages in the Confluent wire format into step rows: one packet per message, as Rubin's and
    ZTF's alert streams publish them (a zero byte, the big-endian 4-byte schema id, the Avro-encoded packet).

    Parameters
    ----------
    messages : iterable of bytes
        Message values, in the order they were consumed.
    schemas : mapping of schema id -> writer schema
        As the schema registry serves them: a parsed JSON dict, JSON text, or the path of a .avsc / .json file.
        All of one survey.
    cuts, errors : as read_alerts. A message with another framing, an unknown schema id or bytes that do not
        decode is a problem named `source` with the message's index.
    source : the name standing for the file in AlertRows.files and problems (e.g. "topic/partition").

    Returns
    -------
    AlertRows, rows in message order; `file` is 0 and `packet` the message index.
    """
    if messages is None or isinstance(messages, (bytes, bytearray, str)) or not isinstance(messages, Iterable):
        raise ValueError(f"messages must be an iterable of message values (bytes), got {type(messages).__name__}")
    if not isinstance(schemas, Mapping):
        raise ValueError(f"schemas must map schema id -> writer schema, got {type(schemas).__name__}")
    return _read([(source, lambda: _open_messages(messages, schemas))], cuts, errors)


def _read(sources: Iterable[tuple[str, Callable[[], tuple[Survey, Packets]]]], cuts: ZtfCuts | None,
          errors: str) -> AlertRows:
    """Rows of every packet of every source (name, opener); bad packets reported as `errors` says."""
    if errors not in ("collect", "raise"):
        raise ValueError(f"errors must be 'collect' or 'raise', got {errors!r}")
    cuts = cuts or ZtfCuts()
    builder: RowBuilder | None = None
    pending: list[AlertProblem] = []  # problems found before the survey (and so the builder) is known
    files: list[str] = []

    def report(problem: AlertProblem) -> None:
        if errors == "raise":
            raise AlertError(problem)
        (builder.problems if builder is not None else pending).append(problem)

    for name, opener in sources:
        file = len(files)
        files.append(name)
        try:
            survey, packets = opener()
        except (OSError, ValueError, pa.ArrowException) as exc:
            report(AlertProblem(name, -1, str(exc)))
            continue
        if builder is None:
            builder = RowBuilder(survey)
            builder.problems.extend(pending)
        elif survey is not builder.survey:
            report(AlertProblem(name, -1, f"{survey.name} alerts in a {builder.survey.name} batch"))
            continue
        add = _adder(survey, cuts)
        try:
            for index, record, error in packets:
                if error is not None:
                    report(AlertProblem(name, index, error))
                    continue
                mark = builder.mark()
                try:
                    add(record, builder, file, index)
                except (ValueError, TypeError, KeyError) as exc:
                    builder.rollback(mark)
                    report(AlertProblem(name, index, str(exc)))
        except (OSError, ValueError, pa.ArrowException) as exc:  # a Parquet batch that cannot be decoded
            report(AlertProblem(name, -1, f"stopped reading: {exc}"))
    if builder is None:
        builder = RowBuilder(ZTF)
        builder.problems.extend(pending)
    builder.files = files
    return builder.build()


def survey_of_files(paths: Iterable[str | os.PathLike[str]]) -> str | None:
    """The survey ("ztf" or "lsst") of the first alert file that can be opened; None if none can (reading them
    then reports each file's problem)."""
    for path in paths:
        try:
            survey, _ = _open(Path(path))
        except (OSError, ValueError, pa.ArrowException):
            continue
        return survey.name
    return None


def _adder(survey: Survey, cuts: ZtfCuts) -> Any:
    if survey is ZTF:
        return lambda record, rows, file, index: ztf.add_packet(record, rows, cuts, file, index)
    return lsst.add_packet


Packets = Iterator[tuple[int, dict[str, Any] | None, str | None]]


def _open(path: Path) -> tuple[Survey, Packets]:
    """Survey of a file and an iterator of (packet index, record or None, error or None)."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
        if magic == AVRO_MAGIC:
            return _open_avro(magic + handle.read())
    if magic == PARQUET_MAGIC:
        return _open_parquet(path)
    if not magic:
        raise ValueError("empty file")
    raise ValueError(f"neither an Avro container nor Parquet (starts with {magic!r})")


def _survey_of_fields(names: Iterable[str], what: str) -> Survey:
    names = set(names)
    if "candidate" in names:
        return ZTF
    if "diaSource" in names:
        return LSST
    raise ValueError(f"unknown alert schema {what!r}: neither ZTF (candidate) nor LSST (diaSource) fields")


def _survey_of_schema(schema: Any) -> Survey:
    """The survey of an Avro writer schema (its top-level fields); LSST schema versions are checked."""
    name = str(schema.get("name", "")) if isinstance(schema, dict) else ""
    if name.startswith("lsst."):
        lsst.schema_version(name)
    if name.startswith("elasticc"):
        raise ValueError(f"unknown alert schema {name!r}: simulated ELAsTiCC packets are not read")
    fields = schema.get("fields", ()) if isinstance(schema, dict) else ()
    survey = _survey_of_fields((field["name"] for field in fields), name)
    _check_fields(survey, avro_tree(schema))
    return survey


def _check_fields(survey: Survey, tree: Tree) -> None:
    """Every field the survey's packets are read from is in the schema, with a usable type."""
    check(tree, (ztf if survey is ZTF else lsst).required(tree))


def _open_avro(data: bytes) -> tuple[Survey, Packets]:
    container = Container.from_bytes(data)
    survey = _survey_of_schema(container.schema)
    keep = ztf.FIELDS if survey is ZTF else lsst.FIELDS
    return survey, ((packet.index, packet.record, packet.error) for packet in container.packets(keep))


def _open_messages(messages: Iterable[bytes], schemas: Mapping[int, dict[str, Any] | str | os.PathLike[str]]
                   ) -> tuple[Survey, Packets]:
    fastavro = fastavro_module()
    writers = {int(schema_id): _schema_json(schema) for schema_id, schema in schemas.items()}
    if not writers:
        raise ValueError("no schemas given: pass {schema id: writer schema}, as the schema registry serves them")
    surveys = {schema_id: _survey_of_schema(writer) for schema_id, writer in writers.items()}
    if len(set(surveys.values())) > 1:
        raise ValueError(f"schemas of more than one survey: {({i: s.name for i, s in surveys.items()})}")
    survey = next(iter(surveys.values()))
    keep = ztf.FIELDS if survey is ZTF else lsst.FIELDS
    parsed = {schema_id: (fastavro.parse_schema(writer), fastavro.parse_schema(project_schema(writer, keep)))
              for schema_id, writer in writers.items()}

    def packets() -> Packets:
        for index, message in enumerate(messages):
            if not isinstance(message, (bytes, bytearray, memoryview)):
                yield index, None, f"message value is {type(message).__name__}, not bytes"
                continue
            if len(message) < 5 or message[0] != CONFLUENT_MAGIC:
                yield index, None, "not a Confluent-framed Avro message (a zero byte, a 4-byte schema id, the packet)"
                continue
            schema_id = int.from_bytes(message[1:5], "big")
            if schema_id not in parsed:
                yield index, None, f"schema id {schema_id} is not among the schemas given ({sorted(parsed)})"
                continue
            body = io.BytesIO(message[5:])
            try:
                record = fastavro.schemaless_reader(body, *parsed[schema_id])
            except Exception as exc:  # fastavro raises EOFError, UnicodeDecodeError, ValueError, IndexError ...
                yield index, None, f"undecodable packet: {describe(exc)}"
                continue
            left = len(message) - 5 - body.tell()
            if left:
                yield index, None, f"{left} bytes left after the packet (wrong schema id?)"
                continue
            yield index, record, None

    return survey, packets()


def _schema_json(schema: dict[str, Any] | str | os.PathLike[str]) -> Any:
    """A writer schema given as parsed JSON, JSON text or a file path."""
    if isinstance(schema, dict):
        return schema
    if isinstance(schema, str) and schema.lstrip().startswith("{"):
        return json.loads(schema)
    return json.loads(Path(schema).read_text())


def _prune_type(kind: pa.DataType, keep: frozenset[str]) -> pa.DataType:
    """The same Arrow type with only the struct fields named in `keep` (at any depth)."""
    if pa.types.is_struct(kind):
        return pa.struct([pa.field(f.name, _prune_type(f.type, keep), f.nullable)
                          for f in kind if f.name in keep])
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        value = kind.value_field
        field = pa.field(value.name, _prune_type(value.type, keep), value.nullable)
        return pa.list_(field) if pa.types.is_list(kind) else pa.large_list(field)
    return kind


def _open_parquet(path: Path) -> tuple[Survey, Packets]:
    parquet = pq.ParquetFile(path)
    schema = parquet.schema_arrow
    survey = _survey_of_fields(schema.names, path.name)
    _check_fields(survey, arrow_tree(schema))
    keep = ztf.FIELDS if survey is ZTF else lsst.FIELDS
    columns = [name for name in schema.names if name in keep]
    if survey is LSST and "lsst_schema_version" in schema.names:
        versions = parquet.read(columns=["lsst_schema_version"]).column(0).unique().to_pylist()
        for version in versions:
            lsst.schema_version(version)
    target = pa.schema([pa.field(name, _prune_type(schema.field(name).type, keep)) for name in columns])

    def packets() -> Packets:
        index = 0
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH, columns=columns):
            try:
                records = batch.cast(target).to_pylist()
            except (ValueError, pa.ArrowException):  # e.g. a string that is not UTF-8: find its row, keep the rest
                yield from _rows_one_by_one(batch, target, index)
            else:
                yield from ((index + k, record, None) for k, record in enumerate(records))
            index += batch.num_rows

    return survey, packets()


def _rows_one_by_one(batch: pa.RecordBatch, target: pa.Schema, first: int) -> Packets:
    """The rows of a Parquet batch that did not convert as a whole, each converted alone: bad ones are problems."""
    for k in range(batch.num_rows):
        try:
            yield first + k, batch.slice(k, 1).cast(target).to_pylist()[0], None
        except (ValueError, pa.ArrowException) as exc:
            yield first + k, None, f"undecodable row: {describe(exc)}"
