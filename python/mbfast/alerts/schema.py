"""Check that an alert schema has every field the readers need, with a usable type, before any packet is read.

A field missing from the writer schema would otherwise read as null in every packet and quietly turn into cut
counts (no magpsf reads as an upper limit, no diaObjectId as a solar-system source). Avro writer schemas (JSON)
and Arrow schemas (Fink Parquet) are both reduced to a tree of field name -> kind ("int", "float", "string",
"bool", "bytes", or a subtree for records, structs and lists of them), then checked against the survey's
REQUIRED table (ztf.py, lsst.py).
"""
from __future__ import annotations

from typing import Any, Union

import pyarrow as pa

Tree = dict[str, Union[str, "Tree"]]
# one requirement: alternative paths (the first present one is used) and the kinds it may have
Requirement = tuple[tuple[tuple[str, ...], ...], frozenset[str]]

NUMBER = frozenset({"int", "float"})
INTEGER = frozenset({"int"})
STRING = frozenset({"string"})

_AVRO_KINDS = {"int": "int", "long": "int", "float": "float", "double": "float", "string": "string",
               "boolean": "bool", "bytes": "bytes", "fixed": "bytes", "enum": "string"}


def avro_tree(schema: Any) -> Tree:
    """Field tree of an Avro record schema (JSON), named types resolved."""
    named: dict[str, Any] = {}
    kind = _avro_kind(schema, named, "")
    return kind if isinstance(kind, dict) else {}


def _avro_kind(schema: Any, named: dict[str, Any], namespace: str) -> str | Tree:
    if isinstance(schema, str):
        if schema in _AVRO_KINDS:
            return _AVRO_KINDS[schema]
        found = named.get(schema, named.get(f"{namespace}.{schema}"))
        return _avro_kind(found, named, namespace) if found is not None else "unknown"
    if isinstance(schema, list):  # a union: nullable fields are [null, T]; anything else is not one kind
        branches = [branch for branch in schema if branch != "null"]
        return _avro_kind(branches[0], named, namespace) if len(branches) == 1 else "union"
    if not isinstance(schema, dict):
        return "unknown"
    kind = schema.get("type")
    if kind in ("record", "enum", "fixed"):
        name = str(schema.get("name", ""))
        namespace = str(schema.get("namespace", namespace))
        named[name] = schema
        named[f"{namespace}.{name}"] = schema
        if kind != "record":
            return _AVRO_KINDS[kind]
        return {str(field["name"]): _avro_kind(field["type"], named, namespace) for field in schema.get("fields", ())}
    if kind == "array":
        return _avro_kind(schema.get("items"), named, namespace)
    return _avro_kind(kind, named, namespace)


def arrow_tree(schema: pa.Schema) -> Tree:
    """Field tree of an Arrow schema (lists stand for their items, as Avro arrays do)."""
    return {field.name: _arrow_kind(field.type) for field in schema}


def _arrow_kind(kind: pa.DataType) -> str | Tree:
    if pa.types.is_struct(kind):
        return {field.name: _arrow_kind(field.type) for field in kind}
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _arrow_kind(kind.value_type)
    if pa.types.is_dictionary(kind):
        return _arrow_kind(kind.value_type)
    if pa.types.is_integer(kind):
        return "int"
    if pa.types.is_floating(kind):
        return "float"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "string"
    if pa.types.is_boolean(kind):
        return "bool"
    return str(kind)


def check(tree: Tree, required: tuple[Requirement, ...]) -> None:
    """Raise ValueError naming every required field that is missing or has an unusable type."""
    problems = []
    for paths, kinds in required:
        found = [(path, kind) for path in paths if (kind := _lookup(tree, path)) is not None]
        name = " or ".join(".".join(path) for path in paths)
        if not found:
            problems.append(f"no field {name}")
            continue
        path, kind = found[0]
        if isinstance(kind, dict) or kind not in kinds:
            shown = "a record" if isinstance(kind, dict) else kind
            problems.append(f"{'.'.join(path)} is {shown}, expected {' or '.join(sorted(kinds))}")
    if problems:
        raise ValueError(f"alert schema unusable: {'; '.join(problems)}")


def _lookup(tree: Tree, path: tuple[str, ...]) -> str | Tree | None:
    node: str | Tree | None = tree
    for name in path:
        if not isinstance(node, dict):
            return None
        node = node.get(name)
    return node


def has(tree: Tree, path: tuple[str, ...]) -> bool:
    return _lookup(tree, path) is not None


__all__ = ["INTEGER", "NUMBER", "STRING", "Requirement", "arrow_tree", "avro_tree", "check", "has"]
