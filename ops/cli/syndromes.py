"""``healthbus syndromes …``: syndromic surveillance (docs/domain.md §5, issue #7).

`classify` labels a CSV of complaints with the function the surveillance stream stage calls
(``streams.surveillance.syndromes.classify``), so a file and the stream give the same answer.

Input: UTF-8 (with or without BOM) or GB18030/GBK, detected unless ``--encoding`` names it (as Excel writes
CSV: CRLF, doubled quotes, quoted fields with commas and line breaks), header
``record_id,chief_complaint,temperature,diagnosis_codes,age_years``
(in any order; further columns, such as a test set's ``expected``, are ignored). ``temperature`` in ℃ or
empty (full-width digits and a trailing "℃"/"°C" are accepted), ``diagnosis_codes`` separated by ";",
``age_years`` a number or empty. Output: header ``record_id,syndromes``, the codes sorted and joined by ";",
empty when the visit has none.

A row that cannot be classified as given (temperature or age not a number, negative age, missing
record_id, fewer fields than the header or surplus non-empty ones) is reported on stderr with its record_id
and line number and left out of the output: writing it with an empty ``syndromes`` would claim "classified, no
syndrome". The other rows are still written, and the command exits 1 at the end when any row failed. A
temperature that parses but is implausible (outside 34–43 ℃) is not a failure: the classifier ignores it, as
in the stream. A header without the required columns, or a file that cannot be read as CSV (undecodable
bytes, a NUL byte, an over-long line or field, a quote left open: foundation/text_files.py), exits 2 with the
file, line and reason, and leaves no output.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from foundation.text_files import ENCODING_HELP

syndromes_app = typer.Typer(
    help="Syndromic surveillance: classify visits into the syndromes of docs/domain.md §5.", no_args_is_help=True
)


@syndromes_app.callback()
def _group() -> None:
    """Syndromic surveillance: classify visits into the syndromes of docs/domain.md §5."""
    # a callback keeps `classify` a subcommand while it is the app's only command


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
    encoding: Annotated[str | None, typer.Option("--encoding", help=ENCODING_HELP)] = None,
) -> None:
    """Label each complaint with its syndromes (codes sorted, joined by ";"; empty when none)."""
    from foundation.text_files import InputFileError, UnusableEncoding
    from streams.surveillance.complaints_file import classify_complaints
    from streams.surveillance.syndromes import Syndrome

    started = time.perf_counter()

    def report(line: int, record_id: str, problem: str) -> None:
        typer.secho(
            f"{input_path}:{line}: record {record_id or '?'}: {problem}; row left out", fg=typer.colors.RED, err=True
        )

    try:
        summary = classify_complaints(input_path, output_path, report, encoding)
    except UnusableEncoding as exc:
        raise typer.BadParameter(str(exc), param_hint="--encoding") from None
    except InputFileError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    rows, with_syndrome, failed, counts = summary.rows, summary.with_syndrome, summary.failed, summary.counts
    seconds = time.perf_counter() - started
    per_syndrome = ", ".join(f"{s.value} {counts[s]}" for s in Syndrome)
    typer.echo(
        f"{rows} rows, {with_syndrome} with a syndrome, {failed} failed; {per_syndrome}; {seconds:.2f} s", err=True
    )
    if failed:
        raise typer.Exit(1)
