"""HTML report and text summary from record streams: escaping, secret masking, empty states.

``session_stream`` / ``hostile_stream`` are also used by tests/integration (Chromium).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from analyzer.api import analyze_records
from analyzer.records import T2I, Anomaly, Record, Sense
from analyzer.state.tracker import SessionTracker

try:
    from state_helpers import INAME, ISID, MS, TNAME, Flow, S, Wire
except ImportError:  # imported from tests/integration
    from unit.state_helpers import INAME, ISID, MS, TNAME, Flow, S, Wire

SCRIPT = "<script>alert(1)</script>"
FORMULA = "=cmd|' /C calc'!A0"
CHAP_C = "0xdeadbeefcafe0001"
CHAP_R = "0x0123456789abcdef0123456789abcdef"


def _pipeline(records: Iterable[Record], end_ts: int) -> list[Record]:
    """Records as the pipeline yields them: each input followed by what the tracker adds."""
    tr = SessionTracker()
    out: list[Record] = []
    for r in records:
        out.append(r)
        out.extend(tr.feed(r))
    out.extend(tr.finish(end_ts))
    return out


def session_stream(
    initiator_name: str = INAME, target_alias: str = "array-1", *, anomalies: bool = True, ios: int = 20
) -> list[Record]:
    """One session: CHAP security stage, operational stage, reads and writes, a check condition, logout."""
    w = Wire()
    f = Flow(w)
    recs: list[Record] = [f.opened()]
    recs.append(
        f.login_req(
            [
                ("InitiatorName", initiator_name),
                ("TargetName", TNAME),
                ("SessionType", "Normal"),
                ("AuthMethod", "CHAP,None"),
            ],
            csg=0,
            nsg=1,
            transit=False,
        )
    )
    recs.append(
        f.login_rsp(
            [("TargetPortalGroupTag", "1"), ("AuthMethod", "CHAP")], csg=0, nsg=1, transit=False, statsn=100
        )
    )
    recs.append(f.login_req([("CHAP_A", "5")], csg=0, nsg=1, transit=False))
    recs.append(
        f.login_rsp(
            [("CHAP_A", "5"), ("CHAP_I", "7"), ("CHAP_C", CHAP_C)], csg=0, nsg=1, transit=False, statsn=100
        )
    )
    recs.append(f.login_req([("CHAP_N", "alice"), ("CHAP_R", CHAP_R)], csg=0, nsg=1, transit=True))
    recs.append(f.login_rsp([], csg=0, nsg=1, transit=True, statsn=100))
    recs.append(
        f.login_req(
            [
                ("HeaderDigest", "None"),
                ("DataDigest", "None"),
                ("MaxBurstLength", "262144"),
                ("ImmediateData", "Yes"),
                ("InitialR2T", "Yes"),
            ],
            csg=1,
            nsg=3,
        )
    )
    recs.append(
        f.login_rsp(
            [
                ("HeaderDigest", "None"),
                ("DataDigest", "None"),
                ("MaxBurstLength", "262144"),
                ("ImmediateData", "Yes"),
                ("InitialR2T", "Yes"),
                ("TargetAlias", target_alias),
            ],
            csg=1,
            nsg=3,
            tsih=0x21,
        )
    )
    for i in range(ios):
        w.advance(50 * MS)
        if i % 3 == 2:
            itt = f.new_itt()
            recs += [
                f.scsi_cmd(itt, opcode=0x2A, read=False, write=True, edtl=8192, dsl=8192, lba=i * 16),
                f.scsi_rsp(itt),
            ]
        else:
            itt = f.new_itt()
            recs += [f.scsi_cmd(itt, edtl=8192, lba=i * 16), f.data_in(itt, dsl=8192, status=0)]
    itt = f.new_itt()
    recs += [
        f.scsi_cmd(itt, opcode=0x00, read=False, edtl=0),
        f.scsi_rsp(
            itt,
            status=2,
            sense=Sense(
                0x70, 6, 0x29, 0, "UNIT ATTENTION", "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED", None
            ),
        ),
    ]
    lo = f.logout_req(reason=0)
    recs += [lo, f.logout_rsp(lo.itt), f.fin(T2I), f.closed("fin")]
    if anomalies:
        mid = recs[12]
        recs.append(
            Anomaly(
                mid.frame,
                mid.ts_ns,
                "test_finding",
                "warning",
                "s1",
                f.conn,
                f"Target {target_alias} answered oddly; initiator {initiator_name}",
                "§11.4",
                (12, 13),
            )
        )
        recs.append(
            Anomaly(
                recs[3].frame,
                recs[3].ts_ns,
                "formula_kind",
                "error",
                "s1",
                f.conn,
                FORMULA,
                "§6.1",
                (recs[3].frame,),
            )
        )
    return _pipeline(recs, w.ts + S)


def hostile_stream() -> list[Record]:
    """InitiatorName and TargetAlias that try HTML injection and spreadsheet formula injection."""
    return session_stream(initiator_name=f"iqn.2024-01.evil:{SCRIPT}", target_alias=f"{FORMULA}{SCRIPT}")


# --------------------------------------------------------------------------- tests


def test_report_escapes_capture_strings() -> None:
    a = analyze_records(hostile_stream())
    assert a.sessions.loc[0, "initiator_name"].endswith(SCRIPT)
    assert a.sessions.loc[0, "target_alias"] == f"{FORMULA}{SCRIPT}"
    page = a.html()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # SVG tooltips and attributes too: no raw angle bracket from the capture anywhere
    assert "alert(1)</" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_report_masks_chap_unless_asked() -> None:
    a = analyze_records(session_stream())
    masked = a.html()
    assert CHAP_C not in masked and CHAP_R not in masked and "alice" not in masked
    assert "CHAP_R" in masked and "********" in masked
    shown = a.html(show_secrets=True)
    assert CHAP_C in shown and CHAP_R in shown and "alice" in shown


def test_report_sections_and_charts() -> None:
    a = analyze_records(session_stream())
    page = a.html()
    for anchor in ("summary", "sessions", "timeline", "tasks", "latency", "throughput", "anomalies"):
        assert f'<section id="{anchor}">' in page
    assert page.count("<svg") >= 4  # timeline, latency boxes, MB/s, IOPS (+ sparklines)
    assert "LOGGED_IN" in page and "READ(10)" in page and "WRITE(10)" in page
    assert "UNIT ATTENTION" in page
    assert "frame.number in {12, 13}" in page  # display filter of the test anomaly
    assert 'class="filter"' in page
    # the p50/p95/p99 table has a row per operation and LUN
    assert re.search(r"<td>READ\(10\)</td><td>0</td><td>14</td>", page)


def test_report_empty_capture() -> None:
    a = analyze_records([])
    page = a.html()
    assert "No iSCSI traffic was found" in page
    assert "No iSCSI sessions in this capture." in page
    assert "No anomalies were found" in page
    assert "No iSCSI traffic found" in a.summary()


def test_summary_text() -> None:
    a = analyze_records(session_stream())
    text = a.summary()
    assert "Sessions" in text and INAME in text and "logout" in text
    assert "READ(10)" in text and "p99" in text
    assert "1 error" in text and "1 warning" in text and "formula_kind" in text
    assert "Throughput per session" in text


def test_summary_strips_control_characters() -> None:
    a = analyze_records(session_stream(initiator_name="iqn.x:\x1b[31mred"))
    assert "\x1b" not in a.summary()


def test_isid_is_hex_text() -> None:
    a = analyze_records(session_stream())
    assert a.sessions.loc[0, "isid"] == f"{ISID:012x}"
    assert a.sessions.loc[0, "tsih"] == 0x21


def test_diagnosis_sections_present_without_drops() -> None:
    import re

    a = analyze_records(session_stream())
    page = a.html()
    ids = re.findall(r'<section id="([a-z]+)">', page)
    assert ids[:3] == ["story", "summary", "drops"]
    assert {"paths", "queue", "nops"} <= set(ids)
    assert "No connection dropped" in page and "No connection ended without a logout." in page
    assert len(a.queues) == 1 and "Depth p95" in page  # the session's queue row is shown
    for table in ("drops", "recoveries", "paths", "path_intervals", "queues", "nop_pings", "logins",
                  "connection_stats"):
        assert list(a.table(table).columns), table
    # every anomaly marker on the timeline links to a listed finding
    targets = re.findall(r'<a href="#(anomaly-\d+)"><path', page)
    assert targets and all(f'id="{t}"' in page for t in targets)
