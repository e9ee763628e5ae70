"""``healthbus bench syndromes``: syndrome classification per worker and early-warning detection at city
scale, each next to a baseline measured in the same run (issue #7).

Classification subject: the chief complaints, structured symptoms, temperatures and diagnosis codes of
synthetic outpatient visits (``outpatient_visits``: the respiratory and diarrhoeal waves, rashes, fevers
and everyday complaints the demo's hospitals write). Rows: the baseline is what any classifier pays to
look at a complaint at all (NFKC normalisation and one substring test per visit); then ``classify`` (the
target: ≥ 20,000 complaints/s per worker) and the batch CLI's line path (a CSV row in, a label row out).

Detection subject: 10 counties × 9 syndromes × 4 population groups × 3 years of days (360 series × 1,096
days) of Poisson counts with a weekly rhythm and a few outbreaks. Rows: the baseline is the rolling
mean of every series (a cumulative sum over the matrix, what any of the methods starts from); then
``detect_many`` for EARS C1, C2, C3 and EWMA (the target: each under one second). Each figure is the best
of three runs.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from functools import partial

import numpy as np

from ops.bench.table import BenchRow, best_rate, best_seconds
from streams.surveillance.detection import DetectionParams, Method, detect_many
from streams.surveillance.syndromes import classify, syndromes_field
from synthetic.outpatient_visits import outpatient_visits

CLASSIFY_TARGET = 20_000
DETECT_TARGET_SECONDS = 1.0
SERIES, DAYS = 10 * 9 * 4, 3 * 365 + 1


def _complaints(n: int, seed: int) -> list[tuple[str | None, list[str], float | None, list[str]]]:
    return [
        (
            v.get("chief_complaint"),
            list(v.get("symptoms") or ()),
            v.get("temperature_c"),
            [d["code"] for d in v.get("diagnoses") or ()],
        )
        for v in outpatient_visits(n, seed=seed)
    ]


def _series(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    level = rng.gamma(2.0, 3.0, size=(SERIES, 1))  # some series busy, many sparse
    weekly = 1 + 0.25 * np.sin(2 * np.pi * np.arange(DAYS) / 7)
    counts = rng.poisson(level * weekly)
    for row in rng.choice(SERIES, size=SERIES // 10, replace=False):  # an outbreak in one series in ten
        start = int(rng.integers(30, DAYS - 20))
        counts[row, start : start + 10] += rng.poisson(level[row, 0] * 3 + 3, size=10)
    return counts.astype(float)


def run(complaints: int = 20_000, seed: int = 23) -> list[BenchRow]:
    visits = _complaints(complaints, seed)
    classify(*visits[0])  # compile the lexicon before timing
    lines = []
    for n, (text, _symptoms, temperature, codes) in enumerate(visits):
        lines.append([str(n), text or "", "" if temperature is None else str(temperature), ";".join(codes), "40"])

    def baseline() -> int:
        return sum("发热" in unicodedata.normalize("NFKC", text or "") for text, *_ in visits)

    def classify_all() -> int:
        return sum(bool(classify(*v).syndromes) for v in visits)

    def cli_all() -> None:
        out = io.StringIO()
        writer = csv.writer(out)
        for record_id, text, temperature, codes, _age in lines:
            label = syndromes_field(
                classify(text, (), float(temperature) if temperature else None, codes.split(";") if codes else ())
            )
            writer.writerow([record_id, label])

    with_syndrome = classify_all()
    classify_rate = best_rate(classify_all, complaints)
    rows = [
        BenchRow(
            "baseline: normalise + one term complaints/s",
            best_rate(baseline, complaints),
            "NFKC and one substring test per complaint: the least any classifier pays",
        ),
        BenchRow(
            "syndrome classification complaints/s",
            classify_rate,
            f"classify(): complaint, symptoms, temperature, codes; target ≥ {CLASSIFY_TARGET:,}",
        ),
        BenchRow("classification vs target", classify_rate / CLASSIFY_TARGET, "≥ 1 meets the issue's target"),
        BenchRow("batch cli row path complaints/s", best_rate(cli_all, complaints), "CSV row → classify → label row"),
        BenchRow("visits with a syndrome share", with_syndrome / complaints, "synthetic outpatient visits"),
    ]
    matrix = _series(seed)
    params = DetectionParams()
    rows.append(
        BenchRow(
            "baseline: rolling means seconds",
            best_seconds(lambda: np.cumsum(matrix, axis=1)[:, 7:] - np.cumsum(matrix, axis=1)[:, :-7]),
            f"{SERIES} series × {DAYS} days: the 7-day sums every method starts from",
        )
    )
    for method in Method:
        seconds = best_seconds(partial(detect_many, matrix, method, params))
        rows.append(
            BenchRow(
                f"detection {method.value} seconds",
                seconds,
                f"detect_many over {SERIES} series × {DAYS} days; target < {DETECT_TARGET_SECONDS:g} s",
            )
        )
    worst = max(r.value for r in rows if r.label.startswith("detection "))
    rows.append(BenchRow("slowest detection vs target", worst / DETECT_TARGET_SECONDS, "≤ 1 meets the issue's target"))
    return rows
