"""Rows: records turned into flat dicts of plain values, for the CLI and the reports.

Pure and pandas-free, so both the click front end (csv/jsonl/table) and ``reports`` (which
builds DataFrames) share one definition of every column.
"""

from __future__ import annotations

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


def _no_extras(pdu: Any) -> tuple[Any, Any, Any, Any, Any]:
    return None, None, None, None, None


#: Per record type: (cdb_opcode, scsi_status, response, datasn, buffer_offset) - one call, no isinstance chain.
_EXTRAS: Final[dict[type, Any]] = {
    ScsiCommand: lambda p: (f"0x{p.cdb.opcode:02x}", None, None, None, None),
    ScsiResponse: lambda p: (None, f"0x{p.status:02x}", f"0x{p.response:02x}", None, None),
    DataIn: lambda p: (None, None if p.status is None else f"0x{p.status:02x}", None, p.datasn, p.buffer_offset),
    DataOut: lambda p: (None, None, None, p.datasn, p.buffer_offset),
    R2T: lambda p: (None, None, None, None, p.buffer_offset),
    LoginResponse: lambda p: (None, None, f"0x{p.status_class:02x}{p.status_detail:02x}", None, None),
    LogoutResponse: lambda p: (None, None, f"0x{p.response:02x}", None, None),
    TaskMgmtResponse: lambda p: (None, None, f"0x{p.response:02x}", None, None),
}

_OPCODE_NAMES: list[str] = []


def _opcode_names() -> list[str]:
    if not _OPCODE_NAMES:
        from analyzer.iscsi.opcodes import opcode_name

        _OPCODE_NAMES.extend(opcode_name(op) for op in range(64))
    return _OPCODE_NAMES


def pdu_values(pdu: Pdu | MalformedPdu, endpoints: Any, info: str) -> tuple[Any, ...]:
    """One row of the PDU listing as a tuple in PDU_COLUMNS order (the fast path for csv).

    ``endpoints`` has client/client_port/server/server_port.
    """
    if pdu.direction == "i2t":
        src, sport, dst, dport = endpoints.client, endpoints.client_port, endpoints.server, endpoints.server_port
    else:
        src, sport, dst, dport = endpoints.server, endpoints.server_port, endpoints.client, endpoints.client_port
    ts = pdu.ts_ns
    ts_s = f"{ts // 1_000_000_000}.{ts % 1_000_000_000:09d}"
    if type(pdu) is MalformedPdu:
        return (pdu.frame, ts_s, src, sport, dst, dport, pdu.direction, f"0x{pdu.opcode:02x}", "Malformed",
                None, None, None, None, None, None, None, None, None, None, None, None, None, None, None, None,
                info, pdu.first_frame, pdu.conn)
    assert isinstance(pdu, Pdu)
    t = type(pdu)
    cdb_opcode, status, response, datasn, buffer_offset = _EXTRAS.get(t, _no_extras)(pdu)
    seq = _SEQ_GETTERS.get(t)
    if seq is None:
        seq = _SEQ_GETTERS[t] = _seq_getter(t)
    ttt, cmdsn, expstatsn, statsn, expcmdsn, maxcmdsn = seq(pdu)
    return (
        pdu.frame, ts_s, src, sport, dst, dport, pdu.direction, f"0x{pdu.opcode:02x}", _opcode_names()[pdu.opcode],
        f"0x{pdu.itt:08x}", None if ttt is None else f"0x{ttt:08x}", pdu.lun, cmdsn, expstatsn, statsn, expcmdsn,
        maxcmdsn, datasn, buffer_offset, pdu.dsl, cdb_opcode, status, response,
        pdu.header_digest, pdu.data_digest, info, pdu.first_frame, pdu.conn,
    )


_SEQ_FIELDS: Final = ("ttt", "cmdsn", "expstatsn", "statsn", "expcmdsn", "maxcmdsn")
_SEQ_GETTERS: dict[type, Any] = {}


def _seq_getter(cls: type) -> Any:
    """(ttt, cmdsn, expstatsn, statsn, expcmdsn, maxcmdsn) of a record type, None where it has no such
    field. Built once per type: getattr(obj, name, None) on a missing slot raises and catches an
    AttributeError inside, which costs more than the rest of the row."""
    fields = getattr(cls, "__dataclass_fields__", {})
    body = ", ".join(f"p.{n}" if n in fields else "None" for n in _SEQ_FIELDS)
    return eval(f"lambda p: ({body})")  # noqa: S307 - built from our own field names only


def csv_line(values: tuple[Any, ...]) -> str:
    """One CSV line (QUOTE_MINIMAL, as the csv module writes it) for a row of ints, None and text.

    A text cell is quoted when it holds a comma, a quote or a line break; None is empty.
    About twice as fast as ``csv.writer.writerow`` for the PDU listing's 28 columns.
    """
    out = []
    for v in values:
        if v is None:
            out.append("")
        elif type(v) is str:
            if "," in v or '"' in v or "\n" in v or "\r" in v:
                v = '"' + v.replace('"', '""') + '"'
            out.append(v)
        elif v is True or v is False:
            out.append(str(v))
        else:
            out.append(str(v))
    return ",".join(out)


def pdu_row(pdu: Pdu | MalformedPdu, endpoints: Any, info: str) -> dict[str, Any]:
    """One row of the PDU listing as a dict keyed by PDU_COLUMNS."""
    return dict(zip(PDU_COLUMNS, pdu_values(pdu, endpoints, info)))


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
