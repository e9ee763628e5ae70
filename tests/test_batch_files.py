"""The files people actually have (issue #17, "Hardening"): what the batch commands read when a CSV or JSONL
file comes from a Chinese Windows machine, and how they answer a malformed one.

Read: GBK/GB18030 (detected, or named with ``--encoding``), UTF-8 with or without a BOM, CRLF line ends,
Excel's quoting (doubled quotes, quoted fields holding commas and line breaks). Refused with the file, the
line and a reason, exit status 2, never a traceback: undecodable bytes, a NUL byte, an over-long line or
field, a quote left open, a wrong column count. A bad row where the command already skips rows (syndromes
classify, routing decide) is still skipped. The commands run in-process through typer's CliRunner (one
test runs the real ``python -m ops.cli``); no service is needed.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ops.cli.app import app
from streams.identity.record import CSV_HEADER

REPO = Path(__file__).resolve().parent.parent


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def assert_refused(result: Result, *fragments: str) -> None:
    """Exit status 2 with a message naming what is wrong, and no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


def excel_csv(rows: list[list[str]]) -> str:
    """What Excel writes: CRLF line ends, a field quoted when it holds a comma, quote or line break."""

    def field(value: str) -> str:
        if any(c in value for c in ',"\r\n'):
            return '"' + value.replace('"', '""') + '"'
        return value

    return "".join(",".join(field(v) for v in row) + "\r\n" for row in rows)


# -- records for `empi link|train` ----------------------------------------------------------------
ADDRESS = "河南省信阳市浉河区五星街道，东方红大道88号\n3栋2单元"  # a comma and an Alt+Enter line break
PERSON = ["412000000000000001", "H001", "张伟", "1", "1980-01-02", "01", "411502198001020011", "", "", "13800000001"]
OTHER = ["412000000000000002", "H777", '王"小"芳', "2", "1975-06-30", "01", "411521197506300025", "", "", "13900000002"]


def records_rows() -> list[list[str]]:
    return [
        list(CSV_HEADER),
        ["r1", *PERSON, ADDRESS],
        ["r2", *PERSON[:1], "H002", *PERSON[2:], ADDRESS],  # the same resident at another clinic
        ["r3", *OTHER, "河南省信阳市平桥区"],
    ]


def write_records(path: Path, encoding: str, rows: list[list[str]] | None = None) -> Path:
    path.write_bytes(excel_csv(rows or records_rows()).encode(encoding))
    return path


@pytest.mark.parametrize("encoding", ["gb18030", "gbk", "utf-8-sig", "utf-8"])
def test_records_are_read_in_any_encoding_excel_writes(tmp_path: Path, encoding: str) -> None:
    from streams.identity.records_csv import read_records_csv

    records = read_records_csv(write_records(tmp_path / "records.csv", encoding))
    assert [r.record_id for r in records] == ["r1", "r2", "r3"]
    assert records[0].name == "张伟" and records[0].address == ADDRESS
    assert records[2].name == '王"小"芳'


def test_empi_link_reads_a_gb18030_file_with_crlf_and_excel_quoting(tmp_path: Path) -> None:
    source = write_records(tmp_path / "records.csv", "gb18030")
    links = tmp_path / "links.csv"
    result = run("empi", "link", "--input", str(source), "--output", str(links))
    assert result.exit_code == 0, result.output
    with links.open(encoding="utf-8", newline="") as handle:
        person_of = {row["record_id"]: row["person_id"] for row in csv.DictReader(handle)}
    assert list(person_of) == ["r1", "r2", "r3"]
    assert person_of["r1"] == person_of["r2"] != person_of["r3"]


def test_empi_link_takes_a_named_encoding_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    source = write_records(tmp_path / "records.csv", "gbk")
    links = tmp_path / "links.csv"
    result = run("empi", "link", "--input", str(source), "--output", str(links), "--encoding", "gbk")
    assert result.exit_code == 0, result.output
    assert_refused(
        run("empi", "link", "--input", str(source), "--output", str(links), "--encoding", "klingon"), "klingon"
    )
    # UTF-16 is not a CSV encoding the readers take: its line breaks are not the byte 0x0A
    assert_refused(run("empi", "link", "--input", str(source), "--output", str(links), "--encoding", "utf-16"))


def test_empi_link_names_the_line_of_undecodable_bytes(tmp_path: Path) -> None:
    source = write_records(tmp_path / "records.csv", "gbk")
    result = run("empi", "link", "--input", str(source), "--output", str(tmp_path / "l.csv"), "--encoding", "utf-8")
    assert_refused(result, "records.csv", "line 2", "utf-8")


def test_empi_link_refuses_a_wrong_column_count(tmp_path: Path) -> None:
    rows = records_rows()
    rows[3] = rows[3][:9]  # a truncated row: 9 of the 12 fields
    source = write_records(tmp_path / "records.csv", "utf-8", rows)
    result = run("empi", "link", "--input", str(source), "--output", str(tmp_path / "links.csv"))
    assert_refused(result, "records.csv", "line 6", "9 fields", "12")  # r1 and r2 span two lines each


def test_empi_link_refuses_a_nul_byte(tmp_path: Path) -> None:
    source = tmp_path / "records.csv"
    source.write_bytes(excel_csv(records_rows()).encode("utf-8").replace("王".encode(), b"\x00"))
    result = run("empi", "link", "--input", str(source), "--output", str(tmp_path / "links.csv"))
    assert_refused(result, "records.csv", "line 6", "NUL")


def test_empi_link_refuses_a_field_beyond_the_limit(tmp_path: Path) -> None:
    rows = records_rows()
    rows[3][-1] = "村" * 200_000
    source = write_records(tmp_path / "records.csv", "utf-8", rows)
    result = run("empi", "link", "--input", str(source), "--output", str(tmp_path / "links.csv"))
    assert_refused(result, "records.csv", "line 6", "longer than")


def test_empi_link_refuses_a_quote_left_open(tmp_path: Path) -> None:
    text = excel_csv(records_rows()) + 'r4,412000000000000003,H9,"李四,1\r\n'  # a file cut off inside a quoted field
    source = tmp_path / "records.csv"
    source.write_text(text, encoding="utf-8")
    result = run("empi", "link", "--input", str(source), "--output", str(tmp_path / "links.csv"))
    assert_refused(result, "records.csv", "line 7", "quote")


def test_empi_train_answers_a_malformed_file_without_a_traceback(tmp_path: Path) -> None:
    source = tmp_path / "records.csv"
    source.write_bytes(b"\xff\xfe" + excel_csv(records_rows()).encode("utf-16-le"))  # Excel's "Unicode text"
    assert_refused(run("empi", "train", "--input", str(source), "--output", str(tmp_path / "m.json")), "UTF-16")
    rows = records_rows()
    rows[1].append("surplus")
    write_records(source, "gb18030", rows)
    result = run("empi", "train", "--input", str(source), "--output", str(tmp_path / "m.json"))
    assert_refused(result, "records.csv", "line 2", "13 fields")
    assert not (tmp_path / "m.json").exists()


# -- complaints for `syndromes classify` ----------------------------------------------------------
COMPLAINTS = [
    ["record_id", "chief_complaint", "temperature", "diagnosis_codes", "age_years"],
    ["c1", "发热，咳嗽", "38.5", "", "34"],
    ["c2", '患者自述"腹泻，\n水样便"3次', "", "A09.000;K52.900", "5"],
    ["c3", "咳嗽", "high", "", "40"],  # a bad row: left out, as before
    ["c4", "腰痛", "", "", ""],
]


@pytest.mark.parametrize("encoding", ["gb18030", "utf-8-sig"])
def test_syndromes_classify_reads_gb18030_and_bom_files_and_still_skips_a_bad_row(
    tmp_path: Path, encoding: str
) -> None:
    source = tmp_path / "complaints.csv"
    source.write_bytes(excel_csv(COMPLAINTS).encode(encoding))
    labels = tmp_path / "labels.csv"
    result = run("syndromes", "classify", "--input", str(source), "--output", str(labels))
    assert result.exit_code == 1, result.output  # a row failed
    assert "complaints.csv:5: record c3: temperature 'high' is not a number" in result.stderr
    assert labels.read_text(encoding="utf-8") == "record_id,syndromes\nc1,FEVER_RESP;ILI\nc2,DIARRHEA\nc4,\n"


def test_syndromes_classify_takes_a_named_encoding(tmp_path: Path) -> None:
    source = tmp_path / "complaints.csv"
    source.write_bytes(excel_csv([COMPLAINTS[0], COMPLAINTS[1]]).encode("gbk"))
    labels = tmp_path / "labels.csv"
    result = run("syndromes", "classify", "--input", str(source), "--output", str(labels), "--encoding", "GBK")
    assert result.exit_code == 0, result.output
    assert labels.read_text(encoding="utf-8") == "record_id,syndromes\nc1,FEVER_RESP;ILI\n"


def test_syndromes_classify_skips_a_row_with_surplus_fields(tmp_path: Path) -> None:
    source = tmp_path / "complaints.csv"
    rows = [*COMPLAINTS[:2], ["c9", "发热", "咳嗽", "38.9", "", "7"], COMPLAINTS[4]]  # an unquoted comma
    source.write_bytes(excel_csv(rows).encode("utf-8"))
    labels = tmp_path / "labels.csv"
    result = run("syndromes", "classify", "--input", str(source), "--output", str(labels))
    assert result.exit_code == 1, result.output
    assert "complaints.csv:3: record c9: 6 fields, the header has 5" in result.stderr
    assert labels.read_text(encoding="utf-8") == "record_id,syndromes\nc1,FEVER_RESP;ILI\nc4,\n"


@pytest.mark.parametrize(
    ("damage", "fragments"),
    [
        (lambda b: b + b"c5,\xff\xfe,,,\r\n", ("line 7", "0xFF")),  # neither UTF-8 nor GB18030
        (lambda b: b.replace(b"c4,", b"c4\x00,"), ("line 6", "NUL")),
        (lambda b: b + b'c5,"' + "很长".encode("gb18030") * 100_000 + b"\r\n", ("line 7", "longer than")),
        (lambda b: b + b"c5," + b"x" * 2_000_000 + b"\r\n", ("line 7", "longer than")),
    ],
    ids=["undecodable", "nul", "long-field", "long-line"],
)
def test_syndromes_classify_refuses_a_malformed_file_before_writing(tmp_path: Path, damage, fragments) -> None:
    source = tmp_path / "complaints.csv"
    source.write_bytes(damage(excel_csv(COMPLAINTS).encode("gb18030")))
    labels = tmp_path / "labels.csv"
    result = run("syndromes", "classify", "--input", str(source), "--output", str(labels))
    assert_refused(result, "complaints.csv", *fragments)
    assert not labels.exists()


# -- series for `surveillance detect` -------------------------------------------------------------
def series_rows() -> list[list[str]]:
    counts = [3, 2, 4, 3, 2, 5, 4, 20]
    rows = [["series_id", "date", "count"]]
    rows += [["浉河区-流感样", f"2026-03-{k + 1:02d}", str(c)] for k, c in enumerate(counts)]
    return rows


@pytest.mark.parametrize("encoding", ["gb18030", "utf-8-sig"])
def test_surveillance_detect_reads_gb18030_and_bom_files_with_crlf(tmp_path: Path, encoding: str) -> None:
    source = tmp_path / "series.csv"
    source.write_bytes(excel_csv(series_rows()).encode(encoding))
    alarms = tmp_path / "alarms.csv"
    result = run("surveillance", "detect", "--input", str(source), "--method", "ears-c1", "--output", str(alarms))
    assert result.exit_code == 0, result.output
    with alarms.open(encoding="utf-8", newline="") as handle:
        [judged] = list(csv.DictReader(handle))
    assert (judged["series_id"], judged["date"], judged["alarm"]) == ("浉河区-流感样", "2026-03-08", "1")


def test_surveillance_detect_takes_a_named_encoding(tmp_path: Path) -> None:
    source = tmp_path / "series.csv"
    source.write_bytes(excel_csv(series_rows()).encode("gbk"))
    alarms = tmp_path / "alarms.csv"
    args = ("--input", str(source), "--method", "ears-c1", "--output", str(alarms))
    assert run("surveillance", "detect", *args, "--encoding", "cp936").exit_code == 0
    assert_refused(run("surveillance", "detect", *args, "--encoding", "ascii"), "series.csv", "line 2", "ascii")


def test_surveillance_detect_refuses_a_row_with_surplus_fields(tmp_path: Path) -> None:
    rows = series_rows()
    rows[4] = ["浉河区", "流感样", "2026-03-04", "3"]  # an unquoted comma in the series id
    source = tmp_path / "series.csv"
    source.write_bytes(excel_csv(rows).encode("gb18030"))
    result = run(
        "surveillance", "detect", "--input", str(source), "--method", "ears-c1", "--output", str(tmp_path / "a.csv")
    )
    assert_refused(result, "series.csv", "line 5", "4 fields, the header has 3")


def test_surveillance_detect_allows_the_empty_cells_excel_pads_rows_with(tmp_path: Path) -> None:
    rows = [row + ["", ""] for row in series_rows()]
    source = tmp_path / "series.csv"
    source.write_bytes(excel_csv(rows).encode("utf-8"))
    result = run(
        "surveillance", "detect", "--input", str(source), "--method", "ears-c1", "--output", str(tmp_path / "a.csv")
    )
    assert result.exit_code == 0, result.output


def test_surveillance_detect_refuses_a_field_beyond_the_limit(tmp_path: Path) -> None:
    source = tmp_path / "series.csv"
    source.write_bytes(excel_csv(series_rows()).encode("utf-8") + b'x,"2026-03-09,1\r\n' + b"9\r\n" * 70_000)
    result = run(
        "surveillance", "detect", "--input", str(source), "--method", "ears-c1", "--output", str(tmp_path / "a.csv")
    )
    assert_refused(result, "series.csv", "line 10", "longer than")


def test_a_damaged_utf8_file_is_not_read_as_gb18030(tmp_path: Path) -> None:
    # a UTF-8 file cut off in the middle of a character: no silent fallback that would turn it into mojibake
    source = tmp_path / "series.csv"
    source.write_bytes(excel_csv(series_rows()).encode("utf-8") + "浉河区-流感样,2026-03-09,1\r\n浉".encode()[:-1])
    result = run(
        "surveillance", "detect", "--input", str(source), "--method", "ears-c1", "--output", str(tmp_path / "a.csv")
    )
    assert_refused(result, "series.csv", "line 11", "UTF-8")


# -- events for `routing decide` ------------------------------------------------------------------
def event_lines(count: int = 2) -> list[str]:
    from avro_schemas.json_form import to_json
    from tests.routing_events import Patient

    return [to_json(Patient().visit("I10", "E11.900")) for _ in range(count)]


def decide(tmp_path: Path, data: bytes, *options: str) -> tuple[Result, list[dict]]:
    source, out = tmp_path / "events.jsonl", tmp_path / "decisions.jsonl"
    source.write_bytes(data)
    out.unlink(missing_ok=True)
    result = run("routing", "decide", "--input", str(source), "--output", str(out), *options)
    decisions = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] if out.exists() else []
    return result, decisions


@pytest.mark.parametrize("encoding", ["gb18030", "utf-8-sig"])
def test_routing_decide_reads_gb18030_and_bom_files_with_crlf(tmp_path: Path, encoding: str) -> None:
    lines = event_lines()
    expected_result, expected = decide(tmp_path, "\n".join(lines).encode("utf-8"))
    assert expected_result.exit_code == 0 and [len(d["claims"]) for d in expected] == [2, 2]
    result, decisions = decide(tmp_path, "\r\n".join(lines).encode(encoding) + b"\r\n")
    assert result.exit_code == 0, result.output
    assert decisions == expected


def test_routing_decide_reports_a_deeply_nested_line_and_goes_on(tmp_path: Path) -> None:
    first, last = event_lines()
    for depth in (100, 100_000):
        data = "\n".join([first, "", "[" * depth + "]" * depth, last]).encode("utf-8")
        result, decisions = decide(tmp_path, data)
        assert result.exit_code == 0, (result.output, result.exception)
        assert [d["line"] for d in decisions] == [1, 3, 4]  # the file's line numbers: the blank line counts
        assert decisions[1]["error"]["code"] == "too_deep" and "claims" not in decisions[1]
        assert len(decisions[2]["claims"]) == 2
        assert "events.jsonl: line 3: " in result.stderr and "nested" in result.stderr


def test_routing_decide_names_the_line_of_a_bad_json_line(tmp_path: Path) -> None:
    first, last = event_lines()
    result, decisions = decide(tmp_path, "\n".join([first, last[: len(last) // 2], last]).encode("utf-8"))
    assert result.exit_code == 0
    assert decisions[1] == {"line": 2, "error": decisions[1]["error"]} and decisions[1]["error"]["code"] == "bad_json"
    assert "events.jsonl: line 2: " in result.stderr


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        (b'{"envelope": "' + b"x" * 2_000_000 + b'"}\n', ("line 2", "longer than")),
        (b"\xff\n", ("line 2", "0xFF")),
        (b'{"a": "b\x00"}\n', ("line 2", "NUL")),
    ],
    ids=["long-line", "undecodable", "nul"],
)
def test_routing_decide_refuses_a_malformed_file(tmp_path: Path, data: bytes, fragments: tuple[str, ...]) -> None:
    result, decisions = decide(tmp_path, event_lines(1)[0].encode("utf-8") + b"\n" + data)
    assert_refused(result, "events.jsonl", *fragments)
    assert decisions == []


def test_routing_decide_takes_a_named_encoding(tmp_path: Path) -> None:
    data = "\n".join(event_lines()).encode("gb18030")
    result, decisions = decide(tmp_path, data, "--encoding", "gb18030")
    assert result.exit_code == 0 and len(decisions) == 2 and all(d["claims"] for d in decisions)
    assert_refused(decide(tmp_path, data, "--encoding", "utf-8")[0], "events.jsonl", "line 1", "utf-8")


# -- the real command line ------------------------------------------------------------------------
def test_the_command_line_answers_without_a_traceback(tmp_path: Path) -> None:
    source = tmp_path / "series.csv"
    source.write_bytes(excel_csv(series_rows()).encode("gb18030") + b"\x81\r\n")  # a lead byte without its trail
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "surveillance", "detect", "--input", str(source), "--method", "ears-c1"]
        + ["--output", str(tmp_path / "alarms.csv")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: {source}: line 10: ") and "0x81" in done.stderr, done.stderr


# -- the shared reader (foundation/text_files.py) -------------------------------------------------
def test_detection_rule(tmp_path: Path) -> None:
    from foundation.text_files import open_text

    def detected(data: bytes) -> str:
        path = tmp_path / "f.txt"
        path.write_bytes(data)
        return open_text(path).encoding

    text = "姓名,住址\r\n张伟,河南省信阳市\r\n"
    assert detected(text.encode("utf-8")) == "utf-8"
    assert detected(text.encode("utf-8-sig")) == "utf-8"
    assert detected(text.encode("gbk")) == detected(text.encode("gb18030")) == "gb18030"
    assert detected(b"id,count\r\n1,2\r\n") == "utf-8"
    assert detected(b"") == "utf-8"


def test_lines_keep_their_ends_and_lose_the_bom(tmp_path: Path) -> None:
    from foundation.text_files import lines, open_text

    path = tmp_path / "f.csv"
    path.write_bytes('\ufeffa,b\r\n张,"x\ny"\r\nlast'.encode())
    assert list(lines(open_text(path))) == ["a,b\r\n", '张,"x\n', 'y"\r\n', "last"]


def test_csv_records_start_on_their_first_line(tmp_path: Path) -> None:
    from foundation.text_files import csv_records, open_text

    path = tmp_path / "f.csv"
    path.write_bytes(excel_csv([["a", "b"], ["1", "x\r\ny"], [], ["2", '"']]).encode("gb18030"))
    assert list(csv_records(open_text(path))) == [(1, ["a", "b"]), (2, ["1", "x\r\ny"]), (4, []), (5, ["2", '"'])]


def test_json_nesting_depth() -> None:
    from foundation.text_files import MAX_JSON_DEPTH, json_too_deep

    assert not json_too_deep(event_lines(1)[0])
    assert not json_too_deep("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    assert json_too_deep("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    assert json_too_deep('{"a":' * 1000 + "1" + "}" * 1000)
    # brackets inside strings do not nest, escaped quotes do not end a string
    assert not json_too_deep(json.dumps({"text": "[" * 500 + '\\"{' * 500}))


@pytest.mark.parametrize(
    ("data", "encoding", "fragments"),
    [
        (b'a,b\r\n1,"x"y\r\n', None, ("line 2", "after its closing quote")),
        (b"a,b\r1,2\r", None, ("line 1", "CR only")),
        ("\ufeffa,b\r\n张,1\r\n".encode(), "gbk", ("byte-order mark", "gbk")),
        ("a\r\n张\r\n".encode("utf-32"), None, ("UTF-32",)),
        (b"a\r\n" + "张".encode("gbk")[:1], None, ("line 2", "0x")),  # a GBK file cut off inside a character
    ],
    ids=["text-after-quote", "cr-only", "bom-vs-gbk", "utf-32", "cut-off-gbk"],
)
def test_csv_problems_are_named(tmp_path: Path, data: bytes, encoding: str | None, fragments: tuple[str, ...]) -> None:
    from foundation.text_files import InputFileError, csv_records, open_text

    path = tmp_path / "f.csv"
    path.write_bytes(data)
    with pytest.raises(InputFileError) as caught:
        list(csv_records(open_text(path, encoding)))
    assert str(caught.value).startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    from foundation.text_files import InputFileError, open_text

    with pytest.raises(InputFileError, match="cannot be read"):
        open_text(tmp_path / "nope.csv")
