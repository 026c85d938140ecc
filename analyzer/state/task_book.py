"""Task bookkeeping (RFC 7143 §4.2.2, §11): opening tasks by ITT, matching responses to them,
emitting a finished task as its TaskRecord and evicting it, the outcome and cause of a task
that got no answer, CmdSN window checks (§4.2.2.1), and capture damage (gaps) marking tasks.
"""

from __future__ import annotations

from analyzer.records import (
    I2T,
    Pdu,
    Record,
)
from analyzer.state import (
    desk,
)
from analyzer.state.books import (
    CMDSN_HISTORY,
    NS,
    PDU_NAMES,
    Conn,
    Session,
)
from analyzer.state.desk import Desk
from analyzer.state.sequence import CmdWindow, serial_gt
from analyzer.state.tasks import (
    Task,
)


def emit_task(d: Desk, s: Session, t: Task, rec: Record) -> None:
    c = d.conns.get(t.conn)
    if t.kind == "nop_in":
        if c is not None and t.ttt is not None and c.pings.get(t.ttt) is t:
            del c.pings[t.ttt]
    elif s.tasks.get(t.itt) is t:
        del s.tasks[t.itt]
    s.task_count += 1
    if c is not None:
        c.tasks += 1
    d.out.append(rec)


def unanswered(t: Task, outcome: str, cause: str | None) -> tuple[str, str | None]:
    """Outcome and cause of a task that got no response: a capture gap may hide the answer; a
    command outside the CmdSN window (§4.2.2.1) or sent after a Logout Request (§11.14) was
    never accepted; else ``outcome``."""
    if t.damaged:
        return "lost_in_capture_gap", "capture_gap"
    if t.cmdsn_cause is not None:
        return "not_accepted", t.cmdsn_cause
    if t.after_logout:
        return "not_accepted", "sent_after_logout_request"
    return outcome, cause


def end_unanswered(d: Desk, s: Session, t: Task, frame: int, ts: int, outcome: str, cause: str | None,
                    note: str = "") -> None:
    out, why = unanswered(t, outcome, cause)
    emit_task(d, s, t, t.finish(frame, ts, out, note=note, cause=why))


def drop_cause(c: Conn) -> str:
    if c.closed_by is None:
        return "connection_failed"
    side, how = c.closed_by
    return f"connection_{'reset' if how == 'rst' else 'closed'}_by_{side}"


def close_conn_tasks(d: Desk, c: Conn, frame: int, ts: int, outcome: str, note: str) -> None:
    s = c.session
    if s is None:
        return
    cause = drop_cause(c) if outcome == "open_at_conn_drop" else (c.end_cause or "logout")
    for t in [t for t in s.tasks.values() if t.conn == c.id] + list(c.pings.values()):
        end_unanswered(d, s, t, frame, ts, outcome, cause, note)


def damage(d: Desk, c: Conn, direction: str) -> None:
    c.lossy = True
    for p in c.pings.values():
        p.damaged = True
    if direction == I2T:
        c.lossy_i2t = True
    else:
        c.statsn.reseed()
        if c.session is not None:
            # Responses that moved the command window may be in the hole: the window we know
            # is stale, so CmdSN checks wait for the next ExpCmdSN/MaxCmdSN (§4.2.2.1).
            c.session.window = CmdWindow()
    if c.session is not None:
        for t in c.session.tasks.values():
            if t.conn == c.id:
                t.damaged = True
                d.gap_tasks[(c.session.id, t.itt)] = t


#: ITTs remembered per connection as concluded in a gap (their late answers are not "unexpected")
GAP_ITTS_KEPT = 4096
#: how often (capture time) the gap tasks are checked for idleness
GAP_SWEEP_NS = NS


def release_gap_tasks(d: Desk, now: int) -> None:
    """Conclude open tasks whose evidence fell into a capture gap, so that lossy traffic cannot
    grow the task maps without bound: a damaged task (open when the capture lost data of its
    connection) is concluded as ``lost_in_capture_gap`` once it has been idle for
    ``gap_task_idle_ns`` of capture time while its target answered later PDUs, or, oldest first,
    when more than ``gap_task_limit`` such tasks are open. RFC 7143 has no task timeout; an
    initiator would have timed such a command out long before (a SCSI command timeout is tens of
    seconds), so the observer stops waiting too."""
    watch = d.gap_tasks
    while len(watch) > d.gap_task_limit:  # over the bound: the oldest first, at once
        key, t = next(iter(watch.items()))
        del watch[key]
        _conclude_gap_task(d, key, t, now, f"more than {d.gap_task_limit} such tasks were open")
    if now - d.last_gap_sweep < GAP_SWEEP_NS:
        return
    d.last_gap_sweep = now
    for key, t in list(watch.items()):
        c = d.conns.get(t.conn)
        idle = now - t.last_ts_ns
        if idle > d.gap_task_idle_ns and c is not None and c.last_t2i_frame > t.last_frame:
            del watch[key]
            _conclude_gap_task(d, key, t, now, f"idle {idle / NS:.0f} s while the target answered later PDUs")
        elif (s := d.sessions.get(key[0])) is None or s.tasks.get(t.itt) is not t:
            del watch[key]  # answered, ended, or its session forgotten


def _conclude_gap_task(d: Desk, key: tuple[str, int], t: Task, now: int, why: str) -> None:
    s = d.sessions.get(key[0])
    if s is None or s.tasks.get(t.itt) is not t:
        return  # answered or ended meanwhile
    end_unanswered(d, s, t, d.last_frame, now, "lost_in_capture_gap", "capture_gap",
                   f"its answer fell into a capture gap ({why})")
    c = d.conns.get(t.conn)
    if c is not None:
        c.gap_itts[t.itt] = None
        if len(c.gap_itts) > GAP_ITTS_KEPT:
            del c.gap_itts[next(iter(c.gap_itts))]


def dropped_on_request(d: Desk, c: Conn, frame: int, ts: int, rst: bool) -> None:
    """The target closes a connection right after one request it did not answer: its answer to it."""
    s = c.session
    if s is None or c.last_pdu_dir != I2T:
        return
    open_ = [t for t in s.tasks.values() if t.conn == c.id]
    if len(open_) != 1:
        return
    t = open_[0]
    if t.kind not in ("scsi", "text", "tmf", "nop") or c.last_t2i_frame >= t.first_frame or t.damaged:
        return
    if ts - t.start_ts_ns > NS:
        return
    name = {"scsi": t.cdb_name or "SCSI Command", "text": "Text Request", "tmf": "Task Management Request",
            "nop": "NOP-Out ping"}[t.kind]
    detail = (f"the target {'reset (RST)' if rst else 'closed (FIN)'} the connection "
              f"{(ts - t.start_ts_ns) / 1e6:.1f} ms after the {name} (ITT {t.itt:#x}, frame {t.first_frame}), "
              f"the only outstanding request, without answering it")
    if t.cmdsn_cause is not None:
        where = "below ExpCmdSN (stale)" if t.cmdsn_cause == "cmdsn_below_window" else "above MaxCmdSN"
        detail += (f": its CmdSN {t.cmdsn} was {where}, and RFC 7143 §4.2.2.1 says the target must silently "
                   f"ignore such a command, not drop the connection")
        rfc = "§4.2.2.1"
    elif t.kind == "text":
        detail += (": RFC 7143 §11.10 allows Text Requests in full feature phase; a target that cannot "
                   "handle one should answer it or reject it (§11.17)")
        rfc = "§11.10, §11.17"
    else:
        detail += " or sending a Reject (§11.17)"
        rfc = "§11.17"
    desk.deviation(d, c, s, frame, ts, "connection_dropped_on_request", rfc, detail, t.first_frame, itt=t.itt,
                    cid=c.cid)


def check_cmdsn(d: Desk, s: Session, pdu: Pdu, cmdsn: int) -> str | None:
    """§4.2.2.1: non-immediate CmdSN within [ExpCmdSN, MaxCmdSN], no reuse by another ITT.

    Returns "cmdsn_above_window" / "cmdsn_below_window" when the target must silently
    discard the command (its task becomes ``not_accepted`` unless it is answered anyway).
    """
    if pdu.immediate:
        return None
    prev = s.recent_cmdsn.get(cmdsn)
    cause = None
    if s.window.contains(cmdsn) is False and s.window.max is not None:
        cause = "cmdsn_above_window" if serial_gt(cmdsn, s.window.max) else "cmdsn_below_window"
    window = f"[ExpCmdSN {s.window.exp}, MaxCmdSN {s.window.max}]"
    if prev is not None and prev != pdu.itt:
        if cause == "cmdsn_below_window":  # a stale CmdSN: the window moved past it (§4.2.2.1)
            desk.seq_event(d, pdu, s, "cmdsn_out_of_window", s.window.exp, cmdsn,
                            f"CmdSN {cmdsn} below {window} (stale: already used by ITT {prev:#x})", pdu.itt)
        else:
            desk.seq_event(d, pdu, s, "cmdsn_duplicate", s.window.exp, cmdsn,
                            f"CmdSN {cmdsn} already used by ITT {prev:#x}", pdu.itt)
    elif prev is None and cause is not None:
        desk.seq_event(d, pdu, s, "cmdsn_out_of_window", s.window.exp, cmdsn, f"CmdSN {cmdsn} outside {window}",
                        pdu.itt)
    elif prev == pdu.itt:
        cause = None  # a retry keeps its CmdSN (§4.2.2.1)
    if prev is None:
        s.recent_cmdsn[cmdsn] = pdu.itt
        if len(s.recent_cmdsn) > CMDSN_HISTORY:
            del s.recent_cmdsn[next(iter(s.recent_cmdsn))]
    return cause


def new_task(d: Desk, s: Session, c: Conn, pdu: Pdu, kind: str, cmdsn: int | None, **kw: int) -> Task:
    old = s.tasks.get(pdu.itt)
    if old is not None:
        desk.seq_event(d, pdu, s, "itt_in_use", None, pdu.itt,
                        f"ITT {pdu.itt:#x} reused while task of kind {old.kind} is open", pdu.itt)
        emit_task(d, s, old, old.finish(pdu.frame, pdu.ts_ns, "failed",
                                           note="ITT reused while the task was open"))
    c.gap_itts.pop(pdu.itt, None)  # the ITT is in use again
    t = Task(s.id, c.id, pdu.itt, kind, pdu.first_frame, pdu.ts_ns, pdu.immediate, cmdsn, pdu.lun,
             last_frame=pdu.frame, last_ts_ns=pdu.ts_ns)
    for k, v in kw.items():
        setattr(t, k, v)
    s.tasks[pdu.itt] = t
    return t


def task_for(d: Desk, c: Conn, s: Session, pdu: Pdu, kind: str) -> Task | None:
    t = s.tasks.get(pdu.itt)
    if t is not None and (t.kind == kind or kind == "any"):
        t.touch(pdu.frame, pdu.ts_ns)
        return t
    if pdu.itt in c.gap_itts:  # a late answer of a task concluded as lost in a gap
        return None
    if c.mid_stream or c.lossy_i2t:
        if kind == "any":
            return None
        t = Task(s.id, c.id, pdu.itt, kind, pdu.first_frame, pdu.ts_ns, False, None, pdu.lun,
                 last_frame=pdu.frame, last_ts_ns=pdu.ts_ns, partial=True, damaged=True)
        s.tasks[pdu.itt] = t
        d.gap_tasks[(s.id, pdu.itt)] = t
        return t
    desk.seq_event(d, pdu, s, "unexpected_response", None, pdu.itt,
                    f"{PDU_NAMES[type(pdu).__name__]} for ITT {pdu.itt:#x}, which no open task has",
                    pdu.itt)
    return None
