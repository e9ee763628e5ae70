"""Schema evolution: can this checkout's reader still read what every released writer wrote?

Released versions are snapshots under ``released/<version>/`` (one standalone schema per event type),
kept in git. The check lets fastavro's schema resolution decide: for each released schema it writes
sample records that exercise every union branch and enum symbol, and reads them back with the current
schema of the same event type. A resolution error (a new field without a default, a removed enum symbol,
a changed type) is an incompatible change. A removed event type is one too.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
from pathlib import Path
from typing import Any

import fastavro

from avro_schemas.schema_set import SCHEMA_DIR, EventSchema, current_schemas, parse_standalone

RELEASED_DIR = SCHEMA_DIR / "released"
PRIMITIVE_SAMPLES: dict[str, Any] = {
    "null": None,
    "boolean": True,
    "int": 7,
    "long": 7,
    "float": 1.5,
    "double": 2.5,
    "bytes": b"\x01",
    "string": "样例",
}
LOGICAL_SAMPLES: dict[str, Any] = {
    "date": dt.date(2026, 1, 2),
    "timestamp-millis": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    "timestamp-micros": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    "decimal": decimal.Decimal("12.34"),
}


def sample_value(schema: Any, variant: int, named: dict[str, Any] | None = None) -> Any:
    """A value of ``schema``; ``variant`` picks union branches and enum symbols (modulo their count), so
    variants 0..n-1 together cover every branch and symbol."""
    named = {} if named is None else named
    if isinstance(schema, str):
        return PRIMITIVE_SAMPLES[schema] if schema in PRIMITIVE_SAMPLES else sample_value(named[schema], variant, named)
    if isinstance(schema, list):
        return sample_value(schema[variant % len(schema)], variant, named)
    kind = schema["type"]
    if schema.get("logicalType") in LOGICAL_SAMPLES:
        return LOGICAL_SAMPLES[schema["logicalType"]]
    if kind == "record":
        named[schema["name"]] = schema
        if "namespace" in schema:
            named[f"{schema['namespace']}.{schema['name']}"] = schema
        return {f["name"]: sample_value(f["type"], variant, named) for f in schema["fields"]}
    if kind == "enum":
        named[schema["name"]] = schema
        return schema["symbols"][variant % len(schema["symbols"])]
    if kind == "array":
        return [sample_value(schema["items"], variant, named)]
    if kind == "map":
        return {"k": sample_value(schema["values"], variant, named)}
    if kind == "fixed":
        return b"\x00" * schema["size"]
    return sample_value(kind, variant, named)


def _variants(schema: Any) -> int:
    """How many variants cover every union branch and enum symbol."""
    if isinstance(schema, list):
        return max([len(schema), *(_variants(s) for s in schema)])
    if isinstance(schema, dict):
        counts = [1]
        if schema.get("type") == "enum":
            counts.append(len(schema["symbols"]))
        counts += [_variants(f["type"]) for f in schema.get("fields", [])]
        counts += [_variants(schema[k]) for k in ("items", "values") if k in schema]
        if isinstance(schema.get("type"), (dict, list)):
            counts.append(_variants(schema["type"]))
        return max(counts)
    return 1


def incompatibilities(writer: EventSchema, reader: EventSchema) -> list[str]:
    raw = json.loads(writer.standalone_json)
    problems = []
    for variant in range(_variants(raw)):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, writer.parsed, sample_value(raw, variant))
        buf.seek(0)
        try:
            fastavro.schemaless_reader(buf, writer.parsed, reader.parsed)
        except Exception as exc:  # SchemaResolutionError and friends
            problem = f"{type(exc).__name__}: {exc}"
            if problem not in problems:
                problems.append(problem)
    return problems


def released_versions(released_dir: Path = RELEASED_DIR) -> list[Path]:
    def key(path: Path) -> tuple[int, ...]:
        return tuple(int(p) for p in path.name.split(".") if p.isdigit())

    return sorted((p for p in released_dir.iterdir() if p.is_dir()), key=key) if released_dir.exists() else []


def load_release(version_dir: Path) -> dict[str, EventSchema]:
    schemas = [parse_standalone(p.read_text("utf-8")) for p in sorted(version_dir.glob("*.avsc"))]
    return {s.event_type: s for s in schemas}


def released_writers(released_dir: Path = RELEASED_DIR) -> list[EventSchema]:
    """Every released schema: readers accept single-object payloads written with any of them."""
    return [s for d in released_versions(released_dir) for s in load_release(d).values()]


def check_against_releases(
    released_dir: Path | None = None, current: dict[str, EventSchema] | None = None
) -> tuple[list[str], int]:
    """(problems, number of released schemas checked). Every released version is checked, not just the last:
    old data lives on in topics and dead-letter queues."""
    current = current if current is not None else current_schemas()
    problems: list[str] = []
    checked = 0
    for version_dir in released_versions(released_dir or RELEASED_DIR):
        for event_type, writer in load_release(version_dir).items():
            checked += 1
            reader = current.get(event_type)
            if reader is None:
                problems.append(f"{version_dir.name} {event_type}: event type removed")
                continue
            if reader.fingerprint == writer.fingerprint:
                continue
            problems += [f"{version_dir.name} {event_type}: {p}" for p in incompatibilities(writer, reader)]
    return problems, checked


def release(version: str, released_dir: Path = RELEASED_DIR) -> Path:
    target = released_dir / version
    if target.exists():
        raise FileExistsError(f"{target} exists: a released version is never rewritten")
    problems, _ = check_against_releases(released_dir)
    if problems:
        raise ValueError("refusing to release incompatible schemas: " + "; ".join(problems))
    target.mkdir(parents=True)
    for schema in current_schemas().values():
        pretty = json.dumps(json.loads(schema.standalone_json), ensure_ascii=False, indent=2)
        (target / f"{schema.event_type}.avsc").write_text(pretty + "\n", "utf-8")
    return target
