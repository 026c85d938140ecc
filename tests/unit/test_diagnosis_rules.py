"""Diagnosis rules on hand-built record streams (no capture files): the causes the lab cannot
produce with tgtd and libiscsi (Async Message drops, a path that goes dark until the capture
ends, several connections dropped at once), the CmdSN window and duplicate sessions."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from analyzer.diagnosis import Diagnoser, Diagnosis
from analyzer.records import (
    I2T,
    RESERVED_TAG,
    T2I,
    AsyncMessage,
    Cdb,
    NopOut,
    Record,
    ScsiCommand,
    ScsiResponse,
    TcpFin,
    TcpOpened,
    TcpRetransmission,
    TcpRst,
)
from analyzer.state.events import SessionIdentified, TaskRecord, Transition

MS = 1_000_000
S = 1_000_000_000
T0 = 1_700_000_000 * S


def _default(type_name: str) -> Any:
    if type_name.startswith("int") and "None" not in type_name:
        return 0
    if type_name == "bool":
        return False
    if type_name.startswith("tuple"):
        return ()
    return None


def pdu(cls: type, frame: int, t_ms: float, conn: str, direction: str, **kw: Any) -> Any:
    base: dict[str, Any] = {"frame": frame, "ts_ns": T0 + int(t_ms * MS), "conn": conn, "direction": direction,
                                "first_frame": frame, "opcode": 0, "immediate": False, "final": True, "total_ahs_length": 0, "dsl": 0,
                                "lun": None, "itt": 1, "ahs": (), "header_digest": None, "data_digest": None}
    base.update(kw)
    for f in fields(cls):
        if f.name not in base and f.init:
            base[f.name] = _default(str(f.type))
    return cls(**{k: v for k, v in base.items() if k in {f.name for f in fields(cls)}})


class Stream:
    """Builds a record stream: connections that log in, do I/O and end."""

    def __init__(self) -> None:
        self.recs: list[Record] = []
        self.frame = 0
        self.sessions: dict[str, str] = {}

    def _f(self) -> int:
        self.frame += 1
        return self.frame

    def conn(self, t_ms: float, client_port: int, session: str, *, client: str = "10.0.0.1",
             portal: str = "10.0.0.9", initiator: str = "iqn.i", target: str = "iqn.t", tsih: int = 1) -> str:
        conn = f"{client}:{client_port}->{portal}:3260"
        self.sessions[conn] = session
        ts = T0 + int(t_ms * MS)
        self.recs.append(TcpOpened(self._f(), ts, conn, client, client_port, portal, 3260, True))
        f = self._f()
        self.recs.append(SessionIdentified(f, ts, session, conn, "Normal", "400000000001", tsih, 1, initiator,
                                           target, None, None, False))
        for side in ("initiator", "target"):
            self.recs.append(Transition(f, ts, session, conn, "connection", side, "IN_LOGIN", "LOGGED_IN", "T5",
                                        "final Login Response", False))
        return conn

    def io(self, t_ms: float, conn: str, itt: int, cmdsn: int, *, maxcmdsn: int = 1000, answer_ms: float = 1.0,
           answered: bool = True) -> None:
        cdb = Cdb(0x28, "READ(10)", 0, 1, None, b"")
        self.recs.append(pdu(ScsiCommand, self._f(), t_ms, conn, I2T, itt=itt, cmdsn=cmdsn, read=True, edtl=512,
                             cdb=cdb, lun=1, opcode=1))
        first = self.frame
        if answered:
            self.recs.append(pdu(ScsiResponse, self._f(), t_ms + answer_ms, conn, T2I, itt=itt, statsn=itt,
                                 expcmdsn=cmdsn + 1, maxcmdsn=maxcmdsn, opcode=0x21))
            start, end = self.at(t_ms), self.at(t_ms + answer_ms)
            session = self.sessions[conn]
            self.recs.append(TaskRecord(self.frame, end, session, conn, itt, "scsi", "completed", first, self.frame,
                                        start, end, end - start, False, cmdsn, 1, cdb_opcode=0x28, lba=itt,
                                        transfer_length=1, read=True))

    def add(self, rec: Record) -> None:
        self.recs.append(rec)

    def at(self, t_ms: float) -> int:
        return T0 + int(t_ms * MS)

    def diagnose(self) -> Diagnosis:
        d = Diagnoser()
        for r in self.recs:
            d.feed(r)
        return d.finish()


def test_async_drop_connection_is_target_requested() -> None:
    s = Stream()
    c = s.conn(0, 40000, "s1")
    s.io(1, c, 1, 10)
    s.add(pdu(AsyncMessage, 90, 5, c, T2I, itt=RESERVED_TAG, async_event=2, param2=2, opcode=0x32))
    s.add(TcpFin(91, s.at(6), c, T2I))
    (drop,) = s.diagnose().drops
    assert drop.cause == "target_requested" and 90 in drop.evidence and drop.confidence == "high"
    assert "Target dropping connection" in drop.initiator_log or "target will drop" in drop.initiator_log


def test_path_dark_until_capture_end_is_network_failure() -> None:
    s = Stream()
    c = s.conn(0, 40000, "s1")
    s.io(1, c, 1, 10)
    s.io(5, c, 2, 11, answered=False)
    for i, t in enumerate((205, 605, 1405, 3005)):
        s.add(TcpRetransmission(100 + i, s.at(t), c, I2T, 1000, 48))
    d = s.diagnose()
    (drop,) = d.drops
    assert drop.cause == "network_failure" and drop.ended_by == "capture_end" and drop.confidence == "high"
    (path,) = d.paths
    assert path.never_came_back is False  # nothing ended on the wire: the capture just stopped


def test_traffic_until_the_end_is_capture_end() -> None:
    s = Stream()
    c = s.conn(0, 40000, "s1")
    for i in range(5):
        s.io(1 + i * 10, c, i + 1, 10 + i)
    (drop,) = s.diagnose().drops
    assert drop.cause == "capture_end"
    assert s.diagnose().story == []  # nothing to tell


def test_all_connections_of_a_portal_dropped_at_once_is_a_target_restart() -> None:
    s = Stream()
    a = s.conn(0, 40000, "s1")
    b = s.conn(1, 40001, "s2", client="10.0.0.2")
    s.io(2, a, 1, 10)
    s.io(3, b, 1, 20)
    s.add(TcpRst(80, s.at(10), a, T2I))
    s.add(TcpRst(81, s.at(11), b, T2I))
    causes = {d.conn: (d.cause, d.confidence) for d in s.diagnose().drops}
    assert causes == {a: ("target_restart", "medium"), b: ("target_restart", "medium")}


def test_one_connection_dropped_while_another_stays_up_is_an_admin_drop() -> None:
    s = Stream()
    a = s.conn(0, 40000, "s1")
    b = s.conn(1, 40001, "s2", client="10.0.0.2")
    s.io(2, a, 1, 10)
    s.io(3, b, 1, 20)
    s.add(TcpFin(80, s.at(10), a, T2I))
    s.io(20, b, 2, 21)
    d = s.diagnose()
    assert [(x.conn, x.cause) for x in d.drops if x.cause != "capture_end"] == [(a, "admin_drop")]


def test_recovery_over_another_path() -> None:
    s = Stream()
    a = s.conn(0, 40000, "s1")
    b = s.conn(1, 40001, "s2", client="10.0.0.2")  # same initiator and target names, another address
    s.io(2, a, 1, 10)
    s.add(TcpFin(80, s.at(10), a, T2I))
    s.io(30, b, 2, 21)
    d = s.diagnose()
    (rec,) = d.recoveries
    assert rec.resumed_via == "other_path" and rec.resumed_conn == b
    assert rec.io_stopped_ms is not None and abs(rec.io_stopped_ms - 28.0) < 0.01  # 3 ms -> 31 ms
    paths = {p.initiator_address: p for p in d.paths}
    assert paths["10.0.0.1"].never_came_back and not paths["10.0.0.2"].never_came_back


def test_unanswered_initiator_ping_then_initiator_reset_is_a_nop_timeout() -> None:
    s = Stream()
    c = s.conn(0, 40000, "s1")
    s.io(1, c, 1, 10)
    s.add(pdu(NopOut, 50, 100, c, I2T, itt=7, ttt=RESERVED_TAG, cmdsn=11, immediate=True))
    s.add(TcpRst(51, s.at(5100), c, I2T))
    d = s.diagnose()
    (drop,) = d.drops
    assert drop.cause == "nop_timeout" and "1022" in drop.initiator_log
    (ping,) = d.nops
    assert ping.pinger == "initiator" and ping.outcome == "unanswered_at_drop" and ping.rtt_ms is None


def test_command_window_exhaustion_and_shrink() -> None:
    s = Stream()
    c = s.conn(0, 40000, "s1")
    s.io(1, c, 1, 10, maxcmdsn=12, answer_ms=1)  # window [11, 12] after this answer
    s.io(3, c, 2, 11, answered=False)
    s.io(4, c, 3, 12, answered=False)  # CmdSN reached MaxCmdSN: the window is used up
    s.add(pdu(ScsiResponse, 200, 9, c, T2I, itt=2, statsn=2, expcmdsn=12, maxcmdsn=20, opcode=0x21))
    s.add(pdu(ScsiResponse, 201, 10, c, T2I, itt=3, statsn=3, expcmdsn=13, maxcmdsn=14, opcode=0x21))
    (q,) = s.diagnose().queues
    assert q.window_exhausted == 1 and abs(q.window_exhausted_ms - 5.0) < 0.01  # 4 ms -> 9 ms
    assert q.window_shrinks == 1 and q.window_min == 2 and q.window_max == 9
    assert q.depth_max == 2 and q.commands == 3


def test_two_sessions_on_one_path_are_flagged() -> None:
    s = Stream()
    a = s.conn(0, 40000, "s1")
    b = s.conn(1, 40001, "s2")  # same address, same names, another session
    s.io(2, a, 1, 10)
    s.io(3, b, 1, 20)
    (path,) = s.diagnose().paths
    assert path.duplicate_sessions == ("s1", "s2")
    assert any("same time" in line for line in s.diagnose().story)
