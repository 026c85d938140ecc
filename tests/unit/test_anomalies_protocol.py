"""Protocol anomaly rules: sequence checks, digests, state violations, negotiation issues."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_anomalies_support import CONN, Flow, S, Wire, direct, kinds, logged_in, one, only, pipe

from analyzer.anomalies.rules.protocol import SEQUENCE_KIND_MAP
from analyzer.records import I2T, T2I, TcpGap, UnknownPdu
from analyzer.state.events import NegotiationIssue, SequenceEvent, TrackerError, Violation


def seq(kind: str, detail: str = "detail", frame: int = 20, ts: int = 2 * S) -> SequenceEvent:
    return SequenceEvent(frame, ts, "s1", CONN, kind, 1, 5, detail, 0x42)


@pytest.mark.parametrize(("seq_kind", "kind", "severity"), [
    ("cmdsn_out_of_window", "cmdsn_out_of_window", "warning"),
    ("cmdsn_duplicate", "cmdsn_duplicate", "warning"),
    ("statsn_gap", "statsn_gap", "warning"),
    ("datasn_gap", "datasn_gap", "warning"),
    ("r2tsn_gap", "datasn_gap", "warning"),
    ("expdatasn_mismatch", "expdatasn_mismatch", "info"),
    ("r2t_overrun", "r2t_overrun", "error"),
    ("max_recv_dsl_exceeded", "max_recv_data_segment_exceeded", "error"),
    ("burst_length_exceeded", "burst_length_exceeded", "warning"),
    ("unsolicited_data_not_negotiated", "unsolicited_data_not_negotiated", "warning"),
    ("request_after_logout", "request_after_logout", "warning"),
    ("unexpected_response", "unexpected_response", "warning"),
    ("itt_in_use", "itt_reused", "warning"),
])
def test_sequence_events(seq_kind: str, kind: str, severity: str) -> None:
    a = one(direct([seq(seq_kind, "the detail")]), kind)
    assert a.severity == severity and "the detail" in a.message and "ITT 0x42" in a.message
    assert a.session == "s1" and a.conn == CONN and a.frame == 20


def test_every_sequence_kind_is_mapped() -> None:
    from analyzer.anomalies import KINDS
    from analyzer.state.events import SEQUENCE_KINDS
    assert set(SEQUENCE_KINDS) <= set(SEQUENCE_KIND_MAP)
    assert set(SEQUENCE_KIND_MAP.values()) <= set(KINDS)


def test_max_recv_dsl_in_login_is_warning() -> None:
    ev = seq("max_recv_dsl_exceeded", "Login Request DataSegmentLength 9000 > default (login phase) "
                                      "MaxRecvDataSegmentLength 8192")
    # the structured phase decides, not the wording of the detail
    a = one(direct([replace(ev, phase="login")]), "max_recv_data_segment_exceeded")
    assert a.severity == "warning"
    a = one(direct([replace(ev, phase="ffp")]), "max_recv_data_segment_exceeded")
    assert a.severity == "error"


def test_cmdsn_window_stale_after_target_loss_is_info() -> None:
    f = Flow(Wire())
    rsp = f.nop_in(0x5)  # the last target PDU we decoded (window update)
    gap = TcpGap(rsp.frame + 1, rsp.ts_ns + 1, CONN, T2I, 0, 1000)
    ev = seq("cmdsn_out_of_window", "CmdSN 9 outside [ExpCmdSN 1, MaxCmdSN 8]", frame=rsp.frame + 2,
             ts=rsp.ts_ns + 2)
    a = one(direct([rsp, gap, ev]), "cmdsn_out_of_window")
    assert a.severity == "info" and "stale" in a.message
    early = TcpGap(rsp.frame - 1, rsp.ts_ns - 1, CONN, T2I, 0, 1000)
    a = one(direct([early, rsp, ev]), "cmdsn_out_of_window")
    assert a.severity == "warning" and "silently discard" in a.message


def test_cmdsn_out_of_window_through_tracker() -> None:
    w = Wire()
    f, recs = logged_in(w)
    c = f.scsi_cmd(cmdsn=f.nums.cmdsn + 100)
    a = one(pipe(recs + [c], finish=False), "cmdsn_out_of_window")
    assert a.severity == "warning" and a.frame == c.frame


def test_sequence_flood_limited() -> None:
    out = direct([seq("statsn_gap", frame=20 + i) for i in range(8)])
    found = only(out, "statsn_gap")
    assert len(found) == 6 and "3 more" in found[-1].message


def test_digest_errors() -> None:
    w = Wire()
    f, _ = logged_in(w)
    c = replace(f.scsi_cmd(), header_digest="bad", data_digest="ok")
    d = replace(f.data_in(c.itt), header_digest="ok", data_digest="bad")
    good = replace(f.data_in(c.itt, datasn=1), header_digest="ok", data_digest="ok")
    out = direct([c, d, good])
    found = only(out, "digest_error")
    assert [a.severity for a in found] == ["error", "error"]
    assert found[0].message.startswith("Header digest (CRC32C) mismatch on a SCSI Command PDU")
    assert found[1].message.startswith("Data digest (CRC32C) mismatch on a SCSI Data In PDU")
    assert "target->initiator" in found[1].message


def test_state_violation_severity() -> None:
    v = Violation(30, 3 * S, "s1", CONN, "connection", "target", "LOGGED_IN", "LOGIN_REQUEST", "Login in FFP")
    a = one(direct([v]), "state_violation")
    assert a.severity == "warning" and "LOGIN REQUEST in state LOGGED_IN" in a.message
    a = one(direct([replace(v, state="UNKNOWN")]), "state_violation")
    assert a.severity == "info" and "mid-connection" in a.message
    # the state layer's observer_limited flag (inferred states, capture loss) lowers it to info
    a = one(direct([replace(v, observer_limited=True)]), "state_violation")
    assert a.severity == "info"
    gap = TcpGap(29, 3 * S - 1, CONN, T2I, 0, 10)
    a = one(direct([gap, v]), "state_violation")
    assert a.severity == "info" and "lost data" in a.message
    assert len(only(direct([replace(v, frame=30 + i) for i in range(5)]), "state_violation")) == 4


def test_negotiation_issue_severity() -> None:
    vendor = NegotiationIssue(5, S, "s1", CONN, "X-com.cisco.protocol", "not_understood", "initiator", "draft20",
                              "NotUnderstood", "answered NotUnderstood")
    bad = NegotiationIssue(6, S, "s1", CONN, "MaxBurstLength", "answer_violates_result", "initiator", "65536",
                           "262144", "answer 262144 > offer 65536 for a Min key")
    out = direct([vendor, bad])
    assert [a.severity for a in only(out, "negotiation_issue")] == ["info", "warning"]
    assert "MaxBurstLength" in only(out, "negotiation_issue")[1].message


def test_unknown_opcode_and_tracker_error() -> None:
    f = Flow(Wire())
    base = f.nop_out()
    pdu = UnknownPdu(base.frame, base.ts_ns, CONN, I2T, base.frame, 0x1C, False, True, 0, 0, None, 0xFFFFFFFF, (),
                     None, None, bytes(48))
    assert one(direct([pdu]), "unknown_opcode").severity == "info"
    err = TrackerError(9, S, CONN, "ScsiCommand: KeyError(1)")
    a = one(direct([err]), "analyzer_error")
    assert "KeyError" in a.message


def test_rule_crash_becomes_analyzer_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from analyzer.anomalies import AnomalyEngine
    from analyzer.anomalies.rules.tasks import RejectRule

    def boom(self: RejectRule, pdu: object) -> None:
        raise RuntimeError("boom")
    monkeypatch.setattr(RejectRule, "reject", boom)
    f = Flow(Wire())
    out = AnomalyEngine().feed(f.reject(reason=4, rejected_opcode=1, rejected_itt=1))
    assert [a.kind for a in out] == ["analyzer_error"] and "boom" in out[0].message


_ = (kinds,)


@pytest.mark.parametrize(("dev_kind", "kind"), [
    ("close_session_left_connection_open", "close_session_left_connection_open"),
    ("logout_response_unexpected", "logout_response_unexpected"),
    ("logout_closed_wrong_connection", "logout_closed_wrong_connection"),
    ("duplicate_cid_in_session", "duplicate_cid_in_session"),
    ("tmf_response_inconsistent", "tmf_response_inconsistent"),
    ("connection_dropped_on_request", "connection_dropped_on_request"),
    ("reinstated_session_left_open", "target_protocol_deviation"),
    ("something_new", "target_protocol_deviation"),
])
def test_deviations_become_findings(dev_kind: str, kind: str) -> None:
    from analyzer.state.events import Deviation
    d = Deviation(40, 4 * S, "s1", CONN, "target", dev_kind, "§11.14", "the target did X", 30, cid=1)
    a = one(direct([d]), kind)
    assert a.severity == "warning" and a.rfc == "§11.14" and "the target did X" in a.message
    assert set(a.frames) == {30, 40} and a.session == "s1"


def test_every_deviation_kind_is_mapped() -> None:
    from analyzer.anomalies import KINDS
    from analyzer.anomalies.rules.protocol import DEVIATION_KIND_MAP
    from analyzer.state.events import DEVIATION_KINDS
    assert set(DEVIATION_KINDS) <= set(DEVIATION_KIND_MAP)
    assert set(DEVIATION_KIND_MAP.values()) <= set(KINDS)


def test_deviations_through_the_tracker() -> None:
    w = Wire()
    f, recs = logged_in(w)
    lo = f.logout_req(reason=1, cid=7)
    out = pipe(recs + [lo, f.logout_rsp(lo.itt), f.fin(T2I)])
    assert kinds(out)["logout_response_unexpected"] == 1 and kinds(out)["logout_closed_wrong_connection"] == 1
    assert "connection_dropped" not in kinds(out) and "session_failed" not in kinds(out)
