"""Docs that must stay true: every setting is documented, every catalogue topic layer is explained."""

from __future__ import annotations

from pathlib import Path

from avro_schemas.topics import CATALOGUE
from foundation.settings import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "operations.md").read_text("utf-8")
    missing = [name for name in Settings.model_fields if f"HEALTHBUS_{name.upper()}" not in text]
    assert missing == []


def test_every_topic_layer_is_documented() -> None:
    text = (DOCS / "topics.md").read_text("utf-8")
    undocumented = [layer for layer in {spec.layer for spec in CATALOGUE.values()} if f"| `{layer}" not in text]
    assert undocumented == []
