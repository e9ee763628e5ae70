"""The pipeline declaration drawn: rows for ``healthbus pipeline show`` and the Mermaid picture that
docs/architecture.md carries (tests/test_pipeline.py checks that the document holds today's picture)."""

from __future__ import annotations

import re
from typing import Any

from avro_schemas.pipeline import PIPELINE, Stage

SHAPES = {"adapter": ("[/", "/]"), "stream": ("[", "]"), "sink": ("[(", ")]"), "monitor": ("{{", "}}")}


def declaration_rows() -> list[dict[str, Any]]:
    return [
        {
            "stage": s.name,
            "kind": s.kind,
            "reads": list(s.reads),
            "writes": list(s.writes) + ([f"dlq.{s.name}"] if s.dead_letters else []),
            "command": list(s.command),
            "entry": s.entry,
            "metrics_port": s.metrics_port,
            "replicas": s.replicas,
            "stores": list(s.stores),
            "deployed": s.deployed,
            "doc": s.doc,
        }
        for s in PIPELINE
    ]


def _node(name: str) -> str:
    return re.sub(r"\W", "_", name)


def mermaid() -> str:
    """A left-to-right flowchart: stages (by kind's shape) and the topics between them; dead letters and
    stages that are not deployed (bench subjects) are left out of the picture."""
    stages: list[Stage] = [s for s in PIPELINE if s.deployed]
    lines = ["flowchart LR"]
    topics: list[str] = []
    for s in stages:
        for t in (*s.reads, *s.writes):
            if t not in topics:
                topics.append(t)
    for t in topics:
        lines.append(f'    t_{_node(t)}(["{t}"])')
    for s in stages:
        left, right = SHAPES[s.kind]
        store = f"<br/><small>{', '.join(s.stores)}</small>" if s.stores else ""
        lines.append(f'    s_{_node(s.name)}{left}"{s.name}{store}"{right}')
    for s in stages:
        for t in s.reads:
            lines.append(f"    t_{_node(t)} --> s_{_node(s.name)}")
        for t in s.writes:
            lines.append(f"    s_{_node(s.name)} --> t_{_node(t)}")
    return "\n".join(lines) + "\n"
