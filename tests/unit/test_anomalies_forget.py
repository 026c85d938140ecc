"""AnomalyEngine.forget: what the context and the rules keep for a session goes with it, and
forgetting changes no finding (live capture over days)."""

from __future__ import annotations

from collections.abc import Iterable

from test_anomalies_support import CONN, CONN2, MS, Flow, S, Wire, kinds, logged_in, login, only

from analyzer.anomalies import AnomalyEngine
from analyzer.anomalies.rules.sessions import ReinstatementRule
from analyzer.records import I2T, T2I, Anomaly, Record
from analyzer.state.events import SequenceEvent
from analyzer.state.tracker import SessionTracker

CONN4 = "10.0.0.1:40003->10.0.0.2:3260"
CONN5 = "10.0.0.7:40004->10.0.0.2:3260"
OTHER_ISID = 0x400001370077
#: rule attributes that are not per session or connection (bounded by design)
_SHARED = {"_peers", "_max_reported"}


class Live:
    """Tracker + engine fed like the pipeline does, forgetting ended sessions like live does."""

    def __init__(self, forget: bool = True) -> None:
        self.tracker, self.engine, self.forget = SessionTracker(), AnomalyEngine(), forget
        self.out: list[Anomaly] = []

    def feed(self, records: Iterable[Record]) -> Live:
        for r in records:
            for derived in self.tracker.feed(r):
                self.out += self.engine.feed(derived)
            self.out += self.engine.feed(r)
        return self

    def tick(self, ts: int) -> Live:
        for derived in self.tracker.tick(ts):
            self.out += self.engine.feed(derived)
        self.out += self.engine.tick(ts)
        if self.forget:
            open_ids = {s.session for s in self.tracker.sessions(live_only=True)}
            for s in self.tracker.sessions():
                if s.session not in open_ids:
                    conns = self.tracker.session_connections(s.session)
                    self.tracker.forget(s.session)
                    self.out += self.engine.forget(s.session, conns)
        return self

    def finish(self, ts: int) -> list[Anomaly]:
        for derived in self.tracker.finish(ts):
            self.out += self.engine.feed(derived)
        self.out += self.engine.finish(ts)
        return self.out


def _per_session_state(engine: AnomalyEngine) -> dict[str, int]:
    sizes = {"ctx.conns": len(engine.ctx.conns), "ctx.sessions": len(engine.ctx.sessions),
             "ctx._owned": len(engine.ctx._owned), "ctx._suppressed": len(engine.ctx._suppressed)}
    for rule in engine.rules:
        for name, value in vars(rule).items():
            if isinstance(value, (dict, set, list)) and name not in _SHARED:
                sizes[f"{type(rule).__name__}.{name}"] = len(value)
    return {k: v for k, v in sizes.items() if v}


def test_forget_gives_held_back_findings_at_once_and_not_again_at_finish() -> None:
    engine = AnomalyEngine()
    out: list[Anomaly] = []
    for i in range(8):  # statsn_gap is limited to 5 per connection
        out += engine.feed(SequenceEvent(10 + i, (10 + i) * MS, "s1", CONN, "statsn_gap", 5 + 2 * i, 6 + 2 * i,
                                         "StatSN jumped", 0x10 + i, None))
    assert len(only(out, "statsn_gap")) == 5
    (summary,) = engine.forget("s1", [CONN])
    assert summary.kind == "statsn_gap" and summary.message.startswith("3 more findings")
    assert summary.conn == CONN and summary.frame == 15
    assert engine.finish(100 * MS) == []
    assert _per_session_state(engine) == {}


def test_forget_drops_what_rules_keep_for_a_dropped_session() -> None:
    w = Wire()
    live = Live()
    f, recs = logged_in(w)
    itt = f.new_itt()
    live.feed([*recs, f.scsi_cmd(itt), f.scsi_cmd(), f.rst(T2I), f.closed("rst")])
    assert {"connection_dropped", "session_failed", "task_unanswered"} <= set(kinds(live.out))
    assert _per_session_state(live.engine)  # the drop left per-connection and per-session state
    live.tick(w.ts + 10 * S)  # still FAILED (Time2Wait + Time2Retain = 22 s): kept
    assert live.tracker.sessions() and "s1" in live.engine.ctx.sessions
    live.tick(w.ts + 30 * S)  # FREE: forgotten
    assert live.tracker.sessions() == [] and _per_session_state(live.engine) == {}


def test_reinstatement_fight_history_is_bounded_and_findings_unchanged() -> None:
    """duplicate_session keeps reinstatement times per nexus for 120 s: after that they are
    dropped (at the next forget), which cannot change a finding."""
    def scenario(live: Live) -> list[Anomaly]:
        w = Wire()
        a, recs = logged_in(w)
        b = Flow(w, conn=CONN2)
        c = Flow(w, conn="10.0.0.1:40002->10.0.0.2:3260")
        recs += [b.opened(), *login(b), c.opened(), *login(c), a.fin(T2I), a.fin(I2T), a.closed(),
                 b.fin(T2I), b.fin(I2T), b.closed()]
        rule = next(r for r in live.engine.rules if isinstance(r, ReinstatementRule))
        live.feed(recs).tick(w.ts + 30 * S)
        assert len(rule._fights) == 1  # a and b are forgotten, the fight window is still open
        w.advance(200 * S)
        e = Flow(w, conn=CONN5)  # an unrelated short session, forgotten at the next tick
        req = e.logout_req(reason=0)
        live.feed([e.opened(), *login(e, isid=OTHER_ISID, tsih_assigned=0x30), req, e.logout_rsp(req.itt),
                   e.fin(I2T), e.fin(T2I), e.closed()]).tick(w.ts + S)
        assert len(rule._fights) == (0 if live.forget else 1)
        d = Flow(w, conn=CONN4)  # one more reinstatement of the live session, 200 s later: no fight
        live.feed([d.opened(), *login(d), c.fin(T2I), c.fin(I2T), c.closed()]).tick(w.ts + S)
        return live.finish(w.ts + 2 * S)

    kept, forgot = scenario(Live(forget=False)), scenario(Live(forget=True))
    assert [a.message.split(":")[0] for a in only(kept, "duplicate_session")] == [
        "Reinstatement fight", "2 concurrent sessions from iqn.2016-04.com.example"]  # (e while c is up)
    assert kinds(kept)["session_reinstated"] == 3
    assert sorted((a.kind, a.session, a.message) for a in forgot) == sorted((a.kind, a.session, a.message)
                                                                          for a in kept)


def test_forget_connection_without_session() -> None:
    w = Wire()
    live = Live()
    probe = Flow(w, conn=CONN4)
    live.feed([probe.opened(), probe.fin(I2T), probe.fin(T2I), probe.closed()])
    assert CONN4 in live.engine.ctx.conns
    assert live.engine.forget_connection(CONN4) == []
    assert _per_session_state(live.engine) == {}
