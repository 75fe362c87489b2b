"""Read ZTF and Rubin/LSST alert packets into flat step rows for Engine.step.

Files: Avro object containers (one packet or many, any codec: null, deflate, snappy, zstandard, bzip2, xz),
and Parquet with one alert per row as the Fink broker stores them. Kafka messages: the Confluent wire format
(`read_messages`), as Rubin and ZTF publish them, with the writer schemas the registry serves.

Modules: read (files and messages -> AlertRows), container (Avro containers packet by packet), ztf and lsst (one
packet -> rows), rows (AlertRows and its builder). Ordering, deduplication across packets and scoring are
mbfast.jobs.stream's job.
"""
from mbfast.alerts.read import read_alerts, read_messages, survey_of_files
from mbfast.alerts.rows import AlertError, AlertProblem, AlertRows
from mbfast.alerts.ztf import ZtfCuts, apparent_magnitude, ztf_object_id, ztf_object_name

__all__ = ["AlertError", "AlertProblem", "AlertRows", "ZtfCuts", "apparent_magnitude", "read_alerts",
           "read_messages", "survey_of_files", "ztf_object_id", "ztf_object_name"]
