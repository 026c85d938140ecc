"""Rows: records turned into flat dicts of plain values, for the CLI and the reports.

Pure and pandas-free, so both the click front end (csv/jsonl/table) and ``reports`` (which
builds DataFrames) share one definition of every column.
"""

from __future__ import annotations

from typing import Any, Final

from analyzer.records import (
    DataIn,
    DataOut,
    LoginRequest,
    LoginResponse,
    LogoutResponse,
    MalformedPdu,
    Pdu,
    R2T,
    ScsiCommand,
    ScsiResponse,
    TaskMgmtResponse,
)

#: Columns of ``iscsi-analyzer pdus`` (stable for tools; add at the end only).
PDU_COLUMNS: Final = (
    "frame", "ts", "src", "sport", "dst", "dport", "direction", "opcode", "opcode_name", "itt", "ttt",
    "lun", "cmdsn", "expstatsn", "statsn", "expcmdsn", "maxcmdsn", "datasn", "buffer_offset", "dsl",
    "cdb_opcode", "scsi_status", "response", "header_digest", "data_digest", "info", "first_frame", "conn",
)


def ts_text(ts_ns: int) -> str:
    """Epoch seconds with nanosecond precision, as Wireshark's frame.time_epoch prints it."""
    return f"{ts_ns // 1_000_000_000}.{ts_ns % 1_000_000_000:09d}"


def hex32(v: int | None) -> str | None:
    return None if v is None else f"0x{v:08x}"


def pdu_row(pdu: Pdu | MalformedPdu, endpoints: Any, info: str) -> dict[str, Any]:
    """One row of the PDU listing. ``endpoints`` has client/client_port/server/server_port."""
    if pdu.direction == "i2t":
        src, sport, dst, dport = endpoints.client, endpoints.client_port, endpoints.server, endpoints.server_port
    else:
        src, sport, dst, dport = endpoints.server, endpoints.server_port, endpoints.client, endpoints.client_port
    if isinstance(pdu, MalformedPdu):
        return {
            "frame": pdu.frame, "ts": ts_text(pdu.ts_ns), "src": src, "sport": sport, "dst": dst, "dport": dport,
            "direction": pdu.direction, "opcode": f"0x{pdu.opcode:02x}", "opcode_name": "Malformed",
            "itt": None, "ttt": None, "lun": None, "cmdsn": None, "expstatsn": None, "statsn": None,
            "expcmdsn": None, "maxcmdsn": None, "datasn": None, "buffer_offset": None, "dsl": None,
            "cdb_opcode": None, "scsi_status": None, "response": None, "header_digest": None,
            "data_digest": None, "info": info, "first_frame": pdu.first_frame, "conn": pdu.conn,
        }
    g = pdu.__getattribute__
    cdb_opcode = None
    status = None
    response: str | None = None
    if isinstance(pdu, ScsiCommand):
        cdb_opcode = f"0x{pdu.cdb.opcode:02x}"
    elif isinstance(pdu, ScsiResponse):
        status = f"0x{pdu.status:02x}"
        response = f"0x{pdu.response:02x}"
    elif isinstance(pdu, DataIn):
        status = None if pdu.status is None else f"0x{pdu.status:02x}"
    elif isinstance(pdu, LoginResponse):
        response = f"0x{pdu.status_class:02x}{pdu.status_detail:02x}"
    elif isinstance(pdu, (LogoutResponse, TaskMgmtResponse)):
        response = f"0x{pdu.response:02x}"
    datasn = buffer_offset = None
    if isinstance(pdu, (DataIn, DataOut)):
        datasn = pdu.datasn
        buffer_offset = pdu.buffer_offset
    elif isinstance(pdu, R2T):
        buffer_offset = pdu.buffer_offset
    ttt = _opt(pdu, "ttt")
    return {
        "frame": pdu.frame,
        "ts": ts_text(pdu.ts_ns),
        "src": src,
        "sport": sport,
        "dst": dst,
        "dport": dport,
        "direction": pdu.direction,
        "opcode": f"0x{pdu.opcode:02x}",
        "opcode_name": _opcode_name(pdu.opcode),
        "itt": f"0x{g('itt'):08x}",
        "ttt": hex32(ttt),
        "lun": pdu.lun,
        "cmdsn": _opt(pdu, "cmdsn"),
        "expstatsn": _opt(pdu, "expstatsn"),
        "statsn": _opt(pdu, "statsn"),
        "expcmdsn": _opt(pdu, "expcmdsn"),
        "maxcmdsn": _opt(pdu, "maxcmdsn"),
        "datasn": datasn,
        "buffer_offset": buffer_offset,
        "dsl": pdu.dsl,
        "cdb_opcode": cdb_opcode,
        "scsi_status": status,
        "response": response,
        "header_digest": pdu.header_digest,
        "data_digest": pdu.data_digest,
        "info": info,
        "first_frame": pdu.first_frame,
        "conn": pdu.conn,
    }


def _opt(pdu: object, name: str) -> Any:
    return getattr(pdu, name, None)


def _opcode_name(op: int) -> str:
    from analyzer.iscsi.opcodes import opcode_name

    return opcode_name(op)


__all__ = ["PDU_COLUMNS", "pdu_row", "ts_text", "hex32", "LoginRequest"]
