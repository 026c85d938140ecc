"""The six scripted lab captures against their verified ground truth (manifest ``expect.scripted``).

The scripted captures come from a raw-socket initiator talking to tgtd 1.0.85, which deviates
from RFC 7143 in several ways. The analyzer must (a) stay consistent with what the wire shows
(a connection that keeps exchanging PDUs is not FREE, a task that gets its response is
completed) and (b) record each deviation (a Deviation record and a finding).

Generic checks per capture: sessions (ISID, TSIH, type, CIDs), how every connection ended and
that its final states are consistent (R3 is S1), every login and logout and its outcome, the
unanswered tasks with their cause (and no other task unanswered), task management answers, no
state-machine Violation and no TrackerError. Then the specific points each capture was made for.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from analyzer.pipeline import Options, iter_records
from analyzer.records import Anomaly, Record
from analyzer.state.events import (
    ConnectionSummary,
    Deviation,
    Reinstatement,
    SequenceEvent,
    SessionIdentified,
    SessionSummary,
    TaskRecord,
    TrackerError,
    Transition,
    Violation,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_pcaps"
MANIFEST = SAMPLES / "manifest.json"
SCRIPTED = ("mcs_two_connections", "session_reinstatement", "connection_reinstatement", "logout_failures",
            "cmdsn_window", "nop_and_text")

#: manifest ended_by -> ConnectionSummary.ended values that tell the same story
ENDED = {
    "logout": {"logout"},
    "target_dropped": {"dropped", "reinstated"},  # a target close for a reinstatement is "reinstated"
    "initiator_closed": {"dropped", "reinstated"},
    "login_failed": {"login_failed"},
}
#: outcomes of tasks that got no response
UNANSWERED = {"not_accepted", "terminated_by_logout", "open_at_conn_drop", "open_at_capture_end",
              "lost_in_capture_gap"}


def _entry(scenario: str) -> dict[str, Any]:
    if not MANIFEST.exists():
        pytest.skip("no sample_pcaps/manifest.json")
    for e in json.loads(MANIFEST.read_text()):
        if e["scenario"] == scenario:
            if not (SAMPLES / e["file"]).exists():
                pytest.skip(f"{e['file']} not available")
            return e
    pytest.skip(f"{scenario} not in the manifest")


class Run:
    """Every record of one capture, with lookups by TCP stream (Wireshark's tcp.stream index)."""

    def __init__(self, scenario: str) -> None:
        self.entry = _entry(scenario)
        self.truth: dict[str, Any] = self.entry["expect"]["scripted"]
        self.records: list[Record] = list(iter_records(str(SAMPLES / self.entry["file"]), Options()))
        self.conns = {c.conn: c for c in self.of(ConnectionSummary)}
        self.sessions = {s.session: s for s in self.of(SessionSummary)}
        port_of = {s["tcp_stream"]: s["initiator_port"] for s in self.entry["expect"]["sessions"]}
        self.stream: dict[int, str] = {}
        for st, port in port_of.items():
            (conn,) = [c.conn for c in self.conns.values() if c.client_port == port]
            self.stream[st] = conn

    def of(self, cls: type) -> list[Any]:
        return [r for r in self.records if type(r) is cls]

    def conn(self, stream: int) -> ConnectionSummary:
        return self.conns[self.stream[stream]]

    def tasks(self, stream: int, itt: int | str | None = None, kind: str | None = None) -> list[TaskRecord]:
        if isinstance(itt, str):
            itt = int(itt, 16)
        return [t for t in self.of(TaskRecord) if t.conn == self.stream[stream]
                and (itt is None or t.itt == itt) and (kind is None or t.kind == kind)]

    def task(self, stream: int, itt: int | str, kind: str | None = None) -> TaskRecord:
        (t,) = self.tasks(stream, itt, kind)
        return t

    def transitions(self, stream: int | None = None, *, machine: str | None = None, side: str | None = None,
                    frame: int | None = None, session: str | None = None) -> list[Transition]:
        conn = self.stream[stream] if stream is not None else None
        return [t for t in self.of(Transition) if (conn is None or t.conn == conn)
                and (machine is None or t.machine == machine) and (side is None or t.side == side)
                and (frame is None or t.frame == frame) and (session is None or t.session == session)]

    def deviations(self, kind: str) -> list[Deviation]:
        return [d for d in self.of(Deviation) if d.kind == kind]

    def anomalies(self, kind: str) -> list[Anomaly]:
        return [a for a in self.of(Anomaly) if a.kind == kind]


@cache
def run(scenario: str) -> Run:
    return Run(scenario)


# ------------------------------------------------------------------------------------------ generic checks


@pytest.mark.parametrize("scenario", SCRIPTED)
def test_sessions_and_connections(scenario: str) -> None:
    r = run(scenario)
    for truth in r.truth["sessions"]:
        for tc in truth["connections"]:
            c = r.conn(tc["tcp_stream"])
            assert c.cid == tc["cid"], (tc, c)
            assert c.ended in ENDED[tc["ended_by"]], (tc, c)
            assert c.tcp_end == tc["close_kind"], (tc, c)
            s = r.sessions[c.session]  # type: ignore[index]
            assert s.isid == truth["isid"], (truth, s)
            assert s.session_type == truth["type"]
            if truth["tsih"] is not None:
                assert s.tsih == int(truth["tsih"], 16)
                assert tc["cid"] in s.cids
            else:  # a login refused before any session existed: the connection never left the login
                assert c.login_status_class is not None and c.login_status_class != 0
    # every session that logged in was identified once, before its first LOGGED_IN transition
    ident = r.of(SessionIdentified)
    assert len({i.session for i in ident}) == len(ident)
    for i in ident:
        s = r.sessions[i.session]
        assert (i.isid, i.tsih, i.initiator_name) == (s.isid, s.tsih, s.initiator_name)
        first = min(t.frame for t in r.of(Transition) if t.session == i.session and t.to_state == "LOGGED_IN")
        assert i.frame <= first


@pytest.mark.parametrize("scenario", SCRIPTED)
def test_final_states_are_consistent(scenario: str) -> None:
    """§8.2: R1 is S8 and R3 is S1, so a connection whose cleanup ended is FREE; a logged-out,
    reinstated or refused connection is FREE on both sides; a session with a connection in full
    feature phase is not FREE."""
    r = run(scenario)
    for c in r.conns.values():
        for side, state, cleanup in (("initiator", c.state_initiator, c.cleanup_initiator),
                                     ("target", c.state_target, c.cleanup_target)):
            if cleanup == "FREE":
                assert state == "FREE", (c.conn, side, state, cleanup)
            if cleanup in ("CLEANUP_WAIT", "IN_CLEANUP"):
                assert state == "CLEANUP_WAIT", (c.conn, side, state, cleanup)
        if c.ended in ("logout", "reinstated", "login_failed", "session_closed"):
            assert c.state_target == "FREE", c
    for s in r.sessions.values():
        ffp = [c for c in r.conns.values() if c.session == s.session
               and c.state_target in ("LOGGED_IN", "IN_LOGOUT", "LOGOUT_REQUESTED")]
        if ffp:
            assert s.state_target == "LOGGED_IN", (s, ffp)


@pytest.mark.parametrize("scenario", SCRIPTED)
def test_no_violation_and_no_error(scenario: str) -> None:
    """What tgtd does is recorded as Deviations; the machines follow the wire, so none of its
    PDUs hits a state that does not allow it."""
    r = run(scenario)
    assert r.of(Violation) == []
    assert r.of(TrackerError) == []
    assert not [a for a in r.of(Anomaly) if a.kind in ("state_violation", "unexpected_response", "analyzer_error")]


@pytest.mark.parametrize("scenario", SCRIPTED)
def test_logins(scenario: str) -> None:
    r = run(scenario)
    for lg in r.truth["logins"]:
        (t,) = r.tasks(lg["tcp_stream"], kind="login")
        assert t.first_frame == lg["frame"]
        final = lg["statuses"][-1]
        if final == "0x0000":
            assert t.outcome == "completed", (lg, t)
        else:
            assert t.outcome == "failed", (lg, t)
            assert f"0x{t.login_status_class:02x}{t.login_status_detail:02x}" == final


@pytest.mark.parametrize("scenario", SCRIPTED)
def test_logouts(scenario: str) -> None:
    r = run(scenario)
    for lo in r.truth["logouts"]:
        t = r.task(lo["tcp_stream"], lo["itt"], "logout")
        assert (t.first_frame, t.last_frame) == (lo["frame"], lo["response_frame"]), (lo, t)
        assert (t.logout_reason, t.logout_cid, t.response) == (lo["reason"], lo["cid"], lo["response"]), (lo, t)
        assert t.outcome == ("completed" if lo["response"] == 0 else "failed")


@pytest.mark.parametrize("scenario", SCRIPTED)
def test_unanswered_tasks_and_their_cause(scenario: str) -> None:
    r = run(scenario)
    expected = {(u["tcp_stream"], int(u["itt"], 16)): u for u in r.truth["unanswered_tasks"]}
    stream_of = {conn: st for st, conn in r.stream.items()}
    found = {(stream_of[t.conn], t.itt): t for t in r.of(TaskRecord) if t.outcome in UNANSWERED}
    assert set(found) == set(expected), ({k: v.outcome for k, v in found.items()}, list(expected))
    for key, u in expected.items():
        t = found[key]
        assert t.first_frame == u["frame"] and t.immediate == u["immediate"], (u, t)
        assert t.unanswered_cause == u["cause"], (u, t)
        if u["cause"] in ("cmdsn_above_window", "cmdsn_below_window", "sent_after_logout_request"):
            # never accepted by the target: no latency, nothing "terminated"
            assert (t.outcome, t.latency_ns) == ("not_accepted", 0), t


@pytest.mark.parametrize("scenario", SCRIPTED)
def test_task_management(scenario: str) -> None:
    r = run(scenario)
    for tm in r.truth["tmf"]:
        (t,) = [t for t in r.tasks(tm["tcp_stream"], kind="tmf") if t.ref_task_tag == int(tm["referenced_itt"], 16)]
        assert (t.tmf_function_name, t.response_name) == (tm["tmf_function"], tm["tmf_response"]), (tm, t)


# ------------------------------------------------------------------------------------------ per capture


def test_mcs_close_session_left_cid1_open() -> None:
    r = run("mcs_two_connections")
    # frame 77: close-session Logout Response on CID 0; CID 1 (stream 1) stays in full feature phase
    assert r.transitions(1, frame=77) == []
    assert [t.to_state for t in r.transitions(1, machine="connection", side="target")][-2:] == ["IN_LOGOUT", "FREE"]
    assert r.task(1, 0x1A).outcome == "completed" and r.task(1, 0x1A).status == 0
    (dev,) = r.deviations("close_session_left_connection_open")
    assert (dev.conn, dev.cid, dev.frame, dev.start_frame, dev.side) == (r.stream[1], 1, 86, 77, "target")
    (a,) = r.anomalies("close_session_left_connection_open")
    assert "CID 1" in a.message and "§11.14" in a.rfc
    # the session closes with CID 1's own close-session Logout (frame 89), not at frame 77
    sess = r.transitions(machine="session", side="target")
    assert [(t.label, t.to_state, t.frame) for t in sess][-1] == ("N3", "FREE", 89)
    # the initiator's command on CID 1 after the close-session Logout Request is its own deviation
    assert [e.frame for e in r.of(SequenceEvent) if e.kind == "request_after_logout"] == [81]


def test_session_reinstatement_close_is_t8() -> None:
    r = run("session_reinstatement")
    at42 = {(t.side, t.machine): t for t in r.transitions(0, frame=42)}
    target = at42[("target", "connection")]
    assert (target.label, target.from_state, target.to_state) == ("T8", "LOGGED_IN", "FREE")
    assert "reinstatement" in target.event
    assert at42[("initiator", "connection")].label == "T15"  # the initiator just sees a FIN
    s1 = r.conn(0).session
    assert not [t for t in r.transitions(machine="session", side="target", session=s1) if t.to_state == "FAILED"]
    assert r.conn(0).state_initiator == "FREE" and r.conn(0).cleanup_initiator == "FREE"  # M1 at 46, R3 = S1
    (ri,) = r.of(Reinstatement)
    assert (ri.kind, ri.outcome, ri.old_state_target) == ("session", "succeeded", "LOGGED_IN")
    assert r.sessions[s1].reinstated_by == r.conn(1).session


def test_connection_reinstatement_truths() -> None:
    r = run("connection_reinstatement")
    # part 1: 0x020a "Session does not exist": the target has no session left
    s1 = r.conn(0).session
    assert r.sessions[s1].state_target == "FREE"  # type: ignore[index]
    assert (r.conn(0).state_target, r.conn(0).cleanup_target) == ("FREE", "FREE")
    assert [t.label for t in r.transitions(machine="session", side="target", session=s1)][-2:] == ["N8", "N6"]
    # part 2: stream 3 (CID 1, reset) reinstated on stream 4: consistent end states
    assert (r.conn(3).ended, r.conn(3).state_initiator, r.conn(3).state_target) == ("reinstated", "FREE", "FREE")
    # part 3: the old CID 0 (stream 2) kept working after CID 0 was reinstated on stream 5 (frame 83)
    assert r.transitions(2, frame=83) == []
    assert r.task(2, 0x19).outcome == "completed"  # READ 93 -> 98
    assert r.task(2, 0x1C).outcome == "completed"  # Logout 110 -> 111
    assert r.task(4, 0x1B).outcome == "completed"  # Logout 105 -> 106 on the reinstated CID 1
    assert r.transitions(4, frame=101) == []  # no T8 for CID 1 at the close-session Logout on stream 5
    (dup,) = r.deviations("duplicate_cid_in_session")
    assert (dup.conn, dup.cid, dup.frame, dup.start_frame) == (r.stream[2], 0, 98, 83)
    assert r.anomalies("duplicate_cid_in_session")
    left = {(d.conn, d.frame) for d in r.deviations("close_session_left_connection_open")}
    assert left == {(r.stream[4], 106), (r.stream[2], 111)}
    s2 = r.conn(2).session
    assert [(t.label, t.frame) for t in r.transitions(machine="session", side="target", session=s2)][-1] == (
        "N3", 111)


def test_logout_failures_truths() -> None:
    r = run("logout_failures")
    for st in (0, 2):  # s1 and s3: closed by the target after a Logout it answered 0
        s = r.sessions[r.conn(st).session]  # type: ignore[index]
        assert (s.ended, s.state_initiator, s.state_target) == ("logout", "FREE", "FREE"), s
    assert r.task(3, 0x16, "logout").outcome == "completed"
    unexpected = {(d.conn, d.expected, d.observed, d.cid) for d in r.deviations("logout_response_unexpected")}
    assert unexpected == {(r.stream[0], 1, 0, 7), (r.stream[1], 2, 0, 0)}
    wrong = r.deviations("logout_closed_wrong_connection")
    assert {(d.conn, d.frame) for d in wrong} >= {(r.stream[2], 60)}  # the carrier CID 0 was closed ...
    assert any(d.conn == r.stream[3] for d in wrong)  # ... and the named CID 1 kept working
    after = [e for e in r.of(SequenceEvent) if e.kind == "request_after_logout" and e.conn == r.stream[5]]
    assert [(e.frame, e.itt) for e in after] == [(109, 0x13), (109, 0x14)]
    for kind in ("logout_response_unexpected", "logout_closed_wrong_connection", "request_after_logout"):
        assert r.anomalies(kind), kind


def test_cmdsn_window_truths() -> None:
    r = run("cmdsn_window")
    t = r.task(0, 0x13)
    assert (t.outcome, t.unanswered_cause, t.latency_ns, t.cmdsn) == ("not_accepted", "cmdsn_above_window", 0, 132)
    oow = [e for e in r.of(SequenceEvent) if e.kind == "cmdsn_out_of_window"]
    assert [(e.frame, e.observed, e.expected) for e in oow] == [(17, 132, 3), (68, 2, 3)]
    assert "stale" in oow[1].detail
    stale = r.task(1, 0x13)
    assert (stale.outcome, stale.unanswered_cause) == ("not_accepted", "cmdsn_below_window")
    (dev,) = r.deviations("connection_dropped_on_request")
    assert dev.conn == r.stream[1] and dev.itt == 0x13 and "CmdSN 2" in dev.detail and dev.rfc == "§4.2.2.1"
    assert len(r.anomalies("cmdsn_out_of_window")) == 2 and r.anomalies("connection_dropped_on_request")


def test_nop_and_text_truths() -> None:
    r = run("nop_and_text")
    assert r.task(1, 0x14).outcome == "completed"  # the WRITE that "did not exist" completed at frame 92
    inc = r.deviations("tmf_response_inconsistent")
    assert [(d.frame, d.itt) for d in inc] == [(41, 0x14), (92, 0x14)]
    assert len(r.anomalies("tmf_response_inconsistent")) == 2
    (drop,) = r.deviations("connection_dropped_on_request")
    assert drop.itt == 0x18 and "Text Request" in drop.detail
    text = r.task(1, 0x18)
    assert (text.outcome, text.unanswered_cause) == ("open_at_conn_drop", "connection_reset_by_target")
