"""All settings in one typed place: environment variables prefixed ``HEALTHBUS_`` or a ``.env`` file.

docs/operations.md lists them with their defaults. Each client's configuration is derived here, so a
Kafka or database setting is spelled once for confluent-kafka, aiokafka and Faust alike.
"""

from __future__ import annotations

import enum
import json
import ssl
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Profile(str, enum.Enum):
    LOCAL = "local"  # the local stack: one Apache Kafka node, chDB, short group timeouts
    PRODUCTION = "production"  # Apache Kafka, ClickHouse server, schema registry


# Development defaults: fine on the local stack, refused in production (``Settings._no_development_keys``).
DEVELOPMENT_PSEUDONYM_KEY = "local-development-key-change-me"
DEVELOPMENT_ADAPTER_MASTER_KEY = "local-development-adapter-master-key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HEALTHBUS_", env_file=".env", extra="ignore", use_attribute_docstrings=True
    )

    profile: Profile = Profile.LOCAL
    """local: the local stack (one Kafka node, chDB, short group timeouts); production: a Kafka cluster,
    ClickHouse server and schema registry."""
    state_dir: Path = Path(".healthbus")
    """Where the local stack keeps pid files, logs, chDB data and Faust state."""

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    """Comma-separated host:port list of brokers."""
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    """PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 when the protocol is SASL_*."""
    kafka_sasl_username: str | None = None
    """SASL user (one per adapter, so broker ACLs can bind it to its topics)."""
    kafka_sasl_password: SecretStr | None = None
    """SASL password."""
    kafka_ssl_cafile: Path | None = None
    """CA bundle that signed the brokers' certificates."""
    kafka_ssl_certfile: Path | None = None
    """Client certificate (mutual TLS)."""
    kafka_ssl_keyfile: Path | None = None
    """Client private key (mutual TLS)."""
    kafka_session_timeout_ms: int | None = None
    """None: 6 s on the local profile (a killed worker's partitions move to a restarted one within seconds),
    45 s in production (Kafka's default: a long GC pause or network blip does not cost a rebalance)."""
    topic_prefix: str = ""
    """Prepended to every topic name (tests, or several environments on one cluster)."""
    group_prefix: str = "healthbus"
    """Consumer groups are '<group_prefix>.<stage>'."""

    schema_registry_url: str | None = None
    """Confluent-compatible registry: set, events use the Confluent wire format; unset, Avro single-object."""
    schema_registry_basic_auth: SecretStr | None = None
    """'user:password' for the registry, when it wants it."""

    # Stores
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432/healthbus"
    """libpq URL of the master index / event store database (created by `stack up` if missing)."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis for caches (nothing in it is the only copy)."""
    empi_model_path: Path | None = None
    """The identify stage's match model (JSON from `healthbus empi train`); unset: the shipped model."""
    empi_cache_ttl_seconds: int = 86_400
    """How long Redis keeps a record → person entry (a move leaves a versioned tombstone at once, and is logged
    in PostgreSQL for workers to apply should Redis be down)."""
    quality_rule_file: Path | None = None
    """The data-quality rule set (YAML, streams/quality/rulesets/); unset: the shipped rules."""
    quality_monitor_cutoff: str = "10:00"
    """Upload monitoring: a feed with nothing received by this local time (Asia/Shanghai) raises NO_UPLOAD."""
    quality_monitor_min_share: float = 0.5
    """Upload monitoring: a complete day below this share of the feed's own 4-week median raises LOW_VOLUME."""
    surveillance_detection_plan: Path | None = None
    """Early warning: the detection plan (YAML: methods and parameters per syndrome, county, group); unset: the
    shipped streams/surveillance/detection_plan.yaml."""
    surveillance_close_day_hours: float = 10.0
    """Early warning: a day is judged as closed this many hours into the next day (Asia/Shanghai), once the
    institutions' uploads for it are in (the upload monitor's cutoff is 10:00)."""
    surveillance_partial_day_hours: float = 12.0
    """Early warning: today's count so far is judged once this many hours of the day (Asia/Shanghai) have passed;
    it may open an alert, never close one. 24 or more: closed days only."""
    metrics_host: str = "127.0.0.1"
    """Address every process's /metrics listens on. Keep 127.0.0.1 on a shared host; compose sets 0.0.0.0 inside
    its private network so that Prometheus can scrape the containers."""
    county_role_prefix: str = "healthbus_county_"
    """Routing work queues: each county reads its own residents' items through the NOLOGIN role '<prefix><county code>'."""
    reminder_drug_class_days: int = 7
    """Clinical reminders: the same drug class (ATC level 3) prescribed again within this many days of a
    prescription that states no days supplied (a stated supply is the window itself)."""
    reminder_drug_supply_cap_days: int = 90
    """Clinical reminders: a prescription's stated days supplied counts for at most this many days."""
    reminder_lab_item_days: int = 7
    """Clinical reminders: the same lab item repeated at another institution within this many days."""
    reminder_exam_item_days: int = 30
    """Clinical reminders: the same exam item repeated at another institution within this many days."""
    clickhouse_url: str | None = None
    """http(s)://user:password@host:8123/database of a ClickHouse server; unset: the chDB directory chdb_path."""
    chdb_path: Path | None = None
    """chDB data directory (ClickHouse's engine in-process); default <state_dir>/chdb."""
    chdb_server_port: int = 8123
    """`stack up` serves chdb_path over ClickHouse's HTTP interface on 127.0.0.1 at this port (any free one when
    it is taken or 0), so that every process can use it at once; clients find the port beside the directory."""
    clickhouse_database: str = "healthbus"
    """ClickHouse database for the analytics tables."""

    # Stages
    sink_batch_size: int = 2000
    """Most events a sink writes in one batch."""
    sink_batch_seconds: float = 0.5
    """Longest a sink waits to fill a batch before writing what it has."""
    pseudonym_key: SecretStr = SecretStr(DEVELOPMENT_PSEUDONYM_KEY)
    """HMAC-SHA256 key that pseudonymises persons in analytics. Set a secret one in production."""

    adapter_master_key: SecretStr = SecretStr(DEVELOPMENT_ADAPTER_MASTER_KEY)
    """Platform secret from which each institution's adapter signing key is derived; the identify stage
    checks signatures with it. Set a secret one in production."""
    adapter_key: SecretStr | None = None
    """This adapter's own signing key (hex, from `healthbus adapter key --org`), for an adapter run by an
    institution; unset: derived from the master key (platform-operated adapters, local stack)."""
    adapter_key_generations: dict[str, int] = {}
    """Institutions whose adapter key was revoked: GB 32100 code → key generation (2, 3, …), as JSON. The
    identify stage accepts only that generation's signature; `healthbus adapter key --org` prints the new key."""
    require_signed_sources: bool = True
    """The identify stage dead-letters raw events without a valid signature of the institution they claim."""

    @model_validator(mode="after")
    def _no_development_keys(self) -> Settings:
        """In production every process refuses to start on a key anyone can read in this repository."""
        if self.profile is Profile.PRODUCTION:
            for name, default in (
                ("pseudonym_key", DEVELOPMENT_PSEUDONYM_KEY),
                ("adapter_master_key", DEVELOPMENT_ADAPTER_MASTER_KEY),
            ):
                if getattr(self, name).get_secret_value() in (default, ""):
                    raise ValueError(
                        f"HEALTHBUS_{name.upper()} is the development default (or empty) while "
                        "HEALTHBUS_PROFILE=production: set a secret one"
                    )
        return self

    # -- derived ------------------------------------------------------------------------------------
    @property
    def session_timeout_ms(self) -> int:
        if self.kafka_session_timeout_ms is not None:
            return self.kafka_session_timeout_ms
        return 6000 if self.profile is Profile.LOCAL else 45000

    @property
    def resolved_chdb_path(self) -> Path:
        return self.chdb_path or self.state_dir / "chdb"

    def signing_key_for(self, org_code: str) -> bytes:
        """The key an adapter of ``org_code`` signs with."""
        from foundation.source_authentication import adapter_key

        if self.adapter_key is not None:
            return bytes.fromhex(self.adapter_key.get_secret_value())
        generation = self.adapter_key_generations.get(org_code, 1)
        return adapter_key(self.adapter_master_key.get_secret_value().encode(), org_code, generation)

    def to_env(self) -> dict[str, str]:
        """These settings as HEALTHBUS_* variables, so a child process (a worker) runs with exactly them."""
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, dict):
                value = json.dumps(value)
            env[f"HEALTHBUS_{name.upper()}"] = str(value)
        return env

    def topic_name(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def group_id(self, stage: str) -> str:
        return f"{self.group_prefix}.{stage}"

    def confluent_config(self) -> dict[str, Any]:
        """librdkafka settings shared by producers, consumers and the admin client."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
            conf["sasl.username"] = self.kafka_sasl_username or ""
            conf["sasl.password"] = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else ""
        for key, value in (
            ("ssl.ca.location", self.kafka_ssl_cafile),
            ("ssl.certificate.location", self.kafka_ssl_certfile),
            ("ssl.key.location", self.kafka_ssl_keyfile),
        ):
            if value:
                conf[key] = str(value)
        return conf

    def aiokafka_config(self) -> dict[str, Any]:
        """The same connection for aiokafka (and so for Faust's aiokafka driver)."""
        conf: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            conf["sasl_mechanism"] = self.kafka_sasl_mechanism
            conf["sasl_plain_username"] = self.kafka_sasl_username
            conf["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            conf["ssl_context"] = self.ssl_context()
        return conf

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None)
        if self.kafka_ssl_certfile:
            context.load_cert_chain(str(self.kafka_ssl_certfile), str(self.kafka_ssl_keyfile or "") or None)
        return context

    def schema_registry_config(self) -> dict[str, Any] | None:
        if not self.schema_registry_url:
            return None
        conf: dict[str, Any] = {"url": self.schema_registry_url}
        if self.schema_registry_basic_auth:
            conf["basic.auth.user.info"] = self.schema_registry_basic_auth.get_secret_value()
        return conf


@cache
def get_settings() -> Settings:
    return Settings()
