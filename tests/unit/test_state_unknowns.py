"""What the state layer knows after a capture that missed part of the protocol: facts seen in
the traffic are reported as such, unknowns as unknown, never as RFC defaults (RFC 7143 §13)."""

from __future__ import annotations

from dataclasses import replace

from state_helpers import Flow, Wire, login, run

from analyzer.state.events import ConnectionParams, ConnectionSummary
from analyzer.state.tracker import SessionTracker


def _conn(tr: SessionTracker, ts: int) -> ConnectionSummary:
    return next(r for r in tr.finish(ts) if isinstance(r, ConnectionSummary))


def test_mid_stream_digests_detected_in_traffic_are_reported() -> None:
    w, tr = Wire(), SessionTracker()
    f = Flow(w)
    run(tr, [f.opened(handshake=False), replace(f.scsi_cmd(0x20), header_digest="ok"),
             replace(f.data_in(0x20, status=0, dsl=512), header_digest="ok", data_digest="ok")])
    c = _conn(tr, w.ts)
    assert (c.header_digest, c.header_digest_source) == (True, "detected")
    assert (c.data_digest, c.data_digest_source) == (True, "detected")


def test_mid_stream_digest_not_yet_seen_is_unknown() -> None:
    w, tr = Wire(), SessionTracker()
    f = Flow(w)
    run(tr, [f.opened(handshake=False), f.scsi_cmd(0x20, dsl=0), f.scsi_rsp(0x20)])  # no data segment at all
    c = _conn(tr, w.ts)
    assert (c.header_digest, c.header_digest_source) == (False, "detected")
    assert c.data_digest_source == "unknown"


def test_negotiated_digests_carry_their_source_to_the_framer_feedback() -> None:
    w, tr = Wire(), SessionTracker()
    f = Flow(w)
    out = run(tr, [f.opened(), *login(f)])
    p = next(r for r in out if isinstance(r, ConnectionParams))
    assert (p.header_digest, p.header_digest_source, p.data_digest, p.data_digest_source) == (
        True, "negotiated", False, "negotiated")
    c = _conn(tr, w.ts)
    assert (c.header_digest, c.header_digest_source) == (True, "negotiated")


def test_mid_stream_max_recv_dsl_is_unknown_with_what_the_traffic_proves() -> None:
    w, tr = Wire(), SessionTracker()
    f = Flow(w)
    run(tr, [f.opened(handshake=False), f.scsi_cmd(0x20, edtl=65536),
             f.data_in(0x20, dsl=32768), f.data_in(0x20, datasn=1, offset=32768, dsl=32768, status=0)])
    c = _conn(tr, w.ts)
    assert (c.max_recv_dsl_initiator, c.max_recv_dsl_target) == (None, None)  # not the default 8192
    assert (c.dsl_seen_initiator, c.dsl_seen_target) == (32768, 0)
    assert "AuthMethod" not in c.params and "MaxRecvDataSegmentLength_initiator" not in c.params


def test_login_captured_from_its_middle_reports_only_keys_seen() -> None:
    w, tr = Wire(), SessionTracker()
    f = Flow(w)
    # The capture begins at the operational stage: the security stage (CHAP) and the first Login
    # Request (InitiatorName, §13.6) are not in it.
    keys_i = (("HeaderDigest", "None"), ("DataDigest", "None"), ("MaxRecvDataSegmentLength", "262144"))
    keys_t = (("HeaderDigest", "None"), ("DataDigest", "None"), ("MaxBurstLength", "262144"))
    run(tr, [f.opened(handshake=False), *login(f, keys_i=keys_i, keys_t=keys_t)])
    c = _conn(tr, w.ts)
    assert (c.max_recv_dsl_initiator, c.max_recv_dsl_target) == (262144, None)
    assert "AuthMethod" not in c.params and "chap_used" not in c.params
    assert (c.header_digest, c.header_digest_source) == (False, "negotiated")


def test_whole_login_keeps_defaults_for_keys_not_declared() -> None:
    w, tr = Wire(), SessionTracker()
    f = Flow(w)
    keys_t = tuple(kv for kv in __import__("state_helpers").LEADING_KEYS_T if kv[0] != "MaxRecvDataSegmentLength")
    run(tr, [f.opened(), *login(f, keys_t=keys_t)])
    c = _conn(tr, w.ts)
    assert (c.max_recv_dsl_initiator, c.max_recv_dsl_target) == (262144, 8192)  # §13.12 default: a fact here
    assert c.params["AuthMethod"] == "None" and c.params["chap_used"] == "No"


def test_login_in_progress_at_capture_end_reports_what_was_settled() -> None:
    w, tr = Wire(), SessionTracker()
    f = Flow(w)
    first = (("InitiatorName", "iqn.x:i"), ("TargetName", "iqn.x:t"), ("SessionType", "Normal"),
             ("AuthMethod", "CHAP,None"))
    run(tr, [f.opened(), f.login_req(first, transit=False, csg=0, nsg=1),
             f.login_rsp((("TargetPortalGroupTag", "1"), ("AuthMethod", "CHAP")), transit=False, csg=0, nsg=1),
             f.login_req((("CHAP_A", "5"),), transit=False, csg=0, nsg=1)])
    c = _conn(tr, w.ts)
    assert c.ended == "capture_end" and c.params.get("AuthMethod") == "CHAP"
    assert (c.max_recv_dsl_initiator, c.max_recv_dsl_target) == (None, None)  # not settled yet


def test_failed_login_reports_its_negotiation_as_far_as_it_went() -> None:
    w, tr = Wire(), SessionTracker()
    f = Flow(w)
    first = (("InitiatorName", "iqn.x:i"), ("TargetName", "iqn.x:t"), ("AuthMethod", "CHAP"),
             ("MaxRecvDataSegmentLength", "65536"))
    run(tr, [f.opened(), f.login_req(first, transit=False, csg=0, nsg=1),
             f.login_rsp((("AuthMethod", "CHAP"),), transit=False, csg=0, nsg=1),
             f.login_req((("CHAP_A", "5"),), transit=False, csg=0, nsg=1),
             f.login_rsp((), status_class=2, status_detail=1, transit=False, csg=0, nsg=1)])
    c = _conn(tr, w.ts)
    assert c.ended == "login_failed" and c.params.get("AuthMethod") == "CHAP"
    assert (c.max_recv_dsl_initiator, c.max_recv_dsl_target) == (65536, None)


# ---------------------------------------------------------------------------- redirects (§11.13.5)

_FIRST = (("InitiatorName", "iqn.x:i"), ("TargetName", "iqn.x:t"), ("SessionType", "Normal"))


def test_redirect_is_its_own_ending_and_the_follow_up_login_is_linked() -> None:
    from analyzer.state.events import SessionSummary, TaskRecord

    w, tr = Wire(), SessionTracker()
    a = Flow(w)
    b = Flow(w, conn="10.0.0.1:40001->10.0.0.3:3260")
    out = run(tr, [a.opened(), a.login_req(_FIRST),
                   a.login_rsp((("TargetAddress", "10.0.0.3:3260,1"),), status_class=1, status_detail=1),
                   a.fin(), a.closed(),
                   b.opened(), *login(b, keys_i=_FIRST + (("HeaderDigest", "None"), ("DataDigest", "None")),
                                      keys_t=(("TargetPortalGroupTag", "1"), ("HeaderDigest", "None"),
                                              ("DataDigest", "None")))])
    task = next(t for t in out if isinstance(t, TaskRecord) and t.conn == a.conn)
    assert task.outcome == "redirected" and (task.login_status_class, task.login_status_detail) == (1, 1)
    end = tr.finish(w.ts)
    s1, s2 = (next(r for r in end if isinstance(r, SessionSummary) and r.session == sid) for sid in ("s1", "s2"))
    assert (s1.ended, s1.redirected_to, s1.redirect_followed_by) == ("redirected", "10.0.0.3:3260,1", "s2")
    assert s2.redirected_from == "s1" and s2.ended == "capture_end"
    c1 = next(r for r in end if isinstance(r, ConnectionSummary) and r.conn == a.conn)
    assert (c1.ended, c1.redirected_to, c1.login_status_class) == ("redirected", "10.0.0.3:3260,1", 1)


def test_class_2_is_still_a_failure() -> None:
    w, tr = Wire(), SessionTracker()
    a = Flow(w)
    run(tr, [a.opened(), a.login_req(_FIRST), a.login_rsp((), status_class=2, status_detail=3)])
    c = _conn(tr, w.ts)
    assert (c.ended, c.redirected_to) == ("login_failed", None)


def test_login_captured_from_its_middle_has_no_default_session_type() -> None:
    from analyzer.state.events import SessionSummary

    w, tr = Wire(), SessionTracker()
    f = Flow(w)
    keys = (("HeaderDigest", "None"), ("DataDigest", "None"))
    run(tr, [f.opened(handshake=False), *login(f, keys_i=keys, keys_t=keys)])
    s = next(r for r in tr.finish(w.ts) if isinstance(r, SessionSummary))
    assert (s.session_type, s.mid_stream) == ("unknown", True)  # not the §13.21 default Normal
