"""Text files as people have them: what the batch commands read (``empi link|train``, ``syndromes classify``,
``surveillance detect``, ``routing decide``), often exported on a Chinese Windows machine.

``open_text(path, encoding)`` checks the whole file before any of it is used, so a bad file is refused before
an output is written; ``lines`` then yields its decoded lines, ``csv_records`` its CSV records with the line
each starts on. Every problem is an ``InputFileError`` naming the file, the line (when there is one) and the
reason: ``records.csv: line 7: 0xFF at byte 12 is neither UTF-8 nor GB18030 …``.

The encoding, when ``--encoding`` does not name one, is decided from the bytes, deterministically:

1. a UTF-8 byte-order mark: UTF-8 (Excel's "CSV UTF-8"); the mark is dropped;
2. a UTF-16 or UTF-32 byte-order mark (Excel's "Unicode text"): refused, with what to do;
3. bytes that are UTF-8: UTF-8;
4. bytes that are mostly UTF-8 (fewer undecodable bytes than continuation bytes of well-formed multi-byte
   characters, two per Chinese character; the start of a UTF-8 character cut by the end of the file does not
   count): a damaged or cut-off UTF-8 file, refused at its first bad byte, never read as GB18030 mojibake;
5. otherwise GB18030, the superset of GBK and GB2312 (Excel's "CSV" on a Chinese Windows); bytes that are
   not GB18030 either are refused at their line.

Rule 4 is why this is not simply "UTF-8, else GB18030": a UTF-8 file with one damaged byte would mostly decode
as GB18030 without an error, into wrong names. GBK text is rarely UTF-8 by accident (0.2–0.3 such continuation
bytes per undecodable byte in GBK-encoded complaints, names and addresses), so the threshold has a wide
margin; a GBK file taken for damaged UTF-8 is refused with the advice to name its encoding, never misread. A named
encoding is used as given (any Python codec that keeps ASCII as ASCII, so that a line ends at the byte 0x0A:
UTF-16 and UTF-32 are refused; ``utf-8-sig`` is ``utf-8``, whose BOM is always dropped).

Limits: a line of more than ``MAX_LINE_BYTES`` (1 MiB: no CSV row or event in the JSON form comes near it, a
Kafka message is at most 1 MB); a NUL byte (binary data, or UTF-16 without its mark); a CSV field longer than
csv's ``field_size_limit()`` (131,072 characters, its default); a JSON value nested deeper than
``MAX_JSON_DEPTH`` (``json_too_deep``, checked before ``json.loads``, which would raise RecursionError).
CSV is read as Excel writes it (doubled quotes, quoted fields holding commas and line breaks, CRLF), strictly:
a quote left open or text after a closing quote is an error, not a guess.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAX_LINE_BYTES = 1 << 20
MAX_JSON_DEPTH = 64
ENCODING_HELP = (
    "The input's encoding (utf-8, gbk, gb18030, …); default: detected, UTF-8 (with or without BOM) "
    "else GB18030, the superset of GBK"
)
_CHUNK = MAX_LINE_BYTES
_ASCII_SAMPLE = 'record_id,"0-9 AZ az"\r\n{[]}:\\'
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),  # before UTF-16 LE, whose mark it starts with
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


class InputFileError(ValueError):
    """A file the command cannot use as given: ``path: line N: reason`` (``path: reason`` for the whole file)."""

    def __init__(self, path: Path, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason
        self.line = line

    def __str__(self) -> str:
        return (
            f"{self.path}: line {self.line}: {self.reason}" if self.line is not None else f"{self.path}: {self.reason}"
        )


class UnusableEncoding(ValueError):
    """An ``--encoding`` that is unknown, or that does not keep ASCII as ASCII."""


def check_encoding(name: str) -> str:
    """The codec's canonical name for ``--encoding NAME`` (``utf-8-sig`` is ``utf-8``)."""
    try:
        codec = codecs.lookup(name).name
        sample = _ASCII_SAMPLE.encode(codec)
    except LookupError:
        raise UnusableEncoding(f"unknown encoding {name!r}") from None
    if sample != _ASCII_SAMPLE.encode("ascii"):
        raise UnusableEncoding(
            f"{name!r} does not keep ASCII as ASCII, so lines cannot be found in it (UTF-16 or UTF-32 text: "
            "save it as UTF-8)"
        )
    return "utf-8" if codec == "utf-8-sig" else codec


@dataclass(frozen=True)
class TextInput:
    """A checked file: every line decodes with ``encoding``, none is too long, none holds a NUL byte."""

    path: Path
    encoding: str  # a codec name
    detected: bool  # decided from the bytes, not given


@dataclass
class _Scan:
    nul: bool = False
    long_line: bool = False
    not_utf8: int = 0  # bytes that are not UTF-8
    utf8_extra: int = 0  # bytes of well-formed UTF-8 characters beyond their first (a Chinese character has 2)
    cut_utf8: int = 0  # bytes of a UTF-8 character the file ends inside


def open_text(path: Path, encoding: str | None = None) -> TextInput:
    """Check ``path`` whole, with ``encoding`` or the detected one (module docstring); raise InputFileError."""
    codec = check_encoding(encoding) if encoding else None
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
            for bom, name in _WIDE_BOMS:
                if head.startswith(bom):
                    raise InputFileError(
                        path, f"the file is {name} text (Excel's “Unicode text”): save it as UTF-8 (“CSV UTF-8”)"
                    )
            utf8_bom = head.startswith(codecs.BOM_UTF8)
            if utf8_bom and codec not in (None, "utf-8"):
                raise InputFileError(
                    path, f"the file starts with a UTF-8 byte-order mark, but --encoding is {encoding}"
                )
            handle.seek(0)
            scan = _scan(handle)
    except OSError as exc:
        raise InputFileError(path, f"cannot be read: {exc.strerror or exc}") from None
    if codec is None:
        utf8 = utf8_bom or scan.not_utf8 < max(scan.utf8_extra, 1)
        source = TextInput(path, "utf-8" if utf8 else "gb18030", detected=True)
    else:
        source = TextInput(path, codec, detected=False)
    clean = scan.not_utf8 == scan.cut_utf8 == 0 if source.encoding == "utf-8" else _decodes(source)
    if scan.nul or scan.long_line or not clean:
        for _ in lines(source):  # finds the first problem and raises it with its line
            pass
    return source


def _scan(handle: BinaryIO) -> _Scan:
    """One pass over the bytes in chunks: NUL bytes, over-long lines, and how much of it is UTF-8."""
    scan = _Scan()
    pending = b""  # the start of a character cut by the chunk's end
    run = 0  # bytes of the line still open at the end of the last chunk
    while chunk := handle.read(_CHUNK):
        data = pending + chunk if pending else chunk
        try:
            text, used = codecs.utf_8_decode(data, "strict", False)
        except UnicodeDecodeError:
            text, used = codecs.utf_8_decode(data, "surrogateescape", False)
            scan.not_utf8 += used - len(text.encode("utf-8", "ignore"))  # the escaped bytes: not encodable
        scan.utf8_extra += used - len(text)  # an escaped byte is one character: it adds nothing
        pending = data[used:]
        scan.nul = scan.nul or b"\x00" in chunk
        # a chunk is no longer than the limit, so only a line running over a chunk's end can exceed it
        first = chunk.find(b"\n")
        if first < 0:
            run += len(chunk)
        else:
            scan.long_line = scan.long_line or run + first > MAX_LINE_BYTES
            run = len(chunk) - chunk.rfind(b"\n") - 1
        scan.long_line = scan.long_line or run > MAX_LINE_BYTES
    scan.cut_utf8 = len(pending)  # the start of a character at the very end: a cut-off UTF-8 file, not GBK
    return scan


def _decodes(source: TextInput) -> bool:
    decoder = codecs.getincrementaldecoder(source.encoding)("strict")
    with source.path.open("rb") as handle:
        try:
            while chunk := handle.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _undecodable(source: TextInput, exc: UnicodeDecodeError) -> str:
    shown = " ".join(f"0x{b:02X}" for b in exc.object[exc.start : exc.end][:4])
    where = f"{shown} at byte {exc.start + 1}"
    if exc.end == len(exc.object) and exc.reason in ("unexpected end of data", "incomplete multibyte sequence"):
        name = source.encoding.upper() if source.detected else source.encoding
        return f"the file ends inside a {name} character ({shown}): is it cut off?"
    if not source.detected:
        return f"{where} is not {source.encoding} (--encoding {source.encoding})"
    if source.encoding == "utf-8":
        return (
            f"{where} is not UTF-8, the encoding of the rest of the file: a damaged or cut-off file? "
            "(--encoding names another)"
        )
    return f"{where} is neither UTF-8 nor GB18030 (GBK): name the file's encoding with --encoding"


def lines(source: TextInput) -> Iterator[str]:
    """The decoded lines of a checked file, each with its line end (``\\r\\n`` stays), the BOM dropped."""
    path, encoding = source.path, source.encoding
    with path.open("rb") as handle:
        number = 0
        while raw := handle.readline(MAX_LINE_BYTES + 2):
            number += 1
            if len(raw) - raw.endswith(b"\n") > MAX_LINE_BYTES:
                raise InputFileError(path, f"the line is longer than {MAX_LINE_BYTES:,} bytes", number)
            nul = raw.find(b"\x00")
            if nul >= 0:
                raise InputFileError(
                    path,
                    f"a NUL byte at byte {nul + 1}: binary data, or UTF-16 text without its byte-order mark",
                    number,
                )
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise InputFileError(path, _undecodable(source, exc), number) from None
            if number == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield text


def _csv_problem(message: str) -> str:
    if message.startswith("field larger than field limit"):
        return (
            f"a field is longer than {csv.field_size_limit():,} characters "
            "(a quote left open, whose field runs on over the following lines?)"
        )
    if message == "unexpected end of data":
        return "the file ends inside a quoted field this record opens (a quote left open, or a file cut off)"
    if "expected after" in message:
        return 'a quoted field goes on after its closing quote (a quote inside a quoted field is written "")'
    if message.startswith("new-line character seen in unquoted field"):
        return (
            "a carriage return (CR) inside an unquoted field: old Mac line ends (CR only)? "
            "Save the file with CRLF or LF line ends"
        )
    return f"not CSV: {message}"


def csv_records(source: TextInput) -> Iterator[tuple[int, list[str]]]:
    """(the line the record starts on, its fields) for each CSV record; a blank line gives ``[]``."""
    reader = csv.reader(lines(source), strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputFileError(source.path, _csv_problem(str(exc)), start) from None
        yield start, row
        start = reader.line_num + 1


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests arrays and objects more than ``limit`` deep (brackets in strings don't count)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token == "[" or token == "{":
            depth += 1
            if depth > limit:
                return True
        elif token == "]" or token == "}":
            depth -= 1
    return False
