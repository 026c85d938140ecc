"""End of capture and snapshots: pending closes applied (inferred), tasks still open closed as
``open_at_capture_end``, and the SessionSummary / ConnectionSummary records.
"""

from __future__ import annotations

from analyzer.state import (
    logins,
    pending,
    reinstatement,
    task_book,
)
from analyzer.state.books import (
    Conn,
    Session,
    isid_hex,
)
from analyzer.state.desk import Desk
from analyzer.state.events import (
    ConnectionSummary,
    SessionSummary,
)


def finish_capture(d: Desk, ts: int) -> None:
    frame = d.last_frame
    for c in d.conns.values():
        if c.login is not None:  # a login still in progress: its results as far as they went
            logins.partial_params(c, c.session, c.login)
        if c.login is not None and (c.login.old_conn is not None or c.login.old_session is not None):
            d.out.append(reinstatement.reinst_record(d, c, c.login, frame, ts, "incomplete"))
    for c in list(d.conns.values()):
        p = c.pending
        if p is not None and p.kind == "carrier_logout":
            c.pending = None
        elif p is not None:  # nothing contradicted the implied close: apply it where it was implied
            pending.resolve_pending(d, c, p.frame, p.ts, "nothing more was seen on this connection (inferred at "
                                  "capture end)", True, None, "target")
    for s in d.sessions.values():
        for t in list(s.tasks.values()) + [p for c in s.conns for p in c.pings.values()]:
            task_book.end_unanswered(d, s, t, max(frame, t.last_frame), ts, "open_at_capture_end", "capture_end")
        if s.ended == "open":
            s.ended = "capture_end"
    for c in d.conns.values():
        if c.ended == "open":
            c.ended = "capture_end"
    for s in d.sessions.values():
        d.out.append(session_summary(d, s, frame, ts))
    for c in d.conns.values():
        d.out.append(conn_summary(d, c, frame, ts))
    d.finished = True


def session_summary(d: Desk, s: Session, frame: int, ts: int) -> SessionSummary:
    tpgt = s.tpgt
    ssid = f"{isid_hex(s.isid)},{tpgt}" if s.isid is not None and tpgt is not None else None
    portals = tuple(dict.fromkeys(f"{c.server}:{c.server_port}" for c in s.conns if c.server))
    inits = tuple(dict.fromkeys(c.client for c in s.conns if c.client))
    params = dict(s.params)
    stype = s.session_type or ("unknown" if s.mid_stream else "Normal")
    return SessionSummary(
        frame, ts, s.id, stype, isid_hex(s.isid), tpgt, s.tsih, ssid, s.initiator_name, s.target_name,
        s.initiator_alias, s.target_alias, portals, inits, tuple(c.id for c in s.conns),
        tuple(c.cid for c in s.conns if c.cid is not None), params, s.start_frame, s.start_ts,
        s.last_frame, s.last_ts, s.ended, s.state["initiator"].value, s.state["target"].value, s.mid_stream,
        s.reinstated_from, s.reinstated_by, s.task_count, tuple(s.discovered_targets), s.redirected_to,
        s.redirected_from, s.redirect_followed_by)


def conn_summary(d: Desk, c: Conn, frame: int, ts: int) -> ConnectionSummary:
    ci, ct = c.cleanup["initiator"], c.cleanup["target"]
    return ConnectionSummary(
        frame, ts, c.id, c.session.id if c.session else None, c.cid, c.client, c.client_port, c.server,
        c.server_port, c.role, dict(c.params), c.header_digest.crc32c, c.data_digest.crc32c, c.mrdsl_initiator,
        c.mrdsl_target, c.start_frame, c.start_ts, c.last_frame, c.last_ts, c.ended,
        c.state["initiator"].value, c.state["target"].value, ci.value if ci else None,
        ct.value if ct else None, c.mid_stream, c.handshake, c.tcp_end,
        c.login_status[0] if c.login_status else None, c.login_status[1] if c.login_status else None,
        c.reinstated_by, c.reinstates, c.pdus, c.tasks, c.header_digest.source, c.data_digest.source,
        c.dsl_seen_t2i, c.dsl_seen_i2t, c.redirected_to)
