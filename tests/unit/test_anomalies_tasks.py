"""Task anomaly rules: check_condition, scsi_status, task_management, task_unanswered, task_slow,
nop_unanswered, reject."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_anomalies_support import CONN, MS, Flow, S, Wire, direct, kinds, logged_in, one, only, pipe

from analyzer.records import I2T, RESERVED_TAG, T2I, Sense, TcpGap
from analyzer.state.events import TaskRecord


def task(outcome: str = "completed", *, frame: int = 10, start: int = S, latency: int = MS, kind: str = "scsi",
         opcode: int = 0x28, name: str = "READ(10)", lun: int = 0, itt: int = 0x10, **kw: object) -> TaskRecord:
    return TaskRecord(frame, start + latency, "s1", CONN, itt, kind, outcome, frame - 1, frame, start,
                      start + latency, latency, False, 1, lun, cdb_opcode=opcode if kind == "scsi" else None,
                      cdb_name=name if kind == "scsi" else None, **kw)  # type: ignore[arg-type]


def cc(key: int, asc: int, ascq: int = 0, *, opcode: int = 0x28, name: str = "READ(10)", **kw: object) -> TaskRecord:
    from analyzer.iscsi.scsi import asc_name, sense_key_name
    return task("check_condition", opcode=opcode, name=name, status=2, status_name="CHECK CONDITION",
                sense_key=key, sense_key_name=sense_key_name(key), asc=asc, ascq=ascq,
                asc_name=asc_name(asc, ascq) or None, **kw)


# ---------------------------------------------------------------------------------------------- check condition


@pytest.mark.parametrize(("key", "asc", "opcode", "severity"), [
    (0x3, 0x11, 0x28, "error"),  # MEDIUM ERROR, unrecovered read error
    (0x4, 0x44, 0x28, "error"),  # HARDWARE ERROR
    (0x5, 0x24, 0x12, "info"),  # ILLEGAL REQUEST on INQUIRY (probing)
    (0x5, 0x24, 0x28, "warning"),  # ILLEGAL REQUEST on READ(10)
    (0x5, 0x20, 0xB8, "info"),  # invalid command operation code
    (0x5, 0x21, 0x28, "warning"),  # LBA out of range
    (0x2, 0x3A, 0x28, "info"),  # NOT READY, medium not present
    (0x2, 0x04, 0x00, "info"),  # NOT READY on TEST UNIT READY
    (0x2, 0x05, 0x28, "warning"),  # NOT READY, LU does not respond to selection
    (0x6, 0x28, 0x00, "info"),  # UA medium may have changed
    (0x6, 0x29, 0x28, "warning"),  # UA power on/reset, no login known
    (0x1, 0x17, 0x28, "info"),  # RECOVERED ERROR
    (0xB, 0x47, 0x28, "warning"),  # ABORTED COMMAND
])
def test_check_condition_severity(key: int, asc: int, opcode: int, severity: str) -> None:
    a = one(direct([cc(key, asc, opcode=opcode, name=f"OP{opcode:02x}")]), "check_condition")
    assert a.severity == severity, a.message
    from analyzer.iscsi.scsi import sense_key_name
    assert sense_key_name(key) in a.message and f"0x{asc:02x}/0x00" in a.message


def test_check_condition_message_names() -> None:
    a = one(direct([cc(0x5, 0x24, opcode=0x1A, name="MODE SENSE(6)", lun=3)]), "check_condition")
    assert a.message.startswith("MODE SENSE(6) on LUN 3 ended with CHECK CONDITION: ILLEGAL REQUEST, "
                                "Invalid field in CDB")
    assert set(a.frames) == {9, 10} and a.frame == 9


def test_unit_attention_shortly_after_login_is_info() -> None:
    w = Wire()
    f, recs = logged_in(w)
    c = f.scsi_cmd(opcode=0x00)
    sense = Sense(0x70, 6, 0x29, 0, "UNIT ATTENTION", "Power on, reset, or bus device reset occurred", None)
    out = pipe(recs + [c, f.scsi_rsp(c.itt, status=2, sense=sense)])
    assert one(out, "check_condition").severity == "info"
    w = Wire()
    f, recs = logged_in(w)
    w.advance(120 * S)
    c = f.scsi_cmd(opcode=0x00)
    out = pipe(recs + [c, f.scsi_rsp(c.itt, status=2, sense=sense)])
    a = one(out, "check_condition")
    assert a.severity == "warning" and "Power on" in a.message


def test_check_condition_without_sense() -> None:
    t = task("check_condition", status=2)
    a = one(direct([t]), "check_condition")
    assert a.severity == "warning" and "without sense data" in a.message


def test_check_condition_flood_is_summarised() -> None:
    recs = [cc(0x5, 0x24, opcode=0x1A, name="MODE SENSE(6)", frame=10 + 2 * i, itt=i) for i in range(7)]
    out = direct(recs)
    found = only(out, "check_condition")
    assert len(found) == 4
    assert "4 more findings" in found[-1].message and found[-1].frame == 15  # first suppressed evidence


@pytest.mark.parametrize(("status", "response", "severity", "text"), [
    (0x08, 0, "warning", "BUSY"), (0x18, 0, "warning", "RESERVATION CONFLICT"), (0x28, 0, "warning", "TASK SET FULL"),
    (None, 1, "error", "Target Failure"),
])
def test_scsi_status(status: int | None, response: int, severity: str, text: str) -> None:
    from analyzer.iscsi.scsi import status_name
    t = task("failed", status=status, status_name=status_name(status) if status is not None else None,
             response=response)
    a = one(direct([t]), "scsi_status")
    assert a.severity == severity and text in a.message


def test_itt_reuse_failure_is_not_scsi_status() -> None:
    assert "scsi_status" not in kinds(direct([task("failed", note="ITT reused while the task was open")]))


# ---------------------------------------------------------------------------------------------- TMF


def test_abort_task_complete_counts_aborted() -> None:
    w = Wire()
    f, recs = logged_in(w)
    c = f.scsi_cmd()
    tmf = f.tmf_req(1, ref=c.itt)
    out = pipe(recs + [c, tmf, f.tmf_rsp(tmf.itt)])
    a = one(out, "task_management")
    assert a.severity == "info" and "ABORT TASK" in a.message and f"ITT 0x{c.itt:x}" in a.message
    assert "Function complete" in a.message and "1 task aborted" in a.message and c.frame in a.frames
    assert "task_unanswered" not in kinds(out)


def test_tmf_not_complete_is_warning() -> None:
    w = Wire()
    f, recs = logged_in(w)
    tmf = f.tmf_req(5, lun=2)
    out = pipe(recs + [tmf, f.tmf_rsp(tmf.itt, response=5)])
    a = one(out, "task_management")
    assert a.severity == "warning" and "LOGICAL UNIT RESET on LUN 2" in a.message
    assert "Task management function not supported" in a.message


# ---------------------------------------------------------------------------------------------- unanswered


def test_unanswered_at_capture_end_needs_a_second() -> None:
    w = Wire()
    f, recs = logged_in(w)
    c = f.scsi_cmd()
    a = one(pipe(recs + [c], end_ts=c.ts_ns + 2 * S), "task_unanswered")
    assert a.severity == "warning" and "end of the capture" in a.message and "2.0 s" in a.message
    assert "task_unanswered" not in kinds(pipe(recs + [c], end_ts=c.ts_ns + S // 5))


def test_terminated_by_logout_and_lost_in_gap_are_not_unanswered() -> None:
    out = direct([task("terminated_by_logout"), task("lost_in_capture_gap", itt=2)], end_ts=100 * S)
    assert "task_unanswered" not in kinds(out)
    w = Wire()
    f, recs = logged_in(w)
    c = f.scsi_cmd()
    req = f.logout_req(reason=0)
    out = pipe(recs + [c, req, f.logout_rsp(req.itt)], end_ts=w.ts + 10 * S)
    assert "task_unanswered" not in kinds(out)


def test_unanswered_groups_one_finding_per_drop() -> None:
    recs = [task("open_at_conn_drop", frame=50, itt=i, start=S + i * MS, latency=10 * MS) for i in range(5)]
    a = one(direct(recs), "task_unanswered")
    assert "5 tasks" in a.message and "READ(10) on LUN 0 x5" in a.message and "ITT 0x0, 0x1" in a.message


# ---------------------------------------------------------------------------------------------- slow


def _peers(n: int, latency: int = MS) -> list[TaskRecord]:
    return [task(frame=10 + i, start=S + i * 10 * MS, latency=latency, itt=i) for i in range(n)]


def test_task_slow_far_above_peers() -> None:
    slow = task(frame=500, start=10 * S, latency=2 * S, itt=999)
    a = one(direct(_peers(30) + [slow]), "task_slow")
    assert a.severity == "warning" and "took 2.0 s" in a.message and "median of 1.0 ms" in a.message
    assert a.frame == 499


def test_task_slow_floor_and_minimum_peers() -> None:
    assert "task_slow" not in kinds(direct(_peers(30) + [task(frame=500, start=10 * S, latency=S // 2)]))
    assert "task_slow" not in kinds(direct(_peers(10) + [task(frame=500, start=10 * S, latency=5 * S)]))
    other_op = task(frame=500, start=10 * S, latency=5 * S, opcode=0x2A, name="WRITE(10)")
    assert "task_slow" not in kinds(direct(_peers(30) + [other_op]))


# ---------------------------------------------------------------------------------------------- NOP


def test_target_ping_unanswered_within_timeout() -> None:
    w = Wire()
    f, recs = logged_in(w)
    ping = f.nop_in(ttt=0x77)
    later = f.scsi_cmd()
    w.advance(6 * S)
    out = pipe(recs + [ping, later, f.data_in(later.itt, status=0)], finish=False)
    a = one(out, "nop_unanswered")
    assert a.severity == "warning" and "TTT 0x77" in a.message and "within 5.0 s" in a.message


def test_answered_pings_are_silent() -> None:
    w = Wire()
    f, recs = logged_in(w)
    ping = f.nop_in(ttt=0x77)
    mine = f.nop_out()
    recs += [ping, f.nop_out(RESERVED_TAG, ttt=0x77), mine, f.nop_in(mine.itt)]
    assert "nop_unanswered" not in kinds(pipe(recs, end_ts=w.ts + 60 * S))


def test_pings_unanswered_before_drop() -> None:
    w = Wire()
    f, recs = logged_in(w)
    pings = [f.nop_in(ttt=0x70 + i) for i in range(3)]
    out = pipe(recs + pings + [f.fin(T2I)])
    found = only(out, "nop_unanswered")
    assert len(found) == 3 and all("before the connection closed" in a.message for a in found)


def test_initiator_ping_unanswered_at_end() -> None:
    w = Wire()
    f, recs = logged_in(w)
    ping = f.nop_out()
    a = one(pipe(recs + [ping], end_ts=ping.ts_ns + 10 * S), "nop_unanswered")
    assert "initiator's NOP-Out ping (ITT 0x11) got no NOP-In" in a.message
    a = one(direct([ping], end_ts=ping.ts_ns + 10 * S), "nop_unanswered")
    assert "end of the capture (10.0 s later)" in a.message
    assert "nop_unanswered" not in kinds(direct([ping], end_ts=ping.ts_ns + 3 * S))


def test_ping_answer_possibly_lost_in_gap_is_silent() -> None:
    w = Wire()
    f, recs = logged_in(w)
    ping = f.nop_in(ttt=0x70)
    fr, ts = w.next()
    gap = TcpGap(fr, ts, CONN, I2T, 0, 100)
    assert "nop_unanswered" not in kinds(pipe(recs + [ping, gap, f.fin(T2I)]))


def test_nop_timeout_fires_on_tick() -> None:
    from analyzer.anomalies import AnomalyEngine
    w = Wire()
    f = Flow(w)
    e = AnomalyEngine()
    ping = f.nop_in(ttt=0x70)
    assert e.feed(ping) == []
    assert e.tick(ping.ts_ns + 2 * S) == []
    assert [a.kind for a in e.tick(ping.ts_ns + 6 * S)] == ["nop_unanswered"]


# ---------------------------------------------------------------------------------------------- reject


def test_reject_named_and_limited() -> None:
    f = Flow(Wire())
    out = direct([f.reject(reason=0x04, rejected_opcode=0x01, rejected_itt=0x33)])
    a = one(out, "reject")
    assert a.severity == "warning" and a.message == "The target rejected a SCSI Command (ITT 0x33): Protocol Error."
    out = direct([f.reject(reason=0x09, rejected_opcode=None, rejected_itt=None) for _ in range(13)])
    found = only(out, "reject")
    assert len(found) == 11 and "3 more" in found[-1].message and "Invalid PDU field" in found[0].message


_ = (replace,)


def test_aborted_tasks_are_matched_by_aborted_by_itt_not_by_note() -> None:
    tmf = task("completed", kind="tmf", itt=0x20, frame=12, tmf_function=1, ref_task_tag=0x10, response=0)
    victim = task("aborted", itt=0x10, frame=12, aborted_by_itt=0x20, note="")
    other = task("aborted", itt=0x11, frame=12, aborted_by_itt=0x21, note="ABORT TASK by TMF ITT 0x20")
    a = one(direct([victim, other, tmf]), "task_management")
    assert "1 task aborted" in a.message


def test_target_ping_tasks_are_not_lost_io() -> None:
    w = Wire()
    f, recs = logged_in(w)
    out = pipe(recs + [f.nop_in(ttt=0x9), f.fin(T2I)])
    drop = one(out, "connection_dropped")
    assert "no task was in flight" in drop.message
    assert one(out, "nop_unanswered").severity == "warning"


def test_not_accepted_tasks_are_not_unanswered() -> None:
    out = direct([task("not_accepted", unanswered_cause="cmdsn_above_window", latency=0)], end_ts=100 * S)
    assert "task_unanswered" not in kinds(out)
