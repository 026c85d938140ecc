"""What the tracker keeps per connection, session, login and pending close (mutable books,
never emitted: the emitted records are the frozen dataclasses of ``events.py``), plus small
shared constants and helpers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from analyzer.records import DIGEST_UNKNOWN, DigestFact
from analyzer.state.cleanup import CleanupState
from analyzer.state.connection import ConnState
from analyzer.state.negotiation import Negotiation, TextJoiner
from analyzer.state.sequence import CmdWindow, StatSn
from analyzer.state.session import LIVE_STATES, SessState
from analyzer.state.tasks import (
    Task,
)

SIDES = ("initiator", "target")
S1, S4, S8 = ConnState.S1_FREE, ConnState.S4_IN_LOGIN, ConnState.S8_CLEANUP_WAIT
R1, R2, R3 = CleanupState.R1_CLEANUP_WAIT, CleanupState.R2_IN_CLEANUP, CleanupState.R3_FREE
Q1, Q3, Q4 = SessState.Q1_FREE, SessState.Q3_LOGGED_IN, SessState.Q4_FAILED
CMDSN_HISTORY = 65536
NS = 1_000_000_000
#: opcode of the PDU that opens each task kind (to match a Reject's rejected header, §11.17)
OPENING_OPCODE = {"nop": 0x00, "scsi": 0x01, "tmf": 0x02, "text": 0x04, "logout": 0x06}
PDU_NAMES = {
    "NopOut": "NOP-Out", "ScsiCommand": "SCSI Command", "TaskMgmtRequest": "Task Management Request",
    "LoginRequest": "Login Request", "TextRequest": "Text Request", "DataOut": "SCSI Data-Out",
    "LogoutRequest": "Logout Request", "Snack": "SNACK Request", "NopIn": "NOP-In",
    "ScsiResponse": "SCSI Response", "TaskMgmtResponse": "Task Management Response",
    "LoginResponse": "Login Response", "TextResponse": "Text Response", "DataIn": "SCSI Data-In",
    "LogoutResponse": "Logout Response", "R2T": "R2T", "AsyncMessage": "Async Message", "Reject": "Reject",
    "UnknownPdu": "unknown PDU",
}


@dataclass(slots=True, eq=False)
class Login:
    itt: int
    isid: int
    tsih: int
    cid: int
    kind: str  #: leading, added, continuation, connection_reinstatement, session_reinstatement, unknown
    start_frame: int
    start_ts: int
    neg: Negotiation = field(default_factory=Negotiation)
    old_conn: Conn | None = None
    old_session: Session | None = None
    #: the replaced connection's / session's state per side when the login began (Reinstatement record)
    old_states: dict[str, str] = field(default_factory=dict)
    #: the joined keys (§6.1) each side sent in this login, in wire order (the LoginKeys record)
    keys: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: {"initiator": [], "target": []})
    #: the login's first PDU is in the capture, so an undeclared key has its default (§13); when
    #: the capture began inside the login, only keys seen are known
    start_seen: bool = True


@dataclass(slots=True, eq=False)
class PendingClose:
    """A close the RFC derives from an event on *another* connection (or a reinstatement), not
    yet confirmed by this connection's own wire: applied when its TCP connection closes (or at
    capture end, inferred); cancelled, as a :class:`Deviation`, when the target sends on it."""

    kind: str  #: "close_session", "named_logout", "carrier_logout", "conn_reinstated", "sess_reinstated"
    frame: int  #: the event that implies the close (Logout Response, final Login Response)
    ts: int
    carrier: str  #: the connection that carried that event
    what: str  #: the event, in words, for transition events and deviation details
    reason: int = 0  #: Logout reason (named_logout, carrier_logout)
    cid: int | None = None  #: the CID a logout named (carrier_logout)
    by: str | None = None  #: reinstating connection / session id


@dataclass(slots=True, eq=False)
class Conn:
    id: str
    start_frame: int
    start_ts: int
    handshake: bool
    mid_stream: bool
    state: dict[str, ConnState]
    last_frame: int = 0
    last_ts: int = 0
    client: str | None = None
    client_port: int | None = None
    server: str | None = None
    server_port: int | None = None
    session: Session | None = None
    cid: int | None = None
    role: str = "unknown"
    cleanup: dict[str, CleanupState | None] = field(default_factory=lambda: {"initiator": None, "target": None})
    cleanup_entered: dict[str, int] = field(default_factory=dict)
    cleanup_deadline: dict[str, int] = field(default_factory=dict)
    cleanup_gen: dict[str, int] = field(default_factory=lambda: {"initiator": 0, "target": 0})
    cleanup_override: tuple[int, int, str] | None = None  #: (Time2Wait, Time2Retain, source) for the next S8
    was_ffp: dict[str, bool] = field(default_factory=lambda: {"initiator": False, "target": False})
    login: Login | None = None
    text_neg: Negotiation | None = None
    #: per direction: the sender's key=value text being rejoined across C-bit PDUs (§6.1)
    ltds: dict[str, TextJoiner] = field(default_factory=dict)
    #: (direction that owes an empty answer, frame and ITT of the C=1 PDU it answers) (§6.2)
    ltds_answer: tuple[str, int, int] | None = None
    params_known: bool = False
    params: dict[str, str] = field(default_factory=dict)
    #: §13.1: negotiated in the captured login, detected in the traffic, or unknown (mid-stream)
    header_digest: DigestFact = DIGEST_UNKNOWN
    data_digest: DigestFact = DIGEST_UNKNOWN
    #: §13.12 MaxRecvDataSegmentLength each side declared (its default when the whole login was
    #: captured without it); None when the login was not captured (unknown, never the default)
    mrdsl_initiator: int | None = None
    mrdsl_target: int | None = None
    #: largest data segment seen each way in full feature phase: a lower bound of the receiver's limit
    dsl_seen_t2i: int = 0
    dsl_seen_i2t: int = 0
    statsn: StatSn = field(default_factory=StatSn)
    #: why new requests are not allowed any more ("after a Logout Request (§11.14)"), "" if they are
    no_new_requests: str = ""
    closure: bool = False  #: the connection is leaving FFP through a close-connection logout
    end_outcome: str = "open_at_conn_drop"  #: outcome for tasks still open when it leaves FFP
    end_note: str = ""
    end_cause: str | None = None  #: unanswered_cause for those tasks (None: from how TCP ended)
    pending: PendingClose | None = None
    pings: dict[int, Task] = field(default_factory=dict)  #: open target NOP-In pings by TTT
    #: ITTs of tasks concluded as lost in a capture gap (bounded, oldest first): a late answer is quiet
    gap_itts: dict[int, None] = field(default_factory=dict)
    closed_by: tuple[str, str] | None = None  #: (side, "fin"/"rst") of the first FIN/RST
    tcp_closed: bool = False  #: TcpClosed seen: nothing more can arrive on this TCP connection
    lossy: bool = False  #: the capture lost data of this connection (either direction)
    last_pdu_frame: int = 0
    last_pdu_dir: str = ""
    last_t2i_frame: int = 0
    ended: str = "open"
    tcp_end: str | None = None
    tcp_down: bool = False
    lossy_i2t: bool = False
    login_status: tuple[int, int] | None = None
    redirected_to: str | None = None  #: TargetAddress of a Status-Class 1 login answer (§11.13.5)
    reinstated_by: str | None = None
    reinstates: str | None = None
    pdus: int = 0
    tasks: int = 0


@dataclass(slots=True, eq=False)
class Session:
    id: str
    state: dict[str, SessState]
    start_frame: int
    start_ts: int
    mid_stream: bool
    last_frame: int = 0
    last_ts: int = 0
    isid: int | None = None
    tsih: int | None = None
    tpgt: int | None = None
    initiator_name: str | None = None
    target_name: str | None = None
    initiator_alias: str | None = None
    target_alias: str | None = None
    session_type: str | None = None
    conns: list[Conn] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    params_known: bool = False
    time2wait: int = 2
    time2retain: int = 20
    t2_source: str = "default"
    window: CmdWindow = field(default_factory=CmdWindow)
    recent_cmdsn: dict[int, int] = field(default_factory=dict)
    tasks: dict[int, Task] = field(default_factory=dict)
    ended: str = "open"
    reinstated_from: str | None = None
    reinstated_by: str | None = None
    redirected_to: str | None = None  #: TargetAddress of a Status-Class 1 answer to its login (§11.13.5)
    redirected_from: str | None = None  #: the redirected session this login followed up
    redirect_followed_by: str | None = None  #: the session that logged in where the redirect pointed
    deadline_gen: dict[str, int] = field(default_factory=lambda: {"initiator": 0, "target": 0})
    task_count: int = 0
    discovered_targets: list[str] = field(default_factory=list)
    indexed: bool = False
    identified: bool = False  #: SessionIdentified emitted

    def live(self) -> bool:
        return any(st in LIVE_STATES for st in self.state.values())

    def param_int(self, key: str) -> int | None:
        v = self.params.get(key)
        try:
            return int(v, 0) if v is not None else None
        except ValueError:
            return None


def isid_hex(isid: int | None) -> str | None:
    return None if isid is None else f"{isid:012x}"


def key_map(keys: Iterable[tuple[str, str]]) -> dict[str, str]:
    return dict(keys)


def parse_conn_id(conn: str) -> tuple[str | None, int | None, str | None, int | None]:
    try:
        left, right = conn.split("#", 1)[0].split("->", 1)
        c, cp = left.rsplit(":", 1)
        s, sp = right.rsplit(":", 1)
        return c.strip("[]"), int(cp), s.strip("[]"), int(sp)
    except ValueError:
        return None, None, None, None


