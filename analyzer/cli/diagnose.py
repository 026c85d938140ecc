"""Diagnosis commands: drops, paths, nops, queue, logins, connections (click only; the work is in
``analyzer.diagnosis``). Each takes --format table|csv|jsonl like the other commands."""

from __future__ import annotations

from typing import Any

import click

from analyzer.cli.app import FORMATS, _options, _records, _report_damage, port_option
from analyzer.cli.limits import limit_options

#: Columns added to the drops table from the matching recovery row.
RECOVERY_COLUMNS = ("io_stopped_ms", "resumed_via", "resumed_session", "last_completed_frame",
                    "first_completed_frame", "retried_commands")


def _diagnose(capture: str, ports: tuple[int, ...], limits: dict[str, int]) -> Any:
    from analyzer.diagnosis import diagnose

    readers: list[Any] = []
    diag = diagnose(_records(capture, _options(ports, state=True, anomalies=False, limits=limits), readers))
    _report_damage(readers)
    return diag


def _flat(row: dict[str, Any], t0: int | None) -> dict[str, Any]:
    """Table/CSV cells: relative times, evidence frames and key diffs as text."""
    out = dict(row)
    if "ts_ns" in out and t0 is not None:
        out["time"] = f"{(out['ts_ns'] - t0) / 1e9:.6f}"
    for k, v in row.items():
        if k == "diff":
            out[k] = "; ".join(f"{side} {key}: {a if a is not None else '(absent)'} -> "
                               f"{b if b is not None else '(absent)'}" for side, key, a, b in v)
        elif isinstance(v, float):
            out[k] = f"{v:.3f}"
        elif isinstance(v, tuple):
            out[k] = " ".join(str(x) for x in v)
    return out


def _write(fmt: str, columns: tuple[str, ...], rows: list[dict[str, Any]], t0: int | None,
           table_columns: tuple[str, ...], widths: dict[str, int]) -> None:
    from analyzer.render.output import RowWriter

    cols = ("time",) + columns if fmt != "jsonl" else columns
    writer = RowWriter(fmt, cols, table_columns=("time",) + table_columns, widths={"time": 10, **widths})
    for r in rows:
        writer.write(r if fmt == "jsonl" else _flat(r, t0))


def _common(f: Any) -> Any:
    f = limit_options(f)
    f = port_option(f)
    f = click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)(f)
    return click.argument("capture", type=click.Path(dir_okay=False))(f)


@click.command()
@_common
@click.option("--story", is_flag=True, help="Print the plain-sentence story instead of the table.")
def drops(capture: str, fmt: str, ports: tuple[int, ...], limits: dict[str, int], story: bool) -> None:
    """Why each connection ended without a clean logout, and how long I/O stopped."""
    d = _diagnose(capture, ports, limits)
    if story:
        from analyzer.render.output import terminal_safe

        for line in d.story:  # names come from the capture: no escape sequences reach the terminal
            click.echo(terminal_safe(line))
        return
    from analyzer.diagnosis import DropCause

    rec = {r.conn: r.as_row() for r in d.recoveries}
    rows = []
    for x in d.drops:
        row = x.as_row()
        r = rec.get(x.conn, {})
        row.update({c: r.get(c) for c in RECOVERY_COLUMNS})
        rows.append(row)
    _write(fmt, DropCause.COLUMNS + RECOVERY_COLUMNS, rows, d.capture_start_ns,
           ("session", "conn", "cause", "confidence", "ended_by", "io_stopped_ms", "resumed_via", "lost_commands",
            "explanation"),
           {"session": 7, "conn": 34, "cause": 20, "confidence": 10, "ended_by": 13, "io_stopped_ms": 13,
            "resumed_via": 18, "lost_commands": 13})


@click.command()
@_common
@click.option("--intervals", is_flag=True, help="One row per up/down interval instead of one per path.")
def paths(capture: str, fmt: str, ports: tuple[int, ...], limits: dict[str, int], intervals: bool) -> None:
    """Every path (initiator address to target portal) per initiator-target pair, its sessions and downtime."""
    from analyzer.diagnosis import PathInterval, PathSummary

    d = _diagnose(capture, ports, limits)
    if intervals:
        _write(fmt, PathInterval.COLUMNS, [i.as_row() for i in d.path_intervals], d.capture_start_ns,
               ("initiator_address", "portal", "state", "duration_ms", "sessions", "cause", "target"),
               {"initiator_address": 18, "portal": 22, "state": 5, "duration_ms": 12, "sessions": 12, "cause": 20})
        return
    _write(fmt, PathSummary.COLUMNS, [p.as_row() for p in d.paths], d.capture_start_ns,
           ("initiator_address", "portal", "sessions", "up_ms", "down_ms", "down_intervals", "never_came_back",
            "duplicate_sessions", "target"),
           {"initiator_address": 18, "portal": 22, "sessions": 14, "up_ms": 12, "down_ms": 12, "down_intervals": 14,
            "never_came_back": 15, "duplicate_sessions": 18})


@click.command()
@_common
def nops(capture: str, fmt: str, ports: tuple[int, ...], limits: dict[str, int]) -> None:
    """NOP-Out/NOP-In pings with round-trip times; unanswered pings."""
    from analyzer.diagnosis import NopPing

    d = _diagnose(capture, ports, limits)
    _write(fmt, NopPing.COLUMNS, [n.as_row() for n in d.nops], d.capture_start_ns,
           ("frame", "session", "conn", "pinger", "tag", "reply_frame", "rtt_ms", "outcome"),
           {"frame": 7, "session": 7, "conn": 34, "pinger": 9, "tag": 10, "reply_frame": 11, "rtt_ms": 9})


@click.command()
@_common
def queue(capture: str, fmt: str, ports: tuple[int, ...], limits: dict[str, int]) -> None:
    """Outstanding commands per session (p50/p95/max) and CmdSN window exhaustion (RFC 7143 §4.2.2.1)."""
    from analyzer.diagnosis import QueueStats

    d = _diagnose(capture, ports, limits)
    _write(fmt, QueueStats.COLUMNS, [q.as_row() for q in d.queues], d.capture_start_ns,
           ("session", "commands", "depth_p50", "depth_p95", "depth_max", "window_min", "window_max",
            "window_exhausted", "window_exhausted_ms", "window_shrinks"),
           {"session": 7, "commands": 8, "depth_p50": 9, "depth_p95": 9, "depth_max": 9, "window_min": 10,
            "window_max": 10, "window_exhausted": 16, "window_exhausted_ms": 19})


@click.command()
@_common
def logins(capture: str, fmt: str, ports: tuple[int, ...], limits: dict[str, int]) -> None:
    """Every failed login explained; key-by-key diff against a good login of the same initiator and target."""
    from analyzer.diagnosis import LoginDiagnosis

    d = _diagnose(capture, ports, limits)
    _write(fmt, LoginDiagnosis.COLUMNS, [lg.as_row() for lg in d.logins], d.capture_start_ns,
           ("frame", "conn", "stage", "status", "status_name", "explanation", "check", "compared_conn", "diff"),
           {"frame": 7, "conn": 34, "stage": 11, "status": 7, "status_name": 24})


@click.command()
@_common
def connections(capture: str, fmt: str, ports: tuple[int, ...], limits: dict[str, int]) -> None:
    """Per-connection transport statistics (bytes, PDUs, retransmissions, gaps, zero windows) and history."""
    from analyzer.diagnosis import ConnectionStats

    d = _diagnose(capture, ports, limits)
    _write(fmt, ConnectionStats.COLUMNS, [c.as_row() for c in d.connections], d.capture_start_ns,
           ("session", "conn", "bytes_i2t", "bytes_t2i", "pdus_i2t", "pdus_t2i", "retransmissions",
            "missing_bytes_i2t", "missing_bytes_t2i", "zero_windows_t2i", "history"),
           {"session": 7, "conn": 34, "bytes_i2t": 10, "bytes_t2i": 10, "pdus_i2t": 8, "pdus_t2i": 8,
            "retransmissions": 15, "missing_bytes_i2t": 17, "missing_bytes_t2i": 17, "zero_windows_t2i": 16})


COMMANDS = (drops, paths, nops, queue, logins, connections)
