"""Rule sets: the versioned declarations in ``rulesets/*.yaml``, loaded, validated and compiled.

A rule set file has a ``version`` and a list of rules (id, category, event types, severity, weight,
check kind + params, zh/en message). ``versions.lock`` beside it records the SHA-256 of every version's
file, so a rule changed without a new version is caught (tests/test_quality_rules.py), and every verdict
and score can say which rules made it.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from avro_schemas.topics import PIPELINE_EVENT_TYPES
from streams.quality.checks import CHECK_PARAMS, CheckFn, load_check_kinds

RULESET_DIR = Path(__file__).parent / "rulesets"
DEFAULT_RULE_FILE = RULESET_DIR / "quality_rules.yaml"
LOCK_FILE = RULESET_DIR / "versions.lock"


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


def load_rule_set(path: Path = DEFAULT_RULE_FILE) -> RuleSet:
    """Parse and validate a rule file; raises ValueError naming the rule and the problem."""
    raw = yaml.safe_load(path.read_text("utf-8"))
    try:
        declared = RuleSetFile.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = error["loc"]
            where = "/".join(map(str, loc))
            if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
                rule = (raw.get("rules") or [{}])[loc[1]]
                where = f"rule {rule.get('id', '#' + str(loc[1]))}: {'/'.join(map(str, loc[2:]))}"
            problems.append(f"{where}: {error['msg']}")
        raise ValueError(f"{path}: " + "; ".join(problems)) from None
    seen: set[str] = set()
    kinds = load_check_kinds()
    rules: list[Rule] = []
    for d in declared.rules:
        if d.id in seen:
            raise ValueError(f"{path}: rule {d.id} declared twice")
        seen.add(d.id)
        unknown = sorted(set(d.params) - CHECK_PARAMS[d.check])
        if unknown:
            raise ValueError(
                f"{path}: rule {d.id}: {d.check} takes no params {unknown}; it reads {sorted(CHECK_PARAMS[d.check])}"
            )
        if isinstance(d.params.get("fields"), str):
            raise ValueError(f"{path}: rule {d.id}: params.fields must be a list of field paths")
        try:
            check = kinds[d.check](d.params)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: rule {d.id}: bad params for {d.check}: {exc!r}") from exc
        types = frozenset(PIPELINE_EVENT_TYPES) if "*" in d.event_types else frozenset(d.event_types)
        rules.append(
            Rule(d.id, d.category, d.severity, d.weight, types, d.on_cancelled, d.message.zh, d.message.en, check)
        )
    return RuleSet(declared.version, file_digest(path), tuple(rules))


@cache
def default_rule_set() -> RuleSet:
    return load_rule_set()


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
