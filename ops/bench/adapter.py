"""``healthbus bench adapter``: exchange DB → broker rows/s for one adapter process, next to publishing the
same events already built in memory (encode + sign + produce, no database), and next to producing their
pre-encoded bytes (the broker and client ceiling), all in one run on the same broker.
"""

from __future__ import annotations

import time
import uuid

import psycopg
from confluent_kafka import Producer
from psycopg import sql

from avro_schemas.serde import EventCodec
from avro_schemas.topics import raw_topic
from ops.bench_table import BenchRow
from ops.settings import Settings
from ops.topic_admin import create_topics, delete_topics, existing_topics
from producers.adapters.config import SourceConfig
from producers.adapters.runner import build_adapter
from producers.adapters.state_store import BEGINNING
from producers.exchange_db.ddl import create_exchange_schema
from producers.publisher import EventPublisher, producer_config
from streams.standards.credit_code import make_credit_code

FILL = """
INSERT INTO patient (patient_id, name, sex, birth_date, id_type, id_number, phone, residence_region_code, updated_at)
SELECT 'P' || g, '患者' || g, (1 + g %% 2)::text, date '1950-01-01' + g %% 20000, '01', NULL, NULL, '411502',
       now() - interval '2 days'
FROM generate_series(1, %(patients)s) g;
INSERT INTO outpatient_visit (visit_id, patient_id, visit_no, visit_type, visit_at, department_code, department_name,
                              chief_complaint, temperature_c, updated_at)
SELECT 'V' || g, 'P' || (1 + g %% %(patients)s), 'MZ' || g, '1', now() - interval '1 day' + g * interval '1 ms',
       '0301', '内科', '发热2天，伴咳嗽，无腹泻', 38.2, now() - interval '1 day' + g * interval '1 ms'
FROM generate_series(1, %(visits)s) g;
INSERT INTO outpatient_diagnosis (visit_id, seq, code, name, is_primary)
SELECT 'V' || g, 1, 'J06.900', '急性上呼吸道感染', true FROM generate_series(1, %(visits)s) g;
"""


def run(settings: Settings, rows: int = 50000) -> list[BenchRow]:
    run_id = uuid.uuid4().hex[:8]
    s = settings.model_copy(update={"topic_prefix": f"bench-{run_id}.", "group_prefix": f"bench-{run_id}"})
    conf = s.confluent_config()
    schema = f"bench_{run_id}"
    org = make_credit_code("12", "411502", f"MB{int(run_id, 16) % 10**6:06d}")
    source = SourceConfig(kind="hospital", org_code=org, name="基准医院", region_code="411502", dsn=s.postgres_url,
                          schema=schema)
    create_topics(conf, s.topic_prefix, specs=[raw_topic("outpatient.visit"), raw_topic("patient.registered")])
    try:
        with psycopg.connect(s.postgres_url, autocommit=True) as conn:
            create_exchange_schema(conn, "hospital", schema)
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            params = {"patients": max(1, rows // 10), "visits": rows}
            for statement in FILL.split(";"):
                if statement.strip():
                    conn.execute(statement, params)
        adapter = build_adapter(s, source, page_size=5000, settle_seconds=0)
        adapter.tables = tuple(t for t in adapter.tables if t.name == "outpatient_visit")
        start = time.perf_counter()
        summary = adapter.run_once()
        adapter_seconds = time.perf_counter() - start

        # The same events, built once more in memory, then published without the database.
        spec = adapter.tables[0]
        adapter.state.advance(source.source_id, spec.name, *BEGINNING, [])  # rewind to read the rows again
        built: list[dict] = []
        adapter.publisher = _Collector(built)
        adapter.run_once()
        adapter.close()
        codec = EventCodec()
        publisher = EventPublisher(conf, codec, s.signing_key_for, s.topic_prefix, own_org_code=org)
        start = time.perf_counter()
        for value in built:
            publisher.publish("outpatient.visit", value)
        publisher.flush()
        publish_seconds = time.perf_counter() - start

        payloads = [codec.encode("outpatient.visit", v) for v in built]
        producer = Producer(producer_config(conf))
        topic = s.topic_name(raw_topic("outpatient.visit").name)
        start = time.perf_counter()
        for p in payloads:
            while True:
                try:
                    producer.produce(topic, p, b"k")
                    break
                except BufferError:
                    producer.poll(0.01)
        producer.flush(60)
        bytes_seconds = time.perf_counter() - start
    finally:
        with psycopg.connect(s.postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            if conn.execute("SELECT to_regclass('adapter_watermark')").fetchone()[0]:
                conn.execute("DELETE FROM adapter_watermark WHERE source_id = %s", (source.source_id,))
        delete_topics(conf, list(existing_topics(conf, s.topic_prefix)))
    adapter_rate = summary.published / adapter_seconds
    publish_rate = len(built) / publish_seconds
    return [
        BenchRow("adapter rows/s", adapter_rate, "exchange DB → mapped → encoded, signed → acknowledged"),
        BenchRow("publish prebuilt events/s", publish_rate, "baseline: same events from memory (encode+sign+produce)"),
        BenchRow("produce preencoded bytes/s", len(payloads) / bytes_seconds, "ceiling: same payloads, no encoding"),
        BenchRow("adapter / publish ratio", adapter_rate / publish_rate, "target ≥ 0.5"),
        BenchRow("rows", summary.published),
    ]


class _Collector:
    """Stands in for the publisher to capture the events the adapter builds (for the baseline)."""

    def __init__(self, into: list[dict]) -> None:
        self.into = into

    def publish(self, event_type: str, value: dict) -> None:
        self.into.append(value)

    def flush(self, timeout: float = 30.0) -> None:
        pass
