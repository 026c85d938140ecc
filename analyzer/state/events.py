"""Output records of the state layer (house style §2: records are the only currency).

Every record subclasses :class:`analyzer.records.Record`, so ``frame`` and ``ts_ns`` come
first and any row can be traced back to a Wireshark frame. ``session`` is the tracker's
short stable session id ("s1", "s2", ...) or ``None`` while a connection is not yet tied
to a session (TCP set-up, first Login Request of a capture that began mid-stream).

State names are spelled exactly as RFC 7143 §8 spells them (FREE, XPT_WAIT, XPT_UP,
IN_LOGIN, LOGGED_IN, IN_LOGOUT, LOGOUT_REQUESTED, CLEANUP_WAIT, IN_CLEANUP; session FREE,
ACTIVE, LOGGED_IN, FAILED, IN_CONTINUE) plus the non-RFC ``UNKNOWN`` for a machine whose
capture began mid-stream.
"""

from __future__ import annotations

from dataclasses import field

from analyzer.records import Record, record

#: Machines that emit :class:`Transition` / :class:`Violation`.
MACHINES = ("connection", "cleanup", "session")
#: The two endpoints whose state a passive observer infers.
SIDES = ("initiator", "target")


@record
class Transition(Record):
    """A state change of one machine, for one side (RFC 7143 §8)."""

    session: str | None
    conn: str | None  #: None for session-machine transitions
    machine: str  #: "connection", "cleanup" or "session"
    side: str  #: "initiator" or "target"
    from_state: str
    to_state: str
    label: str | None  #: "T5", "M1", "N3"; None for a placement out of UNKNOWN (not an RFC transition)
    event: str  #: the observed (or inferred) input, in words
    inferred: bool  #: True when the input was not seen on the wire (timeouts, mid-stream placement, ...)


@record
class Violation(Record):
    """An input the machine's table does not allow in its current state; the machine stays put."""

    session: str | None
    conn: str | None
    machine: str
    side: str
    state: str
    input: str  #: the input enum's name, e.g. "FFP_REQUEST"
    detail: str
    #: True when the violation may be an artefact of what we could observe rather than a real
    #: protocol violation: the machine's state was UNKNOWN (mid-stream start) or inferred (session
    #: and cleanup machines), or the connection lost capture data.
    observer_limited: bool = False


@record
class ConnectionParams(Record):
    """Framing parameters in force from the next PDU on (fed back to the framer by the pipeline).

    Emitted at the final Login Response (T5): digests apply to every PDU after it (RFC 7143
    §11.2 and §13.1), MaxRecvDataSegmentLength is declared by each side for what *it* receives
    (§13.12). Emitted again when a FFP Text negotiation changes MaxRecvDataSegmentLength.
    """

    conn: str
    header_digest: bool
    data_digest: bool
    max_recv_dsl_initiator: int | None  #: limit on target -> initiator data segments (None: unknown)
    max_recv_dsl_target: int | None  #: limit on initiator -> target data segments (None: unknown)
    #: how the digests are known (``analyzer.records.DIGEST_SOURCES``): "negotiated" at a login
    header_digest_source: str = "negotiated"
    data_digest_source: str = "negotiated"


@record
class TaskRecord(Record):
    """One task (ITT) from its first request to its end; emitted once, when it ends."""

    session: str | None
    conn: str
    itt: int
    kind: str  #: "scsi", "login", "text", "logout", "tmf", "nop"
    outcome: str  #: see TASK_OUTCOMES
    first_frame: int
    last_frame: int
    start_ts_ns: int
    end_ts_ns: int
    latency_ns: int
    immediate: bool
    cmdsn: int | None
    lun: int | None
    # scsi
    cdb_opcode: int | None = None
    cdb_name: str | None = None
    lba: int | None = None
    transfer_length: int | None = None
    read: bool = False
    write: bool = False
    edtl: int | None = None
    bytes_in: int = 0  #: sum of Data-In DataSegmentLengths
    bytes_out: int = 0  #: immediate data + sum of Data-Out DataSegmentLengths
    immediate_bytes: int = 0
    r2t_count: int = 0
    data_in_pdus: int = 0
    data_out_pdus: int = 0
    status: int | None = None  #: SCSI status byte
    status_name: str | None = None
    response: int | None = None  #: iSCSI response code (SCSI Response, TMF, Logout)
    response_name: str | None = None
    sense_key: int | None = None
    sense_key_name: str | None = None
    asc: int | None = None
    ascq: int | None = None
    asc_name: str | None = None
    residual_overflow: bool = False
    residual_underflow: bool = False
    residual: int | None = None
    # login
    login_status_class: int | None = None
    login_status_detail: int | None = None
    # logout
    logout_reason: int | None = None
    logout_cid: int | None = None
    # tmf
    tmf_function: int | None = None
    tmf_function_name: str | None = None
    ref_task_tag: int | None = None
    # reject
    reject_reason: int | None = None
    partial: bool = False  #: the task began before the capture (or in a capture gap)
    note: str = ""
    #: the ITT of the task management request that ended this task (outcome "aborted")
    aborted_by_itt: int | None = None
    #: target NOP-In pings (kind "nop_in"): the Target Transfer Tag the NOP-Out must echo; ``itt`` is 0xffffffff
    ttt: int | None = None
    #: why a task got no response (see UNANSWERED_CAUSES); None for answered tasks
    unanswered_cause: str | None = None


#: Values of :attr:`TaskRecord.outcome`.
TASK_OUTCOMES = (
    "completed",
    "check_condition",
    "failed",
    "aborted",
    "terminated_by_logout",
    "open_at_conn_drop",
    "open_at_capture_end",
    "rejected",
    "lost_in_capture_gap",
    "redirected",  #: a login answered with Status-Class 1 (§11.13.5): to be retried at the TargetAddress
    #: never accepted by the target: CmdSN outside the window (§4.2.2.1) or sent after a Logout Request (§11.14)
    "not_accepted",
)

#: Values of :attr:`TaskRecord.unanswered_cause`.
UNANSWERED_CAUSES = (
    "cmdsn_above_window",  #: non-immediate CmdSN > MaxCmdSN: silently discarded (§4.2.2.1)
    "cmdsn_below_window",  #: non-immediate CmdSN < ExpCmdSN (stale): silently discarded (§4.2.2.1)
    "sent_after_logout_request",  #: sent on a connection after a Logout Request closing it (§11.14)
    "logout",  #: terminated by a successful logout (close-session, close-connection, recovery)
    "reinstatement",  #: terminated by a connection or session reinstatement (§6.3.4, §6.3.5)
    "task_management",  #: ended by a task management function
    "connection_closed_by_target",  #: its connection ended (FIN) without an answer
    "connection_closed_by_initiator",
    "connection_reset_by_target",  #: its connection ended (RST) without an answer
    "connection_reset_by_initiator",
    "connection_failed",  #: its connection left full feature phase otherwise (Async drop, inferred timeout)
    "capture_end",  #: still open when the capture ended
    "capture_gap",  #: the answer may be in data the capture lost
)


@record
class SequenceEvent(Record):
    """A numbering or flow-control rule was broken (RFC 7143 §4.2.2, §11, §13)."""

    session: str | None
    conn: str
    kind: str  #: see SEQUENCE_KINDS
    expected: int | None
    observed: int | None
    detail: str
    itt: int | None = None
    #: "login" or "ffp" for max_recv_dsl_exceeded (the login-phase limit is the 8192 default); else None
    phase: str | None = None


#: Values of :attr:`SequenceEvent.kind`.
SEQUENCE_KINDS = (
    "cmdsn_out_of_window",
    "cmdsn_duplicate",
    "statsn_gap",
    "datasn_gap",
    "r2tsn_gap",
    "expdatasn_mismatch",
    "r2t_overrun",
    "max_recv_dsl_exceeded",
    "burst_length_exceeded",
    "unsolicited_data_not_negotiated",
    "request_after_logout",
    "unexpected_response",
    "itt_in_use",
)


@record
class NegotiationIssue(Record):
    """A text-key exchange that broke the §13 rules, or got a special answer (§6.2)."""

    session: str | None
    conn: str
    key: str
    kind: str  #: "answer_violates_result", "rejected", "not_understood", "irrelevant", "bad_value", "unanswered"
    offered_by: str  #: "initiator" / "target"
    offer: str
    answer: str | None
    detail: str


@record
class Reinstatement(Record):
    """A connection (§6.3.4) or session (§6.3.5) reinstatement login, emitted when its outcome is known."""

    kind: str  #: "connection" or "session"
    outcome: str  #: "succeeded", "failed", "incomplete" (capture ended during the login)
    session: str | None  #: the session the new login belongs to
    old_session: str | None
    conn: str  #: the connection carrying the reinstatement login
    old_conn: str | None  #: the connection being replaced (connection reinstatement)
    isid: str
    tsih: int
    cid: int
    start_frame: int
    start_ts_ns: int
    #: the replaced session's (kind "session") or connection's (kind "connection") state on each side
    #: when the reinstatement login began (RFC spelling; None when unknown)
    old_state_initiator: str | None = None
    old_state_target: str | None = None


@record
class SessionIdentified(Record):
    """A session's identity became known: at the final Login Response of its leading login (or of
    the first login of a session we only know from a non-zero TSIH), or when a session seen only
    mid-stream was placed. Emitted once per session, before the transitions of that frame."""

    session: str
    conn: str | None  #: the connection whose login (or traffic) identified it
    session_type: str  #: "Normal", "Discovery" or "unknown"
    isid: str | None  #: 12 hex digits
    tsih: int | None
    tpgt: int | None
    initiator_name: str | None
    target_name: str | None
    initiator_alias: str | None
    target_alias: str | None
    mid_stream: bool  #: identity partly inferred: the session's leading login is not in the capture


@record
class LoginKeys(Record):
    """The key=value text of one login phase (RFC 7143 §6.3) as the state layer joined it across
    C-bit PDUs (§6.1): emitted once when the login ends -- at its final Login Response, at a failing
    one, or when the connection leaves the login phase without one -- among the records of that
    frame. Consumers that need a login's keys (names, AuthMethod, CHAP use, TargetAddress) read this
    record, never one PDU's ``keys``, which may hold a fragment of a continued text."""

    session: str | None
    conn: str
    itt: int  #: the login's ITT
    first_frame: int  #: the login's first PDU in the capture
    outcome: str  #: "succeeded", "failed" (a failing Login Response) or "cut" (no final response)
    #: every key the initiator sent, joined, in wire order; authentication keys (CHAP_/SRP_/KRB_, §12)
    #: keep their name with an empty value: secrets are never stored
    initiator: tuple[tuple[str, str], ...]
    target: tuple[tuple[str, str], ...]  #: the same for the target
    #: sides whose text was still continuing (C=1) when the login ended: their last pairs are the
    #: complete ones of that unfinished text (§6.1), whose rest never came
    unfinished: tuple[str, ...] = ()


@record
class Deviation(Record):
    """The wire shows a peer deviating from RFC 7143 in a way the state machines absorb.

    Not a table :class:`Violation`: the machines follow what the wire shows (a connection that
    keeps exchanging PDUs stays in full feature phase), and this record says what the RFC
    expected instead. ``start_frame`` is the earlier event the deviation relates to (e.g. the
    Logout Response whose consequence did not happen).
    """

    session: str | None
    conn: str | None
    side: str  #: who deviated: "target" or "initiator"
    kind: str  #: see DEVIATION_KINDS
    rfc: str  #: RFC 7143 section
    detail: str
    start_frame: int
    itt: int | None = None
    cid: int | None = None
    expected: int | None = None
    observed: int | None = None


#: Values of :attr:`Deviation.kind`.
DEVIATION_KINDS = (
    "close_session_left_connection_open",  #: another connection stayed in FFP after a close-session logout (§11.14)
    "logout_response_unexpected",  #: Logout Response code the request/session did not allow (§11.15.1)
    "logout_closed_wrong_connection",  #: a logout naming CID N closed another connection or left CID N open
    "duplicate_cid_in_session",  #: the old connection kept working after a connection reinstatement (§6.3.4)
    "reinstated_session_left_open",  #: the old session kept working after a session reinstatement (§6.3.5)
    "tmf_response_inconsistent",  #: "task does not exist" for a task the target knew/answered (§11.6.1)
    "connection_dropped_on_request",  #: the target closed the connection right after one request, unanswered
)


@record
class CleanupDeadline(Record):
    """A connection entered CLEANUP_WAIT (R1) for one side; its state lives until ``deadline_ts_ns``.

    The deadline is Time2Wait + Time2Retain after entry (§7.5 / notes §2); ``source`` tells
    where the values came from.
    """

    session: str | None
    conn: str
    cid: int | None
    side: str
    time2wait: int
    time2retain: int
    source: str  #: "negotiated", "default", "logout_response", "async_event"
    deadline_ts_ns: int
    open_tasks: int  #: tasks of this connection still open when it failed
    cause: str  #: what put it there ("transport disconnect", "Async event 2", ...)


@record
class CleanupEnded(Record):
    """A connection's cleanup machine reached FREE (R3) for one side."""

    session: str | None
    conn: str
    cid: int | None
    side: str
    label: str  #: "M1" or "M4"
    outcome: str  #: "timed_out", "reinstated", "logged_out", "session_closed", "session_reinstated", "discarded"
    inferred: bool
    waited_ns: int  #: time spent since entering CLEANUP_WAIT


@record
class SessionSummary(Record):
    """A session as known at ``frame``/``ts_ns`` (snapshot or end of capture)."""

    session: str
    session_type: str  #: "Discovery", "Normal" or "unknown"
    isid: str | None  #: 12 hex digits
    tpgt: int | None
    tsih: int | None
    ssid: str | None  #: "ISID,TPGT"
    initiator_name: str | None
    target_name: str | None
    initiator_alias: str | None
    target_alias: str | None
    portals: tuple[str, ...]  #: target "ip:port" of every connection
    initiator_addresses: tuple[str, ...]
    connections: tuple[str, ...]
    cids: tuple[int, ...]
    params: dict[str, str]  #: negotiated session-wide keys (and chap_used); never CHAP secrets
    start_frame: int
    start_ts_ns: int
    end_frame: int
    end_ts_ns: int
    #: "open", "logout", "connection_dropped", "login_failed", "redirected", "timed_out", "reinstated", "capture_end"
    ended: str
    state_initiator: str
    state_target: str
    mid_stream: bool  #: identity partly inferred (capture began inside the session)
    reinstated_from: str | None
    reinstated_by: str | None
    tasks: int  #: tasks emitted for this session
    discovered_targets: tuple[str, ...] = field(default=())
    redirected_to: str | None = None  #: TargetAddress of a Status-Class 1 answer to its login (§11.13.5)
    redirected_from: str | None = None  #: the redirected session this one's login followed up
    redirect_followed_by: str | None = None  #: the session that logged in where the redirect pointed


@record
class ConnectionSummary(Record):
    """A TCP connection carrying iSCSI, as known at ``frame``/``ts_ns``."""

    conn: str
    session: str | None
    cid: int | None
    client: str | None
    client_port: int | None
    server: str | None
    server_port: int | None
    role: str  #: "leading", "added", "reinstatement", "unknown"
    params: dict[str, str]  #: connection-only keys (digests, MaxRecvDataSegmentLength each way, AuthMethod)
    header_digest: bool
    data_digest: bool
    #: §13.12 as declared (or defaulted in a login captured whole); None when unknown
    max_recv_dsl_initiator: int | None
    max_recv_dsl_target: int | None
    start_frame: int
    start_ts_ns: int
    end_frame: int
    end_ts_ns: int
    #: "open", "logout", "dropped", "login_failed", "redirected", "session_closed", "reinstated", "capture_end"
    ended: str
    state_initiator: str
    state_target: str
    cleanup_initiator: str | None  #: cleanup machine state, None if never in CLEANUP_WAIT
    cleanup_target: str | None
    mid_stream: bool
    handshake_seen: bool
    tcp_end: str | None  #: "fin", "rst", "evicted", "capture_end" or None
    login_status_class: int | None
    login_status_detail: int | None
    reinstated_by: str | None
    reinstates: str | None
    pdus: int
    tasks: int
    #: how header_digest / data_digest are known (``analyzer.records.DIGEST_SOURCES``): "negotiated"
    #: in the captured login, "detected" in the traffic (mid-stream start) or "unknown" (then the
    #: bool is False but means nothing: show "unknown", never "None")
    header_digest_source: str = "negotiated"
    data_digest_source: str = "negotiated"
    #: largest full-feature data segment seen target -> initiator / initiator -> target: what the
    #: traffic proves of an unknown MaxRecvDataSegmentLength ("at least N, observed")
    dsl_seen_initiator: int = 0
    dsl_seen_target: int = 0
    redirected_to: str | None = None  #: TargetAddress of a Status-Class 1 login answer (§11.13.5)


@record
class TrackerError(Record):
    """Safety net: the tracker hit an internal error on this record (a bug; the input is skipped)."""

    conn: str | None
    detail: str
