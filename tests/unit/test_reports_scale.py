"""The HTML report and the summary stay linear in the number of sessions (they were quadratic:
the timeline scanned every connection per session, throughput filtered the sessions table per
session), and big reports stay usable (per-section caps with 'n more' notes).

Records are built directly (SessionSummary, ConnectionSummary, Transition, Anomaly), so the test
measures the report, not the tracker. Times are compared as ratios, generously (a shared
machine is noisy): 4x the sessions may cost at most 4 x 2.5 the time.
"""

from __future__ import annotations

import time

import pytest

from analyzer.api import analyze_records
from analyzer.records import Anomaly, Record
from analyzer.reports.analysis import Analysis
from analyzer.reports.html import text as html_text
from analyzer.state.events import ConnectionSummary, SessionSummary, Transition

T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def _records(n: int) -> list[Record]:
    recs: list[Record] = []
    for i in range(n):
        sid, conn = f"s{i}", f"10.0.{i // 250 % 250}.{i % 250 + 1}:{40000 + i % 20000}->10.1.0.1:3260#{i}"
        t = T0 + i * MS
        recs.append(Transition(frame=4 * i + 1, ts_ns=t, session=sid, conn=conn, machine="connection",
                               side="initiator", from_state="FREE", to_state="XPT_UP", label="T3",
                               event="TCP established", inferred=False))
        recs.append(Transition(frame=4 * i + 2, ts_ns=t + MS // 2, session=sid, conn=None, machine="session",
                               side="target", from_state="FREE", to_state="LOGGED_IN", label="N1",
                               event="login", inferred=False))
        if i % 10 == 0:
            recs.append(Anomaly(frame=4 * i + 3, ts_ns=t + MS // 2, severity="warning", kind="slow_login",
                                session=sid, conn=conn, message="slow", rfc="§8", frames=(4 * i + 3,),
                                ))
        recs.append(ConnectionSummary(
            frame=4 * i + 4, ts_ns=t + MS, conn=conn, session=sid, cid=0, client="10.0.0.1", client_port=40000,
            server="10.1.0.1", server_port=3260, role="leading", params={}, header_digest=False,
            data_digest=False, max_recv_dsl_initiator=8192, max_recv_dsl_target=8192, start_frame=4 * i + 1,
            start_ts_ns=t, end_frame=4 * i + 4, end_ts_ns=t + MS, ended="logout", state_initiator="FREE",
            state_target="FREE", cleanup_initiator=None, cleanup_target=None, mid_stream=False,
            handshake_seen=True, tcp_end="fin", login_status_class=0, login_status_detail=0, reinstated_by=None,
            reinstates=None, pdus=4, tasks=0))
        recs.append(SessionSummary(
            frame=4 * i + 4, ts_ns=t + MS, session=sid, session_type="Normal", isid="400001370000", tpgt=1,
            tsih=i % 65535 + 1, ssid="x,1", initiator_name=f"iqn.2000-01.com.example:host{i}",
            target_name="iqn.2000-01.com.example:target", initiator_alias=None, target_alias=None,
            portals=("10.1.0.1:3260",), initiator_addresses=("10.0.0.1",), connections=(conn,), cids=(0,),
            params={"MaxBurstLength": "262144"}, start_frame=4 * i + 1, start_ts_ns=t, end_frame=4 * i + 4,
            end_ts_ns=t + MS, ended="logout", state_initiator="FREE", state_target="FREE", mid_stream=False,
            reinstated_from=None, reinstated_by=None, tasks=0))
    return recs


def _report_seconds(a: Analysis) -> float:
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        page = a.html()
        best = min(best, time.perf_counter() - t)
    assert page.endswith("</html>\n")
    return best


@pytest.fixture(scope="module")
def analyses() -> dict[int, Analysis]:
    return {n: analyze_records(_records(n)) for n in (1000, 4000, 16000)}


def test_report_time_grows_at_most_linearly(analyses: dict[int, Analysis]) -> None:
    secs = {n: _report_seconds(a) for n, a in analyses.items()}
    floor = 0.05  # below this, fixed costs dominate: compare against the floor
    r1 = max(secs[4000], floor) / max(secs[1000], floor)
    r2 = max(secs[16000], floor) / max(secs[4000], floor)
    assert r1 <= 4 * 2.5 and r2 <= 4 * 2.5, secs


def test_summary_time_grows_at_most_linearly(analyses: dict[int, Analysis]) -> None:
    from analyzer.reports.summary import summary_text

    secs = {}
    for n, a in analyses.items():
        t = time.perf_counter()
        text = summary_text(a)
        secs[n] = time.perf_counter() - t
        assert f"{n - 50:,} more sessions" in text
    assert max(secs[16000], 0.05) / max(secs[4000], 0.05) <= 4 * 2.5, secs


def test_big_report_is_capped_with_n_more_notes(analyses: dict[int, Analysis]) -> None:
    a = analyses[16000]
    page = a.html()
    assert page.count('class="scard"') == html_text.MAX_SESSION_CARDS
    assert f"{16000 - html_text.MAX_SESSION_CARDS:,} more sessions are in sessions.csv" in page
    assert f"{16000 - html_text.MAX_TIMELINE_SESSIONS:,} more sessions (and their connections) not drawn" in page
    assert f"{16000 - html_text.MAX_THROUGHPUT_SESSIONS:,} more sessions not charted" in page
    assert len(page) < 8_000_000  # a page a browser opens
