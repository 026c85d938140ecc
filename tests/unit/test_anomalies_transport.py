"""Transport and capture anomaly rules."""

from __future__ import annotations

from test_anomalies_support import CONN, CONN2, MS, Flow, S, Wire, direct, kinds, one, only

from analyzer.records import (
    I2T,
    T2I,
    CaptureDamage,
    FramingResync,
    MalformedPdu,
    TcpClosed,
    TcpGap,
    TcpOverlapConflict,
    TcpRetransmission,
    TcpZeroWindow,
)
from analyzer.state.events import TaskRecord


def _data(n: int, dsl: int = 8192) -> list:  # type: ignore[type-arg]
    f = Flow(Wire())
    return [f.data_in(0x10, datasn=i, dsl=dsl) for i in range(n)]


def test_retransmissions_above_share_reported_once_at_close() -> None:
    data = _data(10)  # ~82 KB target->initiator
    rt = [TcpRetransmission(100 + i, S + i * S, CONN, T2I, i, 1448) for i in range(6)]  # ~8.7 KB, 10%
    close = TcpClosed(200, 20 * S, CONN, "fin")
    assert "tcp_retransmissions" not in kinds(direct(data + rt, finish=False))  # summarised at close
    out = direct(data + rt + [close, TcpGap(201, 21 * S, CONN2, I2T, 0, 1)], finish=False)
    a = one(out, "tcp_retransmissions")
    assert a.severity == "warning" and "target retransmitted 6 segments" in a.message and a.frame == 100
    assert set(a.frames) == {100 + i for i in range(6)}


def test_few_or_small_share_retransmissions_are_silent() -> None:
    data = _data(100)
    few = [TcpRetransmission(1000 + i, S + i * S, CONN, T2I, i, 1448) for i in range(4)]
    assert "tcp_retransmissions" not in kinds(direct(data + few))
    spread = [TcpRetransmission(1000 + i, S + i * 2 * S, CONN, T2I, i, 1448) for i in range(6)]  # ~1%
    assert "tcp_retransmissions" not in kinds(direct(data + spread))
    burst = [TcpRetransmission(1000 + i, S + i * 50 * MS, CONN, T2I, i, 100) for i in range(12)]
    a = one(direct(data + burst), "tcp_retransmissions")
    assert "up to 12 within 1 s" in a.message


def test_zero_window() -> None:
    one_zw = [TcpZeroWindow(10, S, CONN, T2I)]  # direction = the side advertising it
    a = one(direct(one_zw), "zero_window")
    assert a.severity == "info" and "target advertised a zero TCP receive window 1 time" in a.message
    three = [TcpZeroWindow(10 + i, S, CONN, I2T) for i in range(3)]
    a = one(direct(three), "zero_window")
    assert a.severity == "warning" and "initiator advertised" in a.message and "3 times" in a.message


def test_capture_gap_aggregated_per_stream() -> None:
    gaps = [TcpGap(10 + i, S + i, CONN, T2I, i * 10000, 7000) for i in range(100)]
    gaps += [TcpGap(500, 2 * S, CONN, I2T, 0, 48), TcpGap(600, 2 * S, CONN2, T2I, 0, 10)]
    lost = TaskRecord(700, 3 * S, "s1", CONN, 0x10, "scsi", "lost_in_capture_gap", 5, 700, S, 3 * S, 2 * S, False,
                      1, 0)
    out = direct(gaps + [lost, TcpClosed(800, 4 * S, CONN, "capture_end")])
    found = only(out, "capture_gap")
    assert len(found) == 3
    t2i = next(a for a in found if a.conn == CONN and "target->initiator" in a.message)
    assert "100 gaps" in t2i.message and "683.6 KB" in t2i.message and "first at frame 10" in t2i.message
    assert "1 task on this connection ended with an unknown outcome" in t2i.message and t2i.frame == 10
    assert t2i.severity == "warning"


def test_overlap_conflict_and_eviction_and_damage() -> None:
    out = direct([TcpOverlapConflict(5, S, CONN, I2T, 1000, 48), TcpClosed(6, S, CONN, "evicted"),
                  CaptureDamage(7, S, "record length 70000 exceeds snaplen")])
    assert one(out, "tcp_overlap_conflict").severity == "warning"
    assert "evicted" in one(out, "resource_limit").message
    assert "record length" in one(out, "capture_damaged").message


def test_malformed_pdu_severity() -> None:
    m = MalformedPdu(10, S, CONN, I2T, 9, 0x01, "CDB too short", 32, bytes(48))
    a = one(direct([m]), "malformed_pdu")
    assert a.severity == "warning" and "CDB too short" in a.message and "opcode 0x01" in a.message
    a = one(direct([TcpGap(8, S - 1, CONN, I2T, 0, 100), m]), "malformed_pdu")
    assert a.severity == "info" and "framing artefact" in a.message


def test_framing_lost() -> None:
    assert "framing_lost" not in kinds(direct([FramingResync(10, S, CONN, T2I, 0, "gap", True)]))
    a = one(direct([FramingResync(10, S, CONN, T2I, 375220, "gap", True)]), "framing_lost")
    assert a.severity == "info" and "375220 bytes" in a.message and "after a capture gap" in a.message
    a = one(direct([FramingResync(10, S, CONN, I2T, 64, "implausible_header", False)]), "framing_lost")
    assert a.severity == "warning" and "found no PDU boundary" in a.message
