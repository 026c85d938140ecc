"""Tasks: one per ITT, from the first request to the end (RFC 7143 §4.2.2, §11).

Theory of operation
-------------------
ITTs are unique per session (§11.2.1.8), so open tasks are keyed by (session, ITT); a
Logout for another CID may ride another connection. A SCSI task runs Command -> R2T* ->
Data-Out* -> Data-In* -> Data-In with S (status) or SCSI Response (§11.3-§11.8); login,
text, logout, TMF and NOP-Out pings are tasks too (their ITT is echoed in the response).
DataSN of Data-In counts from 0 over the whole command; R2TSN from 0 over the R2Ts; for a
bidirectional command both share one counter (§4.2.2.3). Data-Out DataSN restarts at 0
for every sequence: the unsolicited burst (TTT 0xffffffff) and each R2T's burst (keyed
by TTT). A finished task becomes a :class:`TaskRecord` and is evicted.

Name tables here are a minimal own copy; ``analyzer/iscsi/opcodes.py`` may replace them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analyzer.records import Sense
from analyzer.state.events import TaskRecord

#: SAM-5 status codes.
SCSI_STATUS = {0x00: "GOOD", 0x02: "CHECK CONDITION", 0x04: "CONDITION MET", 0x08: "BUSY",
               0x10: "INTERMEDIATE", 0x14: "INTERMEDIATE-CONDITION MET", 0x18: "RESERVATION CONFLICT",
               0x22: "COMMAND TERMINATED", 0x28: "TASK SET FULL", 0x30: "ACA ACTIVE", 0x40: "TASK ABORTED"}
#: §11.4.3
SCSI_RESPONSE = {0x00: "Command Completed at Target", 0x01: "Target Failure"}
#: §11.5.1
TMF_FUNCTION = {1: "ABORT TASK", 2: "ABORT TASK SET", 3: "CLEAR ACA", 4: "CLEAR TASK SET",
                5: "LOGICAL UNIT RESET", 6: "TARGET WARM RESET", 7: "TARGET COLD RESET", 8: "TASK REASSIGN",
                9: "QUERY TASK", 10: "QUERY TASK SET", 11: "I_T NEXUS RESET", 12: "QUERY ASYNCHRONOUS EVENT"}
#: §11.6.1
TMF_RESPONSE = {0: "Function complete", 1: "Task does not exist", 2: "LUN does not exist",
                3: "Task still allegiant", 4: "Task allegiance reassignment not supported",
                5: "Task management function not supported", 6: "Function authorization failed",
                255: "Function rejected"}
#: §11.14.1
LOGOUT_REASON = {0: "close the session", 1: "close the connection", 2: "remove the connection for recovery"}
#: §11.15.1
LOGOUT_RESPONSE = {0: "connection or session closed successfully", 1: "CID not found",
                   2: "connection recovery is not supported", 3: "cleanup failed for various reasons"}
#: §11.13.5 (class << 8 | detail)
LOGIN_STATUS = {0x0000: "Success", 0x0101: "Target moved temporarily", 0x0102: "Target moved permanently",
                0x0200: "Initiator error", 0x0201: "Authentication failure", 0x0202: "Authorization failure",
                0x0203: "Not found", 0x0204: "Target removed", 0x0205: "Unsupported version",
                0x0206: "Too many connections", 0x0207: "Missing parameter", 0x0208: "Can't include in session",
                0x0209: "Session type not supported", 0x020A: "Session does not exist",
                0x020B: "Invalid during login", 0x0300: "Target error", 0x0301: "Service unavailable",
                0x0302: "Out of resources"}
#: §11.17.1
REJECT_REASON = {0x02: "Data (payload) digest error", 0x03: "SNACK Reject", 0x04: "Protocol Error",
                 0x05: "Command not supported", 0x06: "Immediate command reject", 0x07: "Task in progress",
                 0x08: "Invalid data ack", 0x09: "Invalid PDU field", 0x0A: "Long op reject",
                 0x0B: "Deprecated", 0x0C: "Waiting for Logout"}
#: §11.9.1
ASYNC_EVENT = {0: "SCSI async event", 1: "request logout", 2: "will drop connection",
               3: "will drop all connections", 4: "request parameter negotiation", 5: "task termination"}


def login_status_name(status_class: int, status_detail: int) -> str:
    """Name of a Login Status-Class/Status-Detail pair (§11.13.5)."""
    return LOGIN_STATUS.get(status_class << 8 | status_detail, f"class {status_class:#x} detail {status_detail:#x}")


@dataclass(slots=True)
class DataOutSeq:
    """One Data-Out sequence: the unsolicited burst or one R2T's burst."""

    next_datasn: int = 0
    offset: int = 0  #: solicited range start (R2T BufferOffset)
    length: int | None = None  #: solicited length (R2T Desired Data Transfer Length); None = unsolicited
    received: int = 0


@dataclass(slots=True)
class Task:
    """An open task (mutable while open; frozen into a TaskRecord at the end)."""

    session: str | None
    conn: str
    itt: int
    kind: str
    first_frame: int
    start_ts_ns: int
    immediate: bool
    cmdsn: int | None
    lun: int | None
    last_frame: int = 0
    last_ts_ns: int = 0
    cdb_opcode: int | None = None
    cdb_name: str | None = None
    lba: int | None = None
    transfer_length: int | None = None
    read: bool = False
    write: bool = False
    edtl: int | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    immediate_bytes: int = 0
    unsolicited_bytes: int = 0
    r2t_count: int = 0
    data_in_pdus: int = 0
    data_out_pdus: int = 0
    next_datasn_in: int = 0  #: Data-In DataSN (shared with R2TSN for bidirectional commands)
    next_r2tsn: int = 0
    sequences: dict[int, DataOutSeq] = field(default_factory=dict)  #: TTT -> Data-Out sequence
    damaged: bool = False  #: a capture gap hit the connection while the task was open
    partial: bool = False
    logout_reason: int | None = None
    logout_cid: int | None = None
    tmf_function: int | None = None
    ref_task_tag: int | None = None
    ttt: int | None = None  #: target NOP-In ping: the TTT the initiator's NOP-Out must echo
    #: "cmdsn_above_window" / "cmdsn_below_window": the CmdSN was outside the window when sent (§4.2.2.1)
    cmdsn_cause: str | None = None
    after_logout: bool = False  #: sent after a Logout Request that closes its connection (§11.14)
    #: (TMF ITT, frame) of a TMF answered "task does not exist" for this task while it was open (§11.6.1)
    tmf_missing: tuple[int, int] | None = None
    target_frame: int | None = None  #: first target PDU for the task (R2T, Data-In): the target has it

    @property
    def bidi(self) -> bool:
        """Bidirectional command: R2T and Data-In share the DataSN counter (§4.2.2.3)."""
        return self.read and self.write

    def touch(self, frame: int, ts_ns: int) -> None:
        """Remember the latest PDU of the task."""
        self.last_frame = frame
        self.last_ts_ns = ts_ns

    def finish(self, frame: int, ts_ns: int, outcome: str, *, status: int | None = None,
               response: int | None = None, response_name: str | None = None, sense: Sense | None = None,
               overflow: bool = False, underflow: bool = False, residual: int | None = None,
               login_status: tuple[int, int] | None = None, reject_reason: int | None = None,
               note: str = "", aborted_by_itt: int | None = None, cause: str | None = None) -> TaskRecord:
        """Freeze the task into its record.

        ``not_accepted`` tasks were never a task at the target: their latency is 0 and their
        end is their start (the record's ``frame``/``ts_ns`` still say when we decided).
        """
        if outcome == "not_accepted":
            end = self.start_ts_ns
        else:
            if frame > self.last_frame:
                self.touch(frame, ts_ns)
            end = max(ts_ns, self.start_ts_ns)
        if response_name is None and response is not None:
            response_name = {"scsi": SCSI_RESPONSE, "tmf": TMF_RESPONSE, "logout": LOGOUT_RESPONSE}.get(
                self.kind, {}).get(response)
        return TaskRecord(
            frame, ts_ns, self.session, self.conn, self.itt, self.kind, outcome,
            self.first_frame, self.last_frame, self.start_ts_ns, end, end - self.start_ts_ns,
            self.immediate, self.cmdsn, self.lun,
            cdb_opcode=self.cdb_opcode, cdb_name=self.cdb_name, lba=self.lba,
            transfer_length=self.transfer_length, read=self.read, write=self.write, edtl=self.edtl,
            bytes_in=self.bytes_in, bytes_out=self.bytes_out, immediate_bytes=self.immediate_bytes,
            r2t_count=self.r2t_count, data_in_pdus=self.data_in_pdus, data_out_pdus=self.data_out_pdus,
            status=status, status_name=SCSI_STATUS.get(status) if status is not None else None,
            response=response, response_name=response_name,
            sense_key=sense.sense_key if sense else None, sense_key_name=sense.key_name if sense else None,
            asc=sense.asc if sense else None, ascq=sense.ascq if sense else None,
            asc_name=(sense.asc_name or None) if sense else None,
            residual_overflow=overflow, residual_underflow=underflow, residual=residual,
            login_status_class=login_status[0] if login_status else None,
            login_status_detail=login_status[1] if login_status else None,
            logout_reason=self.logout_reason, logout_cid=self.logout_cid,
            tmf_function=self.tmf_function,
            tmf_function_name=TMF_FUNCTION.get(self.tmf_function) if self.tmf_function is not None else None,
            ref_task_tag=self.ref_task_tag, reject_reason=reject_reason, partial=self.partial, note=note,
            aborted_by_itt=aborted_by_itt, ttt=self.ttt, unanswered_cause=cause,
        )


def scsi_outcome(response: int, status: int | None) -> str:
    """§11.4.2/§11.4.3: completed, check_condition or failed."""
    if response != 0:
        return "failed"
    if status in (0x00, 0x04, 0x10, 0x14):
        return "completed"
    if status == 0x02:
        return "check_condition"
    return "failed"
