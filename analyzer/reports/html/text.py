"""Text helpers of the HTML report: escaping (every capture-derived string goes through :func:`e`),
number/time formats, table/badge snippets, the per-section row caps and the colours.
"""
from __future__ import annotations

import html as _html
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import pandas as pd

from analyzer.render.output import escape_controls


def _rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as dicts keyed by column name, with the values ``df.to_dict("records")``
    gives (missing values of nullable columns as None), built column-wise: several times faster
    than ``to_dict`` on the big tables of a report of many sessions."""
    cols: dict[str, list[Any]] = {}
    for c in df.columns:
        s = df[c]
        values = s.tolist()
        dt = s.dtype
        if isinstance(dt, pd.api.extensions.ExtensionDtype) and not isinstance(
            dt, (pd.CategoricalDtype, pd.DatetimeTZDtype)
        ):
            values = [None if v is pd.NA else v for v in values]
        cols[str(c)] = values
    return [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]


#: Most anomaly rows / timeline lanes / markers / keys shown (the rest is counted).
MAX_ANOMALY_ROWS: Final = 1000


#: Columns of the tasks table the report reads.
TASK_COLUMNS: Final = ["frame", "session", "kind", "outcome", "partial", "start_ts", "end_ts", "latency", "lun",
                       "cdb_name", "bytes_in", "bytes_out", "sense_key", "sense_key_name", "asc_name", "last_frame"]


MAX_TIMELINE_CONNS: Final = 40


MAX_TIMELINE_SESSIONS: Final = 40


MAX_MARKERS: Final = 1500


MAX_KEYS_PER_SESSION: Final = 300


MAX_LATENCY_OPS: Final = 14


#: Most sessions drawn in the throughput section and shown as cards in the sessions section.
MAX_THROUGHPUT_SESSIONS: Final = 100


MAX_SESSION_CARDS: Final = 200


MAX_ORPHAN_CONNS: Final = 500


#: RFC 7143 §8.1 connection states and §8.3 session states -> colour.
STATE_COLOURS: Final = {
    "FREE": "#c9ced6",
    "XPT_WAIT": "#9cc8ee",
    "XPT_UP": "#5aa2e0",
    "IN_LOGIN": "#f2b441",
    "LOGGED_IN": "#2fa56d",
    "IN_LOGOUT": "#8e6bd1",
    "LOGOUT_REQUESTED": "#c06bd1",
    "CLEANUP_WAIT": "#e0603f",
    "IN_CLEANUP": "#b8432a",
    "ACTIVE": "#f2b441",
    "FAILED": "#d23c3c",
    "IN_CONTINUE": "#e58a2e",
    "UNKNOWN": "#8a93a0",
}


SEVERITY_COLOURS: Final = {"error": "#d23c3c", "warning": "#e5a017", "info": "#3f7fd0"}


READ_COLOUR: Final = "#2f7fd1"


WRITE_COLOUR: Final = "#e0793f"


IOPS_COLOUR: Final = "#2fa56d"


_EXTRA_COLOURS: Final = ("#7b8794", "#a67c52", "#5f9ea0", "#9b59b6", "#b5a642", "#6c7a89")


def e(value: Any) -> str:
    """Escaped text of a capture-derived value ("—" for missing values)."""
    if _na(value):
        return "—"
    return _html.escape(escape_controls(str(value)), quote=True)


def _na(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    try:
        return bool(isinstance(v, float) and math.isnan(v))
    except TypeError:
        return False


def _ns(ts: Any) -> int | None:
    if _na(ts):
        return None
    if isinstance(ts, pd.Timestamp):
        return int(ts.value)
    return int(ts)


def _fmt_abs(ts_ns: int | None) -> str:
    if ts_ns is None:
        return "—"
    dt = datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=UTC)
    return f"{dt:%Y-%m-%d %H:%M:%S}.{ts_ns % 1_000_000_000 // 1000:06d} UTC"


def _fmt_dur(seconds: float | None) -> str:
    if seconds is None or _na(seconds):
        return "—"
    s = float(seconds)
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    if s < 120:
        return f"{s:.3g} s" if s < 10 else f"{s:.1f} s"
    m, sec = divmod(round(s), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m {sec:02d}s" if h else f"{m}m {sec:02d}s"


def _fmt_ms(seconds: float) -> str:
    ms = seconds * 1e3
    if ms >= 100:
        return f"{ms:,.0f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def _fmt_bytes(n: float | None) -> str:
    if n is None or _na(n):
        return "—"
    v = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(v) < 1000 or unit == "TB":
            return f"{v:,.0f} {unit}" if unit == "B" else f"{v:,.1f} {unit}"
        v /= 1000
    return f"{v} B"


def _int(v: Any) -> str:
    return "—" if _na(v) else f"{int(v):,}"


def _colour(state: str) -> str:
    c = STATE_COLOURS.get(state)
    if c is not None:
        return c
    return _EXTRA_COLOURS[sum(map(ord, state)) % len(_EXTRA_COLOURS)]


def _fmt_rel(seconds: float) -> str:
    return f"+{seconds:,.6f} s"


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A table from already-escaped cell HTML."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="tw"><table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def _kv(rows: Iterable[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def _badge(text: str, kind: str) -> str:
    return f'<span class="badge b-{e(kind)}">{e(text)}</span>'


_ENDED_KIND: Final = {
    "logout": "ok",
    "capture_end": "neutral",
    "open": "neutral",
    "session_closed": "ok",
    "connection_dropped": "warn",
    "dropped": "warn",
    "login_failed": "err",
    "timed_out": "err",
    "reinstated": "warn",
}


def _ended_badge(ended: Any) -> str:
    text = "—" if _na(ended) else str(ended)
    return _badge(text.replace("_", " "), _ENDED_KIND.get(text, "neutral"))


def _empty(text: str) -> str:
    return f'<div class="empty">{text}</div>'


def _section(anchor: str, title: str, body: str, intro: str = "") -> str:
    intro_html = f'<p class="intro">{intro}</p>' if intro else ""
    return f'<section id="{anchor}"><h2>{title}</h2>{intro_html}{body}</section>'


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
