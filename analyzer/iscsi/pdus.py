"""iSCSI PDU decoding: one small pure decoder per opcode plus one table (house style §3).

Entry point :func:`decode_pdu` takes one framed PDU (the framer has already split BHS,
AHS and data segment and checked digests) and returns exactly one ``Pdu`` record, or
raises :class:`DecodeError`. Unknown and vendor opcodes become ``UnknownPdu``.

Lenient by design: we are an observer, so a reserved bit that is set, a wrong F bit or
a field that "MUST be 0" is decoded as seen (anomaly rules report it). We raise only
when the bytes cannot be decoded at all (AHS overruns, SenseLength beyond the data
segment, unparseable sense data, absurd key text).

Hot path: called once per PDU. ``decode_pdu`` unpacks the common BHS fields with one
precompiled ``struct``, builds the common-field tuple once and passes it to the opcode
decoder, which unpacks its own bytes with its own precompiled ``struct`` and constructs
the record (common fields positionally, opcode fields by keyword).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final, TypeAlias

from analyzer.records import (
    R2T,
    Ahs,
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

from .errors import DecodeError
from .opcodes import Opcode
from .scsi import decode_cdb, decode_sense
from .text_keys import parse_keys

__all__ = ["DECODERS", "DecodeError", "decode_lun", "decode_pdu", "parse_ahs"]

#: The common fields every decoder receives, in ``Pdu`` field order:
#: frame, ts_ns, conn, direction, first_frame, opcode, immediate, final,
#: total_ahs_length, dsl, lun, itt, ahs, header_digest, data_digest.
Common: TypeAlias = ("tuple[int, int, str, str, int, int, bool, bool, int, int, int | None, int, tuple[Ahs, ...], "
                     "str | None, str | None]")
#: A per-opcode decoder: (common fields, bhs, data segment or None, data offset in PDU) -> record.
Decoder: TypeAlias = "Callable[[Common, bytes, bytes | None, int], Pdu]"

BHS_LEN: Final = 48

# Bytes 0-19 common to all PDUs: opcode byte, flags, b2, b3, TotalAHSLength|DSL, LUN, ITT; and
# word 20 (the TTT of NOP-Out/In and Data-Out/In, which says whether their LUN field is valid).
_COMMON: Final = struct.Struct(">BBBBIQII")
_NO_AHS: Final[tuple[Ahs, ...]] = ()
_NO_KEYS: Final[tuple[tuple[str, str], ...]] = ()


# --------------------------------------------------------------------------- helpers


def decode_lun(raw: int) -> int:
    """SAM-5 §4.6 LUN -> number. Single-level peripheral (00b) -> bus<<8 | byte 1 (so LUN 0-255
    on bus 0 is just byte 1); flat space (01b) -> 14-bit LUN; anything else (logical unit
    or extended addressing, or a multi-level LUN with bytes 2-7 non-zero) -> the raw 64-bit value.
    """
    if raw & 0xFFFF_FFFF_FFFF:  # second..fourth level present
        return raw
    first = raw >> 48
    method = first >> 14
    if method == 0:
        return first
    if method == 1:
        return first & 0x3FFF
    return raw


def parse_ahs(ahs: bytes) -> tuple[Ahs, ...]:
    """Split the AHS bytes (TotalAHSLength*4) into ``Ahs`` records (RFC 7143 §11.2.2).

    Each AHS is AHSLength(2) AHSType(1) + AHSLength bytes of AHS-specific data, padded to
    a 4-byte boundary. ``Ahs.ahs_type`` is the 6-bit type code; ``data`` excludes padding.
    Offsets in a DecodeError count from the start of the PDU.
    """
    if not ahs:
        return _NO_AHS
    out: list[Ahs] = []
    pos = 0
    end = len(ahs)
    while pos < end:
        if end - pos < 4:
            raise DecodeError("truncated AHS header", BHS_LEN + pos)
        length = ahs[pos] << 8 | ahs[pos + 1]
        stop = pos + 3 + length
        if stop > end:
            raise DecodeError(f"AHS length {length} overruns TotalAHSLength", BHS_LEN + pos)
        out.append(Ahs(ahs_type=ahs[pos + 2] & 0x3F, length=length, data=bytes(ahs[pos + 3:stop])))
        pos = (stop + 3) & ~3
    return tuple(out)


def _reserved_lun(c: Common) -> Common:
    # The LUN field is "LUN or Reserved": reserved unless the TTT is valid (§11.7, §11.18, §11.19)
    # or, for an Async Message, unless AsyncEvent is 0 (§11.9).
    return c if c[10] is None else c[:10] + (None,) + c[11:]


def _keys(data: bytes | None, data_offset: int, continued: bool) -> tuple[tuple[str, str], ...]:
    # §6.1: ``continued`` = the text goes on in the next PDU, so a trailing fragment is no pair.
    if not data:
        return _NO_KEYS
    try:
        return parse_keys(data, continued=continued)
    except DecodeError as e:
        raise e.shifted(data_offset) from None


def _sense_from_segment(data: bytes | None, data_offset: int) -> Sense | None:
    # §11.4.7: SenseLength(2) + sense data (+ response data); also §11.9 Async event 0.
    if not data:
        return None
    if len(data) < 2:
        raise DecodeError("data segment too short for SenseLength", data_offset)
    sense_len = data[0] << 8 | data[1]
    if sense_len == 0:
        return None
    if 2 + sense_len > len(data):
        raise DecodeError(f"SenseLength {sense_len} beyond data segment of {len(data)} bytes", data_offset)
    try:
        return decode_sense(data[2:2 + sense_len])
    except DecodeError as e:
        raise e.shifted(data_offset + 2) from None


# --------------------------------------------------------------------------- requests

# Bytes 20-31 (TTT or ExpDataXferLen or CID.., CmdSN, ExpStatSN) as three words.
_W20_28: Final = struct.Struct(">III")


def decode_nop_out(c: Common, bhs: bytes, data: bytes | None, doff: int) -> Pdu:
    """RFC 7143 §11.18 NOP-Out."""
    ttt, cmdsn, expstatsn = _W20_28.unpack_from(bhs, 20)
    return NopOut(*c, ttt=ttt, cmdsn=cmdsn, expstatsn=expstatsn)


def decode_scsi_command(c: Common, bhs: bytes, data: bytes | None, doff: int) -> Pdu:
    """RFC 7143 §11.3 SCSI Command; Extended CDB AHS (§11.2.2.3), bidi read length AHS (§11.2.2.4)."""
    flags = bhs[1]
    edtl, cmdsn, expstatsn = _W20_28.unpack_from(bhs, 20)
    cdb = bhs[32:48]
    bidi: int | None = None
    for a in c[12]:
        if a.ahs_type == 1:  # AHSLength = CDB length - 15; first byte reserved
            cdb += a.data[1:]
        elif a.ahs_type == 2:  # AHSLength = 5: reserved byte + 32-bit length
            if len(a.data) < 5:
                raise DecodeError("bidirectional read length AHS shorter than 5 bytes", BHS_LEN)
            bidi = int.from_bytes(a.data[1:5], "big")
    # hot path: positional (read, write, attr, edtl, cmdsn, expstatsn, cdb, bidi_read_edtl)
    return ScsiCommand(*c, bool(flags & 0x40), bool(flags & 0x20), flags & 0x07, edtl, cmdsn, expstatsn,
                       decode_cdb(cdb), bidi)


_TMF: Final = struct.Struct(">IIIII")  # 20: RefTaskTag, CmdSN, ExpStatSN, RefCmdSN, ExpDataSN


def decode_task_mgmt_request(c: Common, bhs: bytes, data: bytes | None, doff: int) -> Pdu:
    """RFC 7143 §11.5 Task Management Function Request (function = byte 1 & 0x7f)."""
    ref, cmdsn, expstatsn, refcmdsn, expdatasn = _TMF.unpack_from(bhs, 20)
    return TaskMgmtRequest(
        *c, function=bhs[1] & 0x7F, ref_task_tag=ref, cmdsn=cmdsn, expstatsn=expstatsn,
        ref_cmdsn=refcmdsn, exp_datasn=expdatasn,
    )


_LOGIN_REQ: Final = struct.Struct(">6sHIH2xII")  # 8: ISID, TSIH, ITT, CID, rsvd, CmdSN, ExpStatSN


def decode_login_request(c: Common, bhs: bytes, data: bytes | None, doff: int) -> Pdu:
    """RFC 7143 §11.12 Login Request (T/C/CSG/NSG in byte 1, versions in 2-3, ISID+TSIH in 8-15)."""
    flags = bhs[1]
    isid, tsih, _itt, cid, cmdsn, expstatsn = _LOGIN_REQ.unpack_from(bhs, 8)
    cont = bool(flags & 0x40)
    return LoginRequest(
        *c, transit=bool(flags & 0x80), cont=cont, csg=(flags >> 2) & 3, nsg=flags & 3,
        version_max=bhs[2], version_min=bhs[3], isid=int.from_bytes(isid, "big"), tsih=tsih, cid=cid,
        cmdsn=cmdsn, expstatsn=expstatsn, keys=_keys(data, doff, cont), text=bytes(data) if data else b"",
    )


def decode_text_request(c: Common, bhs: bytes, data: bytes | None, doff: int) -> Pdu:
    """RFC 7143 §11.10 Text Request (F 0x80, C 0x40); text continues with C=1 or, for a split without
    the C bit, F=0 (the fragment is kept out of ``keys``)."""
    ttt, cmdsn, expstatsn = _W20_28.unpack_from(bhs, 20)
    cont = bool(bhs[1] & 0x40)
    return TextRequest(
        *c, cont=cont, ttt=ttt, cmdsn=cmdsn, expstatsn=expstatsn, keys=_keys(data, doff, cont or not c[7]),
        text=bytes(data) if data else b"",
    )


_DATA_OUT: Final = struct.Struct(">I4xI4xII")  # 20: TTT, rsvd, ExpStatSN, rsvd, DataSN, BufferOffset


def decode_data_out(c: Common, bhs: bytes, data: bytes | None, doff: int) -> Pdu:
    """RFC 7143 §11.7.1 SCSI Data-Out."""
    ttt, expstatsn, datasn, offset = _DATA_OUT.unpack_from(bhs, 20)
    # hot path: positional (ttt, expstatsn, datasn, buffer_offset); keywords cost ~25% more
    return DataOut(*c, ttt, expstatsn, datasn, offset)


_LOGOUT_REQ: Final = struct.Struct(">H2xII")  # 20: CID, rsvd, CmdSN, ExpStatSN


def decode_logout_request(c: Common, bhs: bytes, data: bytes | None, doff: int) -> Pdu:
    """RFC 7143 §11.14 Logout Request (reason = byte 1 & 0x7f)."""
    cid, cmdsn, expstatsn = _LOGOUT_REQ.unpack_from(bhs, 20)
    return LogoutRequest(*c, reason=bhs[1] & 0x7F, cid=cid, cmdsn=cmdsn, expstatsn=expstatsn)


_SNACK: Final = struct.Struct(">I4xI8xII")  # 20: TTT/SNACK Tag, rsvd, ExpStatSN, rsvd x2, BegRun, RunLength


def decode_snack(c: Common, bhs: bytes, data: bytes | None, doff: int) -> Pdu:
    """RFC 7143 §11.16 SNACK Request (type = byte 1 & 0x0f)."""
    ttt, expstatsn, begrun, runlength = _SNACK.unpack_from(bhs, 20)
    return Snack(*c, snack_type=bhs[1] & 0x0F, ttt=ttt, expstatsn=expstatsn, begrun=begrun, runlength=runlength)


# --------------------------------------------------------------------------- responses

_W20_32: Final = struct.Struct(">IIII")  # 20: TTT/rsvd, StatSN, ExpCmdSN, MaxCmdSN


def decode_nop_in(c: Common, bhs: bytes, data: bytes | None, doff: int) -> Pdu:
    """RFC 7143 §11.19 NOP-In."""
    ttt, statsn, expcmdsn, maxcmdsn = _W20_32.unpack_from(bhs, 20)
    return NopIn(*c, ttt=ttt, statsn=statsn, expcmdsn=expcmdsn, maxcmdsn=maxcmdsn)


_SCSI_RSP: Final = struct.Struct(">IIIIIII")  # 20: SNACK Tag, StatSN, ExpCmdSN, MaxCmdSN, ExpDataSN, BiRes, Res


def decode_scsi_response(c: Common, bhs: bytes, data: bytes | None, doff: int) -> Pdu:
    """RFC 7143 §11.4 SCSI Response; data segment = SenseLength + sense + response data (§11.4.7)."""
    flags = bhs[1]
    snack, statsn, expcmdsn, maxcmdsn, expdatasn, bires, res = _SCSI_RSP.unpack_from(bhs, 20)
    # hot path: positional (bidi_overflow, bidi_underflow, overflow, underflow, response, status, snack_tag,
    # statsn, expcmdsn, maxcmdsn, expdatasn, bidi_residual, residual, sense)
    return ScsiResponse(*c, bool(flags & 0x10), bool(flags & 0x08), bool(flags & 0x04), bool(flags & 0x02), bhs[2],
                        bhs[3], snack, statsn, expcmdsn, maxcmdsn, expdatasn, bires, res,
                        _sense_from_segment(data, doff) if data else None)


def decode_task_mgmt_response(c: Common, bhs: bytes, data: bytes | None, doff: int) -> Pdu:
    """RFC 7143 §11.6 Task Management Function Response (response = byte 2)."""
    _rsvd, statsn, expcmdsn, maxcmdsn = _W20_32.unpack_from(bhs, 20)
    return TaskMgmtResponse(*c, response=bhs[2], statsn=statsn, expcmdsn=expcmdsn, maxcmdsn=maxcmdsn)


_LOGIN_RSP: Final = struct.Struct(">6sH8xIIIBB")  # 8: ISID, TSIH, ITT+rsvd, StatSN, ExpCmdSN, MaxCmdSN, class, detail


def decode_login_response(c: Common, bhs: bytes, data: bytes | None, doff: int) -> Pdu:
    """RFC 7143 §11.13 Login Response (Status-Class byte 36, Status-Detail byte 37)."""
    flags = bhs[1]
    isid, tsih, statsn, expcmdsn, maxcmdsn, cls, detail = _LOGIN_RSP.unpack_from(bhs, 8)
    cont = bool(flags & 0x40)
    return LoginResponse(
        *c, transit=bool(flags & 0x80), cont=cont, csg=(flags >> 2) & 3, nsg=flags & 3,
        version_max=bhs[2], version_active=bhs[3], isid=int.from_bytes(isid, "big"), tsih=tsih,
        statsn=statsn, expcmdsn=expcmdsn, maxcmdsn=maxcmdsn, status_class=cls, status_detail=detail,
        keys=_keys(data, doff, cont), text=bytes(data) if data else b"",
    )


def decode_text_response(c: Common, bhs: bytes, data: bytes | None, doff: int) -> Pdu:
    """RFC 7143 §11.11 Text Response (F 0x80, C 0x40); text continues with C=1 or, for a split without
    the C bit (tgtd cuts long SendTargets replies anywhere), F=0 (the fragment is kept out of ``keys``)."""
    ttt, statsn, expcmdsn, maxcmdsn = _W20_32.unpack_from(bhs, 20)
    cont = bool(bhs[1] & 0x40)
    return TextResponse(
        *c, cont=cont, ttt=ttt, statsn=statsn, expcmdsn=expcmdsn, maxcmdsn=maxcmdsn,
        keys=_keys(data, doff, cont or not c[7]), text=bytes(data) if data else b"",
    )


_DATA_IN: Final = struct.Struct(">IIIIIII")  # 20: TTT, StatSN, ExpCmdSN, MaxCmdSN, DataSN, BufferOffset, Residual


def decode_data_in(c: Common, bhs: bytes, data: bytes | None, doff: int) -> Pdu:
    """RFC 7143 §11.7.2 SCSI Data-In; Status, StatSN and ResidualCount are valid only with S (§11.7.4)."""
    flags = bhs[1]
    ttt, statsn, expcmdsn, maxcmdsn, datasn, offset, residual = _DATA_IN.unpack_from(bhs, 20)
    s = bool(flags & 0x01)
    # hot path: positional, in DataIn field order (ack, overflow, underflow, status_present, status, ttt,
    # statsn, expcmdsn, maxcmdsn, datasn, buffer_offset, residual)
    if s:
        return DataIn(*c, bool(flags & 0x40), bool(flags & 0x04), bool(flags & 0x02), True, bhs[3], ttt, statsn,
                      expcmdsn, maxcmdsn, datasn, offset, residual)
    return DataIn(*c, bool(flags & 0x40), bool(flags & 0x04), bool(flags & 0x02), False, None, ttt, None,
                  expcmdsn, maxcmdsn, datasn, offset, None)


_LOGOUT_RSP: Final = struct.Struct(">III4xHH")  # 24: StatSN, ExpCmdSN, MaxCmdSN, rsvd, Time2Wait, Time2Retain


def decode_logout_response(c: Common, bhs: bytes, data: bytes | None, doff: int) -> Pdu:
    """RFC 7143 §11.15 Logout Response (response = byte 2; Time2Wait/Time2Retain bytes 40-43)."""
    statsn, expcmdsn, maxcmdsn, t2w, t2r = _LOGOUT_RSP.unpack_from(bhs, 24)
    return LogoutResponse(
        *c, response=bhs[2], statsn=statsn, expcmdsn=expcmdsn, maxcmdsn=maxcmdsn, time2wait=t2w, time2retain=t2r,
    )


_R2T: Final = struct.Struct(">IIIIIII")  # 20: TTT, StatSN, ExpCmdSN, MaxCmdSN, R2TSN, BufferOffset, DDTL


def decode_r2t(c: Common, bhs: bytes, data: bytes | None, doff: int) -> Pdu:
    """RFC 7143 §11.8 Ready To Transfer."""
    ttt, statsn, expcmdsn, maxcmdsn, r2tsn, offset, length = _R2T.unpack_from(bhs, 20)
    # hot path: positional (ttt, statsn, expcmdsn, maxcmdsn, r2tsn, buffer_offset, desired_length)
    return R2T(*c, ttt, statsn, expcmdsn, maxcmdsn, r2tsn, offset, length)


_ASYNC: Final = struct.Struct(">IIIBBHHH")  # 24: StatSN, ExpCmdSN, MaxCmdSN, Event, VCode, P1, P2, P3


def decode_async_message(c: Common, bhs: bytes, data: bytes | None, doff: int) -> Pdu:
    """RFC 7143 §11.9 Asynchronous Message; event 0 carries SenseLength + sense data (§11.9.4)."""
    statsn, expcmdsn, maxcmdsn, event, vcode, p1, p2, p3 = _ASYNC.unpack_from(bhs, 24)
    if event == 0:
        sense = _sense_from_segment(data, doff)
    else:
        sense = None
        c = _reserved_lun(c)
    return AsyncMessage(
        *c, statsn=statsn, expcmdsn=expcmdsn, maxcmdsn=maxcmdsn, async_event=event, async_vcode=vcode,
        param1=p1, param2=p2, param3=p3, sense=sense,
    )


_REJECT: Final = struct.Struct(">IIII")  # 24: StatSN, ExpCmdSN, MaxCmdSN, DataSN/R2TSN


def decode_reject(c: Common, bhs: bytes, data: bytes | None, doff: int) -> Pdu:
    """RFC 7143 §11.17 Reject; the data segment is the rejected PDU's header (§11.17.3)."""
    statsn, expcmdsn, maxcmdsn, datasn = _REJECT.unpack_from(bhs, 24)
    header = bytes(data) if data else b""
    rejected_op = header[0] & 0x3F if header else None
    rejected_itt = int.from_bytes(header[16:20], "big") if len(header) >= 20 else None
    return Reject(
        *c, reason=bhs[2], statsn=statsn, expcmdsn=expcmdsn, maxcmdsn=maxcmdsn, datasn_r2tsn=datasn,
        rejected_opcode=rejected_op, rejected_itt=rejected_itt, rejected_header=header,
    )


def decode_unknown(c: Common, bhs: bytes, data: bytes | None, doff: int) -> Pdu:
    """Reserved or vendor-specific opcode (§11.2.1.2): framed, not decoded."""
    return UnknownPdu(*c, header=bytes(bhs))


#: Opcode -> decoder. Opcodes not listed decode as ``UnknownPdu``.
DECODERS: Final[dict[Opcode, Decoder]] = {
    Opcode.NOP_OUT: decode_nop_out,  # §11.18
    Opcode.SCSI_COMMAND: decode_scsi_command,  # §11.3
    Opcode.TASK_MGMT_REQUEST: decode_task_mgmt_request,  # §11.5
    Opcode.LOGIN_REQUEST: decode_login_request,  # §11.12
    Opcode.TEXT_REQUEST: decode_text_request,  # §11.10
    Opcode.DATA_OUT: decode_data_out,  # §11.7.1
    Opcode.LOGOUT_REQUEST: decode_logout_request,  # §11.14
    Opcode.SNACK: decode_snack,  # §11.16
    Opcode.NOP_IN: decode_nop_in,  # §11.19
    Opcode.SCSI_RESPONSE: decode_scsi_response,  # §11.4
    Opcode.TASK_MGMT_RESPONSE: decode_task_mgmt_response,  # §11.6
    Opcode.LOGIN_RESPONSE: decode_login_response,  # §11.13
    Opcode.TEXT_RESPONSE: decode_text_response,  # §11.11
    Opcode.DATA_IN: decode_data_in,  # §11.7.2
    Opcode.LOGOUT_RESPONSE: decode_logout_response,  # §11.15
    Opcode.R2T: decode_r2t,  # §11.8
    Opcode.ASYNC_MESSAGE: decode_async_message,  # §11.9
    Opcode.REJECT: decode_reject,  # §11.17
}

#: Opcodes whose bytes 8-15 are a LUN; the rest get ``lun=None``. NOP-Out/In, Data-Out/In
#: carry a LUN only with a valid TTT, Async Message only for AsyncEvent 0 (else None).
#: Text Request/Response carry "LUN or Reserved" but no implementation uses it.
LUN_OPCODES: Final = frozenset({
    Opcode.NOP_OUT, Opcode.SCSI_COMMAND, Opcode.TASK_MGMT_REQUEST, Opcode.DATA_OUT, Opcode.SNACK,
    Opcode.NOP_IN, Opcode.DATA_IN, Opcode.R2T, Opcode.ASYNC_MESSAGE,
})

# Flat lookup tables indexed by the 6-bit opcode: no hashing on the hot path.
_BY_INT: Final[dict[int, Decoder]] = {int(op): fn for op, fn in DECODERS.items()}
_TABLE: Final[tuple[Decoder, ...]] = tuple(_BY_INT.get(op, decode_unknown) for op in range(64))
#: Opcodes whose LUN field is valid only with a valid TTT (bytes 20-23 not 0xffffffff):
#: §11.7.1, §11.7.2 (Data-Out/In), §11.18, §11.19 (NOP-Out/In).
TTT_LUN_OPCODES: Final = frozenset({Opcode.NOP_OUT, Opcode.DATA_OUT, Opcode.NOP_IN, Opcode.DATA_IN})
#: Per opcode: 0 = no LUN, 1 = a LUN, 2 = a LUN when the TTT is valid.
_LUN_RULE: Final[tuple[int, ...]] = tuple(
    (2 if op in TTT_LUN_OPCODES else 1) if op in LUN_OPCODES else 0 for op in range(64))


def decode_pdu(bhs: bytes, ahs: bytes, data: bytes | None, frame: int, ts_ns: int, conn: str, direction: str,
               first_frame: int, header_digest: str | None, data_digest: str | None) -> Pdu:
    """Decode one framed PDU (RFC 7143 §11) into its record.

    ``bhs``: exactly 48 bytes. ``ahs``: TotalAHSLength*4 bytes (may be empty). ``data``:
    the data segment without padding (DataSegmentLength bytes), or None when the framer
    did not keep it. ``header_digest`` / ``data_digest``: "ok", "bad" or None (not
    negotiated); a header digest shifts the data segment's offset by 4 in DecodeErrors.
    Raises :class:`DecodeError` only; never anything else.
    """
    if len(bhs) != BHS_LEN:
        raise DecodeError(f"BHS is {len(bhs)} bytes, not 48", 0)
    b0, b1, _b2, _b3, ahs_dsl, lun_raw, itt, word20 = _COMMON.unpack_from(bhs)
    op: int = b0 & 0x3F
    tahs = ahs_dsl >> 24
    if len(ahs) != tahs * 4:
        raise DecodeError(f"AHS is {len(ahs)} bytes but TotalAHSLength says {tahs * 4}", 4)
    dsl = ahs_dsl & 0xFFFFFF
    if data is not None and len(data) != dsl:
        raise DecodeError(f"data segment is {len(data)} bytes but DataSegmentLength says {dsl}", 5)
    rule = _LUN_RULE[op]
    common: Common = (
        frame, ts_ns, conn, direction, first_frame, op, bool(b0 & 0x40), bool(b1 & 0x80), tahs, dsl,
        decode_lun(lun_raw) if rule == 1 or (rule and word20 != 0xFFFFFFFF) else None, itt,
        parse_ahs(ahs) if ahs else _NO_AHS, header_digest, data_digest,
    )
    doff = BHS_LEN + len(ahs) + (4 if header_digest is not None else 0)
    return _TABLE[op](common, bhs, data, doff)
