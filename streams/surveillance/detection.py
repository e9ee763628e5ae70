"""Early-warning detection over daily count series (docs/domain.md §6): EARS C1, C2, C3 and the ESSENCE EWMA.

Pure functions, no I/O. A series is one count per consecutive day (syndrome × county × group); day t is
judged against earlier days only. Day indices are 0-based positions in the series: "the 8th day" of
docs/domain.md is index 7.

EARS (baseline n, default 7; sd is the sample standard deviation, n − 1, floored at ``min_sigma``;
z = Φ⁻¹(1 − α)):

* C1: baseline t−n … t−1; UB = mean + z·max(sd, min_sigma); alarm when count > UB. First judged index n.
* C2: the same with a 2-day guard band, baseline t−n−2 … t−3. First judged index n + 2.
* C3 (CDC): C2ₜ = (countₜ − mean) / max(sd, min_sigma) on the C2 baseline (+∞ when the floored sd is 0 and
  countₜ > mean, 0 when it is 0 and countₜ ≤ mean); C3ₜ = Σₖ₌₀..₂ max(0, C2ₜ₋ₖ − 1); alarm when C3ₜ > z
  (α 0.025). First judged index n + 4. For C3 the reported threshold is z, the statistic C3ₜ; expected and
  sd are day t's C2 baseline. For C1/C2 the threshold is UB and the statistic the standardised count
  (countₜ − mean)/sd (same +∞/0 rule).

These are exactly R surveillance::earsC for C1 and C2 (upperbound = mean + z·pmax(sd, minSigma), alarm =
observed > upperbound, the same first days); earsC's C3 differs (it returns an upper bound on the count).

EWMA: a re-implementation of ``ewma_loop``/``alert_ewma`` of CDC's Rnssp R package (R/alert_ewma.R), the
NSSP-ESSENCE EWMA. For each smoothing weight λ ∈ {0.4 (gradual), 0.9 (sudden)}:

* Zₜ = λ·yₜ + (1 − λ)·Zₜ₋₁, Z₀ = y₀ (day 1 of the series).
* Baseline: the B = 28 days before a g = 2-day guard band, i.e. t−g−B … t−g−1; mean μ and sample sd s.
* σ_Z = max(σ_min, s·c + k), with the correction c = √(λ/(2−λ) + 1/B − 2(1−λ)^(g+1)·(1 − (1−λ)^B)/B)
  (variance of Zₜ − μ in units of s², counting the noise of the baseline mean and its covariance with Z), the
  floor σ_min = (λ/u_w)·(1 + ½(1−λ)²) and the small-count constant
  k = (0.1289 − (0.2414 − 0.1826(1−λ)⁴)·ln(10·α_yellow))·(λ/u_w), where u_w = round(qt(1 − α_yellow, B−1), 5)
  and u_a = round(qt(1 − α_red, B−1), 5) are Student-t quantiles (rounded to 5 decimals as Rnssp does).
* Statistic Tₜ = (Zₜ − μ)/σ_Z; p-value = 1 − F_t(Tₜ; B − 1 df) (upper tail, one-sided).
* Outlier damping: after testing day t, when |Tₜ| > u_a the smoothed value is pulled back to μ ± u_a·σ_Z, so one
  huge day does not keep the EWMA above the threshold for weeks.
* The two weights are run side by side and the day takes the smaller p-value (the worse of the two; on a tie
  the sudden weight 0.9, as in Rnssp): red when p < α_red (0.01), yellow when α_red ≤ p < α_yellow (0.05).
  ``Judgement.smoothing`` says which weight won. Taking the minimum of two p-values is not a corrected test
  (the false-alert rate is somewhat above α); ESSENCE accepts that to catch both slow and sudden rises.

As in Rnssp, the test starts with a shorter baseline (11 days, growing by one a day up to B) at index 11 + g; those
warm-up days feed the outlier damping of Z but are not reported: the first judged (reported) day is the first
with a full baseline and guard band, index B + g (the 31st day with the defaults). From there on the results
equal Rnssp's (tests/test_detection.py checks them against a scalar transcription of ewma_loop using scipy's t
distribution; Rnssp itself is not packaged where CI can install it). Differences from Rnssp: it hard-codes the
28-day maximum baseline and ignores its B argument, ``ewma_baseline`` is honoured here; ``min_sigma`` also
floors the EWMA's baseline sd s (a no-op at its default 0). The t distribution is computed in closed form for
integer df (student_t_sf), so numpy is the only dependency.

Speed: everything is vectorised over series (rolling sums from cumulative sums for the baseline mean and sd);
the EWMA recursion loops over days only, on whole columns.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "DetectionParams",
    "DetectionResult",
    "Judgement",
    "Method",
    "Transition",
    "alert_transitions",
    "detect",
    "detect_many",
    "first_judged_day",
    "student_t_sf",
    "student_t_quantile",
]


class Method(str, Enum):
    EARS_C1 = "ears-c1"
    EARS_C2 = "ears-c2"
    EARS_C3 = "ears-c3"
    EWMA = "ewma"


@dataclass(frozen=True)
class DetectionParams:
    """Detection settings. ``None`` means the method's default (module docstring)."""

    baseline: int = 7  # EARS baseline n
    min_sigma: float = 0.0  # floor of the baseline sd (all methods)
    alpha: float | None = None  # EARS: 0.001 C1/C2, 0.025 C3; EWMA: the yellow level, default 0.05
    guard: int | None = None  # guard band days: EARS C1 0, C2/C3 2 (fixed by the definitions); EWMA 2
    ewma_lambdas: tuple[float, float] = (0.4, 0.9)  # gradual, sudden
    ewma_baseline: int = 28
    ewma_red_alpha: float = 0.01
    ewma_warmup_baseline: int = 11  # Rnssp's minimum baseline during warm-up

    def __post_init__(self) -> None:
        if self.baseline < 2 or self.ewma_baseline < 2:
            raise ValueError("a baseline needs at least 2 days (a sample sd)")
        if self.min_sigma < 0:
            raise ValueError("min_sigma must be >= 0")
        if self.alpha is not None and not 0 < self.alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        if not 0 < self.ewma_red_alpha < 1:
            raise ValueError("ewma_red_alpha must be in (0, 1)")
        if self.guard is not None and self.guard < 0:
            raise ValueError("guard must be >= 0")
        if len(self.ewma_lambdas) != 2 or not all(0 < w <= 1 for w in self.ewma_lambdas):
            raise ValueError("ewma_lambdas: two smoothing weights in (0, 1]")

    def alpha_for(self, method: Method) -> float:
        if self.alpha is not None:
            return self.alpha
        return {Method.EARS_C1: 0.001, Method.EARS_C2: 0.001, Method.EARS_C3: 0.025, Method.EWMA: 0.05}[method]

    def guard_for(self, method: Method) -> int:
        if method is Method.EWMA:
            return 2 if self.guard is None else self.guard
        fixed = 0 if method is Method.EARS_C1 else 2
        if self.guard is not None and self.guard != fixed:
            raise ValueError(f"{method.value} has a fixed guard band of {fixed} days")
        return fixed


# level codes of DetectionResult.level
LEVEL_NONE, LEVEL_YELLOW, LEVEL_RED, LEVEL_ALARM = 0, 1, 2, 3
LEVEL_NAMES: dict[int, str | None] = {LEVEL_NONE: None, LEVEL_YELLOW: "yellow", LEVEL_RED: "red", LEVEL_ALARM: "alarm"}


@dataclass(frozen=True, slots=True)
class Judgement:
    day: int | dt.date  # 0-based index in the series, or its date when detect() was given a start date
    count: float
    expected: float  # baseline mean
    sd: float  # baseline sample sd, floored at min_sigma
    statistic: float  # C1/C2: (count − mean)/sd (C2_t); C3: C3_t; EWMA: the chosen test statistic T_t
    threshold: float  # C1/C2: the upper bound UB (alarm when count > UB); C3: z; EWMA: the yellow t quantile
    alarm: bool
    level: str | None  # "alarm" (EARS); "yellow" / "red" (EWMA); None when no alarm
    p_value: float | None = None  # EWMA only
    smoothing: float | None = None  # EWMA only: the weight whose p-value was taken


def first_judged_day(method: Method | str, params: DetectionParams = DetectionParams()) -> int:
    """0-based index of the first judged day: C1 n, C2 n + 2, C3 n + 4, EWMA B + g."""
    method = Method(method)
    if method is Method.EWMA:
        return params.ewma_baseline + params.guard_for(method)
    n = params.baseline
    return {Method.EARS_C1: n, Method.EARS_C2: n + 2, Method.EARS_C3: n + 4}[method]


@dataclass(frozen=True)
class DetectionResult:
    """detect_many's output: arrays of shape (series, judged days); column j is day ``first_day + j``."""

    method: Method
    first_day: int
    count: np.ndarray
    expected: np.ndarray
    sd: np.ndarray
    statistic: np.ndarray
    threshold: np.ndarray
    alarm: np.ndarray  # bool
    level: np.ndarray  # int8 codes, LEVEL_NAMES
    p_value: np.ndarray | None = None  # EWMA
    smoothing: np.ndarray | None = None  # EWMA: the winning weight per day

    @property
    def days(self) -> np.ndarray:
        return np.arange(self.first_day, self.first_day + self.count.shape[1])

    def judgements(self, row: int = 0, start: dt.date | None = None) -> list[Judgement]:
        out = []
        for j in range(self.count.shape[1]):
            index = self.first_day + j
            out.append(
                Judgement(
                    day=index if start is None else start + dt.timedelta(days=index),
                    count=float(self.count[row, j]),
                    expected=float(self.expected[row, j]),
                    sd=float(self.sd[row, j]),
                    statistic=float(self.statistic[row, j]),
                    threshold=float(self.threshold[row, j]),
                    alarm=bool(self.alarm[row, j]),
                    level=LEVEL_NAMES[int(self.level[row, j])],
                    p_value=None if self.p_value is None else float(self.p_value[row, j]),
                    smoothing=None if self.smoothing is None else float(self.smoothing[row, j]),
                )
            )
        return out


def detect(
    counts: Sequence[float],
    method: Method | str,
    params: DetectionParams = DetectionParams(),
    start: dt.date | None = None,
) -> list[Judgement]:
    """Judge one series (one count per consecutive day); only the judged days are returned."""
    matrix = np.asarray(counts, dtype=np.float64).reshape(1, -1)
    return detect_many(matrix, method, params).judgements(0, start)


def detect_many(
    matrix: np.ndarray, method: Method | str, params: DetectionParams = DetectionParams()
) -> DetectionResult:
    """Judge many series of equal length at once: ``matrix`` has shape (series, days)."""
    method = Method(method)
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("matrix must have shape (series, days)")
    if not np.isfinite(x).all():
        raise ValueError("counts must be finite")
    if method is Method.EWMA:
        return _ewma(x, params)
    return _ears(x, method, params)


# ---------------------------------------------------------------------------------------------- rolling stats


def _rolling(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample sd of x[:, lo[j]:hi[j]] for every column j, from cumulative sums.

    The data are shifted by each series' first value first (the shifted-data algorithm): integer counts stay
    exact integers in the sums, and large levels do not cancel catastrophically in Σx² − (Σx)²/n.
    """
    shifted = x - x[:, :1]
    c1 = np.zeros((x.shape[0], x.shape[1] + 1))
    c2 = np.zeros_like(c1)
    np.cumsum(shifted, axis=1, out=c1[:, 1:])
    np.cumsum(shifted * shifted, axis=1, out=c2[:, 1:])
    n = (hi - lo).astype(np.float64)
    s1 = c1[:, hi] - c1[:, lo]
    s2 = c2[:, hi] - c2[:, lo]
    mean = s1 / n + x[:, :1]
    var = np.maximum(s2 - s1 * s1 / n, 0.0) / (n - 1)
    return mean, np.sqrt(var)


# ------------------------------------------------------------------------------------------------------ EARS


def _ears(x: np.ndarray, method: Method, params: DetectionParams) -> DetectionResult:
    n = params.baseline
    guard = params.guard_for(method)
    z = NormalDist().inv_cdf(1 - params.alpha_for(method))
    first = first_judged_day(method, params)
    days = x.shape[1]
    # C3 needs the C2 statistic from two days before its first judged day
    first_stat = first - 2 if method is Method.EARS_C3 else first
    t = np.arange(first_stat, max(days, first_stat))
    hi = t - guard
    mean, sd = _rolling(x, hi - n, hi)
    sd = np.maximum(sd, params.min_sigma)
    count = x[:, first_stat:]
    # the standardised count (C1 or C2 statistic); the floored sd 0 gives +inf above the mean, else 0
    score = np.where(sd > 0, (count - mean) / np.where(sd > 0, sd, 1.0), np.where(count > mean, np.inf, 0.0))
    if method is not Method.EARS_C3:
        ub = mean + z * sd
        alarm = count > ub  # the definition (and R's): compare with the upper bound, not score > z
        return DetectionResult(
            method, first, count, mean, sd, score, ub, alarm, np.where(alarm, LEVEL_ALARM, LEVEL_NONE).astype(np.int8)
        )
    part = np.maximum(score - 1.0, 0.0)
    c3 = part[:, 2:] + part[:, 1:-1] + part[:, :-2] if part.shape[1] >= 3 else part[:, :0]
    alarm = c3 > z
    return DetectionResult(
        method,
        first,
        count[:, 2:],
        mean[:, 2:],
        sd[:, 2:],
        c3,
        np.full_like(c3, z),
        alarm,
        np.where(alarm, LEVEL_ALARM, LEVEL_NONE).astype(np.int8),
    )


# ------------------------------------------------------------------------------------------------------ EWMA


def student_t_sf(t: np.ndarray | float, df: int) -> np.ndarray:
    """Upper tail P(T > t) of Student's t with an integer number of degrees of freedom (exact finite series,
    Abramowitz & Stegun 26.7.3–4); vectorised over t."""
    if df < 1 or int(df) != df:
        raise ValueError("df must be a positive integer")
    t = np.asarray(t, dtype=np.float64)
    theta = np.arctan(np.abs(t) / math.sqrt(df))
    s, c = np.sin(theta), np.cos(theta)
    c2 = c * c
    if df % 2 == 0:  # A = sin θ (1 + ½cos²θ + (1·3)/(2·4)cos⁴θ + …)
        term = np.ones_like(t)
        total = np.ones_like(t)
        for k in range(1, df // 2):
            term = term * (2 * k - 1) / (2 * k) * c2
            total = total + term
        a = s * total
    else:  # A = (2/π)(θ + sin θ cos θ (1 + (2/3)cos²θ + …))
        if df == 1:
            a = 2 * theta / math.pi
        else:
            term = np.ones_like(t)
            total = np.ones_like(t)
            for k in range(1, (df - 1) // 2):
                term = term * (2 * k) / (2 * k + 1) * c2
                total = total + term
            a = 2 / math.pi * (theta + s * c * total)
    # A = P(|T| < |t|)
    return np.where(t >= 0, (1 - a) / 2, (1 + a) / 2)


@lru_cache(maxsize=256)
def student_t_quantile(p: float, df: int) -> float:
    """The t with P(T ≤ t) = p (bisection on student_t_sf; cached per (p, df))."""
    if not 0 < p < 1:
        raise ValueError("p must be in (0, 1)")
    target = 1 - p
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        if float(student_t_sf(mid, df)) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13:
            break
    return (lo + hi) / 2


def _ewma(x: np.ndarray, params: DetectionParams) -> DetectionResult:
    series, days = x.shape
    big_b = params.ewma_baseline
    g = params.guard_for(Method.EWMA)
    alpha_yellow, alpha_red = params.alpha_for(Method.EWMA), params.ewma_red_alpha
    if not alpha_red < alpha_yellow:
        raise ValueError("the red level must be stricter than the yellow one")
    first = first_judged_day(Method.EWMA, params)
    warm = min(params.ewma_warmup_baseline, big_b)
    tested_from = warm + g  # first day Rnssp tests (with a warm-up baseline of `warm` days)
    t = np.arange(tested_from, max(days, tested_from))
    hi = t - g
    lo = np.maximum(hi - big_b, 0)
    if t.size:
        mean, sd = _rolling(x, lo, hi)
        sd = np.maximum(sd, params.min_sigma)
    else:
        mean = sd = np.zeros((series, 0))
    lengths = hi - lo

    def quantile(p: float, df: int) -> float:
        return round(student_t_quantile(p, df), 5)

    sigmas, stats_per_w = [], []
    ucl_alert = np.array([quantile(1 - alpha_red, int(m) - 1) for m in lengths])
    ucl_warn = np.array([quantile(1 - alpha_yellow, int(m) - 1) for m in lengths])
    m = lengths.astype(np.float64)
    for w in params.ewma_lambdas:
        correction = np.sqrt(w / (2 - w) + 1 / m - 2 * (1 - w) ** (g + 1) * (1 - (1 - w) ** m) / m)
        floor = (w / ucl_warn) * (1 + 0.5 * (1 - w) ** 2)
        constant = (0.1289 - (0.2414 - 0.1826 * (1 - w) ** 4) * math.log(10 * alpha_yellow)) * (w / ucl_warn)
        sigmas.append(np.maximum(floor, sd * correction + constant))
        stats_per_w.append(np.empty((series, t.size)))
    for k, w in enumerate(params.ewma_lambdas):
        sigma, stat = sigmas[k], stats_per_w[k]
        z = x[:, 0].copy() if days else np.zeros(series)
        for day in range(1, min(tested_from, days)):
            z = w * x[:, day] + (1 - w) * z
        for j, day in enumerate(t):
            z = w * x[:, day] + (1 - w) * z
            s = (z - mean[:, j]) / sigma[:, j]
            stat[:, j] = s
            over = np.abs(s) > ucl_alert[j]
            if over.any():
                z = np.where(over, mean[:, j] + np.sign(s) * ucl_alert[j] * sigma[:, j], z)
    skip = first - tested_from  # warm-up columns, not reported
    reported = slice(max(skip, 0), None)
    df = big_b - 1
    p = [student_t_sf(s[:, reported], df) for s in stats_per_w]
    take_first = p[0] < p[1]  # ties go to the second (sudden) weight, as in Rnssp
    p_value = np.where(take_first, p[0], p[1])
    statistic = np.where(take_first, stats_per_w[0][:, reported], stats_per_w[1][:, reported])
    smoothing = np.where(take_first, params.ewma_lambdas[0], params.ewma_lambdas[1])
    level = np.where(p_value < alpha_red, LEVEL_RED, np.where(p_value < alpha_yellow, LEVEL_YELLOW, LEVEL_NONE))
    threshold = np.broadcast_to(ucl_warn[reported], p_value.shape).copy()
    return DetectionResult(
        Method.EWMA,
        first,
        x[:, first:],
        mean[:, reported],
        sd[:, reported],
        statistic,
        threshold,
        p_value < alpha_yellow,
        level.astype(np.int8),
        p_value,
        smoothing,
    )


# ------------------------------------------------------------------------------------------- alert lifecycle


class Transition(NamedTuple):
    day: Any  # the judgement's day (index or date)
    kind: str  # "OPEN" | "CLOSE"
    judgement: Judgement


def alert_transitions(judgements: Sequence[Judgement], initially_open: bool = False) -> list[Transition]:
    """Open/close events over one series' judged days, in order: at most one alert is open per series. It opens
    on the first alarm day while none is open and closes on the first judged day back under the threshold
    (not an alarm); alarm days in between (a yellow turning red included) belong to the open alert.
    ``initially_open`` continues from an alert left open by an earlier run. An alert still open after the last
    day stays open (no CLOSE)."""
    out: list[Transition] = []
    is_open = initially_open
    for j in judgements:
        if j.alarm and not is_open:
            out.append(Transition(j.day, "OPEN", j))
            is_open = True
        elif not j.alarm and is_open:
            out.append(Transition(j.day, "CLOSE", j))
            is_open = False
    return out
