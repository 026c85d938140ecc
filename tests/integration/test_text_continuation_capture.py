"""The text_continuation lab capture against its verified ground truth (manifest ``expect.text_continuation``).

A scripted initiator logs in for discovery with its security-stage text cut into 4 Login Requests
with the C bit (mid-key, mid-value, right before a NUL), declares MaxRecvDataSegmentLength=512 and
sends SendTargets=All to a tgtd 1.0.85 with ten long-named targets; tgtd cuts its reply into
512-byte Text Responses anywhere, with F=0 and without the C bit. Then a Text Request cut with
C=1 and a login whose InitiatorName is cut across two PDUs. The ground truth was rejoined by the
lab from the TCP payload tshark prints (analyzer/lab/verify.py ``text_series``), with the scripted
initiator's own key decoder. The analyzer must rejoin the same text (RFC 7143 §6.1), negotiate and
identify the session from it, and report each of tgtd's continuation deviations.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from analyzer.pipeline import Options, iter_records
from analyzer.records import Anomaly, LoginRequest, LoginResponse, Pdu, Record, TextRequest, TextResponse
from analyzer.state.events import (
    ConnectionParams,
    ConnectionSummary,
    Deviation,
    SessionIdentified,
    SessionSummary,
    TrackerError,
    Violation,
)
from analyzer.state.negotiation import TextJoiner

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_pcaps"
MANIFEST = SAMPLES / "manifest.json"
TEXT_PDUS = (LoginRequest, LoginResponse, TextRequest, TextResponse)
#: manifest fault kind -> Deviation kind the analyzer records for it
DEVIATION_OF = {
    "text_continuation_answer_not_empty": "text_continuation_answer_not_empty",
    "text_split_without_continue": "text_split_without_continue",
    "text_continuation_abandoned": "text_continuation_abandoned",
}


class Run:
    def __init__(self) -> None:
        if not MANIFEST.exists():
            pytest.skip("no sample_pcaps/manifest.json")
        entries = [e for e in json.loads(MANIFEST.read_text()) if e["scenario"] == "text_continuation"]
        if not entries or not (SAMPLES / entries[0]["file"]).exists():
            pytest.skip("text_continuation capture not available")
        self.entry = entries[0]
        self.expect: dict[str, Any] = self.entry["expect"]
        self.truth: dict[str, Any] = self.expect["text_continuation"]
        self.records: list[Record] = list(iter_records(str(SAMPLES / self.entry["file"]), Options()))
        conns = [r for r in self.records if type(r) is ConnectionSummary]
        port_of = {s["tcp_stream"]: s["initiator_port"] for s in self.expect["sessions"]}
        self.stream = {st: next(c.conn for c in conns if c.client_port == port) for st, port in port_of.items()}
        self.sessions = {s.session: s for s in self.records if type(s) is SessionSummary}
        self.conn_session = {c.conn: c.session for c in conns}

    def of(self, cls: type) -> list[Any]:
        return [r for r in self.records if type(r) is cls]

    def session(self, stream: int) -> SessionSummary:
        sid = self.conn_session[self.stream[stream]]
        assert sid is not None
        return self.sessions[sid]

    def pdu(self, stream: int, frame: int) -> Pdu:
        (p,) = [r for r in self.records if isinstance(r, TEXT_PDUS) and r.conn == self.stream[stream]
                and r.frame == frame]
        return p


@cache
def run() -> Run:
    return Run()


def _pairs(keys: list[list[str]]) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in keys)


def test_ground_truth_has_what_the_capture_was_made_for() -> None:
    t = run().truth
    login = [s for s in t["series"] if s["opcode"] == "Login Request" and s["completed"]]
    reply = [s for s in t["series"] if s["opcode"] == "Text Response" and s["completed"]]
    assert len(login) == 1 and len(login[0]["pieces"]) == 4
    assert [p["c"] for p in login[0]["pieces"]] == [True, True, True, False]
    assert len(reply) == 1 and len(reply[0]["pieces"]) >= 3
    assert [v for k, v in reply[0]["keys"] if k == "TargetName"] == t["targets"]


def test_records_carry_the_raw_text_and_rejoin_to_the_truth() -> None:
    """Rejoining the decoded records' raw text gives exactly the keys the lab rejoined from tshark's payload."""
    r = run()
    for series in r.truth["series"]:
        if not series["completed"]:
            continue
        j = TextJoiner()
        keys = None
        for piece in series["pieces"]:
            pdu = r.pdu(series["stream"], piece["frame"])
            assert isinstance(pdu, TEXT_PDUS) and len(pdu.text) == pdu.dsl == piece["dsl"]
            more = piece is not series["pieces"][-1]
            keys, breaks = j.feed(pdu.text, pdu.keys, pdu.dsl, more, pdu.frame, pdu.itt)
            assert breaks == []
        assert keys == _pairs(series["keys"]), series["pieces"][0]["frame"]


def test_per_pdu_keys_invent_no_pair_from_a_trailing_fragment() -> None:
    r = run()
    for series in r.truth["series"]:
        for piece in series["pieces"]:
            if not piece["ends_inside_pair"]:
                continue
            pdu = r.pdu(series["stream"], piece["frame"])
            assert isinstance(pdu, TEXT_PDUS)
            frag = piece["fragment"]
            shown = {f"{k}={v}" if k else v for k, v in pdu.keys}
            assert frag not in shown, (piece, pdu.keys)
            assert pdu.text.endswith(frag.encode())


def test_login_negotiated_and_identified_from_the_joined_text() -> None:
    r = run()
    (login,) = [s for s in r.truth["series"] if s["opcode"] == "Login Request" and s["completed"]]
    sent = dict(_pairs(login["keys"]))
    assert _pairs(login["keys"]) == _pairs(r.truth["login_keys_sent"])
    s = r.session(login["stream"])
    assert (s.session_type, s.initiator_name, s.initiator_alias) == (
        sent["SessionType"], sent["InitiatorName"], sent["InitiatorAlias"])
    assert s.tpgt == 1 and s.params["AuthMethod"] == "None"
    (ident,) = [i for i in r.of(SessionIdentified) if i.session == s.session]
    assert (ident.initiator_name, ident.initiator_alias, ident.session_type) == (
        sent["InitiatorName"], sent["InitiatorAlias"], "Discovery")
    (params,) = [p for p in r.of(ConnectionParams) if p.conn == r.stream[login["stream"]]]
    assert params.max_recv_dsl_initiator == r.truth["mrdsl_initiator"] == 512
    assert (params.header_digest, params.data_digest) == (False, False)


def test_sendtargets_reply_rejoined_across_tgtds_f0_cuts() -> None:
    r = run()
    (reply,) = [s for s in r.truth["series"] if s["opcode"] == "Text Response" and s["completed"]]
    assert r.session(reply["stream"]).discovered_targets == tuple(r.truth["targets"])


def test_split_initiator_name_never_completed() -> None:
    r = run()
    (cut,) = [s for s in r.truth["series"] if s["opcode"] == "Login Request" and not s["completed"]]
    assert cut["ended_by"]["status"] == "0x0207"
    s = r.session(cut["stream"])
    assert s.initiator_name is None  # the name was never sent whole: no fragment taken for it
    assert s.ended == "login_failed"


def test_each_continuation_deviation_is_recorded() -> None:
    r = run()
    devs = [d for d in r.of(Deviation) if d.kind.startswith("text_")]
    want = sorted((DEVIATION_OF[f["kind"]], f["frame"]) for f in r.expect["faults"] if f["kind"] in DEVIATION_OF)
    got = sorted((d.kind, d.start_frame if d.kind == "text_continuation_abandoned" else d.frame) for d in devs)
    assert got == want
    assert {d.side for d in devs} == {"target"}  # every one of them is tgtd's doing
    for f in r.expect["faults"]:
        if f["kind"] == "text_continuation_abandoned":
            (d,) = [d for d in devs if d.kind == f["kind"] and d.start_frame == f["frame"]]
            assert d.frame == f["ended_by_frame"]
    findings = [a for a in r.of(Anomaly) if a.kind == "target_protocol_deviation"]
    assert len(findings) == len(devs)


def test_closed_command_window_is_what_tshark_showed() -> None:
    r = run()
    (closed,) = [f for f in r.expect["faults"] if f["kind"] == "cmdsn_window_closed"]
    flagged = sorted(a.frame for a in r.of(Anomaly) if a.kind == "cmdsn_out_of_window")
    assert flagged == sorted(closed["frames"])


def test_no_machine_violation_or_tracker_error() -> None:
    r = run()
    assert r.of(TrackerError) == []
    assert r.of(Violation) == []
