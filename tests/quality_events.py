"""Identified events for the quality tests: synthetic visits with a person id, and death records."""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from typing import Any

from avro_schemas.envelope import make_event_id
from avro_schemas.serde import EventCodec
from avro_schemas.topics import identified_topic, source_patient_key
from synthetic.outpatient_visits import outpatient_visits
from tests.pipeline_harness import RawMessage

CODEC = EventCodec()
PERSON_NAMESPACE = uuid.UUID("5d7d3c38-3f0a-4f67-9d7e-0c3c8d8f1a11")


def person_of(visit: dict[str, Any]) -> str:
    patient = visit["envelope"]["patient"]
    return str(uuid.uuid5(PERSON_NAMESPACE, patient["id_number"] or patient["local_patient_id"]))


def identified_visits(count: int, seed: int) -> list[dict[str, Any]]:
    """Clean visits (no rule fails on them) as the identify stage leaves them: each with its person id."""
    visits = list(outpatient_visits(count, seed=seed))
    for v in visits:
        v["envelope"]["person_id"] = person_of(v)
    return visits


def revised(event: dict[str, Any], version: int, cancelled: bool = False) -> dict[str, Any]:
    """The same source record re-sent as ``version`` (a correction, or a cancellation)."""
    out = copy.deepcopy(event)
    env = out["envelope"]
    env["record_version"], env["cancelled"] = version, cancelled
    env["event_id"] = make_event_id(env["source"]["org_code"], env["source"]["record_key"], version, cancelled)
    return out


def death_record(of: dict[str, Any], died_at: dt.datetime, certificate: str = "411502202611000001") -> dict[str, Any]:
    """A death certificate for the patient of visit ``of``, from the same institution."""
    env = copy.deepcopy(of["envelope"])
    record_key = f"death_record:{certificate}"
    env.update(
        event_type="death.record",
        occurred_at=died_at,
        emitted_at=died_at + dt.timedelta(hours=5),
        record_version=1,
        cancelled=False,
        event_id=make_event_id(env["source"]["org_code"], record_key, 1),
    )
    env["source"]["record_key"] = record_key
    return {
        "envelope": env,
        "certificate_no": certificate,
        "died_at": died_at,
        "death_place": "1",
        "cause_chain": [{"line": "a", "code": "I21.900", "description": "急性心肌梗死", "interval": "2小时"}],
        "underlying_cause_code": "I21.900",
        "underlying_cause_name": "急性心肌梗死",
    }


def as_messages(prefix: str, events: list[dict[str, Any]], first_offset: int = 0) -> list[RawMessage]:
    out = []
    for n, event in enumerate(events):
        env = event["envelope"]
        topic = prefix + identified_topic(env["event_type"]).name
        key = source_patient_key(env["source"]["org_code"], env["patient"]["local_patient_id"])
        out.append(RawMessage(topic, 0, first_offset + n, key, CODEC.encode(env["event_type"], event)))
    return out
