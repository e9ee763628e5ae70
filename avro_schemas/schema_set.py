"""Load the ``.avsc`` files into parsed, fingerprinted schemas.

Shared named types live in ``common/`` and are parsed first so event schemas can refer to them by
name. Every event schema names its event type in the custom attribute ``healthbus.event_type``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

SCHEMA_DIR = Path(__file__).parent
EVENT_TYPE_ATTRIBUTE = "healthbus.event_type"
# Order matters: a named type must be parsed before a file that refers to it.
COMMON_FILES = ("common/source.avsc", "common/patient.avsc", "common/diagnosis.avsc", "common/envelope.avsc")
EVENT_DIRS = ("events", "identity", "quality", "collab", "surveillance", "alerts", "ops")


@dataclass(frozen=True)
class EventSchema:
    """One event type's schema, ready for fastavro and for the wire."""

    event_type: str
    full_name: str
    parsed: Any  # fastavro's parsed schema
    canonical_form: str  # Avro Parsing Canonical Form
    fingerprint: bytes  # CRC-64-AVRO of the canonical form, 8 bytes little-endian
    standalone_json: str  # the schema with every named type inlined, for a schema registry


def avro_fingerprint(canonical_form: str) -> bytes:
    """CRC-64-AVRO fingerprint as the 8 little-endian bytes single-object encoding puts on the wire."""
    return bytes.fromhex(fingerprint(canonical_form, "CRC-64-AVRO"))  # fastavro's hex is already little-endian


def parse_standalone(schema: dict[str, Any] | str) -> EventSchema:
    """Build an EventSchema from a self-contained schema (named types inlined), e.g. a released snapshot."""
    raw = json.loads(schema) if isinstance(schema, str) else schema
    return _event_schema(raw)


def _full_name(raw: dict[str, Any], enclosing_namespace: str | None) -> str:
    name = raw["name"]
    if "." in name:
        return name
    namespace = raw.get("namespace", enclosing_namespace)
    return f"{namespace}.{name}" if namespace else name


def inline_named_types(node: Any, definitions: dict[str, Any], seen: set[str], namespace: str | None = None) -> Any:
    """Replace references to shared named types by their definition, once each (Avro forbids a second
    definition), so the schema stands alone, as a schema registry and the canonical form need it."""
    if isinstance(node, str):
        name = node if "." in node or not namespace else f"{namespace}.{node}"
        for candidate in (node, name):
            if candidate in definitions and candidate not in seen:
                seen.add(candidate)
                return inline_named_types(definitions[candidate], definitions, seen, namespace)
        return node
    if isinstance(node, list):
        return [inline_named_types(item, definitions, seen, namespace) for item in node]
    if not isinstance(node, dict):
        return node
    out = dict(node)
    if node.get("type") in ("record", "enum", "fixed", "error") and "name" in node:
        full = _full_name(node, namespace)
        seen.add(full)
        namespace = full.rpartition(".")[0] or None
    if "fields" in node:
        out["fields"] = [
            {**field, "type": inline_named_types(field["type"], definitions, seen, namespace)}
            for field in node["fields"]
        ]
    for key in ("items", "values"):
        if key in node:
            out[key] = inline_named_types(node[key], definitions, seen, namespace)
    if isinstance(node.get("type"), (dict, list)):
        out["type"] = inline_named_types(node["type"], definitions, seen, namespace)
    return out


def _event_schema(standalone: dict[str, Any]) -> EventSchema:
    # Keep fastavro's "already parsed" hint: without it every read and write re-parses the schema (2x slower).
    parsed = fastavro.parse_schema(standalone)
    canonical = to_parsing_canonical_form(parsed)
    return EventSchema(
        event_type=standalone[EVENT_TYPE_ATTRIBUTE],
        full_name=_full_name(standalone, None),
        parsed=parsed,
        canonical_form=canonical,
        fingerprint=avro_fingerprint(canonical),
        standalone_json=json.dumps(standalone, ensure_ascii=False),
    )


def load_schemas(schema_dir: Path = SCHEMA_DIR) -> dict[str, EventSchema]:
    """Parse every event schema under ``schema_dir``; keyed by event type."""
    shared: dict[str, Any] = {}
    for rel in COMMON_FILES:
        raw = json.loads((schema_dir / rel).read_text("utf-8"))
        shared[_full_name(raw, None)] = raw
    schemas: dict[str, EventSchema] = {}
    for sub in EVENT_DIRS:
        for path in sorted((schema_dir / sub).glob("*.avsc")):
            raw = json.loads(path.read_text("utf-8"))
            if EVENT_TYPE_ATTRIBUTE not in raw:
                raise ValueError(f"{path}: missing the {EVENT_TYPE_ATTRIBUTE!r} attribute")
            schema = _event_schema(inline_named_types(raw, shared, set()))
            if schema.event_type in schemas:
                raise ValueError(f"{path}: event type {schema.event_type!r} declared twice")
            schemas[schema.event_type] = schema
    return schemas


@cache
def current_schemas() -> dict[str, EventSchema]:
    """The schemas in this checkout (what writers write and readers read to)."""
    return load_schemas()
