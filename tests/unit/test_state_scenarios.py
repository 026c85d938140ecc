"""Scenario tests: hand-built record sequences through SessionTracker."""

from __future__ import annotations

from state_helpers import (
    INAME,
    ISID,
    LEADING_KEYS_I,
    LEADING_KEYS_T,
    MS,
    TNAME,
    CleanupDeadline,
    CleanupEnded,
    ConnectionParams,
    Flow,
    Reinstatement,
    S,
    SequenceEvent,
    TaskRecord,
    Transition,
    Wire,
    labels,
    login,
    of,
    run,
    seq_kinds,
    transitions,
    violations,
)

from analyzer.records import I2T, T2I
from analyzer.state.events import (
    ConnectionSummary,
    Deviation,
    SessionIdentified,
    SessionSummary,
    TrackerError,
)
from analyzer.state.tracker import SessionTracker

CONN_A = "10.0.0.1:40000->10.0.0.2:3260"
CONN_B = "10.0.0.1:40001->10.0.0.2:3260"


def _logged_in(tr: SessionTracker, w: Wire, conn: str = CONN_A, **kw: object) -> tuple[Flow, list]:  # type: ignore[type-arg]
    f = Flow(w, conn=conn)
    return f, run(tr, [f.opened(), *login(f, **kw)])  # type: ignore[arg-type]


def _summary(out: list, cls: type, key: str, value: str):  # type: ignore[no-untyped-def,type-arg]
    return next(r for r in out if isinstance(r, cls) and getattr(r, key) == value)


# ---------------------------------------------------------------------------- clean path


def test_clean_login_io_logout() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    rd, wr = f.new_itt(), f.new_itt()
    out += run(tr, [f.scsi_cmd(rd, edtl=8192), f.data_in(rd, datasn=0, dsl=4096),
                    f.data_in(rd, datasn=1, dsl=4096, offset=4096, status=0)])
    out += run(tr, [f.scsi_cmd(wr, opcode=0x2A, read=False, write=True, edtl=8192, dsl=4096),
                    f.r2t(wr, ttt=0x200, r2tsn=0, offset=4096, length=4096),
                    f.data_out(wr, ttt=0x200, datasn=0, dsl=4096, offset=4096),
                    f.scsi_rsp(wr, expdatasn=0)])
    lo = f.logout_req(reason=0)
    out += run(tr, [lo, f.logout_rsp(lo.itt), f.fin(T2I), f.fin(I2T), f.closed("fin")])
    out += tr.finish(w.ts + S)

    assert violations(out) == [] and seq_kinds(out) == [] and of(out, TrackerError) == []
    assert labels(out, "connection", "initiator") == ["T1", "T4", "T5", "T9", "T13"]
    assert labels(out, "connection", "target") == ["T3", "T4", "T5", "T9", "T13"]
    assert labels(out, "session", "initiator") == ["N1", "N2"]
    assert labels(out, "session", "target") == ["N1", "N2", "N3"]
    t5 = [t for t in transitions(out) if t.label == "T5"]
    assert [t.event.split(" (")[0] for t in t5] == ["final Login Response, Status-Class 0, received",
                                                     "final Login Response, Status-Class 0, sent"]
    assert of(out, ConnectionParams) == [ConnectionParams(3, t5[0].ts_ns, CONN_A, True, False, 262144, 65536)]

    tasks = {t.kind + (t.cdb_name or ""): t for t in of(out, TaskRecord)}
    read, write = tasks["scsiREAD(10)"], tasks["scsiWRITE(10)"]
    assert (read.outcome, read.bytes_in, read.data_in_pdus, read.status, read.lba) == ("completed", 8192, 2, 0, 0)
    assert read.latency_ns == 2 * MS and read.first_frame == 4 and read.last_frame == 6
    assert (write.outcome, write.bytes_out, write.immediate_bytes, write.r2t_count, write.data_out_pdus) == (
        "completed", 8192, 4096, 1, 1)
    assert tasks["login"].outcome == "completed" and tasks["logout"].response == 0

    sess = _summary(out, SessionSummary, "session", "s1")
    assert (sess.session_type, sess.isid, sess.tpgt, sess.tsih, sess.ssid) == (
        "Normal", f"{ISID:012x}", 1, 0x12, f"{ISID:012x},1")
    assert (sess.initiator_name, sess.target_name, sess.ended) == (INAME, TNAME, "logout")
    assert (sess.state_initiator, sess.state_target) == ("FREE", "FREE")
    assert sess.params["MaxBurstLength"] == "131072" and sess.params["chap_used"] == "No"
    assert sess.portals == ("10.0.0.2:3260",) and sess.cids == (0,) and not sess.mid_stream
    conn = _summary(out, ConnectionSummary, "conn", CONN_A)
    assert (conn.ended, conn.role, conn.tcp_end, conn.header_digest, conn.cleanup_target) == (
        "logout", "leading", "fin", True, None)


def test_login_failure_is_t7_with_status() -> None:
    w, tr = Wire(), SessionTracker()
    f = Flow(w)
    out = run(tr, [f.opened(), f.login_req(LEADING_KEYS_I),
                   f.login_rsp(status_class=2, status_detail=1, transit=False, nsg=0), f.fin(T2I), f.fin(I2T)])
    out += tr.finish(w.ts)
    assert violations(out) == []
    t7 = [t for t in transitions(out, "connection") if t.label == "T7"]
    assert [(t.side, t.from_state, t.to_state) for t in t7] == [("initiator", "IN_LOGIN", "FREE"),
                                                                ("target", "IN_LOGIN", "FREE")]
    assert "Status-Class 2 (Authentication failure)" in t7[0].event
    assert labels(out, "session", "target") == ["N1", "N9"] and labels(out, "session", "initiator") == []
    (task,) = of(out, TaskRecord)
    assert (task.kind, task.outcome, task.login_status_class, task.login_status_detail, task.response_name) == (
        "login", "failed", 2, 1, "Authentication failure")
    assert of(out, ConnectionParams) == []
    assert _summary(out, SessionSummary, "session", "s1").ended == "login_failed"
    c = _summary(out, ConnectionSummary, "conn", CONN_A)
    assert (c.ended, c.login_status_class, c.login_status_detail) == ("login_failed", 2, 1)


# ---------------------------------------------------------------------------- failures and cleanup


def test_killed_initiator_target_cleanup_wait_then_m1_at_finish() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    itt = f.new_itt()
    out += run(tr, [f.scsi_cmd(itt)])
    rst = f.rst(I2T)
    out += run(tr, [rst])
    assert [(t.side, t.label, t.to_state) for t in transitions(out, "connection") if t.frame == rst.frame] == [
        ("initiator", "T15", "CLEANUP_WAIT"), ("target", "T15", "CLEANUP_WAIT")]
    dl = [d for d in of(out, CleanupDeadline) if d.side == "target"]
    assert len(dl) == 1 and (dl[0].time2wait, dl[0].time2retain, dl[0].source, dl[0].open_tasks) == (
        2, 20, "negotiated", 1)
    assert dl[0].deadline_ts_ns == rst.ts_ns + 22 * S
    (task,) = [t for t in of(out, TaskRecord) if t.kind == "scsi"]
    assert task.outcome == "open_at_conn_drop"
    assert labels(out, "session", "target")[-1] == "N5"  # Q3 -> Q4 FAILED

    # nothing fires before the deadline ...
    early = tr.tick(rst.ts_ns + 21 * S)
    assert labels(early, "cleanup") == []
    # ... and M1 fires (inferred) at finish once Time2Wait + Time2Retain elapsed
    late = tr.finish(rst.ts_ns + 30 * S)
    m1 = transitions(late, "cleanup", "target")
    assert [(t.label, t.from_state, t.to_state, t.inferred, t.ts_ns) for t in m1] == [
        ("M1", "CLEANUP_WAIT", "FREE", True, rst.ts_ns + 22 * S)]
    assert [(e.side, e.outcome) for e in of(late, CleanupEnded)] == [("initiator", "timed_out"),
                                                                     ("target", "timed_out")]
    assert labels(late, "session", "target") == ["N6"] and labels(late, "session", "initiator") == ["N5"]
    assert _summary(late, ConnectionSummary, "conn", CONN_A).cleanup_target == "FREE"
    assert _summary(late, SessionSummary, "session", "s1").ended == "connection_dropped"


def test_capture_ending_inside_cleanup_wait_leaves_it_there() -> None:
    w, tr = Wire(), SessionTracker()
    f, _out = _logged_in(tr, w)
    rst = f.rst(T2I)
    run(tr, [rst])
    end = tr.finish(rst.ts_ns + 5 * S)
    assert labels(end, "cleanup") == []
    c = _summary(end, ConnectionSummary, "conn", CONN_A)
    assert (c.state_target, c.cleanup_target, c.cleanup_initiator) == ("CLEANUP_WAIT", "CLEANUP_WAIT",
                                                                       "CLEANUP_WAIT")


def test_negotiated_time2wait_time2retain_set_the_deadline() -> None:
    w, tr = Wire(), SessionTracker()
    keys_i = tuple(kv for kv in LEADING_KEYS_I if not kv[0].startswith("Default")) + (
        ("DefaultTime2Wait", "1"), ("DefaultTime2Retain", "10"))
    keys_t = tuple(kv for kv in LEADING_KEYS_T if not kv[0].startswith("Default")) + (
        ("DefaultTime2Wait", "3"), ("DefaultTime2Retain", "5"))
    f, out = _logged_in(tr, w, keys_i=keys_i, keys_t=keys_t)
    fin = f.fin(T2I)
    out += run(tr, [fin])
    d = of(out, CleanupDeadline)[0]
    assert (d.time2wait, d.time2retain, d.deadline_ts_ns) == (3, 5, fin.ts_ns + 8 * S)
    assert len(transitions(tr.tick(fin.ts_ns + 8 * S), "cleanup")) == 2


def test_target_drop_then_connection_reinstatement() -> None:
    w, tr = Wire(), SessionTracker()
    a, out = _logged_in(tr, w)
    out += run(tr, [a.rst(T2I)])
    b = Flow(w, nums=a.nums, conn=CONN_B)
    req = b.login_req((("InitiatorName", INAME), ("TargetName", TNAME)), tsih=0x12, cid=0)
    out2 = run(tr, [b.opened(), req])
    assert [(t.side, t.label) for t in transitions(out2, "cleanup", conn=CONN_A)] == [
        ("initiator", "M2"), ("target", "M2")]
    assert labels(out2, "session", "target") == ["N7"]  # FAILED -> IN_CONTINUE
    rsp = b.login_rsp(tsih=0x12)
    out3 = run(tr, [rsp]) + tr.finish(w.ts + 60 * S)
    assert violations(out + out2 + out3) == []
    assert [(t.side, t.label, t.to_state) for t in transitions(out3, "cleanup", conn=CONN_A)] == [
        ("initiator", "M4", "FREE"), ("target", "M4", "FREE")]
    assert labels(out3, "session", "target") == ["N10"] and labels(out3, "session", "initiator") == ["N4"]
    assert [e.outcome for e in of(out3, CleanupEnded)] == ["reinstated", "reinstated"]
    (ri,) = of(out3, Reinstatement)
    assert (ri.kind, ri.outcome, ri.session, ri.old_session, ri.conn, ri.old_conn, ri.tsih, ri.cid) == (
        "connection", "succeeded", "s1", "s1", CONN_B, CONN_A, 0x12, 0)
    old = _summary(out3, ConnectionSummary, "conn", CONN_A)
    new = _summary(out3, ConnectionSummary, "conn", CONN_B)
    assert (old.ended, old.reinstated_by, new.role, new.reinstates) == ("reinstated", CONN_B, "reinstatement", CONN_A)
    assert _summary(out3, SessionSummary, "session", "s1").connections == (CONN_A, CONN_B)


def test_reinstatement_login_while_target_still_thinks_logged_in() -> None:
    """Killed initiator, no FIN seen before the reinstatement: the old connection's close is
    pending until its own wire confirms it (here the target's FIN): target T8 (successful
    reinstatement), initiator T15 then CSM-I M2/M4 and R3 = S1. (Until 2026-11 this happened at
    the final Login Response; a connection the target keeps using must not be FREE.)"""
    w, tr = Wire(), SessionTracker()
    a, out = _logged_in(tr, w)
    b = Flow(w, nums=a.nums, conn=CONN_B)
    rsp = b.login_rsp(tsih=0x12)
    out += run(tr, [b.opened(), b.login_req((("InitiatorName", INAME),), tsih=0x12, cid=0), rsp])
    assert transitions(out, "connection", conn=CONN_A)[-1].to_state == "LOGGED_IN"
    fin = a.fin(T2I)
    out += run(tr, [fin])
    old = transitions(out, "connection", conn=CONN_A)
    assert [(t.side, t.label, t.inferred) for t in old if t.label in ("T15", "T8")] == [
        ("target", "T8", False), ("initiator", "T15", False)]
    assert all(t.frame == fin.frame for t in old if t.label in ("T15", "T8"))
    assert [t.label for t in transitions(out, "cleanup", "initiator", CONN_A)] == ["M2", "M4"]
    assert tr.connections()[0].state_initiator == "FREE" and tr.connections()[0].ended == "reinstated"
    assert violations(out) == []


def test_reinstated_connection_kept_by_the_target_is_a_deviation() -> None:
    """The target answers on the old connection after a successful connection reinstatement: it
    stays LOGGED_IN, its task completes, and a duplicate_cid_in_session Deviation says why."""
    w, tr = Wire(), SessionTracker()
    a, out = _logged_in(tr, w)
    b = Flow(w, nums=a.nums, conn=CONN_B)
    out += run(tr, [b.opened(), b.login_req((("InitiatorName", INAME),), tsih=0x12, cid=0), b.login_rsp(tsih=0x12)])
    itt = a.new_itt()
    out += run(tr, [a.scsi_cmd(itt), a.data_in(itt, status=0)])
    (dev,) = of(out, Deviation)
    assert (dev.kind, dev.conn, dev.cid, dev.side) == ("duplicate_cid_in_session", CONN_A, 0, "target")
    (task,) = [t for t in of(out, TaskRecord) if t.itt == itt]
    assert task.outcome == "completed"
    assert seq_kinds(out) == ["request_after_logout"]  # the initiator used a replaced connection
    end = tr.finish(w.ts)
    assert _summary(end, ConnectionSummary, "conn", CONN_A).state_target == "LOGGED_IN"
    assert violations(out + end) == []


def test_session_reinstatement_with_tsih_zero_and_same_isid() -> None:
    w, tr = Wire(), SessionTracker()
    a, out = _logged_in(tr, w)
    itt = a.new_itt()
    out += run(tr, [a.scsi_cmd(itt)])
    b = Flow(w, conn=CONN_B)
    out2 = run(tr, [b.opened(), *login(b, tsih=0, tsih_assigned=0x13)])
    (ri,) = of(out2, Reinstatement)
    assert (ri.kind, ri.outcome, ri.session, ri.old_session, ri.conn) == ("session", "succeeded", "s2", "s1", CONN_B)
    assert (ri.old_state_initiator, ri.old_state_target) == ("LOGGED_IN", "LOGGED_IN")
    # A's connection still looks alive: its close waits for its own wire (here its FIN; until
    # 2026-11 it was applied at the final Login Response)
    assert transitions(out2, "connection", conn=CONN_A) == []
    out2 += run(tr, [a.fin(T2I)])
    old_sess = transitions(out2, "session")
    assert [(t.session, t.side, t.label) for t in old_sess if t.session == "s1"] == [
        ("s1", "initiator", "N3"), ("s1", "target", "N3"), ("s1", "initiator", "N5")]
    assert [(t.side, t.label) for t in transitions(out2, "connection", conn=CONN_A)] == [
        ("target", "T8"), ("initiator", "T15"), ("initiator", "M1")]  # M1: R3 is S1 (§8.2)
    (task,) = [t for t in of(out2, TaskRecord) if t.kind == "scsi"]
    assert task.outcome == "terminated_by_logout" and task.session == "s1"
    assert task.unanswered_cause == "reinstatement"
    end = tr.finish(w.ts)
    s1, s2 = (_summary(end, SessionSummary, "session", sid) for sid in ("s1", "s2"))
    assert (s1.ended, s1.reinstated_by, s1.state_target, s1.state_initiator) == ("reinstated", "s2", "FREE", "FREE")
    assert (s2.reinstated_from, s2.state_target, s2.ended) == ("s1", "LOGGED_IN", "capture_end")
    assert violations(out + out2) == []


def test_session_reinstatement_of_a_failed_session() -> None:
    w, tr = Wire(), SessionTracker()
    a, out = _logged_in(tr, w)
    out += run(tr, [a.rst(I2T)])
    b = Flow(w, conn=CONN_B)
    out2 = run(tr, [b.opened(), *login(b, tsih_assigned=0x14)])
    assert [(t.side, t.label) for t in transitions(out2, "session") if t.session == "s1"] == [
        ("initiator", "N5"), ("target", "N6")]
    assert [(t.side, t.label) for t in transitions(out2, "cleanup", conn=CONN_A)] == [
        ("initiator", "M1"), ("target", "M1")]
    assert [e.outcome for e in of(out2, CleanupEnded)] == ["session_reinstated"] * 2


def test_new_session_with_reused_isid_after_clean_logout_is_not_a_reinstatement() -> None:
    w, tr = Wire(), SessionTracker()
    a, out = _logged_in(tr, w)
    lo = a.logout_req(reason=0)
    out += run(tr, [lo, a.logout_rsp(lo.itt), a.fin(T2I)])
    b = Flow(w, conn=CONN_B)
    out += run(tr, [b.opened(), *login(b, tsih_assigned=0x15)])
    assert of(out, Reinstatement) == [] and violations(out) == []


def test_failed_logout_is_t17_into_cleanup_wait() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    lo = f.logout_req(reason=1, cid=0)
    rsp = f.logout_rsp(lo.itt, response=3, time2wait=5, time2retain=10)
    out += run(tr, [lo, rsp])
    assert [(t.side, t.label, t.from_state, t.to_state) for t in transitions(out, "connection") if t.frame == rsp.frame
            ] == [("initiator", "T17", "IN_LOGOUT", "CLEANUP_WAIT"), ("target", "T17", "IN_LOGOUT", "CLEANUP_WAIT")]
    d = of(out, CleanupDeadline)
    assert [(x.time2wait, x.time2retain, x.source, x.deadline_ts_ns) for x in d] == [
        (5, 10, "logout_response", rsp.ts_ns + 15 * S)] * 2
    (task,) = [t for t in of(out, TaskRecord) if t.kind == "logout"]
    assert (task.outcome, task.response, task.logout_reason) == ("failed", 3, 1)
    assert violations(out) == []


def test_unanswered_logout_is_open_at_conn_drop() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    lo = f.logout_req(reason=1, cid=0)
    out += run(tr, [lo, f.fin(T2I)])
    assert [t.label for t in transitions(out, "connection", "target")][-1] == "T17"
    (task,) = [t for t in of(out, TaskRecord) if t.kind == "logout"]
    assert task.outcome == "open_at_conn_drop"


def test_async_event_2_drop_uses_p2_p3() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    am = f.async_msg(2, p1=0, p2=3, p3=7)
    out += run(tr, [am, f.fin(T2I)])
    assert [(t.side, t.label) for t in transitions(out, "connection") if t.frame == am.frame] == [
        ("initiator", "T15"), ("target", "T15")]
    assert "AsyncEvent=2" in transitions(out, "connection", "initiator")[-1].event
    d = of(out, CleanupDeadline)
    assert [(x.time2wait, x.time2retain, x.source, x.deadline_ts_ns) for x in d] == [
        (3, 7, "async_event", am.ts_ns + 10 * S)] * 2
    assert violations(out) == []  # the FIN after the drop notice is expected in CLEANUP_WAIT
    assert labels(tr.tick(am.ts_ns + 10 * S), "cleanup") == ["M1", "M1"]


def test_async_event_1_then_logout() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    am = f.async_msg(1, p3=10)
    lo = f.logout_req(reason=1, cid=0)
    out += run(tr, [am, lo, f.logout_rsp(lo.itt)])
    assert labels(out, "connection", "initiator")[-3:] == ["T11", "T10", "T13"]
    assert labels(out, "connection", "target")[-3:] == ["T11", "T10", "T13"]
    assert labels(out, "session", "target")[-1] == "N3"  # close-connection logout of the last connection
    assert violations(out) == []


def test_async_event_3_drops_all_connections() -> None:
    w, tr = Wire(), SessionTracker()
    a, out = _logged_in(tr, w, keys_i=LEADING_KEYS_I, keys_t=LEADING_KEYS_T)
    b = Flow(w, nums=a.nums, conn=CONN_B)
    out += run(tr, [b.opened(), b.login_req((("InitiatorName", INAME),), tsih=0x12, cid=1), b.login_rsp(tsih=0x12)])
    am = a.async_msg(3, p2=2, p3=4)
    out += run(tr, [am])
    dropped = {(t.conn, t.side) for t in transitions(out, "connection") if t.frame == am.frame and t.label == "T15"}
    assert dropped == {(CONN_A, "initiator"), (CONN_A, "target"), (CONN_B, "initiator"), (CONN_B, "target")}
    assert labels(out, "session", "target")[-1] == "N5"


def test_mcs_two_connections_close_session_logout_frees_the_other() -> None:
    w, tr = Wire(), SessionTracker()
    a, out = _logged_in(tr, w)
    b = Flow(w, nums=a.nums, conn=CONN_B)
    out += run(tr, [b.opened(), b.login_req((("InitiatorName", INAME), ("TargetName", TNAME)), tsih=0x12, cid=1),
                    b.login_rsp((("MaxRecvDataSegmentLength", "8192"),), tsih=0x12)])
    assert labels(out, "session", "target") == ["N1", "N2"]  # adding a connection is no session transition
    i1, i2, i3 = a.new_itt(), b.new_itt() + 0x100, a.new_itt()
    # session-wide CmdSN interleaved over two connections: per-connection gaps are fine
    out += run(tr, [a.scsi_cmd(i1), b.scsi_cmd(i2), a.scsi_cmd(i3), a.data_in(i1, status=0),
                    b.data_in(i2, status=0)])
    lo = a.logout_req(reason=0, cid=0)
    rsp = a.logout_rsp(lo.itt)
    b_fin = b.fin(T2I)
    out += run(tr, [lo, rsp, a.fin(T2I), b_fin])
    at = [(t.conn, t.side, t.label) for t in transitions(out, "connection") if t.frame == rsp.frame]
    assert at == [(CONN_A, "initiator", "T13"), (CONN_A, "target", "T13")]
    # B's T8 waits for B's own wire (its FIN); until 2026-11 it was applied at the Logout Response
    at = [(t.conn, t.side, t.label) for t in transitions(out, "connection") if t.frame == b_fin.frame]
    assert at == [(CONN_B, "initiator", "T8"), (CONN_B, "target", "T8")]
    assert labels(out, "session", "initiator")[-1] == "N2" and labels(out, "session", "target")[-1] == "N3"
    assert transitions(out, "session")[-1].frame == b_fin.frame
    assert violations(out) == [] and seq_kinds(out) == []
    open_task = [t for t in of(out, TaskRecord) if t.itt == i3]
    assert open_task[0].outcome == "terminated_by_logout"
    end = tr.finish(w.ts)
    sess = _summary(end, SessionSummary, "session", "s1")
    assert sess.cids == (0, 1) and sess.connections == (CONN_A, CONN_B)
    assert _summary(end, ConnectionSummary, "conn", CONN_B).ended == "session_closed"
    assert _summary(end, ConnectionSummary, "conn", CONN_B).role == "added"


def test_mcs_logout_for_a_dead_cid_on_another_connection_is_csm_e() -> None:
    w, tr = Wire(), SessionTracker()
    a, out = _logged_in(tr, w)
    b = Flow(w, nums=a.nums, conn=CONN_B)
    out += run(tr, [b.opened(), b.login_req((("InitiatorName", INAME),), tsih=0x12, cid=1), b.login_rsp(tsih=0x12)])
    out += run(tr, [b.rst(T2I)])  # connection B (CID 1) fails
    lo = a.logout_req(reason=1, cid=1)
    out += run(tr, [lo, a.logout_rsp(lo.itt)])
    assert labels(out, "cleanup", "target", CONN_B) == ["M2", "M4"]
    assert labels(out, "connection", "target", CONN_A)[-1] == "T5"  # the carrier stays LOGGED_IN
    assert labels(out, "session", "target") == ["N1", "N2"]  # A still in FFP: no session failure
    assert violations(out) == []


# ---------------------------------------------------------------------------- numbering


def test_cmdsn_out_of_window_and_duplicate() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    exp = f.nums.cmdsn
    ok = f.scsi_cmd()
    far = f.scsi_cmd(cmdsn=exp + 100)
    imm = f.scsi_cmd(cmdsn=exp + 500, immediate=True)
    dup = f.scsi_cmd(cmdsn=exp)
    out += run(tr, [ok, far, imm, dup])
    kinds = seq_kinds(out)
    assert kinds == ["cmdsn_out_of_window", "cmdsn_duplicate"]
    oow = next(e for e in out if getattr(e, "kind", "") == "cmdsn_out_of_window")
    assert (oow.expected, oow.observed, oow.frame, oow.itt) == (exp, exp + 100, far.frame, far.itt)
    dupe = next(e for e in out if getattr(e, "kind", "") == "cmdsn_duplicate")
    assert dupe.observed == exp and dupe.frame == dup.frame


def test_cmdsn_window_serial_wraparound() -> None:
    w, tr = Wire(), SessionTracker()
    f = Flow(w)
    f.nums.cmdsn = 0xFFFFFFF0
    out = run(tr, [f.opened(), *login(f)])
    out += run(tr, [f.scsi_cmd(cmdsn=0xFFFFFFFF), f.scsi_cmd(cmdsn=0x00000005)])  # both inside across the wrap
    assert seq_kinds(out) == []
    out += run(tr, [f.scsi_cmd(cmdsn=0x00000100)])
    assert seq_kinds(out) == ["cmdsn_out_of_window"]


def test_statsn_gap_and_non_advancing_pdus() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    i1, i2 = f.new_itt(), f.new_itt()
    out += run(tr, [f.scsi_cmd(i1, read=False, write=True, opcode=0x2A, edtl=4096),
                    f.r2t(i1, length=4096),  # no StatSN advance
                    f.nop_in(),  # NOP-In ITT=0xffffffff: no advance
                    f.data_out(i1, ttt=0x100, dsl=4096),
                    f.scsi_rsp(i1),
                    f.scsi_cmd(i2), f.data_in(i2, datasn=0, dsl=2048, final=False),  # no S bit: no StatSN
                    f.data_in(i2, datasn=1, dsl=2048, offset=2048, status=0)])
    assert seq_kinds(out) == []
    expected = f.statsn
    f.statsn += 3
    i3 = f.new_itt()
    out += run(tr, [f.scsi_cmd(i3), f.scsi_rsp(i3)])
    (gap,) = [e for e in out if getattr(e, "kind", "") == "statsn_gap"]
    assert (gap.expected, gap.observed) == (expected, expected + 3)


def test_capture_gap_reseeds_statsn() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    f.statsn += 5
    out += run(tr, [f.gap(T2I), f.nop_out(0x99), f.nop_in(0x99)])
    assert seq_kinds(out) == []


def test_datasn_and_r2tsn_gaps() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    rd, wr = f.new_itt(), f.new_itt()
    out += run(tr, [f.scsi_cmd(rd, edtl=12288), f.data_in(rd, datasn=0, dsl=4096, final=False),
                    f.data_in(rd, datasn=2, dsl=4096, offset=8192, status=0)])
    (g,) = [e for e in out if getattr(e, "kind", "") == "datasn_gap"]
    assert (g.expected, g.observed, g.itt) == (1, 2, rd)
    # Data-Out DataSN restarts at 0 per R2T sequence: no gap; a gap inside a sequence is flagged
    out2 = run(tr, [f.scsi_cmd(wr, opcode=0x2A, read=False, write=True, edtl=16384),
                    f.r2t(wr, ttt=0xA, r2tsn=0, offset=0, length=8192),
                    f.data_out(wr, ttt=0xA, datasn=0, dsl=4096, offset=0, final=False),
                    f.data_out(wr, ttt=0xA, datasn=1, dsl=4096, offset=4096),
                    f.r2t(wr, ttt=0xB, r2tsn=2, offset=8192, length=8192),
                    f.data_out(wr, ttt=0xB, datasn=0, dsl=4096, offset=8192, final=False),
                    f.data_out(wr, ttt=0xB, datasn=2, dsl=4096, offset=12288),
                    f.scsi_rsp(wr)])
    assert seq_kinds(out2) == ["r2tsn_gap", "datasn_gap"]
    r2tsn = next(e for e in out2 if getattr(e, "kind", "") == "r2tsn_gap")
    assert (r2tsn.expected, r2tsn.observed) == (1, 2)


def test_expdatasn_mismatch_and_unexpected_response() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    rd = f.new_itt()
    out += run(tr, [f.scsi_cmd(rd, edtl=8192), f.data_in(rd, datasn=0), f.data_in(rd, datasn=1, offset=4096),
                    f.scsi_rsp(rd, expdatasn=5), f.scsi_rsp(0x7777)])
    assert seq_kinds(out) == ["expdatasn_mismatch", "unexpected_response"]
    mm = next(e for e in out if getattr(e, "kind", "") == "expdatasn_mismatch")
    assert (mm.expected, mm.observed) == (2, 5)


def test_r2t_overrun_and_burst_lengths() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)  # MaxBurstLength 131072, FirstBurstLength 65536, InitialR2T Yes
    wr = f.new_itt()
    out += run(tr, [f.scsi_cmd(wr, opcode=0x2A, read=False, write=True, edtl=8192),
                    f.r2t(wr, ttt=0x1, length=262144),  # > MaxBurstLength
                    f.data_out(wr, ttt=0x1, dsl=4096, offset=0, final=False),
                    f.data_out(wr, ttt=0x1, datasn=1, dsl=8192, offset=4096)])  # beyond EDTL
    assert seq_kinds(out) == ["burst_length_exceeded", "r2t_overrun"]
    wr2 = f.new_itt()
    out2 = run(tr, [f.scsi_cmd(wr2, opcode=0x2A, read=False, write=True, edtl=4096),
                    f.r2t(wr2, ttt=0x2, offset=0, length=1024),
                    f.data_out(wr2, ttt=0x2, dsl=2048, offset=0)])  # more than the R2T solicited
    assert seq_kinds(out2) == ["r2t_overrun"]
    wr3 = f.new_itt()
    out3 = run(tr, [f.scsi_cmd(wr3, opcode=0x2A, read=False, write=True, edtl=4096),
                    f.data_out(wr3, dsl=4096)])  # unsolicited although InitialR2T=Yes
    assert seq_kinds(out3) == ["unsolicited_data_not_negotiated"]


def test_max_recv_dsl_exceeded() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)  # target receives at most 65536, initiator 262144
    wr = f.new_itt()
    out += run(tr, [f.scsi_cmd(wr, opcode=0x2A, read=False, write=True, edtl=200000),
                    f.r2t(wr, ttt=0x3, length=131072), f.data_out(wr, ttt=0x3, dsl=131072)])
    (e,) = [x for x in out if getattr(x, "kind", "") == "max_recv_dsl_exceeded"]
    assert (e.expected, e.observed) == (65536, 131072)


def test_request_after_logout() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    lo = f.logout_req(reason=1, cid=0)
    out += run(tr, [lo, f.scsi_cmd()])
    assert seq_kinds(out) == ["request_after_logout"]


# ---------------------------------------------------------------------------- tasks


def test_tmf_abort_task_and_reject() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    victim, other = f.new_itt(), f.new_itt()
    tmf = f.tmf_req(1, ref=victim)
    out += run(tr, [f.scsi_cmd(victim), f.scsi_cmd(other), tmf, f.tmf_rsp(tmf.itt),
                    f.reject(reason=0x04, rejected_opcode=0x01, rejected_itt=other)])
    by_itt = {t.itt: t for t in of(out, TaskRecord)}
    assert (by_itt[tmf.itt].kind, by_itt[tmf.itt].tmf_function_name, by_itt[tmf.itt].outcome) == (
        "tmf", "ABORT TASK", "completed")
    assert by_itt[victim].outcome == "aborted"
    assert (by_itt[other].outcome, by_itt[other].reject_reason) == ("rejected", 0x04)


def test_check_condition_with_sense() -> None:
    from analyzer.records import Sense
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    itt = f.new_itt()
    sense = Sense(0x70, 0x6, 0x29, 0x00, "UNIT ATTENTION", "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED", None)
    out += run(tr, [f.scsi_cmd(itt, opcode=0x00, read=False, edtl=0), f.scsi_rsp(itt, status=0x02, sense=sense)])
    (t,) = [t for t in of(out, TaskRecord) if t.kind == "scsi"]
    assert (t.outcome, t.status_name, t.sense_key, t.sense_key_name, t.asc, t.ascq) == (
        "check_condition", "CHECK CONDITION", 6, "UNIT ATTENTION", 0x29, 0)


def test_nop_ping_and_text_sendtargets() -> None:
    w, tr = Wire(), SessionTracker()
    f = Flow(w)
    keys_i = (("InitiatorName", INAME), ("SessionType", "Discovery"), ("MaxRecvDataSegmentLength", "32768"))
    out = run(tr, [f.opened(), *login(f, keys_i=keys_i, keys_t=(("TargetPortalGroupTag", "1"),))])
    ping = f.nop_out()
    out += run(tr, [ping, f.nop_in(ping.itt)])
    tx = f.text_req((("SendTargets", "All"),))
    out += run(tr, [tx, f.text_rsp(tx.itt, (("TargetName", TNAME), ("TargetAddress", "10.0.0.2:3260,1")))])
    kinds = sorted(t.kind for t in of(out, TaskRecord) if t.outcome == "completed")
    assert kinds == ["login", "nop", "text"]
    sess = tr.sessions()[0]
    assert (sess.session_type, sess.target_name, sess.discovered_targets) == ("Discovery", None, (TNAME,))
    assert violations(out) == [] and seq_kinds(out) == []


def test_open_tasks_at_capture_end() -> None:
    w, tr = Wire(), SessionTracker()
    f, _out = _logged_in(tr, w)
    itt = f.new_itt()
    run(tr, [f.scsi_cmd(itt)])
    end = tr.finish(w.ts + S)
    (t,) = [t for t in of(end, TaskRecord)]
    assert (t.itt, t.outcome) == (itt, "open_at_capture_end")
    assert tr.sessions()[0].ended == "capture_end"


def test_tasks_are_evicted_after_emission() -> None:
    w, tr = Wire(), SessionTracker()
    f, _ = _logged_in(tr, w)
    for _ in range(500):
        itt = f.new_itt()
        run(tr, [f.scsi_cmd(itt), f.data_in(itt, status=0)])
    sess = tr._d.sessions["s1"]
    assert sess.tasks == {} and sess.task_count == 501


# ---------------------------------------------------------------------------- mid-stream


def test_mid_stream_start_is_placed_logged_in_inferred() -> None:
    w, tr = Wire(), SessionTracker()
    f = Flow(w)
    f.nums.cmdsn = 500
    old_itt = 0x999
    out = run(tr, [f.opened(handshake=False), f.data_in(old_itt, datasn=3, status=0),  # command predates capture
                   f.scsi_cmd(0x20), f.data_in(0x20, status=0)])
    first = transitions(out, "connection")
    assert [(t.side, t.from_state, t.to_state, t.label, t.inferred) for t in first] == [
        ("initiator", "UNKNOWN", "LOGGED_IN", None, True), ("target", "UNKNOWN", "LOGGED_IN", None, True)]
    assert [(t.side, t.from_state, t.to_state, t.inferred) for t in transitions(out, "session")] == [
        ("initiator", "UNKNOWN", "LOGGED_IN", True), ("target", "UNKNOWN", "LOGGED_IN", True)]
    assert seq_kinds(out) == [] and violations(out) == []
    tasks = {t.itt: t for t in of(out, TaskRecord)}
    assert tasks[old_itt].partial and not tasks[0x20].partial
    end = tr.finish(w.ts)
    sess = _summary(end, SessionSummary, "session", "s1")
    assert sess.mid_stream and sess.session_type == "unknown" and sess.isid is None
    assert _summary(end, ConnectionSummary, "conn", CONN_A).mid_stream


def test_mid_stream_then_fin_is_t15() -> None:
    w, tr = Wire(), SessionTracker()
    f = Flow(w)
    out = run(tr, [f.opened(handshake=False), f.nop_in(), f.fin(T2I)])
    assert labels(out, "connection", "target") == [None, "T15"]
    d = of(out, CleanupDeadline)
    assert d and d[0].source == "default" and (d[0].time2wait, d[0].time2retain) == (2, 20)


def test_tracker_defaults_are_used_when_nothing_was_negotiated() -> None:
    w, tr = Wire(), SessionTracker(time2wait_default=1, time2retain_default=3)
    f = Flow(w)
    fin = None
    out = run(tr, [f.opened(handshake=False), f.nop_in()])
    fin = f.fin(T2I)
    out += run(tr, [fin])
    assert of(out, CleanupDeadline)[0].deadline_ts_ns == fin.ts_ns + 4 * S


def test_violation_for_ffp_pdu_during_login() -> None:
    w, tr = Wire(), SessionTracker()
    f = Flow(w)
    out = run(tr, [f.opened(), f.login_req(LEADING_KEYS_I, transit=False, nsg=1), f.scsi_cmd()])
    v = violations(out)
    assert [(x.side, x.state, x.input) for x in v] == [("initiator", "IN_LOGIN", "FFP_REQUEST"),
                                                       ("target", "IN_LOGIN", "FFP_REQUEST")]


def test_transition_records_carry_session_ids_once_known() -> None:
    w, tr = Wire(), SessionTracker()
    _f, out = _logged_in(tr, w)
    assert all(t.session is None for t in transitions(out) if t.label in ("T1", "T3"))
    assert all(t.session == "s1" for t in transitions(out) if t.label in ("T5", "N1"))
    assert isinstance(transitions(out)[0], Transition)


def test_non_advancing_pdus_do_not_hide_a_real_statsn_gap() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    wr = f.new_itt()
    expected = f.statsn
    out += run(tr, [f.scsi_cmd(wr, opcode=0x2A, read=False, write=True, edtl=4096), f.r2t(wr), f.nop_in(),
                    f.data_out(wr, ttt=0x100), f.scsi_rsp(wr, statsn=expected + 1)])
    (gap,) = [e for e in out if getattr(e, "kind", "") == "statsn_gap"]
    assert (gap.expected, gap.observed) == (expected, expected + 1)


def test_bidirectional_command_shares_datasn_between_r2t_and_data_in() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    bi = f.new_itt()
    out += run(tr, [f.scsi_cmd(bi, read=True, write=True, edtl=4096), f.r2t(bi, ttt=0x7, r2tsn=0),
                    f.data_out(bi, ttt=0x7), f.data_in(bi, datasn=1, status=0)])
    assert seq_kinds(out) == []
    bi2 = f.new_itt()
    out2 = run(tr, [f.scsi_cmd(bi2, read=True, write=True, edtl=4096), f.r2t(bi2, ttt=0x8, r2tsn=0),
                    f.data_out(bi2, ttt=0x8), f.data_in(bi2, datasn=0, status=0)])
    assert seq_kinds(out2) == []  # DataSN 0 after R2TSN 0 is behind, not a gap
    (t,) = [t for t in of(out2, TaskRecord) if t.itt == bi2]
    assert (t.r2t_count, t.data_in_pdus, t.read, t.write) == (1, 1, True, True)


def test_login_with_the_cid_of_a_timed_out_connection_is_not_a_reinstatement() -> None:
    w, tr = Wire(), SessionTracker()
    a, out = _logged_in(tr, w)
    b = Flow(w, nums=a.nums, conn=CONN_B)
    out += run(tr, [b.opened(), b.login_req((("InitiatorName", INAME),), tsih=0x12, cid=1), b.login_rsp(tsih=0x12)])
    rst = b.rst(T2I)
    out += run(tr, [rst])
    out += tr.tick(rst.ts_ns + 23 * S)  # connection B's state timed out (M1)
    c = Flow(w, nums=a.nums, conn="10.0.0.1:40002->10.0.0.2:3260")
    out += run(tr, [c.opened(), c.login_req((("InitiatorName", INAME),), tsih=0x12, cid=1), c.login_rsp(tsih=0x12)])
    assert of(out, Reinstatement) == []
    assert tr.connections()[2].role == "added" and violations(out) == []


# ---------------------------------------------------------------------------- the wire decides (target deviations)
#
# RFC 7143 derives some closes from events on *other* connections (close-session logout,
# reinstatement, a Logout naming another CID). They are applied when the connection's own wire
# confirms them (its TCP close, or capture end); a target that keeps using the connection gets a
# Deviation instead, and the connection stays where the wire shows it.



def _two_connections(tr: SessionTracker, w: Wire) -> tuple[Flow, Flow, list]:  # type: ignore[type-arg]
    a, out = _logged_in(tr, w)
    b = Flow(w, nums=a.nums, conn=CONN_B)
    out += run(tr, [b.opened(), b.login_req((("InitiatorName", INAME),), tsih=0x12, cid=1), b.login_rsp(tsih=0x12)])
    return a, b, out


def test_close_session_left_open_by_the_target_is_a_deviation() -> None:
    w, tr = Wire(), SessionTracker()
    a, b, out = _two_connections(tr, w)
    lo = a.logout_req(reason=0, cid=0)
    rsp = a.logout_rsp(lo.itt)
    out += run(tr, [lo, rsp, a.fin(T2I)])
    assert transitions(out, conn=CONN_B)[-1].to_state == "LOGGED_IN"
    assert labels(out, "session", "target")[-1] == "N2"  # still LOGGED_IN: B is in full feature phase
    itt = 0x500  # session-wide ITTs: keep clear of A's
    out += run(tr, [b.scsi_cmd(itt), b.data_in(itt, status=0)])
    (dev,) = of(out, Deviation)
    assert (dev.kind, dev.conn, dev.cid, dev.start_frame) == ("close_session_left_connection_open", CONN_B, 1,
                                                               rsp.frame)
    assert [t.outcome for t in of(out, TaskRecord) if t.itt == itt] == ["completed"]
    assert seq_kinds(out) == ["request_after_logout"]
    lo2 = b.logout_req(reason=0, cid=1, itt=0x501)
    rsp2 = b.logout_rsp(lo2.itt)
    out += run(tr, [lo2, rsp2, b.fin(T2I)])
    assert [(t.label, t.frame) for t in transitions(out, "session", "target")][-1] == ("N3", rsp2.frame)
    assert violations(out) == []


def test_close_session_sibling_silent_until_capture_end_is_closed_where_implied() -> None:
    w, tr = Wire(), SessionTracker()
    a, b, out = _two_connections(tr, w)
    itt = 0x500
    lo = a.logout_req(reason=0, cid=0)
    rsp = a.logout_rsp(lo.itt)
    out += run(tr, [b.scsi_cmd(itt), lo, rsp])
    end = tr.finish(w.ts + 10 * S)
    t8 = [t for t in transitions(end, "connection", conn=CONN_B)]
    assert [(t.side, t.label, t.frame, t.inferred) for t in t8] == [("initiator", "T8", rsp.frame, True),
                                                                    ("target", "T8", rsp.frame, True)]
    (task,) = [t for t in of(end, TaskRecord) if t.itt == itt]
    assert (task.outcome, task.unanswered_cause) == ("terminated_by_logout", "logout")
    assert _summary(end, SessionSummary, "session", "s1").state_target == "FREE"
    assert _summary(end, ConnectionSummary, "conn", CONN_B).ended == "session_closed"


def test_logout_for_a_cid_that_does_not_exist_then_carrier_closed() -> None:
    w, tr = Wire(), SessionTracker()
    a, out = _logged_in(tr, w)
    lo = a.logout_req(reason=1, cid=7)
    out += run(tr, [lo, a.logout_rsp(lo.itt)])
    (dev,) = of(out, Deviation)
    assert (dev.kind, dev.expected, dev.observed, dev.cid) == ("logout_response_unexpected", 1, 0, 7)
    fin = a.fin(T2I)
    out2 = run(tr, [fin])
    assert [(t.side, t.label, t.inferred) for t in transitions(out2, "connection")] == [
        ("initiator", "T9", True), ("initiator", "T13", True), ("target", "T9", True), ("target", "T13", True)]
    assert [d.kind for d in of(out2, Deviation)] == ["logout_closed_wrong_connection"]
    assert labels(out2, "session", "target") == ["N3"]
    end = tr.finish(w.ts)
    assert _summary(end, SessionSummary, "session", "s1").ended == "logout"
    assert violations(out + out2) == []


def test_recovery_logout_answered_0_at_erl_0() -> None:
    w, tr = Wire(), SessionTracker()
    a, out = _logged_in(tr, w)  # ErrorRecoveryLevel=0
    lo = a.logout_req(reason=2, cid=0)
    out += run(tr, [lo, a.logout_rsp(lo.itt)])
    (dev,) = of(out, Deviation)
    assert (dev.kind, dev.expected, dev.observed) == ("logout_response_unexpected", 2, 0)


def test_logout_naming_a_live_cid_waits_for_its_wire() -> None:
    w, tr = Wire(), SessionTracker()
    a, b, out = _two_connections(tr, w)
    lo = a.logout_req(reason=1, cid=1)
    out += run(tr, [lo, a.logout_rsp(lo.itt)])
    assert transitions(out, conn=CONN_B)[-1].to_state == "LOGGED_IN" and labels(out, "cleanup") == []
    out += run(tr, [a.nop_out(), b.fin(T2I)])  # the carrier goes on; the named connection closes
    assert [(t.side, t.label) for t in transitions(out, conn=CONN_B)][-4:] == [
        ("initiator", "T9"), ("initiator", "T13"), ("target", "T9"), ("target", "T13")]
    assert of(out, Deviation) == [] and violations(out) == []
    assert tr.connections()[1].ended == "logout" and tr.connections()[0].state_target == "LOGGED_IN"


def test_target_closing_the_old_session_during_its_reinstatement_is_t8() -> None:
    w, tr = Wire(), SessionTracker()
    a, out = _logged_in(tr, w)
    b = Flow(w, conn=CONN_B)
    out += run(tr, [b.opened(), b.login_req(LEADING_KEYS_I, tsih=0)])
    fin = a.fin(T2I)
    out += run(tr, [fin])
    at = {t.side: t for t in transitions(out, "connection", conn=CONN_A) if t.frame == fin.frame}
    assert (at["target"].label, at["target"].to_state) == ("T8", "FREE")
    assert at["initiator"].label == "T15"
    assert [t.to_state for t in transitions(out, "session", "target") if t.session == "s1"][-1] == "FREE"
    out += run(tr, [b.login_rsp(LEADING_KEYS_T, tsih=0x13)])
    c = tr.connections()[0]
    assert (c.state_initiator, c.cleanup_initiator, c.state_target) == ("FREE", "FREE", "FREE")
    assert violations(out) == []


def test_session_does_not_exist_frees_the_target_side() -> None:
    w, tr = Wire(), SessionTracker()
    a, out = _logged_in(tr, w)
    out += run(tr, [a.rst(I2T)])
    b = Flow(w, nums=a.nums, conn=CONN_B)
    out += run(tr, [b.opened(), b.login_req((("InitiatorName", INAME),), tsih=0x12, cid=0),
                    b.login_rsp(status_class=2, status_detail=0x0A, transit=False, nsg=0)])
    assert labels(out, "session", "target")[-2:] == ["N8", "N6"]
    ended = [e for e in of(out, CleanupEnded) if e.side == "target"]
    assert [(e.label, e.outcome) for e in ended] == [("M1", "discarded")]
    old = tr.connections()[0]
    assert (old.state_target, old.cleanup_target, old.cleanup_initiator) == ("FREE", "FREE", "CLEANUP_WAIT")
    assert tr.sessions()[0].state_target == "FREE"


def test_cleanup_reaching_free_moves_the_connection_to_free() -> None:
    w, tr = Wire(), SessionTracker()
    f, _out = _logged_in(tr, w)
    rst = f.rst(T2I)
    run(tr, [rst])
    late = tr.finish(rst.ts_ns + 30 * S)
    conn = [(t.side, t.label, t.from_state, t.to_state) for t in transitions(late, "connection")]
    assert conn == [("initiator", "M1", "CLEANUP_WAIT", "FREE"), ("target", "M1", "CLEANUP_WAIT", "FREE")]
    c = _summary(late, ConnectionSummary, "conn", CONN_A)
    assert (c.state_target, c.cleanup_target) == ("FREE", "FREE")


def test_out_of_window_command_is_not_accepted() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    far = f.scsi_cmd(cmdsn=f.nums.cmdsn + 100)
    lo = f.logout_req(reason=0)
    out += run(tr, [far, lo, f.logout_rsp(lo.itt)])
    (t,) = [t for t in of(out, TaskRecord) if t.itt == far.itt]
    assert (t.outcome, t.unanswered_cause, t.latency_ns, t.last_frame) == (
        "not_accepted", "cmdsn_above_window", 0, far.frame)


def test_stale_cmdsn_then_target_drop() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    ok = f.new_itt()
    out += run(tr, [f.scsi_cmd(ok), f.data_in(ok, status=0)])
    stale = f.scsi_cmd(cmdsn=f.nums.cmdsn - 1)
    out += run(tr, [stale, f.fin(T2I)])
    (e,) = [x for x in of(out, SequenceEvent) if x.kind == "cmdsn_out_of_window"]
    assert "stale" in e.detail and e.observed == stale.cmdsn
    (dev,) = of(out, Deviation)
    assert (dev.kind, dev.itt, dev.rfc) == ("connection_dropped_on_request", stale.itt, "§4.2.2.1")
    (t,) = [t for t in of(out, TaskRecord) if t.itt == stale.itt]
    assert (t.outcome, t.unanswered_cause) == ("not_accepted", "cmdsn_below_window")


def test_requests_after_logout_request_are_not_accepted() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    lo = f.logout_req(reason=0)
    cmd = f.scsi_cmd()
    out += run(tr, [lo, cmd, f.logout_rsp(lo.itt)])
    (t,) = [t for t in of(out, TaskRecord) if t.itt == cmd.itt]
    assert (t.outcome, t.unanswered_cause) == ("not_accepted", "sent_after_logout_request")


def test_tmf_task_does_not_exist_for_a_task_with_an_r2t() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    wr = f.new_itt()
    tmf = f.tmf_req(1, ref=wr)
    out += run(tr, [f.scsi_cmd(wr, opcode=0x2A, read=False, write=True, edtl=4096), f.r2t(wr), tmf,
                    f.tmf_rsp(tmf.itt, response=1)])
    (d1,) = of(out, Deviation)
    assert (d1.kind, d1.itt) == ("tmf_response_inconsistent", wr)
    out2 = run(tr, [f.data_out(wr, ttt=0x100), f.scsi_rsp(wr)])
    (d2,) = of(out2, Deviation)
    assert (d2.kind, d2.itt, d2.start_frame) == ("tmf_response_inconsistent", wr, d1.frame)
    assert [t.outcome for t in of(out2, TaskRecord)] == ["completed"]


def test_aborted_task_names_its_tmf() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    victim = f.new_itt()
    tmf = f.tmf_req(1, ref=victim)
    out += run(tr, [f.scsi_cmd(victim), tmf, f.tmf_rsp(tmf.itt)])
    (v,) = [t for t in of(out, TaskRecord) if t.itt == victim]
    assert (v.outcome, v.aborted_by_itt, v.unanswered_cause) == ("aborted", tmf.itt, "task_management")


def test_target_nop_in_pings_are_tasks() -> None:
    w, tr = Wire(), SessionTracker()
    f, out = _logged_in(tr, w)
    out += run(tr, [f.nop_in(ttt=0x77), f.nop_out(0xFFFFFFFF, ttt=0x77), f.nop_in(ttt=0x78), f.fin(T2I)])
    pings = [t for t in of(out, TaskRecord) if t.kind == "nop_in"]
    assert [(t.itt, t.ttt, t.outcome) for t in pings] == [(0xFFFFFFFF, 0x77, "completed"),
                                                          (0xFFFFFFFF, 0x78, "open_at_conn_drop")]
    assert pings[1].unanswered_cause == "connection_closed_by_target"


def test_session_identified_once_before_logged_in() -> None:
    w, tr = Wire(), SessionTracker()
    _f, out = _logged_in(tr, w)
    (si,) = of(out, SessionIdentified)
    assert (si.session, si.isid, si.tsih, si.tpgt, si.initiator_name, si.target_name, si.session_type,
            si.mid_stream) == ("s1", f"{ISID:012x}", 0x12, 1, INAME, TNAME, "Normal", False)
    first = next(i for i, r in enumerate(out) if isinstance(r, Transition) and r.to_state == "LOGGED_IN")
    assert out.index(si) < first
    w2, tr2 = Wire(), SessionTracker()
    g = Flow(w2)
    mid = run(tr2, [g.opened(handshake=False), g.nop_in()])
    (si2,) = of(mid, SessionIdentified)
    assert si2.mid_stream and si2.isid is None and si2.session_type == "unknown"


def test_max_recv_dsl_phase_is_structured() -> None:
    w, tr = Wire(), SessionTracker()
    f = Flow(w)
    out = run(tr, [f.opened(), f.login_req(LEADING_KEYS_I)])
    big = f.login_req(LEADING_KEYS_I)
    out += run(tr, [type(big)(**{**{k: getattr(big, k) for k in big.__dataclass_fields__}, "dsl": 9000})])
    (e,) = [x for x in of(out, SequenceEvent) if x.kind == "max_recv_dsl_exceeded"]
    assert e.phase == "login"


def test_violation_says_when_it_is_an_observer_limitation() -> None:
    w, tr = Wire(), SessionTracker()
    f = Flow(w)
    out = run(tr, [f.opened(), f.login_req(LEADING_KEYS_I, transit=False, nsg=1), f.scsi_cmd()])
    assert {v.observer_limited for v in violations(out)} == {False}
    w2, tr2 = Wire(), SessionTracker()
    g = Flow(w2)
    out2 = run(tr2, [g.opened(), g.gap(I2T), g.login_req(LEADING_KEYS_I, transit=False, nsg=1), g.scsi_cmd()])
    assert violations(out2) and {v.observer_limited for v in violations(out2)} == {True}
