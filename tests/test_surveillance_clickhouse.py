"""ClickHouse holds the syndrome cases and the notifiable-disease reports the stages publish, once each and
at their latest version, and the daily views analysts read count them: by syndrome × county × group, and
notifiable reports by county, disease, population group and occupation."""

from __future__ import annotations

import datetime as dt
from typing import Any

from avro_schemas.serde import EventCodec
from foundation.clickhouse import open_clickhouse
from foundation.settings import Settings
from sinks.clickhouse.event_log import ClickHouseEventLog
from sinks.event_sink import SinkRecord
from streams.routing.ledger import RoutingLedger, ensure_ledger
from streams.surveillance.stage import SurveillanceStage, SurveillanceState
from tests.routing_events import AT, Patient, cancelled
from tests.test_surveillance_stage import PREFIX, messages, visit

CODEC = EventCodec()
KEY = b"test-pseudonym-key"


def _records(values: list[tuple[str, dict[str, Any]]]) -> list[SinkRecord]:
    return [SinkRecord(t, v, "t", 0, n) for n, (t, v) in enumerate(values)]


def test_cases_and_notifiable_reports_land_once_and_the_views_count_them(own_db_settings: Settings) -> None:
    import psycopg

    s = own_db_settings
    state = SurveillanceState(s.postgres_url)
    stage = SurveillanceStage(CODEC, PREFIX, state, KEY)
    adult, child = Patient(county="411521"), Patient(county="411525")
    flu = visit(adult, "发热2天，咳嗽", 38.8, birth=dt.date(1980, 1, 1))
    hfmd = visit(child, "手足口腔疱疹", None, birth=dt.date(2022, 6, 1))
    first = [CODEC.decode(r.value).value for r in stage.handle_batch(messages([flu, hfmd]))]
    later = [CODEC.decode(r.value).value for r in stage.handle_batch(messages([cancelled(hfmd)]))]
    state.close()
    with psycopg.connect(s.postgres_url, autocommit=True) as conn:
        ensure_ledger(conn, "hbtest_ch_")
        report = Patient(county="411521")
        flu_report = report.visit("J10.100")
        flu_report["envelope"]["patient"].update(birth_date=dt.date(2015, 3, 1), occupation="学生")
        with conn.transaction():
            changes = RoutingLedger(conn, routes=("infectious_disease",)).apply_events(
                [("outpatient.visit", flu_report)]
            )
    from avro_schemas.json_form import from_json

    reports = [from_json(c.event_type, c.value) for c in changes]
    sink = ClickHouseEventLog(open_clickhouse(None, s.resolved_chdb_path, "healthbus"), "healthbus", KEY)
    records = _records(
        [("surveillance.case", v) for v in first + later] + [("collab.work_item_change", v) for v in reports]
    )
    sink.write(records)
    sink.write(records)  # a replay: nothing twice
    q = sink._client.query
    daily = q(
        "SELECT syndrome, county_code, population_group, day, cases FROM healthbus.surveillance_daily ORDER BY syndrome"
    ).result_rows
    assert daily == [("FEVER_RESP", "411521", "adult", AT.date(), 1), ("ILI", "411521", "adult", AT.date(), 1)]
    assert q("SELECT count() FROM healthbus.surveillance_cases FINAL").result_rows[0][0] == 2  # the HFMD withdrawn
    trends = q(
        "SELECT county_code, disease, disease_class, population_group, occupation, reports, late_reports "
        "FROM healthbus.notifiable_trends"
    ).result_rows
    assert trends == [("411521", "INFLUENZA", "C", "student", "学生", 1, 0)]
    text = str(q("SELECT * FROM healthbus.surveillance_cases").result_rows) + str(
        q("SELECT * FROM healthbus.notifiable_reports").result_rows
    )
    for p in (adult, child, report):
        assert p.person_id not in text, (p.person_id, text[text.find(p.person_id) - 300 : text.find(p.person_id) + 50])
        assert p.local_id not in text
    sink.close()
