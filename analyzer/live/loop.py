"""The live run loop: the capture pipe read in one thread, with ticks, housekeeping, the view and
the report sinks run while it waits for bytes (theory of operation: ``analyzer.live.engine``)."""

from __future__ import annotations

import fcntl
import select
import struct
import termios
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from analyzer.live.engine import LiveAnalyzer, LiveStatus
from analyzer.live.signals import StopSignals
from analyzer.live.sinks import AlertSink, LiveReport
from analyzer.live.stats import NS
from analyzer.records import Anomaly


class View(Protocol):
    """What the run loop needs from the terminal view (``analyzer.live.view``)."""

    def update(self, status: LiveStatus) -> None: ...
    def alert(self, a: Anomaly) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self, status: LiveStatus) -> None: ...


class CaptureSource(Protocol):
    """What the run loop needs from ``LiveCapture`` (a fake in the unit tests)."""

    interface: str
    bpf: str
    tool: str

    @property
    def stream(self) -> Any: ...
    def running(self) -> bool: ...
    def stop(self) -> Any: ...
    def poll_stats(self) -> Any: ...
    def exit_message(self) -> str | None: ...


@dataclass
class LiveResult:
    """How the run ended."""

    reason: str  #: "signal", "duration", "capture_ended", "capture_failed"
    error: str | None  #: one line when the capture failed by itself
    status: LiveStatus
    alerts: int
    abandoned_backlog: int = 0  #: bytes left unread in the pipe after a second signal


class _Abandon(Exception):
    """Second signal: stop reading at once."""


class _LoopStream:
    """The capture pipe as the reader sees it; while it waits for bytes, the run loop's idle work runs.

    ``open_capture``/``iter_tcp`` pull chunks with ``read``; we wait for the pipe with ``select``
    (``tick_s`` timeout) and call ``idle()`` on every timeout and ``busy()`` before every chunk, so
    ticks, statistics, the view and the reports run from inside the read. One thread, no queue:
    the pipe (enlarged to 1 MiB by LiveCapture) and the kernel's capture buffer are the backlog.
    """

    def __init__(self, src: Any, timeout: float, idle: Callable[[], None], busy: Callable[[], None]) -> None:
        self.src = src
        self.name = str(getattr(src, "name", "<live>"))
        self.timeout = timeout
        self.idle = idle
        self.busy = busy
        self.abandoned = False
        try:
            self.fd: int | None = src.fileno()
        except (AttributeError, OSError, ValueError):
            self.fd = None

    def read(self, n: int = -1) -> bytes:
        if self.abandoned:
            return b""
        try:
            if self.fd is not None and not getattr(self.src, "buffered", 0):
                while not select.select([self.fd], [], [], self.timeout)[0]:
                    self.idle()
            self.busy()
            return self.src.read(n if n > 0 else 1 << 20) or b""
        except _Abandon:
            self.abandoned = True
            return b""
        except (OSError, ValueError):  # pipe closed under us
            return b""

    def capacity(self) -> int:
        """Size of the pipe (F_GETPIPE_SZ), 0 if unknown."""
        if self.fd is None:
            return 0
        try:
            return int(fcntl.fcntl(self.fd, getattr(fcntl, "F_GETPIPE_SZ", 1032)))
        except OSError:
            return 0

    def pending(self) -> int:
        """Bytes waiting in the pipe (FIONREAD), 0 if unknown."""
        if self.fd is None:
            return 0
        try:
            buf = fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0")
            return int(struct.unpack("i", buf)[0])
        except OSError:
            return 0


def run_live(capture: CaptureSource, engine: LiveAnalyzer, view: View, *, alerts: AlertSink | None = None,
             report: LiveReport | None = None, duration: float | None = None,
             install_signals: bool = True, stop_event: threading.Event | None = None,
             signals: StopSignals | None = None, stop_timeout: float = 10.0) -> LiveResult:
    """Analyse ``capture`` (already started) until a signal, ``duration`` or the capture's end.

    SIGINT/SIGTERM (first; or ``stop_event``): stop the capture, analyse what it delivered, write
    the final report. A second signal abandons what is still unread and finishes at once. Pass
    ``signals`` when the caller installed them already (before starting the capture); otherwise
    they are installed here when ``install_signals``, and restored at the end.
    """
    from analyzer.capture import CaptureError, iter_tcp, open_capture

    opts = engine.options
    own_signals = signals is None
    sig = signals or StopSignals()
    if own_signals and install_signals:
        sig.install()
    if engine.on_session_done is None and report is not None:
        engine.on_session_done = report.session_done

    mono = time.monotonic_ns
    start = mono()
    stop_at = 0  # monotonic time the stop was requested
    term_at = 0  # monotonic time the capture tool gets SIGTERM (stop_at + grace)
    termed = False
    reason = "capture_ended"
    error: str | None = None
    n_alerts = 0
    drops: dict[str, Any] = {}
    drops_new = 0  # dropped since the previous poll
    tick_ns = int(opts.tick_s * NS)
    due = {"tick": start + tick_ns, "house": start, "drop": start,
           "report": start + int(opts.report_interval_s * NS)}
    stream: _LoopStream

    sinks = [s for s in (alerts, report) if s is not None]

    def emit(found: Iterable[Anomaly]) -> None:
        nonlocal n_alerts
        for a in found:
            n_alerts += 1
            if alerts is not None:
                alerts.write(a)
            if report is not None:
                report.anomaly(a)
            view.alert(a)

    def status(now: int) -> LiveStatus:
        st = engine.status(now)
        st.interface, st.bpf, st.tool = capture.interface, capture.bpf, capture.tool
        st.uptime_s = (now - start) / NS
        st.drops = drops
        st.drops_new = drops_new
        st.snaplen = int(getattr(capture, "snaplen", 0) or 0)
        st.backlog = stream.pending()
        st.pipe_size = pipe_size
        st.lag_s = max(0.0, (time.time_ns() - engine.last_ts) / NS) if engine.last_ts and st.backlog else 0.0
        # behind: the frames being analysed are old, the pipe is filling up, or the kernel is dropping
        st.behind = (st.lag_s > opts.behind_lag_s or drops_new > 0
                     or bool(pipe_size and st.backlog >= opts.behind_fill * pipe_size))
        st.capture_running = capture.running()
        st.stopping = bool(stop_at)
        st.incomplete = _incomplete(st, error)
        return st

    def begin_stop(why: str) -> None:
        nonlocal stop_at, term_at, reason
        if stop_at:
            return
        stop_at = mono()
        term_at = stop_at + int(opts.stop_grace_s * NS)
        reason = why
        view.message(f"stopping ({why}): ending the capture, analysing what it delivered")

    def terminate() -> None:
        nonlocal termed
        termed = True
        request = getattr(capture, "request_stop", None)
        if callable(request):
            request()  # no wait: we keep draining the pipe while the tool flushes and exits
        else:
            capture.stop()

    def periodic(idle: bool) -> None:
        nonlocal drops, drops_new
        now = mono()
        if (sig.count or (stop_event is not None and stop_event.is_set())) and not stop_at:
            begin_stop("signal")
        if sig.count >= 2:
            raise _Abandon
        if duration is not None and not stop_at and now - start >= duration * NS:
            begin_stop("duration")
        if stop_at and not termed and now >= term_at:
            terminate()
        if stop_at and now - stop_at > stop_timeout * NS:
            capture.stop()  # the tool ignored SIGTERM: stop() escalates to SIGKILL; EOF follows
        if idle:
            emit(engine.tick(now, idle=True))
        elif now >= due["tick"]:
            due["tick"] = now + tick_ns
            emit(engine.tick(now, idle=False))
        if now >= due["drop"] and not stop_at:
            due["drop"] = now + int(opts.drop_poll_s * NS)
            try:
                new = _drops_dict(capture.poll_stats())
            except Exception:  # noqa: BLE001 - statistics are best effort
                new = drops
            before, after = drops.get("dropped"), new.get("dropped")
            drops_new = after - before if isinstance(after, int) and isinstance(before, int) else 0
            if drops_new > 0 and not drops_seen:
                drops_seen.append(True)
                hint = "" if getattr(capture, "snaplen", 0) else (
                    "; --snaplen 1024 saves some work at the price of PDUs whose header is cut off "
                    "(see the README); a --ring capture keeps its own copy")
                view.message(f"the capture is dropping packets: the analysis cannot keep up (drops are counted "
                             f"in the status){hint}")
            drops = new
        if now >= due["house"]:
            due["house"] = now + int(opts.housekeeping_s * NS)
            emit(engine.housekeeping(now))
            view.update(status(now))
        if report is not None and now >= due["report"]:
            due["report"] = now + int(opts.report_interval_s * NS)
            report.write(engine, status(now))
        sink_news()

    def sink_news() -> None:
        for sink in sinks:
            for text in sink.health.pop_news():
                view.message(text)

    stream = _LoopStream(capture.stream, opts.tick_s, lambda: periodic(True), lambda: periodic(False))
    pipe_size = stream.capacity()
    drops_seen: list[bool] = []  # the "dropping" message is said once
    reader: Any = None
    try:
        try:
            reader = open_capture(stream, vxlan_ports=tuple(opts.vxlan_ports))
            feed = engine.feed
            for seg in iter_tcp(reader):
                emit(feed(seg, mono()))
        except CaptureError as exc:
            if not stop_at and not stream.abandoned:
                error = str(exc)
        if not stop_at and not stream.abandoned:
            error = error or capture.exit_message()
            reason = "capture_failed" if error else "capture_ended"
        if reader is not None and not stop_at:
            for d in getattr(reader, "damage", ()):
                error = error or d.message
    finally:
        if own_signals:
            sig.restore()
        final = capture.stop()
        if final is not None:
            drops = _drops_dict(final)
        if reader is not None:
            reader.close()
    abandoned = stream.pending() if stream.abandoned else 0
    emit(engine.finish())
    end = mono()
    emit(engine.housekeeping(end))
    st = status(end)
    st.capture_running = False
    st.backlog = abandoned
    if stream.abandoned:
        st.incomplete.append(f"stopped without analysing the rest of the capture ({abandoned} bytes were "
                             f"still in the pipe; second interrupt)")
    lost = [line for sink in sinks if (line := sink.health.summary())]
    st.incomplete.extend(lost)
    if report is not None:
        report.write(engine, st, final=True)
        line = report.health.summary()
        if line and line not in lost:  # the final write failed too: say it on the terminal
            st.incomplete = [x for x in st.incomplete if x not in lost] + [
                x for x in (alerts.health.summary() if alerts else None, line) if x]
    sink_news()
    view.close(st)
    return LiveResult(reason, error, st, n_alerts, abandoned)


def _drops_dict(d: Any) -> dict[str, Any]:
    if d is None:
        return {}
    as_dict = getattr(d, "as_dict", None)
    return dict(as_dict()) if callable(as_dict) else dict(d)


def _incomplete(st: LiveStatus, error: str | None) -> list[str]:
    out = []
    dropped = st.drops.get("dropped")
    if dropped:
        received = st.drops.get("received")
        of = f" of {received}" if received else ""
        out.append(f"the capture dropped {dropped}{of} packets (kernel buffer full"
                   + (f", {st.drops_new} in the last poll)" if st.drops_new > 0 and not st.drops.get("final") else ")"))
    if st.drops.get("if_dropped"):
        out.append(f"the interface dropped {st.drops['if_dropped']} packets")
    if st.drops.get("ring_dropped"):
        out.append(f"the ring-buffer capture dropped {st.drops['ring_dropped']} packets")
    if st.snaplen:
        out.append(f"--snaplen {st.snaplen}: frames are cut to {st.snaplen} bytes, so PDUs whose header starts "
                   f"further into a frame (behind another PDU's data) are not decoded")
    if st.tcp_gaps:
        out.append(f"{st.tcp_gaps} TCP gaps ({st.gap_bytes} bytes never captured)")
    if st.behind:
        out.append(f"analysis is behind: {st.backlog} bytes waiting in the pipe"
                   + (f" of {st.pipe_size}" if st.pipe_size else "") + f", {st.lag_s:.1f} s lag")
    if error:
        out.append(error)
    return out
