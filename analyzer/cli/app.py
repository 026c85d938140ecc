"""Command line interface (click only: parse arguments, call the pipeline, print).

Exit codes: 0 success; 1 anomalies at or above ``--fail-on``; 2 usage error or unreadable
input; 3 internal error (one line plus a hint; the traceback only with ``--debug``).
"""

from __future__ import annotations

import errno
import itertools
import sys
import traceback
from collections.abc import Iterator
from typing import Any

import click

from analyzer import __version__
from analyzer.cli.limits import limit_options
from analyzer.cli.select import Selection, check_kinds, selection_options

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_INPUT = 2
EXIT_INTERNAL = 3

FORMATS = click.Choice(["table", "csv", "jsonl"])


class InputError(click.ClickException):
    """Unreadable input: one line, exit status 2."""

    exit_code = EXIT_INPUT

    def show(self, file: Any = None) -> None:
        from analyzer.render.output import safe_line

        click.echo(f"iscsi-analyzer: {safe_line(self.format_message())}", err=True)


#: errno values that only a write can raise: the output (stdout, a pipe, a full disk) failed.
_OUTPUT_ERRNOS = frozenset({errno.EPIPE, errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class OutputError(Exception):
    """Writing the output failed (a closed pipe, a full disk); raised instead of click's EPIPE
    handling, which exits 1 (reserved for findings)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error.strerror or str(error))
        self.errno = error.errno


class _Cli(click.Group):
    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:  # --help and --version print here
            return super().make_context(info_name, args, parent, **extra)
        except OSError as e:
            if e.errno in _OUTPUT_ERRNOS and e.filename is None:
                raise OutputError(e) from e
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as e:
            if e.errno in _OUTPUT_ERRNOS and e.filename is None:
                raise OutputError(e) from e
            raise


def _flush_stdout() -> None:
    """Flush stdout now, so that a failing write is reported here and not at interpreter exit."""
    try:
        sys.stdout.flush()
    except OSError as e:
        if e.errno in _OUTPUT_ERRNOS:
            raise OutputError(e) from e
        raise


def _discard_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so that the final flush cannot fail again."""
    import os

    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError):
        pass


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="iscsi-analyzer")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Wireshark-style iSCSI analyzer: what happened to my sessions, and why?"""
    ctx.obj = {"debug": debug}
    if debug:
        from analyzer import _native  # which path runs: compiled hot path or pure Python

        click.echo(f"iscsi-analyzer: {_native.describe()}", err=True)


def time_option(f: Any) -> Any:
    from analyzer.render.times import TIME_FORMATS

    return click.option("-t", "--time-format", "time_format", type=click.Choice(TIME_FORMATS), default=None,
                        help="Table time column, as tshark -t: a/ad local time (of day / with date), u/ud UTC, "
                             "r seconds since the first frame, e epoch seconds. The header names the zone.")(f)


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


def _endpoint(addr: str, port: Any) -> str:
    """``10.0.0.1:3260``, ``[::1]:57956`` (IPv6 bracketed, as in URLs and Wireshark)."""
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _finish_selection(sel: Selection, readers: list[Any]) -> None:
    """Exit 2 when a selector named nothing in the capture; warn about times outside it."""
    for warning in sel.check(readers):
        click.echo(f"iscsi-analyzer: warning: {warning}", err=True)


def _report_damage(readers: list[Any]) -> None:
    from analyzer.render.output import safe_line

    for reader in readers:
        for d in getattr(reader, "damage", ()):
            click.echo(f"iscsi-analyzer: warning: {safe_line(d.message)}; everything before it was analyzed",
                       err=True)


@cli.command()
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@selection_options
@time_option
@port_option
@limit_options
def pdus(capture: str, fmt: str, session_id: str | None, connection: str | None, itt: str | None,
         since: str | None, until: str | None, time_format: str | None, ports: tuple[int, ...],
         limits: dict[str, int]) -> None:
    """One row per iSCSI PDU, in capture order."""
    import csv
    import json

    from analyzer.iscsi.describe import info
    from analyzer.records import MalformedPdu, Pdu, TcpOpened
    from analyzer.render.output import RowWriter
    from analyzer.render.rows import PDU_COLUMNS, csv_text_cell, pdu_csv, pdu_values
    from analyzer.state.events import ConnectionSummary

    readers: list[Any] = []
    endpoints: dict[str, Any] = {}
    sel = Selection.from_options(capture, session_id, connection, itt, since, until)
    if sel.session is not None:
        # PDUs carry no session: a first pass with the state tracker maps connections to sessions.
        for rec in _records(capture, _options(ports, state=True, anomalies=False, limits=limits), []):
            sel.observe(rec)
            if type(rec) is ConnectionSummary and rec.session is not None:
                sel.conn_sessions[rec.conn] = rec.session
        sel.check()
    # Open the capture first: an unreadable one exits 2 before any output (not even a header).
    records = _records(capture, _options(ports, state=False, anomalies=False, limits=limits), readers)
    out = sys.stdout
    table = None
    csv_row: Any = None
    pending: list[str] = []
    header_due = False
    tfmt = time_format or "r"
    first_ts: int | None = None
    if fmt == "table":
        from analyzer.pipeline import capture_start_ns
        from analyzer.render.times import TIME_WIDTHS, format_time, time_header

        first_ts = capture_start_ns(capture) if tfmt in ("r", "a", "ad") else None  # (the zone's offset then)
        table = RowWriter(fmt, PDU_COLUMNS, table_columns=("frame", "time", "src", "dst", "opcode_name", "itt",
                                                           "cmdsn", "statsn", "dsl", "info"),
                          widths={"frame": 7, "time": TIME_WIDTHS[tfmt], "src": 21, "dst": 21, "opcode_name": 24,
                                  "itt": 10, "cmdsn": 10, "statsn": 10, "dsl": 7}, defer_header=True,
                          labels={"time": time_header(tfmt, first_ts)})
    elif fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        header_due = sel.active
        if not header_due:
            w.writerow(PDU_COLUMNS)
        add = pending.append

        def csv_row(line: str) -> None:  # type: ignore[misc]
            add(line)
            if len(pending) >= 512:  # one write per 512 lines
                out.write("\n".join(pending) + "\n")
                pending.clear()
    selecting = sel.active
    for rec in records:
        t = type(rec)
        if t is TcpOpened:
            endpoints[rec.conn] = rec
            continue
        if not isinstance(rec, (Pdu, MalformedPdu)):
            continue
        if selecting:
            sel.observe(rec)
            if not sel.match(rec, sel.conn_sessions.get(rec.conn)):
                continue
            if header_due and csv_row is not None:
                w.writerow(PDU_COLUMNS)
                header_due = False
        text = info(rec) if t is not MalformedPdu else f"Malformed PDU: {rec.reason}"
        if csv_row is not None:
            csv_row(pdu_csv(rec, endpoints[rec.conn], csv_text_cell(text)))
            continue
        values = pdu_values(rec, endpoints[rec.conn], text)
        if table is None:
            out.write(json.dumps(dict(zip(PDU_COLUMNS, values, strict=True)), ensure_ascii=False) + "\n")
        else:
            row = dict(zip(PDU_COLUMNS, values, strict=True))
            row["time"] = format_time(rec.ts_ns, tfmt, first_ts)
            row["src"] = _endpoint(row["src"], row["sport"])
            row["dst"] = _endpoint(row["dst"], row["dport"])
            table.write(row)
    if csv_row is not None and pending:
        out.write("\n".join(pending) + "\n")
    if table is not None:
        if selecting:
            _finish_selection(sel, readers)
        table.header()
    elif selecting:
        _finish_selection(sel, readers)
        if csv_row is not None and header_due:
            w.writerow(PDU_COLUMNS)
    _report_damage(readers)


@cli.command()
@click.argument("capture", type=click.Path(dir_okay=False))
@port_option
@limit_options
@click.option("--max-differences", default=50, show_default=True, help="How many differences to print.")
@click.option("--deep", is_flag=True,
              help="Also compare every field both decoders expose (header fields, keys, CDB, status, sense, "
                   "residuals) with Wireshark's full dissection, through pyshark.")
@click.option("--limit", default=2000, show_default=True, type=click.IntRange(1),
              help="With --deep: compare at most this many PDUs (Wireshark's full dissection is slow).")
def crosscheck(capture: str, ports: tuple[int, ...], max_differences: int, deep: bool, limit: int,
               limits: dict[str, int]) -> None:
    """Compare our PDU decode with tshark's, PDU by PDU; exit 1 when they differ."""
    from analyzer.capture.tshark import TsharkError, tshark_pdus_union
    from analyzer.crosscheck import compare, iscsi_ports
    from analyzer.render.output import safe_name

    readers: list[Any] = []
    records = list(_records(capture, _options(ports, state=False, anomalies=False, limits=limits), readers))
    try:
        theirs = tshark_pdus_union(capture, set(ports) | iscsi_ports(records))
    except TsharkError as e:
        raise InputError(str(e)) from e
    res = compare(records, theirs)
    click.echo(f"{safe_name(capture)}: ours {res.ours} PDUs, tshark {res.theirs} PDUs, matched {res.matched}, "
               f"recovered after capture gaps (tshark lost framing) {res.recovered}, "
               + (f"shown by tshark in their header's frame (data cut by the snap length) "
                  f"{res.snaplen_header_frame}, " if res.snaplen_header_frame else "")
               + f"differences {len(res.differences)}")
    for d in res.differences[:max_differences]:
        click.echo(f"  frame {d.frame}: {d.kind}: {d.detail}")
    if len(res.differences) > max_differences:
        click.echo(f"  ... {len(res.differences) - max_differences} more")
    agree = res.agree
    if deep:
        agree = _deep_crosscheck(capture, tuple(set(ports) | iscsi_ports(records)), records, limit,
                                 max_differences) and agree
    _report_damage(readers)
    if not agree:
        sys.exit(EXIT_FINDINGS)


def _deep_crosscheck(capture: str, ports: tuple[int, ...], records: list[Any], limit: int,
                     max_differences: int) -> bool:
    from analyzer.capture.tshark import TsharkError
    from analyzer.capture.wireshark import wireshark_pdus
    from analyzer.crosscheck.deep import deep_compare
    from analyzer.render.output import terminal_safe

    try:
        theirs = wireshark_pdus(capture, ports, limit=limit)
    except TsharkError as e:
        raise InputError(str(e)) from e
    res = deep_compare(records, theirs)
    upto = f" (first {len(theirs)} PDUs, up to frame {theirs[-1].frame})" if len(theirs) >= limit else ""
    click.echo(f"deep: Wireshark's full dissection{upto}: paired {res.paired} PDUs, "
               f"compared {res.fields_compared} fields in {len(res.compared)} kinds, "
               f"differences {len(res.differences)}")
    for d in res.differences[:max_differences]:
        click.echo(f"  frame {d.frame}: opcode 0x{d.opcode:02x} ITT 0x{d.itt:08x}: {d.field} "
                   f"({d.wireshark_field}): ours {terminal_safe(d.ours)}, Wireshark {terminal_safe(d.theirs)}")
    if len(res.differences) > max_differences:
        click.echo(f"  ... {len(res.differences) - max_differences} more")
    return res.agree


def _mrdsl(declared: int | None, seen: int) -> str:
    """A MaxRecvDataSegmentLength as known (§13.12): declared, or what the traffic proves of it."""
    if declared is not None:
        return str(declared)
    return f"unknown (at least {seen}, observed)" if seen else "unknown"


def _session_block(s: Any, conns: list[Any], show_secrets: bool = False) -> str:
    """One session in the style of `targetcli sessions detail` + `esxcli iscsi session connection list`."""
    from analyzer.records import DigestFact
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
        f"  Time          {ts_iso(s.start_ts_ns)} UTC (frame {s.start_frame}) -> {ts_iso(s.end_ts_ns)} UTC "
        f"(frame {s.end_frame}), {dur:.3f} s, {s.tasks} tasks",
    ]
    if s.reinstated_from or s.reinstated_by:
        lines.append(f"  Reinstatement from {s.reinstated_from or '-'}  by {s.reinstated_by or '-'}")
    if s.redirected_to or s.redirected_from or s.redirect_followed_by:
        lines.append(f"  Redirect      to {safe(s.redirected_to or '-')}  "
                     f"followed up by {s.redirect_followed_by or '-'}"
                     f"  follows {s.redirected_from or '-'}")
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
        lines.append(f"    HeaderDigest {DigestFact(c.header_digest, c.header_digest_source).shown()}  "
                     f"DataDigest {DigestFact(c.data_digest, c.data_digest_source).shown()}  "
                     f"MaxRecvDataSegmentLength initiator {_mrdsl(c.max_recv_dsl_initiator, c.dsl_seen_initiator)} "
                     f"/ target {_mrdsl(c.max_recv_dsl_target, c.dsl_seen_target)}  "
                     f"AuthMethod {safe(str(c.params.get('AuthMethod', 'unknown')))}  "
                     f"PDUs {c.pdus}  tasks {c.tasks}")
        if c.login_status_class:
            from analyzer.iscsi.opcodes import login_status_name

            status = (f"{login_status_name(c.login_status_class, c.login_status_detail or 0)} "
                      f"(0x{c.login_status_class:02x}{(c.login_status_detail or 0):02x})")
            if c.login_status_class == 1:  # §11.13.5: a redirect, not a failure
                to = safe(c.redirected_to) if c.redirected_to else "no TargetAddress given"
                lines.append(f"    login redirected: {status} to {to}")
            else:
                lines.append(f"    login failed: {status}")
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
    from analyzer.cli.select import iso, parse_time
    from analyzer.pipeline import capture_start_ns, run_until
    from analyzer.render.output import RowWriter, safe_line
    from analyzer.render.rows import SESSION_COLUMNS, session_row
    from analyzer.state.events import ConnectionSummary, SessionSummary

    opts = _options(ports, state=True, anomalies=False, limits=limits)
    readers: list[Any] = []
    if at is not None:
        try:
            start = capture_start_ns(capture)
            stop = parse_time(at, lambda: start, "'--at'")
            pipeline, readers = run_until(capture, stop, opts)
        except CaptureError as e:
            raise InputError(str(e)) from e
        sess = list(pipeline.tracker.sessions())
        conns = list(pipeline.tracker.connections())
        last = max((getattr(r, "last_ts_ns", 0) or 0 for r in readers), default=0)
        if start is None:
            click.echo("iscsi-analyzer: warning: --at: the capture has no frames", err=True)
        elif stop < start:
            click.echo(f"iscsi-analyzer: warning: --at {safe_line(at)} ({iso(stop)}) is before the capture's "
                       f"first frame ({iso(start)}): no session has begun", err=True)
        elif last <= stop and stop > last:
            click.echo(f"iscsi-analyzer: warning: --at {safe_line(at)} ({iso(stop)}) is after the capture's "
                       f"last frame ({iso(last)}): this is the state at the end of the capture", err=True)
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
@selection_options
@click.option("--machine", type=click.Choice(["connection", "cleanup", "session"]), help="Only this machine.")
@time_option
@port_option
@limit_options
def timeline(capture: str, fmt: str, session_id: str | None, connection: str | None, itt: str | None,
             since: str | None, until: str | None, machine: str | None, time_format: str | None,
             ports: tuple[int, ...], limits: dict[str, int]) -> None:
    """Every state transition (RFC 7143 §8 labels), in time order."""
    from analyzer.render.output import RowWriter
    from analyzer.render.rows import TRANSITION_COLUMNS, transition_row
    from analyzer.render.times import TIME_WIDTHS, format_time, time_header
    from analyzer.state.events import Transition

    readers: list[Any] = []
    tfmt = time_format or "ud"
    first_ts = None
    if tfmt in ("r", "a", "ad"):
        from analyzer.pipeline import capture_start_ns

        first_ts = capture_start_ns(capture)
    writer = RowWriter(fmt, TRANSITION_COLUMNS,
                       table_columns=("time", "frame", "session", "machine", "side", "change", "label", "event"),
                       widths={"time": max(TIME_WIDTHS[tfmt], 26), "frame": 7, "session": 7, "machine": 10,
                               "side": 9, "change": 31, "label": 5}, defer_header=True,
                       labels={"time": time_header(tfmt, first_ts)})
    sel = Selection.from_options(capture, session_id, connection, itt, since, until)
    selecting = sel.active
    for rec in _records(capture, _options(ports, state=True, anomalies=False, limits=limits), readers):
        if selecting:
            sel.observe(rec)
        if type(rec) is not Transition:
            continue
        if selecting and not sel.match(rec):
            continue
        if machine is not None and rec.machine != machine:
            continue
        row = transition_row(rec)
        if fmt == "table":
            row["time"] = format_time(rec.ts_ns, tfmt, first_ts)
            row["change"] = f"{rec.from_state} -> {rec.to_state}"
            row["label"] = rec.label or "-"
            row["event"] = (rec.event + ("  [inferred]" if rec.inferred else "")
                            + (f"  ({rec.conn})" if rec.conn else ""))
        writer.write(row)
    if selecting:
        _finish_selection(sel, readers)
    writer.header()
    _report_damage(readers)


@cli.command()
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@selection_options
@time_option
@port_option
@limit_options
def tasks(capture: str, fmt: str, session_id: str | None, connection: str | None, itt: str | None,
          since: str | None, until: str | None, time_format: str | None, ports: tuple[int, ...],
          limits: dict[str, int]) -> None:
    """One row per task (SCSI command, login, text, logout, TMF, NOP) with outcome and latency."""
    from analyzer.render.output import RowWriter
    from analyzer.render.rows import TASK_COLUMNS, task_row
    from analyzer.render.times import TIME_WIDTHS, format_time, time_header
    from analyzer.state.events import TaskRecord

    readers: list[Any] = []
    first_ts = None
    if time_format in ("r", "a", "ad"):
        from analyzer.pipeline import capture_start_ns

        first_ts = capture_start_ns(capture)
    # -t adds the task's start time as the first table column (csv/jsonl always have start_ts/end_ts).
    writer = RowWriter(fmt, TASK_COLUMNS,
                       table_columns=(("start",) if time_format else ())
                       + ("session", "itt", "lun", "operation", "lba", "transfer_length", "first_frame",
                          "last_frame", "latency_ms", "outcome", "status", "sense"),
                       widths={"start": TIME_WIDTHS[time_format or "r"], "session": 7, "itt": 10, "lun": 4,
                               "operation": 22, "lba": 10, "transfer_length": 8, "first_frame": 8, "last_frame": 8,
                               "latency_ms": 10, "outcome": 20, "status": 16},
                       defer_header=True,
                       labels={"start": time_header(time_format, first_ts).replace("time", "start")}
                       if time_format else None)
    sel = Selection.from_options(capture, session_id, connection, itt, since, until)
    selecting = sel.active
    for rec in _records(capture, _options(ports, state=True, anomalies=False, limits=limits), readers):
        if selecting:
            sel.observe(rec)
        if type(rec) is TaskRecord and (not selecting or sel.match(rec)):
            row = task_row(rec)
            if time_format:
                row["start"] = format_time(rec.start_ts_ns, time_format, first_ts)
            writer.write(row)
    if selecting:
        _finish_selection(sel, readers)
    writer.header()
    _report_damage(readers)


SEVERITY = click.Choice(["info", "warning", "error"])


def _anomaly_block(a: Any) -> str:
    """A finding for people: headline, message, and where to look (RFC section, Wireshark filter)."""
    import textwrap

    from analyzer.render.output import terminal_safe as safe
    from analyzer.render.rows import ts_iso

    head = f"{a.severity.upper():<8} {a.kind}  frame {a.frame}  {ts_iso(a.ts_ns)} UTC"
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
@click.option("--min-severity", type=SEVERITY, default="info", show_default=True,
              help="Show findings from this level up.")
@click.option("--fail-on", type=click.Choice(["warning", "error"]),
              help="Exit 1 when a finding at or above this severity is found (for scripts and CI).")
@click.option("--kind", "kinds", multiple=True, help="Only these kinds (repeatable; see docs/anomalies.md).")
@selection_options
@port_option
@limit_options
def anomalies(capture: str, fmt: str, min_severity: str, fail_on: str | None, kinds: tuple[str, ...],
              session_id: str | None, connection: str | None, itt: str | None, since: str | None,
              until: str | None, ports: tuple[int, ...], limits: dict[str, int]) -> None:
    """What went wrong, when, on which session, with the frames that show it."""
    from analyzer.anomalies import ANOMALY_COLUMNS, anomaly_row, severity_at_least
    from analyzer.records import Anomaly
    from analyzer.render.output import RowWriter

    check_kinds(kinds)
    readers: list[Any] = []
    found = 0
    failing = 0
    sel = Selection.from_options(capture, session_id, connection, itt, since, until)
    selecting = sel.active
    writer = RowWriter(fmt, ANOMALY_COLUMNS, defer_header=selecting) if fmt != "table" else None
    for rec in _records(capture, _options(ports, state=True, anomalies=True, limits=limits), readers):
        if selecting:
            sel.observe(rec)
        if type(rec) is not Anomaly:
            continue
        if selecting and not sel.match(rec):
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
    if selecting:
        _finish_selection(sel, readers)
    if writer is not None:
        writer.header()
    if fmt == "table" and found == 0:
        click.echo(f"No findings at or above {min_severity}" + (" among the selected ones." if selecting
                                                                 or kinds else "."))
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
    from analyzer.render.output import safe_line

    for d in getattr(analysis.capture, "damage", ()) or ():
        text = getattr(d, "message", None) or str(d)
        click.echo(f"iscsi-analyzer: warning: {safe_line(text)}; everything before it was analyzed", err=True)


@cli.command()
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Report directory (default: reports/<capture name>/).")
@click.option("--no-html", is_flag=True, help="Skip report.html.")
@click.option("--quiet", "-q", is_flag=True, help="Do not print the summary.")
@port_option
@limit_options
def analyze(capture: str, out_dir: str | None, no_html: bool, quiet: bool, ports: tuple[int, ...],
            limits: dict[str, int]) -> None:
    """The main job: sessions, states, tasks and anomalies, with a report directory and report.html."""
    from analyzer.api import run_analyze
    from analyzer.capture import CaptureError
    from analyzer.render.output import safe_name, terminal_safe

    try:
        with _ProgressBar("analyzing") as bar:
            analysis, written = run_analyze(capture, out_dir, progress=bar, html=not no_html,
                                            ports=_options(ports, state=True, anomalies=True).ports, **limits)
    except CaptureError as e:
        raise InputError(str(e)) from e
    except OSError as e:
        raise InputError(f"{safe_name(e.filename or out_dir or '.')}: cannot write the report "
                         f"({e.strerror or e})") from e
    if not quiet:
        click.echo("\n".join(terminal_safe(line) for line in analysis.summary().splitlines()))
    where = written[0].parent if written else out_dir
    click.echo(f"\nReport written to {safe_name(where or '.')}/ ({len(written)} files"
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
    from analyzer.render.output import safe_name

    if not os.path.exists(source):
        raise InputError(f"{safe_name(source)}: no such file or directory")
    try:
        with _ProgressBar("analyzing") as bar:
            analysis, path = run_report(source, output, show_secrets=show_secrets, progress=bar,
                                        **({} if os.path.isdir(source) else
                                           {"ports": _options(ports, state=True, anomalies=True).ports, **limits}))
    except CaptureError as e:
        raise InputError(str(e)) from e
    except OSError as e:
        raise InputError(f"{safe_name(e.filename or source)}: {e.strerror or e}") from e
    except ValueError as e:
        raise InputError(f"{safe_name(source)}: {e}") from e
    click.echo(f"Report written to {safe_name(path)}")
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
    from analyzer.render.output import safe_line

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rv = cli.main(args=argv, prog_name="iscsi-analyzer", standalone_mode=False)
        _flush_stdout()
    except OutputError as e:
        if e.errno == errno.EPIPE:  # the reader went away (`| head`): stop quietly, like other tools
            _discard_stdout()
            sys.exit(EXIT_OK)
        _discard_stdout()
        click.echo(f"iscsi-analyzer: cannot write the output: {e}", err=True)
        sys.exit(EXIT_INPUT)
    except click.exceptions.Abort:
        click.echo("iscsi-analyzer: aborted", err=True)
        sys.exit(130)
    except click.UsageError as e:
        click.echo(f"iscsi-analyzer: {safe_line(e.format_message())} (see --help)", err=True)
        sys.exit(EXIT_INPUT)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code if e.exit_code != 1 else EXIT_INPUT)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except BrokenPipeError:  # a write outside a command (help, version)
        _discard_stdout()
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
        click.echo(f"iscsi-analyzer: internal error: {type(e).__name__}: {safe_line(str(e))}{loc}. "
                   "Please report it with the capture if you can (run with --debug for the traceback).",
                   err=True)
        sys.exit(EXIT_INTERNAL)
    sys.exit(rv if isinstance(rv, int) else EXIT_OK)


def _register_diagnose() -> None:
    from analyzer.cli.diagnose import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


_register_diagnose()


def _register_annotate() -> None:
    from analyzer.cli.annotate import annotate

    cli.add_command(annotate)


_register_annotate()


if __name__ == "__main__":
    main()
