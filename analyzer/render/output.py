"""Safe rendering of rows for terminals, CSV and JSON lines.

Captures are untrusted: a TargetAlias can carry ANSI escapes, an InitiatorName can start with
``=`` to become a spreadsheet formula. Everything capture-derived goes through here.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

#: Characters that act on a terminal or reorder text but are invisible: C0 (except tab and
#: newline), DEL, C1 (U+009B is a one-character CSI), zero-width and bidi controls.
_INVISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_ESCAPE_SEQ = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")
#: What ``json.dumps(ensure_ascii=False)`` leaves raw but a terminal would act on (it escapes C0 itself).
_JSON_RAW = re.compile(r"[\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
#: In one line of text (a message, a file name): every control including tab and newline (a newline
#: would forge an extra line), and lone surrogates (the undecodable bytes of a file name, PEP 383).
_NOT_IN_A_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


def _visible(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def escape_controls(text: str) -> str:
    """Control characters shown as ``\\x1b`` / ``\\u202e`` text (for CSV cells: the data stays legible
    and nothing reaches a terminal or spreadsheet as a control)."""
    return _INVISIBLE.sub(_visible, text)


def _line_escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    if 0xDC80 <= c <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape)
        return f"\\x{c - 0xDC00:02x}"
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def safe_line(text: str) -> str:
    """One line for a terminal or a log: control characters (newline and tab too), escape sequences
    and undecodable file-name bytes shown as ``\\x1b`` / ``\\xff`` text. For messages that may carry
    a file name (``iscsi-analyzer: esc\\x1b]0;...pcap: not a pcap``)."""
    return _NOT_IN_A_LINE.sub(_line_escape, text)


def safe_name(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    """A file name as text that is safe to print and to encode as UTF-8 (HTML, JSON): any bytes,
    with undecodable ones as ``\\xff`` and control characters as ``\\x1b`` escapes."""
    return safe_line(os.fsdecode(path))


def json_line(obj: Any) -> str:
    """``json.dumps`` without ASCII-escaping, but with C1/bidi controls as ``\\uXXXX`` escapes
    (still the same JSON value, and nothing a terminal would act on)."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(obj, ensure_ascii=False, default=str))


def terminal_safe(text: str) -> str:
    """Strip escape sequences and control characters (keeps printable text; newlines become spaces)."""
    text = _ESCAPE_SEQ.sub("", text)
    text = text.replace("\n", " ").replace("\t", " ")
    return _INVISIBLE.sub("\ufffd", text)


def csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas: a text cell starting with = + - @ (or tab/CR) gets a quote;
    control characters are shown as escapes (``escape_controls``)."""
    if isinstance(value, str) and value:
        if _INVISIBLE.search(value):
            value = escape_controls(value)
        if value[0] in "=+-@\t\r":
            return "'" + value
    return value


class RowWriter:
    """Streams rows as table, csv or jsonl."""

    def __init__(self, fmt: str, columns: Sequence[str], out: TextIO | None = None,
                 table_columns: Sequence[str] | None = None, widths: dict[str, int] | None = None,
                 defer_header: bool = False, labels: dict[str, str] | None = None) -> None:
        self.fmt = fmt
        self.columns = list(columns)
        self.out = out or sys.stdout
        self.table_columns = list(table_columns or columns)
        self.widths = widths or {}
        self.labels = labels or {}  #: table header text per column (default: the column name)
        for c, label in self.labels.items():  # a labelled column is as wide as its label (never cut)
            if c in self.widths:
                self.widths[c] = max(self.widths[c], len(label))
        self.rows = 0
        self._csv: Any = None
        self._header_due = True
        self._console: Any = None
        if fmt == "table" and _is_terminal(self.out):
            self._console = _terminal_console(self.out)
        if fmt == "csv":
            self._csv = csv.writer(self.out, lineterminator="\n")
        if not defer_header:
            self.header()

    def header(self) -> None:
        """Write the header line (csv, table) if it has not been written yet. With ``defer_header``
        it comes with the first row or from ``header()``: a command that ends in an error
        ("no session s9 in this capture") prints nothing to stdout."""
        if not self._header_due:
            return
        self._header_due = False
        if self.fmt == "csv":
            self._csv.writerow(self.columns)
        elif self._console is not None:
            self._print_rich({c: self.labels.get(c, c) for c in self.table_columns})
        elif self.fmt == "table":
            self.out.write(self._table_line({c: self.labels.get(c, c) for c in self.table_columns}) + "\n")

    def write(self, row: dict[str, Any]) -> None:
        if self._header_due:
            self.header()
        self.rows += 1
        if self.fmt == "csv":
            self._csv.writerow([_csv_cell(row.get(c)) for c in self.columns])
        elif self.fmt == "jsonl":
            self.out.write(json_line({c: row.get(c) for c in self.columns}) + "\n")
        elif self._console is not None:
            self._print_rich(row)
        else:
            self.out.write(self._table_line(row) + "\n")

    def write_all(self, rows: Iterable[dict[str, Any]]) -> None:
        for r in rows:
            self.write(r)

    def _print_rich(self, row: dict[str, Any]) -> None:
        """On a terminal: one row through rich, sized to the terminal. Columns keep the fixed widths
        of the plain table (so rows printed one by one align); a cut cell ends in an ellipsis and
        the last column wraps, so nothing is cut silently."""
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0), expand=False)
        last = self.table_columns[-1]
        used = sum(self.widths.get(c, 0) + 2 for c in self.table_columns if c != last)
        for c in self.table_columns:
            if c == last:
                table.add_column(width=max(20, self._console.width - used), overflow="fold")
            else:
                w = self.widths.get(c)
                table.add_column(width=w, min_width=w, no_wrap=True, overflow="ellipsis")
        table.add_row(*(Text("" if row.get(c) is None else terminal_safe(str(row.get(c))))
                        for c in self.table_columns))
        self._console.print(table)

    def _table_line(self, row: dict[str, Any]) -> str:
        parts = []
        for c in self.table_columns:
            v = row.get(c)
            text = "" if v is None else terminal_safe(str(v))
            w = self.widths.get(c)
            if w:
                text = text[:w].ljust(w) if c != self.table_columns[-1] else text
            parts.append(text)
        return "  ".join(parts).rstrip()


def _is_terminal(out: Any) -> bool:
    isatty = getattr(out, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):
        return False


def _terminal_console(out: Any) -> Any:
    import shutil

    from rich.console import Console

    width = shutil.get_terminal_size((120, 24)).columns
    return Console(file=out, width=width, color_system=None, highlight=False, markup=False, emoji=False,
                   soft_wrap=False)


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        v = " ".join(str(x) for x in v)
    return csv_safe(v)
