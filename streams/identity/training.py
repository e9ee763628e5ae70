"""Estimating the match model from unlabelled records (`healthbus empi train`, and `empi link` without a model).

u comes from random record pairs; EM over the blocked candidate pairs then estimates m and the prior.
Pairs the data settle (a shared deterministic identifier, or a veto) keep that label during EM.
Pairs are sampled (seeded) so training time stays bounded whatever the input size.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from streams.identity.blocking import MAX_RECORDS_PER_KEY, blocking_keys
from streams.identity.comparison import ComparisonVector, compare, veto
from streams.identity.features import MatchFeatures, extract_features
from streams.identity.fellegi_sunter import LabelledVector, MatchModel, estimate_u, train_em
from streams.identity.record import SourceRecord

RANDOM_PAIRS = 100_000
CANDIDATE_PAIRS = 300_000


# The comparisons each kind of blocking key agrees on by construction (indices into COMPARISONS).
_BLOCKED_COMPARISONS = {
    "n": frozenset({0, 1}),
    "d": frozenset({1, 2}),
    "p": frozenset({3}),
    "i": frozenset({1, 5}),
    "c": frozenset({6}),
    "cs": frozenset({6}),
    "a": frozenset({4}),
}


def candidate_pairs(
    features: Sequence[MatchFeatures], limit: int, rng: random.Random
) -> dict[str, tuple[list[tuple[int, int]], int]]:
    """Blocked pairs per kind of blocking key (a pair found by two kinds is in both), each sampled to ``limit``."""
    blocks: dict[str, list[int]] = defaultdict(list)
    for index, f in enumerate(features):
        for key in blocking_keys(f):
            members = blocks[key]
            if len(members) < MAX_RECORDS_PER_KEY:
                members.append(index)
    pairs: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for key, members in blocks.items():
        kind = pairs[key.split(":", 1)[0]]
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                kind.add((a, b))
    return {
        kind: (sorted(found) if len(found) <= limit else rng.sample(sorted(found), limit), len(found))
        for kind, found in pairs.items()
    }


def _labelled(a: MatchFeatures, b: MatchFeatures) -> LabelledVector:
    """The pair's comparison vector, and its label where the data settle it."""
    if set(a.identifier_keys()) & set(b.identifier_keys()):
        return compare(a, b), True
    if veto(a, b):
        return compare(a, b), False
    return compare(a, b), None


def train_model(
    features: Sequence[MatchFeatures],
    seed: int = 20261127,
    random_pairs: int = RANDOM_PAIRS,
    max_candidate_pairs: int = CANDIDATE_PAIRS,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> MatchModel:
    """``progress(done, 3)``: random pairs compared, candidate pairs compared, EM converged."""
    if len(features) < 2:
        raise ValueError("training needs at least two records")
    rng = random.Random(seed)
    n = len(features)
    random_vectors: Counter[ComparisonVector] = Counter()
    for _ in range(random_pairs):
        a, b = rng.randrange(n), rng.randrange(n)
        if a != b:
            random_vectors[compare(features[a], features[b])] += 1
    progress(1, 3)
    per_kind = candidate_pairs(features, max_candidate_pairs // len(_BLOCKED_COMPARISONS), rng)
    sessions = {
        _BLOCKED_COMPARISONS[kind]: (Counter(_labelled(features[a], features[b]) for a, b in pairs), found)
        for kind, (pairs, found) in per_kind.items()
    }
    if not any(found for _, found in sessions.values()):
        raise ValueError("no two records share a blocking key: nothing to learn from")
    progress(2, 3)
    model = train_em(sessions, estimate_u(random_vectors), record_count=n)
    progress(3, 3)
    model.notes = {"records": str(n), "random_pairs": str(sum(random_vectors.values())), "seed": str(seed)}
    return model


TRAIN_ON_INPUT_FROM = 2_000  # records; fewer are too few for EM, and the shipped model is used instead


def model_for(records: list[SourceRecord], model_path: Path | None = None) -> tuple[MatchModel, str]:
    """The model a batch link uses, and where it came from: the one given; else EM on the records
    themselves when there are enough of them; else the shipped model."""
    if model_path is not None:
        return MatchModel.load(model_path), str(model_path)
    if len(records) >= TRAIN_ON_INPUT_FROM:
        return train_model([extract_features(r) for r in records]), "EM on the input"
    return MatchModel.load(), "shipped model"
