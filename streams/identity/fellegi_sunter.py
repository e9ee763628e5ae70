"""The Fellegi-Sunter match model: m/u probabilities per comparison level, estimated by EM.

A pair's match weight is log2 of the prior odds plus, per comparison, log2(m/u) of its level; NULL levels
add nothing. m = P(level | same person), u = P(level | different persons). As in Splink, u comes from
random record pairs (almost all non-matches) and EM over the blocked candidate pairs estimates m and the
prior (the share of matches among candidates). EM runs over the distinct comparison vectors with
their counts, so a million candidate pairs cost a few hundred vector updates per iteration.

The model is data: `to_json`/`from_json` carry it from `healthbus empi train` to the stream stage, and a
link stores its per-comparison weights so every probabilistic link can be explained.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from streams.identity.comparison import COMPARISONS, NULL, ComparisonVector

SHIPPED_MODEL = Path(__file__).with_name("default_model.json")  # `healthbus empi train --synthetic 20000`
_PSEUDO_COUNT = 0.5  # keeps a level never seen in one class from getting an infinite weight


def _initial_m(levels: int) -> list[float]:
    # Matches mostly agree at the top level: 0.7 at the top, the rest halving downwards.
    raw = [0.7 * 0.3 ** (levels - 1 - level) for level in range(levels)]
    total = sum(raw)
    return [value / total for value in raw]


@dataclass
class MatchModel:
    prior: float  # P(match) among candidate pairs
    m: list[list[float]]
    u: list[list[float]]
    link_weight: float = 6.0  # bits: posterior odds 64:1; chosen on `healthbus bench empi` (docs/identity.md)
    review_weight: float = 0.0  # bits: even odds; between the two, a "possible match" for a person to decide
    em_iterations: int = 0
    trained_on_pairs: int = 0
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._weights = [
            [math.log2(m / u) for m, u in zip(ms, us, strict=True)] for ms, us in zip(self.m, self.u, strict=True)
        ]
        self._prior_weight = math.log2(self.prior / (1 - self.prior))

    def level_weights(self, vector: ComparisonVector) -> list[float]:
        """Each comparison's contribution in bits (0 for NULL)."""
        return [0.0 if level == NULL else self._weights[k][level] for k, level in enumerate(vector)]

    def match_weight(self, vector: ComparisonVector) -> float:
        weights = self._weights
        total = self._prior_weight
        for k, level in enumerate(vector):
            if level != NULL:
                total += weights[k][level]
        return total

    @staticmethod
    def probability(weight: float) -> float:
        return 1.0 / (1.0 + 2.0**-weight)

    def explain(self, vector: ComparisonVector) -> dict[str, object]:
        """The stored explanation of a probabilistic link: level label and weight per comparison."""
        detail: dict[str, object] = {}
        for comparison, level, weight in zip(COMPARISONS, vector, self.level_weights(vector), strict=True):
            detail[comparison.name] = (
                None if level == NULL else {"level": comparison.levels[level], "weight": round(weight, 2)}
            )
        return detail

    def to_json(self) -> str:
        return json.dumps(
            {
                "comparisons": {c.name: list(c.levels) for c in COMPARISONS},
                "prior": self.prior,
                "m": self.m,
                "u": self.u,
                "link_weight": self.link_weight,
                "review_weight": self.review_weight,
                "em_iterations": self.em_iterations,
                "trained_on_pairs": self.trained_on_pairs,
                "notes": self.notes,
            },
            ensure_ascii=False,
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> MatchModel:
        data = json.loads(text)
        expected = [(c.name, list(c.levels)) for c in COMPARISONS]
        if list(data["comparisons"].items()) != expected:  # m and u rows are read by position
            raise ValueError("model was trained on other comparisons; retrain with `healthbus empi train`")
        return cls(
            prior=data["prior"],
            m=data["m"],
            u=data["u"],
            link_weight=data["link_weight"],
            review_weight=data["review_weight"],
            em_iterations=data["em_iterations"],
            trained_on_pairs=data["trained_on_pairs"],
            notes=data.get("notes", {}),
        )

    @classmethod
    def load(cls, path: Path | None = None) -> MatchModel:
        """A trained model; without a path, the shipped one."""
        return cls.from_json((path or SHIPPED_MODEL).read_text(encoding="utf-8"))


def _level_frequencies(vectors: Mapping[ComparisonVector, float]) -> list[list[float]]:
    result = []
    for k, comparison in enumerate(COMPARISONS):
        counts = [_PSEUDO_COUNT] * len(comparison.levels)
        for vector, n in vectors.items():
            if vector[k] != NULL:
                counts[vector[k]] += n
        total = sum(counts)
        result.append([c / total for c in counts])
    return result


def estimate_u(random_pair_vectors: Counter[ComparisonVector]) -> list[list[float]]:
    """u from random pairs: nearly all are different persons."""
    return _level_frequencies(random_pair_vectors)


def _posterior(vector: ComparisonVector, prior: float, m: list[list[float]], u: list[list[float]]) -> float:
    p_m, p_u = prior, 1.0 - prior
    for k, level in enumerate(vector):
        if level != NULL:
            p_m *= m[k][level]
            p_u *= u[k][level]
    return p_m / (p_m + p_u)


# A pair's label when the data settle it: the same deterministic identifier (a match), a veto (not one).
LabelledVector = tuple[ComparisonVector, bool | None]


def em_session(
    vectors: Counter[LabelledVector],
    u: list[list[float]],
    prior_start: float = 0.3,
    max_iterations: int = 100,
    tolerance: float = 1e-6,
) -> tuple[list[list[float]], float, int]:
    """EM for m and the prior with u fixed; returns (m, prior, iterations).

    Labelled pairs keep their label instead of a posterior: they anchor the classes, so households that
    share a phone and an address cannot pull m towards "same family" instead of "same person"."""
    m = [_initial_m(len(c.levels)) for c in COMPARISONS]
    prior = prior_start
    total = sum(vectors.values())
    iterations = 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 (kept for the model's record)
        matched: defaultdict[ComparisonVector, float] = defaultdict(float)
        expected = 0.0
        for (vector, label), n in vectors.items():
            g = n * (_posterior(vector, prior, m, u) if label is None else float(label))
            matched[vector] += g
            expected += g
        new_prior = min(max(expected / total, 1e-6), 1 - 1e-6)
        new_m = _level_frequencies(matched)
        change = abs(new_prior - prior) + max(
            abs(a - b) for old, new in zip(m, new_m, strict=True) for a, b in zip(old, new, strict=True)
        )
        m, prior = new_m, new_prior
        if change < tolerance:
            break
    return m, prior, iterations


def _mask(vector: ComparisonVector, masked: frozenset[int]) -> ComparisonVector:
    return tuple(NULL if k in masked else level for k, level in enumerate(vector))  # type: ignore[return-value]


def train_em(
    sessions: Mapping[frozenset[int], tuple[Counter[LabelledVector], int]],
    u: list[list[float]],
    record_count: int,
    link_weight: float = 6.0,
    review_weight: float = 0.0,
) -> MatchModel:
    """Splink-style EM: one session per blocking rule, the rule's own comparisons masked out.

    ``sessions`` maps the comparisons a rule blocks on to (the sampled pairs' vectors, how many pairs
    the rule found in all). Pairs found by a rule agree on what it blocked on whether or not they match,
    so those comparisons say nothing in that session; each comparison's m is taken from the sessions
    that did not block on it, weighted by their expected matches. The prior is Splink's "probability two
    random records match": the most matching pairs any rule expects, over all record pairs.
    """
    sums = [[0.0] * len(c.levels) for c in COMPARISONS]
    weights = [0.0] * len(COMPARISONS)
    iterations = 0
    expected_matching_pairs = 0.0
    trained_on = 0
    for masked, (vectors, pairs_found) in sessions.items():
        if not vectors:
            continue
        masked_vectors: Counter[LabelledVector] = Counter()
        for (vector, label), n in vectors.items():
            masked_vectors[(_mask(vector, masked), label)] += n
        m, prior, used = em_session(masked_vectors, u)
        iterations += used
        trained_on += sum(vectors.values())
        expected = prior * sum(vectors.values())
        expected_matching_pairs = max(expected_matching_pairs, prior * pairs_found)
        for k in range(len(COMPARISONS)):
            if k not in masked:
                weights[k] += expected
                for level, value in enumerate(m[k]):
                    sums[k][level] += expected * value
    m = [
        [value / weights[k] for value in sums[k]] if weights[k] else _initial_m(len(COMPARISONS[k].levels))
        for k in range(len(COMPARISONS))
    ]
    all_pairs = record_count * (record_count - 1) / 2
    prior = min(max(expected_matching_pairs / all_pairs, 1e-9), 0.5)
    return MatchModel(
        prior=prior,
        m=m,
        u=u,
        link_weight=link_weight,
        review_weight=review_weight,
        em_iterations=iterations,
        trained_on_pairs=trained_on,
    )
