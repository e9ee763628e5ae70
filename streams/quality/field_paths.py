"""Field paths into a decoded event: ``envelope.patient.sex``, ``diagnoses[*].code``.

A rule names the fields it reads by path; a violation names the concrete field that failed
(``diagnoses[1].code``), which is what a hospital's integration engineer needs to find the column.
Paths are compiled once per rule into a getter (no parsing per event).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FieldGetter = Callable[[dict[str, Any]], list[tuple[str, Any]]]


def compile_path(path: str) -> FieldGetter:
    """A getter returning ``[(concrete path, value)]``; a ``[*]`` step yields one pair per array element.
    A missing step yields the value None at that path (so "required" can report it)."""
    steps = path.split(".")
    if "[*]" not in path and len(steps) == 1:
        (only,) = steps
        return lambda event: [(path, event.get(only))]
    if "[*]" not in path and len(steps) == 3:
        a, b, c = steps

        def three(event: dict[str, Any]) -> list[tuple[str, Any]]:
            node = event.get(a)
            node = node.get(b) if isinstance(node, dict) else None
            return [(path, node.get(c) if isinstance(node, dict) else None)]

        return three
    if len(steps) == 2 and steps[0].endswith("[*]") and "[*]" not in steps[1]:
        array, leaf = steps[0][:-3], steps[1]  # the common case: diagnoses[*].code

        def elements(event: dict[str, Any]) -> list[tuple[str, Any]]:
            return [(f"{array}[{k}].{leaf}", item.get(leaf)) for k, item in enumerate(event.get(array) or ())]

        return elements
    if "[*]" not in path:

        def simple(event: dict[str, Any]) -> list[tuple[str, Any]]:
            node: Any = event
            for step in steps:
                if not isinstance(node, dict):
                    return [(path, None)]
                node = node.get(step)
            return [(path, node)]

        return simple

    def walk(node: Any, i: int, prefix: str, out: list[tuple[str, Any]]) -> None:
        if i == len(steps):
            out.append((prefix, node))
            return
        step = steps[i]
        name = step[:-3] if step.endswith("[*]") else step
        here = f"{prefix}.{name}" if prefix else name
        value = node.get(name) if isinstance(node, dict) else None
        if step.endswith("[*]"):
            for k, item in enumerate(value or ()):
                walk(item, i + 1, f"{here}[{k}]", out)
        else:
            walk(value, i + 1, here, out)

    def nested(event: dict[str, Any]) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        walk(event, 0, "", out)
        return out

    return nested


def is_blank(value: Any) -> bool:
    """Missing for completeness: None, an empty or all-space string, an empty list."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, dict)):
        return not value
    return False
