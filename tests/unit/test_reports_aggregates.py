"""Report aggregates: latency digests (exact below the bound, within 1 % above it, mergeable)
and the PDU summary (same as computed from the table, mergeable, bounded)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analyzer.reports import aggregates
from analyzer.reports.aggregates import LatencyDigest, LatencyStats, PduSummary

QS = [1, 5, 25, 50, 75, 95, 99, 99.9]


def _latencies(n: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.lognormal(mean=13, sigma=1.5, size=n)).astype(np.int64) + 1  # ~0.4 ms median, long tail


def test_exact_below_the_bound() -> None:
    v = _latencies(5000)
    d = LatencyDigest()
    for x in v:
        d.add(int(x))
    assert d.is_exact and d.count == 5000
    want = np.percentile(pd.to_timedelta(v, unit="ns").total_seconds().to_numpy(), QS)
    assert d.percentiles_s(QS) == [float(x) for x in want]
    assert d.max_s() == v.max() / 1e9


@pytest.mark.parametrize("n", [aggregates.EXACT_LATENCIES + 1, 200_000])
def test_histogram_within_one_percent_above_the_bound(n: int) -> None:
    v = _latencies(n, seed=n)
    d = LatencyDigest()
    for x in v.tolist():
        d.add(x)
    assert not d.is_exact and d.count == n and d.min == v.min() and d.max == v.max()
    lo = np.percentile(v, QS, method="lower") / 1e9
    hi = np.percentile(v, QS, method="higher") / 1e9
    for q, got, a, b in zip(QS, d.percentiles_s(QS), lo, hi, strict=True):
        assert a * (1 - aggregates.LATENCY_RELATIVE_ERROR) <= got <= b * (1 + aggregates.LATENCY_RELATIVE_ERROR), q
    assert len(d.hist) < 2000  # bounded by the number of buckets, not the number of values


def test_merge_equals_one_pass() -> None:
    v = _latencies(3 * aggregates.EXACT_LATENCIES // 2)
    whole, a, b = LatencyDigest(), LatencyDigest(), LatencyDigest()
    for x in v.tolist():
        whole.add(x)
    half = len(v) // 2
    for x in v[:half].tolist():
        a.add(x)
    for x in v[half:].tolist():
        b.add(x)
    assert a.is_exact and b.is_exact
    a.merge(b)
    assert not a.is_exact and (a.count, a.min, a.max) == (whole.count, whole.min, whole.max)
    assert a.hist == whole.hist and a.percentiles_s(QS) == whole.percentiles_s(QS)


def test_latency_stats_filter_and_group() -> None:
    s = LatencyStats()
    s.add_task("scsi", "completed", False, "READ(10)", 0, 100)
    s.add_task("scsi", "check_condition", False, "READ(10)", 1, 300)
    s.add_task("scsi", "completed", True, "READ(10)", 0, 999)  # partial: left out
    s.add_task("nop", "completed", False, None, None, 5)  # not SCSI
    s.add_task("scsi", "open_at_capture_end", False, "WRITE(10)", 0, 7)  # never completed
    assert set(s.groups) == {("READ(10)", 0), ("READ(10)", 1)}
    assert s.by_operation()["READ(10)"].count == 2


def test_pdu_summary_bounded_and_mergeable() -> None:
    a, b = PduSummary(max_points=10), PduSummary(max_points=10)
    for i in range(6):
        a.add("c1", 0x25, "SCSI Data In", 1000 + i, 512)
        b.add("c1", 0x05, "SCSI Data Out", 2000 + i, 512)
    a.conn_session = {"c1": "s1"}
    ts, r, w = a.session_points()["s1"]
    assert len(ts) == 6 and r.sum() == 6 * 512 and w.sum() == 0
    a.merge(b)
    assert a.overflow and a.session_points() == {}  # 12 points > 10: throughput per task instead
    assert a.opcode_counts == {"SCSI Data In": 6, "SCSI Data Out": 6}
    assert (a.first_ts, a.last_ts) == (1000, 2005)
