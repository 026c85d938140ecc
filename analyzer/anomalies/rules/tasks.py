"""Task findings (RFC 7143 §11.3-§11.8, §11.17-§11.19; SPC-4 sense data).

Kinds: check_condition, scsi_status, task_management, task_unanswered, task_slow,
nop_unanswered, reject.
"""

from __future__ import annotations

import bisect
from collections import Counter, deque
from dataclasses import dataclass

from analyzer.anomalies.context import FFP_STATES, NS, Context, secs
from analyzer.anomalies.rules.base import Handler, Rule
from analyzer.iscsi.opcodes import (
    opcode_name,
    reject_reason_name,
    scsi_response_name,
    tmf_function_name,
    tmf_response_name,
)
from analyzer.iscsi.scsi import asc_name, sense_key_name, status_name
from analyzer.records import I2T, RESERVED_TAG, T2I, NopIn, NopOut, Reject, TcpClosed, TcpFin, TcpRst
from analyzer.state.events import TaskRecord

#: a UNIT ATTENTION within this time of the session's login is expected (reset/login UA): info
UA_AFTER_LOGIN_NS = 60 * NS
#: tasks open at capture end are reported once they have waited this long
UNANSWERED_MIN_WAIT_NS = 1 * NS
#: a NOP ping unanswered this long is reported
NOP_TIMEOUT_NS = 5 * NS
#: task_slow: peers needed, window of peers kept, factors and floor
SLOW_MIN_PEERS = 20
SLOW_MAX_PEERS = 2000
SLOW_MEDIAN_FACTOR = 10
SLOW_P99_FACTOR = 3
SLOW_FLOOR_NS = 1 * NS

#: SCSI operation codes initiators send to probe capabilities; ILLEGAL REQUEST on them is routine
PROBING_OPCODES = frozenset({
    0x03,  # REQUEST SENSE
    0x12,  # INQUIRY (unsupported VPD pages)
    0x1A,  # MODE SENSE(6)
    0x1C,  # RECEIVE DIAGNOSTIC RESULTS
    0x43,  # READ TOC/PMA/ATIP
    0x46,  # GET CONFIGURATION
    0x4A,  # GET EVENT STATUS NOTIFICATION
    0x4D,  # LOG SENSE
    0x51,  # READ DISC INFORMATION
    0x5A,  # MODE SENSE(10)
    0x5E,  # PERSISTENT RESERVE IN
    0x8C,  # READ ATTRIBUTE
    0x9E,  # SERVICE ACTION IN(16) (READ CAPACITY(16), GET LBA STATUS)
    0xA0,  # REPORT LUNS
    0xA2,  # SECURITY PROTOCOL IN
    0xA3,  # MAINTENANCE IN (REPORT SUPPORTED OPERATION CODES, ...)
    0xAD,  # READ DVD STRUCTURE
    0xB8,  # READ ELEMENT STATUS (sent to drives that are not changers)
})
_TEST_UNIT_READY = 0x00

_ILLEGAL_REQUEST, _UNIT_ATTENTION, _NOT_READY = 0x5, 0x6, 0x2
_INFO_KEYS = frozenset({0x0, 0x1, 0x8, 0xD, 0xF})  # NO SENSE, RECOVERED, BLANK CHECK, VOLUME OVERFLOW, COMPLETED
_ERROR_KEYS = frozenset({0x3, 0x4})  # MEDIUM ERROR, HARDWARE ERROR
#: statuses that are not failures (§11.4.2 / SAM-5)
_GOOD = frozenset({0x00, 0x04, 0x10, 0x14})


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _op(t: TaskRecord) -> str:
    if t.kind == "scsi":
        return t.cdb_name or (f"operation 0x{t.cdb_opcode:02x}" if t.cdb_opcode is not None else "SCSI command")
    if t.kind == "tmf":
        return tmf_function_name(t.tmf_function) if t.tmf_function is not None else "task management"
    return {"text": "Text Request", "nop": "NOP-Out ping", "logout": "Logout", "login": "Login"}.get(t.kind, t.kind)


def _lun(t: TaskRecord) -> str:
    return f" on LUN {t.lun}" if t.lun is not None else ""


@dataclass(slots=True)
class _Peers:
    sorted_ns: list[int]
    order: deque[int]


class TaskRule(Rule):
    """check_condition, scsi_status, task_management, task_unanswered, task_slow."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._aborted: dict[tuple[str | None, int], list[TaskRecord]] = {}
        self._open_groups: dict[tuple[str, str, int], list[TaskRecord]] = {}
        self._peers: dict[tuple[object, ...], _Peers] = {}

    def handlers(self) -> dict[type, Handler]:
        return {TaskRecord: self.task}

    def forget(self, sid: str | None, conns: frozenset[str]) -> None:
        if self._aborted and sid is not None:
            for key in [k for k in self._aborted if k[0] == sid]:
                del self._aborted[key]
        if self._open_groups and conns:
            for gkey in [k for k in self._open_groups if k[0] in conns]:
                del self._open_groups[gkey]

    def task(self, t: TaskRecord) -> None:
        kind, outcome = t.kind, t.outcome
        if outcome in ("open_at_conn_drop", "open_at_capture_end"):
            if kind in ("scsi", "tmf", "text"):
                key = (t.conn, outcome, t.frame if outcome == "open_at_conn_drop" else 0)
                group = self._open_groups.get(key)
                if group is None:
                    group = self._open_groups[key] = []
                    self.ctx.defer(lambda: self._unanswered(key))
                group.append(t)
            return
        if kind == "scsi":
            if outcome == "aborted":
                self._aborted.setdefault((t.session, t.frame), []).append(t)
                return
            if outcome == "check_condition":
                self._check_condition(t)
            elif outcome == "failed":
                self._scsi_status(t)
            if outcome in ("completed", "check_condition", "failed") and not t.partial:
                self._slow(t)
        elif kind == "tmf" and outcome in ("completed", "failed") and t.response is not None:
            self.ctx.defer(lambda: self._tmf(t))

    # ---------------------------------------------------------------- SCSI status

    def _check_condition(self, t: TaskRecord) -> None:
        ctx = self.ctx
        op, key, asc, ascq = _op(t), t.sense_key, t.asc, t.ascq
        if key is None:
            ctx.emit("check_condition", t.first_frame, t.start_ts_ns,
                     f"{op}{_lun(t)} ended with CHECK CONDITION without sense data.", session=t.session,
                     conn=t.conn, frames=[t.first_frame, t.frame], severity="warning",
                     limit_key=(t.session, t.lun, t.cdb_opcode, None), limit=3)
            return
        asc = asc or 0
        ascq = ascq or 0
        kname = t.sense_key_name or sense_key_name(key)
        aname = t.asc_name or asc_name(asc, ascq)
        sense = f"{kname}, {aname}" if aname else kname
        sev = "warning"
        note = ""
        if key in _ERROR_KEYS:
            sev = "error"
        elif key in _INFO_KEYS:
            sev = "info"
        elif key == _UNIT_ATTENTION:
            s = ctx.sessions.get(t.session) if t.session else None
            login_ts = s.logged_in_ts if s is not None else None
            if asc == 0x28:
                sev, note = "info", " (expected after a medium change)"
            elif login_ts is not None and 0 <= t.start_ts_ns - login_ts <= UA_AFTER_LOGIN_NS:
                sev, note = "info", f" ({secs(t.start_ts_ns - login_ts)} after login: expected once per I_T nexus)"
        elif key == _ILLEGAL_REQUEST:
            if asc == 0x20 or (asc == 0x24 and t.cdb_opcode in PROBING_OPCODES):
                sev, note = "info", " (the initiator probing for a capability the device lacks)"
        elif key == _NOT_READY and (t.cdb_opcode == _TEST_UNIT_READY or asc == 0x3A or (asc, ascq) == (0x04, 0x01)):
            sev = "info"
        ctx.emit("check_condition", t.first_frame, t.start_ts_ns,
                 f"{op}{_lun(t)} ended with CHECK CONDITION: {sense} (ASC/ASCQ 0x{asc:02x}/0x{ascq:02x}){note}.",
                 session=t.session, conn=t.conn, frames=[t.first_frame, t.frame], severity=sev,
                 limit_key=(t.session, t.lun, t.cdb_opcode, key, asc, ascq), limit=3)

    def _scsi_status(self, t: TaskRecord) -> None:
        if t.response is not None and t.response != 0:
            what, sev = f"the target reported '{scsi_response_name(t.response)}'", "error"
        elif t.status is not None and t.status not in _GOOD and t.status != 0x02:
            what, sev = f"status {t.status_name or status_name(t.status)}", "warning"
        else:
            return
        self.ctx.emit("scsi_status", t.first_frame, t.start_ts_ns, f"{_op(t)}{_lun(t)} failed: {what}.",
                      session=t.session, conn=t.conn, frames=[t.first_frame, t.frame], severity=sev,
                      limit_key=(t.session, t.lun, t.cdb_opcode, t.status, t.response), limit=3)

    # ---------------------------------------------------------------- task management

    def _tmf(self, t: TaskRecord) -> None:
        fn = tmf_function_name(t.tmf_function) if t.tmf_function is not None else "Task management function"
        resp = tmf_response_name(t.response) if t.response is not None else "no response"
        ref = (f" for ITT 0x{t.ref_task_tag:x}" if t.tmf_function in (1, 8, 9) and t.ref_task_tag is not None
               and t.ref_task_tag != RESERVED_TAG else "")
        victims = self._aborted.pop((t.session, t.frame), [])
        mine = [v for v in victims if v.aborted_by_itt == t.itt]
        aborted = f"; {_plural(len(mine), 'task')} aborted" if mine else ""
        self.ctx.emit("task_management", t.first_frame, t.start_ts_ns,
                      f"{fn}{_lun(t)}{ref} answered '{resp}' after {secs(t.latency_ns)}{aborted}.",
                      session=t.session, conn=t.conn, frames=[t.first_frame, t.frame] + [v.first_frame for v in mine],
                      severity="info" if t.response == 0 else "warning")

    # ---------------------------------------------------------------- unanswered

    def _unanswered(self, key: tuple[str, str, int]) -> None:
        tasks = self._open_groups.pop(key, [])
        conn, outcome, _ = key
        if outcome == "open_at_capture_end":
            tasks = [t for t in tasks if t.latency_ns >= UNANSWERED_MIN_WAIT_NS]
        if not tasks:
            return
        ops = Counter(f"{_op(t)}{_lun(t)}" for t in tasks)
        what = ", ".join(f"{name} x{n}" if n > 1 else name for name, n in ops.most_common(6))
        if len(ops) > 6:
            what += ", ..."
        waits = sorted(t.latency_ns for t in tasks)
        wait = secs(waits[0]) if waits[0] == waits[-1] else f"{secs(waits[0])} to {secs(waits[-1])}"
        n = len(tasks)
        when = "before the connection dropped" if outcome == "open_at_conn_drop" else "by the end of the capture"
        closed = self.ctx.conn(conn).closed_by
        if closed is not None and outcome == "open_at_conn_drop" and all(t.first_frame > closed[2] for t in tasks):
            when = (f"because {'it was' if len(tasks) == 1 else 'they were'} sent after the {closed[0]} had "
                    f"{'reset' if closed[1] == 'RST' else 'closed'} the connection ({closed[1]}, frame {closed[2]})")
        itts = ", ".join(f"0x{t.itt:x}" for t in tasks[:8]) + (", ..." if n > 8 else "")
        first = min(tasks, key=lambda t: t.first_frame)
        self.ctx.emit("task_unanswered", first.first_frame, first.start_ts_ns,
                      f"{_plural(n, 'task')} got no response {when} ({what}; ITT {itts}); "
                      f"{'it' if n == 1 else 'they'} had waited {wait}.",
                      session=first.session, conn=conn, frames=[t.first_frame for t in tasks])

    # ---------------------------------------------------------------- slow

    def _slow(self, t: TaskRecord) -> None:
        server = self.ctx.conn(t.conn).server
        key = (server, t.lun, t.cdb_opcode)
        p = self._peers.get(key)
        if p is None:
            p = self._peers[key] = _Peers([], deque())
        lat = t.latency_ns
        n = len(p.sorted_ns)
        if n >= SLOW_MIN_PEERS:
            median = p.sorted_ns[n // 2]
            p99 = p.sorted_ns[min(n - 1, -(-99 * n // 100) - 1)]
            limit = max(SLOW_MEDIAN_FACTOR * median, SLOW_P99_FACTOR * p99, SLOW_FLOOR_NS)
            if lat > limit:
                self.ctx.emit("task_slow", t.first_frame, t.start_ts_ns,
                              f"{_op(t)}{_lun(t)} took {secs(lat)}, against a median of {secs(median)} and a p99 of "
                              f"{secs(p99)} over its last {n} peers (same portal, LUN and operation).",
                              session=t.session, conn=t.conn, frames=[t.first_frame, t.frame],
                              limit_key=key, limit=10)
        bisect.insort(p.sorted_ns, lat)
        p.order.append(lat)
        if len(p.order) > SLOW_MAX_PEERS:
            old = p.order.popleft()
            del p.sorted_ns[bisect.bisect_left(p.sorted_ns, old)]

    def finish(self, ts_ns: int) -> None:
        for key in list(self._open_groups):
            self._unanswered(key)
        self._aborted.clear()


@dataclass(slots=True)
class _Ping:
    conn: str
    pinger: str  #: "initiator" (NOP-Out with ITT) or "target" (NOP-In with TTT)
    tag: int
    frame: int
    ts: int


class NopRule(Rule):
    """nop_unanswered: pings in both directions (§11.18, §11.19)."""

    timed = True

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._pending: dict[tuple[str, str, int], _Ping] = {}

    def handlers(self) -> dict[type, Handler]:
        return {NopOut: self.nop_out, NopIn: self.nop_in, TcpFin: self.closed, TcpRst: self.closed,
                TcpClosed: self.closed}

    def forget(self, sid: str | None, conns: frozenset[str]) -> None:
        if self._pending and conns:
            for key in [k for k in self._pending if k[0] in conns]:
                del self._pending[key]

    def nop_out(self, pdu: NopOut) -> None:
        if pdu.ttt != RESERVED_TAG:
            self._pending.pop((pdu.conn, "target", pdu.ttt), None)
        if pdu.itt != RESERVED_TAG:
            self._pending[(pdu.conn, "initiator", pdu.itt)] = _Ping(pdu.conn, "initiator", pdu.itt, pdu.frame,
                                                                    pdu.ts_ns)

    def nop_in(self, pdu: NopIn) -> None:
        if pdu.itt != RESERVED_TAG:
            self._pending.pop((pdu.conn, "initiator", pdu.itt), None)
        elif pdu.ttt != RESERVED_TAG:
            self._pending[(pdu.conn, "target", pdu.ttt)] = _Ping(pdu.conn, "target", pdu.ttt, pdu.frame, pdu.ts_ns)

    def closed(self, rec: TcpFin | TcpRst | TcpClosed) -> None:
        if any(k[0] == rec.conn for k in self._pending):
            self.ctx.defer(lambda: self._close(rec.conn, rec.ts_ns, rec.frame))

    def _close(self, conn: str, ts: int, frame: int) -> None:
        c = self.ctx.conn(conn)
        pending = [p for k, p in self._pending.items() if k[0] == conn]
        for p in pending:
            del self._pending[(p.conn, p.pinger, p.tag)]
        # A ping still open at a clean logout is moot; report only on dropped/live connections.
        if c.state["target"] not in FFP_STATES and c.state["target"] != "CLEANUP_WAIT":
            return
        for p in pending:
            self._report(p, f"before the connection closed ({secs(max(0, ts - p.ts))} later)", frame)

    def _report(self, p: _Ping, why: str, frame: int | None = None) -> None:
        answer_dir = T2I if p.pinger == "initiator" else I2T
        if self.ctx.loss_since(p.conn, answer_dir, p.ts):
            return  # the answer may be in data the capture lost
        if p.pinger == "initiator":
            what = f"The initiator's NOP-Out ping (ITT 0x{p.tag:x}) got no NOP-In from the target"
        else:
            what = f"The target's NOP-In ping (TTT 0x{p.tag:x}) got no NOP-Out from the initiator"
        self.ctx.emit("nop_unanswered", p.frame, p.ts, f"{what} {why}.", conn=p.conn,
                      frames=[p.frame] + ([frame] if frame else []), limit_key=(p.conn,), limit=10)

    def on_time(self, now: int) -> None:
        if not self._pending:
            return
        for key, p in list(self._pending.items()):
            if now - p.ts <= NOP_TIMEOUT_NS:
                break
            del self._pending[key]
            self._report(p, f"within {secs(NOP_TIMEOUT_NS)}")

    def finish(self, ts_ns: int) -> None:
        now = max(ts_ns, self.ctx.now)
        for p in list(self._pending.values()):
            if now - p.ts >= NOP_TIMEOUT_NS:
                self._report(p, f"by the end of the capture ({secs(now - p.ts)} later)")
        self._pending.clear()


class RejectRule(Rule):
    """reject."""

    def handlers(self) -> dict[type, Handler]:
        return {Reject: self.reject}

    def reject(self, pdu: Reject) -> None:
        what = opcode_name(pdu.rejected_opcode) if pdu.rejected_opcode is not None else "PDU"
        itt = (f" (ITT 0x{pdu.rejected_itt:x})" if pdu.rejected_itt is not None and pdu.rejected_itt != RESERVED_TAG
               else "")
        self.ctx.emit("reject", pdu.frame, pdu.ts_ns,
                      f"The target rejected a {what}{itt}: {reject_reason_name(pdu.reason)}.", conn=pdu.conn,
                      limit_key=(pdu.conn, pdu.reason), limit=10)
