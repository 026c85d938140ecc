"""Fixtures for the lab tests: skip the real-traffic ones unless we are root with every tool installed."""

from __future__ import annotations

import shutil

import pytest

from analyzer.lab.errors import LabSetupError
from analyzer.lab.preflight import BASE_TOOLS, check_prerequisites


@pytest.fixture
def lab_ready() -> None:
    """Skip (with the exact reason) unless the lab can run here."""
    try:
        check_prerequisites((*BASE_TOOLS, "iptables"))
    except LabSetupError as exc:
        pytest.skip(f"lab needs root and tgtd/libiscsi/tcpdump/tshark: {exc}")


@pytest.fixture
def tshark_available() -> None:
    """Skip unless tshark is on PATH."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed (apt-get install tshark)")
