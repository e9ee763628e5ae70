"""Gather one hospital's feedback report: figures from ClickHouse, masked examples from PostgreSQL.

`healthbus quality report` calls `gather_quality_report`, then renders it (read_side/reports/quality_feedback.py).
Examples come from ``quality_issues`` (the only place that keeps the records themselves) and are masked
here, before anything reaches the renderer: names 张*三, ID numbers 411502********1234, phones, cards.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import psycopg

from foundation.standards.china_time import CST
from foundation.standards.region_codes import region_name
from read_side.reports.quality_feedback import (
    DailyQuality,
    ExampleRecord,
    FieldFailureCount,
    QualityReport,
    RankPosition,
    RuleFailureCount,
)
from sinks.clickhouse.quality_results import (
    daily_figures,
    events_failing_by_category,
    events_failing_by_rule,
    rule_set_versions,
    worst_fields,
)
from streams.privacy import mask_address, mask_card, mask_id_number, mask_name, mask_phone
from streams.quality.ranking import rank_institutions
from streams.quality.rule_set import RuleSet

EXAMPLES = 5
_MASKERS = {
    "name": mask_name,
    "id_number": mask_id_number,
    "mother_id_number": mask_id_number,
    "mother_name": mask_name,
    "phone": mask_phone,
    "health_card": mask_card,
    "insurance_card": mask_card,
    "address": mask_address,
    "local_patient_id": mask_card,
}
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def value_at(payload: Any, path: str) -> Any:
    """The value at a violation's field path (``diagnoses[0].code``) in a JSON-form payload."""
    node = payload
    for name, index in _STEP.findall(path):
        if name:
            node = node.get(name) if isinstance(node, dict) else None
        else:
            node = node[int(index)] if isinstance(node, list) and int(index) < len(node) else None
    return node


def masked(path: str, value: Any) -> str:
    """A field's value fit for a report: personal fields masked, the rest shortened."""
    if value is None or value == "":
        return "（空）"
    leaf = _STEP.findall(path)[-1][0] if _STEP.findall(path) else path
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if leaf in _MASKERS:
        return _MASKERS[leaf](text)
    return text if len(text) <= 40 else text[:39] + "…"


def example_records(
    conn: psycopg.Connection, org_code: str, first: dt.date, last: dt.date, limit: int = EXAMPLES
) -> list[ExampleRecord]:
    rows = conn.execute(
        "SELECT event_type, event_id::text, occurred_at, violations, payload FROM quality_issues "
        "WHERE org_code = %s AND (occurred_at AT TIME ZONE 'Asia/Shanghai')::date BETWEEN %s AND %s "
        "ORDER BY passed, occurred_at DESC LIMIT %s",
        (org_code, first, last, limit),
    ).fetchall()
    out: list[ExampleRecord] = []
    for event_type, event_id, occurred_at, violations, payload in rows:
        patient = payload["envelope"]["patient"]
        fields = {
            "患者 / patient": mask_name(patient.get("name")) or "（空）",
            "证件号 / ID": mask_id_number(patient.get("id_number") or "") or "（空）",
        }
        for v in violations:
            fields.setdefault(v["field"], masked(v["field"], value_at(payload, v["field"])))
        out.append(
            ExampleRecord(
                event_type,
                event_id,
                occurred_at.astimezone(CST),
                list(dict.fromkeys(v["rule_id"] for v in violations)),
                fields,
            )
        )
    return out


def gather_quality_report(
    client: Any,
    database: str,
    conn: psycopg.Connection | None,
    rule_set: RuleSet,
    org_code: str,
    first: dt.date,
    last: dt.date,
    now: dt.datetime,
) -> QualityReport:
    everyone = daily_figures(client, database, first, last)
    mine = [f for f in everyone if f.org_code == org_code]
    if not mine:
        raise LookupError(f"no quality results for {org_code} between {first} and {last}")
    per_day: dict[dt.date, list] = {}
    for f in mine:
        per_day.setdefault(f.day, []).append(f)
    daily = []
    for day in sorted(per_day):
        rows = per_day[day]
        applied, failed = sum(r.weight_applied for r in rows), sum(r.weight_failed for r in rows)
        daily.append(
            DailyQuality(
                day,
                sum(r.received for r in rows),
                sum(r.accepted for r in rows),
                sum(r.rejected for r in rows),
                sum(r.late for r in rows),
                1.0 - failed / applied if applied else 1.0,
            )
        )
    ranking = rank_institutions(everyone)
    me = next(r for r in ranking if r.org_code == org_code)
    ranked_city = sum(1 for r in ranking if r.city_rank is not None)
    ranked_county = sum(1 for r in ranking if r.county_rank is not None and r.county_code == me.county_code)
    rules_by_id = rule_set.by_id()
    rules = []
    for rule_id, events in events_failing_by_rule(client, database, first, last, org_code):
        rule = rules_by_id.get(rule_id)
        rules.append(
            RuleFailureCount(
                rule_id,
                rule.category.value if rule else "",
                rule.severity.value if rule else "",
                rule.message_zh if rule else "",
                rule.message_en if rule else "",
                events,
            )
        )
    return QualityReport(
        org_code=org_code,
        org_name=me.org_name or org_code,
        county_code=me.county_code,
        county_name=region_name(me.county_code, last.year) or me.county_code,
        period_from=first,
        period_to=last,
        rule_set_version=", ".join(rule_set_versions(client, database, first, last, org_code)) or rule_set.version,
        score=me.score,
        received=me.received,
        accepted=me.accepted,
        rejected=me.rejected,
        late=me.late,
        daily=daily,
        failures_by_category=events_failing_by_category(client, database, first, last, org_code),
        rules=rules,
        fields=[FieldFailureCount(f, n) for f, n in worst_fields(client, database, first, last, org_code)],
        examples=example_records(conn, org_code, first, last) if conn is not None else [],
        city_rank=RankPosition(me.city_rank, ranked_city) if me.city_rank else None,
        county_rank=RankPosition(me.county_rank, ranked_county) if me.county_rank else None,
        generated_at=now.astimezone(CST),
    )
