"""Memory over a long live run: the pipeline's per-session state must not accumulate once
ended sessions are forgotten (``Pipeline.forget``), the way ``analyzer.live`` does it.

A synthetic stream of thousands of short sessions (TCP handshake, login, a few reads, logout,
FIN; with failed logins, connections reset with commands in flight, port probes and a session
reinstatement now and then) is fed segment by segment to ``Pipeline.feed_segment``; every
simulated second the pipeline is ticked and the sessions that ended more than ``FORGET_AFTER``
ago are forgotten. tracemalloc's current traced memory after 4000 sessions must stay within
1.3x of what it was after 1000.

The TCP reassembler keeps closed flows until its flow table is full (``Options.max_flows``,
100 000 by default, then it evicts closed flows first): that is its own bound, so these
pipelines use a small ``max_flows`` to reach the plateau within the test.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import pytest
from builders import (
    data_in,
    login_request,
    login_response,
    logout_request,
    logout_response,
    scsi_command,
)

from analyzer.pipeline import Options, Pipeline
from analyzer.records import Anomaly, Record

NS = 1_000_000_000
MS = 1_000_000
SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10
INAME = "iqn.2024-01.org.example:host"
TNAME = "iqn.2024-01.org.example:disk"
CLIENT, SERVER = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
READ10 = bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0])
#: ended sessions are forgotten this long after their last activity (live: ``forget_after_s``)
FORGET_AFTER = 5 * NS
#: small flow table: the reassembler's closed flows reach their plateau early (see module doc)
MAX_FLOWS = 256

Seg = tuple[int, int, bytes, bytes, int, int, int, int, int, int, bytes]


def _cached(fn: Callable[..., bytes]) -> Callable[..., bytes]:
    """Builders memoised: sessions repeat the same PDUs, only TCP numbers and times change."""
    @cache
    def call(**kw: Any) -> bytes:
        return fn(**kw)

    return lambda **kw: call(**{k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()})


_login_req, _login_rsp = _cached(login_request), _cached(login_response)
_cmd, _din = _cached(scsi_command), _cached(data_in)
_logout_req, _logout_rsp = _cached(logout_request), _cached(logout_response)


class Stream:
    """Segments in capture order; each connection gets the next client port (cycling through
    1000, like an initiator's ephemeral ports) and the clock advances 50 us per segment."""

    def __init__(self) -> None:
        self.frame = 0
        self.ts = 1_700_000_000 * NS
        self.port = 0
        self.out: list[Seg] = []

    def conn(self) -> Conn:
        self.port += 1
        # ISNs differ per connection, as real stacks' do: a reused 4-tuple is a new connection
        isn = self.port * 2654435761 & 0xFFFFFFFF
        return Conn(self, 32768 + self.port % 1000, isn, isn ^ 0x5A5A5A5A)


class Conn:
    def __init__(self, stream: Stream, sport: int, cseq: int, sseq: int) -> None:
        self.s, self.sport = stream, sport
        self.cseq, self.sseq = cseq, sseq
        self.cmdsn, self.statsn, self.itt = 1, 1, 0x10

    def seg(self, from_client: bool, payload: bytes = b"", flags: int = PSH | ACK) -> Conn:
        s = self.s
        s.frame += 1
        s.ts += 50_000
        step = len(payload) + (1 if flags & (SYN | FIN) else 0)
        if from_client:
            s.out.append((s.frame, s.ts, CLIENT, SERVER, self.sport, 3260, self.cseq, self.sseq, flags, 500, payload))
            self.cseq = (self.cseq + step) & 0xFFFFFFFF
        else:
            s.out.append((s.frame, s.ts, SERVER, CLIENT, 3260, self.sport, self.sseq, self.cseq, flags, 500, payload))
            self.sseq = (self.sseq + step) & 0xFFFFFFFF
        return self

    def handshake(self) -> Conn:
        return self.seg(True, flags=SYN).seg(False, flags=SYN | ACK).seg(True, flags=ACK)

    def login(self, isid: int, tsih: int = 7, status_class: int = 0) -> Conn:
        keys = [("InitiatorName", INAME), ("TargetName", TNAME), ("SessionType", "Normal"),
                ("HeaderDigest", "None"), ("DataDigest", "None")]
        self.seg(True, _login_req(keys=keys, isid=isid, itt=0, cmdsn=self.cmdsn))
        rkeys = [("HeaderDigest", "None"), ("DataDigest", "None")] if status_class == 0 else []
        self.seg(False, _login_rsp(keys=rkeys, isid=isid, tsih=tsih if status_class == 0 else 0, itt=0,
                                   statsn=self.statsn, expcmdsn=self.cmdsn, maxcmdsn=self.cmdsn + 31,
                                   status_class=status_class, status_detail=3 if status_class else 0))
        if status_class == 0:
            self.statsn += 1
        return self

    def read(self, respond: bool = True) -> Conn:
        self.itt += 1
        self.seg(True, _cmd(cdb=READ10, itt=self.itt, read=True, edtl=4096, cmdsn=self.cmdsn,
                            expstatsn=self.statsn))
        self.cmdsn += 1
        if respond:
            self.seg(False, _din(itt=self.itt, status=0, statsn=self.statsn, expcmdsn=self.cmdsn,
                                 maxcmdsn=self.cmdsn + 31, data=bytes(4096)))
            self.statsn += 1
        return self

    def logout(self) -> Conn:
        self.itt += 1
        self.seg(True, _logout_req(itt=self.itt, cmdsn=self.cmdsn, expstatsn=self.statsn))
        self.seg(False, _logout_rsp(itt=self.itt, statsn=self.statsn, expcmdsn=self.cmdsn,
                                    maxcmdsn=self.cmdsn + 31))
        self.statsn += 1
        return self

    def close(self, by_client: bool = True) -> Conn:
        return self.seg(by_client, flags=FIN | ACK).seg(not by_client, flags=FIN | ACK).seg(by_client, flags=ACK)

    def reset(self) -> Conn:
        return self.seg(False, flags=RST | ACK)


def scenario(stream: Stream, i: int) -> None:
    """Session ``i`` (roughly one a second of capture time)."""
    if i % 10 == 3:  # login refused
        stream.conn().handshake().login(0x8012_3456_0003, status_class=2).close(by_client=False)
    elif i % 13 == 5:  # target resets the connection with two commands in flight: FAILED for 22 s
        stream.conn().handshake().login(0x8012_3456_0005).read().read(respond=False).read(respond=False).reset()
    elif i % 17 == 7:  # a port probe: TCP only
        stream.conn().handshake().close()
    elif i % 50 == 11:  # a second login with the same ISID reinstates a live session
        old = stream.conn().handshake().login(0x8012_3456_0011).read()
        new = stream.conn().handshake().login(0x8012_3456_0011, tsih=8)
        old.close(by_client=False)
        new.read().logout().close()
    else:
        stream.conn().handshake().login(0x8012_3456_0001).read().read().read().logout().close()


def sessions_stream(n: int) -> Iterator[tuple[int, list[Seg]]]:
    """(capture time after session i, its segments) for i in range(n)."""
    stream = Stream()
    for i in range(n):
        stream.out = []
        scenario(stream, i)
        stream.ts += NS
        yield stream.ts, stream.out


def housekeeping(pipe: Pipeline, now: int) -> list[Record]:
    """What ``LiveAnalyzer.housekeeping`` does to the pipeline every second."""
    out = pipe.tick(now)
    tracker = pipe.tracker
    open_ids = {s.session for s in tracker.sessions(live_only=True)}
    for s in tracker.sessions():
        if s.session not in open_ids and now - s.end_ts_ns >= FORGET_AFTER:
            out += pipe.forget(s.session)
    for c in tracker.connections():
        if c.session is None and c.ended != "open" and now - c.end_ts_ns >= FORGET_AFTER:
            out += pipe.forget_connection(c.conn)
    return out


def run(n: int, *, forget: bool, keep: bool = True, checkpoints: tuple[int, ...] = ()
        ) -> tuple[Pipeline, list[Anomaly], Counter[str], dict[int, int]]:
    """Feed ``n`` sessions. Returns the pipeline, its anomalies (only when ``keep``: a live run
    keeps none), their count by kind, and the traced memory at each checkpoint."""
    pipe = Pipeline(Options(max_flows=MAX_FLOWS))
    found: list[Anomaly] = []
    kinds: Counter[str] = Counter()

    def sink(recs: list[Record]) -> None:
        for r in recs:
            if isinstance(r, Anomaly):
                kinds[r.kind] += 1
                if keep:
                    found.append(r)

    mem: dict[int, int] = {}
    for i, (now, segs) in enumerate(sessions_stream(n), 1):
        for seg in segs:
            sink(pipe.feed_segment(*seg))
        sink(housekeeping(pipe, now) if forget else pipe.tick(now))
        if i in checkpoints:
            gc.collect()
            mem[i] = tracemalloc.get_traced_memory()[0]
    sink(pipe.finish())
    return pipe, found, kinds, mem


@pytest.mark.slow
def test_memory_is_flat_over_thousands_of_forgotten_sessions() -> None:
    tracemalloc.start()
    try:
        pipe, _, kinds, mem = run(4000, forget=True, keep=False, checkpoints=(1000, 4000))
    finally:
        tracemalloc.stop()
    per_session = (mem[4000] - mem[1000]) / 3000
    assert mem[4000] <= 1.3 * mem[1000], (mem, f"{per_session:.0f} bytes per session")
    # what is still known: the sessions of the last FORGET_AFTER (+ the FAILED ones' Time2Retain)
    assert len(pipe.tracker.sessions()) <= 40
    assert len(pipe.detectors.ctx.sessions) <= 40 and len(pipe.detectors.ctx.conns) <= 60
    assert len(pipe.endpoints) <= 60
    assert {"login_failed", "connection_dropped", "session_failed", "task_unanswered", "no_authentication",
            "session_reinstated"} <= set(kinds)  # the stream did exercise the rules


def _key(a: Anomaly) -> tuple[object, ...]:
    return (a.kind, a.severity, a.session, a.conn, a.message, a.frame)


def test_forgetting_changes_no_finding() -> None:
    """The same stream with and without forgetting gives the same findings (forgotten ids never
    come back, so their rate-limit counters and per-session state are not needed any more)."""
    _, kept, _, _ = run(400, forget=False)
    _, forgot, _, _ = run(400, forget=True)
    assert Counter(map(_key, forgot)) == Counter(map(_key, kept))
    assert len(kept) > 400


def test_forget_is_a_no_op_on_file_analysis_paths() -> None:
    """Without forget (file analysis) every session and endpoint is still there at the end."""
    pipe, _, _, _ = run(60, forget=False)
    # 4 of the 60 are port probes (i = 7, 24, 41, 58: no iSCSI payload, so no connection either);
    # i = 11 is a session reinstatement (two sessions, two connections)
    assert len(pipe.tracker.sessions()) == 60 - 4 + 1
    assert len(pipe.endpoints) == 60 - 4 + 1


def test_live_analyzer_forgets_through_the_pipeline() -> None:
    """``LiveAnalyzer.housekeeping`` flushes ended sessions (their final state) and makes the
    tracker, the anomaly engine and the endpoint map forget them."""
    from analyzer.live.monitor import LiveAnalyzer, LiveOptions

    eng = LiveAnalyzer(LiveOptions(forget_after_s=FORGET_AFTER / NS, max_finished=20))
    done: list[tuple[str, str, str]] = []
    eng.on_session_done = lambda s, _st: done.append((s.session, s.state_target, s.ended))
    mono = NS
    for now, segs in sessions_stream(300):
        for seg in segs:
            mono += 1000
            eng.feed(seg, mono)
        mono += now - eng.last_ts  # the rest of the simulated second passes without traffic
        eng.tick(mono)
        eng.housekeeping(mono)
    pipe = eng.pipeline
    assert len(done) == eng.sessions_forgotten >= 250
    assert {state for _, state, _ in done} == {"FREE"}  # flushed once over, with their final state
    assert {ended for _, _, ended in done} >= {"logout", "login_failed", "connection_dropped", "reinstated"}
    assert len(pipe.tracker.sessions()) <= 40 and len(pipe.detectors.ctx.sessions) <= 40
    assert len(pipe.endpoints) <= 60 and len(pipe.tracker.connections()) <= 60
    assert eng.status(mono).sessions_total == len(eng.session_views(mono)) + eng.sessions_forgotten
