"""The broker ACLs each kind of principal needs (``healthbus topics acls [--apply]``).

Least privilege per principal kind, from what each reads and writes:
- an adapter writes its raw events and its dead letters, nothing else (one SASL user per institution);
- each stage reads its inputs with its own consumer group and writes its outputs, its dead letters, and
  the internal topics Faust keeps under its application id;
- each sink reads its inputs and writes its dead letters;
- a county system reads the collaboration topics, deregistrations and early-warning alerts with consumer
  groups of its own, and writes nothing.
Operators (topic creation, dead-letter replay, EMPI actions) use a super user named in the broker's
``super.users``; no ACL is generated for them. Names carry the deployment's topic and group prefixes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from avro_schemas.pipeline import PIPELINE, STAGES
from avro_schemas.topics import (
    COLLAB_ROUTES,
    RECORD_DEREGISTERED,
    SURVEILLANCE_ALERTS,
    collab_topic_name,
    dead_letter_topic,
    expand,
)
from foundation.settings import Settings

PRODUCE = ("WRITE", "DESCRIBE")
CONSUME = ("READ", "DESCRIBE")
PRINCIPAL_KINDS = ("adapter", "stage", "sink", "county")


@dataclass(frozen=True)
class Grant:
    principal: str  # "User:<name>"
    resource: str  # "topic" or "group"
    name: str
    pattern: str  # "literal" or "prefixed"
    operation: str  # READ, WRITE, DESCRIBE, ALL

    def line(self) -> str:
        return f"{self.principal:<28} {self.operation:<9} {self.resource:<6} {self.pattern:<9} {self.name}"


def stage_outputs(settings: Settings) -> dict[str, list[str]]:
    """Stage, sink or monitor → the topics it writes (its dead letters included), from the pipeline
    declaration; adapters are granted per institution (``acl_plan``)."""
    return {
        s.name: [settings.topic_name(n) for n in expand(s.writes)]
        + ([settings.topic_name(dead_letter_topic(s.name).name)] if s.dead_letters else [])
        for s in PIPELINE
        if s.kind != "adapter" and s.deployed
    }


def county_topics(settings: Settings) -> list[str]:
    """What every county system may read. Each collab topic still holds every county's items; per-county
    topics are a later step (docs/security.md)."""
    return [
        settings.topic_name(t)
        for t in [collab_topic_name(r) for r in COLLAB_ROUTES] + [RECORD_DEREGISTERED, SURVEILLANCE_ALERTS]
    ]


def _topics(principal: str, topics: Iterable[str], operations: tuple[str, ...]) -> list[Grant]:
    return [Grant(principal, "topic", t, "literal", op) for t in topics for op in operations]


def acl_plan(
    settings: Settings, adapters: Iterable[str] = (), counties: Iterable[str] = (), stage_user_prefix: str = "hb-"
) -> list[Grant]:
    """Every grant: ``adapters`` and ``counties`` are SASL user names; stages and sinks are users
    ``<stage_user_prefix><stage>`` (hb-identify, hb-sink-postgres, …)."""
    from ops.status import stage_inputs

    grants: list[Grant] = []
    for user in adapters:
        principal = f"User:{user}"
        grants += [Grant(principal, "topic", settings.topic_name("raw."), "prefixed", op) for op in PRODUCE]
        grants += _topics(principal, [settings.topic_name(dead_letter_topic("adapter").name)], PRODUCE)
    inputs, outputs = stage_inputs(settings), stage_outputs(settings)
    for stage in outputs:
        principal, group = f"User:{stage_user_prefix}{stage}", settings.group_id(stage)
        grants += _topics(principal, inputs.get(stage, []), CONSUME)
        grants += _topics(principal, outputs[stage], PRODUCE)
        if STAGES[stage].consumer_group:
            grants.append(Grant(principal, "group", group, "literal", "READ"))
        if STAGES[stage].kind == "stream":  # a Faust app keeps internal topics named after its id
            grants.append(Grant(principal, "topic", f"{group}-", "prefixed", "ALL"))
    for user in counties:
        principal = f"User:{user}"
        grants += _topics(principal, county_topics(settings), CONSUME)
        grants.append(Grant(principal, "group", f"{settings.group_prefix}.county.{user}", "prefixed", "READ"))
    return grants


def _binding(grant: Grant) -> Any:
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

    return AclBinding(
        ResourceType[grant.resource.upper()],
        grant.name,
        ResourcePatternType[grant.pattern.upper()],
        grant.principal,
        "*",
        AclOperation[grant.operation],
        AclPermissionType.ALLOW,
    )


def apply_acls(kafka_config: dict[str, Any], grants: list[Grant], timeout: float = 30) -> int:
    """Create every grant (the broker keeps an existing one as it is); returns how many were sent."""
    from confluent_kafka.admin import AdminClient

    if not grants:
        return 0
    admin = AdminClient({**kafka_config, "log_level": 3})
    for future in admin.create_acls([_binding(g) for g in grants], request_timeout=timeout).values():
        future.result(timeout=timeout)
    return len(grants)


def upsert_scram_user(kafka_config: dict[str, Any], user: str, password: str, timeout: float = 30) -> None:
    """Create or re-key a SCRAM-SHA-512 user (as a super user); the broker keeps only the salted hash."""
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    admin = AdminClient({**kafka_config, "log_level": 3})
    upsert = UserScramCredentialUpsertion(
        user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password.encode()
    )
    for future in admin.alter_user_scram_credentials([upsert], request_timeout=timeout).values():
        future.result(timeout=timeout)
