"""The summary and sessions sections of the HTML report (identity, negotiated parameters,
connections and login keys per session; cards capped at ``MAX_SESSION_CARDS``).
"""
from __future__ import annotations

from typing import Any

from analyzer.iscsi.text_keys import mask_secret
from analyzer.reports.frames import params_dict
from analyzer.reports.html.context import _Ctx
from analyzer.reports.html.text import (
    MAX_KEYS_PER_SESSION,
    MAX_ORPHAN_CONNS,
    MAX_SESSION_CARDS,
    _empty,
    _ended_badge,
    _fmt_abs,
    _fmt_bytes,
    _fmt_dur,
    _int,
    _kv,
    _na,
    _ns,
    _rows,
    _section,
    _table,
    e,
)


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
                f'<span class="mono">'
                f'{e(k["value"] if c.show_secrets else mask_secret(str(k["key"]), str(k["value"])))}</span>',
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
