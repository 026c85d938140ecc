"""The self-contained HTML report: inline CSS, inline SVG charts drawn here, no script at all.

Every string that comes from the capture (names, aliases, text keys, messages, connection
ids) goes through :func:`e` (``html.escape``), in element text, attributes and SVG
``<title>`` tooltips alike. A Content-Security-Policy meta tag forbids scripts and any
network fetch as a second line of defence. Secrets (CHAP_C, CHAP_R, CHAP_N, ...) are
masked unless ``show_secrets``.

Sections: summary, sessions (identity, negotiated parameters, connections, login keys),
state timeline (RFC 7143 §8 connection and session states per side, anomaly markers),
tasks, latency (box chart with p5/p25/p50/p75/p99 and a p50/p95/p99 table per operation
and LUN), throughput and IOPS over time per session, anomalies.


Modules, one job each: ``text`` (escaping, formats, table snippets, caps, colours), ``context``
(time span and shared columns), ``charts`` (inline SVG), ``sessions`` (summary and sessions
sections), ``timeline`` (state timeline), ``sections`` (tasks, latency, throughput, anomalies),
``page`` (CSS and ``render``). Every section is O(n log n) or better in the rows of its tables,
and the per-section row caps (``text.MAX_*``) keep a report of 100k sessions usable: what is
not shown is counted, with a pointer to the full table in the Parquet / CSV files.
"""

from analyzer.reports.html.page import render
from analyzer.reports.html.text import e

__all__ = ["e", "render"]
