"""`healthbus bench empi`: the command's table and JSON, and the accuracy targets it reports (issue #4)."""

from __future__ import annotations

import json

import pytest

from ops.bench.empi import identifiers_only
from ops.bench.febrl import load_febrl
from ops.bench.linkage_scores import pairwise_scores
from streams.identity.memory_index import link_records
from tests.conftest import healthbus


def test_bench_empi_prints_a_table_then_one_json_object() -> None:
    done = healthbus("bench", "empi", "--persons", "600", "--batch-records", "2000", "--no-febrl", "--json")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert any("chinese healthbus (shipped model) precision" in line for line in lines)
    for key in (
        "chinese_healthbus_shipped_model_precision",
        "chinese_identifiers_only_recall",
        "batch_link_seconds",
        "identifiers_only_linking_seconds",
    ):
        assert key in figures
    # The baseline and ours are measured on the same records: ours must find what identifiers alone can't.
    assert figures["chinese_healthbus_shipped_model_recall"] > figures["chinese_identifiers_only_recall"]


@pytest.mark.parametrize("name", ["FEBRL3", "FEBRL4"])
def test_febrl_f1_meets_the_target(name: str) -> None:
    bench = load_febrl(name)
    ours = pairwise_scores(link_records(bench.records).person_of, bench.truth)
    assert ours.f1 >= 0.995, ours
    keys_only = pairwise_scores(identifiers_only(bench.records), bench.truth)
    assert keys_only.f1 < ours.f1  # the score is the matcher's, not the card numbers'
