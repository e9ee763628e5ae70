"""Adapters on real PostgreSQL exchange databases and the real broker."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from avro_schemas.serde import EventCodec
from avro_schemas.topics import dead_letter_topic, raw_topic
from foundation.settings import Settings
from producers.adapters.runner import build_adapter
from producers.adapters.state_store import AdapterState
from producers.adapters.tables import TABLES
from tests.conftest import settings_env
from tests.exchange_fixtures import execute_in, make_exchange
from tests.pipeline_harness import read_topic

CODEC = EventCodec()


def _events(s: Settings, event_type: str, expect: int) -> list[dict]:
    return [CODEC.decode(m.value()).value for m in read_topic(s, s.topic_name(raw_topic(event_type).name), expect, 10)]


def test_every_hospital_table_maps_to_its_event(settings: Settings) -> None:
    source = make_exchange(settings.postgres_url, "hospital")
    adapter = build_adapter(settings, source, settle_seconds=0)
    summary = adapter.run_once()
    adapter.close()
    assert summary.quarantined == 2  # V2: unknown visit type; V3: a patient the database does not hold
    assert summary.published == 2 + 2 + 1 + 1 + 1 + 1 + 1 + 1 + 1  # patients, visits V1 V4, one of each other
    for spec in TABLES["hospital"]:
        assert _events(settings, spec.event_type, 1), f"{spec.name} published nothing"
    visits = {v["visit_no"]: v for v in _events(settings, "outpatient.visit", 2)}
    v1 = visits["MZ001"]
    assert v1["visit_type"] == "OUTPATIENT" and v1["temperature_c"] == 38.6 and v1["symptoms"] == ["发热", "咳嗽"]
    assert v1["diagnoses"][0]["code"] == "J06.900" and v1["envelope"]["patient"]["name"] == "张伟"
    assert v1["envelope"]["source"] == {
        "org_code": source.org_code,
        "org_name": "测试机构",
        "system": "HIS",
        "region_code": "411502",
        "level": "HOSPITAL",
        "record_key": "outpatient_visit:V1",
    }
    discharge = _events(settings, "inpatient.discharge", 1)[0]
    assert str(discharge["total_cost"]) == "12345.68" and discharge["procedures"][0]["code"] == "36.0601"
    patient = next(
        p for p in _events(settings, "patient.registered", 2) if p["envelope"]["patient"]["local_patient_id"] == "P1"
    )
    assert patient["abo_blood_type"] == "1" and patient["history"][0]["kind"] == "ALLERGY"
    death = _events(settings, "death.record", 1)[0]
    assert death["cause_chain"][0]["line"] == "Ia" and death["underlying_cause_code"] == "I21.900"


def test_every_county_table_maps_to_its_event(settings: Settings) -> None:
    source = make_exchange(settings.postgres_url, "county")
    adapter = build_adapter(settings, source, settle_seconds=0)
    summary = adapter.run_once()
    adapter.close()
    assert summary.quarantined == 0 and summary.published == 6
    followup = _events(settings, "ph.chronic_followup", 1)[0]
    assert followup["followup_class"] == "UNSATISFACTORY" and followup["systolic_bp"] == 152
    assert followup["envelope"]["source"]["level"] == "COUNTY"
    birth = _events(settings, "birth.record", 1)[0]
    assert [v["vaccine_code"] for v in birth["vaccines_at_birth"]] == ["0201", "0101"]


def test_corrections_and_cancellations_flow_through_and_quarantine_is_kept(settings: Settings) -> None:
    source = make_exchange(settings.postgres_url, "hospital")
    adapter = build_adapter(settings, source, settle_seconds=0)
    adapter.run_once()
    execute_in(
        source,
        "UPDATE outpatient_visit SET chief_complaint = '发热3天', record_version = 2, updated_at = now() "
        "WHERE visit_id = 'V1'; UPDATE death_record SET cancelled = true, updated_at = now() WHERE death_id = 'D1';"
        "UPDATE outpatient_visit SET visit_type = '1', record_version = 2, updated_at = now() WHERE visit_id = 'V2'",
    )
    second = adapter.run_once()
    assert second.published == 3 and second.quarantined == 0  # V1 v2, the cancel, V2 now mappable
    adapter.run_once()  # nothing new: the watermark holds
    adapter.close()
    visits = [v for v in _events(settings, "outpatient.visit", 4) if v["visit_no"] == "MZ001"]
    assert sorted(v["envelope"]["record_version"] for v in visits) == [1, 2]
    assert len({v["envelope"]["event_id"] for v in visits}) == 2
    deaths = _events(settings, "death.record", 2)
    assert [d["envelope"]["cancelled"] for d in deaths] == [False, True]
    assert deaths[0]["envelope"]["event_id"] != deaths[1]["envelope"]["event_id"]  # same version, distinct cancel
    quarantine = AdapterState(settings.postgres_url).quarantine(source.source_id)
    assert {(q.pk, q.reason_code, q.column_name) for q in quarantine} == {
        ("V2", "unknown_code", "visit_type"),
        ("V3", "broken_reference", "patient_id"),
    }
    letters = [
        CODEC.decode(m.value()).value
        for m in read_topic(settings, settings.topic_name(dead_letter_topic("adapter").name), 2, 10)
    ]
    assert {(d["details"]["pk"], d["error_code"]) for d in letters} == {
        ("V2", "unknown_code"),
        ("V3", "broken_reference"),
    }
    assert all("张" not in d["error_message"] and "李" not in d["error_message"] for d in letters)


def test_rows_with_equal_timestamps_are_neither_skipped_nor_repeated(settings: Settings) -> None:
    source = make_exchange(settings.postgres_url, "county")
    execute_in(
        source,
        "INSERT INTO vaccination (vaccination_id, resident_id, vaccination_no, vaccine_code, dose_number,"
        " administered_at, updated_at) SELECT 'Y' || lpad(g::text, 4, '0'), 'R1', 'N' || g, '0301', 1,"
        " now(), timestamptz '2026-11-01 08:00:00+00' FROM generate_series(1, 250) g",
    )
    adapter = build_adapter(settings, source, settle_seconds=0)
    adapter.page_size = 40  # pages end in the middle of runs of equal timestamps
    summary = adapter.run_once()
    adapter.close()
    assert summary.tables["vaccination"].published == 251
    numbers = [v["vaccination_no"] for v in _events(settings, "vaccination.record", 251)]
    assert len(numbers) == len(set(numbers)) == 251


def test_metrics_count_rows_events_and_failures_per_institution_and_table(settings: Settings) -> None:
    from prometheus_client import REGISTRY

    source = make_exchange(settings.postgres_url, "hospital")
    adapter = build_adapter(settings, source, settle_seconds=0)
    adapter.run_once()
    adapter.close()
    labels = {"org_code": source.org_code, "table": "outpatient_visit"}
    assert REGISTRY.get_sample_value("healthbus_adapter_rows_read_total", labels) == 4
    assert REGISTRY.get_sample_value("healthbus_adapter_events_published_total", labels) == 2
    assert REGISTRY.get_sample_value("healthbus_adapter_failures_total", labels | {"reason": "unknown_code"}) == 1
    assert REGISTRY.get_sample_value("healthbus_adapter_failures_total", labels | {"reason": "broken_reference"}) == 1
    assert REGISTRY.get_sample_value("healthbus_adapter_seconds_behind", labels) > 3000  # rows are an hour old


def test_a_running_adapter_publishes_new_rows_and_stops_cleanly(settings: Settings, tmp_path: Path) -> None:
    from producers.adapters.config import AdapterConfig, dump_config

    source = make_exchange(settings.postgres_url, "county")
    config = tmp_path / "adapters.yaml"
    dump_config(AdapterConfig(sources=[source]), config)
    argv = [sys.executable, "-m", "ops.cli", "adapter", "run", "--config", str(config), "--settle", "0"]
    with open(tmp_path / "adapter.log", "wb") as log:
        proc = subprocess.Popen(argv, env=settings_env(settings), stdout=log, stderr=subprocess.STDOUT)
    try:
        assert len(_events(settings, "ph.chronic_followup", 1)) == 1
        execute_in(
            source,
            "INSERT INTO chronic_followup (followup_id, resident_id, followup_no, disease_code,"
            " followup_at, followup_class) VALUES ('F2', 'R1', 'SF002', 'E11', now(), '1')",
        )
        assert len(_events(settings, "ph.chronic_followup", 2)) == 2  # picked up while running
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_a_re_sent_row_is_byte_identical_and_carries_its_upload_time(settings: Settings) -> None:
    from producers.adapters.state_store import BEGINNING

    source = make_exchange(settings.postgres_url, "county")
    adapter = build_adapter(settings, source, settle_seconds=0)
    adapter.run_once()
    adapter.state.advance(source.source_id, "chronic_followup", *BEGINNING, [])  # as if the watermark were lost
    adapter.run_once()
    adapter.close()
    sent = read_topic(settings, settings.topic_name(raw_topic("ph.chronic_followup").name), 2, 10)
    assert len(sent) == 2 and sent[0].value() == sent[1].value()
    with psycopg.connect(source.dsn) as conn:
        updated = conn.execute(f"SELECT updated_at FROM {source.schema_name}.chronic_followup").fetchone()[0]
    millis = updated.replace(microsecond=updated.microsecond // 1000 * 1000)  # timestamp-millis
    assert CODEC.decode(sent[0].value()).value["envelope"]["emitted_at"] == millis
