"""Unit tests of the live engine without root: synthetic iSCSI traffic fed as TCP segments, or as a
pcapng stream through a pipe into ``run_live`` via a fake LiveCapture."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
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
from capture_builders import epb, ethernet, idb, ipv4, shb, tcp

from analyzer.capture.live import (
    DropStats,
    LiveCaptureError,
    capture_argv,
    default_filter,
    describe_failure,
    parse_exit_stats,
)
from analyzer.live.monitor import (
    NS,
    LiveAnalyzer,
    LiveOptions,
    LiveReport,
    LiveStatus,
    RollingStats,
    SessionStats,
    bin_value,
    latency_bin,
    run_live,
)
from analyzer.live.view import PlainView, alert_line, render, summary_lines
from analyzer.records import Anomaly
from analyzer.state.events import TaskRecord

SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10
T0 = 1_700_000_000 * NS
MS = 1_000_000
INAME = "iqn.2024-01.org.example:host"
TNAME = "iqn.2024-01.org.example:disk"

Seg = tuple[int, int, bytes, bytes, int, int, int, int, int, int, bytes]


# --------------------------------------------------------------------------- synthetic traffic


@dataclass
class Clock:
    frame: int = 0
    ts: int = T0

    def next(self, dt: int = 10_000) -> tuple[int, int]:
        self.frame += 1
        self.ts += dt
        return self.frame, self.ts


@dataclass
class Conn:
    """One iSCSI TCP connection as segments: (frame, ts, src, dst, sport, dport, seq, ack, flags, win, payload)."""

    clock: Clock
    client: bytes = bytes([10, 0, 0, 1])
    sport: int = 40000
    server: bytes = bytes([10, 0, 0, 2])
    dport: int = 3260
    cseq: int = 1000
    sseq: int = 5000
    cmdsn: int = 1
    statsn: int = 1
    itt: int = 0x10
    out: list[Seg] = field(default_factory=list)

    def _seg(self, from_client: bool, payload: bytes = b"", flags: int = PSH | ACK, dt: int = 10_000) -> None:
        f, t = self.clock.next(dt)
        if from_client:
            self.out.append((f, t, self.client, self.server, self.sport, self.dport, self.cseq, self.sseq, flags,
                             500, payload))
            self.cseq = (self.cseq + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
        else:
            self.out.append((f, t, self.server, self.client, self.dport, self.sport, self.sseq, self.cseq, flags,
                             500, payload))
            self.sseq = (self.sseq + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF

    def handshake(self) -> Conn:
        self._seg(True, flags=SYN)
        self._seg(False, flags=SYN | ACK)
        self._seg(True, flags=ACK)
        return self

    def login(self, isid: int = 0x8012_3456_0001, tsih: int = 7, target: str = TNAME, status_class: int = 0,
              status_detail: int = 0) -> Conn:
        keys = [("InitiatorName", INAME), ("TargetName", target), ("SessionType", "Normal"),
                ("HeaderDigest", "None"), ("DataDigest", "None")]
        self._seg(True, login_request(keys=keys, isid=isid, itt=0, cmdsn=self.cmdsn, expstatsn=0))
        rkeys = [("HeaderDigest", "None"), ("DataDigest", "None")] if status_class == 0 else []
        self._seg(False, login_response(keys=rkeys, isid=isid, tsih=tsih if status_class == 0 else 0, itt=0,
                                        statsn=self.statsn, expcmdsn=self.cmdsn, maxcmdsn=self.cmdsn + 31,
                                        status_class=status_class, status_detail=status_detail), dt=200_000)
        if status_class == 0:
            self.statsn += 1
        return self

    def read(self, nbytes: int = 4096, latency: int = 500_000, respond: bool = True) -> Conn:
        self.itt += 1
        cdb = bytes([0x28, 0, 0, 0, 0, 0, 0]) + (nbytes // 512).to_bytes(2, "big") + b"\0"
        self._seg(True, scsi_command(cdb=cdb, itt=self.itt, read=True, edtl=nbytes, cmdsn=self.cmdsn,
                                     expstatsn=self.statsn))
        self.cmdsn += 1
        if respond:
            self._seg(False, data_in(itt=self.itt, status=0, statsn=self.statsn, expcmdsn=self.cmdsn,
                                     maxcmdsn=self.cmdsn + 31, data=bytes(nbytes)), dt=latency)
            self.statsn += 1
        return self

    def logout(self) -> Conn:
        self.itt += 1
        self._seg(True, logout_request(itt=self.itt, cmdsn=self.cmdsn, expstatsn=self.statsn))
        self._seg(False, logout_response(itt=self.itt, statsn=self.statsn, expcmdsn=self.cmdsn,
                                         maxcmdsn=self.cmdsn + 31))
        self.statsn += 1
        return self

    def close(self) -> Conn:
        self._seg(True, flags=FIN | ACK)
        self._seg(False, flags=FIN | ACK)
        self._seg(True, flags=ACK)
        return self

    def reset(self) -> Conn:
        self._seg(True, flags=RST | ACK)
        return self


def session(clock: Clock, sport: int, n_reads: int = 5, tsih: int = 7, latency: int = 500_000) -> list[Seg]:
    c = Conn(clock, sport=sport).handshake().login(isid=0x8012_3456_0000 + sport, tsih=tsih)
    for _ in range(n_reads):
        c.read(latency=latency)
    return c.logout().close().out


def to_pcapng(segs: list[Seg]) -> bytes:
    parts = [shb(), idb(linktype=1, tsresol=9)]
    for _f, ts, src, dst, sp, dp, seq, ack, flags, win, payload in segs:
        parts.append(epb(0, ts, ethernet(ipv4(tcp(sp, dp, seq, ack, flags, win, payload), src, dst))))
    return b"".join(parts)


# --------------------------------------------------------------------------- fakes


class FakeCapture:
    """Stands in for LiveCapture: a pipe we write a pcapng into (optionally slowly)."""

    interface = "fake0"
    bpf = "tcp port 3260"
    tool = "fake"

    def __init__(self, data: bytes, *, chunk: int = 4096, delay: float = 0.0, hold_open: bool = False) -> None:
        r, w = os.pipe()
        self._r = os.fdopen(r, "rb", buffering=0)
        self._w = os.fdopen(w, "wb", buffering=0)
        self.data = data
        self.chunk = chunk
        self.delay = delay
        self.hold = threading.Event()
        if not hold_open:
            self.hold.set()
        self.stopped = False
        self.stop_calls = 0
        self._t = threading.Thread(target=self._writer, daemon=True)
        self._t.start()

    def _writer(self) -> None:
        try:
            for i in range(0, len(self.data), self.chunk):
                if self.stopped:
                    break
                self._w.write(self.data[i:i + self.chunk])
                if self.delay:
                    time.sleep(self.delay)
            self.hold.wait()
        except (BrokenPipeError, ValueError):
            pass
        finally:
            try:
                self._w.close()
            except OSError:
                pass

    @property
    def stream(self) -> Any:
        return self._r

    def running(self) -> bool:
        return not self.stopped and self._t.is_alive()

    def request_stop(self) -> None:
        self.stopped = True
        self.hold.set()

    def stop(self) -> DropStats:
        self.stop_calls += 1
        self.request_stop()
        return DropStats(10, 0, 0, None, "fake at exit", True)

    def poll_stats(self) -> DropStats:
        return DropStats(None, None, 0, None, "fake", False)

    def exit_message(self) -> str | None:
        return None


class RecordingView:
    def __init__(self) -> None:
        self.updates: list[LiveStatus] = []
        self.alerts: list[Anomaly] = []
        self.messages: list[str] = []
        self.closed: LiveStatus | None = None

    def update(self, status: LiveStatus) -> None:
        self.updates.append(status)

    def alert(self, a: Anomaly) -> None:
        self.alerts.append(a)

    def message(self, text: str) -> None:
        self.messages.append(text)

    def close(self, status: LiveStatus) -> None:
        self.closed = status


def fast_options(**kw: Any) -> LiveOptions:
    base: dict[str, Any] = {"tick_s": 0.02, "housekeeping_s": 0.05, "report_interval_s": 0.2, "drop_poll_s": 0.1}
    base.update(kw)
    return LiveOptions(**base)


def offline_kinds(segs: list[Seg]) -> tuple[set[str], list[tuple[str, str | None, str]]]:
    from analyzer.pipeline import Pipeline

    p = Pipeline()
    recs = []
    for s in segs:
        recs.extend(p.feed_segment(*s))
    recs.extend(p.finish())
    kinds = {r.kind for r in recs if isinstance(r, Anomaly)}
    sessions = sorted((r.session, r.initiator_name, r.ended) for r in recs if type(r).__name__ == "SessionSummary")
    return kinds, sessions


# --------------------------------------------------------------------------- capture helpers


def test_default_filter_and_ports() -> None:
    assert default_filter().startswith("tcp port 3260 or tcp port 860 or ")
    assert default_filter((3261, 3260)).startswith("tcp port 3260 or tcp port 860 or tcp port 3261 or ")


def test_capture_argv_dumpcap_to_stdout_and_ring(tmp_path: Path) -> None:
    from analyzer.capture.live import RingSpec

    argv = capture_argv("dumpcap", "eth0", "tcp port 3260")
    assert argv[:3] == ["dumpcap", "-q", "-i"] and argv[-2:] == ["-w", "-"]
    assert argv[argv.index("-f") + 1] == "tcp port 3260"
    ring = capture_argv("dumpcap", "eth0", "tcp port 3260", to_stdout=False, ring=RingSpec(tmp_path, 5, 3))
    assert "filesize:5000" in ring and "files:3" in ring and ring[-1] == str(tmp_path / "live.pcapng")
    td = capture_argv("tcpdump", "eth0", "tcp port 3260")
    assert "-U" in td and "--immediate-mode" in td and td[-3:] == ["-w", "-", "tcp port 3260"]


def test_parse_exit_stats() -> None:
    err = ("Capturing on 'Loopback: lo'\nFile: -\nPackets captured: 11\nPackets received/dropped on interface "
           "'Loopback: lo': 11/3 (pcap:3/dumpcap:0/flushed:0/ps_ifdrop:0) (100.0%)\n")
    assert parse_exit_stats("dumpcap", err) == (11, 3)
    td = "5 packets captured\n22 packets received by filter\n1 packet dropped by kernel\n"
    assert parse_exit_stats("tcpdump", td) == (22, 1)
    assert parse_exit_stats("dumpcap", "") == (None, None)


@pytest.mark.parametrize("stderr,kind", [
    ("Capturing on 'x'\ndumpcap: There is no device named \"x\".\n(No such device exists)\n", "interface"),
    ("tcpdump: x: No such device exists\n(No such device exists)\n", "interface"),
    ("dumpcap: You do not have permission to capture on device \"lo\".\n(socket: Operation not permitted)\n", "permission"),
    ("dumpcap: Invalid capture filter \"tcp portx\" for interface 'lo'.\n", "filter"),
    ("dumpcap: something odd\n", "failed"),
])
def test_describe_failure_is_one_line(stderr: str, kind: str) -> None:
    err = describe_failure("dumpcap" if stderr.startswith(("Capturing", "dumpcap")) else "tcpdump", "x", stderr, 1)
    assert isinstance(err, LiveCaptureError) and err.kind == kind
    assert "\n" not in str(err)


def test_missing_interface_raises_before_starting_anything() -> None:
    from analyzer.capture.live import LiveCapture, check_interface

    with pytest.raises(LiveCaptureError) as exc:
        check_interface("no-such-if-42")
    assert exc.value.kind == "interface" and "no such interface: no-such-if-42" in str(exc.value)
    cap = LiveCapture("no-such-if-42")
    with pytest.raises(LiveCaptureError):
        cap.start()
    assert cap.pids == []


def test_missing_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    from analyzer.capture import live as lc

    monkeypatch.setattr(lc.shutil, "which", lambda *a, **k: None)
    with pytest.raises(LiveCaptureError) as exc:
        lc.find_tool()
    assert exc.value.kind == "tool" and "neither dumpcap nor tcpdump" in str(exc.value)


# --------------------------------------------------------------------------- rolling statistics


def _task(end_ns: int, latency_ns: int, nbytes: int = 4096, session: str = "s1", outcome: str = "completed",
          kind: str = "scsi") -> TaskRecord:
    return TaskRecord(1, end_ns, session, "c", 1, kind, outcome, 1, 1, end_ns - latency_ns, end_ns, latency_ns,
                      False, 1, 0, read=True, bytes_in=nbytes)


def test_latency_bins_are_within_5_percent() -> None:
    for lat in (1_000, 37_000, 512_000, 1_234_567, 9_999_999_999):
        assert abs(bin_value(latency_bin(lat)) - lat) / lat < 0.05


def test_rolling_percentiles_throughput_and_iops() -> None:
    st = SessionStats(window_s=10)
    for i in range(1000):  # 100 IOPS for 10 s, 4 KiB each; latencies 1..1000 µs
        st.add(_task(T0 + i * 10 * MS, (i + 1) * 1000))
    v = st.view(T0 + 9_999 * MS)
    assert v.iops == pytest.approx(100, rel=0.01)
    assert v.mb_s == pytest.approx(100 * 4096 / 1e6, rel=0.01)
    assert v.p50_ms == pytest.approx(0.5, rel=0.05)
    assert v.p95_ms == pytest.approx(0.95, rel=0.05)
    assert v.p99_ms == pytest.approx(0.99, rel=0.05)
    assert v.samples == 1000
    # the window slides: 20 s later nothing is left, totals stay
    later = st.view(T0 + 30 * NS)
    assert later.iops == 0 and later.p50_ms is None and later.total_ios == 1000


def test_rolling_stats_skip_non_scsi_and_partial_latency() -> None:
    rs = RollingStats(60)
    rs.add(_task(T0, 1000, kind="login"))
    assert rs.view("s1", T0) is None
    rs.add(_task(T0, 5 * NS, outcome="open_at_conn_drop"))
    v = rs.view("s1", T0)
    assert v is not None and v.total_ios == 1 and v.samples == 0


def test_rolling_stats_memory_is_bounded_by_window_not_rate() -> None:
    st = SessionStats(window_s=5)
    import random

    rnd = random.Random(1)
    for i in range(50_000):  # 50k tasks over 25 s at 2000 IOPS, latencies spread over 6 decades
        st.add(_task(T0 + i * 500_000, int(10 ** rnd.uniform(3, 9))))
    assert len(st.buckets) <= 6
    assert st.size() <= 6 * (1 + 20 * 16 + 16)  # buckets + at most ~20 octaves of bins each


# --------------------------------------------------------------------------- the engine


def test_engine_matches_offline_pipeline() -> None:
    clock = Clock()
    segs = session(clock, 40001, n_reads=20) + session(clock, 40002, n_reads=3, tsih=8)
    fail = Conn(clock, sport=40003).handshake().login(target="iqn.nope", status_class=2, status_detail=3)
    segs += fail.close().out
    eng = LiveAnalyzer(fast_options())
    alerts = []
    mono = 1
    for s in segs:
        mono += 1000
        alerts += eng.feed(s, mono)
    alerts += eng.finish()
    kinds, sessions = offline_kinds(segs)
    assert {a.kind for a in alerts} == kinds
    assert "login_failed" in kinds
    assert sorted((s.session, s.initiator_name, s.ended) for s in eng.final_sessions) == sessions
    stats = eng.stats.view("s1", eng.last_ts)
    assert stats is not None and stats.total_ios == 20
    assert stats.p50_ms == pytest.approx(0.5, rel=0.05)


def test_idle_tick_maps_wall_clock_to_capture_clock() -> None:
    eng = LiveAnalyzer(fast_options(tick_grace_s=1.0))
    clock = Clock()
    c = Conn(clock, sport=40010).handshake().login()
    c.read()
    for s in c.out:
        eng.feed(s, 5 * NS)
    last = eng.last_ts
    assert eng.capture_now(5 * NS) == last
    assert eng.capture_now(8 * NS) == last + 3 * NS
    seen: list[int] = []
    eng.pipeline.tracker.tick = lambda ts: seen.append(ts) or []  # type: ignore[method-assign]
    eng.tick(5 * NS + NS // 2)  # within the grace: no tick past the last frame
    eng.tick(8 * NS)
    eng.tick(8 * NS)  # no repeated tick to the same time
    eng.tick(7 * NS)  # never backwards
    assert seen == [last, last + 2 * NS]


def test_idle_tick_fires_time_based_rules_without_frames() -> None:
    """A command that never gets an answer: offline it is reported at the end; live, idle ticks let the
    time-based rules see the capture clock move (whatever they decide, ticks never raise)."""
    eng = LiveAnalyzer(fast_options(tick_grace_s=0.0))
    clock = Clock()
    c = Conn(clock, sport=40011).handshake().login()
    c.read(respond=False)
    for s in c.out:
        eng.feed(s, NS)
    out = []
    for k in range(1, 200):
        out += eng.tick(NS + k * NS)
    assert eng.ticked_ts >= eng.last_ts + 198 * NS
    for a in out:
        assert isinstance(a, Anomaly)


def test_finished_sessions_are_flushed_and_forgotten() -> None:
    clock = Clock()
    eng = LiveAnalyzer(fast_options(forget_after_s=10.0))
    done: list[str] = []
    eng.on_session_done = lambda s, st: done.append(s.session)
    mono = NS
    for s in session(clock, 40020, n_reads=3):
        eng.feed(s, mono)
    eng.housekeeping(mono)
    assert [v.session for v in eng.session_views(mono)] == ["s1"] and not done
    eng.housekeeping(mono + 11 * NS)  # 11 s of capture clock later
    assert done == ["s1"]
    assert eng.session_views(mono + 11 * NS) == [] and "s1" not in eng.stats.sessions


def test_bounded_memory_over_many_sessions() -> None:
    clock = Clock()
    eng = LiveAnalyzer(fast_options(forget_after_s=5.0, max_anomalies=50, max_tasks=100, max_finished=20))
    flushed = []
    eng.on_session_done = lambda s, st: flushed.append(s.session)
    mono = NS
    sizes = []
    for i in range(200):
        clock.ts += NS  # one session a second
        segs = session(clock, 41000 + i, n_reads=4, tsih=i + 1)
        if i % 7 == 0:  # some failing logins too
            segs += Conn(clock, sport=50000 + i).handshake().login(target="iqn.nope", status_class=2,
                                                                    status_detail=3).close().out
        for s in segs:
            mono += 1000
            eng.feed(s, mono)
        mono += NS
        eng.housekeeping(mono)
        sizes.append(eng.memory_cells())
    last = sizes[-1]
    assert last["recent_anomalies"] <= 50 and last["recent_tasks"] <= 100
    assert last["stats_sessions"] <= 25 and last["snapshot_sessions"] <= 25
    assert len(flushed) >= 170
    # no growth in the second half
    assert max(s["stats_cells"] for s in sizes[100:]) <= max(s["stats_cells"] for s in sizes[30:100]) + 50


# --------------------------------------------------------------------------- run_live over a pipe


def _synthetic_pcapng() -> tuple[bytes, list[Seg]]:
    clock = Clock()
    segs = session(clock, 40100, n_reads=10)
    segs += Conn(clock, sport=40101).handshake().login(target="iqn.nope", status_class=2,
                                                        status_detail=3).close().out
    segs += session(clock, 40102, n_reads=5, tsih=9)
    return to_pcapng(segs), segs


def test_run_live_over_a_pipe_until_capture_end(tmp_path: Path) -> None:
    data, segs = _synthetic_pcapng()
    cap = FakeCapture(data, chunk=333)
    view = RecordingView()
    alerts_path = tmp_path / "alerts.jsonl"
    from analyzer.live.monitor import AlertSink

    sink = AlertSink(str(alerts_path))
    report = LiveReport(tmp_path / "out")
    res = run_live(cap, LiveAnalyzer(fast_options()), view, alerts=sink, report=report, install_signals=False)
    sink.close()
    report.close()
    assert res.reason == "capture_ended" and res.error is None
    kinds, sessions = offline_kinds(segs)
    rows = [json.loads(line) for line in alerts_path.read_text().splitlines()]
    assert {r["kind"] for r in rows} == kinds
    assert set(rows[0]) >= {"frame", "ts", "severity", "kind", "session", "conn", "message", "rfc", "frames",
                            "display_filter"}
    assert view.closed is not None and view.closed.frames == len(segs)
    out = tmp_path / "out"
    for name in ("live.json", "capture.json", "anomalies.jsonl", "stats.jsonl"):
        assert (out / name).exists(), name
    live = json.loads((out / "live.json").read_text())
    assert live["final"] is True and live["sessions_total"] == len(sessions)
    pd = pytest.importorskip("pandas")
    table = pd.read_parquet(out / "sessions.parquet")
    assert sorted(table["session"]) == sorted(s[0] for s in sessions)
    assert set(pd.read_parquet(out / "anomalies.parquet")["kind"]) == kinds


def test_run_live_stop_event_then_drains_and_finishes(tmp_path: Path) -> None:
    data, _ = _synthetic_pcapng()
    cap = FakeCapture(data, chunk=200, delay=0.001, hold_open=True)  # the pipe stays open until stopped
    view = RecordingView()
    stop = threading.Event()
    threading.Timer(0.8, stop.set).start()
    t0 = time.monotonic()
    res = run_live(cap, LiveAnalyzer(fast_options()), view, stop_event=stop, install_signals=False)
    assert res.reason == "signal"
    assert time.monotonic() - t0 < 5
    assert cap.stopped and view.closed is not None
    assert any("stopping" in m for m in view.messages)


def test_run_live_duration(tmp_path: Path) -> None:
    data, _ = _synthetic_pcapng()
    cap = FakeCapture(data, hold_open=True)
    view = RecordingView()
    t0 = time.monotonic()
    res = run_live(cap, LiveAnalyzer(fast_options()), view, duration=0.5, install_signals=False)
    assert res.reason == "duration" and 0.5 <= time.monotonic() - t0 < 4
    assert view.closed is not None and view.closed.sessions_total == 3


def test_run_live_bad_stream_reports_error() -> None:
    cap = FakeCapture(b"this is not a capture file at all")
    res = run_live(cap, LiveAnalyzer(fast_options()), RecordingView(), install_signals=False)
    assert res.reason == "capture_failed" and "not a pcap or pcapng file" in (res.error or "")


# --------------------------------------------------------------------------- view


def _hostile_status() -> LiveStatus:
    from analyzer.live.monitor import ConnView, SessionView, StatsView

    evil = "iqn.evil\x1b[2J\x1b]0;pwned\x07[bold]x[/bold]\u202e"
    st = StatsView(10, 1.5, 1.0, 0.5, 0.2, 0.9, 2.0, 100, 1000, 10**6, 10)
    sv = SessionView("s1", "Normal", evil, "iqn.t", "open", "LOGGED_IN", "LOGGED_IN",
                     (ConnView("10.0.0.1:1->10.0.0.2:3260", "LOGGED_IN", "LOGGED_IN", "open"),), st, 5, T0)
    a = Anomaly(3, T0, "login_failed", "error", "s1", "c", "bad \x1b[31mred\x1b[0m name", "§11.13.5", (3,))
    return LiveStatus(interface="lo", bpf="tcp port 3260", tool="dumpcap", sessions=[sv], anomalies=[a],
                      sessions_total=1, sessions_open=1, anomaly_counts={"error": 1},
                      incomplete=["the capture dropped 3 packets (kernel buffer full)"])


def test_plain_view_strips_control_characters() -> None:
    buf = io.StringIO()
    view = PlainView(buf, status_every_s=0)
    status = _hostile_status()
    view.alert(status.anomalies[0])
    view.update(status)
    view.close(status)
    text = buf.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "ALERT" in text and "login_failed" in text and "INCOMPLETE" in text
    assert "p50 0.200" in text and "10 IOPS" in text
    assert alert_line(status.anomalies[0]).count("\n") == 0
    assert summary_lines(status)[0].startswith("live lo (dumpcap)")


def test_rich_render_strips_control_characters_and_markup() -> None:
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None, force_terminal=False).print(render(_hostile_status()))
    text = buf.getvalue()
    assert "\x1b" not in text and "\u202e" not in text
    assert "[bold]x[/bold]" in text  # shown literally, not interpreted as markup
    assert "LOGGED_IN" in text and "login_failed" in text
