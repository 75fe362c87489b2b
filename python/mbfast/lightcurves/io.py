"""Read and write LightCurves as flat rows (obj_id, band, t, mag, err) in Parquet or CSV.

One row per observation, in any order; columns are named by the caller or found under known aliases (sources.ALIASES,
the one alias table of every row reader). Magnitudes only: convert fluxes with mbfast.lightcurves.photometry first.
Labelled data sets with their own formats are in mbfast.train.datasets.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from mbfast.lightcurves.fields import FIELDS, missing, refused_row
from mbfast.lightcurves.sources import resolve
from mbfast.lightcurves.surveys import Survey, band_map, get_survey
from mbfast.lightcurves.table import LightCurves, from_arrays

# Parquet schema metadata key holding the band order, so a file written by mbfast reads back without `survey`
BANDS_KEY = b"mbfast.bands"


def _resolve_bands(survey: str | Survey | tuple[str, ...] | None, metadata: dict[bytes, bytes] | None,
                   source: str) -> tuple[str, ...]:
    if isinstance(survey, Survey):
        return survey.bands
    if isinstance(survey, str):
        return get_survey(survey).bands
    if survey is not None:
        return tuple(survey)
    if metadata and BANDS_KEY in metadata:
        return tuple(json.loads(metadata[BANDS_KEY]))
    raise ValueError(f"{source}: no band order stored in the file; pass survey= (a name such as 'lsst', a "
                     f"Survey, or a tuple of band labels)")


def _column_names(columns: Mapping[str, str] | None, names: list[str], source: str) -> dict[str, str]:
    """Our field name -> the file's column name: the one in `columns`, else the field's own name or an alias
    (sources.ALIASES, as every reader of rows resolves them)."""
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(FIELDS))
    if unknown:
        raise ValueError(f"columns keys must be among {', '.join(FIELDS)}, got {', '.join(unknown)}")
    return {field: resolve(names, field, columns, Path(source)) for field in FIELDS}


def _table_to_curves(table: pa.Table, names: dict[str, str], bands: tuple[str, ...], source: str,
                     survey: Survey | None = None) -> LightCurves:
    arrays = {field: table.column(name).combine_chunks() for field, name in names.items()}
    obj_id_nulls = np.flatnonzero(arrays["obj_id"].is_null().to_numpy(zero_copy_only=False))
    if len(obj_id_nulls):
        raise ValueError(f"{source}: {refused_row(int(obj_id_nulls[0]), None, missing('obj_id'))}")
    obj_id = arrays["obj_id"].to_numpy(zero_copy_only=False)
    for field in FIELDS[1:]:
        nulls = np.flatnonzero(arrays[field].is_null().to_numpy(zero_copy_only=False))
        if len(nulls):
            row = int(nulls[0])
            raise ValueError(f"{source}: {refused_row(row, int(obj_id[row]), missing(field))}")
    band = arrays["band"]
    if pa.types.is_dictionary(band.type):
        band = band.cast(band.type.value_type)
    if pa.types.is_integer(band.type) and survey is not None:  # a survey's codes (ZTF fid 1 = g), never indices
        codes = band_map(bands, survey)
        labels = {code: bands[index] for code, index in codes.integers.items()}
        band = pa.array([labels.get(code, str(code)) for code in band.to_pylist()], pa.string())
    try:
        return from_arrays(obj_id, band.to_numpy(zero_copy_only=False), arrays["t"].to_numpy(zero_copy_only=False),
                           arrays["mag"].to_numpy(zero_copy_only=False), arrays["err"].to_numpy(zero_copy_only=False),
                           bands)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def read_parquet(path: str | Path, survey: str | Survey | tuple[str, ...] | None = None,
                 columns: Mapping[str, str] | None = None) -> LightCurves:
    """Read flat observation rows from a Parquet file into a LightCurves table.

    Parameters
    ----------
    path : str or Path
    survey : str, Survey, tuple of str, or None
        Band order: a preset name ("lsst", "ztf", ...), a Survey, or band labels. None reads the order
        write_parquet stored in the file.
    columns : mapping of str to str, optional
        Our field -> the file's column, e.g. {"obj_id": "object_id", "t": "mjd", "band": "passband"}; a field not
        given is found under its own name or a known alias (objectId, fid, mjd, magpsf, sigmapsf, ...).
        obj_id int or text; band str labels, or int codes: those of the named survey (ZTF fid 1/2/3 for
        survey="ztf"), indices into the order for a tuple of labels; t float64 (MJD, days); mag (AB) and
        err (1-sigma, mag) float.

    Raises
    ------
    ValueError
        Naming the row (0-based, in file order), its obj_id and field: a missing value, unknown band,
        non-finite t/mag/err, err <= 0; or a missing column.
    """
    parquet = pq.ParquetFile(path)
    names = _column_names(columns, parquet.schema_arrow.names, str(path))
    table = parquet.read(columns=list(names.values()))
    bands = _resolve_bands(survey, parquet.schema_arrow.metadata, str(path))
    return _table_to_curves(table, names, bands, str(path), _named_survey(survey))


def read_csv(path: str | Path, survey: str | Survey | tuple[str, ...] | None = None,
             columns: Mapping[str, str] | None = None, delimiter: str = ",") -> LightCurves:
    """Read flat observation rows from a CSV file with a header line; see read_parquet for the arguments.

    `survey` is required (CSV stores no band order). Row numbers in errors count data rows from 0.
    """
    parse = pa_csv.ParseOptions(delimiter=delimiter)
    names = _column_names(columns, pa_csv.open_csv(path, parse_options=parse).schema.names, str(path))
    bands = _resolve_bands(survey, None, str(path))
    convert = pa_csv.ConvertOptions(column_types={names["obj_id"]: pa.int64(), names["t"]: pa.float64(),
                                                  names["mag"]: pa.float64(), names["err"]: pa.float64()})
    table = pa_csv.read_csv(path, parse_options=parse, convert_options=convert)
    return _table_to_curves(table, names, bands, str(path), _named_survey(survey))


def _named_survey(survey: str | Survey | tuple[str, ...] | None) -> Survey | None:
    """The survey whose codes an integer band column holds; None for an explicit band tuple (codes are indices)."""
    return survey if isinstance(survey, Survey) else get_survey(survey) if isinstance(survey, str) else None


def write_parquet(curves: LightCurves, path: str | Path) -> None:
    """Write `curves` as flat rows obj_id (int64), band (label), t (float64), mag, err (float32), zstd.

    The band order is stored in the schema metadata, so read_parquet(path) needs no `survey`.
    """
    table = pa.table({
        "obj_id": pa.array(curves.obj_id, pa.int64()),
        "band": pa.array(np.asarray(curves.bands, dtype=object)[curves.band.astype(np.int64)], pa.string()),
        "t": pa.array(curves.t, pa.float64()),
        "mag": pa.array(curves.mag, pa.float32()),
        "err": pa.array(curves.err, pa.float32()),
    }).replace_schema_metadata({BANDS_KEY: json.dumps(list(curves.bands)).encode()})
    pq.write_table(table, path, compression="zstd")
