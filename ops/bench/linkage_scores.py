"""Pairwise precision / recall / F1 of a record linkage, the measure FEBRL-style benchmarks report.

A "pair" is an unordered pair of distinct records placed in the same cluster. A clustering is scored with
contingency counts (records per predicted-cluster x true-entity cell, summed as n-choose-2) rather than by
listing pairs: one 10,000-record cluster alone holds ~50 million pairs, while the counts stay linear in the
number of records. Pair-output classifiers (the recordlinkage toolkit's) are scored on pair sets directly.

Conventions for the degenerate cases: with no predicted pairs precision is 1.0 (nothing claimed, nothing
wrong); with no true pairs recall is 1.0 (nothing to find); F1 is 0.0 when precision + recall is 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class PairwiseScores:
    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float
    recall: float
    f1: float

    @classmethod
    def from_counts(cls, true_positives: int, false_positives: int, false_negatives: int) -> PairwiseScores:
        predicted = true_positives + false_positives
        actual = true_positives + false_negatives
        precision = true_positives / predicted if predicted else 1.0
        recall = true_positives / actual if actual else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls(true_positives, false_positives, false_negatives, precision, recall, f1)


def _pairs_within(sizes: Iterable[int]) -> int:
    return sum(n * (n - 1) // 2 for n in sizes)


def pairwise_scores(predicted: Mapping[str, str], truth: Mapping[str, str]) -> PairwiseScores:
    """Score a clustering (record_id -> predicted cluster id) against truth (record_id -> entity id).

    Both must cover the same records: a record the matcher left out is a caller bug, not a singleton to guess
    at, so a mismatch raises ValueError (give unmatched records their own cluster id instead). Singletons add
    no pairs on either side, so they count only through the pairs they are *not* in.
    """
    if predicted.keys() != truth.keys():
        only_predicted = len(predicted.keys() - truth.keys())
        only_truth = len(truth.keys() - predicted.keys())
        raise ValueError(
            f"predicted and truth cover different records ({only_predicted} only in predicted, "
            f"{only_truth} only in truth)"
        )
    # Records sharing both a predicted cluster and a true entity are exactly the pairs both sides agree on.
    true_positives = _pairs_within(Counter((predicted[r], truth[r]) for r in truth).values())
    predicted_pairs = _pairs_within(Counter(predicted.values()).values())
    true_pairs = _pairs_within(Counter(truth.values()).values())
    return PairwiseScores.from_counts(true_positives, predicted_pairs - true_positives, true_pairs - true_positives)


def _normalised(pairs: Iterable[tuple[str, str]], what: str) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for a, b in pairs:
        if a == b:
            raise ValueError(f"{what} holds a record paired with itself: {a!r}")
        out.add((a, b) if a < b else (b, a))  # (x, y) and (y, x) are one unordered pair
    return out


def pair_set_scores(predicted_pairs: set[tuple[str, str]], true_pairs: set[tuple[str, str]]) -> PairwiseScores:
    """Score a set of predicted record pairs against the true pairs; pair order does not matter.

    Unlike pairwise_scores this applies no transitive closure: a classifier that links a-b and b-c but not a-c
    is scored on exactly the pairs it output.
    """
    predicted = _normalised(predicted_pairs, "predicted_pairs")
    actual = _normalised(true_pairs, "true_pairs")
    true_positives = len(predicted & actual)
    return PairwiseScores.from_counts(true_positives, len(predicted) - true_positives, len(actual) - true_positives)
