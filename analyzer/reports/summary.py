"""Plain-text summary of an Analysis, for people at a terminal (``iscsi-analyzer analyze`` prints it).

It opens with the story (``CaptureInfo.story``, from ``analyzer.diagnosis``): a few plain
sentences of what happened, e.g. which session dropped, who closed it, how many commands were
lost and how long until I/O resumed on which session. Then sessions and how each ended, the top
anomalies, latency per SCSI operation and throughput. Long cells wrap onto continuation lines
(never cut). Capture-derived text is printed as is, minus control characters (no terminal escapes).
"""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from analyzer.reports.analysis import Analysis

TOP_ANOMALIES = 10
TOP_OPS = 10
#: Most sessions listed (and charted for throughput); the rest are counted.
MAX_SESSIONS = 50
#: Width the story sentences are wrapped to.
STORY_WIDTH = 100
#: Widest grid column; longer cells wrap onto continuation lines (never cut).
MAX_COLUMN = 60


def _clean(v: Any) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return "".join(ch if ch.isprintable() else "?" for ch in str(v))


def _hex16(v: Any) -> str:
    """TSIH as storage engineers read it (0x0100), not as a decimal number."""
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return "-"
    try:
        return f"0x{int(v):04x}"
    except (TypeError, ValueError):
        return _clean(v)


def _dur(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    if s < 120:
        return f"{s:.3g} s"
    m, sec = divmod(round(s), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


def _grid(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    widths = [min(w, MAX_COLUMN) for w in widths]

    def lines(cells: list[str]) -> list[str]:
        parts = [textwrap.wrap(c, w, break_on_hyphens=False) or [""] if len(c) > w else [c]
                 for c, w in zip(cells, widths, strict=True)]
        return ["  " + "  ".join((p[i] if i < len(p) else "").ljust(w)
                                 for p, w in zip(parts, widths, strict=True)).rstrip()
                for i in range(max(len(p) for p in parts))]

    out = lines(head) + lines(["-" * w for w in widths])
    for r in rows:
        out += lines(r)
    return out


def story_lines(sentences: list[str]) -> list[str]:
    """The story as wrapped paragraphs (one per sentence group), with a heading."""
    out = ["What happened"]
    for s in sentences:
        out += textwrap.wrap(_clean(s), STORY_WIDTH, initial_indent="  ", subsequent_indent="    ",
                             break_on_hyphens=False, break_long_words=False)
    return out


def summary_text(a: Analysis) -> str:
    """The summary as text lines joined with newlines."""
    cap = a.capture
    out: list[str] = []
    out.append(f"Capture  {_clean(cap.file or cap.name)}")
    out.append(
        f"         {cap.frames:,} frames, {_dur(cap.duration_s)}, {cap.pdus:,} iSCSI PDUs, "
        f"{len(a.sessions)} sessions, {len(a.connections)} connections, {a.table_rows('tasks'):,} tasks"
    )
    for d in cap.damage:
        out.append(f"  ! damaged: {_clean(d)}")
    st = cap.stats or {}
    if st.get("tcp_gaps"):
        out.append(f"  ! {st['tcp_gaps']:,} TCP gaps ({st.get('gap_bytes', 0):,} bytes never captured)")
    for table, t in (cap.truncated or {}).items():
        out.append(f"  ! {table}: kept {t['kept']:,} of {t['seen']:,} rows (limit {t['limit']:,})")
    if cap.pdus == 0 and not len(a.sessions):
        out.append("")
        out.append("No iSCSI traffic found in this capture.")
        return "\n".join(out)
    if cap.story:
        out.append("")
        out += story_lines(cap.story)

    out.append("")
    out.append("Sessions")
    rows = []
    for s in a.sessions.head(MAX_SESSIONS).to_dict("records"):
        dur = s["duration"].total_seconds() if not pd.isna(s["duration"]) else 0.0
        rows.append(
            [
                _clean(s["session"]),
                _clean(s["session_type"]),
                _clean(s["initiator_name"]),
                _clean(s["target_name"]),
                _clean(s["isid"]),
                _hex16(s["tsih"]),
                _dur(dur),
                f"{int(s['tasks']):,}",
                _clean(s["ended"]),
            ]
        )
    out += _grid(["id", "type", "initiator", "target", "ISID", "TSIH", "duration", "tasks", "ended"], rows)
    if len(a.sessions) > MAX_SESSIONS:
        out.append(f"  ... {len(a.sessions) - MAX_SESSIONS:,} more sessions in sessions.csv")

    out.append("")
    an = a.anomalies
    if len(an):
        counts = an["severity"].astype(object).value_counts()
        out.append(
            "Anomalies  " + ", ".join(f"{int(counts.get(s, 0))} {s}" for s in ("error", "warning", "info"))
        )
        rank = {"error": 0, "warning": 1, "info": 2}
        g = (
            an.groupby([an["severity"].astype(object), an["kind"].astype(object)])
            .agg(n=("frame", "size"), first=("frame", "min"), message=("message", "first"))
            .reset_index()
        )
        g["_r"] = g["severity"].map(lambda s: rank.get(s, 3))
        g = g.sort_values(["_r", "n"], ascending=[True, False]).head(TOP_ANOMALIES)
        out += _grid(
            ["severity", "kind", "count", "first frame", "example"],
            [
                [_clean(r.severity), _clean(r.kind), f"{r.n:,}", f"{r.first}", _clean(r.message)]
                for r in g.itertuples()
            ],
        )
    else:
        out.append("Anomalies  none" + ("" if cap.anomaly_engine else " (anomaly rules not run)"))

    t = a.columns("tasks", ["kind", "session", "start_ts", "end_ts", "bytes_in", "bytes_out"])
    # latency from the pass's digests (exact percentiles up to aggregates.EXACT_LATENCIES commands per
    # operation and LUN, within 1 % past it; see aggregates.LatencyDigest)
    by_op = a.latency.by_operation()
    out.append("")
    if by_op:
        out.append("Latency per SCSI operation (ms)")
        rows = []
        for op, d in sorted(sorted(by_op.items()), key=lambda kv: -kv[1].count)[:TOP_OPS]:
            p50, p95, p99 = d.percentiles_s([50, 95, 99])
            rows.append(
                [
                    _clean(op),
                    f"{d.count:,}",
                    f"{p50 * 1e3:.3f}",
                    f"{p95 * 1e3:.3f}",
                    f"{p99 * 1e3:.3f}",
                    f"{d.max_s() * 1e3:.3f}",
                ]
            )
        out += _grid(["operation", "count", "p50", "p95", "p99", "max"], rows)
    else:
        out.append("Latency  no completed SCSI commands")

    scsi = t[t["kind"] == "scsi"] if len(t) else t
    if len(scsi):
        out.append("")
        out.append("Throughput per session")
        rows = []
        groups = list(scsi.groupby(scsi["session"].astype(object)))
        for sid, g in groups[:MAX_SESSIONS]:
            # rates over the session's I/O interval: first command sent to last command ended; none
            # (shown "-") when that interval is unknown or zero (a single command seen at one instant)
            t0 = g["start_ts"].min()
            t1 = g["end_ts"].max()
            secs = (t1 - t0).total_seconds() if not (pd.isna(t0) or pd.isna(t1)) else 0.0
            rb, wb = int(g["bytes_in"].sum()), int(g["bytes_out"].sum())
            rows.append(
                [
                    _clean(sid),
                    f"{len(g):,}",
                    f"{rb / 1e6:,.2f}",
                    f"{wb / 1e6:,.2f}",
                    f"{(rb + wb) / secs / 1e6:,.2f}" if secs > 0 else "-",
                    f"{len(g) / secs:,.1f}" if secs > 0 else "-",
                ]
            )
        out += _grid(["session", "commands", "read MB", "written MB", "avg MB/s", "avg IOPS"], rows)
        if len(groups) > MAX_SESSIONS:
            out.append(f"  ... {len(groups) - MAX_SESSIONS:,} more sessions in tasks.parquet")
    return "\n".join(out)
