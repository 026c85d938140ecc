"""Command line interface (click only: parse arguments, call the pipeline, print).

Exit codes: 0 success; 1 anomalies at or above ``--fail-on``; 2 usage error or unreadable
input; 3 internal error (one line plus a hint; the traceback only with ``--debug``).
"""

from __future__ import annotations

import itertools
import sys
import traceback
from collections.abc import Iterator
from typing import Any

import click

from analyzer import __version__
from analyzer.cli.limits import limit_options

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_INPUT = 2
EXIT_INTERNAL = 3

FORMATS = click.Choice(["table", "csv", "jsonl"])


class InputError(click.ClickException):
    """Unreadable input: one line, exit status 2."""

    exit_code = EXIT_INPUT

    def show(self, file: Any = None) -> None:
        click.echo(f"iscsi-analyzer: {self.format_message()}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="iscsi-analyzer")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Wireshark-style iSCSI analyzer: what happened to my sessions, and why?"""
    ctx.obj = {"debug": debug}


def port_option(f: Any) -> Any:
    return click.option("--port", "ports", multiple=True, type=click.IntRange(1, 65535),
                        help="Also treat this TCP port as iSCSI (repeatable; 3260 and 860 always are).")(f)


def _options(ports: tuple[int, ...], *, state: bool, anomalies: bool, limits: dict[str, int] | None = None) -> Any:
    from analyzer.pipeline import Options
    from analyzer.tcp.reassembly import DEFAULT_PORTS

    return Options(ports=DEFAULT_PORTS | frozenset(ports), state=state, anomalies=anomalies, **(limits or {}))


def _records(capture: str, options: Any, readers: list[Any]) -> Iterator[Any]:
    """Pipeline records; a capture that cannot be opened becomes exit status 2."""
    from analyzer.capture import CaptureError
    from analyzer.pipeline import iter_records

    # Not a generator: the capture is opened (and a bad one reported) before the caller prints anything.
    try:
        gen = iter_records(capture, options, reader_out=readers)
        first = next(gen, None)
    except CaptureError as e:
        raise InputError(str(e)) from e
    if first is None:
        return iter(())
    return itertools.chain((first,), gen)


def _report_damage(readers: list[Any]) -> None:
    for reader in readers:
        for d in getattr(reader, "damage", ()):
            click.echo(f"iscsi-analyzer: warning: {d.message}; everything before it was analyzed", err=True)


@cli.command()
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@port_option
@limit_options
def pdus(capture: str, fmt: str, ports: tuple[int, ...], limits: dict[str, int]) -> None:
    """One row per iSCSI PDU, in capture order."""
    import csv
    import json

    from analyzer.iscsi.describe import info
    from analyzer.render.output import RowWriter
    from analyzer.records import MalformedPdu, Pdu, TcpOpened
    from analyzer.render.rows import PDU_COLUMNS, csv_text_cell, pdu_csv, pdu_values

    readers: list[Any] = []
    endpoints: dict[str, Any] = {}
    # Open the capture first: an unreadable one exits 2 before any output (not even a header).
    records = _records(capture, _options(ports, state=False, anomalies=False, limits=limits), readers)
    out = sys.stdout
    table = None
    csv_row: Any = None
    pending: list[str] = []
    if fmt == "table":
        table = RowWriter(fmt, PDU_COLUMNS, table_columns=("frame", "time", "src", "dst", "opcode_name", "itt",
                                                           "cmdsn", "statsn", "dsl", "info"),
                          widths={"frame": 7, "time": 12, "src": 21, "dst": 21, "opcode_name": 24, "itt": 10,
                                  "cmdsn": 10, "statsn": 10, "dsl": 7})
    elif fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(PDU_COLUMNS)
        add = pending.append

        def csv_row(line: str) -> None:  # type: ignore[misc]
            add(line)
            if len(pending) >= 512:  # one write per 512 lines
                out.write("\n".join(pending) + "\n")
                pending.clear()
    first_ts: int | None = None
    for rec in records:
        t = type(rec)
        if t is TcpOpened:
            endpoints[rec.conn] = rec
            continue
        if not isinstance(rec, (Pdu, MalformedPdu)):
            continue
        text = info(rec) if t is not MalformedPdu else f"Malformed PDU: {rec.reason}"
        if csv_row is not None:
            csv_row(pdu_csv(rec, endpoints[rec.conn], csv_text_cell(text)))
            continue
        values = pdu_values(rec, endpoints[rec.conn], text)
        if table is None:
            out.write(json.dumps(dict(zip(PDU_COLUMNS, values)), ensure_ascii=False) + "\n")
        else:
            row = dict(zip(PDU_COLUMNS, values))
            if first_ts is None:
                first_ts = rec.ts_ns
            row["time"] = f"{(rec.ts_ns - first_ts) / 1e9:.6f}"
            row["src"] = f"{row['src']}:{row['sport']}"
            row["dst"] = f"{row['dst']}:{row['dport']}"
            table.write(row)
    if csv_row is not None and pending:
        out.write("\n".join(pending) + "\n")
    _report_damage(readers)


@cli.command()
@click.argument("capture", type=click.Path(dir_okay=False))
@port_option
@limit_options
@click.option("--max-differences", default=50, show_default=True, help="How many differences to print.")
def crosscheck(capture: str, ports: tuple[int, ...], max_differences: int, limits: dict[str, int]) -> None:
    """Compare our PDU decode with tshark's, PDU by PDU; exit 1 when they differ."""
    from analyzer.capture.tshark import TsharkError, tshark_pdus_union
    from analyzer.crosscheck import compare, iscsi_ports

    readers: list[Any] = []
    records = list(_records(capture, _options(ports, state=False, anomalies=False, limits=limits), readers))
    try:
        theirs = tshark_pdus_union(capture, set(ports) | iscsi_ports(records))
    except TsharkError as e:
        raise InputError(str(e)) from e
    res = compare(records, theirs)
    click.echo(f"{capture}: ours {res.ours} PDUs, tshark {res.theirs} PDUs, matched {res.matched}, "
               f"recovered after capture gaps (tshark lost framing) {res.recovered}, "
               + (f"shown by tshark in their header's frame (data cut by the snap length) "
                  f"{res.snaplen_header_frame}, " if res.snaplen_header_frame else "")
               + f"differences {len(res.differences)}")
    for d in res.differences[:max_differences]:
        click.echo(f"  frame {d.frame}: {d.kind}: {d.detail}")
    if len(res.differences) > max_differences:
        click.echo(f"  ... {len(res.differences) - max_differences} more")
    _report_damage(readers)
    if not res.agree:
        sys.exit(EXIT_FINDINGS)


def _parse_time(text: str, capture: str) -> int:
    """TIME for --at: epoch seconds, +SECONDS from the capture's first frame, or an ISO 8601 time (UTC)."""
    import datetime as dt

    from analyzer.pipeline import capture_start_ns

    t = text.strip()
    try:
        if t.startswith("+"):
            start = capture_start_ns(capture)
            if start is None:
                raise InputError(f"{capture}: the capture has no frames")
            return start + int(float(t[1:]) * 1e9)
        return int(float(t) * 1e9)
    except ValueError:
        pass
    try:
        d = dt.datetime.fromisoformat(t)
    except ValueError as e:
        raise click.BadParameter(f"{text!r}: use epoch seconds, +SECONDS or an ISO time") from e
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return int(d.timestamp() * 1e9)


def _session_block(s: Any, conns: list[Any], show_secrets: bool = False) -> str:
    """One session in the style of `targetcli sessions detail` + `esxcli iscsi session connection list`."""
    from analyzer.render.output import terminal_safe as safe
    from analyzer.render.rows import ts_iso

    dur = (s.end_ts_ns - s.start_ts_ns) / 1e9
    lines = [
        f"Session {s.session}: {s.session_type}  ended: {s.ended}  "
        f"state initiator {s.state_initiator} / target {s.state_target}" + ("  (capture began mid-session)"
                                                                             if s.mid_stream else ""),
        f"  Initiator     {safe(s.initiator_name or '?')}" + (f"  alias {safe(s.initiator_alias)}"
                                                              if s.initiator_alias else ""),
        f"  Target        {safe(s.target_name or '-')}" + (f"  alias {safe(s.target_alias)}" if s.target_alias else ""),
        f"  ISID          {('0x' + s.isid) if s.isid else '?'}   TPGT {s.tpgt if s.tpgt is not None else '?'}   "
        f"TSIH {f'0x{s.tsih:04x}' if s.tsih is not None else '?'}   SSID {s.ssid or '?'}",
        f"  Portals       {', '.join(s.portals) or '?'}   from {', '.join(s.initiator_addresses) or '?'}",
        f"  Time          {ts_iso(s.start_ts_ns)} (frame {s.start_frame}) -> {ts_iso(s.end_ts_ns)} "
        f"(frame {s.end_frame}), {dur:.3f} s, {s.tasks} tasks",
    ]
    if s.reinstated_from or s.reinstated_by:
        lines.append(f"  Reinstatement from {s.reinstated_from or '-'}  by {s.reinstated_by or '-'}")
    if s.discovered_targets:
        lines.append(f"  SendTargets   {', '.join(safe(t) for t in s.discovered_targets)}")
    if s.params:
        lines.append("  Session parameters:")
        items = sorted(s.params.items())
        for i in range(0, len(items), 3):
            lines.append("    " + "".join(f"{safe(k) + ' = ' + safe(str(v)):<40}" for k, v in items[i:i + 3]).rstrip())
    for c in conns:
        lines.append(f"  Connection CID {c.cid if c.cid is not None else '?'}  {safe(c.conn)}  role {c.role}  "
                     f"ended {c.ended}" + (f" (TCP {c.tcp_end})" if c.tcp_end else ""))
        lines.append(f"    state initiator {c.state_initiator} / target {c.state_target}"
                     + (f"   cleanup initiator {c.cleanup_initiator} / target {c.cleanup_target}"
                        if c.cleanup_initiator or c.cleanup_target else ""))
        lines.append(f"    HeaderDigest {'CRC32C' if c.header_digest else 'None'}  "
                     f"DataDigest {'CRC32C' if c.data_digest else 'None'}  "
                     f"MaxRecvDataSegmentLength initiator {c.max_recv_dsl_initiator} / target "
                     f"{c.max_recv_dsl_target}  AuthMethod {safe(str(c.params.get('AuthMethod', '?')))}  "
                     f"PDUs {c.pdus}  tasks {c.tasks}")
        if c.login_status_class:
            from analyzer.iscsi.opcodes import login_status_name

            lines.append(f"    login failed: {login_status_name(c.login_status_class, c.login_status_detail or 0)} "
                         f"(0x{c.login_status_class:02x}{(c.login_status_detail or 0):02x})")
    return "\n".join(lines)


@cli.command()
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--at", "at", metavar="TIME", help="State at TIME (epoch seconds, +SECONDS from the start, or ISO).")
@port_option
@limit_options
def sessions(capture: str, fmt: str, at: str | None, ports: tuple[int, ...], limits: dict[str, int]) -> None:
    """One row per session: identity, type, parameters, connections, how it ended."""
    from analyzer.capture import CaptureError
    from analyzer.render.output import RowWriter
    from analyzer.pipeline import run_until
    from analyzer.state.events import ConnectionSummary, SessionSummary
    from analyzer.render.rows import SESSION_COLUMNS, session_row

    opts = _options(ports, state=True, anomalies=False, limits=limits)
    readers: list[Any] = []
    if at is not None:
        stop = _parse_time(at, capture)
        try:
            pipeline, readers = run_until(capture, stop, opts)
        except CaptureError as e:
            raise InputError(str(e)) from e
        sess = list(pipeline.tracker.sessions())
        conns = list(pipeline.tracker.connections())
    else:
        sess, conns = [], []
        for rec in _records(capture, opts, readers):
            if type(rec) is SessionSummary:
                sess.append(rec)
            elif type(rec) is ConnectionSummary:
                conns.append(rec)
    if fmt == "table":
        if not sess:
            click.echo("No iSCSI sessions found.")
        for s in sess:
            click.echo(_session_block(s, [c for c in conns if c.session == s.session]))
            click.echo()
        orphans = [c for c in conns if c.session is None]
        for c in orphans:
            click.echo(f"Connection {c.conn}: no session identified (state initiator {c.state_initiator} / "
                       f"target {c.state_target})")
    else:
        writer = RowWriter(fmt, SESSION_COLUMNS)
        for s in sess:
            writer.write(session_row(s))
    _report_damage(readers)


@cli.command()
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--session", "session_id", help="Only this session (id as shown by `sessions`, e.g. s2).")
@click.option("--machine", type=click.Choice(["connection", "cleanup", "session"]), help="Only this machine.")
@port_option
@limit_options
def timeline(capture: str, fmt: str, session_id: str | None, machine: str | None, ports: tuple[int, ...], limits: dict[str, int]) -> None:
    """Every state transition (RFC 7143 §8 labels), in time order."""
    from analyzer.render.output import RowWriter
    from analyzer.state.events import Transition
    from analyzer.render.rows import TRANSITION_COLUMNS, transition_row, ts_iso

    readers: list[Any] = []
    writer = RowWriter(fmt, TRANSITION_COLUMNS,
                       table_columns=("time", "frame", "session", "machine", "side", "change", "label", "event"),
                       widths={"time": 26, "frame": 7, "session": 7, "machine": 10, "side": 9, "change": 31,
                               "label": 5})
    for rec in _records(capture, _options(ports, state=True, anomalies=False, limits=limits), readers):
        if type(rec) is not Transition:
            continue
        if session_id is not None and rec.session != session_id:
            continue
        if machine is not None and rec.machine != machine:
            continue
        row = transition_row(rec)
        if fmt == "table":
            row["time"] = ts_iso(rec.ts_ns)
            row["change"] = f"{rec.from_state} -> {rec.to_state}"
            row["label"] = rec.label or "-"
            row["event"] = (rec.event + ("  [inferred]" if rec.inferred else "")
                            + (f"  ({rec.conn})" if rec.conn else ""))
        writer.write(row)
    _report_damage(readers)


@cli.command()
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--session", "session_id", help="Only this session.")
@port_option
@limit_options
def tasks(capture: str, fmt: str, session_id: str | None, ports: tuple[int, ...], limits: dict[str, int]) -> None:
    """One row per task (SCSI command, login, text, logout, TMF, NOP) with outcome and latency."""
    from analyzer.render.output import RowWriter
    from analyzer.state.events import TaskRecord
    from analyzer.render.rows import TASK_COLUMNS, task_row

    readers: list[Any] = []
    writer = RowWriter(fmt, TASK_COLUMNS,
                       table_columns=("session", "itt", "lun", "operation", "lba", "transfer_length", "first_frame",
                                      "last_frame", "latency_ms", "outcome", "status", "sense"),
                       widths={"session": 7, "itt": 10, "lun": 4, "operation": 22, "lba": 10, "transfer_length": 8,
                               "first_frame": 8, "last_frame": 8, "latency_ms": 10, "outcome": 20, "status": 16})
    for rec in _records(capture, _options(ports, state=True, anomalies=False, limits=limits), readers):
        if type(rec) is TaskRecord and (session_id is None or rec.session == session_id):
            writer.write(task_row(rec))
    _report_damage(readers)


SEVERITY = click.Choice(["info", "warning", "error"])


def _anomaly_block(a: Any) -> str:
    """A finding for people: headline, message, and where to look (RFC section, Wireshark filter)."""
    import textwrap

    from analyzer.render.output import terminal_safe as safe
    from analyzer.render.rows import ts_iso

    head = f"{a.severity.upper():<8} {a.kind}  frame {a.frame}  {ts_iso(a.ts_ns)}"
    if a.session:
        head += f"  session {a.session}"
    if a.conn:
        head += f"  {safe(a.conn)}"
    body = textwrap.fill(safe(a.message), width=110, initial_indent="    ", subsequent_indent="    ")
    ref = (f"RFC 7143 {a.rfc}   " if a.rfc.startswith("§") else f"{a.rfc}   ") if a.rfc else ""
    tail = f"    {ref}Wireshark: {a.display_filter}"
    return f"{head}\n{body}\n{tail}\n"


@cli.command()
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--min-severity", type=SEVERITY, default="info", show_default=True, help="Show findings from this level up.")
@click.option("--fail-on", type=click.Choice(["warning", "error"]),
              help="Exit 1 when a finding at or above this severity is found (for scripts and CI).")
@click.option("--kind", "kinds", multiple=True, help="Only these kinds (repeatable).")
@port_option
@limit_options
def anomalies(capture: str, fmt: str, min_severity: str, fail_on: str | None, kinds: tuple[str, ...],
              ports: tuple[int, ...], limits: dict[str, int]) -> None:
    """What went wrong, when, on which session, with the frames that show it."""
    from analyzer.anomalies import ANOMALY_COLUMNS, anomaly_row, severity_at_least
    from analyzer.render.output import RowWriter
    from analyzer.records import Anomaly

    readers: list[Any] = []
    found = 0
    failing = 0
    writer = RowWriter(fmt, ANOMALY_COLUMNS) if fmt != "table" else None
    for rec in _records(capture, _options(ports, state=True, anomalies=True, limits=limits), readers):
        if type(rec) is not Anomaly:
            continue
        if fail_on is not None and severity_at_least(rec.severity, fail_on):
            failing += 1
        if not severity_at_least(rec.severity, min_severity) or (kinds and rec.kind not in kinds):
            continue
        found += 1
        if writer is not None:
            writer.write(anomaly_row(rec))
        else:
            click.echo(_anomaly_block(rec))
    if fmt == "table" and found == 0:
        click.echo(f"No findings at or above {min_severity}.")
    _report_damage(readers)
    if failing:
        click.echo(f"iscsi-analyzer: {failing} finding(s) at or above {fail_on}", err=True)
        sys.exit(EXIT_FINDINGS)


class _ProgressBar:
    """A progress bar on stderr for long captures (only when stderr is a terminal)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> _ProgressBar:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

            self.bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                                TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            self.bar.__enter__()
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            return
        if self.task is None:
            self.task = self.bar.add_task(self.label, total=total or None)
        self.bar.update(self.task, completed=done, total=total or None)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _print_capture_warnings(analysis: Any) -> None:
    for d in getattr(analysis.capture, "damage", ()) or ():
        text = getattr(d, "message", None) or str(d)
        click.echo(f"iscsi-analyzer: warning: {text}; everything before it was analyzed", err=True)


@cli.command()
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Report directory (default: reports/<capture name>/).")
@click.option("--no-html", is_flag=True, help="Skip report.html.")
@click.option("--quiet", "-q", is_flag=True, help="Do not print the summary.")
@port_option
@limit_options
def analyze(capture: str, out_dir: str | None, no_html: bool, quiet: bool, ports: tuple[int, ...], limits: dict[str, int]) -> None:
    """The main job: sessions, states, tasks and anomalies, with a report directory and report.html."""
    from analyzer.api import run_analyze
    from analyzer.capture import CaptureError
    from analyzer.render.output import terminal_safe

    try:
        with _ProgressBar("analyzing") as bar:
            analysis, written = run_analyze(capture, out_dir, progress=bar, html=not no_html,
                                            ports=_options(ports, state=True, anomalies=True).ports, **limits)
    except CaptureError as e:
        raise InputError(str(e)) from e
    except OSError as e:
        raise InputError(f"{e.filename or out_dir}: cannot write the report ({e.strerror or e})") from e
    if not quiet:
        click.echo("\n".join(terminal_safe(line) for line in analysis.summary().splitlines()))
    where = written[0].parent if written else out_dir
    click.echo(f"\nReport written to {where}/ ({len(written)} files"
               + (", open report.html in a browser)" if not no_html else ")"))
    _print_capture_warnings(analysis)


@cli.command()
@click.argument("source", type=click.Path(exists=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="HTML file to write.")
@click.option("--show-secrets", is_flag=True, help="Show CHAP challenge/response/name values (masked by default).")
@port_option
@limit_options
def report(source: str, output: str, show_secrets: bool, ports: tuple[int, ...], limits: dict[str, int]) -> None:
    """Build the HTML report from a capture or from a directory written by `analyze`."""
    import os

    from analyzer.api import run_report
    from analyzer.capture import CaptureError

    if not os.path.exists(source):
        raise InputError(f"{source}: no such file or directory")
    try:
        with _ProgressBar("analyzing") as bar:
            analysis, path = run_report(source, output, show_secrets=show_secrets, progress=bar,
                                        **({} if os.path.isdir(source) else
                                           {"ports": _options(ports, state=True, anomalies=True).ports, **limits}))
    except CaptureError as e:
        raise InputError(str(e)) from e
    except OSError as e:
        raise InputError(f"{e.filename or source}: {e.strerror or e}") from e
    except ValueError as e:
        raise InputError(f"{source}: {e}") from e
    click.echo(f"Report written to {path}")
    _print_capture_warnings(analysis)


def _register_lab() -> None:
    from analyzer.lab.cli import lab

    cli.add_command(lab)


def _register_live() -> None:
    from analyzer.cli.live import live

    cli.add_command(live)


_register_live()


def _register_batch() -> None:
    from analyzer.cli.batch import batch

    cli.add_command(batch)


_register_batch()


try:
    _register_lab()
except ImportError:  # the lab package is optional at import time
    pass


def main(argv: list[str] | None = None) -> None:
    """Console entry point with the documented exit codes."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rv = cli.main(args=argv, prog_name="iscsi-analyzer", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("iscsi-analyzer: aborted", err=True)
        sys.exit(130)
    except click.UsageError as e:
        click.echo(f"iscsi-analyzer: {e.format_message()} (see --help)", err=True)
        sys.exit(EXIT_INPUT)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code if e.exit_code != 1 else EXIT_INPUT)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(EXIT_OK)
    except KeyboardInterrupt:
        click.echo("iscsi-analyzer: interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - the documented "internal error" path
        if debug:
            traceback.print_exc()
        where = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
        loc = f" at {where.filename.rsplit('/', 1)[-1]}:{where.lineno}" if where else ""
        click.echo(f"iscsi-analyzer: internal error: {type(e).__name__}: {e}{loc}. "
                   "Please report it with the capture if you can (run with --debug for the traceback).",
                   err=True)
        sys.exit(EXIT_INTERNAL)
    sys.exit(rv if isinstance(rv, int) else EXIT_OK)


if __name__ == "__main__":
    main()
