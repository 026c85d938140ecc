"""The diagnosis sections of the HTML report (``analyzer.diagnosis`` via the report's tables):
the story that opens the page, drops, paths, NOP pings and queue depth.

Every section reads one small table (rows per drop, path, ping, session), sorts it once and
shows at most ``MAX_DIAGNOSIS_ROWS`` rows; the rest is counted and left in its Parquet file.
"""
from __future__ import annotations

from typing import Any, Final

import numpy as np

from analyzer.records import frames_display_filter
from analyzer.reports.html.context import _Ctx
from analyzer.reports.html.text import _badge, _empty, _int, _na, _rows, _section, _table, e

#: Most rows per diagnosis table shown (the rest is counted).
MAX_DIAGNOSIS_ROWS: Final = 500
_CONFIDENCE: Final = {"high": "err", "medium": "warn", "low": "info"}


def _ms(v: Any) -> str:
    if _na(v):
        return "—"
    f = float(v)
    return f"{f / 1000:,.2f} s" if f >= 1000 else f"{f:,.1f} ms"


def _frames_of(evidence: Any) -> list[int]:
    return [int(x) for x in str(evidence).split() if x.isdigit()] if not _na(evidence) else []


def _more(n: int, table: str) -> str:
    return f"<p class='muted'>{n:,} more rows are in {table}.parquet.</p>" if n > 0 else ""


def _story(c: _Ctx) -> str:
    """What happened, in plain sentences, and links to the findings that carry the evidence."""
    story = list(c.a.capture.story or [])
    drops = c.a.drops
    if not story:
        body = "<div class='okbox'>No connection dropped and no path went down in this capture.</div>"
    else:
        body = "".join(f"<p>{e(s)}</p>" for s in story)
    links = []
    if len(drops):
        for i, r in enumerate(_rows(drops.sort_values(["ts", "frame"], kind="stable").head(MAX_DIAGNOSIS_ROWS))):
            links.append(f'<li><a href="#drop-{i}">frame {_int(r["frame"])}: {e(r["session"] or r["conn"])} '
                         f'ended ({e(str(r["cause"]).replace("_", " "))}, {e(r["confidence"])} confidence)</a></li>')
    an = c.a.anomalies
    if len(an):
        sev = an["severity"].astype(object)
        counts = {s: int((sev == s).sum()) for s in ("error", "warning", "info")}
        links.append('<li><a href="#anomalies">' + ", ".join(f"{n:,} {s}" for s, n in counts.items())
                     + " anomalies</a></li>")
    if links:
        body += "<h3>Findings</h3><ul>" + "".join(links) + "</ul>"
    return _section("story", "What happened", body)


def _drops(c: _Ctx) -> str:
    drops = c.a.drops
    if not len(drops):
        return _section("drops", "Connection drops", _empty("No connection ended without a logout."))
    rec = {str(r["conn"]): r for r in _rows(c.a.recoveries)}
    df = drops.sort_values(["ts", "frame"], kind="stable")
    rows = []
    for i, r in enumerate(_rows(df.head(MAX_DIAGNOSIS_ROWS))):
        rv = rec.get(str(r["conn"]), {})
        frames = _frames_of(r["evidence"])
        flt = frames_display_filter(frames) if frames else ""
        resumed = "never" if not rv or _na(rv.get("io_stopped_ms")) else (
            f"{_ms(rv['io_stopped_ms'])} · {e(str(rv['resumed_via']).replace('_', ' '))}"
            + (f" {e(rv['resumed_session'])}" if not _na(rv.get("resumed_session")) else ""))
        rows.append([
            f'<a id="drop-{i}"></a>{_int(r["frame"])}',
            e(f"{c.rel(r['ts']):,.6f}"),
            e(r["session"]),
            f'<span class="mono small">{e(r["conn"])}</span>',
            _badge(str(r["cause"]).replace("_", " "), "warn"),
            _badge(str(r["confidence"]), _CONFIDENCE.get(str(r["confidence"]), "neutral")),
            e(str(r["ended_by"]).replace("_", " ")),
            _int(r["lost_commands"]),
            resumed,
            e(r["explanation"]),
            f'<span class="mono small">{e(" ".join(str(f) for f in frames))}</span>',
            f'<code class="filter" title="click to select, then copy">{e(flt)}</code>' if flt else "—",
            f'<span class="small">{e(r["initiator_log"])}</span>',
        ])
    body = _table(["Frame", "Time (s)", "Session", "Connection", "Cause", "Confidence", "Ended by", "Lost commands",
                   "I/O stopped / resumed", "Why", "Evidence frames", "Wireshark display filter",
                   "What the initiator logs"], rows, "compact anom")
    return _section("drops", "Connection drops", body + _more(len(df) - MAX_DIAGNOSIS_ROWS, "drops"),
                    "Why each connection ended without a logout (first matching rule, with its confidence), "
                    "how long I/O from the initiator to the target stopped and where it resumed.")


def _paths(c: _Ctx) -> str:
    p = c.a.paths
    if not len(p):
        return _section("paths", "Paths", _empty("No initiator-target path with a logged-in session."))
    df = p.sort_values(["drops", "down_ms"], ascending=False, kind="stable")
    rows = [[
        e(r["initiator_address"]) + " → " + e(r["portal"]),
        e(r["initiator"]), e(r["target"]), e(r["sessions"]), _int(r["connections"]),
        _ms(r["up_ms"]), _ms(r["down_ms"]), _int(r["down_intervals"]), _int(r["drops"]),
        _badge("never came back", "err") if r["never_came_back"] else _badge("up", "ok"),
        e(r["duplicate_sessions"]) or "—",
    ] for r in _rows(df.head(MAX_DIAGNOSIS_ROWS))]
    body = _table(["Path", "Initiator", "Target", "Sessions", "Connections", "Up", "Down", "Down intervals", "Drops",
                   "State at end", "Duplicate sessions"], rows, "compact")
    return _section("paths", "Paths", body + _more(len(df) - MAX_DIAGNOSIS_ROWS, "paths"),
                    "Each initiator address to target portal path: time with a session in full feature phase "
                    "(up) and without (down).")


def _nops(c: _Ctx) -> str:
    n = c.a.nop_pings
    if not len(n):
        return _section("nops", "NOP pings", _empty("No NOP-Out / NOP-In pings (§11.18, §11.19) in this capture."))
    groups = []
    for (conn, pinger), g in n.groupby([n["conn"].astype(object), n["pinger"].astype(object)], sort=True):
        rtt = g["rtt_ms"].dropna().to_numpy(dtype=float)
        groups.append((conn, pinger, len(g), int((g["outcome"] == "answered").sum()), rtt))
    groups.sort(key=lambda x: (x[3] - x[2], x[0]))  # the most unanswered first
    rows = [[
        f'<span class="mono small">{e(conn)}</span>', e(pinger), _int(total), _int(answered),
        _int(total - answered),
        _ms(float(np.percentile(rtt, 50))) if len(rtt) else "—",
        _ms(float(rtt.max())) if len(rtt) else "—",
    ] for conn, pinger, total, answered, rtt in groups[:MAX_DIAGNOSIS_ROWS]]
    body = _table(["Connection", "Pinger", "Pings", "Answered", "Unanswered", "RTT p50", "RTT max"], rows,
                  "compact num")
    return _section("nops", "NOP pings", body + _more(len(groups) - MAX_DIAGNOSIS_ROWS, "nop_pings"),
                    "Pings per connection and side: initiator NOP-Outs with an ITT, target NOP-Ins with a TTT, "
                    "and their round trips.")


def _queues(c: _Ctx) -> str:
    q = c.a.queues
    if not len(q):
        return _section("queue", "Queue depth", _empty("No session with SCSI commands."))
    df = q.sort_values(["depth_max", "session"], ascending=[False, True], kind="stable")
    rows = [[
        e(r["session"]), e(r["target"]), _int(r["commands"]), _int(r["depth_p50"]), _int(r["depth_p95"]),
        _int(r["depth_max"]), f"{float(r['depth_mean']):,.2f}" if not _na(r["depth_mean"]) else "—",
        "—" if _na(r["window_min"]) else f"{_int(r['window_min'])}–{_int(r['window_max'])}",
        _int(r["window_exhausted"]), _ms(r["window_exhausted_ms"]), _int(r["window_shrinks"]),
    ] for r in _rows(df.head(MAX_DIAGNOSIS_ROWS))]
    body = _table(["Session", "Target", "Commands", "Depth p50", "Depth p95", "Depth max", "Depth mean",
                   "CmdSN window", "Window used up", "Time used up", "Window shrinks"], rows, "compact num")
    return _section("queue", "Queue depth", body + _more(len(df) - MAX_DIAGNOSIS_ROWS, "queues"),
                    "Outstanding SCSI commands per session (time-weighted percentiles) and the command window "
                    "MaxCmdSN − ExpCmdSN + 1 the target granted (RFC 7143 §4.2.2.1).")
