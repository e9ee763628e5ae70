"""Field paths into a decoded event: ``envelope.patient.sex``, ``diagnoses[*].code``.

A rule names the fields it reads by path; a violation names the concrete field that failed
(``diagnoses[1].code``), which is what a hospital's integration engineer needs to find the column.
Paths are compiled once per rule into a getter (no parsing per event).

A blank string (empty, or nothing but spaces of any kind, control characters and invisible format
characters: a CHAR column left empty, a full-width 　, a zero-width space) is read as missing: getters
yield None for it, so every check sees a blank element exactly as an absent one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from foundation.standards.blank import BLANK_CHARACTERS

FieldGetter = Callable[[dict[str, Any]], list[tuple[str, Any]]]


def _read(value: Any) -> Any:
    """A value as the checks see it: a blank string is None (missing)."""
    return None if type(value) is str and not value.strip(BLANK_CHARACTERS) else value


def compile_path(path: str) -> FieldGetter:
    """A getter returning ``[(concrete path, value)]``; a ``[*]`` step yields one pair per array element.
    A missing step yields the value None at that path (so "required" can report it)."""
    steps = path.split(".")
    if "[*]" not in path and len(steps) == 1:
        (only,) = steps
        return lambda event: [(path, _read(event.get(only)))]
    if "[*]" not in path and len(steps) == 3:
        a, b, c = steps

        def three(event: dict[str, Any]) -> list[tuple[str, Any]]:
            node = event.get(a)
            node = node.get(b) if isinstance(node, dict) else None
            return [(path, _read(node.get(c)) if isinstance(node, dict) else None)]

        return three
    if len(steps) == 2 and steps[0].endswith("[*]") and "[*]" not in steps[1]:
        array, leaf = steps[0][:-3], steps[1]  # the common case: diagnoses[*].code

        def elements(event: dict[str, Any]) -> list[tuple[str, Any]]:
            return [(f"{array}[{k}].{leaf}", _read(item.get(leaf))) for k, item in enumerate(event.get(array) or ())]

        return elements
    if "[*]" not in path:

        def simple(event: dict[str, Any]) -> list[tuple[str, Any]]:
            node: Any = event
            for step in steps:
                if not isinstance(node, dict):
                    return [(path, None)]
                node = node.get(step)
            return [(path, _read(node))]

        return simple

    def walk(node: Any, i: int, prefix: str, out: list[tuple[str, Any]]) -> None:
        if i == len(steps):
            out.append((prefix, _read(node)))
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


# -- paths against the Avro schemas -----------------------------------------------------------------------
_NAMED = ("record", "error", "enum", "fixed")


def _named_types(node: Any, namespace: str | None, names: dict[str, Any]) -> None:
    """Every named type defined anywhere in a schema, by full and by short name."""
    if isinstance(node, list):
        for item in node:
            _named_types(item, namespace, names)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") in _NAMED and "name" in node:
        name = node["name"]
        full = name if "." in name else f"{node.get('namespace', namespace)}.{name}"
        names[full] = names[name.rpartition(".")[2]] = node
        namespace = full.rpartition(".")[0] or None
    for field_ in node.get("fields", ()):
        _named_types(field_["type"], namespace, names)
    for key in ("type", "items", "values"):
        if isinstance(node.get(key), (dict, list)):
            _named_types(node[key], namespace, names)


def _branches(node: Any, names: dict[str, Any]) -> list[Any]:
    """The concrete types a value of schema ``node`` may have, null left out, names resolved."""
    if isinstance(node, list):
        return [t for branch in node for t in _branches(branch, names)]
    if isinstance(node, str):
        if node == "null":
            return []
        return _branches(names[node], names) if node in names else [node]
    if isinstance(node.get("type"), (dict, list)) or (node.get("type") in names and "fields" not in node):
        return _branches(node["type"], names)
    return [node]


def _kind(node: Any) -> str:
    return node if isinstance(node, str) else str(node.get("logicalType") or node["type"])


def schema_path_problem(path: str, schema: dict[str, Any]) -> str | None:
    """Why ``path`` does not name a field of an event with this (standalone) Avro schema, or None when it
    does: every step a field of the record before it, ``[*]`` exactly on the arrays."""
    names: dict[str, Any] = {}
    _named_types(schema, None, names)
    current = _branches(schema, names)
    walked = ""
    for step in path.split("."):
        name, array = (step[:-3], True) if step.endswith("[*]") else (step, False)
        records = [t for t in current if isinstance(t, dict) and t.get("type") in ("record", "error")]
        if not records:
            kinds = sorted({_kind(t) for t in current})
            if any(k == "array" for k in kinds):
                return f"{walked} is an array: write {walked}[*]"
            return f"{walked} is a {'/'.join(kinds)}, it has no field {name!r}"
        fields = [f for r in records for f in r["fields"] if f["name"] == name]
        here = f"{walked}.{step}" if walked else step
        if not fields:
            return f"no field {name!r}" + (f" in {walked}" if walked else "")
        current = [t for f in fields for t in _branches(f["type"], names)]
        if array:
            arrays = [t for t in current if isinstance(t, dict) and t.get("type") == "array"]
            if not arrays:
                return f"{here[:-3]} is not an array"
            current = [t for a in arrays for t in _branches(a["items"], names)]
        walked = here
    return None
