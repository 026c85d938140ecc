"""Session identity and the indexes (RFC 7143 §6.3): connection and session objects, the
ISID/TSIH and InitiatorName/ISID/TargetName indexes used to recognise added connections and
reinstatements, SessionIdentified, and the open-session/open-connection indexes that make
``sessions(live_only=True)`` cost O(open ones).
"""

from __future__ import annotations

from analyzer.records import (
    Pdu,
    TcpRecord,
)
from analyzer.state.books import (
    Q1,
    R1,
    R2,
    S1,
    SIDES,
    Conn,
    Session,
    isid_hex,
    parse_conn_id,
)
from analyzer.state.connection import ConnState
from analyzer.state.desk import Desk
from analyzer.state.events import (
    SessionIdentified,
)
from analyzer.state.session import SessState


def conn_ended(d: Desk, c: Conn) -> bool:
    if not c.tcp_closed or c.login is not None or c.pending is not None or c.pings:
        return False
    for side in SIDES:
        if c.state[side] is not S1 and not (c.state[side] is ConnState.UNKNOWN and not c.was_ffp[side]):
            return False
        if c.cleanup[side] is R1 or c.cleanup[side] is R2:
            return False
    return True


def session_ended(d: Desk, s: Session) -> bool:
    if s.live() or s.tasks or s.id in d.reinstating:
        return False
    return all(conn_ended(d, c) for c in s.conns)


def open_session_list(d: Desk) -> list[Session]:
    ended = [s for s in d.open_sessions.values() if session_ended(d, s)]
    for s in ended:
        del d.open_sessions[s.id]
    return list(d.open_sessions.values())


def open_conn_list(d: Desk) -> list[Conn]:
    ended = [c for c in d.open_conns.values() if conn_ended(d, c)]
    for c in ended:
        del d.open_conns[c.id]
    return list(d.open_conns.values())


def unindex(d: Desk, s: Session) -> None:
    if not s.indexed:
        return
    s.indexed = False
    if s.isid is not None and s.tsih is not None and d.by_tsih.get((s.isid, s.tsih)) is s:
        del d.by_tsih[(s.isid, s.tsih)]
    if s.isid is not None:
        k = (s.initiator_name, s.isid, s.target_name)
        if d.by_nexus.get(k) is s:
            del d.by_nexus[k]


def index(d: Desk, s: Session) -> None:
    if s.isid is None:
        return
    s.indexed = True
    if s.tsih:
        d.by_tsih[(s.isid, s.tsih)] = s
    d.by_nexus[(s.initiator_name, s.isid, s.target_name)] = s


def new_session(d: Desk, frame: int, ts: int, mid_stream: bool) -> Session:
    d.sid_counter += 1
    sid = f"s{d.sid_counter}"
    init = SessState.UNKNOWN if mid_stream else Q1
    s = Session(sid, {"initiator": init, "target": init}, frame, ts, mid_stream,
                 last_frame=frame, last_ts=ts, time2wait=d.t2w_default, time2retain=d.t2r_default)
    d.sessions[sid] = s
    d.open_sessions[sid] = s
    return s


def attach(d: Desk, c: Conn, s: Session) -> None:
    c.session = s
    if c not in s.conns:
        s.conns.append(c)
    if s.id not in d.open_sessions and s.id in d.sessions:
        d.open_sessions[s.id] = s


def conn_for(d: Desk, r: TcpRecord | Pdu) -> Conn:
    c = d.conns.get(r.conn)
    if c is None:
        c = Conn(r.conn, r.frame, r.ts_ns, False, True,
                  {"initiator": ConnState.UNKNOWN, "target": ConnState.UNKNOWN})
        c.client, c.client_port, c.server, c.server_port = parse_conn_id(r.conn)
        d.conns[r.conn] = c
        d.open_conns[r.conn] = c
    c.last_frame = max(c.last_frame, r.frame)
    c.last_ts = max(c.last_ts, r.ts_ns)
    return c


def session_of(d: Desk, c: Conn, frame: int, ts: int) -> Session:
    if c.session is None:
        attach(d, c, new_session(d, frame, ts, True))
    assert c.session is not None
    s = c.session
    s.last_frame = max(s.last_frame, frame)
    s.last_ts = max(s.last_ts, ts)
    return s


def identified(d: Desk, s: Session, c: Conn | None, frame: int, ts: int) -> None:
    """Emit SessionIdentified once per session (before the transitions of ``frame``)."""
    if s.identified:
        return
    s.identified = True
    stype = s.session_type or ("unknown" if s.mid_stream else "Normal")
    d.out.append(SessionIdentified(frame, ts, s.id, c.id if c else None, stype, isid_hex(s.isid), s.tsih,
                                       s.tpgt, s.initiator_name, s.target_name, s.initiator_alias,
                                       s.target_alias, s.mid_stream))
