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
