"""Anomaly rules, one family per module (Zeek-style handlers per record type)."""

from __future__ import annotations

from analyzer.anomalies.rules.base import Rule
from analyzer.anomalies.rules.protocol import DeviationRule, DigestRule, SequenceRule, StateRule
from analyzer.anomalies.rules.sessions import (
    AsyncRule,
    ConnectionRule,
    LoginRule,
    LogoutRule,
    ReinstatementRule,
)
from analyzer.anomalies.rules.tasks import NopRule, RejectRule, TaskRule
from analyzer.anomalies.rules.transport import FramingRule, TransportRule

#: Every rule family, in the order they see a record.
RULES: tuple[type[Rule], ...] = (
    LoginRule, LogoutRule, ConnectionRule, ReinstatementRule, AsyncRule,
    TaskRule, NopRule, RejectRule,
    SequenceRule, DeviationRule, DigestRule, StateRule,
    TransportRule, FramingRule,
)

__all__ = ["RULES", "Rule"]
