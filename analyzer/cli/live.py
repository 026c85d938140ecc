"""``iscsi-analyzer live``: analyse a running capture (registered with ``cli.add_command(live)``).

Exit status: 0 after a normal stop (SIGINT/SIGTERM, ``--duration``, the capture ended);
2 with one line on stderr when the capture cannot run (no such interface, no permission,
dumpcap/tcpdump missing, bad filter, unwritable output) or fails while running.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

EXIT_INPUT = 2


class LiveError(click.ClickException):
    """One line on stderr, exit status 2."""

    exit_code = EXIT_INPUT

    def show(self, file: Any = None) -> None:
        from analyzer.render.output import safe_line

        click.echo(f"iscsi-analyzer: {safe_line(self.format_message())}", err=True)


@click.command("live", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-i", "--interface", required=True, help="Interface to capture on (e.g. eth0, lo, any).")
@click.option("-f", "--filter", "bpf", default=None, metavar="BPF",
              help="Capture filter; replaces the default (the iSCSI ports 3260, 860 and --port, plus "
                   "GRE/ERSPAN, VXLAN, IP-in-IP, MPLS, PPPoE and IP fragments, which are decapsulated).")
@click.option("--vxlan-port", "vxlan_ports", multiple=True, type=click.IntRange(1, 65535),
              help="Also capture and decode this UDP port as VXLAN (4789 always is; repeatable, e.g. 8472).")
@click.option("--snaplen", type=click.IntRange(0, 262144), default=0, show_default=True, metavar="BYTES",
              help="Analyse only the first BYTES of every frame (headers; 256 fits Ethernet+IP+TCP+BHS) to keep "
                   "up with more traffic; payload-dependent checks see snaplen gaps. The --ring capture "
                   "stays complete. 0: whole frames.")
@click.option("--port", "ports", multiple=True, type=click.IntRange(1, 65535),
              help="Also capture and treat this TCP port as iSCSI (repeatable).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None, metavar="S",
              help="Stop after S seconds (default: until SIGINT/SIGTERM).")
@click.option("--alerts", "alerts_target", default=None, metavar="FILE|-",
              help="Write every anomaly as a JSON line to FILE (appended) or '-' for stdout.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the report tables here, every --report-interval seconds and at exit.")
@click.option("--report-interval", type=click.FloatRange(min=1), default=60.0, show_default=True, metavar="S")
@click.option("--ring", "ring_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also keep the raw capture in a ring buffer of files in this directory.")
@click.option("--ring-size", type=click.IntRange(1), default=100, show_default=True, metavar="MB",
              help="Size of each ring file.")
@click.option("--ring-files", type=click.IntRange(2), default=10, show_default=True, metavar="N",
              help="Number of ring files kept.")
@click.option("--window", type=click.FloatRange(min=1), default=60.0, show_default=True, metavar="S",
              help="Sliding window of the throughput/IOPS/latency statistics.")
@click.option("--tool", type=click.Choice(["dumpcap", "tcpdump"]), default=None,
              help="Capture tool (default: dumpcap, else tcpdump).")
@click.option("--buffer", "buffer_mib", type=click.IntRange(1), default=32, show_default=True, metavar="MiB",
              help="Kernel capture buffer.")
@click.option("--plain", is_flag=True, help="Plain line output even on a terminal.")
@click.option("--status-interval", type=click.FloatRange(min=0.5), default=10.0, show_default=True, metavar="S",
              help="Plain output: seconds between status blocks.")
def live(interface: str, bpf: str | None, vxlan_ports: tuple[int, ...], snaplen: int,
         ports: tuple[int, ...], duration: float | None,
         alerts_target: str | None, out_dir: Path | None, report_interval: float, ring_dir: Path | None,
         ring_size: int, ring_files: int, window: float, tool: str | None, buffer_mib: int, plain: bool,
         status_interval: float) -> None:
    """Live analysis of iSCSI traffic on an interface: sessions, states, throughput, latency, alerts.

    Runs dumpcap (or tcpdump) on INTERFACE; needs root or capture capabilities. Stop with Ctrl-C
    (a second Ctrl-C skips analysing the backlog). Alerts are JSON lines with the columns of
    'analyze' anomalies; the report directory holds the same tables as 'analyze' (sessions,
    connections, anomalies, recent tasks) plus anomalies.jsonl, sessions_done.jsonl, stats.jsonl
    and live.json.
    """
    from analyzer.capture.live import VXLAN_PORT, LiveCapture, LiveCaptureError, RingSpec
    from analyzer.live.engine import LiveAnalyzer, LiveOptions
    from analyzer.live.loop import run_live
    from analyzer.live.signals import StopSignals
    from analyzer.live.sinks import AlertSink, LiveReport
    from analyzer.live.view import make_view
    from analyzer.pipeline import Options
    from analyzer.tcp.reassembly import DEFAULT_PORTS

    options = LiveOptions(pipeline=Options(ports=DEFAULT_PORTS | frozenset(ports)), window_s=window,
                          report_interval_s=report_interval,
                          vxlan_ports=tuple(dict.fromkeys((VXLAN_PORT, *vxlan_ports))))
    alerts = report = None
    try:
        if alerts_target is not None:
            alerts = AlertSink(alerts_target)
        if out_dir is not None:
            report = LiveReport(out_dir)
    except OSError as exc:
        raise LiveError(f"cannot write {exc.filename}: {exc.strerror or exc}") from None
    ring = RingSpec(ring_dir, ring_size, ring_files) if ring_dir is not None else None
    engine = LiveAnalyzer(options)
    capture = LiveCapture(interface, bpf, ports, ring, tool=tool, buffer_mib=buffer_mib,
                          vxlan_ports=vxlan_ports, snaplen=snaplen)
    # From here on SIGINT/SIGTERM only ask for a stop (also while the capture is starting).
    signals = StopSignals().install()
    try:
        capture.start()
    except LiveCaptureError as exc:
        signals.restore()
        _close(alerts, report)
        raise LiveError(str(exc)) from None
    # The dashboard goes to stdout unless the alerts do; then it goes to stderr.
    view_out = sys.stderr if alerts_target == "-" else sys.stdout
    view = make_view(view_out, plain=plain, status_every_s=status_interval)
    view.message(f"capturing on {interface} with {capture.tool} (pid {', '.join(map(str, capture.pids))}), "
                 f"filter: {capture.bpf}" + (f"; snaplen {snaplen} (headers only)" if snaplen else "")
                 + (f"; ring buffer in {ring_dir}" if ring_dir else ""))
    if report is not None and report.tables_error:
        view.message(report.tables_error)
    try:
        result = run_live(capture, engine, view, alerts=alerts, report=report, duration=duration, signals=signals)
    finally:
        signals.restore()
        capture.close()
        _close(alerts, report)
    if report is not None and report.tables_error:
        click.echo(f"iscsi-analyzer: warning: {report.tables_error}", err=True)
    for sink in (alerts, report):
        lost = sink.health.summary() if sink is not None else None
        if lost:  # the analysis went on; say what is missing from the files
            click.echo(f"iscsi-analyzer: warning: {lost}", err=True)
    if result.reason == "capture_failed":
        raise LiveError(result.error if "went away" in (result.error or "") else
                        f"capture ended unexpectedly: {result.error}")


def _close(*things: Any) -> None:
    for t in things:
        if t is not None:
            t.close()
