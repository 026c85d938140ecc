"""DataFrame builders on hand-built record lists: values and dtypes (pandas.testing)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal, assert_series_equal

from analyzer.records import I2T, T2I, Anomaly, Cdb, LoginRequest, MalformedPdu, ScsiCommand, TcpOpened
from analyzer.reports import frames
from analyzer.state.events import ConnectionSummary, SessionSummary, TaskRecord, Transition

S = 1_000_000_000
T0 = 1_700_000_000 * S
CONN = "10.0.0.1:40000->10.0.0.2:3260"
CONN6 = "[fd00::1]:40001->[fd00::2]:3260#2"

DTYPES = {
    "int": "int64",
    "Int": "Int64",
    "UInt": "UInt64",
    "str": "string",
    "cat": "category",
    "sev": "category",
    "ts": "datetime64[ns, UTC]",
    "td": "timedelta64[ns]",
    "bool": "bool",
    "float": "Float64",
}


def _ts(*ns: int | None) -> pd.Series:
    return pd.Series(
        pd.to_datetime(
            pd.array(list(ns), dtype="Int64").to_numpy("int64", na_value=np.iinfo("int64").min),
            unit="ns",
            utc=True,
        ).as_unit("ns")
    )


def _str(*v: str | None) -> pd.Series:
    return pd.Series(list(v), dtype="string")


def _cat(*v: str | None) -> pd.Series:
    cats = pd.Index(sorted({x for x in v if x is not None}), dtype="str")
    return pd.Series(list(v), dtype=pd.CategoricalDtype(cats))


def _Int(*v: int | None) -> pd.Series:
    return pd.Series(list(v), dtype="Int64")


def _UInt(*v: object) -> pd.Series:
    return pd.Series(list(v), dtype="UInt64")


def _check_dtypes(table: str, df: pd.DataFrame) -> None:
    schema = frames.SCHEMAS[table]
    assert list(df.columns) == list(schema)
    assert {c: str(df[c].dtype) for c in df.columns} == {c: DTYPES[k] for c, k in schema.items()}


# --------------------------------------------------------------------------- records


def _task(**kw: object) -> TaskRecord:
    base: dict[str, object] = {
        "frame": 10,
        "ts_ns": T0 + 5_000,
        "session": "s1",
        "conn": CONN,
        "itt": 0x1F,
        "kind": "scsi",
        "outcome": "completed",
        "first_frame": 8,
        "last_frame": 10,
        "start_ts_ns": T0 + 1_000,
        "end_ts_ns": T0 + 5_000,
        "latency_ns": 4_000,
        "immediate": False,
        "cmdsn": 7,
        "lun": 0,
    }
    base.update(kw)
    return TaskRecord(**base)  # type: ignore[arg-type]


TASKS = [
    _task(
        cdb_opcode=0x28,
        cdb_name="READ(10)",
        lba=2048,
        transfer_length=8,
        read=True,
        edtl=4096,
        bytes_in=4096,
        data_in_pdus=1,
        status=0,
        status_name="GOOD",
    ),
    _task(
        frame=12,
        itt=0x20,
        outcome="check_condition",
        cdb_opcode=0x00,
        cdb_name="TEST UNIT READY",
        status=2,
        status_name="CHECK CONDITION",
        sense_key=6,
        sense_key_name="UNIT ATTENTION",
        asc=0x29,
        ascq=0,
        asc_name="POWER ON",
        latency_ns=123_456_789,
    ),
    _task(
        frame=3,
        session=None,
        itt=0x1,
        kind="login",
        lun=None,
        cmdsn=None,
        login_status_class=0,
        login_status_detail=0,
        partial=True,
        note="mid-stream",
    ),
]


def test_tasks_frame_values_and_dtypes() -> None:
    df = frames.tasks_frame(TASKS)
    _check_dtypes("tasks", df)
    cols = [
        "frame",
        "session",
        "itt",
        "kind",
        "outcome",
        "start_ts",
        "latency",
        "cmdsn",
        "lun",
        "cdb_opcode",
        "cdb_name",
        "lba",
        "read",
        "bytes_in",
        "status",
        "sense_key_name",
        "partial",
        "note",
    ]
    expected = pd.DataFrame(
        {
            "frame": pd.Series([10, 12, 3], dtype="int64"),
            "session": _cat("s1", "s1", None),
            "itt": _str("0x0000001f", "0x00000020", "0x00000001"),
            "kind": _cat("scsi", "scsi", "login"),
            "outcome": _cat("completed", "check_condition", "completed"),
            "start_ts": _ts(T0 + 1_000, T0 + 1_000, T0 + 1_000),
            "latency": pd.Series(pd.to_timedelta([4_000, 123_456_789, 4_000], unit="ns")).astype(
                "timedelta64[ns]"
            ),
            "cmdsn": _Int(7, 7, None),
            "lun": _UInt(0, 0, None),
            "cdb_opcode": _str("0x28", "0x00", None),
            "cdb_name": _cat("READ(10)", "TEST UNIT READY", None),
            "lba": _UInt(2048, None, None),
            "read": pd.Series([True, False, False]),
            "bytes_in": pd.Series([4096, 0, 0], dtype="int64"),
            "status": _Int(0, 2, None),
            "sense_key_name": _cat(None, "UNIT ATTENTION", None),
            "partial": pd.Series([False, False, True]),
            "note": _str("", "", "mid-stream"),
        }
    )
    assert_frame_equal(df[cols], expected)


def _session(**kw: object) -> SessionSummary:
    base: dict[str, object] = {
        "frame": 50,
        "ts_ns": T0 + 9 * S,
        "session": "s1",
        "session_type": "Normal",
        "isid": "400001370000",
        "tpgt": 1,
        "tsih": 0x21,
        "ssid": "400001370000,1",
        "initiator_name": "iqn.i",
        "target_name": "iqn.t",
        "initiator_alias": None,
        "target_alias": "array",
        "portals": ("10.0.0.2:3260",),
        "initiator_addresses": ("10.0.0.1",),
        "connections": (CONN,),
        "cids": (0,),
        "params": {"MaxBurstLength": "262144", "chap_used": "No"},
        "start_frame": 1,
        "start_ts_ns": T0,
        "end_frame": 50,
        "end_ts_ns": T0 + 9 * S,
        "ended": "logout",
        "state_initiator": "FREE",
        "state_target": "FREE",
        "mid_stream": False,
        "reinstated_from": None,
        "reinstated_by": None,
        "tasks": 12,
    }
    base.update(kw)
    return SessionSummary(**base)  # type: ignore[arg-type]


def test_sessions_frame_keeps_last_summary_per_session() -> None:
    recs = [
        _session(ended="open", tasks=3),
        _session(
            session="s2",
            session_type="Discovery",
            tsih=None,
            tpgt=None,
            ssid=None,
            target_name=None,
            portals=("a:1", "b:2"),
            cids=(),
            connections=(),
            params={},
            discovered_targets=("iqn.x",),
        ),
        _session(),
    ]
    df = frames.sessions_frame(recs)
    _check_dtypes("sessions", df)
    expected = pd.DataFrame(
        {
            "session": _str("s1", "s2"),
            "session_type": _cat("Normal", "Discovery"),
            "tsih": _Int(0x21, None),
            "portals": _str("10.0.0.2:3260", "a:1 b:2"),
            "cids": _str("0", ""),
            "params": _str('{"MaxBurstLength": "262144", "chap_used": "No"}', "{}"),
            "start_ts": _ts(T0, T0),
            "duration": pd.Series(pd.to_timedelta([9 * S, 9 * S], unit="ns")).astype("timedelta64[ns]"),
            "ended": _cat("logout", "logout"),
            "tasks": pd.Series([12, 12], dtype="int64"),
            "discovered_targets": _str("", "iqn.x"),
        }
    )
    assert_frame_equal(df[list(expected.columns)], expected)
    assert frames.params_dict(df.loc[0, "params"]) == {"MaxBurstLength": "262144", "chap_used": "No"}
    assert frames.params_dict(pd.NA) == {} and frames.params_dict("not json") == {}


def test_connections_frame() -> None:
    c = ConnectionSummary(
        60,
        T0 + 2 * S,
        CONN,
        "s1",
        0,
        "10.0.0.1",
        40000,
        "10.0.0.2",
        3260,
        "leading",
        {"HeaderDigest": "CRC32C"},
        True,
        False,
        262144,
        8192,
        1,
        T0,
        60,
        T0 + 2 * S,
        "dropped",
        "CLEANUP_WAIT",
        "CLEANUP_WAIT",
        "FREE",
        None,
        False,
        True,
        "rst",
        0,
        0,
        None,
        None,
        120,
        40,
    )
    df = frames.connections_frame([c])
    _check_dtypes("connections", df)
    expected = pd.DataFrame(
        {
            "conn": _str(CONN),
            "cid": _Int(0),
            "client_port": _Int(40000),
            "role": _cat("leading"),
            "header_digest": pd.Series([True]),
            "end_ts": _ts(T0 + 2 * S),
            "ended": _cat("dropped"),
            "cleanup_initiator": _cat("FREE"),
            "cleanup_target": _cat(None),
            "tcp_end": _cat("rst"),
            "reinstates": _str(None),
            "pdus": pd.Series([120], dtype="int64"),
        }
    )
    assert_frame_equal(df[list(expected.columns)], expected)


def test_transitions_frame() -> None:
    recs = [
        Transition(
            3,
            T0 + 10,
            "s1",
            CONN,
            "connection",
            "initiator",
            "IN_LOGIN",
            "LOGGED_IN",
            "T5",
            "final Login Response",
            False,
        ),
        Transition(4, T0 + 20, "s1", None, "session", "target", "FREE", "LOGGED_IN", None, "placed", True),
    ]
    df = frames.transitions_frame(recs)
    expected = pd.DataFrame(
        {
            "frame": pd.Series([3, 4], dtype="int64"),
            "ts": _ts(T0 + 10, T0 + 20),
            "session": _str("s1", "s1"),
            "conn": _str(CONN, None),
            "machine": _cat("connection", "session"),
            "side": _cat("initiator", "target"),
            "from_state": _cat("IN_LOGIN", "FREE"),
            "to_state": _cat("LOGGED_IN", "LOGGED_IN"),
            "label": _str("T5", None),
            "event": _str("final Login Response", "placed"),
            "inferred": pd.Series([False, True]),
        }
    )
    assert_frame_equal(df, expected)


def test_anomalies_frame_with_ordered_severity() -> None:
    recs = [
        Anomaly(7, T0 + 7, "login_failed", "error", "s1", CONN, "Login rejected", "§11.13.5", (5, 7)),
        Anomaly(9, T0 + 9, "statsn_gap", "warning", None, None, "StatSN skipped", "§4.2.2", ()),
        Anomaly(2, T0 + 2, "odd", "info", "s1", CONN, "x", "§1", (2,)),
    ]
    df = frames.anomalies_frame(recs)
    sev = pd.CategoricalDtype(["info", "warning", "error"], ordered=True)
    expected = pd.DataFrame(
        {
            "frame": pd.Series([7, 9, 2], dtype="int64"),
            "ts": _ts(T0 + 7, T0 + 9, T0 + 2),
            "severity": pd.Series(["error", "warning", "info"], dtype=sev),
            "kind": _cat("login_failed", "statsn_gap", "odd"),
            "session": _str("s1", None, "s1"),
            "conn": _str(CONN, None, CONN),
            "message": _str("Login rejected", "StatSN skipped", "x"),
            "rfc": _str("§11.13.5", "§4.2.2", "§1"),
            "frames": _str("5 7", "9", "2"),
            "display_filter": _str("frame.number in {5, 7}", "frame.number == 9", "frame.number == 2"),
        }
    )
    assert_frame_equal(df, expected)
    assert df["severity"].max() == "error"


def _pdu_common(frame: int, conn: str = CONN, direction: str = I2T) -> dict[str, object]:
    return {
        "frame": frame,
        "ts_ns": T0 + frame,
        "conn": conn,
        "direction": direction,
        "first_frame": frame - 1,
        "immediate": False,
        "final": True,
        "total_ahs_length": 0,
        "ahs": (),
        "header_digest": None,
        "data_digest": None,
    }


def test_pdus_frame_uses_views_columns() -> None:
    login = LoginRequest(
        **_pdu_common(2),
        opcode=0x03,
        dsl=40,
        lun=None,
        itt=1,  # type: ignore[arg-type]
        transit=True,
        cont=False,
        csg=1,
        nsg=3,
        version_max=0,
        version_min=0,
        isid=1,
        tsih=0,
        cid=0,
        cmdsn=1,
        expstatsn=0,
        keys=(("InitiatorName", "iqn.i"), ("CHAP_R", "0xsecret")),
    )
    cmd = ScsiCommand(
        **_pdu_common(4, CONN6),
        opcode=0x01,
        dsl=0,
        lun=3,
        itt=0x1F,  # type: ignore[arg-type]
        read=True,
        write=False,
        attr=1,
        edtl=4096,
        cmdsn=2,
        expstatsn=1,
        cdb=Cdb(0x28, "READ(10)", 0, 8, None, b"\x28" + bytes(9)),
        bidi_read_edtl=None,
    )
    bad = MalformedPdu(5, T0 + 5, CONN, T2I, 5, 0x21, "short BHS", 3, b"\x21")
    opened = TcpOpened(1, T0 + 1, CONN, "10.0.0.1", 40000, "10.0.0.2", 3260, True)
    df = frames.pdus_frame([opened, login, cmd, bad], sessions={CONN: "s1"})
    _check_dtypes("pdus", df)
    expected = pd.DataFrame(
        {
            "frame": pd.Series([2, 4, 5], dtype="int64"),
            "ts": _ts(T0 + 2, T0 + 4, T0 + 5),
            "src": _cat("10.0.0.1", "fd00::1", "10.0.0.2"),
            "sport": _Int(40000, 40001, 3260),
            "dst": _cat("10.0.0.2", "fd00::2", "10.0.0.1"),
            "direction": _cat("i2t", "i2t", "t2i"),
            "opcode": _str("0x03", "0x01", "0x21"),
            "itt": _str("0x00000001", "0x0000001f", None),
            "lun": _UInt(None, 3, None),
            "cmdsn": _Int(1, 2, None),
            "dsl": _Int(40, 0, None),
            "cdb_opcode": _str(None, "0x28", None),
            "first_frame": pd.Series([1, 3, 5]),
            "conn": _cat(CONN, CONN6, CONN),
            "session": _cat("s1", None, "s1"),
        }
    )
    assert_frame_equal(df[list(expected.columns)], expected)
    assert df.loc[0, "opcode_name"] == "Login Command" and df.loc[2, "opcode_name"] == "Malformed"
    assert "0xsecret" not in df.loc[0, "info"]  # describe.info masks secrets
    assert df.loc[2, "info"] == "Malformed PDU: short BHS"
    keys = frames.keys_frame([login])
    assert list(keys["value"]) == ["iqn.i", "0xsecret"]
    assert list(frames.mask_key_values(keys)["value"]) == ["iqn.i", "********"]


@pytest.mark.parametrize("table", list(frames.SCHEMAS))
def test_empty_tables_have_dtypes(table: str) -> None:
    df = frames.empty(table)
    assert len(df) == 0
    _check_dtypes(table, df)


def test_conform_restores_dtypes_from_plain_columns() -> None:
    df = frames.transitions_frame(
        [
            Transition(
                3, T0 + 10, "s1", CONN, "connection", "initiator", "IN_LOGIN", "LOGGED_IN", "T5", "ev", False
            )
        ]
    )
    plain = df.astype(object)
    plain["ts"] = df["ts"].astype(str)
    plain["inferred"] = ["False"]
    assert_frame_equal(frames.conform("transitions", plain), df)


def test_chunks_concatenate_to_the_same_table() -> None:
    rows = [frames.task_row(t) for t in TASKS]
    whole = frames.build("tasks", rows)
    parts = [frames.build("tasks", rows[:1], final=False), frames.build("tasks", rows[1:], final=False)]
    assert_frame_equal(frames.concat("tasks", parts), whole)
    assert_series_equal(frames.concat("tasks", [])["frame"], frames.empty("tasks")["frame"])


@pytest.mark.parametrize("outcome", ["open_at_capture_end", "open_at_conn_drop", "not_accepted", "aborted",
                                     "terminated_by_logout", "lost_in_capture_gap"])
def test_unanswered_tasks_have_no_latency(outcome: str) -> None:
    # the tracker gives an open task latency 0 (or the time to the drop): the table says "none"
    df = frames.tasks_frame([_task(outcome=outcome, latency_ns=0), _task(itt=0x21, latency_ns=4_000)])
    _check_dtypes("tasks", df)
    assert pd.isna(df["latency"].iloc[0])
    assert df["latency"].iloc[1] == pd.Timedelta(4_000, "ns")
    assert df["latency"].count() == 1  # counts from the DataFrame match the summary's completed commands
