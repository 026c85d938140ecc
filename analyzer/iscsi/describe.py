"""One-line human summaries of PDU records, like Wireshark's Info column.

``info(pdu)`` examples::

    SCSI Command READ(10) LUN 0 LBA 2048 len 8
    SCSI Response (CHECK CONDITION: ILLEGAL REQUEST, Invalid field in CDB)
    Login Response (Not found 0x0203)
    Logout Request (close the session)
    R2T R2TSN 0 off 0 len 65536

Key text is printed with CHAP/SRP/Kerberos secrets masked (text_keys.mask_secret).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

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
    Snack,
    TaskMgmtRequest,
    TaskMgmtResponse,
    TextRequest,
    TextResponse,
    UnknownPdu,
)

from .opcodes import (
    async_event_name,
    login_stage_name,
    login_status_code,
    login_status_name,
    logout_reason_name,
    logout_response_name,
    opcode_name,
    reject_reason_name,
    scsi_response_name,
    snack_type_name,
    tmf_function_name,
    tmf_response_name,
)
from .scsi import sense_summary, status_name
from .text_keys import format_keys

_RESERVED: Final = 0xFFFFFFFF
#: Longest key text shown in an Info line.
KEY_TEXT_LIMIT: Final = 120


def _lun(pdu: Pdu) -> str:
    return f" LUN {pdu.lun}" if pdu.lun is not None else ""


#: Characters that would act on a terminal or reorder text (C0 but tab/newline, DEL, C1, bidi):
#: key values come from the capture, so the Info text shows them as ``\\x1b`` escapes.
_CONTROLS: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def _keys(keys: tuple[tuple[str, str], ...]) -> str:
    if not keys:
        return ""
    return " " + _CONTROLS.sub(_escape, format_keys(keys, KEY_TEXT_LIMIT))


def _stages(transit: bool, cont: bool, csg: int, nsg: int) -> str:
    text = login_stage_name(csg)
    if transit:
        text += f" -> {login_stage_name(nsg)}"
    if cont:
        text += ", continues"
    return text


def _nop_out(p: NopOut) -> str:
    if p.ttt != _RESERVED:
        return f"NOP Out (reply to target ping TTT 0x{p.ttt:08x})"
    if p.itt == _RESERVED:
        return "NOP Out (no reply wanted)"
    return f"NOP Out (ping ITT 0x{p.itt:08x})"


def _nop_in(p: NopIn) -> str:
    if p.ttt != _RESERVED:
        return f"NOP In (target ping TTT 0x{p.ttt:08x})"
    if p.itt != _RESERVED:
        return f"NOP In (ping reply ITT 0x{p.itt:08x})"
    return "NOP In"


def _scsi_command(p: ScsiCommand) -> str:
    text = f"SCSI Command {p.cdb.name}{_lun(p)}"
    if p.cdb.lba is not None:
        text += f" LBA {p.cdb.lba}"
    if p.cdb.transfer_length is not None:
        text += f" len {p.cdb.transfer_length}"
    return text


def _scsi_response(p: ScsiResponse) -> str:
    if p.response != 0:
        return f"SCSI Response ({scsi_response_name(p.response)})"
    text = status_name(p.status)
    if p.sense is not None:
        text += f": {sense_summary(p.sense)}"
    if p.underflow:
        text += f", residual underflow {p.residual}"
    elif p.overflow:
        text += f", residual overflow {p.residual}"
    return f"SCSI Response ({text})"


def _tmf(p: TaskMgmtRequest) -> str:
    text = f"Task Management Function {tmf_function_name(p.function)}{_lun(p)}"
    if p.function in (1, 9):  # ABORT TASK / QUERY TASK name a task
        text += f" task 0x{p.ref_task_tag:08x}"
    return text


def _tmf_response(p: TaskMgmtResponse) -> str:
    return f"Task Management Function Response ({tmf_response_name(p.response)})"


def _login_request(p: LoginRequest) -> str:
    return f"Login Command ({_stages(p.transit, p.cont, p.csg, p.nsg)}){_keys(p.keys)}"


def _login_response(p: LoginResponse) -> str:
    if p.status_class == 0 and p.status_detail == 0:
        return f"Login Response (Success, {_stages(p.transit, p.cont, p.csg, p.nsg)}){_keys(p.keys)}"
    name = login_status_name(p.status_class, p.status_detail)
    return f"Login Response ({name} {login_status_code(p.status_class, p.status_detail)}){_keys(p.keys)}"


def _text_request(p: TextRequest) -> str:
    return f"Text Command{' (continues)' if p.cont else ''}{_keys(p.keys)}"


def _text_response(p: TextResponse) -> str:
    return f"Text Response{' (continues)' if p.cont else ''}{_keys(p.keys)}"


def _data_out(p: DataOut) -> str:
    final = " (final)" if p.final else ""
    return f"SCSI Data Out DataSN {p.datasn} off {p.buffer_offset} len {p.dsl}{final}"


def _data_in(p: DataIn) -> str:
    text = f"SCSI Data In DataSN {p.datasn} off {p.buffer_offset} len {p.dsl}"
    if p.status is not None:
        text += f" ({status_name(p.status)})"
    return text


def _logout_request(p: LogoutRequest) -> str:
    return f"Logout Request ({logout_reason_name(p.reason)})"


def _logout_response(p: LogoutResponse) -> str:
    return f"Logout Response ({logout_response_name(p.response)})"


def _snack(p: Snack) -> str:
    return f"SNACK Request ({snack_type_name(p.snack_type)}) BegRun {p.begrun} RunLength {p.runlength}"


def _r2t(p: R2T) -> str:
    return f"R2T R2TSN {p.r2tsn} off {p.buffer_offset} len {p.desired_length}"


def _async(p: AsyncMessage) -> str:
    text = async_event_name(p.async_event)
    if p.sense is not None:
        text += f": {sense_summary(p.sense)}"
    elif p.async_event in (1, 4):
        text += f" within {p.param3} s"
    elif p.async_event == 2:
        text += f" CID {p.param1}"
    return f"Asynchronous Message ({text})"


def _reject(p: Reject) -> str:
    text = f"Reject ({reject_reason_name(p.reason)})"
    if p.rejected_opcode is not None:
        text += f" of {opcode_name(p.rejected_opcode)}"
        if p.rejected_itt is not None:
            text += f" ITT 0x{p.rejected_itt:08x}"
    return text


def _unknown(p: UnknownPdu) -> str:
    return f"{opcode_name(p.opcode)} (0x{p.opcode:02x})"


_DESCRIBERS: Final[dict[type, Callable[..., str]]] = {
    NopOut: _nop_out,
    ScsiCommand: _scsi_command,
    TaskMgmtRequest: _tmf,
    LoginRequest: _login_request,
    TextRequest: _text_request,
    DataOut: _data_out,
    LogoutRequest: _logout_request,
    Snack: _snack,
    NopIn: _nop_in,
    ScsiResponse: _scsi_response,
    TaskMgmtResponse: _tmf_response,
    LoginResponse: _login_response,
    TextResponse: _text_response,
    DataIn: _data_in,
    LogoutResponse: _logout_response,
    R2T: _r2t,
    AsyncMessage: _async,
    Reject: _reject,
    UnknownPdu: _unknown,
}


def info(pdu: Pdu) -> str:
    """A short human summary of one PDU record (Wireshark Info-column style, secrets masked)."""
    fn = _DESCRIBERS.get(type(pdu))
    if fn is None:
        return opcode_name(pdu.opcode)
    return fn(pdu)
