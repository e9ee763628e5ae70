"""How every ``healthbus bench …`` reports: a table for people, then (``--json``) one JSON object."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BenchRow:
    label: str  # e.g. "faust passthrough events/s"
    value: float
    note: str = ""

    @property
    def key(self) -> str:
        return re.sub(r"[^a-z0-9]+", "_", self.label.lower().replace("/", "_per_")).strip("_")


def print_bench(title: str, rows: list[BenchRow], as_json: bool) -> None:
    width = max(len(r.label) for r in rows)
    print(title)
    print(f"{'measure'.ljust(width)}  {'value':>14}  note")
    for r in rows:
        shown = f"{r.value:>14,.4f}" if abs(r.value) < 10 else f"{r.value:>14,.1f}"
        print(f"{r.label.ljust(width)}  {shown}  {r.note}")
    if as_json:
        print(json.dumps({r.key: round(r.value, 4) for r in rows}))


def best_rate(fn: Callable[[], object], n: int, runs: int = 3) -> float:
    """n items over the fastest of ``runs`` calls of ``fn`` (the least disturbed by a busy machine)."""
    best = 0.0
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = max(best, n / (time.perf_counter() - start))
    return best


def best_seconds(fn: Callable[[], object], runs: int = 3) -> float:
    """The fastest of ``runs`` calls of ``fn``, in seconds."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
