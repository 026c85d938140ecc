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

Names of codes come from the one table per code in ``analyzer/iscsi/opcodes.py`` (SCSI status:
``analyzer/iscsi/scsi.py``), the tables every layer uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from analyzer.iscsi.opcodes import (
    logout_response_name,
    scsi_response_name,
    tmf_function_name,
    tmf_response_name,
)
from analyzer.iscsi.scsi import status_name
from analyzer.records import Sense
from analyzer.state.events import TaskRecord

#: task kind -> name of its response code
_RESPONSE_NAMES: dict[str, Callable[[int], str]] = {
    "scsi": scsi_response_name, "tmf": tmf_response_name, "logout": logout_response_name}


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
            namer = _RESPONSE_NAMES.get(self.kind)
            response_name = namer(response) if namer is not None else None
        return TaskRecord(
            frame, ts_ns, self.session, self.conn, self.itt, self.kind, outcome,
            self.first_frame, self.last_frame, self.start_ts_ns, end, end - self.start_ts_ns,
            self.immediate, self.cmdsn, self.lun,
            cdb_opcode=self.cdb_opcode, cdb_name=self.cdb_name, lba=self.lba,
            transfer_length=self.transfer_length, read=self.read, write=self.write, edtl=self.edtl,
            bytes_in=self.bytes_in, bytes_out=self.bytes_out, immediate_bytes=self.immediate_bytes,
            r2t_count=self.r2t_count, data_in_pdus=self.data_in_pdus, data_out_pdus=self.data_out_pdus,
            status=status, status_name=status_name(status) if status is not None else None,
            response=response, response_name=response_name,
            sense_key=sense.sense_key if sense else None, sense_key_name=sense.key_name if sense else None,
            asc=sense.asc if sense else None, ascq=sense.ascq if sense else None,
            asc_name=(sense.asc_name or None) if sense else None,
            residual_overflow=overflow, residual_underflow=underflow, residual=residual,
            login_status_class=login_status[0] if login_status else None,
            login_status_detail=login_status[1] if login_status else None,
            logout_reason=self.logout_reason, logout_cid=self.logout_cid,
            tmf_function=self.tmf_function,
            tmf_function_name=tmf_function_name(self.tmf_function) if self.tmf_function is not None else None,
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
