"""Rule sets: the versioned declarations in ``rulesets/*.yaml``, loaded, validated and compiled.

A rule set file has a ``version`` and a list of rules (id, category, event types, severity, weight,
check kind + params, zh/en message). ``versions.lock`` beside it records the SHA-256 of every version's
file, so a rule changed without a new version is caught (tests/test_quality_rules.py), and every verdict
and score can say which rules made it.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from avro_schemas.schema_set import current_schemas
from avro_schemas.topics import PIPELINE_EVENT_TYPES
from streams.quality.checks import (
    CHECK_PARAMS,
    CHECK_PATHS,
    CHECK_PATHS_EVERYWHERE,
    CHECK_READS,
    CheckFn,
    load_check_kinds,
)
from streams.quality.field_paths import schema_path_problem

RULESET_DIR = Path(__file__).parent / "rulesets"
DEFAULT_RULE_FILE = RULESET_DIR / "quality_rules.yaml"
LOCK_FILE = RULESET_DIR / "versions.lock"


class RuleFileError(ValueError):
    """A rule file that cannot be loaded; the message names the file (and line, or rule)."""


class Category(str, enum.Enum):
    COMPLETENESS = "completeness"
    TIMELINESS = "timeliness"
    CORRECTNESS = "correctness"
    LOGIC = "logic"


class Severity(str, enum.Enum):
    ERROR = "error"  # the event is rejected to dlq.quality
    WARNING = "warning"  # the event passes, flagged


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    zh: str
    en: str


class RuleDeclaration(BaseModel):
    """One rule as written in the YAML file."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Z][A-Z0-9-]+$")
    category: Category
    event_types: list[str]
    severity: Severity
    weight: float = Field(gt=0)
    check: str
    params: dict[str, Any] = Field(default_factory=dict)
    message: Message
    on_cancelled: bool = False

    @field_validator("event_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t != "*" and t not in PIPELINE_EVENT_TYPES]
        if unknown:
            raise ValueError(f"unknown event types {unknown}")
        return value

    @field_validator("check")
    @classmethod
    def _known_check(cls, value: str) -> str:
        if value not in load_check_kinds():
            raise ValueError(f"unknown check kind {value!r}; known: {sorted(load_check_kinds())}")
        return value


class RuleSetFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(pattern=r"^\d{4}\.\d{1,2}\.\d+$")
    rules: list[RuleDeclaration]


@dataclass(frozen=True, slots=True)
class Rule:
    """A declaration with its check compiled."""

    id: str
    category: Category
    severity: Severity
    weight: float
    event_types: frozenset[str]
    on_cancelled: bool
    message_zh: str
    message_en: str
    check: CheckFn


@dataclass(frozen=True)
class RuleSet:
    version: str
    digest: str  # SHA-256 of the file's bytes
    rules: tuple[Rule, ...]

    def by_id(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}

    def for_event_type(self, event_type: str, cancelled: bool = False) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if event_type in r.event_types and (r.on_cancelled or not cancelled))


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_yaml(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RuleFileError(f"{path}: cannot read the rule file: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RuleFileError(f"{path}: line {line}: not UTF-8 text") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}: line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(path)
        problem = exc.problem or "malformed"
        context = exc.context_mark
        if exc.context:
            problem += f" {exc.context}"
            if context is not None and (mark is None or context.line != mark.line):
                problem += f" begun on line {context.line + 1}"
        raise RuleFileError(f"{where}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise RuleFileError(f"{path}: YAML error: {exc}") from None


def _rule_name(raw: Any, index: int) -> str:
    rules = raw.get("rules") if isinstance(raw, dict) else None
    rule = rules[index] if isinstance(rules, list) and index < len(rules) else None
    rule_id = rule.get("id") if isinstance(rule, dict) else None
    return str(rule_id) if rule_id is not None else f"#{index + 1}"


def _path_params(d: RuleDeclaration, path: Path) -> list[tuple[str, bool]]:
    """(field path, whether every event type must have it) for each path a declaration's params name."""
    out: list[tuple[str, bool]] = []
    for name in sorted(CHECK_PATHS[d.check] & d.params.keys()):
        value = d.params[name]
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) and v for v in values):
            raise RuleFileError(f"{path}: rule {d.id}: params.{name} must name field paths, got {value!r}")
        out.extend((v, name in CHECK_PATHS_EVERYWHERE[d.check]) for v in values)
    return out


def _check_paths(d: RuleDeclaration, types: frozenset[str], path: Path) -> None:
    """The field paths a rule names exist in the Avro schemas of its event types: each in one of them at
    least, and in all of them where an absent field would fail the rule (``required``) or the check kind
    reads it by itself. A misspelt path would otherwise read as "missing" on every event, or never apply."""
    schemas = current_schemas()
    wanted = [(p, everywhere, "field path") for p, everywhere in _path_params(d, path)]
    wanted += [(p, True, f"{d.check} reads") for p in CHECK_READS[d.check]]
    for field_path, everywhere, origin in wanted:
        problems = {t: _problem(field_path, schemas[t].standalone_json) for t in sorted(types)}
        lacking = {t: p for t, p in problems.items() if p is not None}
        if lacking and (everywhere or len(lacking) == len(types)):
            first = next(iter(lacking.values()))
            raise RuleFileError(
                f"{path}: rule {d.id}: {origin} {field_path!r} is not in the Avro schema of "
                f"{', '.join(lacking)} ({first})"
            )


@cache
def _parsed_schema(standalone_json: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(standalone_json)
    return parsed


def _problem(field_path: str, standalone_json: str) -> str | None:
    return schema_path_problem(field_path, _parsed_schema(standalone_json))


def load_rule_set(path: Path = DEFAULT_RULE_FILE) -> RuleSet:
    """Parse and validate a rule file; raises `RuleFileError` naming the file and the line or the rule."""
    raw = _read_yaml(path)
    try:
        declared = RuleSetFile.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = error["loc"]
            where = "/".join(map(str, loc)) or "the file"
            if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
                where = f"rule {_rule_name(raw, loc[1])}: {'/'.join(map(str, loc[2:])) or 'the rule'}"
            problems.append(f"{where}: {error['msg']}")
        raise RuleFileError(f"{path}: " + "; ".join(problems)) from None
    seen: set[str] = set()
    kinds = load_check_kinds()
    rules: list[Rule] = []
    for d in declared.rules:
        if d.id in seen:
            raise RuleFileError(f"{path}: rule {d.id} declared twice")
        seen.add(d.id)
        unknown = sorted(set(d.params) - CHECK_PARAMS[d.check])
        if unknown:
            raise RuleFileError(
                f"{path}: rule {d.id}: {d.check} takes no params {unknown}; it reads {sorted(CHECK_PARAMS[d.check])}"
            )
        if isinstance(d.params.get("fields"), str):
            raise RuleFileError(f"{path}: rule {d.id}: params.fields must be a list of field paths")
        try:
            check = kinds[d.check](d.params)
        except (KeyError, TypeError, ValueError) as exc:
            raise RuleFileError(f"{path}: rule {d.id}: bad params for {d.check}: {exc!r}") from exc
        types = frozenset(PIPELINE_EVENT_TYPES) if "*" in d.event_types else frozenset(d.event_types)
        _check_paths(d, types, path)
        rules.append(
            Rule(d.id, d.category, d.severity, d.weight, types, d.on_cancelled, d.message.zh, d.message.en, check)
        )
    return RuleSet(declared.version, file_digest(path), tuple(rules))


@cache
def default_rule_set() -> RuleSet:
    return load_rule_set()


def rule_set_in_force(rule_file: Path | None) -> RuleSet:
    """A deployment's own rule file (``HEALTHBUS_QUALITY_RULE_FILE``), or the shipped set."""
    return load_rule_set(rule_file) if rule_file else default_rule_set()


def locked_versions(lock: Path = LOCK_FILE) -> dict[str, str]:
    """version → SHA-256 of that version's rule file, as recorded."""
    out: dict[str, str] = {}
    for line in lock.read_text("utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            version, digest = line.split()
            out[version] = digest
    return out


def lock_current(path: Path = DEFAULT_RULE_FILE, lock: Path = LOCK_FILE) -> str:
    """Record the current file's digest under its version; refuses to change a recorded version's digest."""
    rule_set = load_rule_set(path)
    recorded = locked_versions(lock)
    if rule_set.version in recorded:
        if recorded[rule_set.version] != rule_set.digest:
            raise ValueError(f"version {rule_set.version} is already released with other rules: bump `version`")
        return rule_set.version
    with lock.open("a", encoding="utf-8") as f:
        f.write(f"{rule_set.version} {rule_set.digest}\n")
    return rule_set.version
