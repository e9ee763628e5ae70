"""`healthbus bench syndromes` runs and reports its figures (no rate is asserted: benchmarks are commands)."""

from __future__ import annotations

import json

from tests.conftest import healthbus


def test_bench_syndromes_prints_a_table_and_its_figures() -> None:
    result = healthbus("bench", "syndromes", "--complaints", "1500", "--json", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert "syndrome classification complaints/s" in result.stdout
    for key in (
        "baseline_normalise_one_term_complaints_per_s",
        "syndrome_classification_complaints_per_s",
        "batch_cli_row_path_complaints_per_s",
        "baseline_rolling_means_seconds",
        "detection_ears_c1_seconds",
        "detection_ears_c2_seconds",
        "detection_ears_c3_seconds",
        "detection_ewma_seconds",
    ):
        assert figures[key] > 0, key
    assert 0 < figures["visits_with_a_syndrome_share"] < 1
