"""The diagnosis layer's output records (house style §2): immutable rows, one class per table.

Each class has a ``COLUMNS`` tuple (the table's column order for CSV, JSON lines, Parquet)
and ``as_row()`` returning a plain dict of those columns (tuples kept as tuples; the front end
decides how to render them). Times are integer nanoseconds (``*_ts_ns``) or milliseconds as
floats (``*_ms``) for durations.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, ClassVar

from analyzer.records import Record, record


class _Row:
    COLUMNS: ClassVar[tuple[str, ...]] = ()

    def as_row(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in self.COLUMNS}


def _columns(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


@record
class DropCause(Record, _Row):
    """Why one connection ended without a clean logout (see ``analyzer.diagnosis.causes``)."""

    conn: str
    session: str | None
    initiator: str  #: InitiatorName, or the initiator address when the login is not in the capture
    target: str  #: TargetName, or the portal
    initiator_address: str
    portal: str  #: target "ip:port"
    cause: str  #: a key of CAUSES
    confidence: str  #: "high", "medium" or "low"
    ended_by: str  #: what ended it on the wire: "fin_target", "rst_initiator", "timeout", "capture_end", ...
    evidence: tuple[int, ...]  #: evidence frame numbers
    explanation: str  #: one or two plain sentences
    silence_i2t_ms: float | None  #: time from the initiator's last PDU to the end
    silence_t2i_ms: float | None  #: time from the target's last PDU to the end
    lost_commands: int  #: SCSI commands open on the connection when it ended
    initiator_log: str  #: what the common initiators log for this cause (docs/initiator-messages.md)


@record
class Recovery(Record, _Row):
    """How long I/O from one initiator to one target stopped around a drop (``frame``/``ts_ns``: the drop)."""

    conn: str
    session: str | None
    initiator: str
    target: str
    cause: str
    last_completed_frame: int | None  #: last command completed before the drop (same initiator and target)
    last_completed_ts_ns: int | None
    first_completed_frame: int | None  #: first command completed after the drop
    first_completed_ts_ns: int | None
    resumed_session: str | None
    resumed_conn: str | None
    resumed_via: str  #: "same_session", "reinstated_session", "new_session", "other_path", "never"
    io_stopped_ms: float | None  #: first_completed - last_completed; None when I/O never resumed
    lost_commands: int
    retried_commands: int  #: lost commands seen again (same LUN, LBA, length, opcode) after the drop


@record
class PathSummary(Record, _Row):
    """One path: an initiator address to a target portal, for one initiator-target pair."""

    initiator: str
    target: str
    initiator_address: str
    portal: str
    sessions: tuple[str, ...]
    connections: int
    first_up_ts_ns: int | None
    up_ms: float
    down_ms: float
    down_intervals: int
    drops: int
    never_came_back: bool  #: the path's last session dropped and no session came back on it
    duplicate_sessions: tuple[str, ...]  #: sessions in full feature phase at the same time on this path


@record
class PathInterval(Record, _Row):
    """An up or down interval of one path (``frame``/``ts_ns``: its start)."""

    initiator: str
    target: str
    initiator_address: str
    portal: str
    state: str  #: "up" or "down"
    start_ts_ns: int
    end_ts_ns: int
    duration_ms: float
    sessions: tuple[str, ...]  #: sessions in full feature phase during an up interval
    cause: str | None  #: drop cause that began a down interval
    until_capture_end: bool


@record
class QueueStats(Record, _Row):
    """Outstanding SCSI commands and the CmdSN window of one session (RFC 7143 §4.2.2.1)."""

    session: str
    initiator: str
    target: str
    commands: int
    depth_p50: int  #: time-weighted: half of the session's active time had at most this many outstanding
    depth_p95: int
    depth_max: int
    depth_mean: float
    window_min: int | None  #: smallest MaxCmdSN - ExpCmdSN + 1 the target granted
    window_max: int | None
    window_exhausted: int  #: times the initiator used the whole window (next CmdSN > MaxCmdSN)
    window_exhausted_ms: float  #: total time the window stayed exhausted
    window_exhausted_max_ms: float
    window_shrinks: int  #: times the target made the window smaller


@record
class NopPing(Record, _Row):
    """One NOP ping (§11.18/§11.19): an initiator NOP-Out with an ITT, or a target NOP-In with a TTT."""

    conn: str
    session: str | None
    pinger: str  #: "initiator" or "target"
    tag: int  #: ITT (initiator ping) or TTT (target ping)
    reply_frame: int | None
    rtt_ms: float | None
    outcome: str  #: "answered", "unanswered_at_drop", "unanswered_at_capture_end"


@record
class LoginDiagnosis(Record, _Row):
    """A failed login explained; ``diff`` compares it key by key with a good login of the same pair."""

    conn: str
    session: str | None
    initiator: str
    target: str
    stage: str  #: "security", "operational", "transport" (closed before a final answer)
    status: str  #: "0x0201"
    status_name: str
    explanation: str
    check: str  #: what to check next
    compared_conn: str | None  #: the succeeding login used for the diff
    compared_frame: int | None
    #: (side, key, failing value, succeeding value): side "initiator" or "target"; None = key absent
    diff: tuple[tuple[str, str, str | None, str | None], ...]


@record
class ConnectionStats(Record, _Row):
    """Per-connection transport statistics, in the spirit of Zeek's conn.log (``frame``/``ts_ns``: its start)."""

    conn: str
    session: str | None
    initiator_address: str
    portal: str
    duration_ms: float
    bytes_i2t: int  #: iSCSI PDU bytes (BHS, AHS, digests, data and padding) initiator to target
    bytes_t2i: int
    pdus_i2t: int
    pdus_t2i: int
    retransmitted_bytes_i2t: int
    retransmitted_bytes_t2i: int
    retransmissions: int
    missing_bytes_i2t: int  #: bytes the capture lost (TCP gaps), not counting snap-length cuts
    missing_bytes_t2i: int
    snaplen_bytes: int  #: bytes cut by the capture's snap length
    zero_windows_i2t: int  #: zero-window episodes advertised by the initiator
    zero_windows_t2i: int
    handshake_rtt_ms: float | None  #: None: TcpOpened carries no SYN / SYN-ACK times (a tcp-layer fact to add)
    ended: str
    history: str  #: "SYN 0.000 > login 0.000 > FFP 0.001 > FIN(t) 1.053 > FIN(i) 1.054"


for _cls in (DropCause, Recovery, PathSummary, PathInterval, QueueStats, NopPing, LoginDiagnosis, ConnectionStats):
    _cls.COLUMNS = _columns(_cls)
