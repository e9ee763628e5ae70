"""A child process started with Settings.to_env() sees exactly the parent's settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from foundation.settings import Profile, Settings


def test_to_env_round_trips_every_setting(monkeypatch) -> None:
    original = Settings(
        profile=Profile.PRODUCTION,
        kafka_bootstrap="k1:9092,k2:9092",
        topic_prefix="t1-",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_password=SecretStr("s3cret"),
        chdb_path=Path("/tmp/x"),
        sink_batch_seconds=0.25,
        require_signed_sources=False,
        adapter_master_key=SecretStr("master"),
        pseudonym_key=SecretStr("pseudonyms"),
    )
    for name, value in original.to_env().items():
        monkeypatch.setenv(name, value)
    child = Settings(_env_file=None)
    for name in Settings.model_fields:
        mine, theirs = getattr(original, name), getattr(child, name)
        if isinstance(mine, SecretStr):
            mine, theirs = mine.get_secret_value(), theirs.get_secret_value()
        assert mine == theirs, name


@pytest.mark.parametrize("setting", ["pseudonym_key", "adapter_master_key"])
def test_production_refuses_a_development_key_and_names_it(setting: str) -> None:
    secrets = {"pseudonym_key": SecretStr("p-secret"), "adapter_master_key": SecretStr("m-secret")}
    Settings(_env_file=None, profile=Profile.PRODUCTION, **secrets)  # both secret: starts
    del secrets[setting]
    with pytest.raises(ValidationError, match=f"HEALTHBUS_{setting.upper()} is the development default"):
        Settings(_env_file=None, profile=Profile.PRODUCTION, **secrets)
    Settings(_env_file=None, **secrets)  # the local profile keeps its defaults
