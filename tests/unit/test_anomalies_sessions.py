"""Login, logout, connection and session anomaly rules (hand-built record sequences)."""

from __future__ import annotations

from dataclasses import replace

from test_anomalies_support import (
    CONN,
    CONN2,
    CONN3,
    LEADING_KEYS_I,
    LEADING_KEYS_T,
    MS,
    Flow,
    S,
    Wire,
    direct,
    kinds,
    logged_in,
    login,
    one,
    only,
    pipe,
)

from analyzer.records import I2T, T2I
from analyzer.state.events import CleanupDeadline, CleanupEnded, Reinstatement, SequenceEvent, Transition

ISID2 = 0x400001370001


# ---------------------------------------------------------------------------------------------- login


def test_login_failed_names_status_and_code() -> None:
    w = Wire()
    f = Flow(w)
    out = pipe([f.opened(), f.login_req(LEADING_KEYS_I), f.login_rsp(status_class=2, status_detail=3),
                f.fin(T2I), f.fin(I2T)])
    a = one(out, "login_failed")
    assert a.severity == "error"
    assert "Not found (0x0203)" in a.message and "iqn.2016-04.com.example:target" in a.message
    assert a.frame == 2 and set(a.frames) == {2, 3}
    assert "connection_dropped" not in kinds(out)


def test_login_failed_class3_is_error() -> None:
    f = Flow(Wire())
    out = direct([f.opened(), f.login_req(LEADING_KEYS_I), f.login_rsp(status_class=3, status_detail=1)])
    a = one(out, "login_failed")
    assert a.severity == "error" and "Service unavailable (0x0301)" in a.message


def test_login_redirect_is_not_a_failure() -> None:
    f = Flow(Wire())
    out = pipe([f.opened(), f.login_req(LEADING_KEYS_I),
                f.login_rsp((("TargetAddress", "10.0.0.7:3260,1"),), status_class=1, status_detail=1)])
    a = one(out, "login_redirected")
    assert a.severity == "info" and "10.0.0.7:3260,1" in a.message and "Target moved temporarily" in a.message
    assert "login_failed" not in kinds(out)


def test_login_cut_short_by_close() -> None:
    w = Wire()
    f = Flow(w)
    out = pipe([f.opened(), f.login_req(LEADING_KEYS_I, transit=False, csg=0, nsg=1), f.rst(T2I)])
    a = one(out, "login_failed")
    assert a.severity == "warning" and "did not complete" in a.message and "target reset" in a.message


def test_no_authentication_once_per_normal_session() -> None:
    w = Wire()
    f, recs = logged_in(w)
    out = pipe(recs + [f.scsi_cmd(), f.data_in(0x11, status=0)])
    a = one(out, "no_authentication")
    assert a.severity == "info" and "skipped the security" in a.message and a.session == "s1"


def test_no_authentication_silent_with_chap_and_for_discovery() -> None:
    f = Flow(Wire())
    chap = [f.opened(),
            f.login_req(LEADING_KEYS_I + (("AuthMethod", "CHAP,None"),), transit=True, csg=0, nsg=1),
            f.login_rsp((("AuthMethod", "CHAP"), ("CHAP_A", "5"), ("CHAP_I", "1"), ("CHAP_C", "0xab")),
                        transit=False, csg=0, nsg=0),
            f.login_req((("CHAP_N", "u"), ("CHAP_R", "0x01")), transit=True, csg=0, nsg=1),
            f.login_rsp((), transit=True, csg=0, nsg=1),
            f.login_req(LEADING_KEYS_I[3:], csg=1, nsg=3),
            f.login_rsp(LEADING_KEYS_T, tsih=0x12)]
    assert "no_authentication" not in kinds(pipe(chap))
    g = Flow(Wire())
    disc = [g.opened(), g.login_req((("InitiatorName", "iqn.x"), ("SessionType", "Discovery"))),
            g.login_rsp((), tsih=3)]
    assert "no_authentication" not in kinds(pipe(disc))


# ---------------------------------------------------------------------------------------------- logout


def test_logout_failed_named() -> None:
    w = Wire()
    f, recs = logged_in(w)
    req = f.logout_req(reason=1, cid=5)
    out = pipe(recs + [req, f.logout_rsp(req.itt, response=1)])
    a = one(out, "logout_failed")
    assert a.severity == "warning" and "CID not found" in a.message and "close the connection (CID 5)" in a.message
    req2 = f.logout_req(reason=1, cid=0)
    out = pipe(recs + [req2, f.logout_rsp(req2.itt, response=3, time2wait=2, time2retain=10)])
    a = one(out, "logout_failed")
    assert a.severity == "error" and "cleanup failed for various reasons" in a.message and "Time2Retain 10 s" in a.message


def test_clean_logout_has_no_findings_but_info() -> None:
    w = Wire()
    f, recs = logged_in(w)
    c = f.scsi_cmd()
    req = f.logout_req(reason=0)
    out = pipe(recs + [c, f.data_in(c.itt, status=0), req, f.logout_rsp(req.itt), f.fin(T2I), f.fin(I2T),
                       f.closed("fin")], end_ts=w.ts + 60 * S)
    assert {a.severity for a in out} <= {"info"}
    assert set(kinds(out)) == {"no_authentication"}


def test_logout_unanswered_at_close_and_capture_end() -> None:
    w = Wire()
    f, recs = logged_in(w)
    req = f.logout_req(reason=0)
    out = pipe(recs + [req, f.fin(I2T)])
    a = one(out, "logout_unanswered")
    assert a.severity == "warning" and "before the connection closed" in a.message and a.frame == req.frame
    # still open at capture end: reported after 2 s, not after 0.5 s
    w = Wire()
    f, recs = logged_in(w)
    req = f.logout_req(reason=1)
    assert "logout_unanswered" in kinds(pipe(recs + [req], end_ts=req.ts_ns + 3 * S))
    assert "logout_unanswered" not in kinds(pipe(recs + [req], end_ts=req.ts_ns + S // 2))


def test_request_after_logout() -> None:
    w = Wire()
    f, recs = logged_in(w)
    out = pipe(recs + [f.logout_req(reason=0, immediate=False), f.scsi_cmd()], finish=False)
    a = one(out, "request_after_logout")
    assert a.severity == "warning" and "SCSI Command" in a.message
    ev = SequenceEvent(9, 1, "s1", CONN, "request_after_logout", None, None,
                       "SCSI Command after a Logout Request (§11.14)", 0x20)
    assert one(direct([ev]), "request_after_logout").message.startswith("Request after Logout")


# ---------------------------------------------------------------------------------------------- drops


def test_initiator_fin_idle_is_info() -> None:
    w = Wire()
    f, recs = logged_in(w)
    out = pipe(recs + [f.fin(I2T), f.fin(T2I), f.closed("fin")], end_ts=w.ts + S)
    a = one(out, "connection_dropped")
    assert a.severity == "info" and "initiator closed" in a.message and "no task was in flight" in a.message
    assert one(out, "session_failed").severity == "info"
    assert {x.severity for x in out} == {"info"}


def test_target_rst_with_io_in_flight_is_error() -> None:
    w = Wire()
    f, recs = logged_in(w)
    c1, c2 = f.scsi_cmd(), f.scsi_cmd(opcode=0x2A, read=False, write=True)
    rst = f.rst(T2I)
    out = pipe(recs + [c1, c2, rst])
    a = one(out, "connection_dropped")
    assert a.severity == "error"
    assert "target reset" in a.message and "RST" in a.message and "2 tasks" in a.message
    assert "READ(10)" in a.message and "WRITE(10)" in a.message
    assert a.frame == rst.frame and c1.frame in a.frames and c2.frame in a.frames
    assert one(out, "session_failed").severity == "warning"
    u = one(out, "task_unanswered")
    assert "before the connection dropped" in u.message and set(u.frames) == {c1.frame, c2.frame}


def test_initiator_rst_is_warning() -> None:
    w = Wire()
    f, recs = logged_in(w)
    assert one(pipe(recs + [f.rst(I2T)]), "connection_dropped").severity == "warning"


def test_drop_announced_by_async() -> None:
    w = Wire()
    f, recs = logged_in(w)
    asy = f.async_msg(2, p1=0, p2=1, p3=5)
    out = pipe(recs + [asy, f.fin(T2I)])
    a = one(out, "connection_dropped")
    assert a.severity == "warning" and "Target will drop the connection" in a.message
    assert asy.frame in a.frames
    e = one(out, "async_event")
    assert e.severity == "warning" and "CID 0" in e.message and "Time2Retain 5 s" in e.message


def test_drop_reported_whatever_the_order_within_a_frame() -> None:
    """The TcpFin may reach the engine before the transitions it caused (deferred check)."""
    fin_frame, ts = 50, 10 * S
    recs = [
        Transition(10, S, "s1", CONN, "connection", "target", "IN_LOGIN", "LOGGED_IN", "T5", "login", False),
        Transition(10, S, "s1", CONN, "connection", "initiator", "IN_LOGIN", "LOGGED_IN", "T5", "login", False),
    ]
    from analyzer.records import TcpFin
    recs += [TcpFin(fin_frame, ts, CONN, T2I),
             Transition(fin_frame, ts, "s1", CONN, "connection", "target", "LOGGED_IN", "CLEANUP_WAIT", "T15",
                        "FIN from the target", False)]
    a = one(direct(recs), "connection_dropped")
    assert a.severity == "warning" and "target closed" in a.message


# ---------------------------------------------------------------------------------------------- cleanup


def test_cleanup_timed_out_with_tasks_is_warning() -> None:
    w = Wire()
    f, recs = logged_in(w)
    c = f.scsi_cmd()
    fin = f.fin(I2T)
    out = pipe(recs + [c, fin], end_ts=fin.ts_ns + 30 * S)
    a = one(out, "cleanup_wait_stuck")
    assert a.severity == "warning" and "timed out" in a.message and "1 task open" in a.message
    assert "Time2Wait 2 s + Time2Retain 20 s, negotiated" in a.message and a.frame == fin.frame


def test_cleanup_timed_out_idle_is_info() -> None:
    w = Wire()
    f, recs = logged_in(w)
    out = pipe(recs + [f.fin(I2T)], end_ts=w.ts + 30 * S)
    a = one(out, "cleanup_wait_stuck")
    assert a.severity == "info" and "22.0 s" in a.message


def test_cleanup_capture_ended_before_deadline_is_info() -> None:
    w = Wire()
    f, recs = logged_in(w)
    c = f.scsi_cmd()
    out = pipe(recs + [c, f.rst(T2I)], end_ts=w.ts + 3 * S)
    a = one(out, "cleanup_wait_stuck")
    assert a.severity == "info" and "capture ended" in a.message and "too short" in a.message


def test_cleanup_in_progress_past_deadline_is_warning() -> None:
    recs = [CleanupDeadline(5, S, "s1", CONN, 0, "target", 2, 3, "negotiated", 6 * S, 1, "FIN from the initiator"),
            Transition(6, 2 * S, "s1", CONN, "cleanup", "target", "CLEANUP_WAIT", "IN_CLEANUP", "M2",
                       "CSM-I: reinstatement Login received", False)]
    from analyzer.records import TcpGap
    late = TcpGap(7, 8 * S, CONN2, I2T, 0, 1)
    out = direct(recs + [late], finish=False)
    a = one(out, "cleanup_wait_stuck")
    assert a.severity == "warning" and "did not finish" in a.message


def test_cleanup_resolved_by_reinstatement_is_silent() -> None:
    w = Wire()
    f, recs = logged_in(w, tsih_assigned=0x12)
    recs.append(f.fin(I2T))
    g = Flow(w, conn=CONN2)
    recs += [g.opened(), *login(g, tsih=0x12, tsih_assigned=0x12, cid=0)]
    out = pipe(recs, end_ts=w.ts + 60 * S)
    assert "cleanup_wait_stuck" not in kinds(out)
    a = one(out, "connection_reinstated")
    assert a.severity == "info" and "already failed" in a.message and a.conn == CONN2


def test_cleanup_ended_direct() -> None:
    recs = [CleanupDeadline(5, S, "s1", CONN, 0, "target", 2, 20, "async_event", 23 * S, 0, "Async event 2"),
            CleanupEnded(9, 23 * S, "s1", CONN, 0, "target", "M1", "timed_out", True, 22 * S)]
    a = one(direct(recs), "cleanup_wait_stuck")
    assert a.severity == "info" and "from the Async Message" in a.message
    recs[1] = CleanupEnded(9, 3 * S, "s1", CONN, 0, "target", "M4", "logged_out", False, 2 * S)
    assert "cleanup_wait_stuck" not in kinds(direct(recs))


# ---------------------------------------------------------------------------------------------- reinstatement


def test_session_reinstatement_after_failure_is_info() -> None:
    w = Wire()
    f, recs = logged_in(w)
    recs.append(f.fin(I2T))
    g = Flow(w, conn=CONN2)
    recs += [g.opened(), *login(g)]
    out = pipe(recs)
    a = one(out, "session_reinstated")
    assert a.severity == "info" and "already failed" in a.message and "s1" in a.message
    assert "duplicate_session" not in kinds(out)


def test_session_reinstatement_of_live_session_from_other_host_is_duplicate() -> None:
    w = Wire()
    _f, recs = logged_in(w)
    g = Flow(w, conn=CONN3)
    recs += [g.opened(), *login(g)]
    out = pipe(recs)
    a = one(out, "session_reinstated")
    assert a.severity == "warning" and "LOGGED_IN" in a.message
    d = one(out, "duplicate_session")
    assert d.severity == "warning" and "10.0.0.9" in d.message and "10.0.0.1" in d.message


def test_reinstatement_fight_same_host() -> None:
    w = Wire()
    _f, recs = logged_in(w)
    g = Flow(w, conn=CONN2)
    recs += [g.opened(), *login(g)]
    h = Flow(w, conn="10.0.0.1:40003->10.0.0.2:3260")
    recs += [h.opened(), *login(h)]
    out = pipe(recs)
    assert len(only(out, "session_reinstated")) == 2
    d = one(out, "duplicate_session")
    assert d.severity == "warning" and "fight" in d.message


def test_reinstatement_outcomes_direct() -> None:
    def r(kind: str, outcome: str) -> Reinstatement:
        return Reinstatement(20, 2 * S, kind, outcome, "s2", "s1", CONN2, CONN if kind == "connection" else None,
                             "400001370000", 0x12 if kind == "connection" else 0, 0, 18, S)
    assert one(direct([r("session", "failed")]), "session_reinstated").severity == "error"
    assert one(direct([r("session", "incomplete")]), "session_reinstated").severity == "info"
    assert one(direct([r("connection", "failed")]), "connection_reinstated").severity == "error"
    assert one(direct([r("connection", "incomplete")]), "connection_reinstated").severity == "info"
    live = [Transition(5, S, "s1", CONN, "connection", "target", "IN_LOGIN", "LOGGED_IN", "T5", "x", False),
            Transition(20, 2 * S, "s1", CONN, "connection", "target", "LOGGED_IN", "FREE", "T8", "x", False),
            r("connection", "succeeded")]
    a = one(direct(live), "connection_reinstated")
    assert a.severity == "warning" and "failed silently" in a.message


def test_parallel_sessions_are_info_with_paths() -> None:
    w = Wire()
    _f, recs = logged_in(w)
    g = Flow(w, conn="10.0.1.1:40001->10.0.1.2:3260")
    recs += [g.opened(), *login(g, isid=ISID2, tsih_assigned=0x13)]
    out = pipe(recs)
    d = one(out, "duplicate_session")
    assert d.severity == "info" and "2 concurrent sessions" in d.message
    assert "10.0.0.1 -> 10.0.0.2:3260" in d.message and "10.0.1.1 -> 10.0.1.2:3260" in d.message
    assert "session_reinstated" not in kinds(out)


def test_sequential_sessions_are_not_parallel() -> None:
    w = Wire()
    f, recs = logged_in(w)
    req = f.logout_req(reason=0)
    recs += [req, f.logout_rsp(req.itt), f.fin(T2I), f.fin(I2T), f.closed()]
    g = Flow(w, conn=CONN2)
    recs += [g.opened(), *login(g, isid=ISID2, tsih_assigned=0x13)]
    assert "duplicate_session" not in kinds(pipe(recs))


# ---------------------------------------------------------------------------------------------- async


def test_async_events_named() -> None:
    from analyzer.records import Sense
    w = Wire()
    f, recs = logged_in(w)
    ua = f.async_msg(0)
    from dataclasses import replace
    ua = replace(ua, lun=1, sense=Sense(0x70, 6, 0x3F, 0x0E, "UNIT ATTENTION", "Reported luns data has changed", None))
    out = pipe(recs + [ua, f.async_msg(1, p3=7), f.async_msg(4, p3=9), f.async_msg(255)], finish=False)
    evs = only(out, "async_event")
    assert [a.severity for a in evs] == ["info", "warning", "info", "info"]
    assert "LUN 1" in evs[0].message and "Reported luns data has changed" in evs[0].message
    assert "logout within 7 s" in evs[1].message
    assert "renegotiation" in evs[2].message
    assert "Vendor-specific" in evs[3].message


def test_tick_does_not_need_records() -> None:
    from analyzer.anomalies import AnomalyEngine
    e = AnomalyEngine()
    assert e.tick(5 * S) == []
    assert e.finish(6 * S) == [] and e.finish(7 * S) == []


_ = (MS,)


def test_commands_sent_after_target_close_are_explained() -> None:
    w = Wire()
    f, recs = logged_in(w)
    fin = f.fin(T2I)
    late = f.scsi_cmd()
    out = pipe(recs + [fin, late, f.fin(I2T)])
    u = one(out, "task_unanswered")
    assert f"sent after the target had closed the connection (FIN, frame {fin.frame})" in u.message
    assert one(out, "connection_dropped").severity == "warning"


def test_session_failed_direct_without_a_visible_drop() -> None:
    t = Transition(40, 4 * S, "s1", None, "session", "target", "LOGGED_IN", "FAILED", "N5",
                   "last full-feature connection left LOGGED_IN (Async event 3)", False)
    a = one(direct([t]), "session_failed")
    assert a.severity == "warning" and "Async event 3" in a.message and a.session == "s1"
    assert "session_failed" not in kinds(direct([replace(t, inferred=True)]))
    assert "session_failed" not in kinds(direct([replace(t, side="initiator")]))



def test_session_identity_comes_from_session_identified() -> None:
    from analyzer.state.events import SessionIdentified
    si = SessionIdentified(5, S, "s1", CONN, "Normal", "400001370000", 0x12, 1, "iqn.a:init", "iqn.b:tgt", None,
                           None, False)
    t = Transition(40, 4 * S, "s1", None, "session", "target", "LOGGED_IN", "FAILED", "N5", "x", False)
    a = one(direct([si, t]), "session_failed")
    assert "(iqn.a:init -> iqn.b:tgt)" in a.message


def test_failed_continuation_is_not_a_second_session_failure() -> None:
    t = Transition(40, 4 * S, "s1", None, "session", "target", "IN_CONTINUE", "FAILED", "N8", "login failed", False)
    assert "session_failed" not in kinds(direct([t]))


def test_reinstatement_uses_the_old_state_it_carries() -> None:
    r = Reinstatement(20, 2 * S, "session", "succeeded", "s2", "s1", CONN2, None, "400001370000", 0, 0, 18, S,
                      "LOGGED_IN", "LOGGED_IN")
    a = one(direct([r]), "session_reinstated")
    assert a.severity == "warning" and "LOGGED_IN" in a.message
    a = one(direct([replace(r, old_state_target="FAILED", old_state_initiator="FAILED")]), "session_reinstated")
    assert a.severity == "info" and "already failed" in a.message
