"""The surveillance stage's batch function on real PostgreSQL: cases published without personal data, daily
counts per syndrome × county × group that corrections move, cancellations remove and replays leave alone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from avro_schemas.serde import EventCodec
from avro_schemas.topics import source_patient_key, validated_topic
from streams.surveillance.stage import SurveillanceStage, SurveillanceState
from tests.pipeline_harness import RawMessage
from tests.routing_events import AT, Patient, cancelled, corrected

CODEC = EventCodec()
PREFIX = "sv-"
KEY = b"test-pseudonym-key"


@pytest.fixture
def stage(own_db_settings: Any) -> Iterator[SurveillanceStage]:
    state = SurveillanceState(own_db_settings.postgres_url)
    try:
        yield SurveillanceStage(CODEC, PREFIX, state, KEY)
    finally:
        state.close()


def visit(
    p: Patient, complaint: str, temperature: float | None = None, *codes: str, birth: dt.date = dt.date(1990, 5, 1)
) -> dict[str, Any]:
    v = p.visit(*codes)
    v.update(chief_complaint=complaint, symptoms=[], temperature_c=temperature)
    v["envelope"]["patient"]["birth_date"] = birth
    return v


def messages(events: list[dict[str, Any]]) -> list[RawMessage]:
    return [
        RawMessage(
            PREFIX + validated_topic("outpatient.visit").name,
            0,
            n,
            source_patient_key(e["envelope"]["source"]["org_code"], e["envelope"]["patient"]["local_patient_id"]),
            CODEC.encode("outpatient.visit", e),
        )
        for n, e in enumerate(events)
    ]


def cases(stage: SurveillanceStage, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [CODEC.decode(r.value).value for r in stage.handle_batch(messages(events))]


def counts(stage: SurveillanceStage, county: str) -> dict[tuple[str, str], int]:
    rows = stage.state.conn.execute(
        "SELECT syndrome, population_group, sum(cases) FROM surveillance.daily_counts "
        "WHERE county_code = %s GROUP BY 1, 2",
        (county,),
    ).fetchall()
    return {(s, g): n for s, g, n in rows if n}


def test_visits_become_cases_and_daily_counts_per_county_and_group(stage: SurveillanceStage) -> None:
    adult, child = Patient(county="411521"), Patient(county="411521")
    out = cases(
        stage,
        [
            visit(adult, "发热2天，咳嗽，咽痛", 38.6),
            visit(child, "患儿口腔疱疹，手足皮疹1天，无发热", None, birth=dt.date(2023, 1, 1)),
            visit(adult, "腹痛，无腹泻", None),
        ],
    )
    assert [(c["syndromes"], c["population_group"]) for c in out] == [
        (["FEVER_RESP", "ILI"], "adult"),
        (["HFMD"], "child"),
    ]  # the abdominal pain is no case: not published
    first = out[0]
    assert first["county_code"] == "411521" and first["day"] == AT.date() and not first["withdrawn"]
    assert {e["term"] for e in first["evidence"]} >= {"38.6", "咳嗽"}
    assert adult.person_id not in str(first) and len(first["person_pseudonym"]) == 32  # pseudonymised
    assert counts(stage, "411521") == {
        ("VISITS", "ALL"): 3,
        ("VISITS", "adult"): 2,
        ("VISITS", "child"): 1,
        ("FEVER_RESP", "ALL"): 1,
        ("FEVER_RESP", "adult"): 1,
        ("ILI", "ALL"): 1,
        ("ILI", "adult"): 1,
        ("HFMD", "ALL"): 1,
        ("HFMD", "child"): 1,
    }


def test_corrections_move_counts_cancellations_remove_them_and_replays_change_nothing(stage: SurveillanceStage) -> None:
    p = Patient(county="411522")
    flu = visit(p, "发热，咳嗽", 38.2)
    batch = messages([flu])
    first = [CODEC.decode(r.value).value for r in stage.handle_batch(batch)]
    again = [CODEC.decode(r.value).value for r in stage.handle_batch(batch)]  # a replay
    assert first == again and counts(stage, "411522")[("ILI", "ALL")] == 1
    fixed = corrected(flu, chief_complaint="咳嗽，无发热", temperature_c=36.8)  # the nurse fixed the temperature
    out = cases(stage, [fixed])
    assert [(c["syndromes"], c["withdrawn"]) for c in out] == [([], True)]
    assert ("ILI", "ALL") not in counts(stage, "411522") and counts(stage, "411522")[("VISITS", "ALL")] == 1
    assert cases(stage, [flu]) == []  # the older version arriving late changes nothing
    cancel = cancelled(fixed, 3)
    assert cases(stage, [cancel]) == []  # no longer a case: its withdrawal went out with the correction
    assert counts(stage, "411522") == {}  # the visit itself no longer counts either
    with psycopg.connect(stage.state.conn.info.dsn) as conn:
        assert conn.execute(
            "SELECT cancelled FROM surveillance.visit_cases WHERE event_id = %s", (cancel["envelope"]["event_id"],)
        ).fetchone() == (True,)
    flu2 = visit(p, "高热，咳嗽", 39.0)
    cases(stage, [flu2])
    assert [(c["syndromes"], c["withdrawn"]) for c in cases(stage, [cancelled(flu2)])] == [([], True)]
