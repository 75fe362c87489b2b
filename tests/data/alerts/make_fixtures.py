"""Rebuild the alert fixtures in this folder from the project's shared copy of public alert data.

Usage: python tests/data/alerts/make_fixtures.py [SOURCE]   (SOURCE defaults to /work/shared/data)
Originals are copied byte for byte; the other files re-pack real packets (see PROVENANCE.md). Not run by tests.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import fastavro
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent

# (source path under SOURCE, fixture name): copied unchanged
COPIES = [
    ("ztf_alert_packets_avro/ztf-avro-alert/data/2019_01_10_739260766315010006.avro", "ztf/ztf_v3p2_ZTF17aaacxxf.avro"),
    ("ztf_alert_packets_avro/fink-alert-schemas/template_schema_ZTF_3p3.avro", "ztf/ztf_v3p3_ZTF19abvhduf.avro"),
    ("alerce_pipeline_test_alerts/lc_classifier_examples/2454460970015010006.avro", "ztf/ztf_v4p01_ZTF20acunklg.avro"),
    ("alerce_pipeline_test_alerts/ZTF_samples/000010513288133226.avro", "ztf/kafka_snappy_v3p0.avro"),
]
# Kafka dumps (one snappy record each, one shared schema) re-packed into one multi-block snappy container
KAFKA_DUMPS = [
    "000010513288133226", "0000105122762938331", "000010512327064809", "000010510166461127",
    "000010510353132486", "000010513188721827", "000010510007802576", "000010510092392116",
]
# ztf.alert 3.3 packets with the same writer schema re-packed into one deflate container
ZTF_V3P3 = [
    "ztf_alert_packets_avro/fink-alert-schemas/template_schema_ZTF_3p3.avro",
    "ztf_alert_packets_avro/fink-alert-schemas/ztf_public_20190903.schema.avro",
    "ztf_alert_packets_avro/ztf-avro-alert/data/472263571115115000.avro",
]
CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")

# Rubin packets as an Avro container: the fields the reader uses plus ids, under the lsst.v10_0 names and types
LSST_SOURCE_FIELDS = [("diaSourceId", "long"), ("visit", "long"), ("diaObjectId", ["null", "long"]),
                      ("ssObjectId", ["null", "long"]), ("midpointMjdTai", "double"), ("ra", "double"),
                      ("dec", "double"), ("psfFlux", ["null", "float"]), ("psfFluxErr", ["null", "float"]),
                      ("band", ["null", "string"])]
LSST_SCHEMA = {
    "type": "record", "name": "alert", "namespace": "lsst.v10_0",
    "fields": [
        {"name": "diaSourceId", "type": "long"},
        {"name": "diaSource", "type": {"type": "record", "name": "diaSource", "namespace": "lsst.v10_0",
                                       "fields": [{"name": n, "type": t} for n, t in LSST_SOURCE_FIELDS]}},
        {"name": "prvDiaSources", "type": ["null", {"type": "array", "items": "lsst.v10_0.diaSource"}],
         "default": None},
    ],
}


def read_avro(path: Path) -> tuple[dict, list[dict]]:
    with open(path, "rb") as handle:
        reader = fastavro.reader(handle)
        records = list(reader)
    return reader.writer_schema, records


def write_avro(path: Path, schema: dict, records: list[dict], codec: str, block_records: int) -> None:
    parsed = fastavro.parse_schema(schema)
    with open(path, "wb") as handle:
        writer = fastavro.write.Writer(handle, parsed, codec=codec, sync_interval=1 << 30)
        for index, record in enumerate(records, 1):
            writer.write(record)
            if index % block_records == 0:
                writer.flush()
        writer.flush()


def main(source: Path) -> None:
    for sub in ("ztf", "lsst"):
        (HERE / sub).mkdir(exist_ok=True)
    for relative, name in COPIES:
        shutil.copyfile(source / relative, HERE / name)

    schema, records = None, []
    for stem in KAFKA_DUMPS:
        schema, packet = read_avro(source / "alerce_pipeline_test_alerts/ZTF_samples" / f"{stem}.avro")
        records += packet
    write_avro(HERE / "ztf/kafka_snappy_8_packets.avro", schema, records, "snappy", block_records=3)

    schemas, records = set(), []
    for relative in ZTF_V3P3:
        schema, packet = read_avro(source / relative)
        schemas.add(json.dumps(schema, sort_keys=True))
        records += packet
    if len(schemas) != 1:
        raise SystemExit(f"ZTF_V3P3 packets have {len(schemas)} writer schemas; pick packets sharing one")
    write_avro(HERE / "ztf/ztf_v3p3_3_packets_deflate.avro", schema, records, "deflate", block_records=2)

    fink = pq.read_table(source / "fink_ztf_alerts_parquet/ztf_alerts_v4p02_hostless_72.parquet")
    fink = fink.drop_columns(list(CUTOUTS)).slice(0, 8)
    pq.write_table(fink, HERE / "ztf/fink_ztf_v4p02_8_alerts.parquet", compression="zstd")

    rubin = pq.read_table(source / "rubin_lsst_alerts/fink/rubin_lsstcam_alerts_v10_0_25.parquet")
    rubin = rubin.drop_columns(list(CUTOUTS))
    pq.write_table(rubin, HERE / "lsst/rubin_lsstcam_v10_0_25_alerts.parquet", compression="zstd")
    names = [name for name, _ in LSST_SOURCE_FIELDS]
    packets = []
    for row in rubin.select(["diaSourceId", "diaSource", "prvDiaSources"]).to_pylist():
        packets.append({"diaSourceId": row["diaSourceId"],
                        "diaSource": {name: row["diaSource"][name] for name in names},
                        "prvDiaSources": [{name: source_row[name] for name in names}
                                          for source_row in row["prvDiaSources"] or ()]})
    write_avro(HERE / "lsst/rubin_lsstcam_v10_0_25_alerts.avro", LSST_SCHEMA, packets, "deflate", block_records=10)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/data"))
