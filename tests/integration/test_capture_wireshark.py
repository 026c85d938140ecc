"""The Wireshark coloring rules and filter buttons in wireshark/: in sync, and tshark applies them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.cli.app import cli
from analyzer.pipeline import iter_records
from analyzer.records import Anomaly

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "wireshark"))
import make_profile

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
CAPTURE = "sample_pcaps/initiator_killed.pcap"


def test_committed_files_are_generated() -> None:
    assert (ROOT / "wireshark/colorfilters").read_text(encoding="utf-8") == make_profile.colorfilters()
    assert (ROOT / "wireshark/dfilter_buttons").read_text(encoding="utf-8") == make_profile.dfilter_buttons()


def test_every_kind_has_a_button() -> None:
    from analyzer.anomalies.kinds import CATALOGUE

    text = " ".join(flt for _label, flt, _c in make_profile.buttons())
    assert all(re.search(rf"[(|]{k.name}[|)]", text) for k in CATALOGUE)


@pytest.fixture(scope="module")
def annotated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ws") / "a.pcapng"
    assert CliRunner().invoke(cli, ["annotate", CAPTURE, "-o", str(out)]).exit_code == 0
    return out


def frames_matching(path: Path, flt: str) -> set[int]:
    out = subprocess.run(["tshark", "-r", str(path), "-Y", flt, "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return {int(x) for x in out.stdout.split()}


def test_buttons_select_the_evidence_frames(annotated: Path) -> None:
    findings = [r for r in iter_records(CAPTURE) if type(r) is Anomaly]
    by_sev = {s: {f for a in findings if a.severity == s for f in (a.frames or (a.frame,))}
              for s in ("error", "warning", "info")}
    for label, flt, _comment in make_profile.buttons():
        got = frames_matching(annotated, flt)
        if label == "iSCSI errors":
            assert got == by_sev["error"]
        elif label == "iSCSI warnings":
            assert got == by_sev["warning"] and got
        elif label == "iSCSI findings":
            assert got == by_sev["error"] | by_sev["warning"] | by_sev["info"]


def test_tshark_colours_frames_with_the_rules(annotated: Path, tmp_path: Path) -> None:
    profile = tmp_path / "profiles" / "iscsi"
    profile.mkdir(parents=True)
    shutil.copy(ROOT / "wireshark/colorfilters", profile / "colorfilters")
    shutil.copy(ROOT / "wireshark/dfilter_buttons", profile / "dfilter_buttons")
    out = subprocess.run(["tshark", "-C", "iscsi", "-r", str(annotated), "--color", "-T", "fields",
                          "-e", "frame.number", "-e", "frame.coloring_rule.name"],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "WIRESHARK_CONFIG_DIR": str(tmp_path)}, check=False)
    assert out.returncode == 0, out.stderr
    rules = dict(line.split("\t") for line in out.stdout.splitlines() if "\t" in line)
    warnings = {r.frame for r in iter_records(CAPTURE) if type(r) is Anomaly and r.severity == "warning"}
    assert warnings and all(rules[str(f)] == "iSCSI finding: warning" for f in warnings)
    assert "iSCSI state change" in rules.values()
