"""The tasks, latency, throughput and anomalies sections of the HTML report.
"""
from __future__ import annotations

import math
from typing import Any, cast

import numpy as np
import pandas as pd

from analyzer.reports.html.charts import (
    _bin_width,
    _latency_boxes,
    _line_chart,
    _sparkline,
)
from analyzer.reports.html.context import _Ctx
from analyzer.reports.html.text import (
    IOPS_COLOUR,
    MAX_ANOMALY_ROWS,
    MAX_LATENCY_OPS,
    MAX_THROUGHPUT_SESSIONS,
    READ_COLOUR,
    WRITE_COLOUR,
    _badge,
    _empty,
    _fmt_bytes,
    _fmt_dur,
    _fmt_ms,
    _int,
    _na,
    _rows,
    _section,
    _table,
    e,
)


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


def listed_anomalies(an: pd.DataFrame) -> pd.DataFrame:
    """The anomalies in the order the Anomalies section lists them (errors first, then by frame); the
    first ``MAX_ANOMALY_ROWS`` are listed, each with the anchor ``anomaly-<row index of the table>``."""
    rank = {"error": 0, "warning": 1, "info": 2}
    df = an.assign(_r=an["severity"].astype(object).map(lambda s: rank.get(s, 3)))
    return df.sort_values(["_r", "frame"], kind="stable")


def _anomalies(c: _Ctx) -> str:
    an = c.a.anomalies
    if not len(an):
        why = "" if c.a.capture.anomaly_engine else " (the anomaly rules were not run)"
        return _section("anomalies", "Anomalies", _empty(f"No anomalies were found{why}."))
    rank = {"error": 0, "warning": 1, "info": 2}
    df = listed_anomalies(an)
    kinds = (
        df.groupby([df["severity"].astype(object), df["kind"].astype(object)]).size().reset_index(name="n")
    )
    kinds["_r"] = kinds["severity"].map(lambda s: rank.get(s, 3))
    krows = [
        [_badge(str(r.severity), str(r.severity)), e(r.kind), _int(r.n)]
        for r in kinds.sort_values(["_r", "n"], ascending=[True, False]).itertuples()
    ]
    rows = []
    shown = df.head(MAX_ANOMALY_ROWS)
    for idx, r in zip(shown.index, _rows(shown), strict=True):
        frames_list = str(r["frames"]).split() if not _na(r["frames"]) else []
        fr = " ".join(frames_list[:12]) + (f" … (+{len(frames_list) - 12})" if len(frames_list) > 12 else "")
        rows.append(
            [
                f'<a id="anomaly-{int(idx)}"></a>' + _badge(str(r["severity"]), str(r["severity"])),
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
