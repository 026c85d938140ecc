"""The diagnosis tables of a report (``analyzer.diagnosis``) as DataFrames with fixed schemas.

``analyze`` feeds the pipeline's records to a ``diagnosis.Diagnoser`` in the same pass as the
report collector; :func:`diagnosis_frames` turns its ``Diagnosis`` into one DataFrame per table
(``DIAGNOSIS_TABLES``), written as Parquet next to the other tables and read back lazily by
``Analysis`` like them.

Schemas are derived from the row classes' field types: ``int`` -> ``int``, ``int | None`` ->
``Int``, ``float`` -> ``float`` (milliseconds, nullable), text -> ``str`` (or ``cat`` for the
few low-cardinality columns in ``_CATEGORIES``), tuples -> ``str`` (members joined by a space;
key diffs as ``side key: failing -> succeeding; ...``). Integer-nanosecond times
(``*ts_ns``) become ``ts`` columns named without the ``_ns`` suffix (``ts_ns`` -> ``ts``).
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any, Final

from analyzer.diagnosis.rows import (
    ConnectionStats,
    DropCause,
    LoginDiagnosis,
    NopPing,
    PathInterval,
    PathSummary,
    QueueStats,
    Recovery,
)

if TYPE_CHECKING:
    import pandas as pd

    from analyzer.diagnosis import Diagnosis

#: report table name -> (Diagnosis attribute, row class)
_SOURCES: Final[dict[str, tuple[str, type]]] = {
    "drops": ("drops", DropCause),
    "recoveries": ("recoveries", Recovery),
    "paths": ("paths", PathSummary),
    "path_intervals": ("path_intervals", PathInterval),
    "queues": ("queues", QueueStats),
    "nop_pings": ("nops", NopPing),
    "logins": ("logins", LoginDiagnosis),
    "connection_stats": ("connections", ConnectionStats),
}
#: The diagnosis tables of a report directory, in report order.
DIAGNOSIS_TABLES: Final = tuple(_SOURCES)
_CATEGORIES: Final = frozenset(("cause", "confidence", "ended_by", "resumed_via", "pinger", "outcome", "state",
                                "stage", "ended"))


def _column(field: str) -> str:
    return field[:-3] if field.endswith("ts_ns") else field


def _kind(field: str, tp: Any) -> str:
    if field.endswith("ts_ns"):
        return "ts"
    if field in _CATEGORIES:
        return "cat"
    args = typing.get_args(tp)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), tp) if optional else tp
    if base is bool:
        return "bool"
    if base is int:
        return "Int" if optional else "int"
    if base is float:
        return "float"
    return "str"


def _schema(cls: type) -> dict[str, str]:
    hints = typing.get_type_hints(cls)
    return {_column(f): _kind(f, hints[f]) for f in cls.COLUMNS}  # type: ignore[attr-defined]


DIAGNOSIS_SCHEMAS: Final[dict[str, dict[str, str]]] = {name: _schema(cls) for name, (_, cls) in _SOURCES.items()}


def _cell(field: str, value: Any) -> Any:
    if field == "diff":
        return "; ".join(f"{side} {key}: {a if a is not None else '(absent)'} -> "
                         f"{b if b is not None else '(absent)'}" for side, key, a, b in value) or None
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    return value


def diagnosis_rows(name: str, diag: Diagnosis) -> list[dict[str, Any]]:
    """The rows of one report table (column names of ``DIAGNOSIS_SCHEMAS``, plain values)."""
    attr, cls = _SOURCES[name]
    return [{_column(f): _cell(f, getattr(r, f)) for f in cls.COLUMNS}  # type: ignore[attr-defined]
            for r in getattr(diag, attr)]


def diagnosis_frames(diag: Diagnosis) -> dict[str, pd.DataFrame]:
    """Every diagnosis table as a conformed DataFrame."""
    from analyzer.reports import frames

    return {name: frames.build(name, diagnosis_rows(name, diag)) for name in DIAGNOSIS_TABLES}
