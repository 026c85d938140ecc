"""A scripted iSCSI initiator: raw PDUs over a TCP socket, for situations libiscsi cannot produce.

Theory of operation
-------------------
The lab's libiscsi tools always behave well. To capture what a REAL target (tgtd) does when an initiator
uses multiple connections per session (MC/S), reinstates a session or a connection, logs out with odd
reasons, or sends a command outside the CmdSN window, we speak the protocol ourselves:

* `encode_*` build one request PDU each (RFC 7143 §11, BHS layout by byte offset), `decode_pdu` turns one
  target PDU into a small frozen record. This module is the traffic GENERATOR; it deliberately shares no
  code with the analyzer's decoder (`analyzer.iscsi`), so a bug there cannot hide in the captures.
* `Session` holds what RFC 7143 §4.2.2.1 makes session-wide: CmdSN (one counter for all connections),
  ExpCmdSN/MaxCmdSN (updated only when they move forward in serial arithmetic) and the ITT allocator.
  `Connection` holds what is per connection: the socket, CID and ExpStatSN (§4.2.2.2: last StatSN + 1).
* Non-immediate requests consume a CmdSN; immediate ones carry the current CmdSN without advancing it;
  Login carries the CmdSN the first FFP command will use; Data-Out carries none. Scenarios that break these
  rules on purpose say so with an explicit `cmdsn=` override.
* Every socket read has a timeout (`ScriptedTimeout`); a closed or reset connection raises
  `ConnectionEnded` with how it ended ("fin" or "rst"). No digests: we always offer HeaderDigest=None and
  DataDigest=None, so framing is BHS + AHS + padded data.
* Sockets are created inside a network namespace with setns(2) on the calling thread, which is switched
  back at once: the socket stays in the lab namespace (traffic never leaves its loopback), the process
  does not.

* Key=value text may go out as a C-bit series cut at chosen byte offsets (`Connection.login(cuts=...)`,
  `Connection.text(cuts=...)`, RFC 7143 §6.1): every piece but the last with C=1, each answered by the
  target before the next one goes. The target's own continuations (C=1, or F=0 with a TTT for a long Text
  Response, §11.11) are followed with empty requests and their text is concatenated.

Not modelled: CHAP, digests, SNACK, ERL > 0 recovery.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import IntEnum
from itertools import pairwise

from analyzer.lab.errors import LabError

#: BHS length (RFC 7143 §11.2).
BHS_LEN = 48
#: The reserved tag value 0xffffffff (ITT/TTT "not valid").
RESERVED_TAG = 0xFFFFFFFF
#: Flag bit of byte 0: immediate delivery.
IMMEDIATE = 0x40
#: F (final) bit of byte 1.
FINAL = 0x80

#: Default per-read timeout (seconds).
READ_TIMEOUT = 5.0


class Opcode(IntEnum):
    """iSCSI opcodes (RFC 7143 §11.2.1.2)."""

    NOP_OUT = 0x00  #: NOP-Out (§11.18)
    SCSI_COMMAND = 0x01  #: SCSI Command (§11.3)
    TMF_REQUEST = 0x02  #: Task Management Function Request (§11.5)
    LOGIN_REQUEST = 0x03  #: Login Request (§11.12)
    TEXT_REQUEST = 0x04  #: Text Request (§11.10)
    DATA_OUT = 0x05  #: SCSI Data-Out (§11.7)
    LOGOUT_REQUEST = 0x06  #: Logout Request (§11.14)
    SNACK_REQUEST = 0x10  #: SNACK Request (§11.16)
    NOP_IN = 0x20  #: NOP-In (§11.19)
    SCSI_RESPONSE = 0x21  #: SCSI Response (§11.4)
    TMF_RESPONSE = 0x22  #: Task Management Function Response (§11.6)
    LOGIN_RESPONSE = 0x23  #: Login Response (§11.13)
    TEXT_RESPONSE = 0x24  #: Text Response (§11.11)
    DATA_IN = 0x25  #: SCSI Data-In (§11.7)
    LOGOUT_RESPONSE = 0x26  #: Logout Response (§11.15)
    R2T = 0x31  #: Ready To Transfer (§11.8)
    ASYNC_MESSAGE = 0x32  #: Asynchronous Message (§11.9)
    REJECT = 0x3F  #: Reject (§11.17)


class Stage(IntEnum):
    """Login stages, CSG/NSG values (RFC 7143 §11.12.3)."""

    SECURITY = 0  #: SecurityNegotiation
    OPERATIONAL = 1  #: LoginOperationalNegotiation
    FULL_FEATURE = 3  #: FullFeaturePhase


class LogoutReason(IntEnum):
    """Logout Request reason codes (RFC 7143 §11.14.1)."""

    CLOSE_SESSION = 0  #: close the session
    CLOSE_CONNECTION = 1  #: close the connection
    REMOVE_FOR_RECOVERY = 2  #: remove the connection for recovery


class TmfFunction(IntEnum):
    """Task management function codes (RFC 7143 §11.5.1)."""

    ABORT_TASK = 1  #: ABORT TASK
    ABORT_TASK_SET = 2  #: ABORT TASK SET
    LOGICAL_UNIT_RESET = 5  #: LOGICAL UNIT RESET


class ScsiOp(IntEnum):
    """The SCSI operation codes this initiator sends (SPC/SBC)."""

    TEST_UNIT_READY = 0x00  #: TEST UNIT READY
    INQUIRY = 0x12  #: INQUIRY
    READ_10 = 0x28  #: READ(10)
    WRITE_10 = 0x2A  #: WRITE(10)


class ScriptedError(LabError):
    """The target did something the script cannot continue from."""


class ScriptedTimeout(ScriptedError):
    """No (complete) PDU arrived within the read timeout."""


class ConnectionEnded(ScriptedError):
    """The target closed (`how` = "fin") or reset (`how` = "rst") the TCP connection."""

    def __init__(self, how: str, detail: str = "") -> None:
        super().__init__(f"connection ended by target ({how}){': ' + detail if detail else ''}")
        self.how = how


# ------------------------------------------------------------------------------------------- serial numbers

def sn_lt(a: int, b: int) -> bool:
    """RFC 1982 serial-number `a < b` for 32-bit sequence numbers (RFC 7143 §4.2.2)."""
    return a != b and ((b - a) & 0xFFFFFFFF) < 0x80000000


def sn_add(a: int, n: int) -> int:
    """`a + n` modulo 2**32."""
    return (a + n) & 0xFFFFFFFF


# ------------------------------------------------------------------------------------------- text keys

def encode_keys(keys: Iterable[tuple[str, str]]) -> bytes:
    """`key=value\\0` pairs (RFC 7143 §6.1), in the given order."""
    return b"".join(f"{k}={v}".encode() + b"\0" for k, v in keys)


def decode_keys(data: bytes) -> tuple[tuple[str, str], ...]:
    """The `key=value` pairs of a text data segment, in wire order (a pair without `=` is kept as key, '')."""
    pairs = []
    for item in data.split(b"\0"):
        if not item:
            continue
        key, _, value = item.decode("utf-8", "replace").partition("=")
        pairs.append((key, value))
    return tuple(pairs)


# ------------------------------------------------------------------------------------------- encoding

# Bytes 0-19 of every BHS: opcode byte, flags, bytes 2-3, TotalAHSLength<<24 | DataSegmentLength,
# LUN (or ISID+TSIH for Login), ITT.
_HEAD = struct.Struct(">BBHI8sI")
# Bytes 20-47 as seven 32-bit words (the opcode-specific part).
_TAIL = struct.Struct(">7I")


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _pdu(byte0: int, flags: int, b23: int, lun8: bytes, itt: int, words: Sequence[int], data: bytes = b"",
         cdb: bytes | None = None) -> bytes:
    if len(data) >= 1 << 24:
        raise ValueError("data segment too long")
    head = _HEAD.pack(byte0, flags, b23, len(data), lun8, itt)
    if cdb is not None:  # SCSI Command: bytes 20-31 in words, 32-47 the CDB
        tail = struct.pack(">3I", *words) + cdb.ljust(16, b"\0")
    else:
        tail = _TAIL.pack(*words, *([0] * (7 - len(words))))
    return head + tail + _pad(data)


def encode_lun(lun: int) -> bytes:
    """An 8-byte LUN field for a single-level LUN (SAM peripheral addressing for < 256, flat above)."""
    if lun < 256:
        return bytes([0, lun]) + b"\0" * 6
    if lun < 16384:
        return bytes([0x40 | (lun >> 8), lun & 0xFF]) + b"\0" * 6
    raise ValueError(f"LUN {lun} too large")


def isid_bytes(isid: int) -> bytes:
    """A 48-bit ISID as its 6 wire bytes."""
    return isid.to_bytes(6, "big")


def encode_login_request(*, isid: int, tsih: int, cid: int, itt: int, cmdsn: int, exp_statsn: int,
                         csg: Stage, nsg: Stage, transit: bool, keys: Sequence[tuple[str, str]],
                         cont: bool = False, data: bytes | None = None) -> bytes:
    """Login Request (§11.12): always immediate; T, C, CSG, NSG; ISID, TSIH, CID; version 0/0.

    `data` replaces the encoded `keys` (a piece of a C-bit series, §6.1)."""
    flags = (0x80 if transit else 0) | (0x40 if cont else 0) | (int(csg) << 2) | (int(nsg) if transit else 0)
    lun8 = isid_bytes(isid) + tsih.to_bytes(2, "big")
    return _pdu(Opcode.LOGIN_REQUEST | IMMEDIATE, flags, 0x0000, lun8, itt,
                (cid << 16, cmdsn, exp_statsn), encode_keys(keys) if data is None else data)


def encode_text_request(*, itt: int, cmdsn: int, exp_statsn: int, keys: Sequence[tuple[str, str]],
                        ttt: int = RESERVED_TAG, final: bool = True, immediate: bool = False,
                        cont: bool = False, data: bytes | None = None) -> bytes:
    """Text Request (§11.10): F and C bits, TTT 0xffffffff to start a new exchange; `data` replaces the
    encoded `keys` (a piece of a C-bit series, §6.1)."""
    flags = (FINAL if final else 0) | (0x40 if cont else 0)
    return _pdu(Opcode.TEXT_REQUEST | (IMMEDIATE if immediate else 0), flags, 0,
                bytes(8), itt, (ttt, cmdsn, exp_statsn), encode_keys(keys) if data is None else data)


def cut_text(text: bytes, cuts: Sequence[int]) -> list[bytes]:
    """`text` cut at the byte offsets `cuts` (sorted, inside the text; a key or value may be cut anywhere,
    §6.1); no cuts gives the whole text as one piece."""
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(text)), len(text)]
    return [text[a:b] for a, b in pairwise(bounds)]


def encode_scsi_command(*, lun: int, itt: int, cmdsn: int, exp_statsn: int, cdb: bytes,
                        expected_length: int, read: bool = False, write: bool = False,
                        immediate_data: bytes = b"", final: bool = True, attr: int = 1,
                        immediate: bool = False) -> bytes:
    """SCSI Command (§11.3): F/R/W/ATTR, EDTL, CDB (≤ 16 bytes), optional immediate data."""
    if len(cdb) > 16:
        raise ValueError("CDBs longer than 16 bytes need an AHS, not supported")
    flags = (FINAL if final else 0) | (0x40 if read else 0) | (0x20 if write else 0) | (attr & 0x07)
    return _pdu(Opcode.SCSI_COMMAND | (IMMEDIATE if immediate else 0), flags, 0, encode_lun(lun), itt,
                (expected_length, cmdsn, exp_statsn), immediate_data, cdb=cdb)


def encode_data_out(*, lun: int, itt: int, ttt: int, exp_statsn: int, datasn: int, offset: int,
                    data: bytes, final: bool) -> bytes:
    """SCSI Data-Out (§11.7): TTT from the R2T, DataSN per R2T sequence, BufferOffset."""
    return _pdu(Opcode.DATA_OUT, FINAL if final else 0, 0, encode_lun(lun), itt,
                (ttt, 0, exp_statsn, 0, datasn, offset, 0), data)


def encode_nop_out(*, itt: int, cmdsn: int, exp_statsn: int, ttt: int = RESERVED_TAG, lun: int = 0,
                   data: bytes = b"", immediate: bool = True) -> bytes:
    """NOP-Out (§11.18): ITT valid = ping (NOP-In answers); ITT 0xffffffff must be immediate."""
    return _pdu(Opcode.NOP_OUT | (IMMEDIATE if immediate else 0), FINAL, 0, encode_lun(lun), itt,
                (ttt, cmdsn, exp_statsn), data)


def encode_logout_request(*, itt: int, cmdsn: int, exp_statsn: int, reason: LogoutReason, cid: int,
                          immediate: bool = True) -> bytes:
    """Logout Request (§11.14): reason code, CID (ignored for close-session)."""
    return _pdu(Opcode.LOGOUT_REQUEST | (IMMEDIATE if immediate else 0), FINAL | int(reason), 0, bytes(8),
                itt, (cid << 16, cmdsn, exp_statsn))


def encode_tmf_request(*, itt: int, cmdsn: int, exp_statsn: int, function: TmfFunction, lun: int,
                       ref_itt: int = RESERVED_TAG, ref_cmdsn: int = 0, exp_datasn: int = 0,
                       immediate: bool = True) -> bytes:
    """Task Management Function Request (§11.5): function, LUN, referenced task tag, RefCmdSN."""
    return _pdu(Opcode.TMF_REQUEST | (IMMEDIATE if immediate else 0), FINAL | int(function), 0,
                encode_lun(lun), itt, (ref_itt, cmdsn, exp_statsn, ref_cmdsn, exp_datasn))


def cdb_read10(lba: int, blocks: int) -> bytes:
    """READ(10) CDB."""
    return struct.pack(">BBIBHB", ScsiOp.READ_10, 0, lba, 0, blocks, 0)


def cdb_write10(lba: int, blocks: int) -> bytes:
    """WRITE(10) CDB."""
    return struct.pack(">BBIBHB", ScsiOp.WRITE_10, 0, lba, 0, blocks, 0)


def cdb_inquiry(alloc: int = 96) -> bytes:
    """Standard INQUIRY CDB."""
    return struct.pack(">BBBHB", ScsiOp.INQUIRY, 0, 0, alloc, 0)


def cdb_test_unit_ready() -> bytes:
    """TEST UNIT READY CDB."""
    return bytes(6)


# ------------------------------------------------------------------------------------------- decoding

@dataclass(frozen=True)
class TargetPdu:
    """Fields every target PDU has (RFC 7143 §11.2 BHS), plus the raw data segment (unpadded)."""

    opcode: int
    flags: int
    itt: int
    statsn: int
    exp_cmdsn: int
    max_cmdsn: int
    data: bytes

    @property
    def name(self) -> str:
        """Opcode name, e.g. `LOGIN_RESPONSE`."""
        try:
            return Opcode(self.opcode).name
        except ValueError:
            return f"0x{self.opcode:02x}"

    @property
    def advances_statsn(self) -> bool:
        """True when this PDU's StatSN is a status number the initiator acknowledges (§4.2.2.2)."""
        return True


@dataclass(frozen=True)
class LoginResponse(TargetPdu):
    """Login Response (§11.13)."""

    transit: bool
    cont: bool
    csg: int
    nsg: int
    isid: int
    tsih: int
    status_class: int
    status_detail: int
    keys: tuple[tuple[str, str], ...]

    @property
    def status(self) -> int:
        """Status-Class << 8 | Status-Detail, e.g. 0x0206."""
        return self.status_class << 8 | self.status_detail


@dataclass(frozen=True)
class TextResponse(TargetPdu):
    """Text Response (§11.11)."""

    final: bool
    cont: bool
    ttt: int
    keys: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ScsiResponse(TargetPdu):
    """SCSI Response (§11.4)."""

    response: int
    status: int
    residual: int


@dataclass(frozen=True)
class DataIn(TargetPdu):
    """SCSI Data-In (§11.7); `status` only meaningful with S."""

    has_status: bool
    status: int
    datasn: int
    offset: int

    @property
    def advances_statsn(self) -> bool:
        """Only a Data-In with the S bit carries a real StatSN."""
        return self.has_status


@dataclass(frozen=True)
class R2T(TargetPdu):
    """Ready To Transfer (§11.8)."""

    ttt: int
    r2tsn: int
    offset: int
    length: int

    @property
    def advances_statsn(self) -> bool:
        """R2T carries the next StatSN without consuming it."""
        return False


@dataclass(frozen=True)
class LogoutResponse(TargetPdu):
    """Logout Response (§11.15)."""

    response: int
    time2wait: int
    time2retain: int


@dataclass(frozen=True)
class TmfResponse(TargetPdu):
    """Task Management Function Response (§11.6)."""

    response: int


@dataclass(frozen=True)
class NopIn(TargetPdu):
    """NOP-In (§11.19): ITT valid = answer to our ping; TTT valid = the target pings us."""

    ttt: int

    @property
    def advances_statsn(self) -> bool:
        """An unsolicited NOP-In (ITT 0xffffffff) does not consume a StatSN."""
        return self.itt != RESERVED_TAG


@dataclass(frozen=True)
class AsyncMessage(TargetPdu):
    """Asynchronous Message (§11.9)."""

    event: int
    vcode: int
    param1: int
    param2: int
    param3: int


@dataclass(frozen=True)
class Reject(TargetPdu):
    """Reject (§11.17); `data` holds the rejected PDU's header."""

    reason: int


@dataclass(frozen=True)
class OtherPdu(TargetPdu):
    """Any opcode this initiator does not decode further."""


_WORDS = struct.Struct(">7I")  # bytes 20-47


def _common(bhs: bytes, data: bytes) -> dict[str, object]:
    w = _WORDS.unpack_from(bhs, 20)
    return {"opcode": bhs[0] & 0x3F, "flags": bhs[1], "itt": struct.unpack_from(">I", bhs, 16)[0],
            "statsn": w[1], "exp_cmdsn": w[2], "max_cmdsn": w[3], "data": data}


def decode_login_response(bhs: bytes, data: bytes) -> LoginResponse:
    """Login Response (§11.13): T/C/CSG/NSG, ISID+TSIH, status class/detail at bytes 36-37."""
    f = bhs[1]
    return LoginResponse(**_common(bhs, data), transit=bool(f & 0x80), cont=bool(f & 0x40),  # type: ignore[arg-type]
                         csg=(f >> 2) & 3, nsg=f & 3, isid=int.from_bytes(bhs[8:14], "big"),
                         tsih=int.from_bytes(bhs[14:16], "big"), status_class=bhs[36], status_detail=bhs[37],
                         keys=decode_keys(data))


def decode_text_response(bhs: bytes, data: bytes) -> TextResponse:
    """Text Response (§11.11): F/C, TTT at 20."""
    return TextResponse(**_common(bhs, data), final=bool(bhs[1] & 0x80), cont=bool(bhs[1] & 0x40),  # type: ignore[arg-type]
                        ttt=struct.unpack_from(">I", bhs, 20)[0], keys=decode_keys(data))


def decode_scsi_response(bhs: bytes, data: bytes) -> ScsiResponse:
    """SCSI Response (§11.4): response byte 2, status byte 3, residual at 44."""
    return ScsiResponse(**_common(bhs, data), response=bhs[2], status=bhs[3],  # type: ignore[arg-type]
                        residual=struct.unpack_from(">I", bhs, 44)[0])


def decode_data_in(bhs: bytes, data: bytes) -> DataIn:
    """SCSI Data-In (§11.7): S bit 0x01, status byte 3, DataSN 36, BufferOffset 40."""
    return DataIn(**_common(bhs, data), has_status=bool(bhs[1] & 0x01), status=bhs[3],  # type: ignore[arg-type]
                  datasn=struct.unpack_from(">I", bhs, 36)[0], offset=struct.unpack_from(">I", bhs, 40)[0])


def decode_r2t(bhs: bytes, data: bytes) -> R2T:
    """R2T (§11.8): TTT 20, R2TSN 36, BufferOffset 40, DesiredDataTransferLength 44."""
    ttt, r2tsn, offset, length = (struct.unpack_from(">I", bhs, o)[0] for o in (20, 36, 40, 44))
    return R2T(**_common(bhs, data), ttt=ttt, r2tsn=r2tsn, offset=offset, length=length)  # type: ignore[arg-type]


def decode_logout_response(bhs: bytes, data: bytes) -> LogoutResponse:
    """Logout Response (§11.15): response byte 2, Time2Wait 40, Time2Retain 42."""
    t2w, t2r = struct.unpack_from(">HH", bhs, 40)
    return LogoutResponse(**_common(bhs, data), response=bhs[2], time2wait=t2w, time2retain=t2r)  # type: ignore[arg-type]


def decode_tmf_response(bhs: bytes, data: bytes) -> TmfResponse:
    """Task Management Function Response (§11.6): response byte 2."""
    return TmfResponse(**_common(bhs, data), response=bhs[2])  # type: ignore[arg-type]


def decode_nop_in(bhs: bytes, data: bytes) -> NopIn:
    """NOP-In (§11.19): TTT at 20."""
    return NopIn(**_common(bhs, data), ttt=struct.unpack_from(">I", bhs, 20)[0])  # type: ignore[arg-type]


def decode_async(bhs: bytes, data: bytes) -> AsyncMessage:
    """Asynchronous Message (§11.9): event 36, vcode 37, parameters 38/40/42."""
    p1, p2, p3 = struct.unpack_from(">HHH", bhs, 38)
    return AsyncMessage(**_common(bhs, data), event=bhs[36], vcode=bhs[37],  # type: ignore[arg-type]
                        param1=p1, param2=p2, param3=p3)


def decode_reject(bhs: bytes, data: bytes) -> Reject:
    """Reject (§11.17): reason byte 2."""
    return Reject(**_common(bhs, data), reason=bhs[2])  # type: ignore[arg-type]


DECODERS: dict[int, Callable[[bytes, bytes], TargetPdu]] = {
    Opcode.LOGIN_RESPONSE: decode_login_response,  # §11.13
    Opcode.TEXT_RESPONSE: decode_text_response,  # §11.11
    Opcode.SCSI_RESPONSE: decode_scsi_response,  # §11.4
    Opcode.DATA_IN: decode_data_in,  # §11.7
    Opcode.R2T: decode_r2t,  # §11.8
    Opcode.LOGOUT_RESPONSE: decode_logout_response,  # §11.15
    Opcode.TMF_RESPONSE: decode_tmf_response,  # §11.6
    Opcode.NOP_IN: decode_nop_in,  # §11.19
    Opcode.ASYNC_MESSAGE: decode_async,  # §11.9
    Opcode.REJECT: decode_reject,  # §11.17
}


def pdu_lengths(bhs: bytes) -> tuple[int, int]:
    """(TotalAHSLength in bytes, DataSegmentLength) of a BHS."""
    return bhs[4] * 4, int.from_bytes(bhs[5:8], "big")


def decode_pdu(bhs: bytes, data: bytes) -> TargetPdu:
    """Decode one target PDU from its BHS and (unpadded) data segment."""
    if len(bhs) != BHS_LEN:
        raise ValueError(f"BHS must be {BHS_LEN} bytes, got {len(bhs)}")
    decoder = DECODERS.get(bhs[0] & 0x3F)
    if decoder is None:
        return OtherPdu(**_common(bhs, data))  # type: ignore[arg-type]
    return decoder(bhs, data)


def split_pdus(stream: bytes) -> list[tuple[bytes, bytes]]:
    """Split a byte stream of whole PDUs (no digests) into (BHS, data) pairs; for tests and tools."""
    out = []
    pos = 0
    while pos + BHS_LEN <= len(stream):
        bhs = stream[pos:pos + BHS_LEN]
        ahs, dlen = pdu_lengths(bhs)
        start = pos + BHS_LEN + ahs
        out.append((bhs, stream[start:start + dlen]))
        pos = start + dlen + (-dlen % 4)
    return out


# ------------------------------------------------------------------------------------------- namespaces

_CLONE_NEWNET = 0x40000000
_SETNS_LOCK = threading.Lock()


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def socket_in_netns(netns: str | None, family: int = socket.AF_INET) -> socket.socket:
    """A TCP socket created inside network namespace `netns` (`ip netns` name; None = ours).

    setns(2) switches only the calling thread; we switch back before returning, so only the socket lives
    in the namespace.
    """
    if netns is None:
        return socket.socket(family, socket.SOCK_STREAM)
    with _SETNS_LOCK:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                _setns(target)
                try:
                    return socket.socket(family, socket.SOCK_STREAM)
                finally:
                    _setns(own)
            finally:
                os.close(target)
        finally:
            os.close(own)


# ------------------------------------------------------------------------------------------- session state

@dataclass
class Event:
    """One PDU sent or received, for the scenario's step log."""

    at: float  # time.time()
    cid: int
    direction: str  # "->" initiator to target, "<-" target to initiator
    summary: str


@dataclass
class Session:
    """Session-wide state (RFC 7143 §4.2.2.1): identity, CmdSN window, ITT allocation."""

    initiator_name: str
    target_name: str
    isid: int
    tsih: int = 0
    cmdsn: int = 1
    exp_cmdsn: int = 1
    max_cmdsn: int = 1
    next_itt: int = 0x10
    events: list[Event] = field(default_factory=list)

    def new_itt(self) -> int:
        """A fresh Initiator Task Tag (never 0xffffffff)."""
        itt = self.next_itt
        self.next_itt = (self.next_itt + 1) & 0xFFFFFFFF
        if self.next_itt == RESERVED_TAG:
            self.next_itt = 0x10
        return itt

    def take_cmdsn(self, immediate: bool) -> int:
        """The CmdSN for a new request; a non-immediate request consumes it (§4.2.2.1)."""
        sn = self.cmdsn
        if not immediate:
            self.cmdsn = sn_add(sn, 1)
        return sn

    def update_window(self, exp_cmdsn: int, max_cmdsn: int) -> None:
        """Take ExpCmdSN/MaxCmdSN from a target PDU if they move forward (§4.2.2.1).

        A MaxCmdSN below ExpCmdSN - 1 is invalid and ignored as a pair.
        """
        if sn_lt(max_cmdsn, sn_add(exp_cmdsn, -1)):
            return
        if sn_lt(self.exp_cmdsn, exp_cmdsn):
            self.exp_cmdsn = exp_cmdsn
        if sn_lt(self.max_cmdsn, max_cmdsn):
            self.max_cmdsn = max_cmdsn

    def in_window(self, cmdsn: int) -> bool:
        """ExpCmdSN <= cmdsn <= MaxCmdSN (serial arithmetic)."""
        return not sn_lt(cmdsn, self.exp_cmdsn) and not sn_lt(self.max_cmdsn, cmdsn)


@dataclass(frozen=True)
class LoginResult:
    """How a login ended: final status, TSIH, every key the target sent, its Login Responses."""

    status: int
    tsih: int
    keys: tuple[tuple[str, str], ...]
    responses: tuple[LoginResponse, ...]

    @property
    def ok(self) -> bool:
        """True when the connection reached Full Feature Phase."""
        return self.status == 0


@dataclass(frozen=True)
class TextResult:
    """A Text exchange: every Text Response (or Reject) of it and the target's text, rejoined (§6.1)."""

    itt: int
    responses: tuple[TargetPdu, ...]
    keys: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class CommandResult:
    """A finished SCSI command: status, Data-In bytes, and every PDU the target sent for it."""

    itt: int
    cmdsn: int
    status: int | None
    data: bytes
    pdus: tuple[TargetPdu, ...]


#: Operational keys offered on every Normal-session login (RFC 7143 §13).
DEFAULT_OPERATIONAL_KEYS: tuple[tuple[str, str], ...] = (
    ("HeaderDigest", "None"), ("DataDigest", "None"), ("InitialR2T", "Yes"), ("ImmediateData", "Yes"),
    ("MaxRecvDataSegmentLength", "8192"), ("MaxBurstLength", "262144"), ("FirstBurstLength", "65536"),
    ("DefaultTime2Wait", "2"), ("DefaultTime2Retain", "20"), ("MaxOutstandingR2T", "1"),
    ("DataPDUInOrder", "Yes"), ("DataSequenceInOrder", "Yes"), ("ErrorRecoveryLevel", "0"),
)
#: Keys the target sends that need no answer (declarative, §13).
_DECLARATIVE = {"TargetAlias", "TargetPortalGroupTag", "TargetAddress", "MaxRecvDataSegmentLength",
                "InitiatorAlias"}


class Connection:
    """One TCP connection of a `Session`: CID, ExpStatSN, PDU I/O with timeouts."""

    def __init__(self, session: Session, sock: socket.socket, cid: int, *,
                 timeout: float = READ_TIMEOUT) -> None:
        self.session = session
        self.sock = sock
        self.cid = cid
        self.timeout = timeout
        self.exp_statsn = 0
        self.target_mrdsl = 8192
        self.first_burst = 65536
        self.immediate_data = True
        self.initial_r2t = True
        self.negotiated: dict[str, str] = {}
        self.closed: str | None = None  # None | "fin" | "rst" | "local"
        self._buf = b""
        self.backlog: list[TargetPdu] = []  # PDUs read while waiting for something else
        self._cork: list[bytes] | None = None

    # -- construction ----------------------------------------------------------------------------------
    @classmethod
    def open(cls, session: Session, host: str, port: int = 3260, *, cid: int = 0, netns: str | None = None,
             timeout: float = READ_TIMEOUT) -> Connection:
        """Connect a new TCP connection (inside `netns`) for `session`."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket_in_netns(netns, family)
        sock.settimeout(timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect((host, port))
        return cls(session, sock, cid, timeout=timeout)

    # -- raw I/O ---------------------------------------------------------------------------------------
    def _log(self, direction: str, summary: str) -> None:
        self.session.events.append(Event(time.time(), self.cid, direction, summary))

    def send(self, pdu: bytes, summary: str) -> None:
        """Write one encoded PDU."""
        self._log("->", summary)
        if self._cork is not None:
            self._cork.append(pdu)
        else:
            self._write(pdu, summary.split(" ITT")[0])

    def _write(self, data: bytes, what: str) -> None:
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            self.closed = "rst" if isinstance(exc, ConnectionResetError) else "fin"
            raise ConnectionEnded(self.closed, f"while sending {what}") from exc

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Inside the block, PDUs are queued; at its end they go out with one `sendall` (one TCP segment
        when they fit), so the target sees them back to back."""
        self._cork = []
        try:
            yield
            pdus, self._cork = self._cork, None
            self._write(b"".join(pdus), "batch")
        finally:
            self._cork = None

    def _read_exact(self, n: int, deadline: float) -> bytes:
        while len(self._buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ScriptedTimeout(f"CID {self.cid}: no complete PDU within {self.timeout:g}s")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError as exc:
                raise ScriptedTimeout(f"CID {self.cid}: no complete PDU within {self.timeout:g}s") from exc
            except ConnectionResetError as exc:
                self.closed = "rst"
                raise ConnectionEnded("rst") from exc
            if not chunk:
                self.closed = "fin"
                raise ConnectionEnded("fin")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def recv_pdu(self, timeout: float | None = None) -> TargetPdu:
        """Read the next target PDU (raises `ScriptedTimeout` or `ConnectionEnded`)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        bhs = self._read_exact(BHS_LEN, deadline)
        ahs, dlen = pdu_lengths(bhs)
        if ahs:
            self._read_exact(ahs, deadline)
        body = self._read_exact(dlen + (-dlen % 4), deadline) if dlen else b""
        pdu = decode_pdu(bhs, body[:dlen])
        self._account(pdu)
        self._log("<-", describe(pdu))
        return pdu

    def _account(self, pdu: TargetPdu) -> None:
        # §4.2.2.2: ExpStatSN = last StatSN + 1; PDUs that do not consume a StatSN only carry the next one.
        nxt = sn_add(pdu.statsn, 1) if pdu.advances_statsn else pdu.statsn
        if pdu.opcode == Opcode.LOGIN_RESPONSE or sn_lt(self.exp_statsn, nxt):
            self.exp_statsn = nxt
        if pdu.opcode != Opcode.LOGIN_RESPONSE or (isinstance(pdu, LoginResponse) and pdu.status_class == 0):
            self.session.update_window(pdu.exp_cmdsn, pdu.max_cmdsn)

    def wait_for(self, match: Callable[[TargetPdu], bool], timeout: float | None = None) -> TargetPdu:
        """Read PDUs until one satisfies `match` (earlier ones go to `backlog`); first search the backlog."""
        for i, pdu in enumerate(self.backlog):
            if match(pdu):
                return self.backlog.pop(i)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            pdu = self.recv_pdu(max(0.0, deadline - time.monotonic()))
            if match(pdu):
                return pdu
            self.backlog.append(pdu)

    def drain(self, seconds: float) -> list[TargetPdu]:
        """Read whatever arrives for `seconds` (stops early when the target closes)."""
        got: list[TargetPdu] = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                got.append(self.recv_pdu(remaining))
            except (ScriptedTimeout, ConnectionEnded):
                break
        self.backlog.extend(got)
        return got

    def wait_closed(self, timeout: float) -> str | None:
        """Wait for the target to close the connection; return "fin"/"rst", or None if it stayed open."""
        if self.closed is not None:
            return self.closed
        try:
            while True:
                self.backlog.append(self.recv_pdu(timeout))
        except ScriptedTimeout:
            return None
        except ConnectionEnded as exc:
            return exc.how

    def close(self) -> None:
        """Close our side normally (FIN)."""
        if self.closed != "local":
            self._log("--", "close (FIN)")
        self.closed = self.closed or "local"
        self.sock.close()

    def reset(self) -> None:
        """Abort the connection: SO_LINGER 0 then close, so the kernel sends RST (no logout)."""
        self._log("--", "abort (RST via SO_LINGER 0)")
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
        self.closed = "local"

    # -- login -----------------------------------------------------------------------------------------
    def login(self, *, session_type: str = "Normal", operational: Sequence[tuple[str, str]] = (),
              extra: Sequence[tuple[str, str]] = (), itt: int | None = None,
              first: Sequence[tuple[str, str]] | None = None, cuts: Sequence[int] = ()) -> LoginResult:
        """Security stage (AuthMethod=None) then operational stage up to Full Feature Phase.

        On success with TSIH 0 the session takes the new TSIH from the final response (§11.13.3). A
        non-zero status ends the login: the target closes the connection (§11.13.5). `first` replaces the
        security stage's keys; `cuts` sends them as a C-bit series cut at those byte offsets (§6.1).
        """
        s = self.session
        itt = s.new_itt() if itt is None else itt
        keys: list[tuple[str, str]] = [("InitiatorName", s.initiator_name), ("SessionType", session_type)]
        if session_type == "Normal":
            keys.append(("TargetName", s.target_name))
        keys += [("AuthMethod", "None"), *extra]
        if first is not None:
            keys = list(first)
        responses: list[LoginResponse] = []
        all_keys: list[tuple[str, str]] = []
        stage, nsg = Stage.SECURITY, Stage.OPERATIONAL
        offered = dict(DEFAULT_OPERATIONAL_KEYS)
        offered.update(dict(operational))
        if session_type == "Discovery":
            offered = {k: v for k, v in offered.items()
                       if k in ("HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength")}
        for _ in range(8):
            rsp = self._login_text(encode_keys(keys), cuts, itt=itt, stage=stage, nsg=nsg, responses=responses)
            cuts = ()
            all_keys += rsp.keys
            if rsp.status_class != 0:
                return LoginResult(rsp.status, rsp.tsih, tuple(all_keys), tuple(responses))
            if rsp.transit and rsp.nsg == Stage.FULL_FEATURE:
                self._adopt(all_keys, offered)
                if s.tsih == 0:
                    s.tsih = rsp.tsih
                return LoginResult(0, rsp.tsih, tuple(all_keys), tuple(responses))
            if rsp.transit and rsp.nsg == Stage.OPERATIONAL:
                stage, nsg = Stage.OPERATIONAL, Stage.FULL_FEATURE
                keys = list(offered.items())
            else:
                # Target stayed in the stage (T=0): answer what it proposed (echo its values), offer nothing new.
                sent = {k for k, _ in keys}
                keys = [(k, v) for k, v in rsp.keys if k not in _DECLARATIVE and k not in sent]
        raise ScriptedError("login did not reach Full Feature Phase in 8 exchanges")

    def _login_text(self, text: bytes, cuts: Sequence[int], *, itt: int, stage: Stage, nsg: Stage,
                    responses: list[LoginResponse]) -> LoginResponse:
        """One login exchange: `text` as one Login Request (T=1), or cut into a C-bit series (C=1, T=0 for
        every piece but the last, §6.1, §11.12), each piece waiting for the target's answer; a target
        answer with C=1 is followed with empty Login Requests (§6.2). Every response goes to `responses`;
        returns the last one with the target's text of its series rejoined."""
        s = self.session
        pieces = cut_text(text, cuts)
        rsp: TargetPdu | None = None
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            self.send(encode_login_request(isid=s.isid, tsih=s.tsih, cid=self.cid, itt=itt, cmdsn=s.cmdsn,
                                           exp_statsn=self.exp_statsn, csg=stage, nsg=nsg, transit=last,
                                           keys=(), cont=not last, data=piece),
                      f"Login Request CSG={stage.name} NSG={nsg.name} T={int(last)} C={int(not last)} "
                      f"ISID=0x{s.isid:012x} TSIH=0x{s.tsih:04x} CID={self.cid} ITT=0x{itt:x} len={len(piece)}")
            rsp = self.wait_for(lambda p: p.opcode in (Opcode.LOGIN_RESPONSE, Opcode.REJECT))
            if not isinstance(rsp, LoginResponse):
                raise ScriptedError(f"login answered by {describe(rsp)}")
            responses.append(rsp)
            if rsp.status_class != 0:
                return rsp
        assert isinstance(rsp, LoginResponse)
        data = bytearray(rsp.data)
        while rsp.cont:
            self.send(encode_login_request(isid=s.isid, tsih=s.tsih, cid=self.cid, itt=itt, cmdsn=s.cmdsn,
                                           exp_statsn=self.exp_statsn, csg=stage, nsg=nsg, transit=False,
                                           keys=()),
                      f"Login Request CSG={stage.name} T=0 (empty: the target's text continues) ITT=0x{itt:x}")
            nxt = self.wait_for(lambda p: p.opcode in (Opcode.LOGIN_RESPONSE, Opcode.REJECT))
            if not isinstance(nxt, LoginResponse):
                raise ScriptedError(f"login answered by {describe(nxt)}")
            responses.append(nxt)
            data += nxt.data
            rsp = nxt
        return rsp if len(data) == len(rsp.data) else replace(rsp, keys=decode_keys(bytes(data)))

    def _adopt(self, target_keys: Sequence[tuple[str, str]], offered: dict[str, str]) -> None:
        agreed = dict(offered)
        agreed.update(dict(target_keys))
        self.negotiated = agreed
        self.target_mrdsl = int(dict(target_keys).get("MaxRecvDataSegmentLength", "8192"))
        self.first_burst = int(agreed.get("FirstBurstLength", "65536"))
        self.immediate_data = agreed.get("ImmediateData", "Yes") == "Yes"
        self.initial_r2t = agreed.get("InitialR2T", "Yes") == "Yes"

    # -- full feature phase ----------------------------------------------------------------------------
    def submit_command(self, cdb: bytes, *, lun: int = 1, read_length: int = 0, write_data: bytes = b"",
                       cmdsn: int | None = None, immediate: bool = False, itt: int | None = None) -> tuple[int, int]:
        """Send a SCSI Command (with immediate data when allowed) without waiting; return (ITT, CmdSN).

        `cmdsn` overrides the session counter (which is then NOT advanced) to break §4.2.2.1 on purpose.
        """
        s = self.session
        itt = s.new_itt() if itt is None else itt
        sn = s.take_cmdsn(immediate) if cmdsn is None else cmdsn
        imm = write_data[:min(self.first_burst, self.target_mrdsl)] if self.immediate_data else b""
        final = not write_data or self.initial_r2t or len(imm) == len(write_data)
        edtl = read_length or len(write_data)
        self.send(encode_scsi_command(lun=lun, itt=itt, cmdsn=sn, exp_statsn=self.exp_statsn, cdb=cdb,
                                      expected_length=edtl, read=bool(read_length), write=bool(write_data),
                                      immediate_data=imm, final=final, immediate=immediate),
                  f"SCSI Command {_cdb_name(cdb)} ITT=0x{itt:x} CmdSN={sn}{' I' if immediate else ''} "
                  f"EDTL={edtl} immediate-data={len(imm)}")
        return itt, sn

    def complete_command(self, itt: int, *, lun: int = 1, write_data: bytes = b"",
                         timeout: float | None = None) -> CommandResult:
        """Collect Data-In / answer R2Ts until the command's status arrives."""
        pdus: list[TargetPdu] = []
        data = bytearray()
        sn = -1
        while True:
            pdu = self.wait_for(lambda p: p.itt == itt or p.opcode == Opcode.REJECT, timeout)
            pdus.append(pdu)
            if isinstance(pdu, Reject):
                return CommandResult(itt, sn, None, bytes(data), tuple(pdus))
            if isinstance(pdu, DataIn):
                data[pdu.offset:pdu.offset + len(pdu.data)] = pdu.data
                if pdu.has_status:
                    return CommandResult(itt, sn, pdu.status, bytes(data), tuple(pdus))
            elif isinstance(pdu, R2T):
                self._answer_r2t(pdu, lun, write_data)
            elif isinstance(pdu, ScsiResponse):
                return CommandResult(itt, sn, pdu.status, bytes(data), tuple(pdus))

    def _answer_r2t(self, r2t: R2T, lun: int, write_data: bytes) -> None:
        # §11.7: Data-Out PDUs for one R2T: DataSN from 0, each <= the target's MaxRecvDataSegmentLength.
        end = r2t.offset + r2t.length
        offset, datasn = r2t.offset, 0
        while offset < end:
            chunk = write_data[offset:min(end, offset + self.target_mrdsl)]
            last = offset + len(chunk) >= end
            self.send(encode_data_out(lun=lun, itt=r2t.itt, ttt=r2t.ttt, exp_statsn=self.exp_statsn,
                                      datasn=datasn, offset=offset, data=chunk, final=last),
                      f"Data-Out ITT=0x{r2t.itt:x} TTT=0x{r2t.ttt:x} DataSN={datasn} offset={offset} "
                      f"len={len(chunk)}{' F' if last else ''}")
            offset += len(chunk)
            datasn += 1

    def command(self, cdb: bytes, *, lun: int = 1, read_length: int = 0, write_data: bytes = b"",
                timeout: float | None = None) -> CommandResult:
        """Send a SCSI command and wait for its status."""
        itt, sn = self.submit_command(cdb, lun=lun, read_length=read_length, write_data=write_data)
        res = self.complete_command(itt, lun=lun, write_data=write_data, timeout=timeout)
        return CommandResult(res.itt, sn, res.status, res.data, res.pdus)

    def read10(self, lba: int, blocks: int, *, lun: int = 1, block_size: int = 512) -> CommandResult:
        """READ(10) of `blocks` blocks."""
        return self.command(cdb_read10(lba, blocks), lun=lun, read_length=blocks * block_size)

    def write10(self, lba: int, data: bytes, *, lun: int = 1, block_size: int = 512) -> CommandResult:
        """WRITE(10) of `data` (a multiple of the block size); immediate data, then Data-Out per R2T."""
        return self.command(cdb_write10(lba, len(data) // block_size), lun=lun, write_data=data)

    def inquiry(self, *, lun: int = 1) -> CommandResult:
        """Standard INQUIRY (96 bytes)."""
        return self.command(cdb_inquiry(96), lun=lun, read_length=96)

    def test_unit_ready(self, *, lun: int = 1) -> CommandResult:
        """TEST UNIT READY."""
        return self.command(cdb_test_unit_ready(), lun=lun)

    def send_nop_ping(self, payload: bytes = b"", *, immediate: bool = True) -> int:
        """NOP-Out with a valid ITT (a ping, §11.18) without waiting; return its ITT."""
        s = self.session
        itt = s.new_itt()
        sn = s.take_cmdsn(immediate)
        self.send(encode_nop_out(itt=itt, cmdsn=sn, exp_statsn=self.exp_statsn, data=payload, immediate=immediate),
                  f"NOP-Out ping ITT=0x{itt:x} CmdSN={sn}{' I' if immediate else ''} len={len(payload)}")
        return itt

    def nop_ping(self, payload: bytes = b"", *, immediate: bool = True, timeout: float | None = None) -> NopIn:
        """NOP-Out ping and its NOP-In (which echoes ITT and data)."""
        itt = self.send_nop_ping(payload, immediate=immediate)
        pdu = self.wait_for(lambda p: p.itt == itt, timeout)
        if not isinstance(pdu, NopIn):
            raise ScriptedError(f"NOP-Out ping answered by {describe(pdu)}")
        return pdu

    def send_text(self, keys: Sequence[tuple[str, str]], *, immediate: bool = False) -> int:
        """Text Request (new exchange, F=1) without waiting; return its ITT."""
        s = self.session
        itt = s.new_itt()
        sn = s.take_cmdsn(immediate)
        self.send(encode_text_request(itt=itt, cmdsn=sn, exp_statsn=self.exp_statsn, keys=keys, immediate=immediate),
                  f"Text Request ITT=0x{itt:x} CmdSN={sn} {' '.join(f'{k}={v}' for k, v in keys)}")
        return itt

    def text(self, keys: Sequence[tuple[str, str]], *, cuts: Sequence[int] = (),
             timeout: float | None = None) -> TextResult:
        """A Text exchange (§11.10, §11.11): the keys as one Text Request, or cut into a C-bit series at the
        byte offsets `cuts` (C=1, F=0 for every piece but the last, §6.1), each piece waiting for its answer.
        A response that continues (C=1, or F=0 with a TTT) is followed with empty Text Requests carrying its
        TTT until the final one; the target's text of that chain is concatenated and decoded."""
        s = self.session
        itt = s.new_itt()
        pieces = cut_text(encode_keys(keys), cuts)
        responses: list[TargetPdu] = []
        rsp: TargetPdu | None = None
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            sn = s.take_cmdsn(False)
            self.send(encode_text_request(itt=itt, cmdsn=sn, exp_statsn=self.exp_statsn, keys=(), final=last,
                                          cont=not last, data=piece),
                      f"Text Request ITT=0x{itt:x} CmdSN={sn} F={int(last)} C={int(not last)} len={len(piece)}")
            rsp = self.wait_for(lambda p: p.itt == itt or p.opcode == Opcode.REJECT, timeout)
            responses.append(rsp)
            if not isinstance(rsp, TextResponse):
                return TextResult(itt, tuple(responses), ())
        assert isinstance(rsp, TextResponse)
        data = bytearray(rsp.data)
        while rsp.cont or not rsp.final:
            sn = s.take_cmdsn(False)
            self.send(encode_text_request(itt=itt, cmdsn=sn, exp_statsn=self.exp_statsn, keys=(), ttt=rsp.ttt),
                      f"Text Request ITT=0x{itt:x} CmdSN={sn} TTT=0x{rsp.ttt:x} (empty: the target's text "
                      f"continues)")
            nxt = self.wait_for(lambda p: p.itt == itt or p.opcode == Opcode.REJECT, timeout)
            responses.append(nxt)
            if not isinstance(nxt, TextResponse):
                break
            data += nxt.data
            rsp = nxt
        return TextResult(itt, tuple(responses), decode_keys(bytes(data)))

    def send_logout(self, reason: LogoutReason, cid: int | None = None, *, immediate: bool = True) -> int:
        """Logout Request without waiting; return its ITT. `cid` defaults to this connection's CID."""
        s = self.session
        itt = s.new_itt()
        sn = s.take_cmdsn(immediate)
        cid = self.cid if cid is None else cid
        self.send(encode_logout_request(itt=itt, cmdsn=sn, exp_statsn=self.exp_statsn, reason=reason, cid=cid,
                                        immediate=immediate),
                  f"Logout Request reason={int(reason)} ({reason.name}) CID={cid} ITT=0x{itt:x} CmdSN={sn}")
        return itt

    def logout(self, reason: LogoutReason = LogoutReason.CLOSE_SESSION, cid: int | None = None,
               timeout: float | None = None) -> LogoutResponse:
        """Logout Request and its Logout Response."""
        itt = self.send_logout(reason, cid)
        pdu = self.wait_for(lambda p: p.itt == itt or p.opcode == Opcode.REJECT, timeout)
        if not isinstance(pdu, LogoutResponse):
            raise ScriptedError(f"Logout answered by {describe(pdu)}")
        return pdu

    def send_abort_task(self, ref_itt: int, ref_cmdsn: int, *, lun: int = 1) -> int:
        """ABORT TASK TMF (immediate) for `ref_itt` without waiting; return its ITT."""
        s = self.session
        itt = s.new_itt()
        sn = s.take_cmdsn(True)
        self.send(encode_tmf_request(itt=itt, cmdsn=sn, exp_statsn=self.exp_statsn, function=TmfFunction.ABORT_TASK,
                                     lun=lun, ref_itt=ref_itt, ref_cmdsn=ref_cmdsn),
                  f"TMF ABORT TASK ITT=0x{itt:x} RTT=0x{ref_itt:x} RefCmdSN={ref_cmdsn}")
        return itt


def _cdb_name(cdb: bytes) -> str:
    try:
        return ScsiOp(cdb[0]).name
    except ValueError:
        return f"op 0x{cdb[0]:02x}"


def describe(pdu: TargetPdu) -> str:
    """One line for a step log, e.g. `LOGIN_RESPONSE ITT=0x10 StatSN=0 status=0x0000 TSIH=0x0100`."""
    base = f"{pdu.name} ITT=0x{pdu.itt:x} StatSN={pdu.statsn} ExpCmdSN={pdu.exp_cmdsn} MaxCmdSN={pdu.max_cmdsn}"
    if isinstance(pdu, LoginResponse):
        return (f"{base} status=0x{pdu.status:04x} T={int(pdu.transit)} CSG={pdu.csg} NSG={pdu.nsg} "
                f"TSIH=0x{pdu.tsih:04x}")
    if isinstance(pdu, (ScsiResponse, DataIn)):
        extra = f" status=0x{pdu.status:02x}" if not isinstance(pdu, DataIn) or pdu.has_status else ""
        return f"{base}{extra} len={len(pdu.data)}"
    if isinstance(pdu, (LogoutResponse, TmfResponse)):
        return f"{base} response={pdu.response}"
    if isinstance(pdu, Reject):
        return f"{base} reason=0x{pdu.reason:02x}"
    if isinstance(pdu, R2T):
        return f"{base} TTT=0x{pdu.ttt:x} R2TSN={pdu.r2tsn} offset={pdu.offset} len={pdu.length}"
    if isinstance(pdu, AsyncMessage):
        return f"{base} event={pdu.event} P1={pdu.param1} P2={pdu.param2} P3={pdu.param3}"
    if isinstance(pdu, TextResponse):
        return f"{base} F={int(pdu.final)} C={int(pdu.cont)} TTT=0x{pdu.ttt:x} len={len(pdu.data)}"
    return base
