"""Early-warning detection (docs/domain.md §6): EARS C1/C2/C3 and the ESSENCE EWMA, the alert lifecycle helper, the
R surveillance::earsC oracle for C1/C2, and `healthbus surveillance detect`."""

from __future__ import annotations

import csv
import datetime as dt
import math
import shutil
import statistics
import subprocess
from pathlib import Path

import numpy as np
import pytest

from streams.surveillance.detection import (
    DetectionParams,
    Judgement,
    Method,
    alert_transitions,
    detect,
    detect_many,
    first_judged_day,
    student_t_quantile,
    student_t_sf,
)
from tests.conftest import HEALTHBUS

BASE = [2, 3, 2, 4, 3, 2, 5]
# mean = 21/7 = 3; deviations −1 0 −1 1 0 −1 2, squares sum 8; sd = √(8/6) = 1.1547005383792515
# z(α=0.001) = Φ⁻¹(0.999) = 3.090232306167813; UB = 3 + 3.0902323·1.1547005 = 6.568292907648930
SD = math.sqrt(8 / 6)
Z001 = 3.090232306167813
UB = 3 + Z001 * SD


# ------------------------------------------------------------------------------------------------------- EARS


def test_c1_hand_computed_upper_bound_and_the_days_just_above_and_below() -> None:
    assert UB == pytest.approx(6.568292907648930, abs=1e-12)
    [above] = detect(BASE + [7], Method.EARS_C1)  # 7 > 6.568: alarm
    assert above.day == 7 and above.alarm and above.level == "alarm"
    assert above.expected == pytest.approx(3) and above.sd == pytest.approx(SD)
    assert above.threshold == pytest.approx(UB, abs=1e-12)
    assert above.statistic == pytest.approx((7 - 3) / SD)  # 3.4641 > z
    [below] = detect(BASE + [6], Method.EARS_C1)  # 6 < 6.568: no alarm
    assert not below.alarm and below.level is None and below.p_value is None
    assert below.statistic == pytest.approx(3 / SD)  # 2.598 < z


def test_first_judged_day_per_method() -> None:
    # C1 the 8th day (index 7), C2 the 10th, C3 the 12th; EWMA the 31st (28-day baseline + 2-day guard band)
    assert [first_judged_day(m) for m in Method] == [7, 9, 11, 30]
    series = list(range(40))
    for method, first in zip(Method, [7, 9, 11, 30]):
        judged = detect(series, method)
        assert [j.day for j in judged] == list(range(first, 40))
        assert detect(series[:first], method) == []  # one day short: nothing judged
        assert len(detect(series[: first + 1], method)) == 1
    # generalised with baseline n: C1 n, C2 n + 2, C3 n + 4 (0-based); EWMA B + g
    p = DetectionParams(baseline=5, ewma_baseline=14)
    assert [first_judged_day(m, p) for m in Method] == [5, 7, 9, 16]


def test_judgement_days_as_dates() -> None:
    [j] = detect(BASE + [7], "ears-c1", start=dt.date(2026, 1, 1))
    assert j.day == dt.date(2026, 1, 8)


def test_c2_guard_band_skips_the_two_days_before() -> None:
    # indices 0–6 the baseline, 7 and 8 the guard band (100, 100), day 9 = 7: C2 compares 7 with UB 6.568 → alarm
    series = BASE + [100, 100, 7]
    [j] = detect(series, Method.EARS_C2)
    assert j.day == 9 and j.alarm and j.threshold == pytest.approx(UB, abs=1e-12)
    # C1 on the same day has the 100s in its baseline (indices 2–8) and does not alarm
    assert not detect(series, Method.EARS_C1)[-1].alarm


C3_PREFIX = BASE + [2, 3]
# The C2 baselines of days 9, 10, 11 are indices 0–6, 1–7, 2–8: [2,3,2,4,3,2,5], [3,2,4,3,2,5,2], [2,4,3,2,5,2,3],
# the same multiset each time: mean 3, sd 1.1547005. C2_t = (count_t − 3)/1.1547005.


def test_c3_sums_the_three_c2_excesses() -> None:
    # counts 5, 4, 6 on days 9, 10, 11: C2 = 1.7320508, 0.8660254, 2.5980762
    # C3_11 = max(0, 0.7320508) + max(0, −0.1339746) + max(0, 1.5980762) = 2.3301270 > 1.96 → alarm
    [j] = detect(C3_PREFIX + [5, 4, 6], Method.EARS_C3)
    assert j.day == 11 and j.alarm and j.level == "alarm"
    assert j.statistic == pytest.approx(2 / SD - 1 + 3 / SD - 1, abs=1e-12)
    assert j.statistic == pytest.approx(2.3301270189, abs=1e-9)
    assert j.threshold == pytest.approx(1.959963984540054, abs=1e-12)  # z(α = 0.025)
    assert j.expected == pytest.approx(3) and j.sd == pytest.approx(SD)
    # the last day alone (1.598) stays under 1.96: counts 3, 3, 6 give C3 = 0 + 0 + 1.5980762 → no alarm
    [alone] = detect(C3_PREFIX + [3, 3, 6], Method.EARS_C3)
    assert not alone.alarm and alone.statistic == pytest.approx(3 / SD - 1)
    # counts 5, 4, 5: 0.7320508 + 0 + 0.7320508 = 1.4641016 → no alarm
    [small] = detect(C3_PREFIX + [5, 4, 5], Method.EARS_C3)
    assert not small.alarm and small.statistic == pytest.approx(2 * (2 / SD - 1))


def test_c3_infinite_c2_when_the_baseline_is_flat() -> None:
    # floored sd 0: C2 = +inf above the mean, 0 otherwise (never NaN)
    [up] = detect([3] * 11 + [4], Method.EARS_C3)
    assert up.alarm and math.isinf(up.statistic) and up.sd == 0
    [flat] = detect([3] * 12, Method.EARS_C3)
    assert not flat.alarm and flat.statistic == 0
    [down] = detect([3] * 11 + [1], Method.EARS_C3)
    assert not down.alarm and down.statistic == 0
    # an infinite C2 two days back still counts: [3]*9, then 4, 3, 3 → C3_11 = inf
    assert detect([3] * 9 + [4, 3, 3], Method.EARS_C3)[0].alarm


def test_min_sigma_floors_the_sd() -> None:
    flat = [3] * 7
    # sd 0, min_sigma 0: UB = 3, so 4 alarms
    assert detect(flat + [4], Method.EARS_C1)[0].alarm
    # min_sigma 0.5: UB = 3 + 3.0902323·0.5 = 4.5451162 → 4 no alarm, 5 alarm
    p = DetectionParams(min_sigma=0.5)
    [j4] = detect(flat + [4], Method.EARS_C1, p)
    assert not j4.alarm and j4.sd == 0.5 and j4.threshold == pytest.approx(3 + Z001 * 0.5)
    assert detect(flat + [5], Method.EARS_C1, p)[0].alarm
    # a larger sd is not touched: BASE's 1.1547 > 0.5
    assert detect(BASE + [7], Method.EARS_C1, p)[0].sd == pytest.approx(SD)


def test_alpha_override() -> None:
    # α = 0.05: z = 1.6448536; UB = 3 + 1.6448536·1.1547005 = 4.8992982 → 5 alarms (not at the default α)
    p = DetectionParams(alpha=0.05)
    [j] = detect(BASE + [5], Method.EARS_C1, p)
    assert j.alarm and j.threshold == pytest.approx(3 + 1.6448536269514722 * SD, abs=1e-12)
    assert not detect(BASE + [5], Method.EARS_C1)[0].alarm
    # C3 with α = 0.1: z = 1.2815516, so the C3 = 1.4641016 case above now alarms
    assert detect(C3_PREFIX + [5, 4, 5], Method.EARS_C3, DetectionParams(alpha=0.1))[0].alarm


def _naive_ears(counts: list[float], method: Method, params: DetectionParams) -> list[tuple[float, float, bool]]:
    """A day-by-day reading of docs/domain.md §6 with the statistics module: (threshold, statistic, alarm) per day."""
    n = params.baseline
    z = statistics.NormalDist().inv_cdf(1 - params.alpha_for(method))
    lag = 0 if method is Method.EARS_C1 else 2

    def c2(t: int) -> tuple[float, float, float]:
        base = counts[t - lag - n : t - lag]
        mean, sd = statistics.fmean(base), max(statistics.stdev(base), params.min_sigma)
        score = (counts[t] - mean) / sd if sd > 0 else (math.inf if counts[t] > mean else 0.0)
        return mean, sd, score

    out = []
    for t in range(first_judged_day(method, params), len(counts)):
        mean, sd, score = c2(t)
        if method is Method.EARS_C3:
            c3 = sum(max(0.0, c2(t - k)[2] - 1) for k in range(3))
            out.append((z, c3, c3 > z))
        else:
            out.append((mean + z * sd, score, counts[t] > mean + z * sd))
    return out


@pytest.mark.parametrize("method", [Method.EARS_C1, Method.EARS_C2, Method.EARS_C3])
@pytest.mark.parametrize("params", [DetectionParams(), DetectionParams(baseline=5, min_sigma=0.7, alpha=0.01)])
def test_vectorised_ears_equals_the_day_by_day_definition(method: Method, params: DetectionParams) -> None:
    rng = np.random.default_rng(7)
    matrix = rng.poisson(rng.uniform(0.2, 40, size=(12, 1)), size=(12, 150)).astype(float)
    matrix[3, 40:60] = 2  # a flat stretch: sd 0
    matrix[5] += 1e6  # a high level: the shifted sums keep the sd exact
    result = detect_many(matrix, method, params)
    assert result.first_day == first_judged_day(method, params)
    for row in range(matrix.shape[0]):
        expected = _naive_ears(matrix[row].tolist(), method, params)
        assert result.alarm[row].tolist() == [e[2] for e in expected]
        np.testing.assert_allclose(result.threshold[row], [e[0] for e in expected], rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(result.statistic[row], [e[1] for e in expected], rtol=1e-9, atol=1e-9)
        assert result.judgements(row) == detect(matrix[row], method, params)


# ------------------------------------------------------------------------------------------------------- EWMA


def test_student_t_against_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    t = np.linspace(-8, 8, 161)
    for df in (1, 2, 3, 4, 9, 10, 26, 27, 60):
        np.testing.assert_allclose(student_t_sf(t, df), stats.t.sf(t, df), rtol=1e-9, atol=1e-13)
        for p in (0.95, 0.99):
            assert student_t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), abs=1e-9)
    # the rounded quantiles Rnssp uses with 27 df
    assert round(student_t_quantile(0.95, 27), 5) == 1.70329
    assert round(student_t_quantile(0.99, 27), 5) == 2.47266


# With a flat baseline of 5 (sd 0), 27 df: u_w = 1.70329, u_a = 2.47266, and σ_Z is the floor
#   λ 0.9: floor = (0.9/1.70329)(1 + 0.5·0.1²) = 0.531031; constant k = (0.1289 − (0.2414 − 0.1826·0.1⁴)·ln 0.5)
#          ·(0.9/1.70329) = 0.156516 < floor → σ = 0.531031
#   λ 0.4: floor = (0.4/1.70329)(1 + 0.5·0.6²) = 0.277111; k = 0.065713 → σ = 0.277111
SIGMA_09 = (0.9 / 1.70329) * (1 + 0.5 * 0.1**2)
SIGMA_04 = (0.4 / 1.70329) * (1 + 0.5 * 0.6**2)


def test_ewma_flat_baseline_plus_a_spike() -> None:
    assert SIGMA_09 == pytest.approx(0.531031, abs=1e-6) and SIGMA_04 == pytest.approx(0.277111, abs=1e-6)
    flat = [5.0] * 40
    # day 40 = 8: Z_0.9 = 0.9·8 + 0.1·5 = 7.7, T = 2.7/0.531031 = 5.0844; Z_0.4 = 0.4·8 + 0.6·5 = 6.2,
    # T = 1.2/0.277111 = 4.3304; the smaller p-value is λ 0.9's (p ≈ 1e-5 < 0.01) → red
    judged = detect(flat + [8, 5], Method.EWMA)
    spike, after = judged[-2], judged[-1]
    assert spike.day == 40 and spike.level == "red" and spike.alarm and spike.smoothing == 0.9
    assert spike.statistic == pytest.approx(2.7 / SIGMA_09, abs=1e-9)
    assert spike.expected == 5 and spike.sd == 0 and spike.threshold == 1.70329
    assert spike.p_value < 1e-4
    # day 41 = 5: both |T| exceeded u_a on day 40, so the smoothed values were pulled back to 5 + 2.47266·σ:
    # Z_0.9 = 0.9·5 + 0.1·(5 + 2.47266·0.531031) = 5.131308, T = 0.24727;
    # Z_0.4 = 0.4·5 + 0.6·(5 + 2.47266·0.277111) = 5.411121, T = 0.6·2.47266 = 1.48360 → the smaller p ≈ 0.075
    assert after.smoothing == 0.4 and after.statistic == pytest.approx(0.6 * 2.47266, abs=1e-9)
    assert not after.alarm and after.level is None and 0.05 < after.p_value < 0.1
    # day 40 = 6.2: T_0.9 = 1.08/0.531031 = 2.0338 (p ≈ 0.026), T_0.4 = 0.48/0.277111 = 1.7322 (p ≈ 0.047) → yellow
    yellow = detect(flat + [6.2], Method.EWMA)[-1]
    assert yellow.level == "yellow" and yellow.alarm and yellow.smoothing == 0.9
    assert yellow.statistic == pytest.approx(1.08 / SIGMA_09, abs=1e-9) and 0.01 < yellow.p_value < 0.05
    # day 40 = 6: T_0.9 = 0.9/0.531031 = 1.6948 < 1.70329 (p ≈ 0.051) → no alert
    quiet = detect(flat + [6], Method.EWMA)[-1]
    assert quiet.level is None and not quiet.alarm and 0.05 < quiet.p_value < 0.06
    # the whole flat stretch: T = 0, p = 0.5
    assert all(j.p_value == pytest.approx(0.5) and j.level is None for j in judged[:-2])


def test_ewma_alpha_override_is_the_yellow_level() -> None:
    rng = np.random.default_rng(5)
    series = rng.poisson(8, size=400).astype(float)
    default = detect(series, Method.EWMA)
    wider = detect(series, Method.EWMA, DetectionParams(alpha=0.1))
    # u_w = round(qt(0.9, 27), 5) = 1.3137; alarms are exactly p < 0.1, red stays p < 0.01
    assert {j.threshold for j in wider} == {1.3137}
    assert all(j.alarm == (j.p_value < 0.1) for j in wider)
    assert all((j.level == "red") == (j.p_value < 0.01) for j in wider)
    assert any(j.level == "yellow" and j.p_value >= 0.05 for j in wider)
    assert sum(j.alarm for j in wider) > sum(j.alarm for j in default)
    # the Rnssp σ floor and constant are scaled by λ/u_w: with a flat baseline the alarm point in counts barely
    # moves with α (count 6 after a flat 5: p ≈ 0.051 at α 0.05, p ≈ 0.101 at α 0.1: no alert either way)
    assert detect([5.0] * 40 + [6], Method.EWMA, DetectionParams(alpha=0.1))[-1].p_value == pytest.approx(
        0.1011, abs=1e-3
    )


def _rnssp_reference(y: list[float], b: int = 28, g: int = 2, w1: float = 0.4, w2: float = 0.9) -> list[tuple]:
    """A plain scalar transcription of Rnssp's ewma_loop (R/alert_ewma.R; 1-based days turned 0-based), with
    scipy's t distribution: (p-value, statistic, level) from day b + g on."""
    t_dist = pytest.importorskip("scipy.stats").t
    n_days, warm = len(y), 11
    z = {w1: [y[0]], w2: [y[0]]}
    for i in range(1, warm + g):
        for w in (w1, w2):
            z[w].append(w * y[i] + (1 - w) * z[w][-1])
    out = []
    for i in range(warm + g, n_days):
        base = y[max(0, i - g - b) : i - g]
        m = len(base)
        mean, sd = statistics.fmean(base), statistics.stdev(base)
        u_a, u_w = round(t_dist.ppf(0.99, m - 1), 5), round(t_dist.ppf(0.95, m - 1), 5)
        results = {}
        for w in (w1, w2):
            corr = math.sqrt(w / (2 - w) + 1 / m - 2 * (1 - w) ** (g + 1) * (1 - (1 - w) ** m) / m)
            floor = (w / u_w) * (1 + 0.5 * (1 - w) ** 2)
            const = (0.1289 - (0.2414 - 0.1826 * (1 - w) ** 4) * math.log(10 * 0.05)) * (w / u_w)
            sigma = max(floor, sd * corr + const)
            zi = w * y[i] + (1 - w) * z[w][-1]
            stat = (zi - mean) / sigma
            if abs(stat) > u_a:
                zi = mean + math.copysign(u_a, stat) * sigma
            z[w].append(zi)
            results[w] = (t_dist.sf(stat, m - 1), stat)
        p, stat = results[w1] if results[w1][0] < results[w2][0] else results[w2]
        if i >= b + g:
            out.append((p, stat, "red" if p < 0.01 else "yellow" if p < 0.05 else None))
    return out


def test_ewma_equals_the_rnssp_loop() -> None:
    rng = np.random.default_rng(11)
    matrix = rng.poisson(rng.uniform(0.3, 25, size=(8, 1)), size=(8, 200)).astype(float)
    matrix[2, 80:84] += 40  # an outbreak: exercises the clipping of the smoothed values
    matrix[4, 5] += 60  # an outlier during the warm-up (days 13–29 are tested but not reported)
    matrix[6] = 0
    matrix[6, 100] = 3
    result = detect_many(matrix, Method.EWMA)
    assert result.first_day == 30
    for row in range(matrix.shape[0]):
        ref = _rnssp_reference(matrix[row].tolist())
        np.testing.assert_allclose(result.p_value[row], [r[0] for r in ref], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(result.statistic[row], [r[1] for r in ref], rtol=1e-9, atol=1e-9)
        assert [None if j.level is None else j.level for j in result.judgements(row)] == [r[2] for r in ref]
        assert result.judgements(row) == detect(matrix[row], Method.EWMA)
    assert result.alarm[2, 80 - 30]  # the outbreak's first day


# ------------------------------------------------------------------------------------------- alert lifecycle


def _j(day: int, alarm: bool, level: str | None = None) -> Judgement:
    return Judgement(day, 0.0, 0.0, 0.0, 0.0, 0.0, alarm, level if alarm else None)


def test_alert_transitions_one_open_alert_until_back_under_the_threshold() -> None:
    days = [
        _j(0, False),
        _j(1, True, "yellow"),
        _j(2, True, "red"),
        _j(3, True, "yellow"),
        _j(4, False),
        _j(5, False),
        _j(6, True, "red"),
        _j(7, True, "red"),
    ]
    transitions = alert_transitions(days)
    assert [(t.day, t.kind) for t in transitions] == [(1, "OPEN"), (4, "CLOSE"), (6, "OPEN")]
    assert transitions[0].judgement is days[1]
    # an alert left open by an earlier run closes on the first quiet day, and is not opened twice
    assert [(t.day, t.kind) for t in alert_transitions(days[2:], initially_open=True)] == [(4, "CLOSE"), (6, "OPEN")]
    assert alert_transitions([]) == []


def test_alert_transitions_on_detected_days() -> None:
    # day 7: 7 > 6.568 opens; day 8: baseline [3,2,4,3,2,5,7], mean 3.714, sd 1.7995, UB 9.275 < 12 stays open;
    # day 9: 3 closes; days 10–11 quiet
    series = BASE + [7, 12, 3, 2, 3]
    transitions = alert_transitions(detect(series, Method.EARS_C1, start=dt.date(2026, 3, 1)))
    assert [(t.day, t.kind) for t in transitions] == [(dt.date(2026, 3, 8), "OPEN"), (dt.date(2026, 3, 10), "CLOSE")]


# -------------------------------------------------------------------------------------------- the R oracle

R_EARS = r"""
# Rscript - x.csv out_prefix method:baseline:alpha:minSigma ...  (x.csv: one column per series)
args <- commandArgs(trailingOnly = TRUE)
suppressPackageStartupMessages(library(surveillance))
x <- as.matrix(read.csv(args[1], header = FALSE))
s <- sts(observed = x, frequency = 365)
for (k in seq_along(args)[-(1:2)]) {
  p <- strsplit(args[k], ":")[[1]]
  r <- earsC(s, control = list(method = p[1], baseline = as.integer(p[2]), alpha = as.numeric(p[3]),
                               minSigma = as.numeric(p[4])))
  ub <- upperbound(r)
  al <- alarms(r)
  lines <- sapply(seq_len(nrow(ub)), function(i) paste(c(sprintf("%.17g", ub[i, ]), as.integer(al[i, ])),
                                                        collapse = ","))
  writeLines(lines, paste0(args[2], k - 3, ".csv"))  # r0.csv, r1.csv, …
}
"""
R_CASES = [
    (Method.EARS_C1, 7, 0.001, 0.0),
    (Method.EARS_C2, 7, 0.001, 0.0),
    (Method.EARS_C1, 5, 0.05, 0.5),
    (Method.EARS_C2, 10, 0.01, 1.0),
]


def _oracle_series() -> np.ndarray:
    rng = np.random.default_rng(2026)
    means = np.array([0.2, 0.8, 1.5, 3, 6, 12, 25, 60])  # sparse series have flat (sd 0) baselines
    matrix = rng.poisson(means[:, None], size=(len(means), 365)).astype(float)
    matrix[4, 200:203] += 25  # an outbreak
    return matrix


@pytest.fixture(scope="module")
def r_earsc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Runs R surveillance::earsC once for all R_CASES; skips when R or the package is missing."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        pytest.skip("Rscript not installed (Debian: apt-get install --no-install-recommends r-cran-surveillance)")
    probe = subprocess.run(
        [rscript, "-e", "suppressPackageStartupMessages(library(surveillance))"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        pytest.skip("the R package surveillance is not installed (Debian: r-cran-surveillance)")
    folder = tmp_path_factory.mktemp("earsC")
    np.savetxt(folder / "x.csv", _oracle_series().T, fmt="%d", delimiter=",")
    cases = [f"{'C1' if m is Method.EARS_C1 else 'C2'}:{n}:{a!r}:{s!r}" for m, n, a, s in R_CASES]
    done = subprocess.run(
        [rscript, "-", str(folder / "x.csv"), str(folder / "r"), *cases],
        input=R_EARS,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return folder


@pytest.mark.parametrize("case", range(len(R_CASES)))
def test_ears_c1_c2_equal_r_surveillance_earsC(r_earsc: Path, case: int) -> None:
    method, baseline, alpha, min_sigma = R_CASES[case]
    matrix = _oracle_series()
    r = np.loadtxt(r_earsc / f"r{case}.csv", delimiter=",", ndmin=2)
    series = matrix.shape[0]
    r_upper, r_alarm = r[:, :series].T, r[:, series:].T.astype(bool)
    params = DetectionParams(baseline=baseline, alpha=alpha, min_sigma=min_sigma)
    ours = detect_many(matrix, method, params)
    # R's default range is the same judged days: from day n + 1 (C1) / n + 3 (C2) to the end
    assert r_upper.shape == ours.threshold.shape == (series, 365 - first_judged_day(method, params))
    np.testing.assert_allclose(ours.threshold, r_upper, rtol=0, atol=1e-9)
    assert (ours.alarm == r_alarm).all()
    assert r_alarm.any() and not r_alarm.all()


# ------------------------------------------------------------------------------------------------------ CLI


def _detect_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(HEALTHBUS), "surveillance", "detect", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )


def _write(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("series_id,date,count\n" + "".join(f"{s},{d},{c}\n" for s, d, c in rows), encoding="utf-8")
    return path


def _day(k: int) -> str:
    return (dt.date(2026, 3, 1) + dt.timedelta(days=k)).isoformat()


def test_cli_detect_end_to_end(tmp_path: Path) -> None:
    a = BASE + [7, 6, 2]  # days 8, 9, 10 judged by C1: 7 alarms, 6 and 2 do not
    b = [1, 1, 1, 1, 1, 1, 1, 1, 1, 5]
    rows = [("411502-ILI", _day(k), str(c)) for k, c in enumerate(a)]
    rows += [("411503-ILI", _day(k), str(c)) for k, c in enumerate(b)]
    rows.reverse()  # any order
    source = _write(tmp_path / "series.csv", rows)
    out = tmp_path / "alarms.csv"
    done = _detect_cli("--input", str(source), "--method", "ears-c1", "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert "2 series" in done.stderr and "6 judged days" in done.stderr and "2 alarm days" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    with out.open(newline="", encoding="utf-8") as handle:
        got = list(csv.DictReader(handle))
    assert list(got[0])[:3] == ["series_id", "date", "alarm"]
    assert [(r["series_id"], r["date"], r["alarm"]) for r in got] == [
        ("411502-ILI", _day(7), "1"),
        ("411502-ILI", _day(8), "0"),
        ("411502-ILI", _day(9), "0"),
        ("411503-ILI", _day(7), "0"),
        ("411503-ILI", _day(8), "0"),
        ("411503-ILI", _day(9), "1"),
    ]
    first = got[0]
    assert first["level"] == "alarm" and first["count"] == "7" and first["p_value"] == ""
    assert float(first["threshold"]) == pytest.approx(UB, abs=1e-12) and float(first["expected"]) == 3

    # C2 and C3: the first judged days are the 10th and 12th
    c3_rows = [("s", _day(k), str(c)) for k, c in enumerate(C3_PREFIX + [5, 4, 6])]
    source = _write(tmp_path / "c3.csv", c3_rows)
    for method, first_day in (("ears-c2", 9), ("ears-c3", 11)):
        done = _detect_cli("--input", str(source), "--method", method, "--output", str(out))
        assert done.returncode == 0, done.stderr
        with out.open(newline="", encoding="utf-8") as handle:
            got = list(csv.DictReader(handle))
        assert got[0]["date"] == _day(first_day)
    assert got[-1]["alarm"] == "1" and float(got[-1]["statistic"]) == pytest.approx(2.3301270189, abs=1e-9)

    # options: --alpha, --min-sigma, --baseline
    source = _write(tmp_path / "a.csv", [("s", _day(k), str(c)) for k, c in enumerate(BASE + [5])])
    done = _detect_cli("--input", str(source), "--method", "ears-c1", "--output", str(out), "--alpha", "0.05")
    assert done.returncode == 0 and out.read_text().splitlines()[1].startswith(f"s,{_day(7)},1,")
    done = _detect_cli(
        "--input", str(source), "--method", "ears-c1", "--output", str(out), "--baseline", "5", "--min-sigma", "2"
    )
    assert done.returncode == 0 and [r.split(",")[1] for r in out.read_text().splitlines()[1:]] == [
        _day(5),
        _day(6),
        _day(7),
    ]


def test_cli_ewma(tmp_path: Path) -> None:
    source = _write(tmp_path / "e.csv", [("s", _day(k), "5") for k in range(40)] + [("s", _day(40), "8")])
    out = tmp_path / "e_out.csv"
    done = _detect_cli("--input", str(source), "--method", "ewma", "--output", str(out))
    assert done.returncode == 0, done.stderr
    with out.open(newline="", encoding="utf-8") as handle:
        got = list(csv.DictReader(handle))
    assert got[0]["date"] == _day(30) and len(got) == 11
    assert (got[-1]["alarm"], got[-1]["level"]) == ("1", "red") and float(got[-1]["p_value"]) < 1e-4
    assert got[0]["level"] == "" and float(got[0]["p_value"]) == pytest.approx(0.5)


def test_cli_duplicate_row_is_an_error_with_its_line(tmp_path: Path) -> None:
    rows = [("s", _day(k), "1") for k in range(10)]
    rows.insert(6, ("s", _day(2), "4"))  # file line 8 repeats the day of line 4
    done = _detect_cli(
        "--input", str(_write(tmp_path / "d.csv", rows)), "--method", "ears-c1", "--output", str(tmp_path / "o.csv")
    )
    assert done.returncode == 2
    assert "line 8: duplicate row for series s on " + _day(2) + " (first on line 4)" in done.stderr
    bad = _write(tmp_path / "bad.csv", [("s", _day(0), "1"), ("s", "2026-13-01", "1")])
    done = _detect_cli("--input", str(bad), "--method", "ears-c1", "--output", str(tmp_path / "o.csv"))
    assert done.returncode == 2 and "line 3: date" in done.stderr
    neg = _write(tmp_path / "neg.csv", [("s", _day(0), "-1")])
    done = _detect_cli("--input", str(neg), "--method", "ears-c1", "--output", str(tmp_path / "o.csv"))
    assert done.returncode == 2 and "line 2: count" in done.stderr


def test_cli_gaps_count_as_zero_by_default_or_are_refused(tmp_path: Path) -> None:
    # series a has no row on day 8 (index 7) and starts a day after b: with --gaps zero both span b's range and
    # the missing days count 0
    a = [("a", _day(k), "3") for k in range(1, 12) if k != 7]
    b = [("b", _day(k), "2") for k in range(12)]
    source = _write(tmp_path / "g.csv", a + b)
    out = tmp_path / "g_out.csv"
    done = _detect_cli("--input", str(source), "--method", "ears-c1", "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert "2 missing days counted as 0" in done.stderr
    with out.open(newline="", encoding="utf-8") as handle:
        got = [r for r in csv.DictReader(handle) if r["series_id"] == "a"]
    # a = [0, 3, 3, 3, 3, 3, 3, 0, 3, …]: day index 7 is judged with count 0
    assert got[0]["date"] == _day(7) and got[0]["count"] == "0"
    assert float(got[0]["expected"]) == pytest.approx(18 / 7)
    # --gaps error refuses, naming the series and the first missing day
    done = _detect_cli("--input", str(source), "--method", "ears-c1", "--output", str(out), "--gaps", "error")
    assert done.returncode == 2 and "series a has 1 missing day(s)" in done.stderr and _day(7) in done.stderr
    # without the gap, --gaps error judges each series over its own span
    source = _write(tmp_path / "g2.csv", [("a", _day(k), "3") for k in range(1, 12)] + b)
    done = _detect_cli("--input", str(source), "--method", "ears-c1", "--output", str(out), "--gaps", "error")
    assert done.returncode == 0, done.stderr
    with out.open(newline="", encoding="utf-8") as handle:
        dates = [r["date"] for r in csv.DictReader(handle) if r["series_id"] == "a"]
    assert dates == [_day(k) for k in range(8, 12)]
