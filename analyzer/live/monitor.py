"""The live analysis, by job (this module re-exports them for existing imports):

* ``analyzer.live.engine``: ``LiveAnalyzer`` (the pipeline, no I/O), ``LiveOptions``, ``LiveStatus``;
  its docstring is the theory of operation;
* ``analyzer.live.stats``: rolling statistics (``RollingStats``, ``SessionStats``, latency bins);
* ``analyzer.live.sinks``: ``AlertSink`` (``--alerts``) and ``LiveReport`` (``--out``);
* ``analyzer.live.signals``: ``StopSignals``;
* ``analyzer.live.loop``: ``run_live``, the one-thread loop over the capture pipe.
"""

from __future__ import annotations

from analyzer.live.engine import ConnView, LiveAnalyzer, LiveOptions, LiveStatus, SessionView, pipeline_tick
from analyzer.live.loop import CaptureSource, LiveResult, View, run_live
from analyzer.live.signals import StopSignals
from analyzer.live.sinks import AlertSink, LiveReport, anomaly_to_row, json_line
from analyzer.live.stats import (
    BINS_PER_OCTAVE,
    NS,
    RollingStats,
    SessionStats,
    StatsView,
    bin_value,
    latency_bin,
)

__all__ = [
    "BINS_PER_OCTAVE", "NS", "AlertSink", "CaptureSource", "ConnView", "LiveAnalyzer", "LiveOptions", "LiveReport",
    "LiveResult", "LiveStatus", "RollingStats", "SessionStats", "SessionView", "StatsView", "StopSignals", "View",
    "anomaly_to_row", "bin_value", "json_line", "latency_bin", "pipeline_tick", "run_live",
]
