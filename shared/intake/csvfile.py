"""CSV text: encoding, line endings, the delimiter, and RFC 4180 records read with the csv module."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from .errors import FileRejected
from .source import Content, stream, whole

_STEP = 1 << 20
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}


def line_of(content: bytes, offset: int) -> int:
    """The 1-based line a byte offset is on, counting LF, CRLF and lone CR endings."""
    head = content[:offset]
    return 1 + head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n")


def text_problems(content: bytes) -> list[str]:
    """Binary content (NUL bytes) or bytes that are not UTF-8, located; decoded a slice at a time."""
    nul = content.find(b"\x00")
    if nul >= 0:
        return [f"the file contains binary data (a NUL byte on line {line_of(content, nul)}); upload CSV or XLSX"]
    start = 0
    while start < len(content):
        end = min(start + _STEP, len(content))
        back = end
        while start < back < len(content) and content[back] & 0xC0 == 0x80 and end - back < 3:
            back -= 1  # do not cut a multi-byte character in two
        end = back if back > start else end
        try:
            content[start:end].decode("utf-8")
        except UnicodeDecodeError as exc:
            offset = start + exc.start
            return [
                f"the file is not UTF-8 text: byte {offset} (line {line_of(content, offset)}) is "
                f"0x{content[offset]:02x}; save it as 'CSV UTF-8'"
            ]
        start = end
    return []


def detect_delimiter(content: bytes) -> str:
    """Comma, unless the header line has none but has ';' or a tab (not both)."""
    start = 3 if content.startswith(b"\xef\xbb\xbf") else 0
    while start < len(content) and content[start] in b"\r\n":  # blank lines are not records
        start += 1
    end = len(content)
    for mark in (b"\n", b"\r"):
        found = content.find(mark, start, end)
        end = found if found >= 0 else end
    first = content[start:end]
    if b"," in first:
        return ","
    semicolon, tab = b";" in first, b"\t" in first
    if semicolon and tab:
        raise FileRejected("the header line has no commas but both ';' and tabs: cannot tell the delimiter")
    return ";" if semicolon else "\t" if tab else ","


def records(content: Content, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) for each record, streaming; blank lines are not records and are skipped."""
    text = io.TextIOWrapper(stream(content), encoding="utf-8-sig", newline="")
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    start = 1
    try:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise FileRejected(_csv_problem(start, str(exc))) from None
            except UnicodeDecodeError:
                raise FileRejected(text_problems(whole(content)) or ["the file is not UTF-8 text"]) from None
            if row:
                yield start, row
            start = reader.line_num + 1
    finally:
        # The caller's file stays the caller's to close, and may be closed already: a download whose last wanted
        # row came before the file's end closes its file, and this generator is finished later, when collected.
        if not text.closed:
            text.detach()


def _csv_problem(line: int, message: str) -> str:
    if "unexpected end of data" in message or "EOF" in message:
        return f"line {line}: a quoted field is never closed (unterminated quote)"
    if "field larger than field limit" in message:
        return f"line {line}: a field is longer than {csv.field_size_limit()} characters"
    return f"line {line}: malformed quoting ({message})"
