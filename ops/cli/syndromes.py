"""``healthbus syndromes …``: syndromic surveillance (docs/domain.md §5, issue #7).

`classify` labels a CSV of complaints with the function the surveillance stream stage calls
(``streams.surveillance.syndromes.classify``), so a file and the stream give the same answer.

Input: UTF-8 (with or without BOM), header ``record_id,chief_complaint,temperature,diagnosis_codes,age_years``
(in any order; further columns, such as a test set's ``expected``, are ignored). ``temperature`` in ℃ or
empty (full-width digits and a trailing "℃"/"°C" are accepted), ``diagnosis_codes`` separated by ";",
``age_years`` a number or empty. Output: header ``record_id,syndromes``, the codes sorted and joined by ";",
empty when the visit has none.

A row that cannot be classified as given (temperature or age not a number, negative age, missing
record_id, fewer fields than the header) is reported on stderr with its record_id and line number and
left out of the output: writing it with an empty ``syndromes`` would claim "classified, no syndrome".
The other rows are still written, and the command exits 1 at the end when any row failed. A temperature
that parses but is implausible (outside 34–43 ℃) is not a failure: the classifier ignores it, as in the
stream. A header without the required columns exits 2 before anything is written.
"""

from __future__ import annotations

import csv
import math
import time
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

syndromes_app = typer.Typer(
    help="Syndromic surveillance: classify visits into the syndromes of docs/domain.md §5.", no_args_is_help=True
)


@syndromes_app.callback()
def _group() -> None:
    """Syndromic surveillance: classify visits into the syndromes of docs/domain.md §5."""
    # a callback keeps `classify` a subcommand while it is the app's only command


INPUT_COLUMNS = ("record_id", "chief_complaint", "temperature", "diagnosis_codes", "age_years")


class RowError(ValueError):
    pass


def _number(text: str, what: str) -> float | None:
    text = unicodedata.normalize("NFKC", text).strip()
    if what == "temperature":
        text = text.removesuffix("°C").removesuffix("°").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise RowError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise RowError(f"{what} {text!r} is not a number")
    if what == "age_years" and value < 0:
        raise RowError(f"age_years {text!r} is negative")
    return value


@syndromes_app.command("classify")
def classify_file(
    input_path: Annotated[
        Path,
        typer.Option(
            "--input",
            exists=True,
            dir_okay=False,
            help="CSV: record_id,chief_complaint,temperature,diagnosis_codes,age_years",
        ),
    ],
    output_path: Annotated[Path, typer.Option("--output", help="CSV to write: record_id,syndromes")],
) -> None:
    """Label each complaint with its syndromes (codes sorted, joined by ";"; empty when none)."""
    from streams.surveillance.syndromes import Syndrome, classify, syndromes_field

    started = time.perf_counter()
    rows = with_syndrome = failed = 0
    counts: Counter[Syndrome] = Counter()
    with input_path.open(encoding="utf-8-sig", newline="") as src:
        reader = csv.reader(src)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in INPUT_COLUMNS if c not in header]
        if missing:
            raise typer.BadParameter(
                f"{input_path}: the header lacks {', '.join(missing)} (needs {','.join(INPUT_COLUMNS)})",
                param_hint="--input",
            )
        i_id, i_text, i_temp, i_dx, i_age = (header.index(c) for c in INPUT_COLUMNS)
        width = max(i_id, i_text, i_temp, i_dx, i_age) + 1
        with output_path.open("w", encoding="utf-8", newline="") as dst:
            writer = csv.writer(dst, lineterminator="\n")
            writer.writerow(("record_id", "syndromes"))
            line = reader.line_num + 1  # where the next record starts
            for row in reader:
                first_line, line = line, reader.line_num + 1
                if not row:
                    continue
                rows += 1
                record_id = row[i_id].strip() if len(row) > i_id else ""
                try:
                    if len(row) < width:
                        raise RowError(f"{len(row)} fields, the header has {len(header)}")
                    if not record_id:
                        raise RowError("no record_id")
                    temperature = _number(row[i_temp], "temperature")
                    _number(row[i_age], "age_years")
                except RowError as exc:
                    failed += 1
                    typer.secho(
                        f"{input_path}:{first_line}: record {record_id or '?'}: {exc}; row left out",
                        fg=typer.colors.RED,
                        err=True,
                    )
                    continue
                codes = [c for c in row[i_dx].replace("；", ";").split(";") if c.strip()]
                result = classify(row[i_text], (), temperature, codes)
                if result.syndromes:
                    with_syndrome += 1
                    counts.update(result.syndromes)
                writer.writerow((record_id, syndromes_field(result)))
    seconds = time.perf_counter() - started
    per_syndrome = ", ".join(f"{s.value} {counts[s]}" for s in Syndrome)
    typer.echo(
        f"{rows} rows, {with_syndrome} with a syndrome, {failed} failed; {per_syndrome}; {seconds:.2f} s", err=True
    )
    if failed:
        raise typer.Exit(1)
