"""Issue #8 §4: ClickHouse, the analytic PostgreSQL tables and the alert payloads hold no names, ID numbers,
phones or addresses; a person is a keyed pseudonym there.

One small demo run (the real pipeline), then a scan for every raw identifier of the synthetic exchange databases:
- every ClickHouse table and view of the analytics database;
- the PostgreSQL routing.*, surveillance.* and public.* tables, except the stores that keep the records by design:
  event_store (the record of record), quality_issues (the hospital's work list of failing records, documented
  "含个人信息, 仅在此库"; its report masks the examples), adapter_quarantine (unmappable source rows, verbatim);
  empi.* holds identifiers legitimately and serves as the scan's positive control;
- alerts.clinical as the routing stage published it during the demo (rebuilt from its reminders with the stage's
  own reminder_value: the demo deletes its topics), collab.* and record.* (the routing outbox routing.changes),
  and alerts.quality / alerts.surveillance from the monitors run afterwards on the demo's state.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import psycopg
from psycopg import sql

from avro_schemas.topics import CLINICAL_ALERTS, QUALITY_ALERTS, SURVEILLANCE_ALERTS
from foundation.settings import Settings
from streams.privacy import pseudonym
from streams.routing.clinical_reminders import reminder_value
from streams.routing.order_history import _REMINDER_COLUMNS, _reminder
from tests.conftest import healthbus, settings_env

EXEMPT_PG = {("public", "event_store"), ("public", "quality_issues"), ("public", "adapter_quarantine")}
PERSON_COLUMNS = {
    "patient": ("name", "id_number", "phone", "address"),
    "resident": ("name", "id_number", "phone", "address"),
    "birth_record": ("mother_name", "mother_id_number"),
}


def _identifiers(exchange_dsn: str) -> dict[str, set[str]]:
    """kind → every raw value the synthetic exchange databases hold for this run."""
    found: dict[str, set[str]] = defaultdict(set)
    with psycopg.connect(exchange_dsn) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema ~ '^[hc]_' AND table_name = ANY(%s)",
            (list(PERSON_COLUMNS),),
        ).fetchall()
        for schema, table in tables:
            columns = PERSON_COLUMNS[table]
            query = sql.SQL("SELECT {} FROM {}.{}").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(schema), sql.Identifier(table)
            )
            for row in conn.execute(query):
                for column, value in zip(columns, row):
                    value = (value or "").strip()
                    if column.endswith("name") and len(value) >= 2:
                        found["name"].add(value)
                    elif column.endswith("id_number") and len(value) >= 15:
                        found["id_number"].add(value)
                        if len(value) == 18:
                            found["id_number"].add(value[:17])  # without the check character
                    elif column == "phone" and len(value) >= 7:
                        found["phone"].add(value)
                    elif column == "address" and value:
                        found["address"].add(value)
    return found


def _leaks(text: str, identifiers: dict[str, set[str]]) -> dict[str, list[str]]:
    return {
        kind: sorted(v for v in values if v in text)[:5]
        for kind, values in identifiers.items()
        if any(v in text for v in values)
    }


def _read_topics(settings: Settings, topics: list[str]) -> dict[str, list[dict[str, Any]]]:
    """topic → every decoded record of the test's own ``topics``, read to the end."""
    from confluent_kafka import Consumer, TopicPartition

    from avro_schemas.serde import codec_for

    codec = codec_for(settings.schema_registry_config())
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    consumer = Consumer(
        {
            **settings.confluent_config(),
            "group.id": f"{settings.group_prefix}.privacy-scan",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    try:
        for topic in topics:
            name = settings.topic_name(topic)
            for partition in consumer.list_topics(name, timeout=10).topics[name].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=10)
                if high <= low:
                    continue
                consumer.assign([TopicPartition(name, partition, low)])
                seen = low
                while seen < high:
                    for m in consumer.consume(500, timeout=1):
                        assert m.error() is None, m.error()
                        out[topic].append(codec.decode(m.value()).value)
                        seen = m.offset() + 1
    finally:
        consumer.close()
    return out


def test_no_raw_identifiers_in_clickhouse_analytic_tables_or_alerts(settings: Settings) -> None:
    from foundation.clickhouse import open_clickhouse
    from synthetic.exchange_data import exchange_dsn

    # 1. the demo (its topics are gone afterwards; its state stays in ClickHouse and PostgreSQL)
    result = healthbus(
        "demo",
        "--hospitals",
        "1",
        "--counties",
        "1",
        "--days",
        "1",
        "--seed",
        "5",
        "--json",
        env=settings_env(settings),
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])

    identifiers = _identifiers(exchange_dsn(settings.postgres_url))
    assert all(len(identifiers[k]) > 50 for k in ("name", "id_number", "phone", "address")), {
        k: len(v) for k, v in identifiers.items()
    }

    # 2. the monitors' alerts on the demo's state (published to the test's own alerts.* topics)
    for args in (("quality", "monitor"), ("surveillance", "monitor")):
        run = healthbus(*args, "--at", "2026-11-02T10:30+08:00", env=settings_env(settings))
        assert run.returncode == 0, run.stdout + run.stderr
    published = _read_topics(settings, [QUALITY_ALERTS, SURVEILLANCE_ALERTS])

    # 3. the demo's alerts.clinical exactly as the routing stage published them (stage.py: reminder_value of
    # each reminder; the rows are its state) and its collab.* / record.* messages (routing.changes, the outbox)
    with psycopg.connect(settings.postgres_url) as conn:
        rows = conn.execute(f"SELECT {', '.join(_REMINDER_COLUMNS)} FROM routing.clinical_reminders").fetchall()
        published[CLINICAL_ALERTS] = [reminder_value(_reminder(row)) for row in rows]
        for topic, value in conn.execute("SELECT topic, value FROM routing.changes"):
            published[topic].append(value)
    assert len(published[CLINICAL_ALERTS]) >= figures["clinical_reminders"] > 0
    assert figures["items_resident_update"] > 0 and published["collab.resident_update"]

    leaks: dict[str, Any] = {}
    for topic, values in published.items():
        found = _leaks("\n".join(json.dumps(v, ensure_ascii=False, default=str) for v in values), identifiers)
        if found:
            leaks[f"topic {topic}"] = found

    # 4. every ClickHouse table and view
    client = open_clickhouse(settings.clickhouse_url, settings.resolved_chdb_path, settings.clickhouse_database)
    try:
        tables = [
            t
            for (t,) in client.query(
                "SELECT name FROM system.tables WHERE database = {db:String}",
                parameters={"db": settings.clickhouse_database},
            ).result_rows
        ]
        assert {"event_log", "quality_results", "outpatient_visits", "surveillance_cases", "notifiable_reports"} <= set(
            tables
        ), tables
        for table in tables:
            text = client.raw_query(f"SELECT * FROM {settings.clickhouse_database}.{table} FORMAT TSV").decode()
            found = _leaks(text, identifiers)
            if found:
                leaks[f"clickhouse {table}"] = found
        pseudonyms = dict(
            client.query(
                f"SELECT toString(event_id), person_pseudonym FROM {settings.clickhouse_database}.event_log FINAL"
            ).result_rows
        )
    finally:
        client.close()

    # 5. the analytic PostgreSQL tables (not the EMPI, not the record stores)
    with psycopg.connect(settings.postgres_url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE "
            "table_schema IN ('public', 'routing', 'surveillance', 'empi') "
            "AND table_type = 'BASE TABLE'"
        ).fetchall()
        scanned = 0
        for schema, table in tables:
            text = "\n".join(
                r
                for (r,) in conn.execute(
                    sql.SQL("SELECT t::text FROM {}.{} t").format(sql.Identifier(schema), sql.Identifier(table))
                )
            )
            found = _leaks(text, identifiers)
            if schema == "empi" and table == "records":
                assert {"name", "id_number", "phone", "address"} <= found.keys()  # the scan sees what is there
            elif schema != "empi" and (schema, table) not in EXEMPT_PG:
                scanned += 1
                if found:
                    leaks[f"postgresql {schema}.{table}"] = found
        assert scanned >= 10
        persons = dict(
            conn.execute(
                "SELECT event_id::text, payload->'envelope'->>'person_id' FROM event_store "
                "WHERE event_id::text = ANY(%s)",
                (list(pseudonyms),),
            ).fetchall()
        )

    assert not leaks, leaks

    # 6. the pseudonym is keyed: the settings' key gives ClickHouse's, another key another one
    key = settings.pseudonym_key.get_secret_value().encode()
    assert len(persons) == len(pseudonyms) > 500
    for event_id, person in persons.items():
        assert pseudonyms[event_id] == pseudonym(key, "person", person)
        assert pseudonym(b"rotated-" + key, "person", person) != pseudonyms[event_id]
    assert not set(pseudonyms.values()) & set(persons.values())
