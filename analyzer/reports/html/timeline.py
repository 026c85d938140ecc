"""The state-timeline section: RFC 7143 §8 connection (§8.1), cleanup (§8.2) and session (§8.3)
states per side over capture time, with anomaly markers and the transition list. Lanes are
grouped in one pass over the transitions (O(n log n) for the sort), drawn lanes are capped.
"""
from __future__ import annotations

from typing import Any

from analyzer.reports.html.charts import _time_axis_svg
from analyzer.reports.html.context import _Ctx
from analyzer.reports.html.text import (
    MAX_ANOMALY_ROWS,
    MAX_MARKERS,
    MAX_TIMELINE_CONNS,
    MAX_TIMELINE_SESSIONS,
    SEVERITY_COLOURS,
    STATE_COLOURS,
    _clip,
    _colour,
    _empty,
    _fmt_rel,
    _int,
    _na,
    _ns,
    _rows,
    _section,
    _table,
    e,
)


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
        from analyzer.reports.html.sections import listed_anomalies

        listed = set(listed_anomalies(a.anomalies).index[:MAX_ANOMALY_ROWS].tolist())
        ordered = a.anomalies.sort_values(["ts", "frame"])
        for idx, r in zip(ordered.index, _rows(ordered), strict=True):
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
            href = f"#anomaly-{int(idx)}" if idx in listed else "#anomalies"  # each marker links to its finding
            markers.append(
                f'<a href="{href}"><path d="M{mx:.2f},{my + 5:.2f} l-5,-8 h10 z" fill="{col}" stroke="#fff" '
                f'stroke-width="0.8" class="mk"><title>{e(tip)}</title></path></a>'
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
