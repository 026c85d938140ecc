"""Row selection shared by ``pdus``, ``tasks``, ``timeline`` and ``anomalies``.

``--session``, ``--connection``, ``--itt``, ``--since`` and ``--until`` work like Wireshark's
Follow Stream and time filters. A selector that names nothing in the capture is an input
error (exit 2) listing the values that exist, not an empty table: "say what you did not find".
Times outside the capture are said in one warning line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import click

#: How many valid values an error message lists.
_LIST_AT_MOST = 20


def selection_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Click decorator: the five selectors, handed to the command as keyword arguments."""
    f = click.option("--until", "until", metavar="TIME",
                     help="Only rows at or before TIME (epoch seconds, +SECONDS from the first frame, or ISO UTC).")(f)
    f = click.option("--since", "since", metavar="TIME",
                     help="Only rows at or after TIME (epoch seconds, +SECONDS from the first frame, or ISO UTC).")(f)
    f = click.option("--itt", "itt", metavar="ITT",
                     help="Only this Initiator Task Tag (0x10db48da or decimal): its PDUs, task, transitions "
                          "and findings.")(f)
    f = click.option("--connection", "connection", metavar="CONN",
                     help="Only this TCP connection: as shown in `sessions` (10.0.0.1:40000->10.0.0.2:3260) "
                          "or one of its endpoints (10.0.0.1:40000).")(f)
    f = click.option("--session", "session_id", metavar="ID",
                     help="Only this session (id as shown by `sessions`, e.g. s2).")(f)
    return f


def parse_itt(text: str) -> int:
    """``0x10db48da`` or ``282806490`` -> int (a 32-bit tag)."""
    t = text.strip().lower()
    try:
        value = int(t, 16) if t.startswith("0x") else int(t)
    except ValueError:
        raise click.BadParameter(f"{text!r}: an ITT is 0x followed by hex digits, or a decimal number",
                                 param_hint="'--itt'") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise click.BadParameter(f"{text!r}: an ITT is 32 bits", param_hint="'--itt'")
    return value


def parse_time(text: str, start_ns: Callable[[], int | None], option: str) -> int:
    """TIME: epoch seconds, +SECONDS from the capture's first frame, or an ISO 8601 time (UTC unless given)."""
    t = text.strip()
    try:  # Decimal: epoch seconds with nanoseconds are exact (a float has 16 digits)
        seconds = Decimal(t.removeprefix("+"))
    except InvalidOperation:
        seconds = None
    if seconds is not None and seconds.is_finite():
        ns = int(seconds * 1_000_000_000)
        if t.startswith("+"):
            start = start_ns()
            if start is None:
                raise click.BadParameter(f"{text!r}: the capture has no frames to count from", param_hint=option)
            return start + ns
        return ns
    try:
        d = dt.datetime.fromisoformat(t)
    except ValueError as e:
        raise click.BadParameter(f"{text!r}: use epoch seconds, +SECONDS or an ISO time", param_hint=option) from e
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return int(d.timestamp() * 1e9)


def iso(ts_ns: int) -> str:
    """Nanoseconds since the epoch as ISO 8601 UTC, microseconds, ``Z``."""
    return dt.datetime.fromtimestamp(ts_ns / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _listing(values: set[str]) -> str:
    if not values:
        return "there are none in this capture"
    ordered = sorted(values, key=lambda v: (len(v), v))
    more = len(ordered) - _LIST_AT_MOST
    return "valid: " + ", ".join(ordered[:_LIST_AT_MOST]) + (f" (and {more} more)" if more > 0 else "")


def _endpoints(conn: str) -> tuple[str, ...]:
    return tuple(conn.split("->", 1)) if "->" in conn else (conn,)


@dataclass
class Selection:
    """What the selectors ask for, and what the capture turned out to hold."""

    session: str | None = None
    connection: str | None = None
    itt: int | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    since_text: str | None = None
    until_text: str | None = None
    sessions_seen: set[str] = field(default_factory=set)
    conns_seen: set[str] = field(default_factory=set)
    itt_seen: bool = False
    itt_frames: set[int] = field(default_factory=set)  #: frames of the PDUs carrying the ITT
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    conn_sessions: dict[str, str] = field(default_factory=dict)  #: for ``pdus --session`` (first pass)

    @classmethod
    def from_options(cls, capture: str, session_id: str | None, connection: str | None, itt: str | None,
                     since: str | None, until: str | None) -> Selection:
        from analyzer.pipeline import capture_start_ns

        start: list[int | None] = []

        def start_ns() -> int | None:
            if not start:
                start.append(capture_start_ns(capture))
            return start[0]

        sel = cls(session=session_id, connection=connection, itt=parse_itt(itt) if itt is not None else None,
                  since_text=since, until_text=until)
        if since is not None:
            sel.since_ns = parse_time(since, start_ns, "'--since'")
        if until is not None:
            sel.until_ns = parse_time(until, start_ns, "'--until'")
        if sel.since_ns is not None and sel.until_ns is not None and sel.since_ns > sel.until_ns:
            raise click.BadParameter(f"--since {since} is after --until {until}", param_hint="'--since'")
        return sel

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.session, self.connection, self.itt, self.since_ns, self.until_ns))

    # ------------------------------------------------------------------ per record

    def observe(self, rec: Any) -> None:
        """Note what the capture holds (call for every record, selected or not)."""
        ts = rec.ts_ns
        if self.first_ts_ns is None or ts < self.first_ts_ns:
            self.first_ts_ns = ts
        if self.last_ts_ns is None or ts > self.last_ts_ns:
            self.last_ts_ns = ts
        session = getattr(rec, "session", None)
        if isinstance(session, str):
            self.sessions_seen.add(session)
        conn = getattr(rec, "conn", None)
        if isinstance(conn, str):
            self.conns_seen.add(conn)
        if self.itt is not None and getattr(rec, "itt", None) == self.itt:
            self.itt_seen = True
            frame = getattr(rec, "frame", None)
            if isinstance(frame, int):
                self.itt_frames.add(frame)

    def _conn_matches(self, conn: str | None) -> bool:
        if conn is None or self.connection is None:
            return False
        return conn == self.connection or self.connection in _endpoints(conn)

    def _time_matches(self, start_ns: int, end_ns: int) -> bool:
        return ((self.since_ns is None or end_ns >= self.since_ns)
                and (self.until_ns is None or start_ns <= self.until_ns))

    def match(self, rec: Any, session: str | None = None) -> bool:
        """Is ``rec`` selected? ``session`` overrides the record's own (PDUs carry none)."""
        if not self.active:
            return True
        sess = session if session is not None else getattr(rec, "session", None)
        if self.session is not None and sess != self.session:
            return False
        if self.connection is not None and not self._conn_matches(getattr(rec, "conn", None)):
            return False
        start = getattr(rec, "start_ts_ns", rec.ts_ns)
        end = getattr(rec, "end_ts_ns", rec.ts_ns)
        if not self._time_matches(start, end):
            return False
        if self.itt is not None:
            own = getattr(rec, "itt", None)
            if own is not None:
                return bool(own == self.itt)
            frames = getattr(rec, "frames", None) or (getattr(rec, "frame", None),)
            return any(f in self.itt_frames for f in frames)
        return True

    # ------------------------------------------------------------------ at the end

    def check(self, readers: Sequence[Any] = ()) -> list[str]:
        """Raise ``click.BadParameter`` (exit 2) for a selector naming nothing in the capture;
        return warnings (one line each) for times outside it."""
        from analyzer.render.output import safe_line

        if self.session is not None and self.session not in self.sessions_seen:
            raise click.BadParameter(f"no session {safe_line(self.session)!r} in this capture; "
                                     f"{_listing(self.sessions_seen)}", param_hint="'--session'")
        if self.connection is not None and not any(self._conn_matches(c) for c in self.conns_seen):
            raise click.BadParameter(f"no connection {safe_line(self.connection)!r} in this capture; "
                                     f"{_listing(self.conns_seen)}", param_hint="'--connection'")
        if self.itt is not None and not self.itt_seen:
            raise click.BadParameter(f"no PDU with ITT 0x{self.itt:08x} in this capture", param_hint="'--itt'")
        last = max([r.last_ts_ns for r in readers if getattr(r, "last_ts_ns", 0)] or [self.last_ts_ns or 0])
        first = self.first_ts_ns
        warnings: list[str] = []
        if first is None:
            return warnings
        if self.since_ns is not None and self.since_ns > last:
            warnings.append(f"--since {self.since_text} ({iso(self.since_ns)}) is after the capture's last "
                            f"iSCSI frame ({iso(last)}): nothing to show")
        if self.until_ns is not None and self.until_ns < first:
            warnings.append(f"--until {self.until_text} ({iso(self.until_ns)}) is before the capture's first "
                            f"iSCSI frame ({iso(first)}): nothing to show")
        return warnings


def check_kinds(kinds: tuple[str, ...]) -> None:
    """``--kind`` values must be catalogue kinds (exit 2 with the list otherwise)."""
    from analyzer.anomalies import KINDS

    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        from analyzer.render.output import safe_line

        raise click.BadParameter(f"unknown kind {', '.join(safe_line(k) for k in unknown)}; valid: "
                                 + ", ".join(sorted(KINDS)), param_hint="'--kind'")
