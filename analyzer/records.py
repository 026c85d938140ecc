"""Records: the immutable dataclasses every layer of the analyzer speaks (house style §2).

This module imports nothing from the project. Every record carries ``frame`` (1-based
frame number, as Wireshark counts) and ``ts_ns`` (capture timestamp, integer
nanoseconds since the Unix epoch), so any row of any report can be traced back to a
frame in Wireshark.

Layers and the records they emit:

* ``tcp``   -> TcpOpened, TcpFin, TcpRst, TcpGap, TcpRetransmission, TcpOverlapConflict,
               TcpZeroWindow, TcpClosed, TcpFlowsEvicted
* ``iscsi`` -> one ``Pdu`` subclass per RFC 7143 opcode (§11), UnknownPdu, MalformedPdu,
               FramingResync
* ``capture`` -> CaptureDamage (a damaged or truncated capture file)

Sequence numbers are kept as the raw 32-bit unsigned values from the wire.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Final, TypeVar, dataclass_transform

_T = TypeVar("_T")

#: Records are immutable by contract. With ISCSI_ANALYZER_FROZEN_RECORDS=1 (the test suite sets
#: it) they are frozen dataclasses, so any mutation raises; otherwise they are plain slotted
#: dataclasses, because a frozen dataclass's __init__ costs about 8x more (it sets every field
#: through object.__setattr__) and records are built once per PDU on the hot path.
FROZEN_RECORDS: Final = os.environ.get("ISCSI_ANALYZER_FROZEN_RECORDS", "") == "1"


@dataclass_transform(frozen_default=True)
def record(cls: type[_T]) -> type[_T]:
    """Class decorator for records: a slotted dataclass, frozen when FROZEN_RECORDS (see above)."""
    return dataclass(frozen=FROZEN_RECORDS, slots=True, unsafe_hash=not FROZEN_RECORDS)(cls)

#: Direction of bytes on a TCP connection carrying iSCSI.
I2T: Final = "i2t"  #: initiator to target
T2I: Final = "t2i"  #: target to initiator

#: RFC 7143 §11.2.1: the reserved tag value.
RESERVED_TAG: Final = 0xFFFFFFFF


@record
class Record:
    frame: int
    ts_ns: int


# --------------------------------------------------------------------------- capture


@record
class CaptureDamage(Record):
    """The capture file is damaged from here on (cut short, bad record length, ...)."""

    message: str


@record
class CaptureStats(Record):
    """Summary the capture source emits once at the end."""

    frames: int
    bytes: int
    non_tcp: int
    truncated_frames: int  #: frames whose captured length < original length (snaplen)


# --------------------------------------------------------------------------- tcp


@record
class TcpRecord(Record):
    conn: str  #: connection id, "client_ip:port->server_ip:port" plus "#N" when the 4-tuple is reused


@record
class TcpOpened(TcpRecord):
    client: str
    client_port: int
    server: str
    server_port: int
    handshake: bool  #: True if the SYN was seen; False for a mid-stream start


@record
class TcpFin(TcpRecord):
    direction: str  #: direction of the FIN's sender: i2t = initiator closed its side


@record
class TcpRst(TcpRecord):
    direction: str


@record
class TcpClosed(TcpRecord):
    """Both directions finished (FIN+FIN, RST) or the flow was evicted/ended with the capture."""

    reason: str  #: "fin", "rst", "evicted", "capture_end"


@record
class TcpFlowsEvicted(Record):
    """The flow limit was reached: the reassembler forgot ``flows`` flows at once (a resource
    bound, not an event on the wire). ``unopened`` of them never carried payload (SYN-only
    probes, refused connections): nothing else says they went; each open one also ends with
    ``TcpClosed(reason="evicted")``."""

    flows: int
    unopened: int
    limit: int  #: the flow limit (``max_flows``)


@record
class TcpGap(TcpRecord):
    """Bytes [seq, seq+length) of this direction were never captured. Never zero-filled.

    ``snaplen``: the bytes were on the wire in a captured frame, cut by the capture's snap
    length (not lost: the frame and the stream position are known).
    """

    direction: str
    seq: int
    length: int
    snaplen: bool = False


@record
class TcpRetransmission(TcpRecord):
    direction: str
    seq: int
    length: int


@record
class TcpOverlapConflict(TcpRecord):
    """A retransmitted/overlapping segment carried different bytes than the first copy (first copy wins)."""

    direction: str
    seq: int
    length: int


@record
class TcpZeroWindow(TcpRecord):
    direction: str  #: the side advertising the zero window


# --------------------------------------------------------------------------- iscsi


@record
class Ahs:
    """RFC 7143 §11.2.2 additional header segment."""

    ahs_type: int  #: 1 extended CDB, 2 bidirectional read expected data transfer length
    length: int  #: AHSLength
    data: bytes


@record
class Cdb:
    """A decoded SCSI CDB (SPC/SBC/SSC)."""

    opcode: int
    name: str
    lba: int | None
    transfer_length: int | None  #: in blocks (or bytes for allocation-length commands)
    service_action: int | None
    raw: bytes


@record
class Sense:
    """SPC-4 sense data (fixed 0x70/0x71 or descriptor 0x72/0x73 format)."""

    response_code: int
    sense_key: int
    asc: int
    ascq: int
    key_name: str
    asc_name: str  #: name of the ASC/ASCQ pair, or "" when unknown
    information: int | None


@record
class Pdu(Record):
    """Fields common to every iSCSI PDU (RFC 7143 §11.2.1).

    ``frame`` is the frame that carried the PDU's last byte (where Wireshark shows it);
    ``first_frame`` carried its first byte.
    """

    conn: str
    direction: str  #: I2T or T2I
    first_frame: int
    opcode: int
    immediate: bool  #: I bit (requests only)
    final: bool  #: F bit (byte 1, 0x80)
    total_ahs_length: int  #: in 4-byte words
    dsl: int  #: DataSegmentLength
    lun: int | None  #: decoded LUN for PDUs that carry one, else None
    itt: int
    ahs: tuple[Ahs, ...]
    header_digest: str | None  #: "ok", "bad" or None when not negotiated
    data_digest: str | None


# Requests (initiator -> target)


@record
class NopOut(Pdu):
    """§11.18"""

    ttt: int
    cmdsn: int
    expstatsn: int


@record
class ScsiCommand(Pdu):
    """§11.3"""

    read: bool
    write: bool
    attr: int  #: task attribute: 0 untagged, 1 simple, 2 ordered, 3 head of queue, 4 ACA
    edtl: int  #: Expected Data Transfer Length
    cmdsn: int
    expstatsn: int
    cdb: Cdb
    bidi_read_edtl: int | None  #: from AHS type 2


@record
class TaskMgmtRequest(Pdu):
    """§11.5"""

    function: int
    ref_task_tag: int
    cmdsn: int
    expstatsn: int
    ref_cmdsn: int
    exp_datasn: int


@record
class LoginRequest(Pdu):
    """§11.12"""

    transit: bool
    cont: bool
    csg: int
    nsg: int
    version_max: int
    version_min: int
    isid: int  #: 48-bit ISID
    tsih: int
    cid: int
    cmdsn: int
    expstatsn: int
    #: text keys in wire order; complete pairs only when the text continues in the next PDU (C=1)
    keys: tuple[tuple[str, str], ...]
    #: The data segment as received (RFC 7143 §6.1 key=value text; b"" when empty or not kept by the
    #: framer), so a consumer can rejoin text split across C-bit PDUs byte-exactly (a key or value may
    #: be split anywhere). Left out of equality and repr (raw CHAP values; ``keys`` says the same).
    text: bytes = field(default=b"", compare=False, repr=False)


@record
class TextRequest(Pdu):
    """§11.10"""

    cont: bool
    ttt: int
    cmdsn: int
    expstatsn: int
    keys: tuple[tuple[str, str], ...]
    #: the data segment as received (see ``LoginRequest.text``)
    text: bytes = field(default=b"", compare=False, repr=False)


@record
class DataOut(Pdu):
    """§11.7.1 (SCSI Data-Out)"""

    ttt: int
    expstatsn: int
    datasn: int
    buffer_offset: int


@record
class LogoutRequest(Pdu):
    """§11.14"""

    reason: int  #: 0 close session, 1 close connection, 2 remove connection for recovery
    cid: int
    cmdsn: int
    expstatsn: int


@record
class Snack(Pdu):
    """§11.16"""

    snack_type: int  #: 0 Data/R2T, 1 Status, 2 DataACK, 3 R-Data
    ttt: int  #: TTT or SNACK Tag
    expstatsn: int
    begrun: int
    runlength: int


# Responses (target -> initiator)


@record
class NopIn(Pdu):
    """§11.19"""

    ttt: int
    statsn: int
    expcmdsn: int
    maxcmdsn: int


@record
class ScsiResponse(Pdu):
    """§11.4"""

    bidi_overflow: bool  #: o
    bidi_underflow: bool  #: u
    overflow: bool  #: O
    underflow: bool  #: U
    response: int
    status: int
    snack_tag: int
    statsn: int
    expcmdsn: int
    maxcmdsn: int
    expdatasn: int
    bidi_residual: int
    residual: int
    sense: Sense | None


@record
class TaskMgmtResponse(Pdu):
    """§11.6"""

    response: int
    statsn: int
    expcmdsn: int
    maxcmdsn: int


@record
class LoginResponse(Pdu):
    """§11.13"""

    transit: bool
    cont: bool
    csg: int
    nsg: int
    version_max: int
    version_active: int
    isid: int
    tsih: int
    statsn: int
    expcmdsn: int
    maxcmdsn: int
    status_class: int
    status_detail: int
    keys: tuple[tuple[str, str], ...]
    #: the data segment as received (see ``LoginRequest.text``)
    text: bytes = field(default=b"", compare=False, repr=False)


@record
class TextResponse(Pdu):
    """§11.11"""

    cont: bool
    ttt: int
    statsn: int
    expcmdsn: int
    maxcmdsn: int
    keys: tuple[tuple[str, str], ...]
    #: the data segment as received (see ``LoginRequest.text``)
    text: bytes = field(default=b"", compare=False, repr=False)


@record
class DataIn(Pdu):
    """§11.7.2 (SCSI Data-In)"""

    ack: bool  #: A bit
    overflow: bool  #: O
    underflow: bool  #: U
    status_present: bool  #: S bit: StatSN, Status and ResidualCount are valid
    status: int | None
    ttt: int
    statsn: int | None
    expcmdsn: int
    maxcmdsn: int
    datasn: int
    buffer_offset: int
    residual: int | None


@record
class LogoutResponse(Pdu):
    """§11.15"""

    response: int
    statsn: int
    expcmdsn: int
    maxcmdsn: int
    time2wait: int
    time2retain: int


@record
class R2T(Pdu):
    """§11.8"""

    ttt: int
    statsn: int
    expcmdsn: int
    maxcmdsn: int
    r2tsn: int
    buffer_offset: int
    desired_length: int


@record
class AsyncMessage(Pdu):
    """§11.9"""

    statsn: int
    expcmdsn: int
    maxcmdsn: int
    async_event: int
    async_vcode: int
    param1: int
    param2: int
    param3: int
    sense: Sense | None


@record
class Reject(Pdu):
    """§11.17"""

    reason: int
    statsn: int
    expcmdsn: int
    maxcmdsn: int
    datasn_r2tsn: int
    rejected_opcode: int | None  #: opcode of the rejected header carried as data
    rejected_itt: int | None
    rejected_header: bytes


@record
class UnknownPdu(Pdu):
    """Reserved or vendor-specific opcode (0x1c-0x1e, 0x3c-0x3e): framed, not decoded."""

    header: bytes


@record
class MalformedPdu(Record):
    """Bytes that framed as a PDU but could not be decoded (house style §2)."""

    conn: str
    direction: str
    first_frame: int
    opcode: int
    reason: str
    offset: int  #: byte offset inside the PDU where decoding failed
    header: bytes  #: the BHS (48 bytes at most)


@record
class FramingResync(Record):
    """Framing lost its place (after a gap, mid-stream start or garbage) and skipped bytes."""

    conn: str
    direction: str
    skipped: int  #: bytes that could not be framed
    reason: str  #: "gap", "mid_stream", "implausible_header"
    found: bool  #: True when a plausible BHS was found (the frame of that PDU)
    start_frame: int = 0  #: frame of the first skipped byte (0: none or not known)


#: Opcodes whose PDUs flow initiator -> target (RFC 7143 §11.2.1.2).
REQUEST_TYPES = (NopOut, ScsiCommand, TaskMgmtRequest, LoginRequest, TextRequest, DataOut, LogoutRequest, Snack)
#: Opcodes whose PDUs flow target -> initiator.
RESPONSE_TYPES = (NopIn, ScsiResponse, TaskMgmtResponse, LoginResponse, TextResponse, DataIn, LogoutResponse,
                  R2T, AsyncMessage, Reject)


# --------------------------------------------------------------------------- anomalies

#: Severities, lowest first.
SEVERITIES = ("info", "warning", "error")


@record
class Anomaly(Record):
    """A finding with its evidence. ``frame`` is the first evidence frame, ``frames`` all of them."""

    kind: str  #: stable snake_case kind, e.g. "login_failed", "cleanup_wait_stuck"
    severity: str  #: "info", "warning" or "error"
    session: str | None
    conn: str | None
    message: str  #: one sentence a storage engineer understands, names not codes
    rfc: str  #: RFC 7143 section, e.g. "§11.13.5"
    frames: tuple[int, ...]

    @property
    def display_filter(self) -> str:
        """The Wireshark display filter that shows the evidence frames."""
        return frames_display_filter(self.frames or (self.frame,))


def frames_display_filter(frames: tuple[int, ...] | list[int]) -> str:
    """``frame.number == 4`` or ``frame.number in {4, 6, 9..12}``: the set syntax of Wireshark 4.0
    and later (elements separated by commas; runs of three or more consecutive frames as ``a..b``)."""
    numbers = sorted(set(frames))
    if len(numbers) == 1:
        return f"frame.number == {numbers[0]}"
    parts: list[str] = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{numbers[i]}..{numbers[j]}")
        else:
            parts.extend(str(n) for n in numbers[i:j + 1])
        i = j + 1
    return "frame.number in {" + ", ".join(parts) + "}"


# --------------------------------------------------------------------------- connection facts

#: How a connection's digest setting is known (RFC 7143 §13.1): from the login negotiation we
#: captured, detected in the traffic (a PDU framed with or without the digest), or not known.
DIGEST_SOURCES: Final = ("negotiated", "detected", "unknown")


@dataclass(frozen=True, slots=True)
class DigestFact:
    """One digest (HeaderDigest or DataDigest) of one connection: in use or not, and how we know.

    ``crc32c`` is False when ``source`` is "unknown" (no digest can be claimed); readers show
    "unknown" then, never "None". The state layer's ConnectionSummary and ConnectionParams carry
    it flattened (``*_digest`` bool + ``*_digest_source``) so that every writer keeps flat columns.
    """

    crc32c: bool
    source: str  #: one of DIGEST_SOURCES

    def shown(self) -> str:
        """"CRC32C", "None", with "(detected)" when seen in traffic, or "unknown"."""
        if self.source == "unknown":
            return "unknown"
        name = "CRC32C" if self.crc32c else "None"
        return f"{name} (detected)" if self.source == "detected" else name


DIGEST_UNKNOWN: Final = DigestFact(False, "unknown")
DIGEST_NONE_NEGOTIATED: Final = DigestFact(False, "negotiated")
