"""Key negotiation (RFC 7143 §6.2, §13) as the state layer sees it."""

from __future__ import annotations

import pytest
from state_helpers import INAME, LEADING_KEYS_I, Flow, Wire, of, run

from analyzer.state.events import ConnectionParams, NegotiationIssue, SessionSummary
from analyzer.state.negotiation import Negotiation
from analyzer.state.tracker import SessionTracker


@pytest.mark.parametrize(("key", "offer", "answer", "result", "issue"), [
    ("MaxBurstLength", "262144", "65536", "65536", None),  # Min
    ("MaxBurstLength", "65536", "262144", "65536", "answer_violates_result"),
    ("DefaultTime2Wait", "2", "5", "5", None),  # Max
    ("DefaultTime2Wait", "5", "2", "5", "answer_violates_result"),
    ("ImmediateData", "Yes", "No", "No", None),  # AND
    ("ImmediateData", "No", "Yes", "No", "answer_violates_result"),
    ("InitialR2T", "No", "Yes", "Yes", None),  # OR
    ("InitialR2T", "Yes", "No", "Yes", "answer_violates_result"),
    ("HeaderDigest", "CRC32C,None", "None", "None", None),  # list
    ("HeaderDigest", "None", "CRC32C", "CRC32C", "answer_violates_result"),
    ("MaxBurstLength", "262144", "Reject", "262144", "rejected"),  # default stays
    ("ErrorRecoveryLevel", "2", "NotUnderstood", "0", "not_understood"),
])
def test_result_functions(key: str, offer: str, answer: str, result: str, issue: str | None) -> None:
    n = Negotiation()
    assert n.feed("initiator", ((key, offer),)) == []
    issues = n.feed("target", ((key, answer),))
    assert [i.kind for i in issues] == ([issue] if issue else [])
    assert n.value(key) == result


def test_target_offer_answered_by_initiator() -> None:
    n = Negotiation()
    n.feed("target", (("MaxOutstandingR2T", "4"),))
    n.feed("initiator", (("MaxOutstandingR2T", "2"),))
    assert n.value("MaxOutstandingR2T") == "2"


def test_declarative_keys_are_per_side() -> None:
    n = Negotiation()
    n.feed("initiator", (("MaxRecvDataSegmentLength", "262144"),))
    n.feed("target", (("MaxRecvDataSegmentLength", "8192"),))
    assert (n.max_recv_dsl("initiator"), n.max_recv_dsl("target")) == (262144, 8192)
    assert n.close() == []


def test_unanswered_offer_reported_at_close() -> None:
    n = Negotiation()
    n.feed("initiator", (("MaxBurstLength", "4096"),))
    assert [(i.key, i.kind, i.offered_by) for i in n.close()] == [("MaxBurstLength", "unanswered", "initiator")]
    assert n.value("MaxBurstLength") == "262144"


def test_chap_secrets_are_never_stored() -> None:
    w, tr = Wire(), SessionTracker()
    f = Flow(w)
    secret_c, secret_r = "0x" + "ab" * 16, "0x" + "cd" * 16
    recs = [f.opened(),
            f.login_req((("InitiatorName", INAME), ("SessionType", "Normal"), ("AuthMethod", "CHAP,None")),
                        transit=False, csg=0, nsg=1),
            f.login_rsp((("AuthMethod", "CHAP"),), transit=False, csg=0, nsg=1),
            f.login_req((("CHAP_A", "5"),), transit=False, csg=0, nsg=1),
            f.login_rsp((("CHAP_A", "5"), ("CHAP_I", "1"), ("CHAP_C", secret_c)), transit=False, csg=0, nsg=1),
            f.login_req((("CHAP_N", INAME), ("CHAP_R", secret_r)), transit=True, csg=0, nsg=1),
            f.login_rsp((), transit=True, csg=0, nsg=1),
            f.login_req(LEADING_KEYS_I[3:], csg=1, nsg=3),
            f.login_rsp((("TargetPortalGroupTag", "1"), ("HeaderDigest", "None")), csg=1, nsg=3, tsih=7)]
    out = run(tr, recs) + tr.finish(w.ts)
    assert len(of(out, ConnectionParams)) == 1
    (sess,) = of(out, SessionSummary)
    assert sess.params["AuthMethod"] == "CHAP" and sess.params["chap_used"] == "Yes"
    text = repr(out) + repr(tr.sessions()) + repr(tr.connections())
    assert secret_c not in text and secret_r not in text
    # keys offered in the login but not answered by the target are reported
    unanswered = {i.key for i in of(out, NegotiationIssue) if i.kind == "unanswered"}
    assert "MaxBurstLength" in unanswered and "HeaderDigest" not in unanswered


def test_text_renegotiation_of_max_recv_dsl_re_emits_connection_params() -> None:
    from state_helpers import login
    w, tr = Wire(), SessionTracker()
    f = Flow(w)
    run(tr, [f.opened(), *login(f)])
    tx = f.text_req((("MaxRecvDataSegmentLength", "16384"),))
    out = run(tr, [tx, f.text_rsp(tx.itt, (("MaxRecvDataSegmentLength", "32768"),))])
    (p,) = of(out, ConnectionParams)
    assert (p.max_recv_dsl_initiator, p.max_recv_dsl_target, p.header_digest) == (16384, 32768, True)
