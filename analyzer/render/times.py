"""Timestamps for people, the way ``tshark -t`` offers them, with the zone always said.

``a``  time of day, local zone        ``ad`` date and time, local zone
``u``  time of day, UTC               ``ud`` date and time, UTC
``r``  seconds since the capture's first frame
``e``  seconds since the epoch (frame.time_epoch)

Values carry no zone suffix (columns stay narrow); ``time_header`` names the zone in the header.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

#: The ``-t`` choices.
TIME_FORMATS: Final = ("a", "ad", "u", "ud", "r", "e")
#: Column width of each format.
TIME_WIDTHS: Final = {"a": 15, "ad": 26, "u": 15, "ud": 26, "r": 12, "e": 20}
_NS: Final = 1_000_000_000


def _local_offset(ts_ns: int) -> str:
    off = dt.datetime.fromtimestamp(ts_ns // _NS).astimezone().strftime("%z")
    return f"{off[:3]}:{off[3:]}" if off else "local"


def time_header(fmt: str, sample_ns: int | None = None) -> str:
    """``time (UTC)``, ``time (UTC+01:00)``, ``time (s since frame 1)``, ``time (epoch s)``."""
    if fmt in ("u", "ud"):
        return "time (UTC)"
    if fmt in ("a", "ad"):
        return f"time (UTC{_local_offset(sample_ns if sample_ns is not None else 0)})"
    if fmt == "r":
        return "time (s since frame 1)"
    return "time (epoch s)"


def format_time(ts_ns: int, fmt: str, first_ns: int | None = None) -> str:
    """One timestamp in format ``fmt`` (``first_ns``: the capture's first frame, for ``r``)."""
    micros = f".{(ts_ns % _NS) // 1000:06d}"
    if fmt == "e":
        return f"{ts_ns // _NS}.{ts_ns % _NS:09d}"
    if fmt == "r":
        return f"{(ts_ns - (first_ns if first_ns is not None else ts_ns)) / 1e9:.6f}"
    if fmt in ("u", "ud"):
        d = dt.datetime.fromtimestamp(ts_ns // _NS, tz=dt.UTC)
    else:
        d = dt.datetime.fromtimestamp(ts_ns // _NS).astimezone()
    return d.strftime("%H:%M:%S" if fmt in ("a", "u") else "%Y-%m-%d %H:%M:%S") + micros
