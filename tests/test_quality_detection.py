"""The demo's defect-detection measure: every injectable defect kind has rules that exist."""

from __future__ import annotations

from streams.quality.rule_set import default_rule_set
from synthetic.defect_detection import EXPECTED_RULES, measure_detection
from synthetic.defects import ALL_KINDS


def test_every_defect_kind_that_becomes_an_event_names_existing_rules() -> None:
    rule_ids = set(default_rule_set().by_id())
    assert {k for k in ALL_KINDS if not k.startswith("unmappable.")} == set(EXPECTED_RULES)
    for kind, rules in EXPECTED_RULES.items():
        assert rules <= rule_ids, kind


def test_measure_detection_counts_caught_missed_and_false_rejections() -> None:
    defects = [
        (("A", "outpatient_visit:1"), "invalid.icd10"),
        (("A", "outpatient_visit:2"), "invalid.icd10"),
        (("A", "lab_report:9"), "late.upload"),
        (("A", "outpatient_visit:7"), "unmappable.visit_type"),
    ]
    events_of = {
        ("A", "outpatient_visit:1"): ["e1", "e1b"],
        ("A", "outpatient_visit:2"): ["e2"],
        ("A", "lab_report:9"): ["e9"],
        ("A", "outpatient_visit:3"): ["e3"],
        ("A", "exam_report:4"): ["e4"],
    }
    rules_of = {
        "e1b": frozenset({"COR-ICD10"}),
        "e2": frozenset({"CMP-CHIEF-COMPLAINT"}),
        "e9": frozenset({"TIM-RECORD-24H"}),
        "e3": frozenset({"COR-ICD10"}),
    }
    rows, false_rejections, judged = measure_detection(defects, events_of, rules_of, rejected={"e1b", "e3"})
    assert [(r.kind, r.injected, r.detected) for r in rows] == [("invalid.icd10", 2, 1), ("late.upload", 1, 1)]
    assert rows[0].recall == 0.5
    assert false_rejections == 1 and judged == 6  # e3: rejected, its record has no defect
