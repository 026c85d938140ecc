"""Rows: records turned into flat dicts of plain values, for the CLI and the reports.

Pure and pandas-free, so both the click front end (csv/jsonl/table) and ``reports`` (which
builds DataFrames) share one definition of every column.
"""

from __future__ import annotations

import re
from typing import Any, Final

from analyzer.records import (
    R2T,
    DataIn,
    DataOut,
    LoginResponse,
    LogoutResponse,
    MalformedPdu,
    Pdu,
    ScsiCommand,
    ScsiResponse,
    TaskMgmtResponse,
)
from analyzer.render.output import csv_safe

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


#: "0x00" .. "0xff": one-byte codes as the listing shows them (a lookup, not a format call per cell).
_HEX2: Final = tuple(f"0x{v:02x}" for v in range(256))

#: Per record type, source expressions for (cdb_opcode, scsi_status, response, datasn, buffer_offset),
#: shared by the row and the CSV line builders (``HEX2`` is in both builders' namespace).
_EXTRA_SRC: Final[dict[type, tuple[str, str, str, str, str]]] = {
    ScsiCommand: ("HEX2[p.cdb.opcode]", "None", "None", "None", "None"),
    ScsiResponse: ("None", "HEX2[p.status]", "HEX2[p.response]", "None", "None"),
    DataIn: ("None", "(None if p.status is None else HEX2[p.status])", "None", "p.datasn", "p.buffer_offset"),
    DataOut: ("None", "None", "None", "p.datasn", "p.buffer_offset"),
    R2T: ("None", "None", "None", "None", "p.buffer_offset"),
    LoginResponse: ("None", "None", 'f"0x{p.status_class:02x}{p.status_detail:02x}"', "None", "None"),
    LogoutResponse: ("None", "None", "HEX2[p.response]", "None", "None"),
    TaskMgmtResponse: ("None", "None", "HEX2[p.response]", "None", "None"),
}

_OPCODE_NAMES: list[str] = []


def _opcode_names() -> list[str]:
    if not _OPCODE_NAMES:
        from analyzer.iscsi.opcodes import opcode_name

        _OPCODE_NAMES.extend(opcode_name(op) for op in range(64))
    return _OPCODE_NAMES


_ROW_BUILDERS: dict[type, Any] = {}


def _row_builder(cls: type, record: bool = False) -> Any:
    """A function building the PDU_COLUMNS tuple of one record type, generated once per type.

    One call per PDU with every field read directly: no isinstance chain, and no
    getattr(obj, name, None) on a missing slot (which raises and catches an AttributeError
    inside, costing more than the rest of the row).
    """
    fields = getattr(cls, "__dataclass_fields__", {})

    def get(name: str) -> str:
        return f"p.{name}" if name in fields else "None"

    ttt = '(None if p.ttt is None else f"0x{p.ttt:08x}")' if "ttt" in fields else "None"
    cdb_opcode, status, response, datasn, buffer_offset = _EXTRA_SRC.get(cls, ("None",) * 5)
    ts = "p.ts_ns" if record else 'f"{p.ts_ns // 1_000_000_000}.{p.ts_ns % 1_000_000_000:09d}"'
    cells = [
        "p.frame", ts, "src", "sport", "dst", "dport",
        "p.direction", 'f"0x{p.opcode:02x}"', "NAMES[p.opcode]", 'f"0x{p.itt:08x}"', ttt, "p.lun", get("cmdsn"),
        get("expstatsn"), get("statsn"), get("expcmdsn"), get("maxcmdsn"), datasn, buffer_offset, "p.dsl",
        cdb_opcode, status, response, "p.header_digest", "p.data_digest", "info", "p.first_frame", "p.conn",
    ]
    assert len(cells) == len(PDU_COLUMNS)
    if record:
        cells.append("None")  # the session column of the reports' pdus table, filled in later
    source = "lambda p, src, sport, dst, dport, info: (" + ", ".join(cells) + ",)"
    return eval(source, {"NAMES": _opcode_names(), "HEX2": _HEX2})  # noqa: S307 - built from our own field names only


def pdu_values(pdu: Pdu | MalformedPdu, endpoints: Any, info: str) -> tuple[Any, ...]:
    """One row of the PDU listing as a tuple in PDU_COLUMNS order (the fast path for csv).

    ``endpoints`` has client/client_port/server/server_port.
    """
    if pdu.direction == "i2t":
        src, sport, dst, dport = endpoints.client, endpoints.client_port, endpoints.server, endpoints.server_port
    else:
        src, sport, dst, dport = endpoints.server, endpoints.server_port, endpoints.client, endpoints.client_port
    t = type(pdu)
    if t is MalformedPdu:
        ts = pdu.ts_ns
        return (pdu.frame, f"{ts // 1_000_000_000}.{ts % 1_000_000_000:09d}", src, sport, dst, dport,
                pdu.direction, f"0x{pdu.opcode:02x}", "Malformed", None, None, None, None, None, None, None,
                None, None, None, None, None, None, None, None, None, info, pdu.first_frame, pdu.conn)
    build = _ROW_BUILDERS.get(t)
    if build is None:
        build = _ROW_BUILDERS[t] = _row_builder(t)
    return build(pdu, src, sport, dst, dport, info)  # type: ignore[no-any-return]


_RECORD_BUILDERS: dict[type, Any] = {}


def pdu_record_values(pdu: Pdu | MalformedPdu, endpoints: Any, info: str) -> tuple[Any, ...]:
    """``pdu_values`` for the reports' pdus table: ``ts`` as integer nanoseconds and one more
    cell, the session (None here: the reports fill it in from the connection)."""
    if pdu.direction == "i2t":
        src, sport, dst, dport = endpoints.client, endpoints.client_port, endpoints.server, endpoints.server_port
    else:
        src, sport, dst, dport = endpoints.server, endpoints.server_port, endpoints.client, endpoints.client_port
    t = type(pdu)
    if t is MalformedPdu:
        return (pdu.frame, pdu.ts_ns, src, sport, dst, dport, pdu.direction, f"0x{pdu.opcode:02x}", "Malformed",
                None, None, None, None, None, None, None, None, None, None, None, None, None, None, None, None,
                info, pdu.first_frame, pdu.conn, None)
    build = _RECORD_BUILDERS.get(t)
    if build is None:
        build = _RECORD_BUILDERS[t] = _row_builder(t, record=True)
    return build(pdu, src, sport, dst, dport, info)  # type: ignore[no-any-return]


_CSV_BUILDERS: dict[type, Any] = {}


def _csv_builder(cls: type) -> Any:
    """Like ``_row_builder`` but returns the CSV line itself: every cell is a str expression
    evaluated inline and joined once (no tuple, no per-cell Python loop)."""
    fields = getattr(cls, "__dataclass_fields__", {})

    def get(name: str) -> tuple[str, str | None]:
        return ("%s", f"'' if p.{name} is None else p.{name}") if name in fields else ("", None)

    extras = [("", None) if x == "None" else ("%s", f"'' if (_v := ({x})) is None else _v")
              for x in _EXTRA_SRC.get(cls, ("None",) * 5)]
    cdb_opcode, status, response, datasn, buffer_offset = extras
    ts = "(t := str(p.ts_ns))[:-9] + '.' + t[-9:] if p.ts_ns >= 1_000_000_000 else TS(p.ts_ns)"
    cells: list[tuple[str, str | None]] = [
        ("%s", "p.frame"), ("%s", ts), ("%s", "src"), ("%s", "sport"), ("%s", "dst"), ("%s", "dport"),
        ("%s", "p.direction"), ("%s", "HEX2[p.opcode]"), ("%s", "NAMES[p.opcode]"), ("0x%08x", "p.itt"),
        ("%s", "'' if p.ttt is None else '0x%08x' % p.ttt") if "ttt" in fields else ("", None),
        get("lun"), get("cmdsn"), get("expstatsn"), get("statsn"), get("expcmdsn"), get("maxcmdsn"), datasn,
        buffer_offset, ("%s", "p.dsl"), cdb_opcode, status, response, get("header_digest"), get("data_digest"),
        ("%s", "info"), ("%s", "p.first_frame"), ("%s", "p.conn"),
    ]
    assert len(cells) == len(PDU_COLUMNS)
    fmt = ",".join(piece for piece, _ in cells)
    args = ", ".join(expr for _, expr in cells if expr is not None)
    source = f"lambda p, src, sport, dst, dport, info: {fmt!r} % ({args},)"
    return eval(source, {"NAMES": _opcode_names(), "HEX2": _HEX2, "TS": ts_text})  # noqa: S307 - our own field names




def pdu_csv(pdu: Pdu | MalformedPdu, endpoints: Any, info_cell: str) -> str:
    """The PDU listing's CSV line for one record; ``info_cell`` is the info text already made safe
    for CSV (``csv_cell``): the bytes the csv module writes for ``pdu_values(...)``."""
    t = type(pdu)
    if t is MalformedPdu:  # rare: the generic path (info_cell is already quoted: join, don't re-quote)
        return ",".join("" if x is None else str(x) for x in pdu_values(pdu, endpoints, info_cell))
    if pdu.direction == "i2t":
        src, sport, dst, dport = endpoints.client, endpoints.client_port, endpoints.server, endpoints.server_port
    else:
        src, sport, dst, dport = endpoints.server, endpoints.server_port, endpoints.client, endpoints.client_port
    build = _CSV_BUILDERS.get(t)
    if build is None:
        build = _CSV_BUILDERS[t] = _csv_builder(t)
    return build(pdu, src, sport, dst, dport, info_cell)  # type: ignore[no-any-return]


#: Characters ``csv_safe`` or ``csv_cell`` would act on (controls, separators, quotes, newlines).
_CSV_SPECIAL: Final = re.compile(r'[,"\n\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]')


def csv_text_cell(text: str) -> str:
    """``csv_cell(csv_safe(text))``, with one regex scan for the common plain text."""
    if text and text[0] not in "=+-@\t" and _CSV_SPECIAL.search(text) is None:
        return text
    return csv_cell(csv_safe(text))


def csv_cell(text: str) -> str:
    """A text cell quoted as the csv module's QUOTE_MINIMAL would quote it."""
    if "," in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def pdu_row(pdu: Pdu | MalformedPdu, endpoints: Any, info: str) -> dict[str, Any]:
    """One row of the PDU listing as a dict keyed by PDU_COLUMNS."""
    return dict(zip(PDU_COLUMNS, pdu_values(pdu, endpoints, info), strict=True))


def ts_iso(ts_ns: int | None) -> str | None:
    """UTC ISO 8601 with microseconds (for people)."""
    if ts_ns is None:
        return None
    import datetime as _dt

    d = _dt.datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=_dt.UTC)
    return d.strftime("%Y-%m-%d %H:%M:%S") + f".{(ts_ns % 1_000_000_000) // 1000:06d}"


#: Columns of ``iscsi-analyzer timeline``.
TRANSITION_COLUMNS: Final = ("ts", "frame", "session", "connection", "machine", "side", "from_state", "to_state",
                             "label", "event", "inferred")


def transition_row(t: Any) -> dict[str, Any]:
    return {"ts": ts_text(t.ts_ns), "frame": t.frame, "session": t.session, "connection": t.conn,
            "machine": t.machine, "side": t.side, "from_state": t.from_state, "to_state": t.to_state,
            "label": t.label, "event": t.event, "inferred": t.inferred}


#: Columns of ``iscsi-analyzer tasks``.
TASK_COLUMNS: Final = (
    "session", "connection", "itt", "kind", "lun", "operation", "cdb_opcode", "lba", "transfer_length", "read",
    "write", "edtl", "bytes_in", "bytes_out", "r2t_count", "status", "response", "sense", "residual",
    "first_frame", "last_frame", "start_ts", "end_ts", "latency_ms", "outcome", "cmdsn", "immediate", "partial",
    "note", "unanswered_cause", "aborted_by_itt",
)


def task_row(t: Any) -> dict[str, Any]:
    op = t.cdb_name if t.kind == "scsi" else t.kind
    if t.kind == "tmf" and t.tmf_function_name:
        op = t.tmf_function_name
    sense = None
    if t.sense_key is not None:
        sense = f"{t.sense_key_name or t.sense_key}"
        if t.asc is not None:
            sense += f", {t.asc_name or ''} (0x{t.asc:02x}/0x{(t.ascq or 0):02x})"
    status = t.status_name or (None if t.status is None else f"0x{t.status:02x}")
    response = t.response_name or (None if t.response is None else f"0x{t.response:02x}")
    if t.kind == "login" and t.login_status_class is not None:
        response = f"0x{t.login_status_class:02x}{(t.login_status_detail or 0):02x}"
    residual = None
    if t.residual is not None and (t.residual_overflow or t.residual_underflow):
        residual = ("over " if t.residual_overflow else "under ") + str(t.residual)
    return {
        "session": t.session, "connection": t.conn, "itt": f"0x{t.itt:08x}", "kind": t.kind, "lun": t.lun,
        "operation": op, "cdb_opcode": None if t.cdb_opcode is None else f"0x{t.cdb_opcode:02x}", "lba": t.lba,
        "transfer_length": t.transfer_length, "read": t.read, "write": t.write, "edtl": t.edtl,
        "bytes_in": t.bytes_in, "bytes_out": t.bytes_out, "r2t_count": t.r2t_count, "status": status,
        "response": response, "sense": sense, "residual": residual, "first_frame": t.first_frame,
        "last_frame": t.last_frame, "start_ts": ts_text(t.start_ts_ns), "end_ts": ts_text(t.end_ts_ns),
        "latency_ms": round(t.latency_ns / 1e6, 3), "outcome": t.outcome, "cmdsn": t.cmdsn,
        "immediate": t.immediate, "partial": t.partial, "note": t.note,
        "unanswered_cause": getattr(t, "unanswered_cause", None),
        "aborted_by_itt": hex32(getattr(t, "aborted_by_itt", None)),
    }


#: Columns of ``iscsi-analyzer sessions`` (csv/jsonl); the table format is a per-session block.
SESSION_COLUMNS: Final = (
    "session", "type", "initiator_name", "initiator_alias", "target_name", "target_alias", "isid", "tpgt", "tsih",
    "ssid", "portals", "initiator_addresses", "connections", "cids", "start_ts", "start_frame", "end_ts",
    "end_frame", "ended", "state_initiator", "state_target", "mid_stream", "reinstated_from", "reinstated_by",
    "tasks", "params",
)


def session_row(s: Any) -> dict[str, Any]:
    return {
        "session": s.session, "type": s.session_type, "initiator_name": s.initiator_name,
        "initiator_alias": s.initiator_alias, "target_name": s.target_name, "target_alias": s.target_alias,
        "isid": s.isid and f"0x{s.isid}", "tpgt": s.tpgt, "tsih": None if s.tsih is None else f"0x{s.tsih:04x}",
        "ssid": s.ssid, "portals": list(s.portals), "initiator_addresses": list(s.initiator_addresses),
        "connections": list(s.connections), "cids": list(s.cids), "start_ts": ts_text(s.start_ts_ns),
        "start_frame": s.start_frame, "end_ts": ts_text(s.end_ts_ns), "end_frame": s.end_frame, "ended": s.ended,
        "state_initiator": s.state_initiator, "state_target": s.state_target, "mid_stream": s.mid_stream,
        "reinstated_from": s.reinstated_from, "reinstated_by": s.reinstated_by, "tasks": s.tasks,
        "params": dict(s.params),
    }
