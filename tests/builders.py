"""Wire-byte builders for iSCSI PDUs (tests only; house style §6).

Every builder returns the **complete wire bytes** of one PDU: BHS, AHS, optional header
digest, data segment, zero padding to 4 bytes, optional data digest. TotalAHSLength and
DataSegmentLength are filled in from the actual AHS and data unless you override them.
Keyword names mirror the record fields in ``analyzer.records`` so a test can write
``login_request(keys=[("InitiatorName", "iqn.x")], isid=..., cmdsn=1)``.

Low level::

    bhs(Opcode.NOP_OUT, immediate=True, byte1=0x80, itt=1, w20=0xffffffff)  # 48 bytes
    pdu(bhs_bytes, ahs=b"", data=b"...", header_digest=True, data_digest=True)  # wire bytes

Helpers for decoding what you built::

    split_pdu(wire, header_digest=False, data_digest=False) -> Parts(bhs, ahs, data, hd, dd)
    decode_wire(wire, ...) -> Pdu         # split_pdu + decode_pdu with test defaults
    encode_pdu(record) -> bytes           # wire bytes for a decoded record (round trips)

Sense data: ``fixed_sense(key, asc, ascq, information=None)`` and ``descriptor_sense(...)``.
All sequence-number fields default to 0 and tags to 0xffffffff where the RFC says
"reserved tag" is the normal value (TTT of requests, ITT of unsolicited PDUs).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

from analyzer.iscsi.crc32c import digest_bytes
from analyzer.iscsi.opcodes import Opcode
from analyzer.iscsi.pdus import decode_pdu
from analyzer.iscsi.text_keys import encode_keys
from analyzer.records import (
    R2T,
    AsyncMessage,
    DataIn,
    DataOut,
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Pdu,
    Reject,
    ScsiCommand,
    ScsiResponse,
    Sense,
    Snack,
    TaskMgmtRequest,
    TaskMgmtResponse,
    TextRequest,
    TextResponse,
    UnknownPdu,
)

RESERVED = 0xFFFFFFFF
#: A typical random-type ISID (T=10b): 0x80 0x12 0x34 0x56 0x00 0x01.
DEFAULT_ISID = 0x8012_3456_0001

Keys = Sequence[tuple[str, str]]


# --------------------------------------------------------------------------- low level


def encode_lun(lun: int) -> bytes:
    """8-byte SAM LUN: 0-255 peripheral addressing, 256-16383 flat space, larger = raw 64-bit value."""
    if 0 <= lun <= 0xFF:
        return bytes([0, lun]) + bytes(6)
    if lun <= 0x3FFF:
        return bytes([0x40 | lun >> 8, lun & 0xFF]) + bytes(6)
    return lun.to_bytes(8, "big")


def bhs(opcode: int, *, immediate: bool = False, byte1: int = 0, byte2: int = 0, byte3: int = 0,
        total_ahs_length: int = 0, dsl: int = 0, lun: int = 0, bytes8: bytes | None = None, itt: int = 0,
        w20: int = 0, w24: int = 0, w28: int = 0, w32: int = 0, w36: int = 0, w40: int = 0, w44: int = 0,
        bytes32: bytes | None = None) -> bytes:
    """A 48-byte BHS from raw fields (§11.2.1).

    ``bytes8`` (8 bytes) replaces the LUN field (Login ISID/TSIH); ``bytes32`` (16 bytes)
    replaces words 32-44 (the CDB of a SCSI Command).
    """
    out = bytearray(48)
    out[0] = (0x40 if immediate else 0) | (opcode & 0x3F)
    out[1], out[2], out[3] = byte1 & 0xFF, byte2 & 0xFF, byte3 & 0xFF
    struct.pack_into(">I", out, 4, (total_ahs_length & 0xFF) << 24 | (dsl & 0xFFFFFF))
    out[8:16] = bytes8 if bytes8 is not None else encode_lun(lun)
    struct.pack_into(">IIII", out, 16, itt, w20, w24, w28)
    if bytes32 is not None:
        if len(bytes32) != 16:
            raise ValueError("bytes32 must be 16 bytes")
        out[32:48] = bytes32
    else:
        struct.pack_into(">IIII", out, 32, w32, w36, w40, w44)
    return bytes(out)


def pad4(data: bytes) -> bytes:
    """``data`` zero-padded to a multiple of 4 bytes."""
    return data + bytes(-len(data) % 4)


def ahs_segment(ahs_type: int, data: bytes) -> bytes:
    """One AHS: AHSLength(2) AHSType(1) data, padded to 4 bytes (§11.2.2)."""
    return pad4(struct.pack(">HB", len(data), ahs_type) + data)


def pdu(header: bytes, ahs: bytes = b"", data: bytes = b"", *, header_digest: bool = False,
        data_digest: bool = False, fix_lengths: bool = True, bad_header_digest: bool = False,
        bad_data_digest: bool = False) -> bytes:
    """Wire bytes: BHS (+lengths fixed up) AHS [HeaderDigest] data pad [DataDigest] (§11.2).

    The data digest is only present when there is data (§11.2.3); it covers data+padding.
    ``bad_*_digest`` flips the digest bytes to build corrupt PDUs.
    """
    if len(header) != 48:
        raise ValueError("BHS must be 48 bytes")
    if len(ahs) % 4:
        raise ValueError("AHS bytes must be a multiple of 4")
    h = bytearray(header)
    if fix_lengths:
        struct.pack_into(">I", h, 4, (len(ahs) // 4) << 24 | len(data))
    head = bytes(h) + ahs
    out = head
    if header_digest:
        d = digest_bytes(head)
        out += bytes(b ^ 0xFF for b in d) if bad_header_digest else d
    if data:
        padded = pad4(data)
        out += padded
        if data_digest:
            d = digest_bytes(padded)
            out += bytes(b ^ 0xFF for b in d) if bad_data_digest else d
    return out


class Parts(NamedTuple):
    """A PDU's wire bytes split the way the framer hands them to ``decode_pdu``."""

    bhs: bytes
    ahs: bytes
    data: bytes
    header_digest: bytes | None
    data_digest: bytes | None


def split_pdu(wire: bytes, *, header_digest: bool = False, data_digest: bool = False) -> Parts:
    """Split one PDU's wire bytes (must be exactly one PDU) into its parts."""
    head = wire[:48]
    tahs = head[4] * 4
    dsl = int.from_bytes(head[5:8], "big")
    pos = 48 + tahs
    ahs = wire[48:pos]
    hd = None
    if header_digest:
        hd = wire[pos:pos + 4]
        pos += 4
    data = wire[pos:pos + dsl]
    pos += dsl + (-dsl % 4)
    dd = None
    if data_digest and dsl:
        dd = wire[pos:pos + 4]
        pos += 4
    if pos != len(wire):
        raise ValueError(f"wire is {len(wire)} bytes, PDU is {pos}")
    return Parts(head, ahs, data, hd, dd)


def decode_wire(wire: bytes, *, header_digest: bool = False, data_digest: bool = False, keep_data: bool = True,
                frame: int = 1, ts_ns: int = 0, conn: str = "c", direction: str = "i2t",
                first_frame: int | None = None) -> Pdu:
    """``split_pdu`` + ``decode_pdu`` with test defaults; digests reported as "ok"/"bad" when present."""
    p = split_pdu(wire, header_digest=header_digest, data_digest=data_digest)
    hd = None
    if p.header_digest is not None:
        hd = "ok" if digest_bytes(p.bhs + p.ahs) == p.header_digest else "bad"
    dd = None
    if p.data_digest is not None:
        dd = "ok" if digest_bytes(pad4(p.data)) == p.data_digest else "bad"
    return decode_pdu(p.bhs, p.ahs, p.data if keep_data else None, frame, ts_ns, conn, direction,
                      frame if first_frame is None else first_frame, hd, dd)


# --------------------------------------------------------------------------- sense data


def fixed_sense(key: int, asc: int = 0, ascq: int = 0, information: int | None = None,
                response_code: int = 0x70, additional_length: int = 10) -> bytes:
    """Fixed-format sense data (SPC-4 §4.5.3), 8 + additional_length bytes."""
    out = bytearray(8 + additional_length)
    out[0] = response_code | (0x80 if information is not None else 0)
    out[2] = key & 0x0F
    if information is not None:
        out[3:7] = information.to_bytes(4, "big")
    out[7] = additional_length
    if additional_length >= 6:
        out[12], out[13] = asc, ascq
    return bytes(out)


def descriptor_sense(key: int, asc: int = 0, ascq: int = 0, information: int | None = None,
                     response_code: int = 0x72) -> bytes:
    """Descriptor-format sense data (SPC-4 §4.5.2), with an Information descriptor if given."""
    descs = b""
    if information is not None:
        descs = bytes([0x00, 0x0A, 0x80, 0x00]) + information.to_bytes(8, "big")
    return bytes([response_code, key & 0x0F, asc, ascq, 0, 0, 0, len(descs)]) + descs


def sense_segment(sense: bytes, response_data: bytes = b"") -> bytes:
    """SCSI Response / Async data segment: SenseLength(2) + sense + response data (§11.4.7)."""
    return struct.pack(">H", len(sense)) + sense + response_data


# --------------------------------------------------------------------------- requests


def nop_out(*, itt: int = RESERVED, ttt: int = RESERVED, cmdsn: int = 0, expstatsn: int = 0, lun: int = 0,
            immediate: bool = True, data: bytes = b"", header_digest: bool = False,
            data_digest: bool = False) -> bytes:
    """NOP-Out (§11.18). Defaults: unsolicited ping with no reply wanted (ITT=TTT=0xffffffff, I=1)."""
    h = bhs(Opcode.NOP_OUT, immediate=immediate, byte1=0x80, lun=lun, itt=itt, w20=ttt, w24=cmdsn, w28=expstatsn)
    return pdu(h, data=data, header_digest=header_digest, data_digest=data_digest)


def scsi_command(*, cdb: bytes, itt: int = 1, lun: int = 0, read: bool = False, write: bool = False,
                 attr: int = 1, final: bool = True, edtl: int = 0, cmdsn: int = 0, expstatsn: int = 0,
                 immediate: bool = False, data: bytes = b"", bidi_read_edtl: int | None = None,
                 header_digest: bool = False, data_digest: bool = False) -> bytes:
    """SCSI Command (§11.3). A CDB longer than 16 bytes gets an Extended CDB AHS; ``bidi_read_edtl``
    adds a Bidirectional Read Expected Data Transfer Length AHS. ``data`` is immediate data."""
    flags = (0x80 if final else 0) | (0x40 if read else 0) | (0x20 if write else 0) | (attr & 7)
    ahs = b""
    if len(cdb) > 16:
        ahs += ahs_segment(1, b"\0" + cdb[16:])
    if bidi_read_edtl is not None:
        ahs += ahs_segment(2, b"\0" + bidi_read_edtl.to_bytes(4, "big"))
    h = bhs(Opcode.SCSI_COMMAND, immediate=immediate, byte1=flags, lun=lun, itt=itt, w20=edtl, w24=cmdsn,
            w28=expstatsn, bytes32=cdb[:16].ljust(16, b"\0"))
    return pdu(h, ahs, data, header_digest=header_digest, data_digest=data_digest)


def task_mgmt_request(*, function: int, itt: int = 1, ref_task_tag: int = RESERVED, lun: int = 0,
                      cmdsn: int = 0, expstatsn: int = 0, ref_cmdsn: int = 0, exp_datasn: int = 0,
                      immediate: bool = True, header_digest: bool = False) -> bytes:
    """Task Management Function Request (§11.5)."""
    h = bhs(Opcode.TASK_MGMT_REQUEST, immediate=immediate, byte1=0x80 | function, lun=lun, itt=itt,
            w20=ref_task_tag, w24=cmdsn, w28=expstatsn, w32=ref_cmdsn, w36=exp_datasn)
    return pdu(h, header_digest=header_digest)


def login_request(*, keys: Keys = (), transit: bool = True, cont: bool = False, csg: int = 1, nsg: int = 3,
                  version_max: int = 0, version_min: int = 0, isid: int = DEFAULT_ISID, tsih: int = 0,
                  itt: int = 0, cid: int = 0, cmdsn: int = 0, expstatsn: int = 0,
                  data: bytes | None = None) -> bytes:
    """Login Request (§11.12), always I=1. ``keys`` are encoded NUL-terminated; ``data`` overrides them."""
    flags = (0x80 if transit else 0) | (0x40 if cont else 0) | (csg & 3) << 2 | (nsg & 3)
    h = bhs(Opcode.LOGIN_REQUEST, immediate=True, byte1=flags, byte2=version_max, byte3=version_min,
            bytes8=isid.to_bytes(6, "big") + tsih.to_bytes(2, "big"), itt=itt, w20=cid << 16, w24=cmdsn,
            w28=expstatsn)
    return pdu(h, data=encode_keys(tuple(keys)) if data is None else data)


#: House-style alias: ``login_pdu(keys=...)``.
login_pdu = login_request


def text_request(*, keys: Keys = (), final: bool = True, cont: bool = False, itt: int = 1, ttt: int = RESERVED,
                 lun: int = 0, cmdsn: int = 0, expstatsn: int = 0, immediate: bool = False,
                 data: bytes | None = None, header_digest: bool = False, data_digest: bool = False) -> bytes:
    """Text Request (§11.10)."""
    flags = (0x80 if final else 0) | (0x40 if cont else 0)
    h = bhs(Opcode.TEXT_REQUEST, immediate=immediate, byte1=flags, lun=lun, itt=itt, w20=ttt, w24=cmdsn,
            w28=expstatsn)
    return pdu(h, data=encode_keys(tuple(keys)) if data is None else data, header_digest=header_digest,
               data_digest=data_digest)


def data_out(*, itt: int = 1, ttt: int = RESERVED, lun: int = 0, expstatsn: int = 0, datasn: int = 0,
             buffer_offset: int = 0, data: bytes = b"", final: bool = True, header_digest: bool = False,
             data_digest: bool = False) -> bytes:
    """SCSI Data-Out (§11.7.1)."""
    h = bhs(Opcode.DATA_OUT, byte1=0x80 if final else 0, lun=lun, itt=itt, w20=ttt, w28=expstatsn, w36=datasn,
            w40=buffer_offset)
    return pdu(h, data=data, header_digest=header_digest, data_digest=data_digest)


def logout_request(*, reason: int = 0, itt: int = 1, cid: int = 0, cmdsn: int = 0, expstatsn: int = 0,
                   immediate: bool = True, header_digest: bool = False) -> bytes:
    """Logout Request (§11.14); reason 0 close session, 1 close connection, 2 remove for recovery."""
    h = bhs(Opcode.LOGOUT_REQUEST, immediate=immediate, byte1=0x80 | reason, itt=itt, w20=cid << 16, w24=cmdsn,
            w28=expstatsn)
    return pdu(h, header_digest=header_digest)


def snack(*, snack_type: int = 0, itt: int = RESERVED, ttt: int = RESERVED, lun: int = 0, expstatsn: int = 0,
          begrun: int = 0, runlength: int = 0, header_digest: bool = False) -> bytes:
    """SNACK Request (§11.16)."""
    h = bhs(Opcode.SNACK, byte1=0x80 | (snack_type & 0x0F), lun=lun, itt=itt, w20=ttt, w28=expstatsn,
            w40=begrun, w44=runlength)
    return pdu(h, header_digest=header_digest)


# --------------------------------------------------------------------------- responses


def nop_in(*, itt: int = RESERVED, ttt: int = RESERVED, lun: int = 0, statsn: int = 0, expcmdsn: int = 0,
           maxcmdsn: int = 0, data: bytes = b"", header_digest: bool = False, data_digest: bool = False) -> bytes:
    """NOP-In (§11.19). Defaults: unsolicited (ITT=TTT=0xffffffff)."""
    h = bhs(Opcode.NOP_IN, byte1=0x80, lun=lun, itt=itt, w20=ttt, w24=statsn, w28=expcmdsn, w32=maxcmdsn)
    return pdu(h, data=data, header_digest=header_digest, data_digest=data_digest)


def scsi_response(*, itt: int = 1, status: int = 0, response: int = 0, sense: bytes | None = None,
                  response_data: bytes = b"", bidi_overflow: bool = False, bidi_underflow: bool = False,
                  overflow: bool = False, underflow: bool = False, snack_tag: int = 0, statsn: int = 0,
                  expcmdsn: int = 0, maxcmdsn: int = 0, expdatasn: int = 0, bidi_residual: int = 0,
                  residual: int = 0, data: bytes | None = None, header_digest: bool = False,
                  data_digest: bool = False) -> bytes:
    """SCSI Response (§11.4). ``sense`` (raw sense bytes) becomes SenseLength+sense; ``data`` overrides."""
    flags = 0x80 | (0x10 if bidi_overflow else 0) | (0x08 if bidi_underflow else 0) | (0x04 if overflow else 0) \
        | (0x02 if underflow else 0)
    if data is None:
        data = sense_segment(sense, response_data) if sense is not None else b""
    h = bhs(Opcode.SCSI_RESPONSE, byte1=flags, byte2=response, byte3=status, lun=0, itt=itt, w20=snack_tag,
            w24=statsn, w28=expcmdsn, w32=maxcmdsn, w36=expdatasn, w40=bidi_residual, w44=residual)
    return pdu(h, data=data, header_digest=header_digest, data_digest=data_digest)


def task_mgmt_response(*, response: int = 0, itt: int = 1, statsn: int = 0, expcmdsn: int = 0, maxcmdsn: int = 0,
                       header_digest: bool = False) -> bytes:
    """Task Management Function Response (§11.6)."""
    h = bhs(Opcode.TASK_MGMT_RESPONSE, byte1=0x80, byte2=response, itt=itt, w24=statsn, w28=expcmdsn,
            w32=maxcmdsn)
    return pdu(h, header_digest=header_digest)


def login_response(*, keys: Keys = (), transit: bool = True, cont: bool = False, csg: int = 1, nsg: int = 3,
                   version_max: int = 0, version_active: int = 0, isid: int = DEFAULT_ISID, tsih: int = 1,
                   itt: int = 0, statsn: int = 0, expcmdsn: int = 0, maxcmdsn: int = 0, status_class: int = 0,
                   status_detail: int = 0, data: bytes | None = None) -> bytes:
    """Login Response (§11.13)."""
    flags = (0x80 if transit else 0) | (0x40 if cont else 0) | (csg & 3) << 2 | (nsg & 3)
    h = bhs(Opcode.LOGIN_RESPONSE, byte1=flags, byte2=version_max, byte3=version_active,
            bytes8=isid.to_bytes(6, "big") + tsih.to_bytes(2, "big"), itt=itt, w24=statsn, w28=expcmdsn,
            w32=maxcmdsn, w36=(status_class << 24) | (status_detail << 16))
    return pdu(h, data=encode_keys(tuple(keys)) if data is None else data)


def text_response(*, keys: Keys = (), final: bool = True, cont: bool = False, itt: int = 1, ttt: int = RESERVED,
                  lun: int = 0, statsn: int = 0, expcmdsn: int = 0, maxcmdsn: int = 0, data: bytes | None = None,
                  header_digest: bool = False, data_digest: bool = False) -> bytes:
    """Text Response (§11.11)."""
    flags = (0x80 if final else 0) | (0x40 if cont else 0)
    h = bhs(Opcode.TEXT_RESPONSE, byte1=flags, lun=lun, itt=itt, w20=ttt, w24=statsn, w28=expcmdsn, w32=maxcmdsn)
    return pdu(h, data=encode_keys(tuple(keys)) if data is None else data, header_digest=header_digest,
               data_digest=data_digest)


def data_in(*, itt: int = 1, ttt: int = RESERVED, lun: int = 0, final: bool = True, ack: bool = False,
            overflow: bool = False, underflow: bool = False, status: int | None = None, statsn: int = 0,
            expcmdsn: int = 0, maxcmdsn: int = 0, datasn: int = 0, buffer_offset: int = 0, residual: int = 0,
            data: bytes = b"", header_digest: bool = False, data_digest: bool = False) -> bytes:
    """SCSI Data-In (§11.7.2). ``status`` not None sets the S bit (and byte 3); S implies F."""
    s = status is not None
    flags = (0x80 if final or s else 0) | (0x40 if ack else 0) | (0x04 if overflow else 0) \
        | (0x02 if underflow else 0) | (0x01 if s else 0)
    h = bhs(Opcode.DATA_IN, byte1=flags, byte3=status or 0, lun=lun, itt=itt, w20=ttt, w24=statsn, w28=expcmdsn,
            w32=maxcmdsn, w36=datasn, w40=buffer_offset, w44=residual)
    return pdu(h, data=data, header_digest=header_digest, data_digest=data_digest)


def logout_response(*, response: int = 0, itt: int = 1, statsn: int = 0, expcmdsn: int = 0, maxcmdsn: int = 0,
                    time2wait: int = 0, time2retain: int = 0, header_digest: bool = False) -> bytes:
    """Logout Response (§11.15)."""
    h = bhs(Opcode.LOGOUT_RESPONSE, byte1=0x80, byte2=response, itt=itt, w24=statsn, w28=expcmdsn, w32=maxcmdsn,
            w40=time2wait << 16 | time2retain)
    return pdu(h, header_digest=header_digest)


def r2t(*, itt: int = 1, ttt: int = 0x100, lun: int = 0, statsn: int = 0, expcmdsn: int = 0, maxcmdsn: int = 0,
        r2tsn: int = 0, buffer_offset: int = 0, desired_length: int = 65536, header_digest: bool = False) -> bytes:
    """Ready To Transfer (§11.8)."""
    h = bhs(Opcode.R2T, byte1=0x80, lun=lun, itt=itt, w20=ttt, w24=statsn, w28=expcmdsn, w32=maxcmdsn, w36=r2tsn,
            w40=buffer_offset, w44=desired_length)
    return pdu(h, header_digest=header_digest)


def async_message(*, async_event: int = 0, async_vcode: int = 0, param1: int = 0, param2: int = 0,
                  param3: int = 0, lun: int = 0, statsn: int = 0, expcmdsn: int = 0, maxcmdsn: int = 0,
                  sense: bytes | None = None, data: bytes | None = None, header_digest: bool = False,
                  data_digest: bool = False) -> bytes:
    """Asynchronous Message (§11.9), ITT 0xffffffff. ``sense`` becomes SenseLength+sense (event 0)."""
    if data is None:
        data = sense_segment(sense) if sense is not None else b""
    h = bhs(Opcode.ASYNC_MESSAGE, byte1=0x80, lun=lun, itt=RESERVED, w20=RESERVED, w24=statsn, w28=expcmdsn,
            w32=maxcmdsn, w36=async_event << 24 | async_vcode << 16 | param1, w40=param2 << 16 | param3)
    return pdu(h, data=data, header_digest=header_digest, data_digest=data_digest)


def reject(*, reason: int = 4, rejected_header: bytes = b"", statsn: int = 0, expcmdsn: int = 0, maxcmdsn: int = 0,
           datasn_r2tsn: int = 0, header_digest: bool = False, data_digest: bool = False) -> bytes:
    """Reject (§11.17); ``rejected_header`` (normally a 48-byte BHS) is the data segment."""
    h = bhs(Opcode.REJECT, byte1=0x80, byte2=reason, itt=RESERVED, w24=statsn, w28=expcmdsn, w32=maxcmdsn,
            w36=datasn_r2tsn)
    return pdu(h, data=rejected_header, header_digest=header_digest, data_digest=data_digest)


def vendor_pdu(opcode: int = 0x1C, *, data: bytes = b"", itt: int = 1) -> bytes:
    """A vendor-specific (or any reserved) opcode PDU with an all-zero BHS otherwise."""
    return pdu(bhs(opcode, itt=itt), data=data)


# --------------------------------------------------------------------------- record -> wire


def _sense_bytes(s: Sense) -> bytes:
    if s.response_code in (0x72, 0x73):
        return descriptor_sense(s.sense_key, s.asc, s.ascq, s.information, response_code=s.response_code)
    return fixed_sense(s.sense_key, s.asc, s.ascq, s.information, response_code=s.response_code)


def encode_pdu(rec: Pdu, *, data: bytes | None = None) -> bytes:
    """Wire bytes for a record (the inverse of decoding, for round-trip tests).

    Payloads that records don't keep (Data-In/Out, NOP data, immediate data) are zero
    bytes of length ``rec.dsl`` unless ``data`` is given. Digest status fields are
    ignored (digests are added only if the record says they were negotiated).
    """
    hd = rec.header_digest is not None
    dd = rec.data_digest is not None
    filler = data if data is not None else bytes(rec.dsl)
    if isinstance(rec, NopOut):
        return nop_out(itt=rec.itt, ttt=rec.ttt, cmdsn=rec.cmdsn, expstatsn=rec.expstatsn, lun=rec.lun or 0,
                       immediate=rec.immediate, data=filler, header_digest=hd, data_digest=dd)
    if isinstance(rec, ScsiCommand):
        return scsi_command(cdb=rec.cdb.raw, itt=rec.itt, lun=rec.lun or 0, read=rec.read, write=rec.write,
                            attr=rec.attr, final=rec.final, edtl=rec.edtl, cmdsn=rec.cmdsn, expstatsn=rec.expstatsn,
                            immediate=rec.immediate, data=filler, bidi_read_edtl=rec.bidi_read_edtl,
                            header_digest=hd, data_digest=dd)
    if isinstance(rec, TaskMgmtRequest):
        return task_mgmt_request(function=rec.function, itt=rec.itt, ref_task_tag=rec.ref_task_tag,
                                 lun=rec.lun or 0, cmdsn=rec.cmdsn, expstatsn=rec.expstatsn,
                                 ref_cmdsn=rec.ref_cmdsn, exp_datasn=rec.exp_datasn, immediate=rec.immediate,
                                 header_digest=hd)
    if isinstance(rec, LoginRequest):
        return login_request(keys=rec.keys, transit=rec.transit, cont=rec.cont, csg=rec.csg, nsg=rec.nsg,
                             version_max=rec.version_max, version_min=rec.version_min, isid=rec.isid, tsih=rec.tsih,
                             itt=rec.itt, cid=rec.cid, cmdsn=rec.cmdsn, expstatsn=rec.expstatsn, data=data)
    if isinstance(rec, TextRequest):
        return text_request(keys=rec.keys, final=rec.final, cont=rec.cont, itt=rec.itt, ttt=rec.ttt, cmdsn=rec.cmdsn,
                            expstatsn=rec.expstatsn, immediate=rec.immediate, data=data, header_digest=hd,
                            data_digest=dd)
    if isinstance(rec, DataOut):
        return data_out(itt=rec.itt, ttt=rec.ttt, lun=rec.lun or 0, expstatsn=rec.expstatsn, datasn=rec.datasn,
                        buffer_offset=rec.buffer_offset, data=filler, final=rec.final, header_digest=hd,
                        data_digest=dd)
    if isinstance(rec, LogoutRequest):
        return logout_request(reason=rec.reason, itt=rec.itt, cid=rec.cid, cmdsn=rec.cmdsn, expstatsn=rec.expstatsn,
                              immediate=rec.immediate, header_digest=hd)
    if isinstance(rec, Snack):
        return snack(snack_type=rec.snack_type, itt=rec.itt, ttt=rec.ttt, lun=rec.lun or 0, expstatsn=rec.expstatsn,
                     begrun=rec.begrun, runlength=rec.runlength, header_digest=hd)
    if isinstance(rec, NopIn):
        return nop_in(itt=rec.itt, ttt=rec.ttt, lun=rec.lun or 0, statsn=rec.statsn, expcmdsn=rec.expcmdsn,
                      maxcmdsn=rec.maxcmdsn, data=filler, header_digest=hd, data_digest=dd)
    if isinstance(rec, ScsiResponse):
        return scsi_response(itt=rec.itt, status=rec.status, response=rec.response,
                             sense=_sense_bytes(rec.sense) if rec.sense is not None else None,
                             bidi_overflow=rec.bidi_overflow, bidi_underflow=rec.bidi_underflow,
                             overflow=rec.overflow, underflow=rec.underflow, snack_tag=rec.snack_tag,
                             statsn=rec.statsn, expcmdsn=rec.expcmdsn, maxcmdsn=rec.maxcmdsn,
                             expdatasn=rec.expdatasn, bidi_residual=rec.bidi_residual, residual=rec.residual,
                             data=data, header_digest=hd, data_digest=dd)
    if isinstance(rec, TaskMgmtResponse):
        return task_mgmt_response(response=rec.response, itt=rec.itt, statsn=rec.statsn, expcmdsn=rec.expcmdsn,
                                  maxcmdsn=rec.maxcmdsn, header_digest=hd)
    if isinstance(rec, LoginResponse):
        return login_response(keys=rec.keys, transit=rec.transit, cont=rec.cont, csg=rec.csg, nsg=rec.nsg,
                              version_max=rec.version_max, version_active=rec.version_active, isid=rec.isid,
                              tsih=rec.tsih, itt=rec.itt, statsn=rec.statsn, expcmdsn=rec.expcmdsn,
                              maxcmdsn=rec.maxcmdsn, status_class=rec.status_class,
                              status_detail=rec.status_detail, data=data)
    if isinstance(rec, TextResponse):
        return text_response(keys=rec.keys, final=rec.final, cont=rec.cont, itt=rec.itt, ttt=rec.ttt,
                             statsn=rec.statsn, expcmdsn=rec.expcmdsn, maxcmdsn=rec.maxcmdsn, data=data,
                             header_digest=hd, data_digest=dd)
    if isinstance(rec, DataIn):
        return data_in(itt=rec.itt, ttt=rec.ttt, lun=rec.lun or 0, final=rec.final, ack=rec.ack,
                       overflow=rec.overflow, underflow=rec.underflow, status=rec.status, statsn=rec.statsn or 0,
                       expcmdsn=rec.expcmdsn, maxcmdsn=rec.maxcmdsn, datasn=rec.datasn,
                       buffer_offset=rec.buffer_offset, residual=rec.residual or 0, data=filler,
                       header_digest=hd, data_digest=dd)
    if isinstance(rec, LogoutResponse):
        return logout_response(response=rec.response, itt=rec.itt, statsn=rec.statsn, expcmdsn=rec.expcmdsn,
                               maxcmdsn=rec.maxcmdsn, time2wait=rec.time2wait, time2retain=rec.time2retain,
                               header_digest=hd)
    if isinstance(rec, R2T):
        return r2t(itt=rec.itt, ttt=rec.ttt, lun=rec.lun or 0, statsn=rec.statsn, expcmdsn=rec.expcmdsn,
                   maxcmdsn=rec.maxcmdsn, r2tsn=rec.r2tsn, buffer_offset=rec.buffer_offset,
                   desired_length=rec.desired_length, header_digest=hd)
    if isinstance(rec, AsyncMessage):
        return async_message(async_event=rec.async_event, async_vcode=rec.async_vcode, param1=rec.param1,
                             param2=rec.param2, param3=rec.param3, lun=rec.lun or 0, statsn=rec.statsn,
                             expcmdsn=rec.expcmdsn, maxcmdsn=rec.maxcmdsn,
                             sense=_sense_bytes(rec.sense) if rec.sense is not None else None, data=data,
                             header_digest=hd, data_digest=dd)
    if isinstance(rec, Reject):
        return reject(reason=rec.reason, rejected_header=rec.rejected_header, statsn=rec.statsn,
                      expcmdsn=rec.expcmdsn, maxcmdsn=rec.maxcmdsn, datasn_r2tsn=rec.datasn_r2tsn,
                      header_digest=hd, data_digest=dd)
    if isinstance(rec, UnknownPdu):
        return pdu(rec.header, data=filler, header_digest=hd, data_digest=dd)
    raise TypeError(f"no encoder for {type(rec).__name__}")
