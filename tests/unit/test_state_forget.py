"""SessionTracker.forget / sessions(live_only=True): dropping ended sessions in a long live run."""

from __future__ import annotations

from state_helpers import Flow, Reinstatement, S, Wire, login, of, run

from analyzer.records import I2T, T2I
from analyzer.state.events import SessionSummary
from analyzer.state.tracker import SessionTracker

CONN_A = "10.0.0.1:40000->10.0.0.2:3260"
CONN_B = "10.0.0.1:40001->10.0.0.2:3260"
CONN_C = "10.0.0.1:40002->10.0.0.2:3260"
CONN_D = "10.0.0.1:40003->10.0.0.2:3260"
OTHER_ISID = 0x400001370099


def _logged_in(tr: SessionTracker, w: Wire, conn: str, **kw: object) -> Flow:
    f = Flow(w, conn=conn)
    run(tr, [f.opened(), *login(f, **kw)])  # type: ignore[arg-type]
    return f


def _logged_out(tr: SessionTracker, f: Flow, *, close: bool = True) -> None:
    """Close-session logout, then (``close``) FIN both ways and TcpClosed."""
    lo = f.logout_req(reason=0)
    run(tr, [lo, f.logout_rsp(lo.itt)])
    if close:
        run(tr, [f.fin(I2T), f.fin(T2I), f.closed()])


def _ids(tr: SessionTracker, live_only: bool = False) -> list[str]:
    return [s.session for s in tr.sessions(live_only=live_only)]


def test_forget_drops_an_ended_session_and_its_index_entries() -> None:
    w, tr = Wire(), SessionTracker()
    a = _logged_in(tr, w, CONN_A)
    itt = a.new_itt()
    run(tr, [a.scsi_cmd(itt), a.data_in(itt, status=0)])
    _logged_out(tr, a)
    assert tr.ended("s1") and _ids(tr) == ["s1"] and _ids(tr, live_only=True) == []
    tr.forget("s1")
    assert _ids(tr) == [] and tr.connections() == [] and not tr.ended("s1")
    assert tr.session_connections("s1") == ()
    assert not tr._d.sessions and not tr._d.conns and not tr._d.by_tsih and not tr._d.by_nexus
    assert not tr._d.open_sessions and not tr._d.open_conns
    tr.forget("s1")  # twice, or an unknown id: no-op
    tr.forget("s99")
    end = tr.finish(w.ts)
    assert of(end, SessionSummary) == []  # nothing about it at the end either


def test_session_ids_are_never_reused_after_forget() -> None:
    w, tr = Wire(), SessionTracker()
    a = _logged_in(tr, w, CONN_A)
    _logged_out(tr, a)
    tr.forget("s1")
    b = _logged_in(tr, w, CONN_B, tsih_assigned=0x13)
    assert _ids(tr) == ["s2"]
    _logged_out(tr, b)
    tr.forget("s2")
    _logged_in(tr, w, CONN_C, tsih_assigned=0x14)
    assert _ids(tr) == ["s3"] == _ids(tr, live_only=True)


def test_live_sessions_are_not_forgotten() -> None:
    w, tr = Wire(), SessionTracker()
    a = _logged_in(tr, w, CONN_A)
    tr.forget("s1")  # LOGGED_IN
    assert _ids(tr) == ["s1"] == _ids(tr, live_only=True)
    # an open task keeps it too, even once the session is being logged out
    itt = a.new_itt()
    run(tr, [a.scsi_cmd(itt)])
    tr.forget("s1")
    assert _ids(tr) == ["s1"]
    run(tr, [a.data_in(itt, status=0)])
    # FREE on both sides after the Logout Response, but the TCP connection is still open
    _logged_out(tr, a, close=False)
    assert tr.sessions()[0].state_target == "FREE" and not tr.ended("s1")
    tr.forget("s1")
    assert _ids(tr) == ["s1"] == _ids(tr, live_only=True)
    run(tr, [a.fin(I2T), a.fin(T2I)])  # FINs both ways, TcpClosed not yet
    assert not tr.ended("s1")
    run(tr, [a.closed()])
    assert _ids(tr, live_only=True) == [] and tr.ended("s1")
    tr.forget("s1")
    assert _ids(tr) == []


def test_a_failed_session_is_live_until_its_state_times_out() -> None:
    """Dropped connection: FAILED (Q4) and CLEANUP_WAIT until Time2Wait + Time2Retain (2 + 20 s)."""
    w, tr = Wire(), SessionTracker()
    a = _logged_in(tr, w, CONN_A)
    itt = a.new_itt()
    run(tr, [a.scsi_cmd(itt), a.rst(T2I), a.closed("rst")])
    assert tr.sessions()[0].ended == "connection_dropped"
    tr.forget("s1")
    assert _ids(tr) == ["s1"] == _ids(tr, live_only=True)
    tr.tick(w.ts + 10 * S)
    tr.forget("s1")
    assert _ids(tr, live_only=True) == ["s1"]
    tr.tick(w.ts + 30 * S)
    assert _ids(tr, live_only=True) == [] and tr.sessions()[0].state_target == "FREE"
    tr.forget("s1")
    assert _ids(tr) == []


def test_reinstatement_of_a_session_still_known_is_detected_after_forgetting_others() -> None:
    w, tr = Wire(), SessionTracker()
    # s1: another initiator session (other ISID), logged out and forgotten
    a = _logged_in(tr, w, CONN_A, isid=OTHER_ISID)
    _logged_out(tr, a)
    tr.forget("s1")
    # s2: live; forgetting it is refused
    b = _logged_in(tr, w, CONN_B, tsih_assigned=0x13)
    tr.forget("s2")
    # s3: same InitiatorName/ISID/TargetName with TSIH 0: a session reinstatement of s2
    c = Flow(w, conn=CONN_C)
    out = run(tr, [c.opened(), *login(c, tsih_assigned=0x14)])
    (ri,) = of(out, Reinstatement)
    assert (ri.kind, ri.outcome, ri.session, ri.old_session) == ("session", "succeeded", "s3", "s2")
    # s2 ends once its connection closes; then it can go, and s3 carries on
    run(tr, [b.fin(T2I), b.fin(I2T), b.closed()])
    assert _ids(tr, live_only=True) == ["s3"]
    tr.forget("s2")
    assert _ids(tr) == ["s3"]
    assert tr._d.by_nexus and all(s.id == "s3" for s in tr._d.by_nexus.values())


def test_a_forgotten_session_is_not_reinstated_later() -> None:
    """As documented: a later leading login with a forgotten session's nexus is a new session
    (as it is for an ended session that was not forgotten: only live sessions are reinstated)."""
    for forget in (False, True):
        w, tr = Wire(), SessionTracker()
        a = _logged_in(tr, w, CONN_A)
        _logged_out(tr, a)
        if forget:
            tr.forget("s1")
        b = Flow(w, conn=CONN_B)
        out = run(tr, [b.opened(), *login(b, tsih_assigned=0x13)])
        assert of(out, Reinstatement) == []
        assert _ids(tr, live_only=True) == ["s2"]


def test_a_login_naming_a_forgotten_sessions_tsih_is_a_placeholder_session() -> None:
    w, tr = Wire(), SessionTracker()
    a = _logged_in(tr, w, CONN_A, tsih_assigned=0x21)
    _logged_out(tr, a)
    tr.forget("s1")
    b = Flow(w, conn=CONN_B)
    run(tr, [b.opened(), *login(b, tsih=0x21, tsih_assigned=0x21, cid=1)])
    (s,) = tr.sessions()
    assert (s.session, s.mid_stream, s.tsih) == ("s2", True, 0x21)


def test_live_only_is_an_index_of_open_sessions_and_connections() -> None:
    w, tr = Wire(), SessionTracker()
    flows = [_logged_in(tr, w, f"10.0.0.1:{41000 + i}->10.0.0.2:3260", isid=0x400001370000 + i,
                        tsih_assigned=0x100 + i) for i in range(5)]
    for f in flows[:3]:
        _logged_out(tr, f)
    assert _ids(tr, live_only=True) == ["s4", "s5"]
    assert [c.conn for c in tr.connections(live_only=True)] == [flows[3].conn, flows[4].conn]
    assert len(tr._d.open_sessions) == 2 and len(tr._d.open_conns) == 2  # pruned as they were found ended
    assert _ids(tr) == ["s1", "s2", "s3", "s4", "s5"]  # ended ones are kept until forgotten


def test_forget_connection_drops_a_connection_without_session() -> None:
    w, tr = Wire(), SessionTracker()
    probe = Flow(w, conn=CONN_D)
    run(tr, [probe.opened()])
    assert not tr.connection_ended(CONN_D)
    tr.forget_connection(CONN_D)
    assert [c.conn for c in tr.connections(live_only=True)] == [CONN_D]
    run(tr, [probe.fin(I2T), probe.fin(T2I), probe.closed()])
    assert tr.connections(live_only=True) == [] and tr.connection_ended(CONN_D)
    tr.forget_connection(CONN_D)
    assert tr.connections() == []
    # a connection of a session goes with its session only
    a = _logged_in(tr, w, CONN_A)
    _logged_out(tr, a)
    tr.forget_connection(CONN_A)
    assert [c.conn for c in tr.connections()] == [CONN_A]
