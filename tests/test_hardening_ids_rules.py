"""Issue #17, hardening: citizen IDs that are not ASCII digits, blank required elements, the after-death
rule offline, rule files that cannot be loaded, and input files that cannot be read.

1. GB 11643 numbers are ASCII digits (+ a final X) after NFKC; anything else is invalid, never an exception,
   in the standard, the identity stage's features and the quality rules alike.
2. A required element that is present but blank (empty, spaces of any kind, zero-width characters) counts
   as missing, for every element of every event type, in the stream stage and `healthbus quality check`.
3. `healthbus quality check` links the file's own records (citizen ID, institution + local patient id) so
   "nothing clinical after a registered death" judges a file holding the death record, without person ids.
4. A rule file with a YAML syntax error, or a rule whose field path the Avro schemas lack, is refused
   naming the file and line, or the rule and the path.
5. An input file with a truncated JSON line, JSON nested too deep, a line too long or bytes that are not
   UTF-8 stops `quality check` with the file and line, exit status 2, no traceback.

No services: rules, linking and the batch check are plain functions; the CLI runs as a user runs it.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from avro_schemas.envelope import make_event_id
from avro_schemas.json_form import to_json
from avro_schemas.topics import QUALITY_RESULTS
from foundation.standards.citizen_id import check_character, make_citizen_id, parse_citizen_id
from foundation.standards.credit_code import make_credit_code
from foundation.text_files import MAX_JSON_DEPTH, MAX_LINE_BYTES, InputFileError
from streams.identity.features import extract_features
from streams.identity.normalise import normalise_phone
from streams.identity.record import SourceRecord
from streams.quality.batch_check import check_file
from streams.quality.checks import EvaluationContext
from streams.quality.engine import RuleEngine
from streams.quality.registered_deaths import death_registration
from streams.quality.rule_set import DEFAULT_RULE_FILE, default_rule_set, load_rule_set
from streams.quality.stage import QualityStage
from tests.conftest import healthbus
from tests.quality_events import CODEC, as_messages
from tests.test_quality_rules import (
    ADULT,
    BASE_EVENT_TYPES,
    MOTHER_ID,
    ORG_CODE,
    base_event,
    found,
    judge,
    put,
    wrong_check_character,
)

ENGINE = RuleEngine(default_rule_set())
VALID = make_citizen_id("411503", dt.date(1980, 5, 12), 123)
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
ETHIOPIC = str.maketrans("123456789", "፩፪፫፬፭፮፯፰፱")  # str.isdigit() says yes, int() says no


# -- 1. citizen IDs are ASCII digits after NFKC -------------------------------------------------------------
def _arabic_with_a_true_check() -> str:
    """17 Arabic-Indic digits and the check character their ASCII twins have: int() reads it as valid."""
    body = VALID[:17]
    return body.translate(ARABIC_INDIC) + check_character(body)


NOT_ASCII_IDS = [
    pytest.param(VALID.translate(ARABIC_INDIC), id="arabic-indic"),
    pytest.param(_arabic_with_a_true_check(), id="arabic-indic-ascii-check"),
    pytest.param(VALID.translate(ETHIOPIC), id="ethiopic"),
    pytest.param(VALID[:16] + "፩" + VALID[17], id="ethiopic-sex-digit"),
    pytest.param(VALID[:6] + "፩" + VALID[7:], id="ethiopic-year"),
    pytest.param("110105491231002".translate(ETHIOPIC), id="ethiopic-15"),
    pytest.param("110105491231002".translate(ARABIC_INDIC), id="arabic-indic-15"),
    pytest.param(VALID[:17] + "१", id="devanagari-check"),
    pytest.param(VALID[:17] + "𐩀", id="kharoshthi-check"),
]


@pytest.mark.parametrize("number", NOT_ASCII_IDS)
def test_an_id_of_other_digits_is_not_an_id(number: str) -> None:
    assert parse_citizen_id(number) is None


def test_full_width_and_compatibility_digits_are_still_ids() -> None:
    full_width = VALID.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert parse_citizen_id(full_width).number == VALID and parse_citizen_id(full_width).valid
    superscript = VALID[:-1] + {"1": "¹", "2": "²", "3": "³"}.get(VALID[-1], VALID[-1])
    assert parse_citizen_id(superscript).number == VALID  # NFKC makes ² a 2


@pytest.mark.parametrize("number", NOT_ASCII_IDS)
def test_identity_features_neither_crash_nor_key_on_other_digits(number: str) -> None:
    features = extract_features(
        SourceRecord("r1", "org", "L1", name="王建国", sex="1", birth_date="1980-05-12", id_type="01", id_number=number)
    )
    assert features.citizen_id is None and features.id_evidence is None
    assert features.sex == "1" and features.birth_date == dt.date(1980, 5, 12)  # from the record's own fields


def test_identity_reads_a_blank_id_type_as_no_type() -> None:
    padded = extract_features(SourceRecord("r1", "org", "L1", id_type="  ", id_number=VALID))
    assert padded.citizen_id == VALID and padded.document is None


def test_phones_keep_ascii_digits_only() -> None:
    assert normalise_phone("13800001111".translate(ARABIC_INDIC)) is None  # not phone digits
    assert normalise_phone("１３８ ００００ １１１１") == "13800001111"  # full-width ones are, after NFKC
    assert normalise_phone("138-0000-1111፩") == "13800001111"


@pytest.mark.parametrize("number", NOT_ASCII_IDS)
@pytest.mark.parametrize(
    ("event_type", "number_path", "rule_id"),
    [
        ("outpatient.visit", "envelope.patient.id_number", "COR-CITIZEN-ID"),
        ("birth.record", "mother_id_number", "COR-MOTHER-CITIZEN-ID"),
    ],
)
def test_quality_judges_an_id_of_other_digits_invalid(
    number: str, event_type: str, number_path: str, rule_id: str
) -> None:
    event = base_event(event_type)
    put(number_path, number)(event)
    verdict = judge(event_type, event)  # no exception: the stage would retry the batch for ever
    assert (rule_id, number_path) in found(verdict)


# -- 2. blank counts as missing -------------------------------------------------------------------------------
BLANKS = ["", " ", "\t", "\u3000", "\xa0", "\u200b", " \ufeff ", "\u2060\u200d"]


def _declared(check: str) -> list[tuple[str, str, str]]:
    """(rule id, event type, field path) of every field a shipped rule of kind ``check`` requires."""
    out = []
    for rule in yaml.safe_load(DEFAULT_RULE_FILE.read_text("utf-8"))["rules"]:
        if rule["check"] != check:
            continue
        types = BASE_EVENT_TYPES if rule["event_types"] == ["*"] else rule["event_types"]
        out += [(rule["id"], t, f) for t in types for f in rule["params"]["fields"]]
    return out


def _string_at(event: dict[str, Any], path: str) -> bool:
    node: Any = event
    for step in path.replace("[*]", ".0").split("."):
        node = node[int(step)] if step.isdigit() else node.get(step)
        if node is None:
            return False
    return isinstance(node, str)


REQUIRED_STRINGS = [
    pytest.param(rule_id, event_type, path, id=f"{rule_id}-{event_type}-{path}")
    for rule_id, event_type, path in _declared("required")
    if _string_at(base_event(event_type), path)
]


def test_the_blank_cases_cover_the_required_strings() -> None:
    assert len(REQUIRED_STRINGS) >= 25


@pytest.mark.parametrize("blank", BLANKS, ids=repr)
@pytest.mark.parametrize(("rule_id", "event_type", "path"), REQUIRED_STRINGS)
def test_a_blank_required_element_is_missing(rule_id: str, event_type: str, path: str, blank: str) -> None:
    event = base_event(event_type)
    put(path.replace("[*]", "[0]"), blank)(event)
    assert (rule_id, path.replace("[*]", "[0]")) in found(judge(event_type, event))


@pytest.mark.parametrize("blank", BLANKS, ids=repr)
def test_blank_department_code_and_name_are_both_missing(blank: str) -> None:
    event = base_event("inpatient.admission")
    event["department_code"], event["department_name"] = blank, "\u200b"
    assert ("CMP-DEPARTMENT", "department_code") in found(judge("inpatient.admission", event))


@pytest.mark.parametrize(
    ("event_type", "type_path", "number_path", "rule_id", "number"),
    [
        ("outpatient.visit", "envelope.patient.id_type", "envelope.patient.id_number", "COR-CITIZEN-ID", VALID),
        ("birth.record", "mother_id_type", "mother_id_number", "COR-MOTHER-CITIZEN-ID", MOTHER_ID),
    ],
)
@pytest.mark.parametrize("blank", [" ", "  ", "\u3000"], ids=repr)
def test_a_blank_id_type_is_no_type(
    event_type: str, type_path: str, number_path: str, rule_id: str, number: str, blank: str
) -> None:
    """A CHAR(2) column left empty arrives as spaces: the number is then judged as a citizen ID, as with no type."""
    event = base_event(event_type)
    puts = [put(type_path, blank), put(number_path, wrong_check_character(number))]
    for p in puts:
        p(event)
    assert (rule_id, number_path) in found(judge(event_type, event))


@pytest.mark.parametrize("blank", [" ", "\u200b"], ids=repr)
def test_a_blank_person_id_registers_no_death(blank: str) -> None:
    death = base_event("death.record")
    death["envelope"]["person_id"] = blank
    assert death_registration("death.record", death) is None
    visit = base_event("outpatient.visit")
    visit["envelope"]["person_id"] = blank
    ctx = EvaluationContext({blank: visit["envelope"]["occurred_at"] - dt.timedelta(days=1)})
    assert "LOG-AFTER-DEATH" not in [r for r, _ in found(judge("outpatient.visit", visit, ctx))]


def test_blank_elements_get_the_same_verdicts_in_the_stage_and_the_batch_check(tmp_path: Path) -> None:
    visits = []
    for k, change in enumerate(
        [
            {"visit_no": "\u200b"},
            {"chief_complaint": "\u3000 "},
            {"department_code": " ", "department_name": "\ufeff"},
            {"diagnoses": [{"code": "\u2060", "name": None, "is_primary": True, "diagnosed_at": None}]},
        ]
    ):
        visit = _another(base_event("outpatient.visit"), f"MZ{k:010d}")
        visit.update(change)
        visits.append(visit)
    visit = _another(base_event("outpatient.visit"), "MZ0000000099")
    visit["envelope"]["patient"]["id_type"] = "  "
    visit["envelope"]["patient"]["id_number"] = wrong_check_character(VALID)
    visits.append(visit)

    source, out = tmp_path / "events.jsonl", tmp_path / "results.jsonl"
    source.write_text("".join(to_json(e) + "\n" for e in visits), encoding="utf-8")
    check_file(source, out, ENGINE)
    batch = {r["event_id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}

    stage = QualityStage(CODEC, "p-", ENGINE, None, ["outpatient.visit"])
    verdicts = [
        CODEC.decode(o.value).value
        for o in stage.handle_batch(as_messages("p-", visits))
        if o.topic == "p-" + QUALITY_RESULTS
    ]
    expected = ["CMP-VISIT", "CMP-CHIEF-COMPLAINT", "CMP-DEPARTMENT", "CMP-DIAGNOSIS", "COR-CITIZEN-ID"]
    assert [[x["rule_id"] for x in v["violations"]] for v in verdicts] == [[e] for e in expected]
    for v in verdicts:
        b = batch[v["event_id"]]
        assert (b["passed"], b["score"]) == (v["passed"], round(v["score"], 6))
        assert [(x["rule_id"], x["field"]) for x in b["violations"]] == [
            (x["rule_id"], x["field"]) for x in v["violations"]
        ]


# -- 3. the after-death rule offline: the file's own records are linked ---------------------------------------
OTHER_ORG = make_credit_code("12", "411502", "MB054321")  # another hospital, 浉河区


def _another(event: dict[str, Any], record_no: str, org: str = ORG_CODE, local_id: str | None = None) -> dict[str, Any]:
    """The same kind of record with its own record key (and event id), optionally from another institution."""
    out = copy.deepcopy(event)
    env = out["envelope"]
    table = env["event_type"].replace(".", "_")
    env["source"]["record_key"] = f"{table}:{record_no}"
    env["source"]["org_code"] = org
    env["event_id"] = make_event_id(org, env["source"]["record_key"], 1)
    if local_id is not None:
        env["patient"]["local_patient_id"] = local_id
    return out


def _offline(event: dict[str, Any]) -> dict[str, Any]:
    """As the adapter published it: no platform person id yet."""
    event["envelope"]["person_id"] = None
    event["envelope"]["identity"] = None
    return event


def _death_of(visit: dict[str, Any], died_at: dt.datetime, org: str, local_id: str) -> dict[str, Any]:
    death = _another(base_event("death.record"), "SW0000000777", org, local_id)
    env = death["envelope"]
    env["patient"] = copy.deepcopy(visit["envelope"]["patient"]) | {"local_patient_id": local_id}
    env["occurred_at"], env["emitted_at"] = died_at, died_at + dt.timedelta(hours=5)
    death["died_at"] = died_at
    return death


def _check(tmp_path: Path, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    source, out = tmp_path / "events.jsonl", tmp_path / "results.jsonl"
    source.write_text("".join(to_json(e) + "\n" for e in events), encoding="utf-8")
    check_file(source, out, ENGINE)
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def _after_death(result: dict[str, Any]) -> bool:
    return any(v["rule_id"] == "LOG-AFTER-DEATH" for v in result["violations"])


def test_offline_file_links_a_death_by_citizen_id_across_institutions(tmp_path: Path) -> None:
    visit = _offline(base_event("outpatient.visit"))
    before = _offline(_another(visit, "MZ0000000002"))
    before["envelope"]["occurred_at"] -= dt.timedelta(days=3)
    before["envelope"]["emitted_at"] -= dt.timedelta(days=3)
    died = visit["envelope"]["occurred_at"] - dt.timedelta(days=1)
    death = _offline(_death_of(visit, died, OTHER_ORG, "D0000042"))  # another hospital's own patient id
    stranger = _offline(_another(visit, "MZ0000000003", local_id="L7654321"))
    stranger["envelope"]["patient"]["id_number"] = make_citizen_id("411503", dt.date(1980, 5, 12), 125)

    results = _check(tmp_path, [visit, before, stranger, death])  # the death record comes last
    assert [_after_death(r) for r in results] == [True, False, False, False]
    assert results[3]["passed"]


def test_offline_file_links_by_institution_and_local_patient_id(tmp_path: Path) -> None:
    visit = _offline(base_event("outpatient.visit"))
    visit["envelope"]["patient"]["id_type"] = visit["envelope"]["patient"]["id_number"] = None
    died = visit["envelope"]["occurred_at"] - dt.timedelta(days=1)
    local = visit["envelope"]["patient"]["local_patient_id"]
    death = _offline(_death_of(visit, died, ORG_CODE, local))
    elsewhere = _offline(_another(visit, "MZ0000000005", org=OTHER_ORG))  # same local id, another hospital

    results = _check(tmp_path, [visit, elsewhere, death])
    assert [_after_death(r) for r in results] == [True, False, False]


def test_offline_file_does_not_link_an_id_that_fails_its_check(tmp_path: Path) -> None:
    visit = _offline(base_event("outpatient.visit"))
    visit["envelope"]["patient"]["id_number"] = wrong_check_character(VALID)
    died = visit["envelope"]["occurred_at"] - dt.timedelta(days=1)
    death = _offline(_death_of(visit, died, OTHER_ORG, "D0000042"))

    results = _check(tmp_path, [visit, death])
    assert not _after_death(results[0])


def test_offline_record_links_to_an_identified_death(tmp_path: Path) -> None:
    visit = _offline(base_event("outpatient.visit"))
    died = visit["envelope"]["occurred_at"] - dt.timedelta(days=1)
    death = _death_of(visit, died, OTHER_ORG, "D0000042")
    death["envelope"]["person_id"] = ADULT.person_id  # this one went through the identify stage

    results = _check(tmp_path, [death, visit])
    assert _after_death(results[1])


def test_platform_person_ids_are_the_platforms_word(tmp_path: Path) -> None:
    """Records the identify stage resolved keep their person, as in the stream stage: the same citizen ID
    under two person ids (the EMPI kept them apart, e.g. pending review) is not merged here."""
    visit = base_event("outpatient.visit")
    visit["envelope"]["person_id"] = "hb-person-kept-apart"
    died = visit["envelope"]["occurred_at"] - dt.timedelta(days=1)
    death = _death_of(visit, died, OTHER_ORG, "D0000042")
    death["envelope"]["person_id"] = ADULT.person_id
    assert not _after_death(_check(tmp_path, [death, visit])[1])


def test_a_cancelled_death_withdraws_it_offline(tmp_path: Path) -> None:
    visit = _offline(base_event("outpatient.visit"))
    died = visit["envelope"]["occurred_at"] - dt.timedelta(days=1)
    death = _offline(_death_of(visit, died, OTHER_ORG, "D0000042"))
    cancelled = copy.deepcopy(death)
    env = cancelled["envelope"]
    env["record_version"], env["cancelled"] = 2, True
    env["event_id"] = make_event_id(env["source"]["org_code"], env["source"]["record_key"], 2, True)

    results = _check(tmp_path, [death, cancelled, visit])
    assert not _after_death(results[2])


# -- 4. rule files: syntax errors and field paths --------------------------------------------------------------
RULE = """\
version: "2026.11.9"
rules:
  - id: GOOD-RULE
    category: completeness
    event_types: [{event_types}]
    severity: error
    weight: 1
    check: {check}
    params: {params}
    message: {{zh: "x", en: "x"}}
"""


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param(
            RULE.format(event_types="outpatient.visit", check="required", params="{fields: [visit_no]"),
            10,
            id="unclosed-flow-mapping",
        ),
        pytest.param('version: "2026.11.9"\nrules:\n  - id: A\n   category: logic\n', 4, id="bad-indentation"),
        pytest.param('version: "2026.11.9"\nrules:\n  - id: "A\n', 4, id="unclosed-quote"),  # seen at the end
        pytest.param("version: 1\n\trules: []\n", 2, id="tab"),
    ],
)
def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as raised:
        load_rule_set(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: line {line},"), message
    assert "YAML" in message


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("- just\n- a list\n", id="not-a-mapping"),
        pytest.param('version: "2026.11.9"\nrules: [plain, words]\n', id="rules-not-mappings"),
        pytest.param("", id="empty"),
    ],
)
def test_a_rule_file_of_the_wrong_shape_is_refused_without_a_traceback(tmp_path: Path, text: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as raised:
        load_rule_set(path)
    assert str(path) in str(raised.value)


def test_a_rule_file_that_is_not_utf8_or_not_there(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes(b'version: "2026.11.9"\nrules: []\n# \xff\n')
    with pytest.raises(ValueError, match=rf"{path}.*UTF-8"):
        load_rule_set(path)
    with pytest.raises(ValueError, match="cannot read"):
        load_rule_set(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("event_types", "check", "params", "bad_path", "event_type"),
    [
        ("outpatient.visit", "required", "{fields: [visit_number]}", "visit_number", "outpatient.visit"),
        ("lab.report", "range", "{fields: [temperature_c], min: 34, max: 43}", "temperature_c", "lab.report"),
        ("outpatient.visit", "required", "{fields: [envelope.patient.nmae]}", "envelope.patient.nmae", None),
        ("outpatient.visit", "icd10", '{fields: ["diagnoses[*].cod"]}', "diagnoses[*].cod", None),
        ("outpatient.visit", "icd10", '{fields: ["diagnoses.code"]}', "diagnoses.code", None),  # an array: [*]
        ("outpatient.visit", "required", '{fields: ["visit_no[*]"]}', "visit_no[*]", None),  # not an array
        ("outpatient.visit", "required", '{fields: ["visit_no.x"]}', "visit_no.x", None),  # a string has no fields
        ("'*'", "required", "{fields: [visit_no]}", "visit_no", "lab.report"),  # not every type has it
        (
            "ph.chronic_followup",
            "required",
            "{fields: [systolic_bp], when: disease_cod, when_in: [I10]}",
            "disease_cod",
            None,
        ),
        ("lab.report", "not_before", "{later: reported_at, earlier: collected}", "collected", None),
        (
            "outpatient.visit",
            "citizen_id",
            "{number: envelope.patient.id_no, type: envelope.patient.id_type}",
            "id_no",
            None,
        ),
        ("outpatient.visit", "credit_code", "{field: envelope.source.org}", "envelope.source.org", None),
        (
            "outpatient.visit",
            "upload_delay",
            '{limit_hours: 24, urgent_ranges: [{from: A00, to: A00}], diagnosis_fields: ["diagnosis[*].code"]}',
            "diagnosis[*].code",
            None,
        ),
        ("outpatient.visit", "discharge_death_consistency", "{}", "died_at", "outpatient.visit"),  # what it reads
        ("inpatient.discharge", "death_record_consistency", "{}", "cause_chain", "inpatient.discharge"),
    ],
)
def test_a_field_path_missing_from_the_schemas_is_refused_naming_the_rule_and_path(
    tmp_path: Path, event_types: str, check: str, params: str, bad_path: str, event_type: str | None
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULE.format(event_types=event_types, check=check, params=params), encoding="utf-8")
    with pytest.raises(ValueError) as raised:
        load_rule_set(path)
    message = str(raised.value)
    assert "GOOD-RULE" in message and bad_path in message, message
    if event_type:
        assert event_type in message


def test_every_shipped_path_exists_and_nested_paths_are_accepted(tmp_path: Path) -> None:
    assert len(load_rule_set().rules) == len(default_rule_set().rules)
    path = tmp_path / "rules.yaml"
    params = '{fields: [envelope.patient.name, "cause_chain[*].code", envelope.source.org_code, underlying_cause_name]}'
    path.write_text(RULE.format(event_types="death.record", check="required", params=params), encoding="utf-8")
    assert load_rule_set(path).rules[0].id == "GOOD-RULE"
    # a rule for several types may read a field only some of them have (it does not apply to the others) …
    params = "{fields: [temperature_c], min: 34, max: 43}"
    path.write_text(RULE.format(event_types="outpatient.visit, lab.report", check="range", params=params), "utf-8")
    assert load_rule_set(path).rules[0].id == "GOOD-RULE"
    # … but not require it: every event of the others would fail
    params = "{fields: [temperature_c]}"
    path.write_text(RULE.format(event_types="outpatient.visit, lab.report", check="required", params=params), "utf-8")
    with pytest.raises(ValueError, match=r"GOOD-RULE.*'temperature_c'.*lab\.report"):
        load_rule_set(path)


def test_the_cli_reports_a_broken_rule_file_without_a_traceback(tmp_path: Path) -> None:
    import os

    path = tmp_path / "rules.yaml"
    path.write_text('version: "2026.11.9"\nrules:\n  - id: A\n   category: logic\n', encoding="utf-8")
    env = {**os.environ, "HEALTHBUS_QUALITY_RULE_FILE": str(path)}
    events = tmp_path / "events.jsonl"
    events.write_text(to_json(base_event("outpatient.visit")) + "\n", encoding="utf-8")
    for args in (("quality", "rules"), ("quality", "check", "--input", str(events), "--output", str(tmp_path / "o"))):
        done = healthbus(*args, env=env)
        assert done.returncode == 2, done.stderr
        assert f"{path}: line 4," in done.stderr and "Traceback" not in done.stderr
    worker = healthbus("worker", "quality", env=env)  # stops before it connects to anything
    assert worker.returncode == 1 and f"{path}: line 4," in worker.stderr and "Traceback" not in worker.stderr


# -- 5. input files that cannot be read ------------------------------------------------------------------------
def _good_line() -> str:
    return to_json(base_event("outpatient.visit"))


def _nested(depth: int) -> str:
    return '{"envelope": ' + "[" * depth + "]" * depth + "}"


BROKEN_INPUTS = [
    pytest.param(_good_line()[:300].encode(), "truncated", id="truncated"),
    pytest.param(_good_line()[:-1].encode(), "truncated", id="truncated-at-the-last-brace"),
    pytest.param(b'{"envelope": {"event_id": "abc', "truncated", id="truncated-in-a-string"),
    pytest.param(_nested(MAX_JSON_DEPTH + 1).encode(), f"deeper than {MAX_JSON_DEPTH}", id="deep"),
    pytest.param(_nested(200_000).encode(), f"deeper than {MAX_JSON_DEPTH}", id="very-deep"),
    pytest.param(b'{"x": "' + b"a" * MAX_LINE_BYTES + b'"}', "longer than", id="long"),
    pytest.param(_good_line().encode()[:50] + b"\xff\xfe" + _good_line().encode()[50:], "UTF-8", id="bytes"),
    pytest.param(_good_line().encode("utf-16"), "NUL byte", id="utf-16"),
]


@pytest.mark.parametrize(("bad", "problem"), BROKEN_INPUTS)
def test_an_unreadable_line_names_the_file_and_line(tmp_path: Path, bad: bytes, problem: str) -> None:
    source, out = tmp_path / "events.jsonl", tmp_path / "results.jsonl"
    good = _good_line().encode()
    source.write_bytes(good + b"\n\n" + bad + b"\n" + good + b"\n")
    with pytest.raises(InputFileError) as raised:
        check_file(source, out, ENGINE)
    assert str(raised.value).startswith(f"{source}: line 3: "), str(raised.value)
    assert problem in str(raised.value)
    assert (raised.value.path, raised.value.line) == (source, 3)


def test_a_last_line_cut_off_is_truncated_too(tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    source.write_text(_good_line() + "\n" + _good_line()[:-40], encoding="utf-8")
    with pytest.raises(InputFileError, match=r": line 2: .*truncated"):
        check_file(source, tmp_path / "results.jsonl", ENGINE)


def test_a_line_just_under_the_limits_is_judged(tmp_path: Path) -> None:
    source, out = tmp_path / "events.jsonl", tmp_path / "results.jsonl"
    event = json.loads(_good_line())
    event["padding"] = ""  # a member the schema lacks: ignored
    padded = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    padded = padded.replace('"padding":""', '"padding":"' + "a" * (MAX_LINE_BYTES - len(padded.encode())) + '"')
    assert len(padded.encode()) == MAX_LINE_BYTES
    lines = [_good_line(), padded, _nested(MAX_JSON_DEPTH - 1), "not json at all", "\ufeff" + _good_line()]
    source.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")  # a byte-order mark opens the file
    check_file(source, out, ENGINE)
    results = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert results[0]["passed"] and results[1]["passed"] and results[1]["violations"] == []
    assert [v["rule_id"] for v in results[2]["violations"]] == ["INPUT-FORMAT"]
    assert results[3]["violations"][0]["error"] == "bad_json"  # a line that is not JSON at all is judged, as before
    assert results[4]["violations"][0]["error"] == "bad_json"  # a byte-order mark only opens the file


@pytest.mark.parametrize(("bad", "problem"), [BROKEN_INPUTS[0], BROKEN_INPUTS[4], BROKEN_INPUTS[5], BROKEN_INPUTS[6]])
def test_the_cli_exits_2_naming_the_file_and_line(tmp_path: Path, bad: bytes, problem: str) -> None:
    source, out = tmp_path / "events.jsonl", tmp_path / "results.jsonl"
    source.write_bytes(_good_line().encode() + b"\n" + bad + b"\n")
    done = healthbus("quality", "check", "--input", str(source), "--output", str(out))
    assert done.returncode == 2, done.stderr
    assert f"{source}: line 2: " in done.stderr and problem in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()  # nothing judged: the file is read through before a verdict is written


def test_a_file_saved_as_gbk_is_read_as_the_other_batch_commands_read_theirs(tmp_path: Path) -> None:
    source, out = tmp_path / "events.jsonl", tmp_path / "results.jsonl"
    source.write_bytes((_good_line() + "\r\n").encode("gb18030") * 2)  # Excel on a Chinese Windows, CRLF
    check_file(source, out, ENGINE)
    assert [json.loads(line)["passed"] for line in out.read_text(encoding="utf-8").splitlines()] == [True, True]


def test_the_cli_exits_2_on_a_missing_input(tmp_path: Path) -> None:
    done = healthbus("quality", "check", "--input", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "o"))
    assert done.returncode == 2 and "nope.jsonl" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("blank", ["", "   ", "\u3000", "\u200b", " \t\u00a0"])
def test_an_adapter_refuses_a_blank_required_column_by_the_same_rule(blank: str) -> None:
    from producers.adapters.mapping import UnmappableRow, _required

    with pytest.raises(UnmappableRow) as refused:
        _required({"visit_no": blank}, "visit_no")
    assert refused.value.code == "missing_value"
    assert _required({"visit_no": " V-1 "}, "visit_no") == " V-1 "
