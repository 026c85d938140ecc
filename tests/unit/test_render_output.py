"""RowWriter tables: plain fixed-width lines when not on a terminal (what the golden outputs hold),
rich rows sized to the terminal when on one (a cut cell shows an ellipsis, the last column wraps)."""

from __future__ import annotations

import io

import pytest
from rich.cells import cell_len

from analyzer.render.output import RowWriter, safe_line, safe_name


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


LONG = "long text " * 30


def test_plain_table_is_fixed_width_lines() -> None:
    out = io.StringIO()
    w = RowWriter("table", ["a", "b", "c"], out=out, widths={"a": 5, "b": 8}, labels={"b": "bee (UTC)"})
    w.write({"a": "12345678", "b": "x", "c": "end"})
    assert out.getvalue().splitlines() == ["a      bee (UTC)  c", "12345  x          end"]


def test_terminal_table_fits_the_terminal_and_cuts_nothing_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    out = _Tty()
    w = RowWriter("table", ["a", "b", "c"], out=out, widths={"a": 5, "b": 8})
    w.write({"a": "12345678", "b": "\x1b]0;title\x07x", "c": LONG})
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["a", "b", "c"]
    assert all(cell_len(line) <= 100 for line in lines)
    assert lines[1].startswith("1234\u2026")  # cut, and it shows
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()
    assert " ".join(" ".join(line[17:].split()) for line in lines[1:]).strip() == LONG.strip()  # wrapped, all there
    assert len(lines) > 2


def test_safe_line_and_name() -> None:
    assert safe_line("a\nb\tc\x1b[31m") == "a\\x0ab\\x09c\\x1b[31m"
    assert safe_name(b"clean-\xff.pcap") == "clean-\\xff.pcap"
