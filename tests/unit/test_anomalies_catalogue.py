"""The catalogue, its rendering into docs/anomalies.md, and the CLI helpers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from analyzer.anomalies import (
    ANOMALY_COLUMNS,
    CATALOGUE,
    KINDS,
    anomaly_row,
    format_ts,
    render_markdown,
    severity_at_least,
)
from analyzer.records import SEVERITIES, Anomaly

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "analyzer" / "anomalies" / "rules"


def _emitted_kinds() -> set[str]:
    found: set[str] = set()
    for path in RULES_DIR.glob("*.py"):
        found |= set(re.findall(r'emit\(\s*"([a-z0-9_]+)"', path.read_text()))
    from analyzer.anomalies.rules.protocol import DEVIATION_KIND_MAP, SEQUENCE_KIND_MAP
    return found | set(SEQUENCE_KIND_MAP.values()) | set(DEVIATION_KIND_MAP.values()) | {"target_protocol_deviation"}


def test_catalogue_entries_complete() -> None:
    assert len(KINDS) == len(CATALOGUE)
    for k in CATALOGUE:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", k.name)
        assert k.severity in SEVERITIES
        assert k.rfc and k.title and k.meaning and k.rule and k.check_next and k.group


def test_rules_and_catalogue_agree() -> None:
    emitted = _emitted_kinds()
    assert emitted - set(KINDS) == set(), "rules emit kinds missing from the catalogue"
    assert set(KINDS) - emitted == set(), "catalogue kinds that no rule emits"


def test_required_kinds_present() -> None:
    required = ["login_failed", "login_redirected", "logout_failed", "logout_unanswered", "request_after_logout", "connection_dropped", "cleanup_wait_stuck", "session_reinstated", "session_failed", "connection_reinstated", "duplicate_session", "async_event", "reject", "task_management", "check_condition", "task_unanswered", "task_slow", "cmdsn_out_of_window", "statsn_gap", "datasn_gap", "r2t_overrun", "max_recv_data_segment_exceeded", "burst_length_exceeded", "digest_error", "nop_unanswered", "no_authentication", "tcp_retransmissions", "zero_window", "capture_gap", "malformed_pdu", "framing_lost", "state_violation", "negotiation_issue", "capture_damaged", "resource_limit"]
    assert set(required) <= set(KINDS)


def test_docs_are_generated_from_the_catalogue() -> None:
    doc = (ROOT / "docs" / "anomalies.md").read_text()
    assert doc == render_markdown(), "regenerate: python -m analyzer.anomalies.kinds > docs/anomalies.md"
    for k in CATALOGUE:
        assert f"### {k.name}" in doc


@pytest.mark.parametrize(("sev", "minimum", "expected"), [
    ("info", "info", True), ("info", "warning", False), ("warning", "warning", True), ("error", "warning", True),
    ("warning", "error", False), ("error", "error", True),
])
def test_severity_at_least(sev: str, minimum: str, expected: bool) -> None:
    assert severity_at_least(sev, minimum) is expected


def test_severity_at_least_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="unknown severity"):
        severity_at_least("fatal", "info")


def test_anomaly_row() -> None:
    a = Anomaly(12, 1107122541540760123, "login_failed", "error", "s1", "a:1->b:3260",
                "Login failed: Not found (0x0203).", "§11.13.5", (14, 12, 12))
    row = anomaly_row(a)
    assert tuple(row) == ANOMALY_COLUMNS
    assert row["ts"] == "2005-01-30T22:02:21.540760Z"
    assert row["frames"] == "12 14" and row["display_filter"] == "frame.number in {12, 14}"
    assert row["severity"] == "error" and row["kind"] == "login_failed" and row["rfc"] == "§11.13.5"
    b = Anomaly(3, 0, "capture_damaged", "warning", None, None, "x", "(capture)", ())
    assert anomaly_row(b)["session"] == "" and anomaly_row(b)["display_filter"] == "frame.number == 3"
    assert format_ts(0) == "1970-01-01T00:00:00.000000Z"
