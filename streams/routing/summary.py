"""What the routing stage made of a set of events: work items per route, seals, reminders (the demo's table)."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from streams.routing.work_queue import ROUTES


@dataclass
class RoutingSummary:
    items: dict[str, dict[str, int]] = field(default_factory=dict)  # route → status → items
    sealed: int = 0  # persons of these events whose health record is sealed (deceased)
    reminders: int = 0  # clinical reminders active, raised by these events
    late_reports: int = 0  # notifiable-disease reports whose upload missed the deadline
    deaths_unrouted: int = 0  # death records among these events that no death item holds (must be 0)

    def rows(self) -> list[tuple[str, int]]:
        out = []
        for route in ROUTES:
            by_status = self.items.get(route, {})
            detail = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
            out.append((f"  {route} ({detail or 'none'})", sum(by_status.values())))
        out += [
            ("  of which notifiable reports uploaded after the deadline", self.late_reports),
            ("health records sealed (deceased) among these persons", self.sealed),
            ("clinical reminders (alerts.clinical) raised", self.reminders),
            ("death records without a death registration item", self.deaths_unrouted),
        ]
        return out


def summarise(postgres_url: str, event_ids: list[str], death_event_ids: list[str]) -> RoutingSummary:
    summary = RoutingSummary()
    with psycopg.connect(postgres_url) as conn:
        for route in ROUTES:
            rows = conn.execute(
                sql.SQL(
                    "SELECT status, count(*) FROM routing.{} WHERE source_event_ids && %s "
                    "OR (status = 'withdrawn' AND payload->>'primary_event_id' = ANY(%s)) "
                    "GROUP BY status"
                ).format(sql.Identifier(route)),
                (event_ids, event_ids),
            )
            summary.items[route] = {status: n for status, n in rows}
        summary.late_reports = conn.execute(
            "SELECT count(*) FROM routing.infectious_disease WHERE source_event_ids && %s "
            "AND NOT (payload->'detail'->>'deadline_met')::boolean",
            (event_ids,),
        ).fetchone()[0]  # type: ignore[index]  # an aggregate: always one row
        summary.sealed = conn.execute(
            "SELECT count(DISTINCT d.person_id) FROM empi.deregistrations d JOIN routing.death_registration r "
            "ON r.person_id = d.person_id::text WHERE r.source_event_ids && %s",
            (event_ids,),
        ).fetchone()[0]  # type: ignore[index]
        summary.reminders = conn.execute(
            "SELECT count(*) FROM routing.clinical_reminders WHERE event_id = ANY(%s) AND status = 'ACTIVE'",
            (event_ids,),
        ).fetchone()[0]  # type: ignore[index]
        held = {
            e
            for (ids,) in conn.execute(
                "SELECT source_event_ids FROM routing.death_registration WHERE source_event_ids && %s",
                (death_event_ids,),
            )
            for e in ids
        }
        summary.deaths_unrouted = len(set(death_event_ids) - held)
    return summary
