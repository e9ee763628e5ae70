"""`healthbus schemas check` fails on a change that stops the new reader reading released data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from avro_schemas.evolution import RELEASED_DIR, check_against_releases
from avro_schemas.schema_set import current_schemas, parse_standalone
from tests.conftest import healthbus


def _with_change(event_type: str, change) -> dict:
    schemas = dict(current_schemas())
    raw = json.loads(schemas[event_type].standalone_json)
    change(raw)
    schemas[event_type] = parse_standalone(raw)
    return schemas


def test_current_schemas_read_every_release() -> None:
    result = healthbus("schemas", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 incompatible" in result.stdout


def test_new_field_without_default_is_incompatible() -> None:
    schemas = _with_change(
        "outpatient.visit", lambda raw: raw["fields"].append({"name": "triage_level", "type": "int", "doc": "分诊级别"})
    )
    problems, _ = check_against_releases(current=schemas)
    assert any("triage_level" in p for p in problems)


def test_new_field_with_default_is_compatible() -> None:
    schemas = _with_change(
        "outpatient.visit",
        lambda raw: raw["fields"].append(
            {"name": "triage_level", "type": ["null", "int"], "default": None, "doc": "分诊级别"}
        ),
    )
    assert check_against_releases(current=schemas)[0] == []


def test_removed_enum_symbol_and_removed_event_type_are_incompatible() -> None:
    def drop_other(raw: dict) -> None:
        field = next(f for f in raw["fields"] if f["name"] == "discharge_method")
        field["type"]["symbols"].remove("OTHER")

    schemas = _with_change("inpatient.discharge", drop_other)
    del schemas["birth.record"]
    problems, _ = check_against_releases(current=schemas)
    assert any("OTHER" in p for p in problems)
    assert any("birth.record: event type removed" in p for p in problems)


def test_cli_fails_against_a_release_the_checkout_cannot_read(tmp_path: Path) -> None:
    """A released writer lacked a field the current reader requires without default: exit 1."""
    released = tmp_path / "released"
    shutil.copytree(RELEASED_DIR, released)
    old = released / "1.0.0" / "outpatient.visit.avsc"
    raw = json.loads(old.read_text("utf-8"))
    raw["fields"] = [f for f in raw["fields"] if f["name"] != "visit_no"]
    old.write_text(json.dumps(raw, ensure_ascii=False), "utf-8")
    result = healthbus("schemas", "check", "--released-dir", str(released))
    assert result.returncode == 1
    assert "visit_no" in result.stdout
