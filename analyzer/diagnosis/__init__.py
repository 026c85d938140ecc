"""Diagnosis: answers to the questions SAN engineers ask of a capture.

Why a connection dropped (``drops``), how long I/O stopped (``recoveries``), which paths were
up (``paths``, ``path_intervals``), queue depth and the command window (``queues``), NOP
round trips (``nops``), failed logins explained (``logins``) and per-connection transport
statistics (``connections``), plus ``story`` sentences. Sans-I/O, above state and anomalies
and below reports: it consumes the pipeline's record stream and imports only the stdlib,
``records`` and lower layers.

    from analyzer.pipeline import iter_records
    from analyzer.diagnosis import diagnose
    diag = diagnose(iter_records("capture.pcap"))
    for name, (columns, rows) in diag.tables().items(): ...
"""

from analyzer.diagnosis.causes import CAUSES, RULES
from analyzer.diagnosis.engine import TABLE_COLUMNS, Diagnoser, Diagnosis, diagnose
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

__all__ = [
    "CAUSES",
    "RULES",
    "TABLE_COLUMNS",
    "ConnectionStats",
    "Diagnoser",
    "Diagnosis",
    "DropCause",
    "LoginDiagnosis",
    "NopPing",
    "PathInterval",
    "PathSummary",
    "QueueStats",
    "Recovery",
    "diagnose",
]
