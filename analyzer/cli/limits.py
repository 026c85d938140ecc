"""Resource limits: their defaults, their command-line flags, and the README table.

A capture is untrusted input, so every structure that grows with it is bounded. The bounds
the pipeline enforces (``analyzer.pipeline.Options``) can be changed on the command line with
the flags of :func:`limit_options`; the others are fixed (see :data:`FIXED_LIMITS`).

Usage in ``cli.py``::

    @cli.command()
    @click.argument("capture", ...)
    @limit_options                   # adds --max-flows, --max-ooo-bytes, ... and one ``limits`` kwarg
    def pdus(capture: str, ..., limits: dict[str, int]) -> None:
        opts = Options(ports=..., state=..., anomalies=..., **limits)

When a flow is evicted because of ``--max-flows`` the analyzer says so in the record stream
(``TcpClosed(reason="evicted")``, anomaly kind ``resource_limit``); an out-of-order buffer over
its bound becomes an explicit capture gap (``TcpGap``); nothing is dropped silently.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import click

from analyzer.iscsi.framing import CONFIRM_LIMIT, DEFAULT_RESYNC_MAX_DSL, KEEP_MAX
from analyzer.tcp.reassembly import (
    DEFAULT_MAX_FLOWS,
    DEFAULT_MAX_OOO_BYTES,
    DEFAULT_MAX_OOO_SEGMENTS,
    DEFAULT_MAX_TOTAL_OOO_BYTES,
)

_UNITS: Final = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
                 "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}
_SIZE_RE: Final = re.compile(r"^\s*(\d+)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """``"4M"``, ``"4MiB"``, ``"256k"``, ``"65536"`` -> bytes (binary units). Raises ValueError."""
    m = _SIZE_RE.match(text)
    if m is None or m.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (use a number of bytes, or K, M, G: 4M, 256K)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def format_size(n: int) -> str:
    """Bytes as the README writes them: ``4 MiB``, ``256 KiB``, ``100 B``."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} B"


class ByteSize(click.ParamType):
    """A click parameter of bytes with an optional binary unit (K, M, G)."""

    name = "size"

    def __init__(self, minimum: int = 1) -> None:
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            n = value
        else:
            try:
                n = parse_size(str(value))
            except ValueError as e:
                self.fail(str(e), param, ctx)
        if n < self.minimum:
            self.fail(f"must be at least {format_size(self.minimum)}", param, ctx)
        return n


@dataclass(frozen=True)
class Limit:
    """One tunable bound: its ``Options`` field, flag, default, and what it bounds."""

    field: str
    flag: str
    default: int
    size: bool  #: a number of bytes (accepts K/M/G) rather than a count
    minimum: int
    help: str
    when_hit: str

    def default_text(self) -> str:
        return format_size(self.default) if self.size else f"{self.default:,}"


#: The limits the pipeline enforces, in the order of the flags' help.
LIMITS: Final = (
    Limit("max_flows", "--max-flows", DEFAULT_MAX_FLOWS, False, 1,
          "TCP flows tracked at once (iSCSI and ignored alike).",
          "half of the flows are evicted (idle, closed or never-opened ones first); an evicted open "
          "connection ends with TcpClosed(evicted) and a resource_limit anomaly"),
    Limit("max_ooo_bytes", "--max-ooo-bytes", DEFAULT_MAX_OOO_BYTES, True, 1,
          "Out-of-order bytes buffered per TCP direction while waiting for a hole to fill.",
          "the hole is declared a capture gap (TcpGap) and the buffered bytes are delivered"),
    Limit("max_total_ooo_bytes", "--max-reassembly-memory", DEFAULT_MAX_TOTAL_OOO_BYTES, True, 1,
          "Out-of-order bytes buffered over all flows.",
          "the flow whose segment crossed the bound has its hole declared a capture gap"),
    Limit("resync_max_dsl", "--resync-max-dsl", DEFAULT_RESYNC_MAX_DSL, True, 0,
          "Largest DataSegmentLength believed while resynchronising after a gap (until the login's "
          "MaxRecvDataSegmentLength is known).",
          "a candidate header claiming more is not taken as a PDU start"),
)

#: Bounds that are not flags: (what, value, what happens).
FIXED_LIMITS: Final = (
    ("Out-of-order segments buffered per TCP direction", f"{DEFAULT_MAX_OOO_SEGMENTS:,}",
     "the hole is declared a capture gap"),
    ("Data segment kept for decoding (Login/Text keys, sense, Reject, Async)", format_size(KEEP_MAX),
     "a longer segment is skipped by length (PDU still listed, its keys are not)"),
    ("Data-In/Data-Out payloads", "never buffered", "skipped by length, digest computed incrementally"),
    ("Bytes held to confirm a resynchronisation candidate", format_size(CONFIRM_LIMIT),
     "the candidate is judged without the header after it"),
    ("pcap record / pcapng block", "256 KiB / 16 MiB", "the capture is reported damaged from there on"),
)


def option_kwargs(**values: int | None) -> dict[str, int]:
    """Flag values (``None`` = not given) -> keyword arguments for ``analyzer.pipeline.Options``."""
    known = {lim.field for lim in LIMITS}
    unknown = set(values) - known
    if unknown:
        raise TypeError(f"unknown limit(s): {', '.join(sorted(unknown))}")
    return {k: int(v) for k, v in values.items() if v is not None}


def limit_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Click decorator: the ``LIMITS`` flags, handed to the command as one ``limits`` dict
    (only the flags given; pass it to ``Options(**limits)`` or ``run_analyze(**limits)``)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        kwargs["limits"] = option_kwargs(**{lim.field: kwargs.pop(lim.field, None) for lim in LIMITS})
        return f(*args, **kwargs)

    for lim in reversed(LIMITS):
        kind: click.ParamType = ByteSize(lim.minimum) if lim.size else click.IntRange(min=lim.minimum)
        wrapper = click.option(lim.flag, lim.field, type=kind, default=None, metavar="SIZE" if lim.size else "N",
                               help=f"{lim.help} [default: {lim.default_text()}]")(wrapper)
    return wrapper


def readme_table() -> str:
    """The README's "Resource limits" table (Markdown), generated from the definitions above."""
    lines = ["| Limit | Flag | Default | When it is reached |", "| --- | --- | --- | --- |"]
    for lim in LIMITS:
        lines.append(f"| {lim.help} | `{lim.flag}` | {lim.default_text()} | {lim.when_hit} |")
    for what, value, hit in FIXED_LIMITS:
        lines.append(f"| {what} | (fixed) | {value} | {hit} |")
    return "\n".join(lines)


__all__ = [
    "FIXED_LIMITS",
    "LIMITS",
    "ByteSize",
    "Limit",
    "format_size",
    "limit_options",
    "option_kwargs",
    "parse_size",
    "readme_table",
]
