"""Deterministic random streams: one independent stream per (seed, component), stable across runs.

Each institution and each phase draws from its own stream, so a change in one part of the generator does
not shift the random numbers of every other part (and never depends on hash() or set order).
"""

from __future__ import annotations

import hashlib
import random


def derive_rng(seed: int, *parts: str | int) -> random.Random:
    """A ``random.Random`` seeded from ``seed`` and the component names (SHA-256, not Python's hash())."""
    digest = hashlib.sha256(":".join(str(p) for p in (seed, *parts)).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def zipf_weights(count: int, exponent: float = 0.9) -> list[float]:
    """Rank-frequency weights (first = commonest), the shape of name and diagnosis frequency tables."""
    return [1.0 / (rank**exponent) for rank in range(1, count + 1)]


def poisson(rng: random.Random, mean: float) -> int:
    """Poisson draw (Knuth for small means, rounded normal approximation above 30)."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, mean**0.5)))
    limit, k, product = 2.718281828459045**-mean, 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k
