"""Kafka messages for the alert tests, made from the fixture containers."""
from __future__ import annotations

import io
from pathlib import Path

import fastavro

from mbfast.alerts.container import Container


def confluent_messages(path: Path, schema_id: int) -> tuple[list[bytes], dict]:
    """Every packet of an Avro container re-framed as a Kafka message in the Confluent wire format, and its
    writer schema (what the schema registry would serve for `schema_id`)."""
    schema = Container.from_bytes(path.read_bytes()).schema
    parsed = fastavro.parse_schema(schema)
    messages = []
    with open(path, "rb") as handle:
        for record in fastavro.reader(handle):
            body = io.BytesIO()
            fastavro.schemaless_writer(body, parsed, record)
            messages.append(b"\x00" + schema_id.to_bytes(4, "big") + body.getvalue())
    return messages, schema
