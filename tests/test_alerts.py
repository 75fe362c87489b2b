"""Alert readers on real ZTF and Rubin packets (tests/data/alerts): values read by hand, cuts, bad packets."""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbfast.alerts import (AlertError, ZtfCuts, apparent_magnitude, read_alerts, read_messages, ztf_object_id,
                           ztf_object_name)
from mbfast.alerts.container import Container
from mbfast.lightcurves.surveys import LSST, ZTF
from tests.support.alerts import confluent_messages

DATA = Path(__file__).parent / "data" / "alerts"
ZTF_DIR = DATA / "ztf"
LSST_DIR = DATA / "lsst"

# file -> (alerts, rows kept with the default cuts); counted once by hand from the packets (see PROVENANCE.md)
FIXTURES = {
    "ztf/ztf_v3p2_ZTF17aaacxxf.avro": (1, 0),
    "ztf/ztf_v3p3_ZTF19abvhduf.avro": (1, 18),
    "ztf/ztf_v4p01_ZTF20acunklg.avro": (1, 0),
    "ztf/kafka_snappy_v3p0.avro": (1, 1),
    "ztf/kafka_snappy_8_packets.avro": (8, 6),
    "ztf/ztf_v3p3_3_packets_deflate.avro": (3, 19),
    "ztf/fink_ztf_v4p02_8_alerts.parquet": (8, 16),
    "lsst/rubin_lsstcam_v10_0_25_alerts.parquet": (25, 59),
    "lsst/rubin_lsstcam_v10_0_25_alerts.avro": (25, 59),
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_every_fixture_parses(name: str) -> None:
    rows = read_alerts(DATA / name, errors="raise")
    assert (rows.n_alerts, len(rows)) == FIXTURES[name]
    assert rows.survey is (LSST if name.startswith("lsst") else ZTF)
    assert rows.problems == []
    assert np.isfinite(rows.t).all() and np.isfinite(rows.mag).all()
    assert (rows.err > 0).all() and (rows.err < 1.0857).all()
    assert ((rows.band >= 0) & (rows.band < len(rows.survey.bands))).all()
    # each alert's own detection, when kept, is a current row of that alert
    kept = rows.alert_row[rows.alert_row >= 0]
    assert rows.current[kept].all()
    np.testing.assert_array_equal(rows.alert_id[kept], rows.alert_alert_id[rows.alert_row >= 0])


def test_ztf_values_read_by_hand() -> None:
    """ZTF19abvhduf, schema 3.3: candidate and prv_candidates as printed by fastavro.reader."""
    rows = read_alerts(ZTF_DIR / "ztf_v3p3_ZTF19abvhduf.avro")
    obj_id = ztf_object_id("ZTF19abvhduf")
    assert rows.names == {obj_id: "ZTF19abvhduf"}
    assert rows.alert_alert_id.tolist() == [1048197683315015009]
    assert rows.alert_obj_id.tolist() == [obj_id]
    now = rows.alert_row[0]
    assert rows.current[now] and rows.bands_as_labels()[now] == "g"          # fid 1
    assert rows.t[now] == 2458802.6976852 - 2400000.5                          # jd -> MJD
    assert rows.mag[now] == np.float32(17.9606876373291)                       # magpsf
    assert rows.err[now] == np.float32(0.0945383608341217)                     # sigmapsf
    # prv_candidates[0] (candid 1018323913315015004, rb 0.484), [7] (rb 0.577) and [8] (rb 0.597) fail rb >= 0.65;
    # [1] is the first history row
    history = np.flatnonzero(~rows.current)
    assert len(history) == 17 and rows.skipped == {"rb": 3}
    first = history[np.argmin(rows.t[history])]
    assert rows.bands_as_labels()[first] == "r"                                # fid 2
    assert rows.t[first] == 2458773.0328125 - 2400000.5
    assert rows.mag[first] == np.float32(16.25429916381836)
    assert rows.err[first] == np.float32(0.035002000629901886)
    assert (rows.alert_id == 1048197683315015009).all()


def test_lsst_values_read_by_hand() -> None:
    """Rubin LSSTCam alert 21 (lsst.v10_0): diaObject 169738309211783177 with 22 prvDiaSources in band i."""
    rows = read_alerts(LSST_DIR / "rubin_lsstcam_v10_0_25_alerts.parquet")
    alert = 21
    assert rows.alert_alert_id[alert] == 169813006198767621                    # diaSourceId
    assert rows.alert_obj_id[alert] == 169738309211783177                      # diaObjectId
    now = rows.alert_row[alert]
    assert rows.bands_as_labels()[now] == "i"
    assert rows.t[now] == 61041.221706115095                                   # midpointMjdTai
    # psfFlux 4920.3203125 nJy, psfFluxErr 286.32421875 nJy
    assert rows.mag[now] == np.float32(31.4 - 2.5 * math.log10(4920.3203125))
    assert rows.mag[now] == pytest.approx(22.170017, abs=1e-6)
    assert rows.err[now] == pytest.approx(1.0857362 * 286.32421875 / 4920.3203125, rel=1e-6)
    history = np.flatnonzero((rows.alert_id == 169813006198767621) & ~rows.current)
    assert len(history) == 22
    first = history[np.argmin(rows.t[history])]
    assert rows.t[first] == 61024.13534045467
    assert rows.mag[first] == np.float32(31.4 - 2.5 * math.log10(3633.529296875))
    # three alerts are solar-system sources (diaObjectId 0): listed as alerts, no rows
    assert (rows.alert_obj_id == 0).sum() == 3 and rows.skipped["no diaObjectId"] == 3
    assert (rows.alert_row[rows.alert_obj_id == 0] == -1).all()


def test_lsst_avro_and_parquet_agree() -> None:
    avro = read_alerts(LSST_DIR / "rubin_lsstcam_v10_0_25_alerts.avro")
    parquet = read_alerts(LSST_DIR / "rubin_lsstcam_v10_0_25_alerts.parquet")
    for name in ("obj_id", "band", "t", "mag", "err", "alert_id", "current", "packet", "alert_t", "alert_row"):
        np.testing.assert_array_equal(getattr(avro, name), getattr(parquet, name), err_msg=name)


def test_multi_record_snappy_container_matches_single_packet() -> None:
    """Packet 0 of the 8-packet container is the single Kafka dump kafka_snappy_v3p0.avro."""
    many = read_alerts(ZTF_DIR / "kafka_snappy_8_packets.avro")
    one = read_alerts(ZTF_DIR / "kafka_snappy_v3p0.avro")
    first = many.packet == 0
    for name in ("obj_id", "band", "t", "mag", "err", "alert_id", "current"):
        np.testing.assert_array_equal(getattr(many, name)[first], getattr(one, name), err_msg=name)
    assert many.alert_packet.tolist() == list(range(8))


def test_batch_reads_every_file_in_order() -> None:
    names = ["ztf/ztf_v3p3_ZTF19abvhduf.avro", "ztf/fink_ztf_v4p02_8_alerts.parquet", "ztf/kafka_snappy_v3p0.avro"]
    rows = read_alerts([DATA / name for name in names])
    assert rows.files == tuple(str(DATA / name) for name in names)
    assert rows.n_alerts == 10 and len(rows) == 18 + 16 + 1
    assert rows.alert_file.tolist() == [0] + [1] * 8 + [2]


@given(st.integers(0, 99), st.text("abcdefghijklmnopqrstuvwxyz", min_size=7, max_size=7))
def test_ztf_object_id_round_trip(year: int, letters: str) -> None:
    name = f"ZTF{year:02d}{letters}"
    obj_id = ztf_object_id(name)
    assert 0 <= obj_id < 2**40
    assert ztf_object_name(obj_id) == name


def test_ztf_object_id_order_and_errors() -> None:
    assert ztf_object_id("ZTF00aaaaaaa") == 0
    assert ztf_object_id("ZTF18aaaaaab") == 18 * 26**7 + 1
    assert ztf_object_id("ZTF18zzzzzzz") + 1 == ztf_object_id("ZTF19aaaaaaa")
    for bad in ("ZTF18ABCDEFG", "ZTF18abcdef", "ZTF2018abcdefg", "C12345"):
        with pytest.raises(ValueError, match="not a ZTF id"):
            ztf_object_id(bad)
    with pytest.raises(ValueError, match="not an encoded ZTF objectId"):
        ztf_object_name(-1)


def test_apparent_magnitude_formula() -> None:
    # equal reference and difference flux: twice the flux, 2.5 log10(2) = 0.7526 mag brighter
    mag, err = apparent_magnitude(20.0, 0.1, 20.0, 0.0, positive=True)
    assert mag == pytest.approx(20.0 - 2.5 * math.log10(2.0))
    assert err == pytest.approx(0.05)
    mag, _ = apparent_magnitude(21.0, 0.1, 20.0, 0.02, positive=False)
    assert mag == pytest.approx(-2.5 * math.log10(10**-8 - 10**-8.4))
    assert apparent_magnitude(20.0, 0.1, 20.0, 0.0, positive=False) is None


def test_apparent_magnitude_cut_keeps_negative_differences_near_a_reference_source() -> None:
    """ZTF18acdjhss (packet 6): isdiffpos 'f', distnr 0.485 px, magnr 14.744 - a fading star, kept when corrected."""
    path = ZTF_DIR / "kafka_snappy_8_packets.avro"
    plain = read_alerts(path, cuts=ZtfCuts(min_rb=None))
    corrected = read_alerts(path, cuts=ZtfCuts(min_rb=None, apparent=True))
    alert = 6
    assert plain.names[int(plain.alert_obj_id[alert])] == "ZTF18acdjhss"
    assert plain.alert_row[alert] == -1
    row = corrected.alert_row[alert]
    assert row >= 0
    expected, _ = apparent_magnitude(17.736019134521484, 0.14754199981689453, 14.743999481201172,
                                     0.01899999938905239, positive=False)
    assert corrected.mag[row] == np.float32(expected)
    assert len(corrected) > len(plain)


def test_cuts_are_configurable() -> None:
    path = ZTF_DIR / "ztf_v3p3_ZTF19abvhduf.avro"
    assert len(read_alerts(path, cuts=ZtfCuts(min_rb=None))) == 21
    assert len(read_alerts(path, cuts=ZtfCuts(min_rb=0.95))) < 18
    # drb is 0.99999964 here; drb cuts are ignored before schema 3.3 (Kafka dumps fill it with 0.0)
    assert len(read_alerts(path, cuts=ZtfCuts(min_drb=0.5))) == 18
    old = ZTF_DIR / "kafka_snappy_v3p0.avro"
    assert len(read_alerts(old, cuts=ZtfCuts(min_drb=0.5))) == len(read_alerts(old))


# --- bad input -------------------------------------------------------------------------------------------

def _sync_offsets(data: bytes) -> list[int]:
    """Byte offsets just after each sync marker (the first is the end of the header)."""
    sync = Container.from_bytes(data).sync
    offsets, pos = [], data.find(sync)
    while pos >= 0:
        offsets.append(pos + 16)
        pos = data.find(sync, pos + 16)
    return offsets


def test_corrupt_block_is_reported_and_other_packets_parse(tmp_path: Path) -> None:
    source = ZTF_DIR / "kafka_snappy_8_packets.avro"
    data = bytearray(source.read_bytes())
    blocks = _sync_offsets(bytes(data))            # header end, then after blocks of packets 0-2, 3-5, 6-7
    middle = (blocks[1] + blocks[2]) // 2          # inside the second block's snappy data
    data[middle:middle + 8] = bytes(8)
    bad = tmp_path / "corrupt.avro"
    bad.write_bytes(bytes(data))

    clean = read_alerts(source)
    rows = read_alerts(bad)
    assert [(p.file, p.packet) for p in rows.problems] == [(str(bad), 3), (str(bad), 4), (str(bad), 5)]
    assert all(str(bad) in str(p) and f"packet {p.packet}" in str(p) for p in rows.problems)
    assert rows.alert_packet.tolist() == [0, 1, 2, 6, 7]
    good = ~np.isin(clean.packet, [3, 4, 5])
    np.testing.assert_array_equal(rows.mag, clean.mag[good])
    with pytest.raises(AlertError, match=r"corrupt\.avro: packet 3: .*"):
        read_alerts(bad, errors="raise")


def test_truncated_file_names_file_and_packet(tmp_path: Path) -> None:
    data = (ZTF_DIR / "ztf_v3p3_3_packets_deflate.avro").read_bytes()
    cut = tmp_path / "truncated.avro"
    cut.write_bytes(data[:len(data) - 5000])        # inside the last block (packet 2)
    rows = read_alerts(cut)
    assert rows.n_alerts == 2
    assert [p.packet for p in rows.problems] == [2]
    assert "truncated" in rows.problems[0].message
    header_only = tmp_path / "header.avro"
    header_only.write_bytes(data[:40])
    with pytest.raises(AlertError, match=r"header\.avro: whole file: truncated Avro header"):
        read_alerts(header_only, errors="raise")


def test_batch_with_a_bad_file_reads_the_others(tmp_path: Path) -> None:
    junk = tmp_path / "junk.avro"
    junk.write_bytes(b"not an alert at all")
    paths = [ZTF_DIR / "ztf_v3p3_ZTF19abvhduf.avro", junk, ZTF_DIR / "kafka_snappy_v3p0.avro",
             LSST_DIR / "rubin_lsstcam_v10_0_25_alerts.parquet"]
    rows = read_alerts(paths)
    assert rows.n_alerts == 2 and len(rows) == 18 + 1
    messages = [str(p) for p in rows.problems]
    assert messages[0] == f"{junk}: whole file: neither an Avro container nor Parquet (starts with b'not ')"
    assert "lsst alerts in a ztf batch" in messages[1]


def _rewrite(source: Path, target: Path, edit_schema: object = None, edit_record: object = None) -> None:
    with open(source, "rb") as handle:
        reader = fastavro.reader(handle)
        schema = reader.writer_schema
        records = list(reader)
    if edit_schema is not None:
        schema = edit_schema(json.loads(json.dumps(schema)))  # type: ignore[operator]
    if edit_record is not None:
        records = [edit_record(record) for record in records]  # type: ignore[operator]
    with open(target, "wb") as handle:
        fastavro.writer(handle, fastavro.parse_schema(schema), records)


def test_unknown_schema_versions_are_refused(tmp_path: Path) -> None:
    newer = tmp_path / "ztf_v5.avro"
    _rewrite(ZTF_DIR / "ztf_v3p3_ZTF19abvhduf.avro", newer, edit_record=lambda r: {**r, "schemavsn": "5.0"})
    with pytest.raises(AlertError, match=r"ztf_v5\.avro: packet 0: ZTF schema version 5\.0 is newer than this "
                                         r"mbfast reads \(reads 3\.x and 4\.x\)"):
        read_alerts(newer, errors="raise")

    def rename(schema: dict) -> dict:
        return json.loads(json.dumps(schema).replace("lsst.v10_0", "lsst.v12_0"))

    lsst12 = tmp_path / "lsst_v12.avro"
    _rewrite(LSST_DIR / "rubin_lsstcam_v10_0_25_alerts.avro", lsst12, edit_schema=rename)
    rows = read_alerts(lsst12)
    assert len(rows.problems) == 1 and rows.problems[0].packet == -1
    assert "lsst.v12_0.alert is newer than this mbfast reads" in rows.problems[0].message


def test_older_lsst_field_names(tmp_path: Path) -> None:
    """Schemas before v7 name the fields filterName, midPointTai, psFlux, psFluxErr."""
    def rename(schema: dict) -> dict:
        text = json.dumps(schema).replace("lsst.v10_0", "lsst.v5_0").replace('"band"', '"filterName"')
        return json.loads(text.replace("midpointMjdTai", "midPointTai").replace("psfFlux", "psFlux"))

    def rename_record(record: dict) -> dict:
        def source(values: dict) -> dict:
            renamed = {"band": "filterName", "midpointMjdTai": "midPointTai", "psfFlux": "psFlux",
                       "psfFluxErr": "psFluxErr"}
            return {renamed.get(key, key): value for key, value in values.items()}
        return {**record, "diaSource": source(record["diaSource"]),
                "prvDiaSources": [source(values) for values in record["prvDiaSources"] or ()]}

    old = tmp_path / "lsst_v5.avro"
    _rewrite(LSST_DIR / "rubin_lsstcam_v10_0_25_alerts.avro", old, edit_schema=rename, edit_record=rename_record)
    new = read_alerts(LSST_DIR / "rubin_lsstcam_v10_0_25_alerts.avro")
    rows = read_alerts(old, errors="raise")
    for name in ("obj_id", "band", "t", "mag", "err", "alert_id", "alert_row"):
        np.testing.assert_array_equal(getattr(rows, name), getattr(new, name), err_msg=name)


def test_malformed_packet_adds_nothing(tmp_path: Path) -> None:
    """A packet failing half-way (bad objectId) is reported and leaves no rows or alerts behind."""
    bad = tmp_path / "bad_id.avro"
    _rewrite(ZTF_DIR / "ztf_v3p3_3_packets_deflate.avro", bad,
             edit_record=lambda r: {**r, "objectId": "not-a-ztf-id"} if r["objectId"] == "ZTF18abrgqwz" else r)
    clean = read_alerts(ZTF_DIR / "ztf_v3p3_3_packets_deflate.avro")
    rows = read_alerts(bad)
    assert [(p.packet, p.message) for p in rows.problems] == [
        (1, "objectId 'not-a-ztf-id' is not a ZTF id (ZTF + 2 digits + 7 lowercase letters)")]
    assert rows.n_alerts == 2 and len(rows) == len(clean) - (clean.packet == 1).sum()
    assert "ZTF18abrgqwz" not in rows.names.values()


@pytest.mark.parametrize("name", ["ztf/kafka_snappy_8_packets.avro", "ztf/ztf_v3p3_3_packets_deflate.avro",
                                  "lsst/rubin_lsstcam_v10_0_25_alerts.avro"])
def test_confluent_framed_messages_read_like_their_container(name: str, tmp_path: Path) -> None:
    from mbfast.alerts import read_messages

    messages, schema = confluent_messages(DATA / name, 7)
    from_file = read_alerts(DATA / name, errors="raise")
    schema_file = tmp_path / "alert.avsc"
    schema_file.write_text(json.dumps(schema))
    for given_schema in (schema, json.dumps(schema), schema_file):  # parsed, JSON text, a file
        rows = read_messages(messages, {7: given_schema}, errors="raise", source="alerts-topic/0")
        assert rows.survey is from_file.survey and rows.files == ("alerts-topic/0",)
        for column in ("obj_id", "band", "t", "mag", "err", "alert_id", "current", "packet", "alert_obj_id",
                       "alert_alert_id", "alert_t", "alert_row", "alert_packet"):
            np.testing.assert_array_equal(getattr(rows, column), getattr(from_file, column), err_msg=column)


def test_bad_messages_are_problems_naming_their_index() -> None:
    from mbfast.alerts import read_messages

    messages, schema = confluent_messages(ZTF_DIR / "kafka_snappy_8_packets.avro", 3)
    bad = [messages[0], b"{not avro}", b"\x00\x00\x00\x00\x09" + messages[1][5:], messages[2][:40],
           messages[3] + b"\x00\x01", messages[4]]
    rows = read_messages(bad, {3: schema}, source="topic")
    problems = {problem.packet: problem.message for problem in rows.problems}
    assert sorted(problems) == [1, 2, 3, 4]
    assert "not a Confluent-framed Avro message" in problems[1]
    assert "schema id 9 is not among the schemas given ([3])" in problems[2]
    assert problems[3].startswith("undecodable packet")
    assert "2 bytes left after the packet" in problems[4]
    assert sorted(set(rows.alert_packet.tolist())) == [0, 5]  # the good messages were read
    with pytest.raises(AlertError, match="topic.*packet 1"):
        read_messages(bad, {3: schema}, errors="raise", source="topic")
    lsst_schema = Container.from_bytes((LSST_DIR / "rubin_lsstcam_v10_0_25_alerts.avro").read_bytes()).schema
    mixed = read_messages(bad, {3: schema, 4: lsst_schema}, source="topic")
    assert len(mixed) == 0 and "schemas of more than one survey" in mixed.problems[0].message


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_random_message_bytes_are_problems_never_crashes(bodies: list[bytes]) -> None:
    from mbfast.alerts import read_messages

    schema = Container.from_bytes((ZTF_DIR / "kafka_snappy_8_packets.avro").read_bytes()).schema
    messages = [b"\x00\x00\x00\x00\x03" + body for body in bodies]
    rows = read_messages(messages, {3: schema})
    assert rows.n_alerts + len(rows.problems) == len(messages)  # each message is an alert or a problem


# --- schemas lacking what the readers need ------------------------------------------------------------------

def _edit_struct(table: pa.Table, column: str, name: str, values: pa.Array | None) -> pa.Table:
    """`table` with struct column `column`'s field `name` replaced by `values`, or dropped when None."""
    struct = table.column(column).combine_chunks()
    fields = {field.name: struct.field(field.name) for field in struct.type}
    if values is None:
        del fields[name]
    else:
        fields[name] = values
    edited = pa.StructArray.from_arrays(list(fields.values()), names=list(fields), mask=struct.is_null())
    return table.set_column(table.schema.get_field_index(column), column, edited)


LSST_PARQUET = LSST_DIR / "rubin_lsstcam_v10_0_25_alerts.parquet"
ZTF_PARQUET = ZTF_DIR / "fink_ztf_v4p02_8_alerts.parquet"
SCHEMA_CASES = {
    # case: (file, struct column, field, replacement (None: dropped), problem)
    "no diaObjectId": (LSST_PARQUET, "diaSource", "diaObjectId", None, "no field diaSource.diaObjectId"),
    "no band": (LSST_PARQUET, "diaSource", "band", None, "no field diaSource.band or diaSource.filterName"),
    "integer band": (LSST_PARQUET, "diaSource", "band", pa.array([1] * 25, pa.int8()),
                     "diaSource.band is int, expected string"),
    "no psfFlux": (LSST_PARQUET, "diaSource", "psfFlux", None, "no field diaSource.psfFlux or diaSource.psFlux"),
    "fid as strings": (ZTF_PARQUET, "candidate", "fid", pa.array(["1"] * 8), "candidate.fid is string, expected int"),
    "no magpsf": (ZTF_PARQUET, "candidate", "magpsf", None, "no field candidate.magpsf"),
}


@pytest.mark.parametrize("case", sorted(SCHEMA_CASES))
def test_a_schema_lacking_a_needed_field_is_a_problem_naming_it(case: str, tmp_path: Path) -> None:
    """Never rows quietly cut (no magpsf read as upper limits, no diaObjectId as solar-system sources)."""
    source, column, name, values, problem = SCHEMA_CASES[case]
    path = tmp_path / "edited.parquet"
    pq.write_table(_edit_struct(pq.read_table(source), column, name, values), path)
    rows = read_alerts(path)
    assert [str(p) for p in rows.problems] == [f"{path}: whole file: alert schema unusable: {problem}"]
    assert rows.n_alerts == 0 and rows.skipped == {}


def test_an_avro_schema_lacking_a_needed_field_is_a_problem_naming_it(tmp_path: Path) -> None:
    def drop_object_id(schema: dict) -> dict:
        for field in schema["fields"]:
            if field["name"] == "diaSource":
                field["type"]["fields"] = [f for f in field["type"]["fields"] if f["name"] != "diaObjectId"]
        return schema

    path = tmp_path / "no_object_id.avro"
    _rewrite(LSST_DIR / "rubin_lsstcam_v10_0_25_alerts.avro", path, edit_schema=drop_object_id)
    rows = read_alerts(path)
    assert [str(p) for p in rows.problems] == [
        f"{path}: whole file: alert schema unusable: no field diaSource.diaObjectId"]
    messages, schema = confluent_messages(path, 5)
    from_kafka = read_messages(messages, {5: schema}, source="topic/0")
    assert [str(p) for p in from_kafka.problems] == [
        "topic/0: whole file: alert schema unusable: no field diaSource.diaObjectId"]


# --- text that is not UTF-8; arguments that are not messages ------------------------------------------------

def test_a_band_that_is_not_utf8_names_file_and_packet(tmp_path: Path) -> None:
    with open(LSST_DIR / "rubin_lsstcam_v10_0_25_alerts.avro", "rb") as handle:
        reader = fastavro.reader(handle)
        schema, records = reader.writer_schema, list(reader)
    records[1]["diaSource"]["band"] = "Q"
    body = io.BytesIO()
    fastavro.writer(body, fastavro.parse_schema(schema), records[:3], codec="null")
    data = body.getvalue()
    at = data.index(b"\x02Q")  # the 1-character string "Q"
    path = tmp_path / "band.avro"
    path.write_bytes(data[:at] + b"\x02\xff" + data[at + 2:])
    rows = read_alerts(path)
    assert rows.n_alerts == 1
    assert [str(p).split(": ", 2)[1:] for p in rows.problems] == [
        ["packet 1", "undecodable record in block at byte "
                     f"{Container.from_bytes(data).start}: a string field is not UTF-8 text (invalid start byte at "
                     "byte 0 of the string)"],
        ["packet 2", f"not read: packet 1 before it in the block at byte {Container.from_bytes(data).start} could "
                     "not be decoded"]]


def test_a_parquet_band_that_is_not_utf8_names_file_and_row(tmp_path: Path) -> None:
    """Arrow does not check UTF-8 when a string column is built from raw buffers; the reader finds the row."""
    table = pq.read_table(LSST_PARQUET)
    labels = table.column("diaSource").combine_chunks().field("band").to_pylist()
    raw = pa.array([b"\xff" if row == 4 else label.encode() for row, label in enumerate(labels)], pa.binary())
    path = tmp_path / "band.parquet"
    not_utf8 = pa.Array.from_buffers(pa.string(), len(raw), raw.buffers())
    pq.write_table(_edit_struct(table, "diaSource", "band", not_utf8), path)
    rows = read_alerts(path)
    assert [str(p) for p in rows.problems] == [
        f"{path}: packet 4: undecodable row: a string field is not UTF-8 text (invalid start byte at byte 0 of the "
        "string)"]
    clean = read_alerts(LSST_PARQUET)
    assert rows.n_alerts == 24 and rows.alert_packet.tolist() == [k for k in range(25) if k != 4]
    np.testing.assert_array_equal(rows.alert_alert_id, np.delete(clean.alert_alert_id, 4))


def test_an_avro_header_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    data = (LSST_DIR / "rubin_lsstcam_v10_0_25_alerts.avro").read_bytes()
    key = data.index(b"avro.schema")
    bad_key = tmp_path / "key.avro"
    bad_key.write_bytes(data[:key] + b"\xff" + data[key + 1:])
    name = data.index(b'"name"')
    bad_schema = tmp_path / "schema.avro"
    bad_schema.write_bytes(data[:name] + b'"\xff' + data[name + 2:])
    empty = tmp_path / "empty.avro"
    empty.write_bytes(b"")
    assert [str(p) for p in read_alerts([bad_key, bad_schema, empty]).problems] == [
        f"{bad_key}: whole file: Avro header: metadata key at byte {key} is not UTF-8 text",
        f"{bad_schema}: whole file: Avro header: avro.schema or avro.codec is not UTF-8 text (invalid start byte at "
        f"byte {name + 1 - data.index(b'{')} of the value)",
        f"{empty}: whole file: empty file"]


def test_read_messages_refuses_what_is_not_messages() -> None:
    messages, schema = confluent_messages(ZTF_DIR / "kafka_snappy_8_packets.avro", 3)
    for given, kind in ((None, "NoneType"), (messages[0], "bytes"), ("abc", "str"), (3, "int")):
        with pytest.raises(ValueError, match=f"^messages must be an iterable of message values \\(bytes\\), got "
                                             f"{kind}$"):
            read_messages(given, {3: schema})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^schemas must map schema id -> writer schema, got NoneType$"):
        read_messages(messages, None)  # type: ignore[arg-type]
    rows = read_messages([None, messages[0], "text"], {3: schema}, source="t")  # type: ignore[list-item]
    assert [str(p) for p in rows.problems] == ["t: packet 0: message value is NoneType, not bytes",
                                               "t: packet 2: message value is str, not bytes"]
    assert rows.n_alerts == 1
