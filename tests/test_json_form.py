"""The contracts' JSON form read back: ``from_json`` inverts ``to_json`` for every event the pipeline carries
(synthetic events of every type, every union branch and enum symbol of every schema), and bad input fails
with a machine-readable code and the path to the offending value."""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import json
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest

from avro_schemas.evolution import _variants, sample_value
from avro_schemas.json_form import JsonFormError, event_from_json_line, from_json, to_json
from avro_schemas.schema_set import current_schemas
from avro_schemas.serde import EventCodec
from avro_schemas.topics import PIPELINE_EVENT_TYPES
from producers.adapters.mapping import SourceIdentity, UnmappableRow, as_utc, envelope, patient_block
from producers.adapters.tables import PERSON_PK, PERSON_TABLE, TABLES
from synthetic.exchange_data import generate_records
from synthetic.outpatient_visits import outpatient_visits
from synthetic.world import build_world

CODEC = EventCodec()


def decoded(event_type: str, value: dict[str, Any]) -> dict[str, Any]:
    """``value`` as a reader sees it: through the wire and back (what ``to_json`` is given in the pipeline)."""
    return CODEC.decode(CODEC.encode(event_type, value)).value


@cache
def synthetic_events() -> tuple[tuple[str, dict[str, Any]], ...]:
    """Every event two synthetic hospitals and a county publish over three days, built in memory the way the
    adapter builds them from the exchange databases (producers/adapters/poller.py), decoded off the wire."""
    records = generate_records(build_world(11, 2, 1, 3, dt.date(2026, 11, 1)), 0.0)
    events = []
    for kind, sources in (("hospital", records.hospitals), ("county", records.counties)):
        for source in sources:
            inst = source.inst
            identity = SourceIdentity(
                inst.org_code,
                inst.name,
                inst.region_code,
                "HOSPITAL" if kind == "hospital" else "COUNTY",
                "HIS" if kind == "hospital" else "PH",
            )
            persons = {p[PERSON_PK[kind]]: p for p in source.tables[PERSON_TABLE[kind]]}
            for spec in TABLES[kind]:
                for row in source.tables.get(spec.name, []):
                    key = str(row[spec.pk])
                    try:
                        if spec.person_column:
                            person_id = row.get(spec.person_column)
                            patient = patient_block(persons.get(person_id), str(person_id), spec.person_column)
                        else:
                            patient = patient_block(row, key, spec.pk)
                        value = {
                            "envelope": envelope(
                                spec.event_type,
                                identity,
                                spec.name,
                                key,
                                row,
                                as_utc(row[spec.occurred_at]),
                                patient,
                                as_utc(row["updated_at"]),
                            ),
                            **spec.body(row, row.get("_children", {})),
                        }
                    except UnmappableRow:
                        continue
                    events.append((spec.event_type, decoded(spec.event_type, value)))
    return tuple(events)


def round_trip(event_type: str, value: dict[str, Any]) -> dict[str, Any]:
    return from_json(event_type, json.loads(to_json(value)))


@pytest.mark.parametrize("event_type", PIPELINE_EVENT_TYPES)
def test_round_trip_every_synthetic_event(event_type: str) -> None:
    events = [v for t, v in synthetic_events() if t == event_type]
    assert events, f"the synthetic world produced no {event_type}"
    for value in events:
        back = round_trip(event_type, value)
        assert back == value
        assert to_json(back) == to_json(value)  # same field order, same text


@pytest.mark.parametrize("event_type", sorted(current_schemas()))
def test_round_trip_every_union_branch_and_enum_symbol(event_type: str) -> None:
    raw = json.loads(current_schemas()[event_type].standalone_json)
    for variant in range(_variants(raw)):
        value = decoded(event_type, sample_value(raw, variant))
        assert round_trip(event_type, value) == value


def test_decimal_and_bytes_come_back_as_the_decoder_builds_them() -> None:
    discharges = [v for t, v in synthetic_events() if t == "inpatient.discharge" and v["total_cost"] is not None]
    assert discharges
    for value in discharges:
        back = round_trip("inpatient.discharge", value)
        assert back["total_cost"].as_tuple() == value["total_cost"].as_tuple()  # scale kept: "12.30", not "12.3"
    raw = json.loads(current_schemas()["ops.dead_letter"].standalone_json)
    letter = decoded(
        "ops.dead_letter", {**sample_value(raw, 1), "payload": bytes(range(256)), "headers": {"sig": b"\x00\xff"}}
    )
    back = round_trip("ops.dead_letter", letter)
    assert back == letter and back["payload"] == bytes(range(256))


def test_event_from_json_line_reads_the_type_from_the_envelope() -> None:
    visits = [decoded("outpatient.visit", v) for v in outpatient_visits(300, seed=4)]
    for visit in visits:
        assert event_from_json_line(to_json(visit)) == ("outpatient.visit", visit)
    event_type, value = event_from_json_line(to_json(visits[0]).encode())  # bytes, as read from a file
    assert event_type == "outpatient.visit" and value == visits[0]


def test_timestamps_are_tz_aware_utc_and_lenient_on_offsets() -> None:
    visit = json.loads(to_json(decoded("outpatient.visit", next(outpatient_visits(1)))))
    visit["envelope"]["occurred_at"] = "2026-11-01T16:00:00.123999+08:00"
    value = from_json("outpatient.visit", visit)
    occurred = value["envelope"]["occurred_at"]
    assert occurred == dt.datetime(2026, 11, 1, 8, 0, 0, 123000, tzinfo=dt.UTC)  # truncated, as Avro writes
    assert occurred.utcoffset() == dt.timedelta(0)
    assert decoded("outpatient.visit", value) == value


def test_defaults_fill_missing_fields_and_unknown_members_are_ignored() -> None:
    visit = json.loads(to_json(decoded("outpatient.visit", next(outpatient_visits(1)))))
    for name in ("cancelled", "person_id", "identity"):
        del visit["envelope"][name]
    del visit["temperature_c"]
    visit["added_by_a_newer_writer"] = {"anything": [1, 2]}
    value = from_json("outpatient.visit", visit)
    assert value["envelope"]["cancelled"] is False
    assert value["envelope"]["person_id"] is None and value["envelope"]["identity"] is None
    assert value["temperature_c"] is None
    assert "added_by_a_newer_writer" not in value
    assert decoded("outpatient.visit", value) == value
    letter = {
        k: v
        for k, v in json.loads(
            to_json(
                decoded(
                    "ops.dead_letter", sample_value(json.loads(current_schemas()["ops.dead_letter"].standalone_json), 0)
                )
            )
        ).items()
        if k not in ("details", "headers")
    }
    first, second = from_json("ops.dead_letter", letter), from_json("ops.dead_letter", letter)
    assert first["details"] == {} and first["headers"] == {}
    first["details"]["x"] = "y"
    assert second["details"] == {}  # a default is never shared between values


def _visit() -> dict[str, Any]:
    value = decoded("outpatient.visit", next(outpatient_visits(1, seed=9)))
    value["diagnoses"] = [
        {"code": "J06.900", "name": None, "is_primary": True, "diagnosed_at": None},
        {
            "code": "R50.900",
            "name": "发热",
            "is_primary": False,
            "diagnosed_at": dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC),
        },
    ]
    value["symptoms"] = ["发热", "咳嗽"]
    return json.loads(to_json(value))


def _set(path: tuple[Any, ...], new: Any) -> Callable[[dict[str, Any]], None]:
    def apply(obj: dict[str, Any]) -> None:
        for step in path[:-1]:
            obj = obj[step]
        obj[path[-1]] = new

    return apply


def _delete(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], None]:
    def apply(obj: dict[str, Any]) -> None:
        for step in path[:-1]:
            obj = obj[step]
        del obj[path[-1]]

    return apply


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        (_delete(("envelope", "occurred_at")), "envelope.occurred_at", "missing_field"),
        (_delete(("envelope",)), "envelope", "missing_field"),
        (_delete(("visit_no",)), "visit_no", "missing_field"),
        (_set(("envelope", "occurred_at"), "yesterday"), "envelope.occurred_at", "bad_timestamp"),
        (
            _set(("envelope", "occurred_at"), "2026-11-01T08:00:00"),
            "envelope.occurred_at",
            "bad_timestamp",
        ),  # no offset
        (_set(("envelope", "occurred_at"), 1793520000000), "envelope.occurred_at", "wrong_type"),
        (_set(("envelope", "patient", "birth_date"), "1991-2-19"), "envelope.patient.birth_date", "bad_date"),
        (_set(("envelope", "patient", "birth_date"), "1991-02-30"), "envelope.patient.birth_date", "bad_date"),
        (
            _set(("envelope", "patient", "birth_date"), "1991-02-19T00:00:00Z"),
            "envelope.patient.birth_date",
            "bad_date",
        ),
        (_set(("envelope", "source", "level"), "CLINIC"), "envelope.source.level", "unknown_enum"),
        (_set(("visit_type",), "outpatient"), "visit_type", "unknown_enum"),
        (_set(("envelope", "record_version"), "1"), "envelope.record_version", "wrong_type"),
        (_set(("envelope", "record_version"), True), "envelope.record_version", "wrong_type"),
        (_set(("envelope", "record_version"), 2**31), "envelope.record_version", "out_of_range"),
        (_set(("envelope", "cancelled"), 0), "envelope.cancelled", "wrong_type"),
        (_set(("envelope", "source"), None), "envelope.source", "wrong_type"),
        (_set(("envelope", "identity"), {"rule": 5}), "envelope.identity.rule", "wrong_type"),
        (
            _set(("envelope", "identity"), {"rule": "citizen_id", "weight": "high"}),
            "envelope.identity.weight",
            "wrong_type",
        ),
        (_set(("temperature_c",), "38.5"), "temperature_c", "wrong_type"),
        (_set(("diagnoses", 0, "code"), 42), "diagnoses[0].code", "wrong_type"),
        (_delete(("diagnoses", 1, "code")), "diagnoses[1].code", "missing_field"),
        (_set(("diagnoses", 1, "diagnosed_at"), "2026-13-01T00:00:00Z"), "diagnoses[1].diagnosed_at", "bad_timestamp"),
        (_set(("diagnoses", 1), "R50.900"), "diagnoses[1]", "wrong_type"),
        (_set(("diagnoses",), {"code": "R50.900"}), "diagnoses", "wrong_type"),
        (_set(("symptoms", 1), 3), "symptoms[1]", "wrong_type"),
    ],
)
def test_bad_values_name_the_field_and_the_reason(
    change: Callable[[dict[str, Any]], None], field: str, code: str
) -> None:
    obj = _visit()
    from_json("outpatient.visit", copy.deepcopy(obj))  # the unchanged visit converts
    change(obj)
    with pytest.raises(JsonFormError) as caught:
        from_json("outpatient.visit", obj)
    assert (caught.value.field, caught.value.code) == (field, code)
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith(f"{field}: {code}: ")


def test_error_messages_do_not_quote_the_value() -> None:
    obj = _visit()
    obj["envelope"]["patient"]["birth_date"] = "1991-02-30"
    obj["envelope"]["patient"]["id_number"] = 411503199102195764  # a number where a string belongs
    with pytest.raises(JsonFormError) as caught:
        from_json("outpatient.visit", obj)
    assert caught.value.field == "envelope.patient.birth_date"  # fields are checked in schema order
    assert "1991" not in str(caught.value)
    obj["envelope"]["patient"]["birth_date"] = None
    with pytest.raises(JsonFormError) as caught:
        from_json("outpatient.visit", obj)
    assert caught.value.field == "envelope.patient.id_number" and "4115" not in str(caught.value)


@pytest.mark.parametrize(
    ("total_cost", "code"),
    [
        ("12.345", "bad_decimal"),  # more digits after the point than the scale (2)
        ("1234567890123.00", "bad_decimal"),  # 15 digits, precision 14
        ("1E+999999999", "bad_decimal"),
        ("NaN", "bad_decimal"),
        ("twelve", "bad_decimal"),
        (12.5, "wrong_type"),  # a float would have rounded money already
    ],
)
def test_bad_decimals(total_cost: Any, code: str) -> None:
    obj = json.loads(to_json(next(v for t, v in synthetic_events() if t == "inpatient.discharge")))
    obj["total_cost"] = total_cost
    with pytest.raises(JsonFormError) as caught:
        from_json("inpatient.discharge", obj)
    assert (caught.value.field, caught.value.code) == ("total_cost", code)


def test_decimals_take_the_schema_scale() -> None:
    obj = json.loads(to_json(next(v for t, v in synthetic_events() if t == "inpatient.discharge")))
    for given, expected in (
        ("12.3", "12.30"),
        (12, "12.00"),
        ("-0.00", "0.00"),
        ("123456789012.34", "123456789012.34"),
    ):
        obj["total_cost"] = given
        value = from_json("inpatient.discharge", obj)
        assert str(value["total_cost"]) == expected
        assert decoded("inpatient.discharge", value)["total_cost"].as_tuple() == value["total_cost"].as_tuple()
    obj["total_cost"] = "12.30"
    assert from_json("inpatient.discharge", obj)["total_cost"] == decimal.Decimal("12.30")


def test_maps_and_bytes_name_the_key() -> None:
    raw = json.loads(current_schemas()["ops.dead_letter"].standalone_json)
    letter = json.loads(to_json(decoded("ops.dead_letter", sample_value(raw, 1))))
    for name, bad, field, code in (
        ("headers", {"sig": "not base64!"}, 'headers["sig"]', "bad_base64"),
        ("details", {"attempt": 3}, 'details["attempt"]', "wrong_type"),
        ("payload", "QUI", "payload", "bad_base64"),  # unpadded
        ("payload", "QUI==", "payload", "bad_base64"),
        ("details", ["a"], "details", "wrong_type"),
    ):
        obj = {**letter, name: bad}
        with pytest.raises(JsonFormError) as caught:
            from_json("ops.dead_letter", obj)
        assert (caught.value.field, caught.value.code) == (field, code)


@pytest.mark.parametrize(
    ("line", "field", "code"),
    [
        ("{not json", "", "bad_json"),
        ("[1, 2]", "", "wrong_type"),
        ('{"visit_no": "1"}', "envelope", "missing_field"),
        ('{"envelope": []}', "envelope", "wrong_type"),
        ('{"envelope": {"event_id": "x"}}', "envelope.event_type", "missing_field"),
        ('{"envelope": {"event_type": 7}}', "envelope.event_type", "wrong_type"),
        ('{"envelope": {"event_type": "no.such_event"}}', "envelope.event_type", "unknown_event_type"),
        ('{"envelope": {"event_type": "outpatient.visit"}}', "envelope.event_id", "missing_field"),
    ],
)
def test_bad_lines(line: str, field: str, code: str) -> None:
    with pytest.raises(JsonFormError) as caught:
        event_from_json_line(line)
    assert (caught.value.field, caught.value.code) == (field, code)


def test_unknown_event_type_and_non_object_event() -> None:
    with pytest.raises(JsonFormError) as caught:
        from_json("no.such_event", {})
    assert caught.value.code == "unknown_event_type"
    with pytest.raises(JsonFormError) as caught:
        from_json("outpatient.visit", [])  # type: ignore[arg-type]
    assert (caught.value.field, caught.value.code) == ("", "wrong_type")
