from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mbfast.jobs.shards import ShardSpiller, read_shard, shard_of
from mbfast.lightcurves.rows import RowChecks, clean_chunk
from mbfast.lightcurves.sources import iter_chunks, open_source

FLAT = pa.table({"object_id": [7, 7, 7, 9, 9], "passband": ["g", "r", "g", "g", "g"],
                 "mjd": [1.0, 2.0, 3.0, 1.5, 2.5], "mag": [20.0, 21.0, 20.5, 18.0, 18.2],
                 "err": [0.1, 0.1, 0.2, 0.05, 0.05]})


def test_flat_parquet_and_csv_read_to_the_same_canonical_rows(tmp_path: Path) -> None:
    pq.write_table(FLAT, tmp_path / "flat.parquet")
    FLAT.to_pandas().to_csv(tmp_path / "flat.csv", index=False)
    parquet = pa.concat_tables(iter_chunks(open_source(tmp_path / "flat.parquet"), chunk_rows=2))
    csv = pa.concat_tables(iter_chunks(open_source(tmp_path / "flat.csv")))
    assert parquet.column_names == ["obj_id", "band", "t", "mag", "err"]
    assert parquet.column("obj_id").to_pylist() == [7, 7, 7, 9, 9]
    assert parquet.column("t").to_pylist() == csv.column("t").to_pylist()
    assert parquet.column("band").to_pylist() == csv.column("band").to_pylist()


def test_list_per_object_layouts_explode_to_the_flat_rows(tmp_path: Path) -> None:
    lists = pa.table({"obj_id": [7, 9], "band": [["g", "r", "g"], ["g", "g"]], "t": [[1.0, 2.0, 3.0], [1.5, 2.5]],
                      "mag": [[20.0, 21.0, 20.5], [18.0, 18.2]], "err": [[0.1, 0.1, 0.2], [0.05, 0.05]]})
    records = [[{"t": t, "band": b, "mag": m, "err": e} for t, b, m, e in zip(*obs)]
               for obs in ((lists["t"][i].as_py(), lists["band"][i].as_py(), lists["mag"][i].as_py(),
                            lists["err"][i].as_py()) for i in range(2))]
    list_of_struct = pa.table({"obj_id": [7, 9], "lc": records})
    struct_of_lists = pa.table({"obj_id": [7, 9], "lc": pa.StructArray.from_arrays(
        [lists[name].combine_chunks() for name in ("t", "band", "mag", "err")], names=["t", "band", "mag", "err"])})
    for index, table in enumerate((lists, list_of_struct, struct_of_lists)):
        path = tmp_path / f"nested{index}.parquet"
        pq.write_table(table, path)
        flat = pa.concat_tables(iter_chunks(open_source(path)))
        assert flat.column("obj_id").to_pylist() == [7, 7, 7, 9, 9], index
        assert flat.column("t").to_pylist() == [1.0, 2.0, 3.0, 1.5, 2.5], index
        assert flat.column("band").to_pylist() == ["g", "r", "g", "g", "g"], index


def test_missing_column_error_names_file_and_column(tmp_path: Path) -> None:
    pq.write_table(FLAT.drop(["err"]), tmp_path / "noerr.parquet")
    with pytest.raises(ValueError, match="noerr.parquet: no column for err"):
        list(iter_chunks(open_source(tmp_path / "noerr.parquet")))


def test_bad_rows_are_counted_by_reason_and_kept_for_the_report() -> None:
    table = pa.table({"obj_id": [1, None, 3, 4, 5, 6], "band": ["g", "g", "w", "r", "r", "r"],
                      "t": [1.0, 1.0, 1.0, float("nan"), 1.0, 1.0], "mag": [20.0] * 6,
                      "err": [0.1, 0.1, 0.1, 0.1, -0.1, 0.2]})
    checks = RowChecks()
    clean = clean_chunk(table, ("g", "r"), checks)
    assert clean.obj_id.tolist() == [1, 6]
    assert clean.band.tolist() == [0, 1]
    assert checks.rows_in == 6 and checks.rows_rejected == 4
    assert checks.rejected["obj_id is missing"] == 1
    assert checks.rejected["unknown band"] == 1
    assert checks.rejected["t must be finite"] == 1
    assert checks.rejected["err must be > 0"] == 1
    assert checks.rejected_tables[0].column("reason").to_pylist() == [
        "obj_id is missing", "unknown band", "t must be finite", "err must be > 0"]


def test_shards_keep_objects_whole_and_are_stable(tmp_path: Path) -> None:
    obj_id = np.repeat(np.arange(1000, dtype=np.int64), 3)
    shards = shard_of(obj_id, 8)
    assert shards.tolist() == shard_of(obj_id, 8).tolist()
    assert set(np.bincount(shards, minlength=8) > 200) == {True}  # roughly balanced
    table = pa.table({"obj_id": obj_id, "band": np.full(len(obj_id), "g"), "t": np.arange(len(obj_id), dtype=float),
                      "mag": np.full(len(obj_id), 20.0), "err": np.full(len(obj_id), 0.1)})
    spiller = ShardSpiller(tmp_path, 8)
    spiller.add(clean_chunk(table, ("g",), RowChecks()))
    seen: set[int] = set()
    for shard in spiller.close():
        ids = set(read_shard(spiller.path(shard)).obj_id.tolist())
        assert not ids & seen
        assert all(shard_of(np.array([i]), 8)[0] == shard for i in ids)
        seen |= ids
    assert seen == set(range(1000))
