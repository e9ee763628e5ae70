"""Early-warning alerts from the daily counts (issue #7, docs/domain.md §6): the detection plan, the pure alert
decisions (streams/surveillance/alerting.py), and `healthbus surveillance monitor` end to end over PostgreSQL
and the broker (streams/surveillance/monitor.py)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import psycopg
import pytest
from prometheus_client import REGISTRY

import streams.surveillance.monitor as monitor_module
from avro_schemas.serde import EventCodec
from avro_schemas.topics import SURVEILLANCE_ALERTS, SURVEILLANCE_CASES
from foundation.settings import Settings
from streams.surveillance.alert_store import StoredAlert
from streams.surveillance.alerting import (
    CLOSED,
    OPEN,
    UPDATED,
    alert_id,
    alert_value,
    case_filter,
    decide,
    judge_day,
    series_id,
    series_key,
)
from streams.surveillance.case_store import ensure_case_store
from streams.surveillance.detection import DetectionParams, Judgement, Method, detect
from streams.surveillance.detection_plan import PlanError, load_plan, parse_plan
from streams.surveillance.monitor import days_to_judge, ensure_monitor_tables, run_once
from tests.conftest import healthbus, settings_env
from tests.pipeline_harness import read_topic

CST = dt.timezone(dt.timedelta(hours=8))
S = dt.date(2026, 11, 20)  # the surge day
START = S - dt.timedelta(days=50)
SHIHE, PINGQIAO = "411502", "411503"
CODEC = EventCodec()
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "avro_schemas/alerts/surveillance_alert.avsc"
SCHEMA_FIELDS = {f["name"] for f in json.loads(SCHEMA_PATH.read_text("utf-8"))["fields"]}


def day(offset: int) -> dt.date:
    return S + dt.timedelta(days=offset)


def at(d: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    """A moment on an Asia/Shanghai day."""
    return dt.datetime(d.year, d.month, d.day, hour, minute, tzinfo=CST)


def flat(
    first: dt.date = START, last: dt.date = day(10), cycle: tuple[int, ...] = (8, 10, 12), **overrides: int
) -> dict[dt.date, int]:
    """A baseline repeating ``cycle`` every day from first to last; ``d<offset>=n`` overrides day(offset)."""
    counts = {first + dt.timedelta(days=k): cycle[k % len(cycle)] for k in range((last - first).days + 1)}
    for name, n in overrides.items():
        counts[day(int(name[1:].replace("m", "-")))] = n
    return counts


def put(
    s: Settings,
    series: dict[tuple[str, str, str], dict[dt.date, int]],
    visits: tuple[str, ...] = (SHIHE,),
    visits_from: dt.date = START,
) -> None:
    """Write daily_counts rows directly (what the surveillance stage maintains), with the VISITS denominator of
    each county from ``visits_from``."""
    values = [(k[0], k[1], k[2], d, n) for k, days in series.items() for d, n in days.items()]
    values += [
        ("VISITS", c, "ALL", d, 100)
        for c in visits
        for d in (visits_from + dt.timedelta(days=k) for k in range((day(10) - visits_from).days + 1))
    ]
    with psycopg.connect(s.postgres_url, autocommit=True) as conn:
        ensure_case_store(conn)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO surveillance.daily_counts (syndrome, county_code, population_group, day, "
                "cases) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (syndrome, county_code, population_group, day) "
                "DO UPDATE SET cases = EXCLUDED.cases",
                values,
            )


def alerts(s: Settings, expect: int | None = None) -> list[dict]:
    out = []
    for m in read_topic(s, s.topic_name(SURVEILLANCE_ALERTS), expect=expect, timeout=20):
        event = CODEC.decode(m.value())
        assert event.event_type == "alerts.surveillance_alert"
        out.append({**event.value, "_key": m.key().decode()})
    return out


def rows(s: Settings) -> list[tuple]:
    with psycopg.connect(s.postgres_url) as conn:
        return conn.execute("SELECT * FROM surveillance.alerts ORDER BY alert_id").fetchall()


def judged_days(s: Settings) -> list[tuple[dt.date, bool]]:
    with psycopg.connect(s.postgres_url) as conn:
        return conn.execute("SELECT day, partial FROM surveillance.judged_days ORDER BY day").fetchall()


def expected_judgement(counts: dict[dt.date, int], d: dt.date, method: str, params: DetectionParams) -> Judgement:
    """The judgement of ``d`` computed independently: detect() over the series up to that day."""
    series = [counts.get(START + dt.timedelta(days=k), 0) for k in range((d - START).days + 1)]
    return detect(series, method, params)[-1]


# --- the detection plan ----------------------------------------------------------------------------------


def test_shipped_plan_and_rule_precedence() -> None:
    plan = load_plan()
    assert plan.groups == ("child", "student", "adult", "elderly")
    assert [m.method for m in plan.methods_for("ILI", SHIHE, "ALL")] == [Method.EWMA, Method.EARS_C2]
    assert [m.method for m in plan.methods_for("FEVER_RESP", SHIHE, "child")] == [Method.EWMA, Method.EARS_C2]
    for rare in ("FEVER_HEMORRHAGE", "ENCEPHALITIS", "JAUNDICE"):
        (only,) = plan.methods_for(rare, SHIHE, "ALL")
        assert only.method is Method.EARS_C1 and only.params.min_sigma == 0.5
    (default,) = plan.methods_for("HFMD", PINGQIAO, "adult")
    assert default.method is Method.EARS_C2 and default.params.min_sigma == 0.5
    assert plan.methods_for("VISITS", SHIHE, "ALL") == ()  # the denominator is never judged
    assert plan.methods_for("HFMD", SHIHE, "UNKNOWN") == ()  # a group the plan leaves out
    assert plan.history_days == 30  # EWMA: 28-day baseline + 2-day guard band

    # the last matching rule wins: a county override after a syndrome rule
    plan = parse_plan(
        {
            "groups": ["child"],
            "defaults": [{"method": "ears-c2"}],
            "rules": [
                {"syndromes": ["HFMD"], "methods": [{"method": "ears-c1", "min_sigma": 1}]},
                {"syndromes": ["HFMD"], "counties": ["411502"], "methods": [{"method": "ears-c3", "baseline": 14}]},
                {"groups": ["child"], "syndromes": ["DIARRHEA"], "methods": []},
            ],
        }
    )
    assert [m.method for m in plan.methods_for("HFMD", PINGQIAO, "ALL")] == [Method.EARS_C1]
    (c3,) = plan.methods_for("HFMD", SHIHE, "child")
    assert c3.method is Method.EARS_C3 and c3.params.baseline == 14 and c3.history_days == 18
    assert plan.methods_for("DIARRHEA", SHIHE, "child") == () and plan.methods_for("DIARRHEA", SHIHE, "ALL")
    assert plan.methods_for("HFMD", SHIHE, "adult") == ()


@pytest.mark.parametrize(
    "plan, message",
    [
        (
            {"defaults": [{"method": "ears-c2"}], "rules": [{"syndromes": ["FLU"], "methods": []}]},
            "unknown syndrome 'FLU'",
        ),
        ({"defaults": [{"method": "ears-c4"}]}, "unknown method 'ears-c4'"),
        ({"defaults": [{"method": "ears-c1", "lambda": 0.3}]}, "ears-c1 has no parameter 'lambda'"),
        ({"defaults": [{"method": "ears-c2", "ewma_baseline": 20}]}, "ears-c2 has no parameter 'ewma_baseline'"),
        ({"defaults": [{"method": "ewma", "baseline": 20}]}, "ewma has no parameter 'baseline'"),
        ({"defaults": [{"method": "ears-c1", "min_sigma": -1}]}, "min_sigma must be >= 0"),
        ({"defaults": [{"method": "ears-c1", "alpha": "low"}]}, "alpha: a number"),
        ({"defaults": [{"method": "ewma", "guard": 1.5}]}, "guard: a whole number"),
        ({"defaults": [{"method": "ears-c2", "guard": 0}]}, "ears-c2 has no parameter 'guard'"),
        ({"defaults": [{"method": "ewma", "alpha": 0.005}]}, "must be below the yellow alpha"),
        ({"defaults": [{"method": "ears-c2"}, {"method": "ears-c2", "min_sigma": 1}]}, "ears-c2 listed twice"),
        ({"defaults": [], "rules": [{"syndromes": ["VISITS"], "methods": []}]}, "VISITS is the denominator"),
        ({"defaults": [], "rules": [{"counties": ["4115"], "methods": []}]}, "county '4115' is not a six-digit"),
        ({"defaults": [], "groups": ["toddler"]}, "unknown group 'toddler'"),
        ({"defaults": [], "rules": [{"syndrome": ["ILI"], "methods": []}]}, "unknown key(s) syndrome"),
        ({"groups": ["child"]}, "'defaults' is missing"),
    ],
)
def test_plan_validation_names_the_problem(plan: dict, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(plan, "plan.yaml")
    assert message in str(caught.value) and str(caught.value).startswith("plan.yaml")


def test_plan_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("defaults: [{method: ewma, ewma_lambdas: [0.4, 1.5]}]\n", "utf-8")
    with pytest.raises(PlanError, match=r"plan.yaml: defaults\[0\]: ewma_lambdas"):
        load_plan(path)
    path.write_text("defaults: [\n", "utf-8")
    with pytest.raises(PlanError, match="not valid YAML"):
        load_plan(path)


# --- pure: the decisions ---------------------------------------------------------------------------------

KEY = ("HFMD", SHIHE, "ALL")


def judgement(d: dt.date, count: float, alarm: bool, level: str | None = "alarm") -> Judgement:
    return Judgement(d, count, 10.0, 1.0, count - 10.0, 13.1, alarm, level if alarm else None)


def stored(
    opened: dt.date, last: dt.date, level: str = "alarm", partial: bool = False, method: str = "ears-c2"
) -> StoredAlert:
    return StoredAlert(
        alert_id("HFMD:411502", method, opened),
        "HFMD:411502",
        "HFMD",
        SHIHE,
        None,
        method,
        level,
        OPEN,
        opened,
        last,
        None,
        30,
        10.0,
        13.1,
        20.0,
        None,
        partial,
    )


def test_decide_open_update_close_and_the_partial_day() -> None:
    c2 = Method.EARS_C2
    opened = decide(KEY, c2, judgement(S, 30, True), S, False, None)
    assert opened.state == OPEN and opened.alert.alert_id == alert_id("HFMD:411502", c2, S)
    assert (opened.alert.opened_day, opened.alert.last_day, opened.alert.state) == (S, S, OPEN)
    assert opened.alert.observed == 30
    # the same judgement again: nothing; the next day still above: UPDATED under the same id
    assert decide(KEY, c2, judgement(S, 30, True), S, False, opened.alert) is None
    update = decide(KEY, c2, judgement(day(1), 25, True), day(1), False, opened.alert)
    assert update.state == UPDATED and update.alert.alert_id == opened.alert.alert_id
    assert (update.alert.opened_day, update.alert.last_day, update.alert.observed) == (S, day(1), 25)
    # back under the threshold on a closed day: CLOSED; the case list covers the days above
    closed = decide(KEY, c2, judgement(day(2), 9, False), day(2), False, update.alert)
    assert closed.state == CLOSED and closed.alert.state == CLOSED and closed.alert.closed_day == day(2)
    assert (closed.cases_from, closed.cases_to, closed.alert.level) == (S, day(1), "alarm")
    # a partial day under the threshold never closes
    assert decide(KEY, c2, judgement(day(2), 2, False), day(2), True, update.alert) is None
    # a partial day above opens, and its closed-day judgement updates it (partial → closed), or closes it
    partial = decide(KEY, c2, judgement(day(3), 20, True), day(3), True, None)
    assert partial.state == OPEN and partial.alert.partial_day and partial.partial_day
    assert decide(KEY, c2, judgement(day(3), 24, True), day(3), True, partial.alert) is None  # re-run intra-day
    final = decide(KEY, c2, judgement(day(3), 31, True), day(3), False, partial.alert)
    assert final.state == UPDATED and not final.alert.partial_day and final.alert.observed == 31
    cleared = decide(KEY, c2, judgement(day(3), 12, False), day(3), False, partial.alert)
    assert cleared.state == CLOSED and (cleared.cases_from, cleared.cases_to) == (day(3), day(3))
    # a partial judgement of a day already judged closed changes nothing
    assert decide(KEY, c2, judgement(day(3), 40, True), day(3), True, final.alert) is None


def test_decide_level_changes_update() -> None:
    ewma = Method.EWMA
    yellow = decide(KEY, ewma, judgement(S, 20, True, "yellow"), S, False, None).alert
    red = decide(KEY, ewma, judgement(S, 20, True, "red"), S, False, yellow)  # same day, a re-judgement
    assert red.state == UPDATED and red.alert.level == "red"
    assert decide(KEY, ewma, judgement(day(1), 14, True, "yellow"), day(1), True, red.alert).alert.level == "yellow"


def test_ids_series_and_case_filter() -> None:
    assert alert_id("ILI:411502", "ewma", S) == alert_id("ILI:411502", Method.EWMA, S)
    assert (
        len(
            {
                alert_id("ILI:411502", "ewma", S),
                alert_id("ILI:411502", "ears-c2", S),
                alert_id("ILI:411502:child", "ewma", S),
                alert_id("ILI:411502", "ewma", day(1)),
            }
        )
        == 4
    )
    assert series_id("ILI", SHIHE, "ALL") == "ILI:411502" and series_id("ILI", SHIHE, "child") == "ILI:411502:child"
    assert series_key("ILI:411502") == ("ILI", SHIHE, "ALL") and series_key("ILI:411502:child")[2] == "child"
    assert (
        case_filter("ILI", SHIHE, "child", S, S)
        == "syndrome=ILI AND county_code=411502 AND population_group=child AND day=2026-11-20"
    )
    assert (
        case_filter("ILI", SHIHE, None, S, day(2))
        == "syndrome=ILI AND county_code=411502 AND day>=2026-11-20 AND day<=2026-11-22"
    )


def test_judge_day_reads_a_fixed_window_and_waits_for_a_baseline() -> None:
    plan = load_plan()
    long = {("ILI", SHIHE, "ALL"): flat(cycle=(20, 31, 25, 18), d0=70)}
    # only the 30 days the EWMA needs before the day: the same judgement as with 50 days of history
    short = {k: {d: n for d, n in v.items() if d >= S - dt.timedelta(days=30)} for k, v in long.items()}
    a, b = judge_day(long, S, plan, []), judge_day(short, S, plan, [])
    assert [c.alert for c in a.changes] == [c.alert for c in b.changes] and len(a.changes) == 2
    assert {c.alert.method for c in a.changes} == {"ewma", "ears-c2"}
    assert a.judged == 2
    # a county whose visits began 20 days ago: EARS C2 (9 days of history) judges, the EWMA (30) waits
    since = {SHIHE: S - dt.timedelta(days=20)}
    waited = judge_day(long, S, plan, [], data_since=since)
    assert waited.judged == 1 and [c.alert.method for c in waited.changes] == ["ears-c2"]
    assert judge_day(long, S, plan, [], data_since={}).judged == 0  # no visits recorded at all
    # VISITS is never judged, whatever it does
    assert judge_day({("VISITS", SHIHE, "ALL"): flat(d0=900)}, S, plan, []).judged == 0


def test_an_alert_of_a_method_the_plan_dropped_is_still_judged_and_closes() -> None:
    plan = load_plan()  # HFMD: EARS C2 only
    left_open = stored(day(-3), day(-1), level="yellow", method="ewma")
    quiet = judge_day({KEY: flat()}, S, plan, [left_open])
    assert [(c.alert.method, c.state) for c in quiet.changes] == [("ewma", CLOSED)]
    assert quiet.judged == 2  # EARS C2 as planned, and the EWMA for its open alert


def test_every_series_of_a_city_in_well_under_a_second() -> None:
    import time

    from streams.surveillance.syndromes import Syndrome

    counties = [f"4115{k:02d}" for k in range(2, 12)]
    groups = ("ALL", "child", "student", "adult", "elderly")
    counts = {
        (syn.value, c, g): flat(cycle=(3 + k % 5, 5, 8 - k % 3), d0=9 + k % 20)
        for k, (syn, c, g) in enumerate((syn, c, g) for syn in Syndrome for c in counties for g in groups)
    }
    started = time.perf_counter()
    result = judge_day(counts, S, load_plan(), [], data_since={c: START for c in counties})
    assert time.perf_counter() - started < 1.0
    assert len(counts) == 450 and result.judged == 450 + 2 * 10 * 5  # ILI and FEVER_RESP: EWMA as well
    assert result.changes and all(c.state == OPEN for c in result.changes)


def test_message_without_personal_data() -> None:
    change = decide(
        ("ILI", SHIHE, "child"), Method.EARS_C2, Judgement(S, 23, 5.0, 2.0, 9.0, 11.43, True, "alarm"), S, False, None
    )
    value = alert_value(change, at(day(1), 9), "t-surveillance.cases")
    assert set(value) == SCHEMA_FIELDS
    assert value["message_zh"] == "411502 浉河区 流感样病例 儿童(0-6岁) 2026-11-20 观察 23 例, 超过阈值 11.4 (EARS C2)"
    assert value["message_en"] == "411502 ILI (children 0-6) 2026-11-20: 23 cases, above the threshold 11.4 (EARS C2)"
    assert value["case_list"] == {
        "topic": "t-surveillance.cases",
        "table": "surveillance.visit_cases",
        "filter": "syndrome=ILI AND county_code=411502 AND population_group=child AND day=2026-11-20",
    }
    partial = decide(
        ("ILI", SHIHE, "ALL"),
        Method.EARS_C2,
        Judgement(day(1), 30, 5.0, 2.0, 9.0, 11.43, True, "alarm"),
        day(1),
        True,
        None,
    )
    text = alert_value(partial, dt.datetime(2026, 11, 21, 5, 30, tzinfo=dt.UTC))
    assert "截至 13:30" in text["message_zh"] and "partial day, counted until 13:30" in text["message_en"]


# --- end to end: daily_counts → `healthbus surveillance monitor` → alerts.surveillance + PostgreSQL --------


def test_one_alert_opens_updates_while_above_and_closes(own_db_settings: Settings) -> None:
    s = own_db_settings.model_copy(update={"surveillance_close_day_hours": 0})  # days close at midnight here
    hfmd = flat(d0=40, d1=38, d2=9)
    put(s, {("HFMD", SHIHE, "ALL"): hfmd})
    the_id = alert_id("HFMD:411502", "ears-c2", S)
    params = DetectionParams(min_sigma=0.5)  # the shipped plan's default for HFMD

    run = run_once(s, at(day(1), 10))  # a first run judges yesterday only; 10:00 is before the partial-day hours
    assert [(d.day, d.partial_day) for d in run.days] == [(S, False)]
    assert [c.state for c in run.changes()] == [OPEN] and run.open_now == 1
    assert REGISTRY.get_sample_value("healthbus_surveillance_alerts_open", {"syndrome": "HFMD"}) == 1
    assert REGISTRY.get_sample_value("healthbus_surveillance_alerts_open", {"syndrome": "ILI"}) == 0
    (opened,) = alerts(s, expect=1)
    want = expected_judgement(hfmd, S, "ears-c2", params)
    assert opened["_key"] == "HFMD:411502" and opened["alert_id"] == the_id
    assert (
        opened["state"],
        opened["level"],
        opened["method"],
        opened["series_id"],
        opened["syndrome"],
        opened["county_code"],
        opened["population_group"],
    ) == ("OPEN", "alarm", "ears-c2", "HFMD:411502", "HFMD", SHIHE, None)
    assert (opened["day"], opened["opened_day"], opened["partial_day"], opened["observed"]) == (S, S, False, 40)
    assert opened["threshold"] == pytest.approx(want.threshold) and opened["expected"] == pytest.approx(want.expected)
    assert opened["statistic"] == pytest.approx(want.statistic) and opened["p_value"] is None
    assert want.threshold < 40 and expected_judgement(hfmd, S, "ears-c2", params).alarm
    assert opened["case_list"] == {
        "topic": s.topic_name(SURVEILLANCE_CASES),
        "table": "surveillance.visit_cases",
        "filter": "syndrome=HFMD AND county_code=411502 AND day=2026-11-20",
    }
    assert opened["changed_at"] == at(day(1), 10)
    assert opened["message_zh"].startswith("411502 浉河区 手足口症候群 2026-11-20 观察 40 例, 超过阈值")
    assert set(opened) - {"_key"} == SCHEMA_FIELDS  # nothing but the schema's fields: no person in it

    # the same moment again: nothing judged, nothing published, no row touched
    before = rows(s)
    again = run_once(s, at(day(1), 10))
    assert again.days == [] and again.changes() == [] and again.open_now == 1
    assert rows(s) == before and len(alerts(s)) == 1

    # a new process the next day finds the open alert in PostgreSQL: UPDATED, not a second OPEN
    result = healthbus("surveillance", "monitor", "--at", at(day(2), 10).isoformat(), env=settings_env(s), timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "judged 2026-11-21; opened 0, updated 1, closed 0, open now 1" in result.stdout, result.stdout
    assert "UPDATED HFMD:411502 ears-c2 alarm 2026-11-21" in result.stdout

    closing = run_once(s, at(day(3), 10))
    assert [(c.state, c.day) for c in closing.changes()] == [(CLOSED, day(2))] and closing.open_now == 0
    states = alerts(s, expect=3)
    assert [(a["state"], a["day"], a["observed"]) for a in states] == [
        ("OPEN", S, 40),
        ("UPDATED", day(1), 38),
        ("CLOSED", day(2), 9),
    ]
    assert {a["alert_id"] for a in states} == {the_id} and {a["opened_day"] for a in states} == {S}
    assert states[2]["message_zh"].startswith("已回落: ") and states[2]["level"] == "alarm"
    assert states[2]["case_list"]["filter"].endswith("day>=2026-11-20 AND day<=2026-11-21")
    assert states[2]["threshold"] == pytest.approx(expected_judgement(hfmd, day(2), "ears-c2", params).threshold)
    (row,) = rows(s)
    assert row[:11] == (the_id, "HFMD:411502", "HFMD", SHIHE, None, "ears-c2", "alarm", "CLOSED", S, day(2), day(2))
    assert judged_days(s) == [(S, False), (day(1), False), (day(2), False)]
    assert REGISTRY.get_sample_value("healthbus_surveillance_alerts_open", {"syndrome": "HFMD"}) == 0
    assert (
        REGISTRY.get_sample_value("healthbus_surveillance_last_judged_day_timestamp_seconds")
        == at(day(2), 0).timestamp()
    )


def test_partial_day_opens_but_never_closes(own_db_settings: Settings) -> None:
    s = own_db_settings.model_copy(update={"surveillance_close_day_hours": 0})  # days close at midnight here
    hfmd, diarrhea = flat(last=day(-1)), flat(dm1=40)
    diarrhea[S] = 2  # today so far: low, as every morning
    hfmd[S] = 30  # a surge visible by noon
    put(s, {("HFMD", SHIHE, "ALL"): hfmd, ("DIARRHEA", SHIHE, "ALL"): diarrhea})

    morning = run_once(s, at(S, 9))  # before 12:00: yesterday only
    assert [(d.day, d.partial_day) for d in morning.days] == [(day(-1), False)]
    assert [(c.alert.series_id, c.state) for c in morning.changes()] == [("DIARRHEA:411502", OPEN)]

    noon = run_once(s, at(S, 12, 30))
    assert [(d.day, d.partial_day) for d in noon.days] == [(S, True)]
    # HFMD opens on today's partial count; DIARRHEA's low partial count does not close its alert
    assert [(c.alert.series_id, c.state, c.partial_day) for c in noon.changes()] == [("HFMD:411502", OPEN, True)]
    assert noon.open_now == 2 and judged_days(s) == [(day(-1), False), (S, True)]
    partial = [a for a in alerts(s, expect=2) if a["_key"] == "HFMD:411502"][0]
    assert partial["partial_day"] is True and partial["day"] == S and partial["observed"] == 30
    assert "截至 12:30" in partial["message_zh"]

    put(s, {("HFMD", SHIHE, "ALL"): {S: 45}})  # later the same day: more cases, the same judgement
    assert run_once(s, at(S, 15)).changes() == []
    assert len(alerts(s)) == 2

    # the day closes: HFMD's partial judgement becomes the closed-day one; DIARRHEA, 3 all day, closes
    put(s, {("DIARRHEA", SHIHE, "ALL"): {S: 3}})
    closed = run_once(s, at(day(1), 9))
    assert [(c.alert.series_id, c.state, c.partial_day, c.day) for c in closed.changes()] == [
        ("DIARRHEA:411502", CLOSED, False, S),
        ("HFMD:411502", UPDATED, False, S),
    ]
    by_series: dict[str, list] = {}
    for a in alerts(s, expect=4):
        by_series.setdefault(a["_key"], []).append((a["state"], a["day"], a["partial_day"], a["observed"]))
    assert by_series == {
        "HFMD:411502": [("OPEN", S, True, 30), ("UPDATED", S, False, 45)],
        "DIARRHEA:411502": [("OPEN", day(-1), False, 40), ("CLOSED", S, False, 3)],
    }
    assert judged_days(s) == [(day(-1), False), (S, False)]

    # the partial-day hours are a setting: with 8, 09:00 already judges today's count so far
    early = run_once(s.model_copy(update={"surveillance_partial_day_hours": 8}), at(day(1), 9))
    assert [(d.day, d.partial_day) for d in early.days] == [(day(1), True)]


def test_catch_up_after_downtime_judges_each_day_in_order(own_db_settings: Settings) -> None:
    s = own_db_settings.model_copy(update={"surveillance_close_day_hours": 0})  # days close at midnight here
    put(s, {("HFMD", SHIHE, "ALL"): flat(d1=40, d2=41, d3=10, d4=9)})
    assert run_once(s, at(day(1), 8)).changes() == []  # judges S: quiet
    # down for three days; the next run judges S+1 … S+4, one after the other
    run = run_once(s, at(day(5), 8))
    assert [(d.day, d.partial_day) for d in run.days] == [(day(k), False) for k in range(1, 5)]
    assert [[c.state for c in d.changes] for d in run.days] == [[OPEN], [UPDATED], [CLOSED], []]
    got = alerts(s, expect=3)
    assert [(a["state"], a["day"]) for a in got] == [("OPEN", day(1)), ("UPDATED", day(2)), ("CLOSED", day(3))]
    assert {a["alert_id"] for a in got} == {alert_id("HFMD:411502", "ears-c2", day(1))}
    assert judged_days(s) == [(day(k), False) for k in range(0, 5)]
    # the catch-up judged each day as the on-time run would have: the same figures
    on_time = expected_judgement(flat(d1=40, d2=41, d3=10, d4=9), day(2), "ears-c2", DetectionParams(min_sigma=0.5))
    assert got[1]["threshold"] == pytest.approx(on_time.threshold)


def test_a_crash_between_publish_and_save_republishes_the_same_alert(
    own_db_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = own_db_settings.model_copy(update={"surveillance_close_day_hours": 0})  # days close at midnight here
    put(s, {("JAUNDICE", SHIHE, "ALL"): flat(cycle=(0, 0, 1, 0), d0=4)})

    def crash(*_args: object) -> None:
        raise RuntimeError("killed after the broker acknowledged")

    monkeypatch.setattr(monitor_module, "save_alert", crash)
    with pytest.raises(RuntimeError, match="killed"):
        run_once(s, at(day(1), 9))
    assert rows(s) == [] and judged_days(s) == []
    monkeypatch.undo()
    run = run_once(s, at(day(1), 9))
    assert [(c.state, c.alert.method) for c in run.changes()] == [(OPEN, "ears-c1")]
    twice = alerts(s, expect=2)
    the_id = alert_id("JAUNDICE:411502", "ears-c1", S)
    assert [(a["alert_id"], a["state"]) for a in twice] == [(the_id, "OPEN")] * 2  # consumers dedupe by id
    assert len(rows(s)) == 1 and judged_days(s) == [(S, False)]


def test_group_series_alert_independently_and_the_plan_file_is_honoured(
    own_db_settings: Settings, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "groups: [child]\n"
        "defaults:\n  - method: ears-c2\n    min_sigma: 0.5\n"
        "rules:\n  - syndromes: [HFMD]\n    methods:\n      - method: ears-c1\n        min_sigma: 0.5\n",
        "utf-8",
    )
    s = own_db_settings.model_copy(update={"surveillance_detection_plan": plan, "surveillance_close_day_hours": 0})
    put(
        s,
        {
            ("HFMD", SHIHE, "ALL"): flat(cycle=(30, 50), d0=52),  # noisy: 52 is within its bound
            ("HFMD", SHIHE, "child"): flat(cycle=(1, 3), d0=12),  # the children's series surges
            ("HFMD", SHIHE, "adult"): flat(cycle=(1, 3), d0=20),  # so do adults', but the plan judges children only
            ("DIARRHEA", SHIHE, "child"): flat(cycle=(1, 3), d0=12),  # the defaults: EARS C2
        },
    )
    run = run_once(s, at(day(1), 9))
    assert [(c.alert.series_id, c.alert.method, c.alert.population_group) for c in run.changes()] == [
        ("DIARRHEA:411502:child", "ears-c2", "child"),
        ("HFMD:411502:child", "ears-c1", "child"),
    ]
    got = {a["_key"]: a for a in alerts(s, expect=2)}
    child = got["HFMD:411502:child"]
    assert child["method"] == "ears-c1" and child["observed"] == 12
    assert child["threshold"] == pytest.approx(
        expected_judgement(flat(cycle=(1, 3), d0=12), S, "ears-c1", DetectionParams(min_sigma=0.5)).threshold
    )
    assert (
        child["case_list"]["filter"]
        == "syndrome=HFMD AND county_code=411502 AND population_group=child AND day=2026-11-20"
    )
    assert "儿童(0-6岁)" in child["message_zh"]
    # an invalid plan stops the command with the file's problem
    plan.write_text("defaults:\n  - method: ears-c9\n", "utf-8")
    result = healthbus("surveillance", "monitor", "--at", at(day(2), 9).isoformat(), env=settings_env(s), timeout=60)
    assert result.returncode == 2 and "unknown method 'ears-c9'" in result.stderr


def test_shipped_plan_ewma_and_c2_and_a_county_without_history(own_db_settings: Settings) -> None:
    s = own_db_settings.model_copy(update={"surveillance_close_day_hours": 0})  # days close at midnight here
    put(
        s,
        {
            ("ILI", SHIHE, "ALL"): flat(cycle=(20, 31, 25, 18), d0=70),
            ("ILI", PINGQIAO, "ALL"): flat(first=S - dt.timedelta(days=12), cycle=(20, 31, 25, 18), d0=70),
        },
        visits=(SHIHE,),
    )
    put(s, {}, visits=(PINGQIAO,), visits_from=S - dt.timedelta(days=12))  # Pingqiao connected 12 days ago
    run = run_once(s, at(day(1), 9))
    # Pingqiao's series has 12 days: EARS C2 (9 days of history) judges it, the EWMA (30) waits for its baseline
    assert [(c.alert.series_id, c.alert.method) for c in run.changes()] == [
        ("ILI:411502", "ears-c2"),
        ("ILI:411502", "ewma"),
        ("ILI:411503", "ears-c2"),
    ]
    got = {(a["_key"], a["method"]): a for a in alerts(s, expect=3)}
    ewma = got[("ILI:411502", "ewma")]
    assert ewma["level"] == "red" and ewma["p_value"] < 0.01 and ewma["observed"] == 70
    assert ewma["threshold"] == pytest.approx(1.70329)  # the yellow t quantile, 27 df (Rnssp rounds to 5 places)
    assert ewma["alert_id"] != got[("ILI:411502", "ears-c2")]["alert_id"]
    assert "红色预警" in ewma["message_zh"] and "EWMA" in ewma["message_en"] and "p<0.001" in ewma["message_en"]
    assert got[("ILI:411503", "ears-c2")]["message_zh"].startswith("411503 平桥区 流感样病例")


def test_a_day_closes_only_once_its_uploads_are_in(own_db_settings: Settings) -> None:
    """Before HEALTHBUS_SURVEILLANCE_CLOSE_DAY_HOURS (10:00) yesterday is not judged as closed yet."""
    with psycopg.connect(own_db_settings.postgres_url, autocommit=True) as conn:
        ensure_monitor_tables(conn)
        d = dt.date(2026, 11, 20)
        assert days_to_judge(conn, at(d, 9, 59), 12.0, 10.0) == [(d - dt.timedelta(days=2), False)]
        assert days_to_judge(conn, at(d, 10), 12.0, 10.0) == [(d - dt.timedelta(days=1), False)]
        assert days_to_judge(conn, at(d, 13), 12.0, 10.0) == [(d - dt.timedelta(days=1), False), (d, True)]
