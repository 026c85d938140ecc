"""Full feature phase PDUs (RFC 7143 §11.2-§11.11, §11.17-§11.19): requests from the initiator
and responses from the target, their sequence checks (StatSN §4.2.2.2, DataSN/R2TSN
§4.2.2.3, ExpDataSN §11.4.8, burst lengths §13.13/§13.14) and the task they open or finish.
"""

from __future__ import annotations

from analyzer.iscsi.opcodes import (
    reject_reason_name,
    tmf_function_name,
)
from analyzer.records import (
    R2T,
    RESERVED_TAG,
    AsyncMessage,
    DataIn,
    DataOut,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Pdu,
    Reject,
    ScsiCommand,
    ScsiResponse,
    Snack,
    TaskMgmtRequest,
    TaskMgmtResponse,
    TextRequest,
    TextResponse,
)
from analyzer.state import (
    connection,
    desk,
    logouts,
    machines,
    task_book,
    text_series,
)
from analyzer.state.books import (
    OPENING_OPCODE,
    PDU_NAMES,
    Conn,
    Session,
)
from analyzer.state.desk import Desk
from analyzer.state.events import (
    ConnectionParams,
)
from analyzer.state.negotiation import Negotiation
from analyzer.state.sequence import serial_add, serial_gt
from analyzer.state.tasks import (
    DataOutSeq,
    Task,
    scsi_outcome,
)


def request(d: Desk, c: Conn, s: Session, pdu: Pdu) -> None:
    inp = connection.classify_pdu(pdu, own_cid=c.cid, logout_for_self=True)
    new_task = isinstance(pdu, (ScsiCommand, TaskMgmtRequest)) or (
        isinstance(pdu, NopOut) and pdu.itt != RESERVED_TAG) or (
        isinstance(pdu, TextRequest) and pdu.itt not in s.tasks)
    if new_task and c.no_new_requests:
        desk.seq_event(d, pdu, s, "request_after_logout", None, None,
                        f"{PDU_NAMES[type(pdu).__name__]} {c.no_new_requests}", pdu.itt)
    cause = None
    if isinstance(pdu, (ScsiCommand, TaskMgmtRequest, TextRequest, LogoutRequest, NopOut)):
        cause = task_book.check_cmdsn(d, s, pdu, pdu.cmdsn)
    if isinstance(pdu, NopOut) and pdu.ttt != RESERVED_TAG:  # answers the target's NOP-In ping (§11.18)
        ping = c.pings.get(pdu.ttt)
        if ping is not None:
            task_book.emit_task(d, s, ping, ping.finish(pdu.frame, pdu.ts_ns, "completed"))
    if isinstance(pdu, ScsiCommand):
        scsi_command(d, c, s, pdu)
    elif isinstance(pdu, DataOut):
        data_out(d, c, s, pdu)
    elif isinstance(pdu, TaskMgmtRequest):
        task_book.new_task(d, s, c, pdu, "tmf", pdu.cmdsn, tmf_function=pdu.function, ref_task_tag=pdu.ref_task_tag)
    elif isinstance(pdu, NopOut):
        if pdu.itt != RESERVED_TAG:
            task_book.new_task(d, s, c, pdu, "nop", pdu.cmdsn)
    elif isinstance(pdu, TextRequest):
        t = s.tasks.get(pdu.itt)
        if t is None or t.kind != "text":
            task_book.new_task(d, s, c, pdu, "text", pdu.cmdsn)
            c.text_neg = Negotiation()
        else:
            t.touch(pdu.frame, pdu.ts_ns)
        if c.text_neg is None:
            c.text_neg = Negotiation()
        joined = text_series.ltds(d, c, s, pdu)
        if joined is not None:
            desk.issues(d, c, pdu, c.text_neg.feed("initiator", joined, ffp_text=True))
    elif isinstance(pdu, LogoutRequest):
        logouts.logout_request(d, c, s, pdu)
        return
    elif isinstance(pdu, Snack):
        pass
    if new_task and (t := s.tasks.get(pdu.itt)) is not None and t.first_frame == pdu.first_frame:
        t.cmdsn_cause = cause
        t.after_logout = bool(c.no_new_requests)
    if inp is not None and not machines.stays(c, inp):
        machines.conn_both(d, c, inp, pdu.frame, pdu.ts_ns, desk.events(pdu, PDU_NAMES[type(pdu).__name__]))


def scsi_command(d: Desk, c: Conn, s: Session, pdu: ScsiCommand) -> None:
    old = s.tasks.get(pdu.itt)
    if old is not None and old.kind == "scsi" and old.cmdsn == pdu.cmdsn:
        old.touch(pdu.frame, pdu.ts_ns)  # retry (§6.2.1): same ITT and CmdSN
        return
    t = task_book.new_task(d, s, c, pdu, "scsi", pdu.cmdsn)
    cdb = pdu.cdb
    t.cdb_opcode, t.cdb_name, t.lba, t.transfer_length = cdb.opcode, cdb.name, cdb.lba, cdb.transfer_length
    t.read, t.write, t.edtl = pdu.read, pdu.write, pdu.edtl
    t.immediate_bytes = t.bytes_out = t.unsolicited_bytes = pdu.dsl
    if pdu.dsl and s.params_known:
        if s.params.get("ImmediateData") == "No":
            desk.seq_event(d, pdu, s, "unsolicited_data_not_negotiated", 0, pdu.dsl,
                            "immediate data sent although ImmediateData=No (§13.11)", pdu.itt)
        fbl = s.param_int("FirstBurstLength")
        if fbl is not None and pdu.dsl > fbl:
            desk.seq_event(d, pdu, s, "burst_length_exceeded", fbl, pdu.dsl,
                            "immediate data exceeds FirstBurstLength (§13.14)", pdu.itt)
    if pdu.dsl and pdu.write and pdu.dsl > pdu.edtl:
        desk.seq_event(d, pdu, s, "r2t_overrun", pdu.edtl, pdu.dsl,
                        "immediate data beyond Expected Data Transfer Length", pdu.itt)


def data_out(d: Desk, c: Conn, s: Session, pdu: DataOut) -> None:
    t = s.tasks.get(pdu.itt)
    if t is None or t.kind != "scsi":
        return
    t.touch(pdu.frame, pdu.ts_ns)
    t.data_out_pdus += 1
    t.bytes_out += pdu.dsl
    seq = t.sequences.get(pdu.ttt)
    if seq is None:
        seq = t.sequences[pdu.ttt] = DataOutSeq()
    if not t.damaged and serial_gt(pdu.datasn, seq.next_datasn):
        desk.seq_event(d, pdu, s, "datasn_gap", seq.next_datasn, pdu.datasn,
                        f"Data-Out DataSN gap in the sequence of TTT {pdu.ttt:#x}", pdu.itt)
    if not serial_gt(seq.next_datasn, pdu.datasn):
        seq.next_datasn = serial_add(pdu.datasn, 1)
    end = pdu.buffer_offset + pdu.dsl
    if pdu.ttt == RESERVED_TAG:
        t.unsolicited_bytes += pdu.dsl
        if s.params_known:
            if s.params.get("InitialR2T") == "Yes" and seq.received == 0:
                desk.seq_event(d, pdu, s, "unsolicited_data_not_negotiated", 0, pdu.dsl,
                                "unsolicited Data-Out although InitialR2T=Yes (§13.10)", pdu.itt)
            fbl = s.param_int("FirstBurstLength")
            if fbl is not None and t.unsolicited_bytes > fbl >= t.unsolicited_bytes - pdu.dsl:
                desk.seq_event(d, pdu, s, "burst_length_exceeded", fbl, t.unsolicited_bytes,
                                "unsolicited data exceeds FirstBurstLength (§13.14)", pdu.itt)
    elif seq.length is not None and (pdu.buffer_offset < seq.offset or end > seq.offset + seq.length):
        desk.seq_event(d, pdu, s, "r2t_overrun", seq.offset + seq.length, end,
                        f"Data-Out [{pdu.buffer_offset}, {end}) outside the R2T's "
                        f"[{seq.offset}, {seq.offset + seq.length})", pdu.itt)
    seq.received += pdu.dsl
    if t.edtl is not None and end > t.edtl and t.write:
        desk.seq_event(d, pdu, s, "r2t_overrun", t.edtl, end, "Data-Out beyond Expected Data Transfer Length",
                        pdu.itt)
    if pdu.final:
        t.sequences.pop(pdu.ttt, None)


def advance_statsn(d: Desk, c: Conn, s: Session, pdu: Pdu, statsn: int, advancing: bool) -> None:
    gap = c.statsn.advance(statsn) if advancing else c.statsn.peek(statsn)
    if gap is not None:
        desk.seq_event(d, pdu, s, "statsn_gap", gap, statsn,
                        f"{PDU_NAMES[type(pdu).__name__]} StatSN {statsn}, expected {gap} (§4.2.2.2)",
                        pdu.itt)


def response(d: Desk, c: Conn, s: Session, pdu: Pdu) -> None:
    name = PDU_NAMES.get(type(pdu).__name__, "PDU")
    expcmdsn = getattr(pdu, "expcmdsn", None)
    maxcmdsn = getattr(pdu, "maxcmdsn", None)
    if isinstance(expcmdsn, int) and isinstance(maxcmdsn, int):
        s.window.update(expcmdsn, maxcmdsn)
    if isinstance(pdu, DataIn):
        data_in(d, c, s, pdu)
    elif isinstance(pdu, ScsiResponse):
        advance_statsn(d, c, s, pdu, pdu.statsn, True)
        scsi_response(d, c, s, pdu)
    elif isinstance(pdu, R2T):
        advance_statsn(d, c, s, pdu, pdu.statsn, False)
        r2t(d, c, s, pdu)
    elif isinstance(pdu, NopIn):
        advance_statsn(d, c, s, pdu, pdu.statsn, pdu.itt != RESERVED_TAG)
        if pdu.itt != RESERVED_TAG and (t := task_book.task_for(d, c, s, pdu, "nop")) is not None:
            task_book.emit_task(d, s, t, t.finish(pdu.frame, pdu.ts_ns, "completed"))
        elif pdu.itt == RESERVED_TAG and pdu.ttt != RESERVED_TAG:
            # §11.19: a target ping; the initiator's NOP-Out must echo the TTT (tracked on the connection)
            ping = c.pings.get(pdu.ttt)
            if ping is None:
                c.pings[pdu.ttt] = Task(s.id, c.id, RESERVED_TAG, "nop_in", pdu.first_frame, pdu.ts_ns, True,
                                        None, pdu.lun, last_frame=pdu.frame, last_ts_ns=pdu.ts_ns, ttt=pdu.ttt)
            else:
                ping.touch(pdu.frame, pdu.ts_ns)
    elif isinstance(pdu, TaskMgmtResponse):
        advance_statsn(d, c, s, pdu, pdu.statsn, True)
        tmf_response(d, c, s, pdu)
    elif isinstance(pdu, TextResponse):
        advance_statsn(d, c, s, pdu, pdu.statsn, True)
        text_response(d, c, s, pdu)
    elif isinstance(pdu, LogoutResponse):
        advance_statsn(d, c, s, pdu, pdu.statsn, True)
        logouts.logout_response(d, c, s, pdu)
        return
    elif isinstance(pdu, AsyncMessage):
        advance_statsn(d, c, s, pdu, pdu.statsn, True)
        logouts.async_message(d, c, s, pdu)
        return
    elif isinstance(pdu, Reject):
        advance_statsn(d, c, s, pdu, pdu.statsn, True)
        reject(d, c, s, pdu)
    inp = connection.classify_pdu(pdu, own_cid=c.cid, logout_for_self=True)
    if inp is not None and not machines.stays(c, inp):
        machines.conn_both(d, c, inp, pdu.frame, pdu.ts_ns, desk.events(pdu, name))


def data_in(d: Desk, c: Conn, s: Session, pdu: DataIn) -> None:
    if pdu.status_present and pdu.statsn is not None:
        advance_statsn(d, c, s, pdu, pdu.statsn, True)
    t = task_book.task_for(d, c, s, pdu, "scsi")
    if t is None:
        return
    if t.target_frame is None:
        t.target_frame = pdu.frame
    t.data_in_pdus += 1
    t.bytes_in += pdu.dsl
    check_datasn_in(d, s, t, pdu, pdu.datasn, "datasn_gap", "Data-In DataSN")
    if pdu.status_present:
        status = pdu.status if pdu.status is not None else 0
        answered_after_tmf(d, c, s, t, pdu)
        task_book.emit_task(d, s, t, t.finish(pdu.frame, pdu.ts_ns, scsi_outcome(0, status), status=status,
                                       response=0, overflow=pdu.overflow, underflow=pdu.underflow,
                                       residual=pdu.residual))


def answered_after_tmf(d: Desk, c: Conn, s: Session, t: Task, pdu: Pdu) -> None:
    if t.tmf_missing is None:
        return
    tmf_itt, tmf_frame = t.tmf_missing
    desk.deviation(d, c, s, pdu.frame, pdu.ts_ns, "tmf_response_inconsistent", "§11.6.1",
                    f"the target answered task ITT {t.itt:#x} (frame {pdu.frame}) after it had answered the "
                    f"ABORT TASK for it (TMF ITT {tmf_itt:#x}, frame {tmf_frame}) with 'Task does not exist'",
                    tmf_frame, itt=t.itt)


def check_datasn_in(d: Desk, s: Session, t: Task, pdu: Pdu, sn: int, kind: str, what: str) -> None:
    """§4.2.2.3: Data-In DataSN per command; R2TSN per command; shared for bidirectional commands."""
    shared = t.bidi or kind == "datasn_gap"
    expected = t.next_datasn_in if shared else t.next_r2tsn
    if sn != expected and serial_gt(sn, expected) and not t.damaged:
        desk.seq_event(d, pdu, s, kind, expected, sn, f"{what} {sn}, expected {expected}", pdu.itt)
    if not serial_gt(expected, sn):
        if shared:
            t.next_datasn_in = serial_add(sn, 1)
        else:
            t.next_r2tsn = serial_add(sn, 1)


def r2t(d: Desk, c: Conn, s: Session, pdu: R2T) -> None:
    t = task_book.task_for(d, c, s, pdu, "scsi")
    if t is None:
        return
    if t.target_frame is None:
        t.target_frame = pdu.frame
    t.r2t_count += 1
    check_datasn_in(d, s, t, pdu, pdu.r2tsn, "r2tsn_gap", "R2TSN")
    mbl = s.param_int("MaxBurstLength") if s.params_known else None
    if mbl is not None and pdu.desired_length > mbl:
        desk.seq_event(d, pdu, s, "burst_length_exceeded", mbl, pdu.desired_length,
                        "R2T Desired Data Transfer Length exceeds MaxBurstLength (§13.13)", pdu.itt)
    t.sequences[pdu.ttt] = DataOutSeq(offset=pdu.buffer_offset, length=pdu.desired_length)


def scsi_response(d: Desk, c: Conn, s: Session, pdu: ScsiResponse) -> None:
    t = task_book.task_for(d, c, s, pdu, "scsi")
    if t is None:
        return
    if pdu.response == 0 and not t.damaged and t.data_in_pdus:
        # §11.4.8: ExpDataSN = number of R2T and Data-In PDUs sent for the command.
        expected = t.data_in_pdus + t.r2t_count
        if pdu.expdatasn != expected:
            desk.seq_event(d, pdu, s, "expdatasn_mismatch", expected, pdu.expdatasn,
                            "SCSI Response ExpDataSN differs from the R2T + Data-In PDUs seen", pdu.itt)
    answered_after_tmf(d, c, s, t, pdu)
    task_book.emit_task(d, s, t, t.finish(pdu.frame, pdu.ts_ns, scsi_outcome(pdu.response, pdu.status),
                                   status=pdu.status if pdu.response == 0 else None, response=pdu.response,
                                   sense=pdu.sense, overflow=pdu.overflow, underflow=pdu.underflow,
                                   residual=pdu.residual if (pdu.overflow or pdu.underflow) else 0))


def tmf_response(d: Desk, c: Conn, s: Session, pdu: TaskMgmtResponse) -> None:
    t = task_book.task_for(d, c, s, pdu, "tmf")
    if t is None:
        return
    task_book.emit_task(d, s, t, t.finish(pdu.frame, pdu.ts_ns, "completed" if pdu.response == 0 else "failed",
                                   response=pdu.response))
    if pdu.response == 1 and t.tmf_function == 1 and t.ref_task_tag is not None:
        ref = s.tasks.get(t.ref_task_tag)
        if ref is not None and ref.kind == "scsi":
            # §11.6.1: "Task does not exist" for a task we see open: provisional, decided by what follows
            ref.tmf_missing = (t.itt, pdu.frame)
            if ref.target_frame is not None:
                desk.deviation(d, c, s, pdu.frame, pdu.ts_ns, "tmf_response_inconsistent", "§11.6.1",
                                f"the target answered ABORT TASK (TMF ITT {t.itt:#x}) for ITT {ref.itt:#x} with "
                                f"'Task does not exist' although it had already sent PDUs for that task "
                                f"(frame {ref.target_frame})", ref.first_frame, itt=ref.itt)
    if pdu.response != 0 or t.tmf_function is None:
        return
    # §11.5.1: tasks ended by the function (no SCSI Response follows for them).
    fn = t.tmf_function
    victims: list[Task] = []
    if fn == 1 and t.ref_task_tag is not None:
        v = s.tasks.get(t.ref_task_tag)
        victims = [v] if v is not None and v.kind == "scsi" else []
    elif fn in (2, 4, 5):
        victims = [v for v in s.tasks.values() if v.kind == "scsi" and v.lun == t.lun
                   and v.start_ts_ns <= t.start_ts_ns]
    elif fn in (6, 7):
        victims = [v for v in s.tasks.values() if v.kind == "scsi" and v.start_ts_ns <= t.start_ts_ns]
    for v in victims:
        task_book.emit_task(d, s, v, v.finish(pdu.frame, pdu.ts_ns, "aborted",
                                       note=f"{tmf_function_name(fn)} by TMF ITT {t.itt:#x}",
                                       aborted_by_itt=t.itt, cause="task_management"))


def text_response(d: Desk, c: Conn, s: Session, pdu: TextResponse) -> None:
    t = task_book.task_for(d, c, s, pdu, "text")
    if c.text_neg is None:
        c.text_neg = Negotiation()
    joined = text_series.ltds(d, c, s, pdu)
    if joined is not None:
        desk.issues(d, c, pdu, c.text_neg.feed("target", joined, ffp_text=True))
    if not pdu.final or pdu.cont:
        return
    text_series.ltds_end(d, c, pdu, "the target ended the Text exchange with its final response")
    neg, c.text_neg = c.text_neg, None
    for name in neg.discovered_targets:
        if len(s.discovered_targets) < 1000 and name not in s.discovered_targets:
            s.discovered_targets.append(name)
    if t is not None:
        task_book.emit_task(d, s, t, t.finish(pdu.frame, pdu.ts_ns, "completed"))
    mi = neg.declared["initiator"].get("MaxRecvDataSegmentLength")
    mt = neg.declared["target"].get("MaxRecvDataSegmentLength")
    if (mi or mt) and c.params_known:
        new_i = neg.max_recv_dsl("initiator") if mi else c.mrdsl_initiator
        new_t = neg.max_recv_dsl("target") if mt else c.mrdsl_target
        if (new_i, new_t) != (c.mrdsl_initiator, c.mrdsl_target):
            c.mrdsl_initiator, c.mrdsl_target = new_i, new_t
            for side, v in (("initiator", new_i), ("target", new_t)):
                if v is not None:
                    c.params[f"MaxRecvDataSegmentLength_{side}"] = str(v)
            d.out.append(ConnectionParams(pdu.frame, pdu.ts_ns, c.id, c.header_digest.crc32c,
                                          c.data_digest.crc32c, new_i, new_t, c.header_digest.source,
                                          c.data_digest.source))


def reject(d: Desk, c: Conn, s: Session, pdu: Reject) -> None:
    itt = pdu.rejected_itt
    if itt is None or itt == RESERVED_TAG:
        return
    t = s.tasks.get(itt)
    if t is not None and OPENING_OPCODE.get(t.kind) == pdu.rejected_opcode:
        task_book.emit_task(d, s, t, t.finish(pdu.frame, pdu.ts_ns, "rejected", reject_reason=pdu.reason,
                                       response_name=reject_reason_name(pdu.reason)))
