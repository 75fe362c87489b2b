"""Read ZTF and Rubin/LSST alert packets into flat step rows for Engine.step.

Files: Avro object containers (one packet or many, any codec: null, deflate, snappy, zstandard, bzip2, xz),
and Parquet with one alert per row as the Fink broker stores them. The survey and schema version come from
each file; a batch holds one survey. Corrupt, truncated or unsupported packets are collected as problems
naming file and packet (`errors="collect"`, the default) or raised as AlertError (`errors="raise"`).
Ordering, deduplication across packets and scoring are mbfast.stream's job.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mbfast.alerts import lsst, ztf
from mbfast.alerts.container import MAGIC as AVRO_MAGIC
from mbfast.alerts.container import Container
from mbfast.alerts.rows import AlertError, AlertProblem, AlertRows, RowBuilder
from mbfast.alerts.ztf import ZtfCuts, apparent_magnitude, ztf_object_id, ztf_object_name
from mbfast.surveys import LSST, ZTF, Survey

PARQUET_MAGIC = b"PAR1"
# Parquet rows are decoded this many at a time (bounded memory for large Fink files)
PARQUET_BATCH = 1024

__all__ = ["AlertError", "AlertProblem", "AlertRows", "ZtfCuts", "apparent_magnitude", "read_alerts",
           "ztf_object_id", "ztf_object_name"]


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
    if errors not in ("collect", "raise"):
        raise ValueError(f"errors must be 'collect' or 'raise', got {errors!r}")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    cuts = cuts or ZtfCuts()
    builder: RowBuilder | None = None
    pending: list[AlertProblem] = []  # problems found before the survey (and so the builder) is known
    files: list[str] = []

    def report(problem: AlertProblem) -> None:
        if errors == "raise":
            raise AlertError(problem)
        (builder.problems if builder is not None else pending).append(problem)

    for path in paths:
        name = str(path)
        file = len(files)
        files.append(name)
        try:
            survey, packets = _open(Path(path))
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
    raise ValueError(f"neither an Avro container nor Parquet (starts with {magic!r})")


def _survey_of_fields(names: Iterable[str], what: str) -> Survey:
    names = set(names)
    if "candidate" in names:
        return ZTF
    if "diaSource" in names:
        return LSST
    raise ValueError(f"unknown alert schema {what!r}: neither ZTF (candidate) nor LSST (diaSource) fields")


def _open_avro(data: bytes) -> tuple[Survey, Packets]:
    container = Container.from_bytes(data)
    name = container.schema_name
    if name.startswith("lsst."):
        lsst.schema_version(name)
    if name.startswith("elasticc"):
        raise ValueError(f"unknown alert schema {name!r}: simulated ELAsTiCC packets are not read")
    survey = _survey_of_fields((field["name"] for field in container.schema.get("fields", ())), name)
    keep = ztf.FIELDS if survey is ZTF else lsst.FIELDS
    return survey, ((packet.index, packet.record, packet.error) for packet in container.packets(keep))


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
            for record in batch.cast(target).to_pylist():
                yield index, record, None
                index += 1

    return survey, packets()
