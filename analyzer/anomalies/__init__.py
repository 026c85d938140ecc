"""Anomaly rules over the record stream, and the helpers the CLI uses to print them.

``AnomalyEngine`` is what the pipeline runs; ``KINDS`` is the catalogue (kind -> default
severity, RFC section, meaning, rule, what to check next); ``anomaly_row`` turns a finding
into the columns of ``iscsi-analyzer anomalies``; ``severity_at_least`` implements
``--min-severity`` / ``--fail-on``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from analyzer.anomalies.engine import AnomalyEngine
from analyzer.anomalies.kinds import CATALOGUE, KINDS, Kind, render_markdown, severity_at_least, severity_rank
from analyzer.records import SEVERITIES, Anomaly

#: Columns of ``anomaly_row``, in display order.
ANOMALY_COLUMNS: Final = ("frame", "ts", "severity", "kind", "session", "conn", "message", "rfc", "frames",
                          "display_filter")


def format_ts(ts_ns: int) -> str:
    """ISO 8601 UTC with microseconds, e.g. ``2005-01-30T21:35:41.540760Z``."""
    secs, ns = divmod(ts_ns, 1_000_000_000)
    dt = datetime.fromtimestamp(secs, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns // 1000:06d}Z"


def anomaly_row(a: Anomaly) -> dict[str, object]:
    """One finding as a flat row (ANOMALY_COLUMNS); ``frames`` is space-separated,
    ``session``/``conn`` "" if unknown."""
    frames = sorted(set(a.frames or (a.frame,)))
    return {
        "frame": a.frame,
        "ts": format_ts(a.ts_ns),
        "severity": a.severity,
        "kind": a.kind,
        "session": a.session or "",
        "conn": a.conn or "",
        "message": a.message,
        "rfc": a.rfc,
        "frames": " ".join(str(f) for f in frames),
        "display_filter": a.display_filter,
    }


__all__ = [
    "ANOMALY_COLUMNS",
    "CATALOGUE",
    "KINDS",
    "SEVERITIES",
    "AnomalyEngine",
    "Kind",
    "anomaly_row",
    "format_ts",
    "render_markdown",
    "severity_at_least",
    "severity_rank",
]
