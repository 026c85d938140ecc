"""Command line interface (click only: parse arguments, call the pipeline, print).

Exit codes: 0 success; 1 anomalies at or above ``--fail-on``; 2 usage error or unreadable
input; 3 internal error (one line plus a hint; the traceback only with ``--debug``).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from typing import Any

import click

from analyzer import __version__

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


def _options(ports: tuple[int, ...], *, state: bool, anomalies: bool) -> Any:
    from analyzer.pipeline import Options
    from analyzer.tcp.reassembly import DEFAULT_PORTS

    return Options(ports=DEFAULT_PORTS | frozenset(ports), state=state, anomalies=anomalies)


def _records(capture: str, options: Any, readers: list[Any]) -> Iterator[Any]:
    """Pipeline records; a capture that cannot be opened becomes exit status 2."""
    from analyzer.capture import CaptureError
    from analyzer.pipeline import iter_records

    try:
        gen = iter_records(capture, options, reader_out=readers)
        first = next(gen, None)
    except CaptureError as e:
        raise InputError(str(e)) from e
    if first is None:
        return
    yield first
    yield from gen


def _report_damage(readers: list[Any]) -> None:
    for reader in readers:
        for d in getattr(reader, "damage", ()):
            click.echo(f"iscsi-analyzer: warning: {d.message} (after frame {d.frame}); "
                       "everything before it was analyzed", err=True)


@cli.command()
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@port_option
def pdus(capture: str, fmt: str, ports: tuple[int, ...]) -> None:
    """One row per iSCSI PDU, in capture order."""
    from analyzer.iscsi.describe import info
    from analyzer.output import RowWriter
    from analyzer.records import MalformedPdu, Pdu, TcpOpened
    from analyzer.views import PDU_COLUMNS, pdu_row

    readers: list[Any] = []
    endpoints: dict[str, Any] = {}
    widths = {"frame": 7, "time": 12, "src": 21, "dst": 21, "opcode_name": 24, "itt": 10, "cmdsn": 10,
              "statsn": 10, "dsl": 7}
    writer = RowWriter(fmt, PDU_COLUMNS, table_columns=("frame", "time", "src", "dst", "opcode_name", "itt",
                                                        "cmdsn", "statsn", "dsl", "info"), widths=widths)
    first_ts: int | None = None
    for rec in _records(capture, _options(ports, state=False, anomalies=False), readers):
        t = type(rec)
        if t is TcpOpened:
            endpoints[rec.conn] = rec
            continue
        if isinstance(rec, (Pdu, MalformedPdu)):
            ep = endpoints[rec.conn]
            ep_view = _Endpoints(ep.client, ep.client_port, ep.server, ep.server_port)
            text = info(rec) if isinstance(rec, Pdu) else f"Malformed PDU: {rec.reason}"
            row = pdu_row(rec, ep_view, text)
            if fmt == "table":
                if first_ts is None:
                    first_ts = rec.ts_ns
                row["time"] = f"{(rec.ts_ns - first_ts) / 1e9:.6f}"
                row["src"] = f"{row['src']}:{row['sport']}"
                row["dst"] = f"{row['dst']}:{row['dport']}"
            writer.write(row)
    _report_damage(readers)


class _Endpoints:
    __slots__ = ("client", "client_port", "server", "server_port")

    def __init__(self, client: str, client_port: int, server: str, server_port: int) -> None:
        self.client, self.client_port, self.server, self.server_port = client, client_port, server, server_port


@cli.command()
@click.argument("capture", type=click.Path(dir_okay=False))
@port_option
@click.option("--max-differences", default=50, show_default=True, help="How many differences to print.")
def crosscheck(capture: str, ports: tuple[int, ...], max_differences: int) -> None:
    """Compare our PDU decode with tshark's, PDU by PDU; exit 1 when they differ."""
    from analyzer.capture.tshark import TsharkError, tshark_pdus_union
    from analyzer.crosscheck import compare

    readers: list[Any] = []
    records = list(_records(capture, _options(ports, state=False, anomalies=False), readers))
    try:
        theirs = tshark_pdus_union(capture, ports)
    except TsharkError as e:
        raise InputError(str(e)) from e
    res = compare(records, theirs)
    click.echo(f"{capture}: ours {res.ours} PDUs, tshark {res.theirs} PDUs, matched {res.matched}, "
               f"recovered after capture gaps (tshark lost framing) {res.recovered}, "
               f"differences {len(res.differences)}")
    for d in res.differences[:max_differences]:
        click.echo(f"  frame {d.frame}: {d.kind}: {d.detail}")
    if len(res.differences) > max_differences:
        click.echo(f"  ... {len(res.differences) - max_differences} more")
    _report_damage(readers)
    if not res.agree:
        sys.exit(EXIT_FINDINGS)


def _register_lab() -> None:
    from analyzer.lab.cli import lab

    cli.add_command(lab)


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
