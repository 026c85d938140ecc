"""Terminal view of the live analysis: a rich ``Live`` dashboard on a terminal, plain lines otherwise.

The dashboard shows the capture (interface, filter, drops, backlog), every session with its
connections' states, throughput, IOPS and latency percentiles over the rolling window, and the
most recent anomalies. When the output is not a terminal (a pipe, a log file, systemd), the
view prints one line per alert as it appears and a status block every ``status_every_s``.

Every capture-derived string (names, aliases, messages, connection ids) goes through
``analyzer.render.output.terminal_safe`` and into rich ``Text`` objects, never into markup, so a
TargetAlias with escape sequences or ``[bold]`` cannot steer the terminal or the layout.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from analyzer.live.engine import LiveStatus, SessionView
from analyzer.live.stats import StatsView
from analyzer.records import Anomaly
from analyzer.render.output import terminal_safe

_SEV_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
_MAX_SESSIONS_SHOWN = 30
_MAX_ANOMALIES_SHOWN = 8


def safe(value: Any, width: int | None = None) -> str:
    """``terminal_safe(str(value))`` ("" for None), cut to ``width`` with an ellipsis."""
    if value is None:
        return ""
    text = terminal_safe(str(value))
    if width is not None and len(text) > width:
        text = text[: max(1, width - 1)] + "…"
    return text


def fmt_ts(ts_ns: int) -> str:
    """Local wall time of a capture timestamp, ``HH:MM:SS.mmm``."""
    if not ts_ns:
        return "-"
    sec, ns = divmod(ts_ns, 1_000_000_000)
    return time.strftime("%H:%M:%S", time.localtime(sec)) + f".{ns // 1_000_000:03d}"


def fmt_duration(seconds: float) -> str:
    """``1d 02:03:04`` / ``02:03:04``."""
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def fmt_ms(v: float | None) -> str:
    """Latency in ms with sensible precision ("-" when unknown)."""
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 1 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def state_text(v: SessionView) -> str:
    """Session state: one value when both sides agree, else ``initiator/target``."""
    if v.state_initiator == v.state_target:
        return v.state_target
    return f"{v.state_initiator}/{v.state_target}"


def conn_text(v: SessionView) -> str:
    """Connections and their (target-side, initiator-side when different) states."""
    parts = []
    for c in v.connections:
        st = c.state_target if c.state_initiator == c.state_target else f"{c.state_initiator}/{c.state_target}"
        client = c.conn.split("->", 1)[0]
        parts.append(f"{client} {st}")
    return ", ".join(parts)


def stats_cells(st: StatsView | None) -> tuple[str, str, str, str, str]:
    """(MB/s, IOPS, p50, p95, p99) cells."""
    if st is None:
        return "-", "-", "-", "-", "-"
    return f"{st.mb_s:.2f}", f"{st.iops:.0f}", fmt_ms(st.p50_ms), fmt_ms(st.p95_ms), fmt_ms(st.p99_ms)


def drops_text(status: LiveStatus) -> str:
    """What is known about capture loss, in words."""
    d = status.drops or {}
    parts = []
    if d.get("dropped") is not None:
        of = f" of {d['received']}" if d.get("received") is not None else ""
        parts.append(f"dropped {d['dropped']}{of}" + ("" if d.get("final") else " so far"))
    elif d.get("source"):
        parts.append(str(d["source"]))
    if d.get("if_dropped"):
        parts.append(f"interface dropped {d['if_dropped']}")
    if d.get("ring_dropped"):
        parts.append(f"ring dropped {d['ring_dropped']}")
    if status.tcp_gaps:
        parts.append(f"{status.tcp_gaps} TCP gaps ({status.gap_bytes} B)")
    return "; ".join(parts) or "none known"


def alert_line(a: Anomaly) -> str:
    """One plain line for an alert."""
    where = " ".join(x for x in (safe(a.session), safe(a.conn)) if x)
    return (f"ALERT {fmt_ts(a.ts_ns)} {a.severity.upper():7s} {safe(a.kind)}"
            f"{' [' + where + ']' if where else ''}: {safe(a.message)} ({safe(a.display_filter)})")


def summary_lines(status: LiveStatus) -> list[str]:
    """Plain-text status block (used by the plain view and after the dashboard closes)."""
    counts = ", ".join(f"{n} {sev}" for sev in ("error", "warning", "info")
                       if (n := status.anomaly_counts.get(sev)))
    lines = [
        f"live {safe(status.interface)} ({status.tool}) up {fmt_duration(status.uptime_s)}: "
        f"{status.frames} frames, {status.pdus} PDUs, {status.sessions_open} open / {status.sessions_total} "
        f"sessions, anomalies: {counts or 'none'}; drops: {drops_text(status)}; backlog {status.backlog}"
        + (f", lag {status.lag_s:.1f} s" if status.lag_s else "") + f"; behind: {'yes' if status.behind else 'no'}"
        + (f"; snaplen {status.snaplen} (headers only)" if status.snaplen else "")
    ]
    for v in status.sessions[:_MAX_SESSIONS_SHOWN]:
        mb, iops, p50, p95, p99 = stats_cells(v.stats)
        lines.append(
            f"  {safe(v.session)} {safe(v.session_type)} {safe(v.initiator, 60) or '?'} -> "
            f"{safe(v.target, 60) or '?'} {state_text(v)} ended={v.ended} conns=[{safe(conn_text(v), 120)}] "
            f"{mb} MB/s {iops} IOPS lat ms p50 {p50} p95 {p95} p99 {p99} tasks {v.tasks}")
    if len(status.sessions) > _MAX_SESSIONS_SHOWN:
        lines.append(f"  ... and {len(status.sessions) - _MAX_SESSIONS_SHOWN} more sessions")
    for reason in status.incomplete:
        lines.append(f"  INCOMPLETE: {safe(reason)}")
    return lines


class PlainView:
    """Line output for pipes and log files: alerts at once, a status block every ``status_every_s``."""

    def __init__(self, out: IO[str] | None = None, status_every_s: float = 10.0) -> None:
        self.out = out or sys.stdout
        self.status_every_s = status_every_s
        self._next = time.monotonic() + status_every_s

    def _print(self, line: str) -> None:
        try:
            self.out.write(line + "\n")
            self.out.flush()
        except BrokenPipeError:
            pass

    def update(self, status: LiveStatus) -> None:
        """Print the status block when it is due."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.status_every_s
        for line in summary_lines(status):
            self._print(line)

    def alert(self, a: Anomaly) -> None:
        """One line per alert, at once."""
        self._print(alert_line(a))

    def message(self, text: str) -> None:
        """A note from the engine (stopping, errors)."""
        self._print(f"live: {safe(text)}")

    def close(self, status: LiveStatus) -> None:
        """The final status block."""
        self._print("final:")
        for line in summary_lines(status):
            self._print(line)


class RichView:
    """The rich dashboard (``rich.live.Live``), refreshed from the run loop (no refresh thread)."""

    def __init__(self, out: IO[str] | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=out or sys.stdout, highlight=False, markup=False, emoji=False)
        self.live = Live(console=self.console, auto_refresh=False, transient=False,
                         redirect_stdout=False, redirect_stderr=False)
        self.live.start()
        self._last: LiveStatus | None = None

    def update(self, status: LiveStatus) -> None:
        """Redraw with the new status."""
        self._last = status
        self.live.update(render(status), refresh=True)

    def alert(self, a: Anomaly) -> None:
        """Alerts show up in the anomalies panel at the next refresh (at most ``housekeeping_s`` later)."""

    def message(self, text: str) -> None:
        """Printed above the dashboard."""
        from rich.text import Text

        self.live.console.print(Text(f"live: {safe(text)}"))

    def close(self, status: LiveStatus) -> None:
        """Final redraw, stop the dashboard, print the plain summary after it."""
        self.live.update(render(status), refresh=True)
        self.live.stop()
        from rich.text import Text

        for line in summary_lines(status):
            self.console.print(Text(line))


def render(status: LiveStatus) -> Any:
    """The dashboard renderable for one status."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    head = Text()
    head.append("iscsi-analyzer live ", style="bold")
    head.append(f"{safe(status.interface)} ({safe(status.tool)})  filter: {safe(status.bpf)}\n")
    head.append(f"up {fmt_duration(status.uptime_s)}  capture clock {fmt_ts(status.capture_ts_ns)}  "
                f"frames {status.frames}  PDUs {status.pdus}  sessions {status.sessions_open} open / "
                f"{status.sessions_total}  ")
    for sev in ("error", "warning", "info"):
        n = status.anomaly_counts.get(sev, 0)
        if n:
            head.append(f"{n} {sev}  ", style=_SEV_STYLE[sev])
    head.append(f"\ndrops: {drops_text(status)}  backlog {status.backlog}")
    if status.lag_s:
        head.append(f"  lag {status.lag_s:.1f} s")
    if status.behind:
        head.append("  behind", style="bold red")
    else:
        head.append("  keeping up")
    if status.snaplen:
        head.append(f"  snaplen {status.snaplen} (headers only)")
    if status.stopping:
        head.append("  stopping…", style="bold")
    if not status.capture_running and not status.stopping:
        head.append("  capture not running", style="bold red")
    for reason in status.incomplete:
        head.append(f"\nINCOMPLETE: {safe(reason)}", style="bold red" if status.behind else "red")

    sessions = Table(title="sessions", title_justify="left", expand=True, pad_edge=False)
    for col, kw in (("session", {}), ("initiator → target", {"ratio": 3, "overflow": "fold"}),
                    ("state", {}), ("connections", {"ratio": 2, "overflow": "fold"}),
                    ("MB/s", {"justify": "right"}), ("IOPS", {"justify": "right"}),
                    ("p50 ms", {"justify": "right"}), ("p95 ms", {"justify": "right"}),
                    ("p99 ms", {"justify": "right"}), ("tasks", {"justify": "right"})):
        sessions.add_column(col, **kw)  # type: ignore[arg-type]
    for v in status.sessions[:_MAX_SESSIONS_SHOWN]:
        mb, iops, p50, p95, p99 = stats_cells(v.stats)
        style = "dim" if v.ended != "open" else ""
        sessions.add_row(Text(safe(v.session)),
                         Text(f"{safe(v.initiator) or '?'} → {safe(v.target) or '?'}"),
                         Text(state_text(v) + ("" if v.ended == "open" else f" ({v.ended})")),
                         Text(safe(conn_text(v))), Text(mb), Text(iops), Text(p50), Text(p95), Text(p99),
                         Text(str(v.tasks)), style=style)
    if len(status.sessions) > _MAX_SESSIONS_SHOWN:
        sessions.caption = f"{len(status.sessions) - _MAX_SESSIONS_SHOWN} more sessions not shown"

    anomalies = Table(title="recent anomalies", title_justify="left", expand=True, pad_edge=False)
    anomalies.add_column("time")
    anomalies.add_column("severity")
    anomalies.add_column("kind")
    anomalies.add_column("session")
    anomalies.add_column("message", ratio=1, overflow="fold")
    for a in status.anomalies[:_MAX_ANOMALIES_SHOWN]:
        anomalies.add_row(Text(fmt_ts(a.ts_ns)), Text(a.severity, style=_SEV_STYLE.get(a.severity, "")),
                          Text(safe(a.kind)), Text(safe(a.session)), Text(safe(a.message)))
    return Group(head, sessions, anomalies)


def make_view(out: IO[str] | None = None, *, plain: bool = False, status_every_s: float = 10.0) -> Any:
    """RichView on a terminal, PlainView otherwise (or when ``plain``)."""
    stream = out or sys.stdout
    isatty = getattr(stream, "isatty", None)
    if not plain and callable(isatty) and isatty():
        return RichView(stream)
    return PlainView(stream, status_every_s)
