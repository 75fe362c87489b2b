"""Observation sources for batch jobs: Parquet (file, directory or glob; flat rows or one list per object) and CSV,
read in bounded chunks and normalised to flat Arrow tables with the columns obj_id, band, t, mag, err.

Not a light-curve model: rows are only renamed and flattened here; checks happen in mbfast.lightcurves.rows.
"""
from __future__ import annotations

import csv
import glob
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from mbfast.lightcurves.fields import FIELDS

# schema metadata on a chunk whose obj_id column is text only because a CSV block held a bad entry (rows.py)
INTEGER_IDS_KEY = b"mbfast.integer_ids"

# names other tools use for the same columns, tried in order when the canonical name is absent
ALIASES = {
    "obj_id": ("object_id", "objectId", "id", "diaObjectId"),
    "band": ("passband", "filter", "fid", "filter_name"),
    "t": ("mjd", "time", "midpointMjdTai"),
    "mag": ("magnitude", "magpsf"),
    "err": ("mag_err", "magerr", "sigmapsf", "err_mag"),
}


@dataclass(frozen=True)
class Source:
    """Files of one format; `columns` maps canonical names to the names in the files."""

    paths: tuple[Path, ...]
    format: str  # "parquet" or "csv"
    columns: dict[str, str] = field(default_factory=dict)

    def count_rows(self) -> int | None:
        """Observation rows for Parquet (from metadata; flat layout only), None when unknown."""
        if self.format != "parquet":
            return None
        total = 0
        for path in self.paths:
            metadata = pq.ParquetFile(path).metadata
            schema = pq.ParquetFile(path).schema_arrow
            if any(pa.types.is_list(schema.field(name).type) or pa.types.is_large_list(schema.field(name).type)
                   or pa.types.is_struct(schema.field(name).type) for name in schema.names):
                return None
            total += metadata.num_rows
        return total


def open_source(spec: str | Path, columns: dict[str, str] | None = None) -> Source:
    """A file, a directory (all *.parquet / *.csv inside, sorted) or a glob pattern."""
    text = str(spec)
    if any(char in text for char in "*?["):
        paths = sorted(Path(p) for p in glob.glob(text))
    elif Path(text).is_dir():
        paths = sorted(p for p in Path(text).rglob("*") if p.suffix in (".parquet", ".csv", ".pq"))
    else:
        paths = [Path(text)]
    if not paths:
        raise FileNotFoundError(f"no input files match {text!r}")
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"input file {missing[0]} does not exist")
    folders = [p for p in paths if p.is_dir()]
    if folders:
        raise ValueError(f"input {folders[0]} is a folder with no .parquet or .csv file")
    formats = {"csv" if p.suffix == ".csv" else "parquet" for p in paths}
    if len(formats) > 1:
        raise ValueError(f"{text!r} mixes CSV and Parquet files; give one format at a time")
    format_name = formats.pop()
    if format_name == "csv":
        for path in paths:
            _check_csv_header(path)
    return Source(tuple(paths), format_name, dict(columns or {}))


def _check_csv_header(path: Path) -> None:
    """Refuse a CSV whose header names a column twice (which of the two would be read is a guess)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        header = next(csv.reader(handle), [])
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise ValueError(f"{path}: the header names column {name!r} twice")
        seen.add(name)


def iter_chunks(source: Source, chunk_rows: int = 1_000_000, keep: tuple[str, ...] = ()) -> Iterator[pa.Table]:
    """Flat tables (obj_id, band, t, mag, err, then the `keep` columns) of at most about `chunk_rows` observations
    each."""
    for path in source.paths:
        if source.format == "csv":
            for batch in _csv_batches(path, source.columns):
                table = flatten(pa.Table.from_batches([batch]), source.columns, path, keep)
                if batch.schema.metadata:  # the integer-ids mark of a block re-read as text
                    table = table.replace_schema_metadata(batch.schema.metadata)
                yield from _split(table, chunk_rows)
        else:
            dataset = ds.dataset(path, format="parquet")
            # no read-ahead: memory stays near one chunk plus one row group, whatever the file size
            batches = dataset.to_batches(batch_size=max(1, chunk_rows // 64) if _is_nested(dataset.schema)
                                         else chunk_rows, batch_readahead=0, fragment_readahead=0)
            for batch in batches:
                yield from _split(flatten(pa.Table.from_batches([batch]), source.columns, path, keep), chunk_rows)


CSV_BLOCK_BYTES = 64 << 20  # CSV text parsed per block


def _csv_batches(path: Path, columns: dict[str, str]) -> Iterator[pa.RecordBatch]:
    """A CSV file's rows in blocks. Arrow types each column from the first block, so a later entry that does not
    parse as that type (text in a number column) stops the reader: the rest of the file is then read again with
    obj_id, t, mag, err as text, which shards.clean_chunk converts, rejecting only the rows that do not parse."""
    block = pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES)
    missing_as_null = pa_csv.ConvertOptions(strings_can_be_null=True)  # "NA", "" are missing in text columns too
    rows_done = 0
    integer_ids = False
    try:
        reader = pa_csv.open_csv(path, read_options=block, convert_options=missing_as_null)
        names = reader.schema.names
        id_name = resolve(names, "obj_id", columns, path)
        integer_ids = pa.types.is_integer(reader.schema.field(id_name).type)
        for batch in reader:
            rows_done += batch.num_rows
            yield batch
    except pa.ArrowInvalid:
        names = {name for canonical in ("obj_id", "t", "mag", "err") for name in (canonical, *ALIASES[canonical])}
        names |= {name for canonical, name in columns.items() if canonical in ("obj_id", "t", "mag", "err")}
        rest = pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES, skip_rows_after_names=rows_done)
        as_text = pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True)
        marks = {INTEGER_IDS_KEY: b"1"} if integer_ids else {}
        try:
            for batch in pa_csv.open_csv(path, read_options=rest, convert_options=as_text):
                yield batch.replace_schema_metadata(marks)
        except pa.ArrowInvalid as error:  # not a typing problem: a malformed line (Arrow quotes it)
            raise ValueError(f"{path}: {error}") from None


def _split(table: pa.Table, chunk_rows: int) -> Iterator[pa.Table]:
    for start in range(0, table.num_rows, chunk_rows):
        yield table.slice(start, chunk_rows)


def _is_nested(schema: pa.Schema) -> bool:
    return any(_is_list(schema.field(name).type) or pa.types.is_struct(schema.field(name).type)
               for name in schema.names)


def _is_list(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind)


def resolve(names: list[str], canonical: str, columns: dict[str, str], path: Path) -> str:
    if canonical in columns:
        if columns[canonical] not in names:
            raise ValueError(f"{path}: column {columns[canonical]!r} (given for {canonical}) not found; "
                             f"columns are {names}")
        return columns[canonical]
    for candidate in (canonical, *ALIASES[canonical]):
        if candidate in names:
            return candidate
    raise ValueError(f"{path}: no column for {canonical} (tried {(canonical, *ALIASES[canonical])}); "
                     f"columns are {names}; name it with --column {canonical}=NAME")


def flatten(table: pa.Table, columns: dict[str, str], path: Path, keep: tuple[str, ...] = ()) -> pa.Table:
    """Flat rows, or one row per object with list columns (or one list<struct> / struct<list> column, as
    nested-pandas and LSDB write) -> flat observation rows with canonical names, then the `keep` columns. A t
    stored as a timestamp or date becomes MJD."""
    duplicated = sorted({name for name in table.column_names if table.column_names.count(name) > 1})
    if duplicated:
        raise ValueError(f"{path}: column {duplicated[0]!r} appears more than once")
    nested = [name for name in table.column_names
              if _is_list(table.schema.field(name).type) or pa.types.is_struct(table.schema.field(name).type)]
    if nested:
        table = _explode(table, nested, path)
    names = table.column_names
    picked = {canonical: table.column(resolve(names, canonical, columns, path)) for canonical in FIELDS}
    picked["t"] = _as_mjd(picked["t"], path)
    missing = [name for name in keep if name not in names]
    if missing:
        raise ValueError(f"{path}: no column {missing[0]!r} to keep (--keep); columns are {names}")
    picked.update({name: table.column(name) for name in keep if name not in picked})
    return pa.table(picked)


UNIX_EPOCH_MJD = 40587.0  # 1970-01-01T00:00 UTC


def _as_mjd(t: pa.ChunkedArray, path: Path) -> pa.ChunkedArray:
    """t as MJD (days): timestamps (UTC) and dates are converted; numbers and text pass as they are."""
    kind = t.type
    if pa.types.is_timestamp(kind):
        per_day = {"s": 86400.0, "ms": 86400e3, "us": 86400e6, "ns": 86400e9}[kind.unit]
        # int64 ticks to float64 loses < 1 us: below float64's own MJD resolution (~1 us near MJD 60000)
        ticks = pc.cast(pc.cast(t, pa.int64()), pa.float64(), safe=False)
        return pc.add(pc.divide(ticks, per_day), UNIX_EPOCH_MJD)
    if pa.types.is_date32(kind) or pa.types.is_date64(kind):
        return pc.add(pc.cast(pc.cast(t, pa.date32()).cast(pa.int32()), pa.float64()), UNIX_EPOCH_MJD)
    if pa.types.is_temporal(kind):
        raise ValueError(f"{path}: t is stored as {kind}; give MJD days, a timestamp or a date")
    return t


def _explode(table: pa.Table, nested: list[str], path: Path) -> pa.Table:
    """One row per object -> one row per observation; scalar columns (obj_id) are repeated."""
    list_columns: dict[str, pa.ChunkedArray] = {}
    for name in nested:
        column = table.column(name).combine_chunks()
        kind = column.type
        if _is_list(kind) and pa.types.is_struct(kind.value_type):  # list<struct<t, band, ...>>
            for index in range(kind.value_type.num_fields):
                child = kind.value_type.field(index).name
                list_columns[child] = pa.ListArray.from_arrays(column.offsets, column.values.field(index))
        elif pa.types.is_struct(kind):  # struct<t: list, band: list, ...>
            for index in range(kind.num_fields):
                if _is_list(kind.field(index).type):
                    list_columns[kind.field(index).name] = column.field(index)
        else:  # plain list column
            list_columns[name] = column
    if not list_columns:
        raise ValueError(f"{path}: nested columns {nested} hold no per-observation lists")
    reference_name, reference = next(iter(list_columns.items()))
    lengths = pc.list_value_length(reference)
    for name, column in list_columns.items():
        if not pc.all(pc.equal(pc.list_value_length(column), lengths)).as_py():
            raise ValueError(f"{path}: list column {name!r} has different lengths from {reference_name!r}")
    parents = pc.list_parent_indices(reference)
    flat = {name: pc.list_flatten(column) for name, column in list_columns.items()}
    for name in table.column_names:
        if name not in nested and name not in flat:
            flat[name] = pc.take(table.column(name), parents)
    return pa.table(flat)
