"""The self-contained HTML report: inline CSS, inline SVG charts drawn here, no script at all.

Every string that comes from the capture (names, aliases, text keys, messages, connection
ids) goes through :func:`e` (``html.escape``), in element text, attributes and SVG
``<title>`` tooltips alike. A Content-Security-Policy meta tag forbids scripts and any
network fetch as a second line of defence. Secrets (CHAP_C, CHAP_R, CHAP_N, ...) are
masked unless ``show_secrets``.

Sections: summary, sessions (identity, negotiated parameters, connections, login keys),
state timeline (RFC 7143 §8 connection and session states per side, anomaly markers),
tasks, latency (box chart with p5/p25/p50/p75/p99 and a p50/p95/p99 table per operation
and LUN), throughput and IOPS over time per session, anomalies.
"""

from __future__ import annotations

import html as _html
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, cast

import numpy as np
import pandas as pd


def _rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as dicts keyed by column name."""
    return cast(list[dict[str, Any]], df.to_dict("records"))

from analyzer.iscsi.text_keys import mask_secret
from analyzer.render.output import escape_controls
from analyzer.reports.frames import params_dict

if TYPE_CHECKING:
    from analyzer.reports.analysis import Analysis

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

# --------------------------------------------------------------------------- small helpers


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


def _nice_step(span: float, n: int) -> float:
    if span <= 0:
        return 1.0
    raw = span / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return float(m * mag)
    return float(10 * mag)


def _ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    step = _nice_step(hi - lo, n)
    start = math.ceil(lo / step - 1e-9) * step
    out = []
    v = start
    while v <= hi + step * 1e-9:
        out.append(round(v, 12))
        v += step
    return out


def _fmt_tick(v: float, step: float) -> str:
    if step >= 1:
        return f"{v:,.0f}"
    digits = max(
        0, -math.floor(math.log10(step)) + (1 if step * 10 ** -math.floor(math.log10(step)) == 2.5 else 0)
    )
    return f"{v:.{digits}f}"


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


# --------------------------------------------------------------------------- report context


class _Ctx:
    def __init__(self, a: Analysis, show_secrets: bool) -> None:
        self.a = a
        self.show_secrets = show_secrets
        cap = a.capture
        #: the tasks columns the sections use (the other 33 are never loaded)
        self.tasks = a.columns("tasks", TASK_COLUMNS)
        ps = a.pdu_summary
        firsts = [cap.first_ts_ns, ps.first_ts] + [
            _ns(df[c].min())
            for df, c in (
                (a.transitions, "ts"),
                (a.connections, "start_ts"),
                (a.sessions, "start_ts"),
                (self.tasks, "start_ts"),
            )
            if len(df)
        ]
        lasts = [cap.last_ts_ns, ps.last_ts] + [
            _ns(df[c].max())
            for df, c in (
                (a.transitions, "ts"),
                (a.connections, "end_ts"),
                (a.sessions, "end_ts"),
                (self.tasks, "end_ts"),
                (a.anomalies, "ts"),
            )
            if len(df)
        ]
        fs = [v for v in firsts if v]
        ls = [v for v in lasts if v]
        self.t0: int = min(fs) if fs else 0
        self.t1: int = max(ls) if ls else self.t0
        if self.t1 <= self.t0:
            self.t1 = self.t0 + 1_000_000  # 1 ms so that scales never divide by zero

    def rel(self, ts: Any) -> float:
        v = _ns(ts)
        return 0.0 if v is None else (v - self.t0) / 1e9


# --------------------------------------------------------------------------- sections


def _section(anchor: str, title: str, body: str, intro: str = "") -> str:
    intro_html = f'<p class="intro">{intro}</p>' if intro else ""
    return f'<section id="{anchor}"><h2>{title}</h2>{intro_html}{body}</section>'


def _summary(c: _Ctx) -> str:
    a, cap = c.a, c.a.capture
    sev = a.anomalies["severity"].astype(object).value_counts().to_dict() if len(a.anomalies) else {}
    scsi = c.tasks[c.tasks["kind"] == "scsi"] if len(c.tasks) else c.tasks
    cards = [
        ("Duration", e(_fmt_dur(cap.duration_s if cap.first_ts_ns else (c.t1 - c.t0) / 1e9))),
        ("Frames", _int(cap.frames)),
        ("iSCSI PDUs", _int(cap.pdus)),
        ("Sessions", _int(len(a.sessions))),
        ("Connections", _int(len(a.connections))),
        ("SCSI commands", _int(len(scsi))),
    ]
    card_html = "".join(
        f'<div class="card"><div class="cv">{v}</div><div class="cl">{k}</div></div>' for k, v in cards
    )
    sev_html = "".join(
        f'<div class="card sev-{s}"><div class="cv">{int(sev.get(s, 0)):,}</div>'
        f'<div class="cl">{s.capitalize()}{"s" if s != "info" else ""}</div></div>'
        for s in ("error", "warning", "info")
    )
    details = _kv(
        [
            ("Capture file", e(cap.file or cap.name)),
            (
                "Format",
                e(cap.format or "—") + (f" · {_fmt_bytes(cap.size_bytes)} on disk" if cap.size_bytes else ""),
            ),
            ("First frame", e(_fmt_abs(cap.first_ts_ns or c.t0))),
            ("Last frame", e(_fmt_abs(cap.last_ts_ns or c.t1))),
            ("Frames / captured bytes", f"{_int(cap.frames)} / {e(_fmt_bytes(cap.bytes))}"),
            ("Non-TCP frames", _int(cap.non_tcp)),
            ("Analyzer", f"iscsi-analyzer {e(cap.analyzer_version)}"),
        ]
    )
    warnings: list[str] = [f"Capture file damaged: {e(d)}" for d in cap.damage]
    st = cap.stats or {}
    if st.get("tcp_gaps"):
        warnings.append(
            f"{int(st['tcp_gaps']):,} TCP gaps: {e(_fmt_bytes(st.get('gap_bytes', 0)))} of iSCSI "
            "stream bytes were never captured (PDUs in them are missing; framing resynchronised)."
        )
    if st.get("framing_resyncs"):
        warnings.append(
            f"PDU framing resynchronised {int(st['framing_resyncs']):,} times, skipping "
            f"{e(_fmt_bytes(st.get('resync_skipped_bytes', 0)))}."
        )
    if st.get("malformed_pdus"):
        warnings.append(f"{int(st['malformed_pdus']):,} malformed PDUs could not be decoded.")
    if cap.truncated_frames:
        warnings.append(f"{cap.truncated_frames:,} frames were cut by the capture's snap length.")
    for table, t in (cap.truncated or {}).items():
        warnings.append(
            f"The {e(table)} table keeps {int(t['kept']):,} of {int(t['seen']):,} rows "
            f"(limit {int(t['limit']):,})."
        )
    if st.get("tracker_errors"):
        warnings.append(f"{int(st['tracker_errors'])} internal state-tracker errors (please report them).")
    if not cap.anomaly_engine:
        warnings.append("Anomaly rules were not run: the anomaly table is empty for that reason.")
    warn_html = (
        (
            "<div class='warnings'><h3>Capture quality</h3><ul>"
            + "".join(f"<li>{w}</li>" for w in warnings)
            + "</ul></div>"
        )
        if warnings
        else "<div class='okbox'>No capture damage, TCP gaps or framing problems were found.</div>"
    )
    no_iscsi = ""
    if cap.pdus == 0 and len(a.sessions) == 0:
        no_iscsi = _empty(
            "No iSCSI traffic was found in this capture (no iSCSI PDUs on the analysed ports). "
            "The sections below are empty."
        )
    op_html = ""
    if a.pdu_summary.opcode_counts:
        counts = a.pdu_summary.opcode_series()
        op_html = "<h3>PDUs by opcode</h3>" + _table(
            ["Opcode", "PDUs"], [[e(k), _int(v)] for k, v in counts.items()], "compact narrow"
        )
    return _section(
        "summary",
        "Summary",
        no_iscsi
        + f'<div class="cards">{card_html}</div><div class="cards sev">{sev_html}</div>'
        + f'<div class="cols"><div>{details}</div><div>{warn_html}{op_html}</div></div>',
    )


def _sessions(c: _Ctx) -> str:
    a = c.a
    if not len(a.sessions) and not len(a.connections):
        return _section("sessions", "Sessions", _empty("No iSCSI sessions in this capture."))
    conns_by_session: dict[Any, list[dict[str, Any]]] = {}
    for row in _rows(a.connections):
        key = None if _na(row["session"]) else row["session"]
        conns_by_session.setdefault(key, []).append(row)
    keys_by_conn: dict[str, list[dict[str, Any]]] = {}
    for row in _rows(a.keys):
        keys_by_conn.setdefault(str(row["conn"]), []).append(row)
    parts = []
    srows = _rows(a.sessions.head(MAX_SESSION_CARDS))
    for s in srows:
        parts.append(_session_card(c, s, conns_by_session.get(s["session"], []), keys_by_conn))
    if len(a.sessions) > len(srows):
        parts.append(f"<p class='muted'>{len(a.sessions) - len(srows):,} more sessions are in sessions.csv / "
                     ".parquet (and their connections in connections.csv).</p>")
    orphans = conns_by_session.get(None, [])
    if orphans:
        more = (f"<p class='muted'>{len(orphans) - MAX_ORPHAN_CONNS:,} more connections without a session "
                "are in connections.csv / .parquet.</p>" if len(orphans) > MAX_ORPHAN_CONNS else "")
        parts.append(
            '<div class="scard"><h3>Connections without a session</h3>'
            '<p class="muted">TCP connections to an iSCSI port whose login was not seen or failed '
            "before a session existed.</p>" + _conn_table(orphans[:MAX_ORPHAN_CONNS]) + more + "</div>"
        )
    secrets = (
        "Secrets (CHAP_C, CHAP_R, CHAP_N) are <b>shown</b> in this report."
        if c.show_secrets
        else "Secrets (CHAP_C, CHAP_R, CHAP_N) are masked."
    )
    return _section(
        "sessions",
        "Sessions",
        "".join(parts),
        "Identity, negotiated parameters (RFC 7143 §13), connections and how each ended. " + secrets,
    )


def _session_card(
    c: _Ctx, s: dict[str, Any], conns: list[dict[str, Any]], keys_by_conn: dict[str, list[dict[str, Any]]]
) -> str:
    ident = _kv(
        [
            ("Initiator name", e(s["initiator_name"])),
            ("Initiator alias", e(s["initiator_alias"])),
            ("Target name", e(s["target_name"])),
            ("Target alias", e(s["target_alias"])),
            ("Session type", e(s["session_type"])),
            ("ISID / TSIH / TPGT", f"{e(s['isid'])} / {e(s['tsih'])} / {e(s['tpgt'])}"),
            ("SSID", e(s["ssid"])),
            ("Target portals", e(s["portals"] or None)),
            ("Initiator addresses", e(s["initiator_addresses"] or None)),
            ("Started", f"{e(_fmt_abs(_ns(s['start_ts'])))} (frame {_int(s['start_frame'])})"),
            ("Last activity", f"{e(_fmt_abs(_ns(s['end_ts'])))} (frame {_int(s['end_frame'])})"),
            ("Duration", e(_fmt_dur(s["duration"].total_seconds() if not _na(s["duration"]) else None))),
            (
                "Ended",
                _ended_badge(s["ended"]) + f" <span class='muted'>final state: initiator "
                f"{e(s['state_initiator'])}, target {e(s['state_target'])}</span>",
            ),
            ("Tasks", _int(s["tasks"])),
        ]
        + ([("Reinstated from", e(s["reinstated_from"]))] if not _na(s["reinstated_from"]) else [])
        + ([("Reinstated by", e(s["reinstated_by"]))] if not _na(s["reinstated_by"]) else [])
        + (
            [("Identity", "partly inferred: the capture began inside this session")]
            if s["mid_stream"]
            else []
        )
    )
    params = params_dict(s["params"])
    if params:
        items = [(k, v if c.show_secrets else mask_secret(k, v)) for k, v in params.items()]
        ptable = (
            '<div class="params">'
            + "".join(
                f'<div class="p"><span class="pk">{e(k)}</span><span class="pv">{e(v)}</span></div>'
                for k, v in items
            )
            + "</div>"
        )
    else:
        ptable = '<p class="muted">No negotiated parameters were seen (login not captured).</p>'
    disc = ""
    if not _na(s["discovered_targets"]) and s["discovered_targets"]:
        disc = (
            "<h4>Discovered targets (SendTargets)</h4><ul class='mono'>"
            + "".join(f"<li>{e(t)}</li>" for t in str(s["discovered_targets"]).split())
            + "</ul>"
        )
    keys: list[dict[str, Any]] = []
    for conn in conns:
        keys.extend(keys_by_conn.get(str(conn["conn"]), []))
    keys.sort(key=lambda r: r["frame"])
    keys_html = ""
    if keys:
        shown = keys[:MAX_KEYS_PER_SESSION]
        rows = [
            [
                _int(k["frame"]),
                e("I→T" if k["direction"] == "i2t" else "T→I"),
                e(k["pdu"]),
                f'<span class="mono">{e(k["key"])}</span>',
                f'<span class="mono">{e(k["value"] if c.show_secrets else mask_secret(str(k["key"]), str(k["value"])))}</span>',
            ]
            for k in shown
        ]
        more = (
            f"<p class='muted'>{len(keys) - len(shown):,} more keys not shown.</p>"
            if len(keys) > len(shown)
            else ""
        )
        keys_html = (
            f"<details><summary>Login and text negotiation ({len(keys):,} keys)</summary>"
            + _table(["Frame", "Dir", "PDU", "Key", "Value"], rows, "compact")
            + more
            + "</details>"
        )
    title = f"Session {e(s['session'])} <span class='muted'>· {e(s['session_type'])}</span> {_ended_badge(s['ended'])}"
    return (
        f'<div class="scard" id="session-{e(s["session"])}"><h3>{title}</h3>'
        f'<div class="cols"><div>{ident}</div><div><h4>Negotiated parameters</h4>{ptable}{disc}</div></div>'
        f"<h4>Connections</h4>{_conn_table(conns)}{keys_html}</div>"
    )


def _conn_table(conns: list[dict[str, Any]]) -> str:
    if not conns:
        return '<p class="muted">No connection of this session was seen.</p>'
    rows = []
    for r in conns:
        digest = (
            "/".join(x for x, on in (("header", r["header_digest"]), ("data", r["data_digest"])) if on)
            or "none"
        )
        login = "—"
        if not _na(r["login_status_class"]):
            login = f"0x{int(r['login_status_class']):02x}{int(r['login_status_detail'] or 0):02x}"
        mrdsl = f"I {_int(r['max_recv_dsl_initiator'])} · T {_int(r['max_recv_dsl_target'])}"
        tcp = e(r["tcp_end"]) + ("" if r["handshake_seen"] else " <span class='muted'>(no SYN seen)</span>")
        rows.append(
            [
                f'<span class="mono">{e(r["conn"])}</span>',
                e(r["cid"]),
                e(r["role"]),
                e(digest),
                mrdsl,
                f"{_int(r['start_frame'])}–{_int(r['end_frame'])}",
                e(_fmt_dur(r["duration"].total_seconds() if not _na(r["duration"]) else None)),
                _ended_badge(r["ended"]),
                tcp,
                e(login),
                _int(r["pdus"]),
                _int(r["tasks"]),
            ]
        )
    return _table(
        [
            "Connection",
            "CID",
            "Role",
            "Digests",
            "MaxRecvDSL",
            "Frames",
            "Duration",
            "Ended",
            "TCP end",
            "Login status",
            "PDUs",
            "Tasks",
        ],
        rows,
        "compact",
    )


# --------------------------------------------------------------------------- state timeline


def _lane_segments(trs: list[dict[str, Any]], start: int | None, end: int) -> list[tuple[int, int, str, str]]:
    """[(t_from, t_to, state, tooltip)] for one machine of one side from its transitions."""
    if not trs:
        return []
    segs: list[tuple[int, int, str, str]] = []
    first = trs[0]
    t = _ns(first["ts"]) or 0
    if start is not None and start < t:
        segs.append((start, t, str(first["from_state"]), "before the first transition"))
    for i, tr in enumerate(trs):
        t_from = _ns(tr["ts"]) or 0
        if i + 1 < len(trs):
            t_to = _ns(trs[i + 1]["ts"]) or t_from
        else:
            if str(tr["to_state"]) == "FREE":
                t_to = t_from
            else:
                t_to = max(end, t_from)
        label = "" if _na(tr["label"]) else f"{tr['label']} "
        tip = f"{label}{tr['from_state']} → {tr['to_state']} at frame {tr['frame']}: {tr['event']}"
        if tr["inferred"]:
            tip += " (inferred)"
        segs.append((t_from, t_to, str(tr["to_state"]), tip))
    return segs


def _timeline(c: _Ctx) -> str:
    a = c.a
    trs = a.transitions
    if not len(trs):
        return _section("timeline", "State timeline", _empty("No state transitions (no iSCSI connections)."))
    by_lane: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in _rows(trs.sort_values(["ts", "frame"], kind="stable")):
        if r["machine"] == "connection" and not _na(r["conn"]):
            key = ("conn", str(r["conn"]), str(r["side"]))
        elif r["machine"] == "session" and not _na(r["session"]):
            key = ("session", str(r["session"]), str(r["side"]))
        elif r["machine"] == "cleanup" and not _na(r["conn"]):
            key = ("cleanup", str(r["conn"]), str(r["side"]))
        else:
            continue
        by_lane.setdefault(key, []).append(r)
    conn_info = {str(r["conn"]): r for r in _rows(a.connections)}
    # lane order: per session, its session lanes then its connections; then orphan connections
    order: list[tuple[str, str]] = []  # (kind, id)
    seen_conns: set[str] = set()
    sessions = [str(s) for s in a.sessions["session"]] if len(a.sessions) else []
    conns_of: dict[str, list[str]] = {}  # session -> its connections, in table order (one pass)
    for cid, info in conn_info.items():
        if not _na(info["session"]):
            conns_of.setdefault(str(info["session"]), []).append(cid)
    hidden_sessions = 0
    drawn_sessions = 0
    for sid in sessions:
        if drawn_sessions >= MAX_TIMELINE_SESSIONS:
            hidden_sessions += 1
            seen_conns.update(conns_of.get(sid, ()))  # not drawn as orphans either
            continue
        drawn_sessions += 1
        order.append(("session", sid))
        for cid in conns_of.get(sid, ()):
            order.append(("conn", cid))
            seen_conns.add(cid)
    for kind, ident, _side in by_lane:
        if kind == "conn" and ident not in seen_conns:
            order.append(("conn", ident))
            seen_conns.add(ident)
    n_conns = sum(1 for k, _ in order if k == "conn")
    hidden = 0
    if n_conns > MAX_TIMELINE_CONNS:
        keep: list[tuple[str, str]] = []
        count = 0
        for item in order:
            if item[0] == "conn":
                count += 1
                if count > MAX_TIMELINE_CONNS:
                    hidden += 1
                    continue
            keep.append(item)
        order = keep
    # cleanup machine end per (conn, side): extends CLEANUP_WAIT until the cleanup machine is FREE
    cleanup_end: dict[tuple[str, str], int] = {}
    for (kind, ident, side), rows in by_lane.items():
        if kind == "cleanup":
            free = [_ns(r["ts"]) for r in rows if str(r["to_state"]) == "FREE"]
            if free:
                cleanup_end[(ident, side)] = int(free[-1] or 0)

    W, LEFT, RIGHT, TOP, LANE, GAP = 1200, 250, 16, 34, 13, 9
    plot_w = W - LEFT - RIGHT
    span = c.t1 - c.t0

    def x(ts: int) -> float:
        return LEFT + (ts - c.t0) / span * plot_w

    body: list[str] = []
    lane_y: dict[tuple[str, str], float] = {}
    y = TOP
    states_used: set[str] = set()
    for kind, ident in order:
        label_main = f"session {ident}" if kind == "session" else _short_conn(ident, conn_info.get(ident))
        block_top = y
        for side in ("initiator", "target"):
            rows = by_lane.get((kind, ident, side), [])
            start = None
            end = c.t1
            if kind == "conn" and ident in conn_info:
                start = _ns(conn_info[ident]["start_ts"])
                end = cleanup_end.get((ident, side), c.t1)
            segs = _lane_segments(rows, start, end)
            body.append(f'<rect x="{LEFT}" y="{y}" width="{plot_w}" height="{LANE}" class="lane"/>')
            for t_from, t_to, state, tip in segs:
                states_used.add(state)
                x0, x1 = x(t_from), x(t_to)
                w = max(x1 - x0, 2.0)
                who = f"{label_main} · {side}"
                full_tip = (
                    f"{who}: {state} from {_fmt_rel((t_from - c.t0) / 1e9)} to "
                    f"{_fmt_rel((t_to - c.t0) / 1e9)}\n{tip}"
                )
                body.append(
                    f'<rect x="{x0:.2f}" y="{y}" width="{w:.2f}" height="{LANE}" fill="{_colour(state)}">'
                    f"<title>{e(full_tip)}</title></rect>"
                )
            side_tag = "I" if side == "initiator" else "T"
            body.append(
                f'<text x="{LEFT - 6}" y="{y + LANE - 3}" class="lbl side" text-anchor="end">{side_tag}</text>'
            )
            y += LANE + 2
        lane_y[(kind, ident)] = block_top
        cls = "lbl sess" if kind == "session" else "lbl"
        body.append(
            f'<text x="8" y="{block_top + LANE + 1}" class="{cls}">{e(_clip(label_main, 34))}'
            f"<title>{e(ident)}</title></text>"
        )
        y += GAP
    # anomaly markers
    markers: list[str] = []
    shown = 0
    if len(a.anomalies):
        for r in _rows(a.anomalies.sort_values(["ts", "frame"])):
            if shown >= MAX_MARKERS:
                break
            lane: tuple[str, str] | None = None
            if not _na(r["conn"]) and ("conn", str(r["conn"])) in lane_y:
                lane = ("conn", str(r["conn"]))
            elif not _na(r["session"]) and ("session", str(r["session"])) in lane_y:
                lane = ("session", str(r["session"]))
            my = lane_y[lane] - 4 if lane else TOP - 10
            mx = x(_ns(r["ts"]) or c.t0)
            col = SEVERITY_COLOURS.get(str(r["severity"]), "#555")
            tip = (
                f"[{r['severity']}] {r['kind']} at frame {r['frame']} ({_fmt_rel(c.rel(r['ts']))})\n"
                f"{r['message']}\nfilter: {r['display_filter']}"
            )
            markers.append(
                f'<path d="M{mx:.2f},{my + 5:.2f} l-5,-8 h10 z" fill="{col}" stroke="#fff" '
                f'stroke-width="0.8" class="mk"><title>{e(tip)}</title></path>'
            )
            shown += 1
    height = y + 34
    axis = _time_axis_svg(c, LEFT, plot_w, TOP - 14, y, height)
    legend = "".join(
        f'<span class="lg"><i style="background:{_colour(s)}"></i>{e(s)}</span>'
        for s in sorted(states_used, key=lambda s: list(STATE_COLOURS).index(s) if s in STATE_COLOURS else 99)
    )
    legend += "".join(
        f'<span class="lg"><i class="tri" style="border-bottom-color:{col}"></i>{e(s)} anomaly</span>'
        for s, col in SEVERITY_COLOURS.items()
    )
    svg = (
        f'<svg class="chart" viewBox="0 0 {W} {height}" role="img" aria-label="State timeline">'
        f"{axis}{''.join(body)}{''.join(markers)}</svg>"
    )
    note = f"<p class='muted'>{hidden} more connections not drawn.</p>" if hidden else ""
    if hidden_sessions:
        note += (f"<p class='muted'>{hidden_sessions:,} more sessions (and their connections) not drawn: "
                 "their transitions are in transitions.csv / .parquet.</p>")
    if len(a.anomalies) > shown:
        note += f"<p class='muted'>{len(a.anomalies) - shown:,} anomaly markers not drawn.</p>"
    note += _transition_list(c)
    intro = (
        "RFC 7143 §8 state of each side (I = initiator, T = target) over capture time: the session machine "
        "(§8.3) above its connections (§8.1). Hover a bar for the transition label and the frame that "
        "caused it, a triangle for the anomaly."
    )
    return _section("timeline", "State timeline", f'<div class="legend">{legend}</div>{svg}{note}', intro)


def _transition_list(c: _Ctx) -> str:
    trs = c.a.transitions.sort_values(["ts", "frame"], kind="stable")
    shown = trs.head(MAX_ANOMALY_ROWS)
    rows = [
        [
            _int(r["frame"]),
            e(f"{c.rel(r['ts']):,.6f}"),
            e(r["machine"]),
            e(r["side"]),
            e(r["session"]),
            f'<span class="mono small">{e(r["conn"])}</span>',
            e(r["label"]),
            f"{e(r['from_state'])} → <b>{e(r['to_state'])}</b>",
            e(r["event"]) + (" <span class='muted'>(inferred)</span>" if r["inferred"] else ""),
        ]
        for r in _rows(shown)
    ]
    more = (
        f"<p class='muted'>{len(trs) - len(shown):,} more in transitions.csv.</p>"
        if len(trs) > len(shown)
        else ""
    )
    return (
        f"<details><summary>All state transitions ({len(trs):,})</summary>"
        + _table(
            ["Frame", "Time (s)", "Machine", "Side", "Session", "Connection", "Label", "Transition", "Event"],
            rows,
            "compact",
        )
        + more
        + "</details>"
    )


def _short_conn(conn: str, info: dict[str, Any] | None) -> str:
    base = conn.split("->")[0]
    cid = ""
    if info is not None and not _na(info.get("cid")):
        cid = f" CID {int(info['cid'])}"
    return f"{base}{cid}"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _time_axis_svg(c: _Ctx, left: float, plot_w: float, top: float, bottom: float, height: float) -> str:
    span_s = (c.t1 - c.t0) / 1e9
    ticks = _ticks(0.0, span_s, 8)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    out = []
    for v in ticks:
        xx = left + v / span_s * plot_w
        out.append(f'<line x1="{xx:.2f}" y1="{top + 6}" x2="{xx:.2f}" y2="{bottom}" class="grid"/>')
        out.append(
            f'<text x="{xx:.2f}" y="{top + 2}" class="tick" text-anchor="middle">{_fmt_tick(v, step)}</text>'
        )
    out.append(
        f'<text x="{left + plot_w:.2f}" y="{bottom + 20}" class="axt" text-anchor="end">seconds since '
        f"first frame ({e(_fmt_abs(c.t0))})</text>"
    )
    return "".join(out)


# --------------------------------------------------------------------------- tasks & latency


def _scsi_done(t: pd.DataFrame) -> pd.DataFrame:
    if not len(t):
        return t
    m = (t["kind"] == "scsi") & t["outcome"].isin(["completed", "check_condition", "failed"]) & ~t["partial"]
    return t[m]


def _tasks(c: _Ctx) -> str:
    t = c.tasks
    if not len(t):
        return _section("tasks", "Tasks", _empty("No tasks (no iSCSI commands) in this capture."))
    pivot = t.groupby([t["kind"].astype(object), t["outcome"].astype(object)]).size().reset_index(name="n")
    rows = [
        [
            e(r.kind),
            _badge(
                str(r.outcome).replace("_", " "),
                "ok"
                if r.outcome == "completed"
                else "warn"
                if r.outcome in ("check_condition", "open_at_capture_end")
                else "err",
            ),
            _int(r.n),
        ]
        for r in pivot.sort_values(["kind", "n"], ascending=[True, False]).itertuples()
    ]
    parts = [
        "<div class='cols'><div><h3>Tasks by kind and outcome</h3>"
        + _table(["Kind", "Outcome", "Tasks"], rows, "compact")
        + "</div>"
    ]
    cc = t[t["sense_key"].notna()] if "sense_key" in t else t.iloc[0:0]
    if len(cc):
        g = (
            cc.groupby(
                [cc["sense_key_name"].astype(object).fillna("?"), cc["asc_name"].astype(object).fillna("")],
                dropna=False,
            )
            .agg(n=("frame", "size"), first=("last_frame", "min"))
            .reset_index()
        )
        g = g.sort_values("n", ascending=False).head(20)
        srows = [
            [e(r.sense_key_name), e(r.asc_name or "—"), _int(r.n), _int(r.first)] for r in g.itertuples()
        ]
        parts.append(
            "<div><h3>Check conditions (sense data)</h3>"
            + _table(["Sense key", "Additional sense", "Tasks", "First frame"], srows, "compact")
            + "</div>"
        )
    else:
        parts.append("<div><h3>Check conditions</h3><p class='muted'>No sense data was returned.</p></div>")
    parts.append("</div>")
    partial = int(t["partial"].sum())
    intro = "Every initiator task (ITT) from its first request to its end (RFC 7143 §11)."
    if partial:
        intro += f" {partial:,} tasks began before the capture or inside a capture gap (partial)."
    return _section("tasks", "Tasks", "".join(parts), intro)


_LAT_BINS: Final = np.logspace(-6, 2, 33)  # 1 µs .. 100 s, 4 bins per decade


def _latency(c: _Ctx) -> str:
    d = _scsi_done(c.tasks)
    if not len(d):
        return _section("latency", "Latency", _empty("No completed SCSI commands to measure."))
    lat = d["latency"].dt.total_seconds().to_numpy(dtype=float)
    ops = d["cdb_name"].astype(object).fillna("?").to_numpy()
    luns = d["lun"].astype("UInt64")
    frame = pd.DataFrame(
        {
            "op": ops,
            "lun": luns,
            "lat": lat,
            "bytes": (d["bytes_in"] + d["bytes_out"]).to_numpy(),
            "err": (d["outcome"] != "completed").to_numpy(),
        }
    )
    by_op = frame.groupby("op")["lat"]
    op_order = by_op.size().sort_values(ascending=False).index.tolist()[:MAX_LATENCY_OPS]
    box = _latency_boxes(frame, op_order)
    rows = []
    g = frame.groupby(["op", "lun"], dropna=False)
    for (op, lun), grp in sorted(g, key=lambda kv: (-len(kv[1]), str(kv[0][0]))):
        v = grp["lat"].to_numpy()
        p50, p95, p99 = np.percentile(v, [50, 95, 99])
        rows.append(
            [
                e(op),
                e(None if _na(lun) else int(cast(Any, lun))),
                _int(len(v)),
                _fmt_ms(p50),
                _fmt_ms(p95),
                _fmt_ms(p99),
                _fmt_ms(float(v.max())),
                _int(int(grp["err"].sum())),
                e(_fmt_bytes(float(grp["bytes"].sum()))),
                _sparkline(v),
            ]
        )
    table = _table(
        [
            "Operation",
            "LUN",
            "Commands",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "Not GOOD",
            "Data",
            "Distribution (1 µs – 100 s, log)",
        ],
        rows,
        "compact num",
    )
    intro = (
        "Command latency: from the SCSI Command PDU to the SCSI Response (or the Data-In carrying status), "
        "as seen at the capture point. Commands that began before the capture or never completed are left out."
    )
    return _section("latency", "Latency", box + table, intro)


def _latency_boxes(frame: pd.DataFrame, ops: list[str]) -> str:
    W, LEFT, RIGHT, TOP, ROW = 1200, 200, 30, 30, 26
    plot_w = W - LEFT - RIGHT
    lat = frame["lat"].to_numpy()
    pos = lat[lat > 0]
    # whole decades with some room on both sides, so a box never sits on the frame
    llo = math.floor(math.log10(pos.min()) - 0.25) if len(pos) else -6
    lhi = math.ceil(math.log10(pos.max()) + 0.25) if len(pos) else 0
    lo = 10.0**llo

    def x(v: float) -> float:
        v = max(v, lo)
        return LEFT + (math.log10(v) - llo) / (lhi - llo) * plot_w

    height = TOP + ROW * len(ops) + 40
    out = []
    for k in range(llo, lhi + 1):
        xx = x(10.0**k)
        out.append(f'<line x1="{xx:.2f}" y1="{TOP - 6}" x2="{xx:.2f}" y2="{height - 34}" class="grid"/>')
        out.append(
            f'<text x="{xx:.2f}" y="{TOP - 10}" class="tick" text-anchor="middle">{_fmt_dur(10.0**k)}</text>'
        )
    for i, op in enumerate(ops):
        v = frame.loc[frame["op"] == op, "lat"].to_numpy()
        p5, p25, p50, p75, p99 = np.percentile(v, [5, 25, 50, 75, 99])
        y = TOP + i * ROW
        mid = y + ROW / 2
        tip = (
            f"{op}: {len(v):,} commands\np5 {_fmt_dur(p5)} · p25 {_fmt_dur(p25)} · median {_fmt_dur(p50)} · "
            f"p75 {_fmt_dur(p75)} · p99 {_fmt_dur(p99)} · max {_fmt_dur(float(v.max()))}"
        )
        out.append(
            f'<text x="{LEFT - 8}" y="{mid + 4}" class="lbl" text-anchor="end">{e(_clip(op, 26))}</text>'
        )
        out.append(
            f"<g><title>{e(tip)}</title>"
            f'<line x1="{x(p5):.2f}" y1="{mid}" x2="{x(p99):.2f}" y2="{mid}" class="whisk"/>'
            f'<line x1="{x(p5):.2f}" y1="{mid - 5}" x2="{x(p5):.2f}" y2="{mid + 5}" class="whisk"/>'
            f'<line x1="{x(p99):.2f}" y1="{mid - 5}" x2="{x(p99):.2f}" y2="{mid + 5}" class="whisk"/>'
            f'<rect x="{x(p25):.2f}" y="{mid - 8}" width="{max(x(p75) - x(p25), 1.5):.2f}" height="16" '
            f'class="box"/>'
            f'<line x1="{x(p50):.2f}" y1="{mid - 8}" x2="{x(p50):.2f}" y2="{mid + 8}" class="med"/>'
            f'<circle cx="{x(float(v.max())):.2f}" cy="{mid}" r="2.6" class="mx"/></g>'
        )
        out.append(f'<text x="{W - RIGHT + 4}" y="{mid + 4}" class="tick">{len(v):,}</text>')
    out.append(
        f'<text x="{LEFT + plot_w:.2f}" y="{height - 12}" class="axt" text-anchor="end">latency (log scale) · '
        "box p25–p75 · bar median · whiskers p5–p99 · dot max · count at right</text>"
    )
    return (
        f'<svg class="chart" viewBox="0 0 {W} {height}" role="img" aria-label="Latency per operation">'
        + "".join(out)
        + "</svg>"
    )


def _sparkline(v: np.ndarray) -> str:
    counts, _ = np.histogram(np.clip(v, 1e-6, 99.9), bins=_LAT_BINS)
    top = counts.max() or 1
    bw = 4
    bars = "".join(
        f'<rect x="{i * bw}" y="{24 - 22 * n / top:.1f}" width="{bw - 1}" height="{22 * n / top:.1f}"/>'
        for i, n in enumerate(counts)
        if n
    )
    return (
        f'<svg class="spark" viewBox="0 0 {len(counts) * bw} 24" width="{len(counts) * bw}" height="24">'
        f'<rect x="0" y="23.5" width="{len(counts) * bw}" height="0.5" class="base"/>{bars}</svg>'
    )


# --------------------------------------------------------------------------- throughput & IOPS

_BIN_STEPS: Final = (
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    21600,
    43200,
    86400,
)


def _bin_width(span_s: float, target: int = 120) -> float:
    want = span_s / target
    for s in _BIN_STEPS:
        if s >= want:
            return s
    return _BIN_STEPS[-1]


def _throughput(c: _Ctx) -> str:
    a = c.a
    sessions = [str(s) for s in a.sessions["session"]] if len(a.sessions) else []
    if not sessions:
        return _section("throughput", "Throughput and IOPS", _empty("No sessions, so no I/O to chart."))
    truncated = "pdus" in (a.capture.truncated or {})
    ps = a.pdu_summary
    # session -> (seconds since t0, read bytes, write bytes): from the PDUs' data segments when the
    # pdus table is whole and its points were kept (aggregates.PduSummary), else per task
    points: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
    if ps.opcode_counts and not truncated and not ps.overflow:
        points = {sid: ((ts - c.t0) / 1e9, r, w) for sid, (ts, r, w) in ps.session_points().items()}
    tk = c.tasks
    scsi = tk[tk["kind"] == "scsi"] if len(tk) else tk
    tasks_by_session: dict[str, pd.DataFrame] = (
        {str(k): g for k, g in scsi.groupby(scsi["session"].astype(object), sort=False)} if len(scsi) else {}
    )
    if points is None and len(scsi):
        points = {
            sid: ((g["end_ts"].astype("int64") - c.t0).to_numpy() / 1e9, g["bytes_in"].to_numpy(),
                  g["bytes_out"].to_numpy())
            for sid, g in tasks_by_session.items()
        }
    session_rows: dict[str, dict[str, Any]] = {}
    for row in _rows(a.sessions[["session", "session_type", "start_ts", "end_ts", "target_name"]]):
        session_rows.setdefault(str(row["session"]), row)
    parts = []
    charted = 0
    not_charted = 0
    for sid in sessions:
        srow = session_rows[sid]
        if str(srow["session_type"]) == "Discovery":
            continue
        if charted >= MAX_THROUGHPUT_SESSIONS:
            not_charted += 1
            continue
        charted += 1
        s0 = max(c.rel(srow["start_ts"]), 0.0)
        s1 = max(c.rel(srow["end_ts"]), s0 + 1e-3)
        width = _bin_width(s1 - s0)
        edges = np.arange(math.floor(s0 / width) * width, s1 + width, width)
        if len(edges) < 2:
            edges = np.array([s0, s0 + width])
        sd = points.get(sid) if points is not None else None
        read = np.zeros(len(edges) - 1)
        write = np.zeros(len(edges) - 1)
        if sd is not None and len(sd[0]):
            read, _ = np.histogram(sd[0], bins=edges, weights=sd[1])
            write, _ = np.histogram(sd[0], bins=edges, weights=sd[2])
        st = tasks_by_session.get(sid)
        iops = np.zeros(len(edges) - 1)
        if st is not None and len(st):
            iops, _ = np.histogram((st["start_ts"].astype("int64") - c.t0) / 1e9, bins=edges)
        peak = float(((read + write) / width).max()) if len(read) else 0.0
        scale, unit = (1e6, "MB/s") if peak >= 1e5 or peak == 0 else (1e3, "KB/s")
        mbps_r, mbps_w, iops_v = read / width / scale, write / width / scale, iops / width
        total_r, total_w = float(read.sum()), float(write.sum())
        if total_r + total_w == 0 and not iops.sum():
            parts.append(f"<h3>Session {e(sid)}</h3><p class='muted'>No SCSI I/O in this session.</p>")
            continue
        centers = (edges[:-1] + edges[1:]) / 2
        ch1 = _line_chart(
            centers,
            [(f"Read {unit}", mbps_r, READ_COLOUR), (f"Write {unit}", mbps_w, WRITE_COLOUR)],
            unit,
            width,
            c,
        )
        ch2 = _line_chart(centers, [("IOPS", iops_v, IOPS_COLOUR)], "IOPS", width, c)
        dur = s1 - s0
        facts = (
            f"read {e(_fmt_bytes(total_r))}, written {e(_fmt_bytes(total_w))} in {e(_fmt_dur(dur))} "
            f"(average {(total_r + total_w) / max(dur, 1e-9) / 1e6:,.3f} MB/s, peak "
            f"{peak / 1e6:,.3f} MB/s; peak {float(iops_v.max()):,.0f} IOPS; "
            f"{_fmt_dur(width)} bins)"
        )
        parts.append(
            f"<h3>Session {e(sid)} <span class='muted'>· {e(srow['target_name'])}</span></h3>"
            f"<p class='muted'>{facts}</p><div class='cols'><div>{ch1}</div><div>{ch2}</div></div>"
        )
    if not_charted:
        parts.append(f"<p class='muted'>{not_charted:,} more sessions not charted (their I/O is in "
                     "tasks.parquet).</p>")
    if not parts:
        parts.append(_empty("Only discovery sessions: no SCSI I/O."))
    gaps = (a.capture.stats or {}).get("gap_bytes", 0)
    intro = (
        "Data-In / Data-Out / immediate data bytes per time bin (MB = 10⁶ bytes) and SCSI commands started per "
        "second, per session."
    )
    if truncated:
        intro += " The PDU table was truncated, so data is counted per task at its completion instead."
    if gaps:
        intro += f" {e(_fmt_bytes(gaps))} of stream bytes were not captured (TCP gaps) and are not counted."
    return _section("throughput", "Throughput and IOPS", "".join(parts), intro)


def _line_chart(
    xs: np.ndarray, series: list[tuple[str, np.ndarray, str]], unit: str, width: float, c: _Ctx
) -> str:
    W, H, LEFT, RIGHT, TOP, BOTTOM = 600, 230, 58, 14, 26, 38
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    x_lo, x_hi = float(xs[0] - width / 2), float(xs[-1] + width / 2)
    if x_hi <= x_lo:
        x_hi = x_lo + 1
    ymax = max(float(max((s.max() for _, s, _ in series), default=0)), 1e-9)
    yt = _ticks(0, ymax * 1.05, 5)
    y_hi = max(yt[-1], ymax) if yt else ymax

    def X(v: float) -> float:
        return LEFT + (v - x_lo) / (x_hi - x_lo) * pw

    def Y(v: float) -> float:
        return TOP + ph - v / y_hi * ph

    out = [f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" class="plot"/>']
    ystep = yt[1] - yt[0] if len(yt) > 1 else 1
    for v in yt:
        out.append(f'<line x1="{LEFT}" y1="{Y(v):.2f}" x2="{LEFT + pw}" y2="{Y(v):.2f}" class="grid"/>')
        out.append(
            f'<text x="{LEFT - 6}" y="{Y(v) + 4:.2f}" class="tick" text-anchor="end">{_fmt_tick(v, ystep)}</text>'
        )
    xt = _ticks(x_lo, x_hi, 6)
    xstep = xt[1] - xt[0] if len(xt) > 1 else 1
    for v in xt:
        out.append(f'<line x1="{X(v):.2f}" y1="{TOP}" x2="{X(v):.2f}" y2="{TOP + ph}" class="grid"/>')
        out.append(
            f'<text x="{X(v):.2f}" y="{TOP + ph + 15}" class="tick" text-anchor="middle">'
            f"{_fmt_tick(v, xstep)}</text>"
        )
    out.append(
        f'<text x="{LEFT + pw}" y="{H - 6}" class="axt" text-anchor="end">seconds since first frame</text>'
    )
    out.append(f'<text x="{LEFT}" y="{TOP - 10}" class="axt">{e(unit)}</text>')
    lx = LEFT + pw
    for name, s, col in reversed(series):
        if len(xs) == 1:
            pts = f"{X(x_lo):.2f},{Y(float(s[0])):.2f} {X(x_hi):.2f},{Y(float(s[0])):.2f}"
        else:
            pts = " ".join(f"{X(float(a)):.2f},{Y(float(b)):.2f}" for a, b in zip(xs, s, strict=True))
        out.append(
            f'<polyline points="{pts}" fill="none" stroke="{col}" stroke-width="1.6" '
            f'stroke-linejoin="round"><title>{e(name)}: peak {float(s.max()):,.2f}</title></polyline>'
        )
        lx -= 8 + 7 * len(name)
        out.append(
            f'<rect x="{lx}" y="{TOP - 19}" width="10" height="3" fill="{col}"/>'
            f'<text x="{lx + 13}" y="{TOP - 14}" class="tick">{e(name)}</text>'
        )
    return f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{e(unit)} over time">{"".join(out)}</svg>'


# --------------------------------------------------------------------------- anomalies


def _anomalies(c: _Ctx) -> str:
    an = c.a.anomalies
    if not len(an):
        why = "" if c.a.capture.anomaly_engine else " (the anomaly rules were not run)"
        return _section("anomalies", "Anomalies", _empty(f"No anomalies were found{why}."))
    rank = {"error": 0, "warning": 1, "info": 2}
    df = an.assign(_r=an["severity"].astype(object).map(lambda s: rank.get(s, 3)))
    df = df.sort_values(["_r", "frame"], kind="stable")
    kinds = (
        df.groupby([df["severity"].astype(object), df["kind"].astype(object)]).size().reset_index(name="n")
    )
    kinds["_r"] = kinds["severity"].map(lambda s: rank.get(s, 3))
    krows = [
        [_badge(str(r.severity), str(r.severity)), e(r.kind), _int(r.n)]
        for r in kinds.sort_values(["_r", "n"], ascending=[True, False]).itertuples()
    ]
    rows = []
    for r in _rows(df.head(MAX_ANOMALY_ROWS)):
        frames_list = str(r["frames"]).split() if not _na(r["frames"]) else []
        fr = " ".join(frames_list[:12]) + (f" … (+{len(frames_list) - 12})" if len(frames_list) > 12 else "")
        rows.append(
            [
                _badge(str(r["severity"]), str(r["severity"])),
                f'<span class="mono">{e(r["kind"])}</span>',
                _int(r["frame"]),
                e(f"{c.rel(r['ts']):,.6f}"),
                e(r["session"]),
                f'<span class="mono small">{e(r["conn"])}</span>',
                e(r["message"]),
                e(r["rfc"]),
                f'<span class="mono small">{e(fr)}</span>',
                f'<code class="filter" title="click to select, then copy">{e(r["display_filter"])}</code>',
            ]
        )
    more = (
        f"<p class='muted'>{len(df) - MAX_ANOMALY_ROWS:,} more anomalies are in anomalies.csv / .parquet.</p>"
        if len(df) > MAX_ANOMALY_ROWS
        else ""
    )
    body = (
        "<h3>By kind</h3>"
        + _table(["Severity", "Kind", "Count"], krows, "compact narrow")
        + "<h3>All findings</h3>"
        + _table(
            [
                "Severity",
                "Kind",
                "Frame",
                "Time (s)",
                "Session",
                "Connection",
                "Message",
                "RFC 7143",
                "Evidence frames",
                "Wireshark display filter",
            ],
            rows,
            "compact anom",
        )
        + more
    )
    return _section(
        "anomalies",
        "Anomalies",
        body,
        "Each finding with its evidence frames. Click a display filter to select it, copy it and paste "
        "it into Wireshark's filter bar.",
    )


# --------------------------------------------------------------------------- page

_CSS: Final = """
:root{--navy:#0b2545;--ink:#1d2733;--muted:#6b7785;--line:#dfe4ea;--bg:#f4f6f9;--card:#fff;--accent:#13a89e}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",
Arial,"Noto Sans",sans-serif}
header{background:linear-gradient(90deg,#0b2545,#13315c);color:#fff;padding:18px 32px 14px}
header h1{margin:0;font-size:22px;font-weight:600;letter-spacing:.2px}
header .sub{color:#b8c7da;font-size:13px;margin-top:4px;word-break:break-all}
header .brand{float:right;color:#8fd9d2;font-weight:600;font-size:13px;letter-spacing:1px;text-transform:uppercase}
nav{background:#fff;border-bottom:1px solid var(--line);padding:0 32px;position:sticky;top:0;z-index:2}
nav a{display:inline-block;padding:10px 12px;color:var(--navy);text-decoration:none;font-weight:500;font-size:13px}
nav a:hover{background:#eef3f8}
main{max-width:1320px;margin:0 auto;padding:8px 28px 40px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:18px 22px;margin:18px 0;
box-shadow:0 1px 2px rgba(16,24,40,.04)}
h2{margin:0 0 10px;font-size:18px;color:var(--navy);border-left:4px solid var(--accent);padding-left:10px}
h3{font-size:15px;margin:18px 0 8px;color:var(--navy)}
h4{font-size:13px;margin:14px 0 6px;color:#34495e;text-transform:uppercase;letter-spacing:.4px}
.intro{color:var(--muted);margin:0 0 12px}
.muted{color:var(--muted);font-weight:normal}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:6px 0 12px}
.card{flex:1 1 130px;border:1px solid var(--line);border-radius:8px;padding:10px 14px;background:#fbfcfd}
.card .cv{font-size:22px;font-weight:600;color:var(--navy)}
.card .cl{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.5px}
.card.sev-error{border-top:3px solid #d23c3c}.card.sev-warning{border-top:3px solid #e5a017}
.card.sev-info{border-top:3px solid #3f7fd0}
.cols{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:22px}
@media (max-width:1000px){.cols{grid-template-columns:1fr}}
.tw{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
thead th{background:#f0f3f7;color:#34495e;font-weight:600;font-size:12px;white-space:nowrap}
tbody tr:nth-child(even){background:#fafbfc}
table.narrow{width:auto;min-width:320px}
table.num td{font-variant-numeric:tabular-nums}
table.kv th{width:34%;color:var(--muted);font-weight:500;background:none}
table.kv td{word-break:break-all}
table.anom td{font-size:12.5px}
table.anom td:nth-child(7){min-width:300px}table.anom td:nth-child(6){max-width:150px}
.mono,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.small{font-size:11px;word-break:break-all}
code.filter{display:inline-block;background:#f2f5f8;border:1px solid #d5dde6;border-radius:4px;padding:2px 6px;
user-select:all;-webkit-user-select:all;cursor:copy;white-space:nowrap}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:11.5px;font-weight:600;white-space:nowrap}
.b-ok{background:#e3f5ec;color:#1b7a4b}.b-warn,.b-warning{background:#fdf1d8;color:#94620a}
.b-err,.b-error{background:#fbe3e3;color:#a62727}.b-info{background:#e4eefb;color:#2d5fa3}
.b-neutral{background:#eceff3;color:#4b5563}
.scard{border:1px solid var(--line);border-radius:8px;padding:12px 16px;margin:14px 0;background:#fdfdfe}
.scard h3{margin-top:2px}
.params{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:4px 14px}
.params .p{display:flex;justify-content:space-between;border-bottom:1px dotted var(--line);padding:2px 0;gap:8px}
.params .pk{color:var(--muted)}.params .pv{font-weight:600;word-break:break-all;text-align:right}
details{margin-top:10px}summary{cursor:pointer;color:var(--navy);font-weight:500}
.warnings{background:#fff8e6;border:1px solid #f3d58a;border-radius:8px;padding:4px 16px}
.warnings h3{margin-top:10px}.warnings li{margin:3px 0}
.okbox{background:#eaf7f0;border:1px solid #b9e3cb;border-radius:8px;padding:10px 16px;color:#1b7a4b}
.empty{background:#f6f8fa;border:1px dashed #c5ced8;border-radius:8px;padding:18px;color:var(--muted);
text-align:center;margin:8px 0}
svg.chart{width:100%;height:auto;display:block;font-family:inherit}
svg .lane{fill:#f3f5f8}svg .grid{stroke:#e3e7ec;stroke-width:1}
svg .tick{font-size:10.5px;fill:#5d6b7a}svg .axt{font-size:11px;fill:#6b7785}
svg .lbl{font-size:11px;fill:#2c3e50}svg .lbl.sess{font-weight:700;fill:#0b2545}svg .side{fill:#8794a3;font-size:10px}
svg .plot{fill:#fbfcfd;stroke:#e3e7ec}
svg .box{fill:#cfe0f5;stroke:#2f7fd1;stroke-width:1.2}svg .med{stroke:#0b2545;stroke-width:2.2}
svg .whisk{stroke:#5d6b7a;stroke-width:1.2}svg .mx{fill:#d23c3c}
svg.spark rect{fill:#2f7fd1}svg.spark rect.base{fill:#c5ced8}
.legend{margin:4px 0 8px;font-size:12px}
.lg{display:inline-flex;align-items:center;margin-right:14px;white-space:nowrap}
.lg i{display:inline-block;width:14px;height:10px;border-radius:2px;margin-right:5px}
.lg i.tri{width:0;height:0;border-left:6px solid transparent;border-right:6px solid transparent;
border-bottom:10px solid;border-radius:0;background:none;transform:rotate(180deg)}
footer{color:var(--muted);font-size:12px;text-align:center;padding:10px 0 30px}
"""


def render(analysis: Analysis, show_secrets: bool = False) -> str:
    """The whole report as one HTML document (no scripts, no external resources)."""
    c = _Ctx(analysis, show_secrets)
    cap = analysis.capture
    sections = [
        _summary(c),
        _sessions(c),
        _timeline(c),
        _tasks(c),
        _latency(c),
        _throughput(c),
        _anomalies(c),
    ]
    nav = "".join(
        f'<a href="#{a}">{t}</a>'
        for a, t in (
            ("summary", "Summary"),
            ("sessions", "Sessions"),
            ("timeline", "State timeline"),
            ("tasks", "Tasks"),
            ("latency", "Latency"),
            ("throughput", "Throughput"),
            ("anomalies", "Anomalies"),
        )
    )
    title = f"iSCSI analysis · {cap.name or cap.file or 'capture'}"
    sub = (
        f"{e(cap.file or cap.name)} · {e(_fmt_abs(c.t0))} · {e(_fmt_dur((c.t1 - c.t0) / 1e9))} · "
        f"{cap.frames:,} frames"
    )
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>"
        f'<header><span class="brand">iscsi-analyzer</span><h1>iSCSI capture analysis</h1>'
        f'<div class="sub">{sub}</div></header>'
        f"<nav>{nav}</nav><main>{''.join(sections)}</main>"
        f"<footer>Generated by iscsi-analyzer {e(cap.analyzer_version)} · RFC 7143 (iSCSI) · "
        "times are capture timestamps</footer></body></html>\n"
    )
