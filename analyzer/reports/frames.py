"""Records -> pandas DataFrames with fixed columns and dtypes (house style §1: only ``reports`` imports pandas).

One schema per table (``SCHEMAS``): column name -> kind. Kinds map to dtypes:

========  ==========================  =============================================
kind      dtype                       used for
========  ==========================  =============================================
``int``   ``int64``                   counts and frame numbers that are always there
``Int``   ``Int64`` (nullable)        optional integers (CmdSN, status, ...)
``UInt``  ``UInt64`` (nullable)       optional 64-bit unsigned integers (LUN, LBA)
``str``   ``string`` (``pd.NA``)      free text, names, hex ids (``0x0000001f``)
``cat``   ``category`` (sorted)       opcode names, states, kinds, outcomes
``sev``   ordered ``category``        severity: info < warning < error
``ts``    ``datetime64[ns, UTC]``     capture timestamps (records carry integer ns)
``td``    ``timedelta64[ns]``         latencies and durations
``bool``  ``bool``                    flags
``float`` ``Float64`` (nullable)      measured values (milliseconds of the diagnosis tables)
========  ==========================  =============================================

Categories are the sorted distinct values (severity: ``SEVERITIES`` order first), so a
table read back from Parquet or CSV and passed through :func:`conform` is equal, dtypes
included, to the one that was written.

Row functions (``task_row``, ``session_row``, ...) turn one record into a dict of plain
values; ``*_frame(records)`` builds a whole table from a record list (what the tests use);
``collect.Collector`` uses the row functions while streaming.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, cast

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from analyzer.iscsi.describe import info as pdu_info
from analyzer.records import (
    SEVERITIES,
    Anomaly,
    LoginRequest,
    LoginResponse,
    MalformedPdu,
    Pdu,
    Record,
    TextRequest,
    TextResponse,
)
from analyzer.render.rows import PDU_COLUMNS, pdu_row
from analyzer.state.events import ConnectionSummary, SessionSummary, TaskRecord, Transition

# --------------------------------------------------------------------------- schemas

_PDU_KINDS: Final = {
    "frame": "int",
    "ts": "ts",
    "src": "cat",
    "sport": "Int",
    "dst": "cat",
    "dport": "Int",
    "direction": "cat",
    "opcode": "str",
    "opcode_name": "cat",
    "itt": "str",
    "ttt": "str",
    "lun": "UInt",
    "cmdsn": "Int",
    "expstatsn": "Int",
    "statsn": "Int",
    "expcmdsn": "Int",
    "maxcmdsn": "Int",
    "datasn": "Int",
    "buffer_offset": "Int",
    "dsl": "Int",
    "cdb_opcode": "str",
    "scsi_status": "str",
    "response": "str",
    "header_digest": "cat",
    "data_digest": "cat",
    "info": "str",
    "first_frame": "int",
    "conn": "cat",
}
#: ``views.PDU_COLUMNS`` (the ``pdus`` CLI listing) plus the session the connection belongs to.
PDU_SCHEMA: Final[dict[str, str]] = {**{c: _PDU_KINDS[c] for c in PDU_COLUMNS}, "session": "cat"}

TASK_SCHEMA: Final[dict[str, str]] = {
    "frame": "int",
    "session": "cat",
    "conn": "cat",
    "itt": "str",
    "kind": "cat",
    "outcome": "cat",
    "first_frame": "int",
    "last_frame": "int",
    "start_ts": "ts",
    "end_ts": "ts",
    "latency": "td",
    "immediate": "bool",
    "cmdsn": "Int",
    "lun": "UInt",
    "cdb_opcode": "str",
    "cdb_name": "cat",
    "lba": "UInt",
    "transfer_length": "Int",
    "read": "bool",
    "write": "bool",
    "edtl": "Int",
    "bytes_in": "int",
    "bytes_out": "int",
    "immediate_bytes": "int",
    "r2t_count": "int",
    "data_in_pdus": "int",
    "data_out_pdus": "int",
    "status": "Int",
    "status_name": "cat",
    "response": "Int",
    "response_name": "cat",
    "sense_key": "Int",
    "sense_key_name": "cat",
    "asc": "Int",
    "ascq": "Int",
    "asc_name": "str",
    "residual_overflow": "bool",
    "residual_underflow": "bool",
    "residual": "Int",
    "login_status_class": "Int",
    "login_status_detail": "Int",
    "logout_reason": "Int",
    "logout_cid": "Int",
    "tmf_function": "Int",
    "tmf_function_name": "cat",
    "ref_task_tag": "str",
    "reject_reason": "Int",
    "partial": "bool",
    "note": "str",
}

SESSION_SCHEMA: Final[dict[str, str]] = {
    "session": "str",
    "session_type": "cat",
    "isid": "str",
    "tpgt": "Int",
    "tsih": "Int",
    "ssid": "str",
    "initiator_name": "str",
    "target_name": "str",
    "initiator_alias": "str",
    "target_alias": "str",
    "portals": "str",
    "initiator_addresses": "str",
    "connections": "str",
    "cids": "str",
    "params": "str",
    "start_frame": "int",
    "start_ts": "ts",
    "end_frame": "int",
    "end_ts": "ts",
    "duration": "td",
    "ended": "cat",
    "state_initiator": "cat",
    "state_target": "cat",
    "mid_stream": "bool",
    "reinstated_from": "str",
    "reinstated_by": "str",
    "tasks": "int",
    "discovered_targets": "str",
}

CONNECTION_SCHEMA: Final[dict[str, str]] = {
    "conn": "str",
    "session": "str",
    "cid": "Int",
    "client": "str",
    "client_port": "Int",
    "server": "str",
    "server_port": "Int",
    "role": "cat",
    "params": "str",
    "header_digest": "bool",
    "data_digest": "bool",
    "max_recv_dsl_initiator": "Int",
    "max_recv_dsl_target": "Int",
    "start_frame": "int",
    "start_ts": "ts",
    "end_frame": "int",
    "end_ts": "ts",
    "duration": "td",
    "ended": "cat",
    "state_initiator": "cat",
    "state_target": "cat",
    "cleanup_initiator": "cat",
    "cleanup_target": "cat",
    "mid_stream": "bool",
    "handshake_seen": "bool",
    "tcp_end": "cat",
    "login_status_class": "Int",
    "login_status_detail": "Int",
    "reinstated_by": "str",
    "reinstates": "str",
    "pdus": "int",
    "tasks": "int",
}

TRANSITION_SCHEMA: Final[dict[str, str]] = {
    "frame": "int",
    "ts": "ts",
    "session": "str",
    "conn": "str",
    "machine": "cat",
    "side": "cat",
    "from_state": "cat",
    "to_state": "cat",
    "label": "str",
    "event": "str",
    "inferred": "bool",
}

ANOMALY_SCHEMA: Final[dict[str, str]] = {
    "frame": "int",
    "ts": "ts",
    "severity": "sev",
    "kind": "cat",
    "session": "str",
    "conn": "str",
    "message": "str",
    "rfc": "str",
    "frames": "str",
    "display_filter": "str",
}

#: Text keys of Login and Text PDUs, one row per key in wire order (secrets as on the wire: mask
#: with :func:`mask_key_values` before showing or writing them).
KEY_SCHEMA: Final[dict[str, str]] = {
    "frame": "int",
    "ts": "ts",
    "conn": "str",
    "direction": "cat",
    "pdu": "cat",
    "key": "str",
    "value": "str",
}

def _diagnosis_schemas() -> dict[str, dict[str, str]]:
    from analyzer.reports.diagnosis import DIAGNOSIS_SCHEMAS

    return DIAGNOSIS_SCHEMAS


SCHEMAS: Final[dict[str, dict[str, str]]] = {
    "pdus": PDU_SCHEMA,
    "tasks": TASK_SCHEMA,
    "sessions": SESSION_SCHEMA,
    "connections": CONNECTION_SCHEMA,
    "transitions": TRANSITION_SCHEMA,
    "anomalies": ANOMALY_SCHEMA,
    "keys": KEY_SCHEMA,
    **_diagnosis_schemas(),
}

_STRING: Final = pd.StringDtype()
_SEVERITY: Final = pd.CategoricalDtype(list(SEVERITIES), ordered=True)
#: Joins the members of a tuple field (portals, connections, ...) into one text cell.
LIST_SEP: Final = " "

# --------------------------------------------------------------------------- building & conforming


def empty(table: str) -> pd.DataFrame:
    """The table with no rows, every column with its dtype."""
    return build(table, [])


def build(
    table: str, rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]], *, final: bool = True
) -> pd.DataFrame:
    """A table from row dicts (or a dict of column lists) holding plain Python values.

    ``ts`` columns hold integer nanoseconds since the epoch, ``td`` columns integer
    nanoseconds. With ``final=False`` category columns stay strings (for chunks that are
    concatenated and conformed later: categories of chunks would differ).
    """
    schema = SCHEMAS[table]
    if isinstance(rows, Mapping):
        cols = {c: list(rows.get(c, ())) for c in schema}
        n = max((len(v) for v in cols.values()), default=0)
        for c, v in cols.items():
            if len(v) != n:
                raise ValueError(f"{table}.{c}: {len(v)} values, expected {n}")
    else:
        cols = {c: [r.get(c) for r in rows] for c in schema}
    data = {c: _series(schema[c], values, final) for c, values in cols.items()}
    return pd.DataFrame(data, columns=list(schema))


def _series(kind: str, values: list[Any], final: bool) -> pd.Series:
    if kind == "int":
        return pd.Series(np.asarray(values, dtype="int64") if values else np.empty(0, "int64"))
    if kind == "Int":
        return pd.Series(pd.array(values, dtype="Int64"))
    if kind == "UInt":  # 64-bit unsigned fields (multi-level LUNs, 64-bit LBAs) overflow Int64
        return pd.Series(pd.array(values, dtype="UInt64"))
    if kind in ("ts", "td"):
        ns = pd.array(values, dtype="Int64").to_numpy(dtype="int64", na_value=_NAT)
        if kind == "ts":
            return pd.Series(ns.view("datetime64[ns]")).dt.tz_localize("UTC")
        return pd.Series(ns.view("timedelta64[ns]"))
    if kind == "bool":
        return pd.Series(np.asarray(values, dtype=bool) if values else np.empty(0, bool))
    if kind == "float":
        return pd.Series(pd.array(values, dtype="Float64"))
    if kind in ("cat", "sev") and final:
        return _categorical(kind, np.asarray(values, dtype=object))
    return pd.Series(pd.array(values, dtype=_STRING))


_NAT: Final = np.iinfo("int64").min  # NaT as int64


def _categorical(kind: str, values: np.ndarray) -> pd.Series:
    """Category series from an object array of str/None (categories sorted; severity in its order)."""
    present = pd.unique(values[pd.notna(values)]) if len(values) else np.empty(0, object)
    cats = sorted(str(v) for v in present)
    if kind == "sev":
        dtype = pd.CategoricalDtype([*SEVERITIES, *(c for c in cats if c not in SEVERITIES)], ordered=True)
    else:
        dtype = pd.CategoricalDtype(pd.Index(cats, dtype="str"))  # "str" even when empty: chunks must agree
    return pd.Series(pd.Categorical(values, dtype=dtype))


def map_category(s: pd.Series, mapping: Mapping[str, str | None]) -> pd.Series:
    """A category column whose values are ``mapping`` applied to the categories of ``s``."""
    cats = [mapping.get(str(c)) for c in s.cat.categories]
    lookup = np.asarray([*cats, None], dtype=object)
    codes = s.cat.codes.to_numpy()
    return _categorical("cat", lookup[np.where(codes >= 0, codes, len(cats))])


def conform(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with exactly the table's columns and dtypes (after concat, Parquet or CSV).

    Missing columns are added empty; extra columns are dropped.
    """
    schema = SCHEMAS[table]
    out: dict[str, pd.Series] = {}
    n = len(df)
    for c, kind in schema.items():
        if c not in df.columns:
            fill: Any = 0 if kind in ("int", "bool") else None
            out[c] = _series(kind, [fill] * n, True)
            continue
        out[c] = _conform_series(kind, df[c].reset_index(drop=True))
    return pd.DataFrame(out, columns=list(schema))


def _objects(s: pd.Series) -> np.ndarray:
    """Values as an object array of str, with None for missing values."""
    arr: np.ndarray = np.asarray(s.astype(object).to_numpy(dtype=object, copy=True), dtype=object)
    arr[pd.isna(arr)] = None
    return arr


def _conform_series(kind: str, s: pd.Series) -> pd.Series:
    if kind == "int":
        return s.astype("int64")
    if kind == "Int":
        return s.astype("Int64")
    if kind == "UInt":
        return s.astype("UInt64")
    if kind == "float":
        return s.astype("Float64")
    if kind == "ts":
        if not isinstance(s.dtype, pd.DatetimeTZDtype):
            s = pd.to_datetime(s, utc=True, format="ISO8601")
        return cast("pd.Series[Any]", s.dt.tz_convert("UTC").astype("datetime64[ns, UTC]"))
    if kind == "td":
        if not pd.api.types.is_timedelta64_dtype(s.dtype):
            s = pd.to_timedelta(s)
        return s.astype("timedelta64[ns]")
    if kind == "bool":
        if s.dtype == bool:
            return s
        return pd.Series(
            np.asarray([v is True or str(v).strip().lower() in ("true", "1") for v in s], dtype=bool)
        )
    if kind in ("cat", "sev"):
        if isinstance(s.dtype, pd.CategoricalDtype):
            codes = s.cat.codes.to_numpy()
            cats = np.asarray([str(c) for c in s.cat.categories], dtype=object)
            lookup = np.asarray([*cats, None], dtype=object)
            return _categorical(kind, lookup[np.where(codes >= 0, codes, len(cats))])
        return _categorical(kind, _objects(s))
    if isinstance(s.dtype, pd.StringDtype) and s.dtype == _STRING:
        return s
    return pd.Series(pd.array(_objects(s), dtype=_STRING))


def _isna(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def concat(table: str, parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate chunks of one table (each built by ``build``) into one conformed table.

    Category columns are merged with ``union_categoricals`` (categories re-sorted), the
    others concatenated as they are: no per-value Python work.
    """
    if not parts:
        return empty(table)
    if len(parts) == 1:
        return conform(table, parts[0])
    schema = SCHEMAS[table]
    if any(list(p.columns) != list(schema) for p in parts):
        return conform(table, pd.concat(parts, ignore_index=True))
    out: dict[str, pd.Series] = {}
    for c, kind in schema.items():
        cols = [p[c] for p in parts]
        if kind in ("cat", "sev") and all(isinstance(s.dtype, pd.CategoricalDtype) for s in cols):
            merged = union_categoricals([s.cat.as_unordered() for s in cols], sort_categories=True)
            cats = [str(x) for x in merged.categories]
            if kind == "sev":
                dtype = pd.CategoricalDtype(
                    [*SEVERITIES, *(x for x in cats if x not in SEVERITIES)], ordered=True
                )
                out[c] = pd.Series(merged.set_categories(dtype.categories, ordered=True))
            else:
                out[c] = pd.Series(merged.set_categories(pd.Index(cats, dtype="str")))
        else:
            out[c] = _conform_series(kind, pd.concat(cols, ignore_index=True))
    return pd.DataFrame(out, columns=list(schema))


# --------------------------------------------------------------------------- rows


def hex32(v: int | None) -> str | None:
    return None if v is None else f"0x{v:08x}"


def _join(values: Iterable[Any]) -> str:
    return LIST_SEP.join(str(v) for v in values)


def pdu_record_row(pdu: Pdu | MalformedPdu, endpoints: Any, session: str | None = None) -> dict[str, Any]:
    """A pdus row: ``views.pdu_row`` with ``ts`` as integer ns (for ``build``) and the session."""
    text = pdu_info(pdu) if isinstance(pdu, Pdu) else f"Malformed PDU: {pdu.reason}"
    if endpoints is None:
        endpoints = _endpoints_from_conn(pdu.conn)
    row = pdu_row(pdu, endpoints, text)
    row["ts"] = pdu.ts_ns
    row["session"] = session
    return row


class _Endpoints:
    __slots__ = ("client", "client_port", "server", "server_port")

    def __init__(
        self, client: str | None, client_port: int | None, server: str | None, server_port: int | None
    ) -> None:
        self.client, self.client_port, self.server, self.server_port = (
            client,
            client_port,
            server,
            server_port,
        )


def _endpoints_from_conn(conn: str) -> _Endpoints:
    """Parse "client_ip:port->server_ip:port#N" (IPv6 addresses may contain colons)."""
    base = conn.split("#", 1)[0]
    left, _, right = base.partition("->")

    def split(side: str) -> tuple[str | None, int | None]:
        host, _, port = side.rpartition(":")
        if not host or not port.isdigit():
            return (side or None), None
        return host.strip("[]"), int(port)

    c, cp = split(left)
    s, sp = split(right)
    return _Endpoints(c, cp, s, sp)


def endpoints_from_conn(conn: str) -> _Endpoints:
    """Endpoints parsed from a connection id (for PDUs of a connection without a ``TcpOpened``)."""
    return _endpoints_from_conn(conn)


def endpoints_of(rec: Any) -> _Endpoints:
    """Endpoints view of a ``TcpOpened`` (or anything with client/client_port/server/server_port)."""
    return _Endpoints(rec.client, rec.client_port, rec.server, rec.server_port)


#: Task outcomes for which the target answered (a response, or a Reject): only these tasks have a
#: latency. An unanswered task (open at a drop or at capture end, aborted, terminated by a logout,
#: never accepted, lost in a capture gap) has none (null), so counts and percentiles computed from the
#: DataFrame agree with the summary's.
ANSWERED_OUTCOMES: Final = frozenset(("completed", "check_condition", "failed", "rejected"))


def task_row(t: TaskRecord) -> dict[str, Any]:
    """A tasks row (``latency`` null unless the task was answered: ``ANSWERED_OUTCOMES``)."""
    return {
        "frame": t.frame,
        "session": t.session,
        "conn": t.conn,
        "itt": hex32(t.itt),
        "kind": t.kind,
        "outcome": t.outcome,
        "first_frame": t.first_frame,
        "last_frame": t.last_frame,
        "start_ts": t.start_ts_ns,
        "end_ts": t.end_ts_ns,
        "latency": t.latency_ns if t.outcome in ANSWERED_OUTCOMES else None,
        "immediate": t.immediate,
        "cmdsn": t.cmdsn,
        "lun": t.lun,
        "cdb_opcode": None if t.cdb_opcode is None else f"0x{t.cdb_opcode:02x}",
        "cdb_name": t.cdb_name,
        "lba": t.lba,
        "transfer_length": t.transfer_length,
        "read": t.read,
        "write": t.write,
        "edtl": t.edtl,
        "bytes_in": t.bytes_in,
        "bytes_out": t.bytes_out,
        "immediate_bytes": t.immediate_bytes,
        "r2t_count": t.r2t_count,
        "data_in_pdus": t.data_in_pdus,
        "data_out_pdus": t.data_out_pdus,
        "status": t.status,
        "status_name": t.status_name,
        "response": t.response,
        "response_name": t.response_name,
        "sense_key": t.sense_key,
        "sense_key_name": t.sense_key_name,
        "asc": t.asc,
        "ascq": t.ascq,
        "asc_name": t.asc_name,
        "residual_overflow": t.residual_overflow,
        "residual_underflow": t.residual_underflow,
        "residual": t.residual,
        "login_status_class": t.login_status_class,
        "login_status_detail": t.login_status_detail,
        "logout_reason": t.logout_reason,
        "logout_cid": t.logout_cid,
        "tmf_function": t.tmf_function,
        "tmf_function_name": t.tmf_function_name,
        "ref_task_tag": hex32(t.ref_task_tag),
        "reject_reason": t.reject_reason,
        "partial": t.partial,
        "note": t.note,
    }


def params_text(params: Mapping[str, str]) -> str:
    """Negotiated parameters as JSON text (a Parquet/CSV-friendly cell); ``params_dict`` reverses it."""
    return json.dumps(dict(params), sort_keys=False, ensure_ascii=False)


def params_dict(text: Any) -> dict[str, str]:
    """The parameters dict of a ``params`` cell ({} for an empty or unreadable cell)."""
    if _isna(text) or not text:
        return {}
    try:
        value = json.loads(str(text))
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def session_row(s: SessionSummary) -> dict[str, Any]:
    """A sessions row (tuple fields joined with spaces, ``params`` as JSON text)."""
    return {
        "session": s.session,
        "session_type": s.session_type,
        "isid": s.isid,
        "tpgt": s.tpgt,
        "tsih": s.tsih,
        "ssid": s.ssid,
        "initiator_name": s.initiator_name,
        "target_name": s.target_name,
        "initiator_alias": s.initiator_alias,
        "target_alias": s.target_alias,
        "portals": _join(s.portals),
        "initiator_addresses": _join(s.initiator_addresses),
        "connections": _join(s.connections),
        "cids": _join(s.cids),
        "params": params_text(s.params),
        "start_frame": s.start_frame,
        "start_ts": s.start_ts_ns,
        "end_frame": s.end_frame,
        "end_ts": s.end_ts_ns,
        "duration": max(s.end_ts_ns - s.start_ts_ns, 0),
        "ended": s.ended,
        "state_initiator": s.state_initiator,
        "state_target": s.state_target,
        "mid_stream": s.mid_stream,
        "reinstated_from": s.reinstated_from,
        "reinstated_by": s.reinstated_by,
        "tasks": s.tasks,
        "discovered_targets": _join(s.discovered_targets),
    }


def connection_row(c: ConnectionSummary) -> dict[str, Any]:
    """A connections row."""
    return {
        "conn": c.conn,
        "session": c.session,
        "cid": c.cid,
        "client": c.client,
        "client_port": c.client_port,
        "server": c.server,
        "server_port": c.server_port,
        "role": c.role,
        "params": params_text(c.params),
        "header_digest": c.header_digest,
        "data_digest": c.data_digest,
        "max_recv_dsl_initiator": c.max_recv_dsl_initiator,
        "max_recv_dsl_target": c.max_recv_dsl_target,
        "start_frame": c.start_frame,
        "start_ts": c.start_ts_ns,
        "end_frame": c.end_frame,
        "end_ts": c.end_ts_ns,
        "duration": max(c.end_ts_ns - c.start_ts_ns, 0),
        "ended": c.ended,
        "state_initiator": c.state_initiator,
        "state_target": c.state_target,
        "cleanup_initiator": c.cleanup_initiator,
        "cleanup_target": c.cleanup_target,
        "mid_stream": c.mid_stream,
        "handshake_seen": c.handshake_seen,
        "tcp_end": c.tcp_end,
        "login_status_class": c.login_status_class,
        "login_status_detail": c.login_status_detail,
        "reinstated_by": c.reinstated_by,
        "reinstates": c.reinstates,
        "pdus": c.pdus,
        "tasks": c.tasks,
    }


def transition_row(t: Transition) -> dict[str, Any]:
    """A transitions row."""
    return {
        "frame": t.frame,
        "ts": t.ts_ns,
        "session": t.session,
        "conn": t.conn,
        "machine": t.machine,
        "side": t.side,
        "from_state": t.from_state,
        "to_state": t.to_state,
        "label": t.label,
        "event": t.event,
        "inferred": t.inferred,
    }


def anomaly_row(a: Anomaly) -> dict[str, Any]:
    """An anomalies row (``frames`` as space-separated frame numbers)."""
    return {
        "frame": a.frame,
        "ts": a.ts_ns,
        "severity": a.severity,
        "kind": a.kind,
        "session": a.session,
        "conn": a.conn,
        "message": a.message,
        "rfc": a.rfc,
        "frames": _join(a.frames or (a.frame,)),
        "display_filter": a.display_filter,
    }


_KEY_PDUS: Final = {
    LoginRequest: "Login Request",
    LoginResponse: "Login Response",
    TextRequest: "Text Request",
    TextResponse: "Text Response",
}


def key_rows(pdu: LoginRequest | LoginResponse | TextRequest | TextResponse) -> list[dict[str, Any]]:
    """One keys row per text key of a Login/Text PDU (values as on the wire)."""
    name = _KEY_PDUS[type(pdu)]
    return [
        {
            "frame": pdu.frame,
            "ts": pdu.ts_ns,
            "conn": pdu.conn,
            "direction": pdu.direction,
            "pdu": name,
            "key": k,
            "value": v,
        }
        for k, v in pdu.keys
    ]


def mask_key_values(keys: pd.DataFrame) -> pd.DataFrame:
    """The keys table with CHAP_C/CHAP_R/CHAP_N (and other secrets) masked."""
    from analyzer.iscsi.text_keys import mask_secret

    if keys.empty:
        return keys
    out = keys.copy()
    out["value"] = pd.array(
        [
            v if _isna(v) else mask_secret(str(k), str(v))
            for k, v in zip(keys["key"], keys["value"], strict=True)
        ],
        dtype=_STRING,
    )
    return out


# --------------------------------------------------------------------------- whole tables from record lists


def pdus_frame(records: Iterable[Record], sessions: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The pdus table of a record list (endpoints from its ``TcpOpened`` records, else the conn id)."""
    endpoints: dict[str, Any] = {}
    rows = []
    for r in records:
        if type(r).__name__ == "TcpOpened":
            endpoints[r.conn] = endpoints_of(r)  # type: ignore[attr-defined]
        elif isinstance(r, (Pdu, MalformedPdu)):
            rows.append(pdu_record_row(r, endpoints.get(r.conn), (sessions or {}).get(r.conn)))
    return build("pdus", rows)


def tasks_frame(records: Iterable[Record]) -> pd.DataFrame:
    """The tasks table: one row per ``TaskRecord``."""
    return build("tasks", [task_row(r) for r in records if isinstance(r, TaskRecord)])


def sessions_frame(records: Iterable[Record]) -> pd.DataFrame:
    """The sessions table: the last ``SessionSummary`` of each session, in order of first appearance."""
    last: dict[str, SessionSummary] = {}
    for r in records:
        if isinstance(r, SessionSummary):
            last[r.session] = r
    return build("sessions", [session_row(s) for s in last.values()])


def connections_frame(records: Iterable[Record]) -> pd.DataFrame:
    """The connections table: the last ``ConnectionSummary`` of each connection."""
    last: dict[str, ConnectionSummary] = {}
    for r in records:
        if isinstance(r, ConnectionSummary):
            last[r.conn] = r
    return build("connections", [connection_row(c) for c in last.values()])


def transitions_frame(records: Iterable[Record]) -> pd.DataFrame:
    """The transitions table: one row per ``Transition``."""
    return build("transitions", [transition_row(r) for r in records if isinstance(r, Transition)])


def anomalies_frame(records: Iterable[Record]) -> pd.DataFrame:
    """The anomalies table: one row per ``Anomaly``."""
    return build("anomalies", [anomaly_row(r) for r in records if isinstance(r, Anomaly)])


def keys_frame(records: Iterable[Record]) -> pd.DataFrame:
    """The text-keys table of the Login and Text PDUs of a record list (unmasked)."""
    rows: list[dict[str, Any]] = []
    for r in records:
        if type(r) in _KEY_PDUS:
            rows.extend(key_rows(r))  # type: ignore[arg-type]
    return build("keys", rows)
