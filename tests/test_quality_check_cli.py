"""`healthbus quality check`: the exact batch interface, and the same verdicts as the stream stage."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from avro_schemas.json_form import to_json
from avro_schemas.topics import QUALITY_RESULTS
from streams.quality.engine import RuleEngine
from streams.quality.rule_set import default_rule_set
from streams.quality.stage import QualityStage
from tests.conftest import healthbus
from tests.quality_events import CODEC, as_messages, death_record, identified_visits, revised


def _events() -> list[dict]:
    visits = identified_visits(40, seed=61)
    visits[3]["diagnoses"][0]["code"] = "I10.900"  # I10 has no subcategories: an error
    visits[5]["temperature_c"] = 46.2  # a warning
    visits[7]["envelope"]["patient"]["sex"] = "1"
    visits[7]["diagnoses"].append({"code": "O80.000", "name": "单胎顺产", "is_primary": False})  # male pregnancy
    visits[9]["envelope"]["person_id"] = "0f6f7d0c-6b1b-5d4e-9c55-2d7a1d1f0b99"  # a resident seen only here
    died = visits[9]["envelope"]["occurred_at"] - dt.timedelta(days=2)
    after_death = revised(visits[9], 2)
    # the death record comes after the visit in the file: the register is read in a first pass
    return [*visits, after_death, death_record(visits[9], died, certificate="411502202611007777")]


def test_check_writes_one_verdict_per_line_in_order_with_the_exact_shape(tmp_path: Path) -> None:
    events = _events()
    source = tmp_path / "events.jsonl"
    lines = [to_json(e) for e in events]
    lines.insert(10, '{"envelope": {"event_id": "x-1", "event_type": "outpatient.visit", "occurred_at": "yesterday"}}')
    lines.insert(11, "not json at all")
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "results.jsonl"
    done = healthbus("quality", "check", "--input", str(source), "--output", str(out))
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(results) == len(lines)
    for r in results:
        assert set(r) == {"event_id", "passed", "score", "violations"}
        assert 0.0 <= r["score"] <= 1.0
        assert r["passed"] == (not any(v["severity"] == "error" for v in r["violations"]))
        for v in r["violations"]:
            assert {"rule_id", "category", "severity", "field"} <= set(v)
            assert v["category"] in {"completeness", "timeliness", "correctness", "logic"}
    judged = [r for k, r in enumerate(results) if k not in (10, 11)]
    assert [r["event_id"] for r in judged] == [e["envelope"]["event_id"] for e in events]
    by_id = {r["event_id"]: r for r in judged}
    ids = [e["envelope"]["event_id"] for e in events]
    assert by_id[ids[0]] == {"event_id": ids[0], "passed": True, "score": 1.0, "violations": []}
    assert by_id[ids[3]]["passed"] is False and by_id[ids[3]]["violations"] == [
        {"rule_id": "COR-ICD10", "category": "correctness", "severity": "error", "field": "diagnoses[0].code"}
    ]
    assert by_id[ids[5]]["passed"] is True and [v["rule_id"] for v in by_id[ids[5]]["violations"]] == [
        "COR-TEMPERATURE"
    ]
    assert by_id[ids[7]]["violations"] == [
        {"rule_id": "LOG-SEX-DIAGNOSIS", "category": "logic", "severity": "error", "field": "diagnoses[1].code"}
    ]
    assert [v["rule_id"] for v in by_id[ids[40]]["violations"]] == ["LOG-AFTER-DEATH"]
    assert results[10]["event_id"] == "x-1" and results[10]["passed"] is False
    assert results[10]["violations"][0]["rule_id"] == "INPUT-FORMAT"
    assert results[11] == {
        "event_id": None,
        "passed": False,
        "score": 0.0,
        "violations": [
            {
                "rule_id": "INPUT-FORMAT",
                "category": "correctness",
                "severity": "error",
                "field": "<event>",
                "error": "bad_json",
            }
        ],
    }
    assert "1 deaths in the file" in done.stderr


def test_the_batch_cli_and_the_stream_stage_give_the_same_verdicts(tmp_path: Path) -> None:
    events = [e for e in _events() if e["envelope"]["event_type"] == "outpatient.visit"]
    source, out = tmp_path / "events.jsonl", tmp_path / "results.jsonl"
    source.write_text("".join(to_json(e) + "\n" for e in events), encoding="utf-8")
    assert healthbus("quality", "check", "--input", str(source), "--output", str(out)).returncode == 0
    batch = {r["event_id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}

    stage = QualityStage(CODEC, "p-", RuleEngine(default_rule_set()), None, ["outpatient.visit"])
    verdicts = [
        CODEC.decode(o.value).value
        for o in stage.handle_batch(as_messages("p-", events))
        if o.topic == "p-" + QUALITY_RESULTS
    ]
    assert len(verdicts) == len(events)
    for v in verdicts:
        b = batch[v["event_id"]]
        assert (b["passed"], round(b["score"], 6)) == (v["passed"], round(v["score"], 6))
        assert [(x["rule_id"], x["field"]) for x in b["violations"]] == [
            (x["rule_id"], x["field"]) for x in v["violations"]
        ]
