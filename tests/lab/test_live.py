"""``iscsi-analyzer live`` against real traffic: tgtd + libiscsi in a private namespace (needs root).

The live command runs inside the namespace on its ``lo`` while tcpdump captures the same traffic
in parallel; the live alerts and final report must agree with an offline analysis of the tcpdump
file (same anomaly kinds, same sessions). Also: shutdown by SIGINT, SIGTERM and --duration, the
error paths (exit status 2, one line), and the plain (non-tty) output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from analyzer.lab import initiator as ini
from analyzer.lab.capture import Capture, CaptureSpec
from analyzer.lab.errors import LabSetupError
from analyzer.lab.netns import Namespace, unique_name
from analyzer.lab.preflight import check_prerequisites
from analyzer.lab.procs import ProcessRegistry, Started, wait_until
from analyzer.lab.runner import control_port
from analyzer.lab.scenarios import DISK, UNKNOWN_IQN
from analyzer.lab.target import Tgtd

pytestmark = pytest.mark.lab

TOOLS = ("ip", "ethtool", "sysctl", "tc", "ss", "tgtd", "tgtadm", "tcpdump", "dumpcap", "iscsi-inq", "iscsi-perf")
#: The live command, runnable whether or not the lead has registered it in analyzer.cli yet.
LIVE_ENTRY = "import sys; from analyzer.cli.live import live; live(prog_name='iscsi-analyzer live')"
_PID = re.compile(r"capturing on \S+ with (\w+) \(pid ([\d, ]+)\)")
_ESC = re.compile(r"[\x1b\x07\x9b]")


@dataclass
class Lab:
    ns: Namespace
    procs: ProcessRegistry
    tgtd: Tgtd
    workdir: Path

    @property
    def url(self) -> str:
        return ini.lun_url(ini.Portal(), DISK.iqn, 1)

    def client(self, argv: list[str], timeout: float = 30.0) -> int:
        return self.ns.run(argv, timeout=timeout, check=False).returncode

    def live(self, *args: str, name: str = "live", env: dict[str, str] | None = None) -> Started:
        """Start the live command in the namespace and wait until its capture runs (or it exits)."""
        proc = self.procs.start(name, self.ns.exec_argv([sys.executable, "-c", LIVE_ENTRY, *args]), env=env)
        wait_until(lambda: "capturing on" in proc.stdout() or not proc.alive(), timeout=20.0)
        return proc


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    try:
        check_prerequisites(TOOLS)
    except LabSetupError as exc:
        pytest.skip(f"live lab needs root, dumpcap, tcpdump, tgtd and libiscsi-bin: {exc}")
    workdir = Path(tempfile.mkdtemp(prefix="iscsi-live-lab-"))
    procs = ProcessRegistry(workdir)
    ns = Namespace(unique_name("iscsilive"))
    tgtd = Tgtd(ns, procs, workdir, control_port())
    try:
        ns.create()
        # Shaped like the lab's scenarios: iSCSI over an unshaped loopback runs at GB/s, far beyond what a
        # Python analysis keeps up with live (the overload case is checked on its own below).
        ns.shape("8mbit")
        tgtd.start()
        tgtd.add_target(DISK)
        yield Lab(ns, procs, tgtd, workdir)
    finally:
        tgtd.stop()
        procs.stop_all()
        ns.delete()


def _stop(lab: Lab, proc: Started, sig: int, timeout: float = 30.0) -> int:
    os.kill(proc.pid, sig)
    return lab.procs.wait(proc, timeout)


def _capture_pids(proc: Started) -> list[int]:
    m = _PID.search(proc.stdout())
    assert m, proc.stdout() + proc.stderr()
    return [int(p) for p in m.group(2).replace(" ", "").split(",") if p]


def _gone(pid: int) -> bool:
    try:
        return "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    except FileNotFoundError:
        return True


def _session_key(row: dict[str, object]) -> tuple[str, str, str]:
    return (str(row["initiator_name"] or ""), str(row["target_name"] or ""), str(row["ended"]))


def test_live_matches_offline_analysis(lab: Lab, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    from analyzer.api import analyze

    pcap = tmp_path / "parallel.pcap"
    tcpdump = Capture(lab.ns, lab.procs, CaptureSpec(pcap, "tcpdump", "lo"))
    tcpdump.start()
    alerts, out, ring = tmp_path / "alerts.jsonl", tmp_path / "out", tmp_path / "ring"
    live = lab.live("-i", "lo", "--alerts", str(alerts), "--out", str(out), "--plain", "--status-interval", "1",
                    "--ring", str(ring), "--ring-size", "1", "--ring-files", "2")
    assert live.alive(), live.stderr()
    pids = _capture_pids(live)
    assert len(pids) == 2  # the analysis capture and the ring-buffer capture

    # 1. an initiator killed in the middle of its I/O
    perf = lab.procs.start("iscsi-perf", lab.ns.exec_argv(ini.perf_argv(lab.url, blocks=8, max_requests=4)))
    time.sleep(1.5)
    assert perf.alive(), perf.stderr()
    os.kill(perf.pid, signal.SIGKILL)
    perf.popen.wait(timeout=10)
    time.sleep(0.5)
    # 2. a login and a short I/O
    assert lab.client(ini.io_argv(lab.url, "write", lba=64, blocks=128, count=3)) == 0
    assert lab.client(ini.io_argv(lab.url, "read", lba=64, blocks=128, count=2)) == 0
    # 3. a login failure: wrong target name
    assert lab.client(ini.iscsi_inq_argv(ini.lun_url(ini.Portal(), UNKNOWN_IQN, 1))) != 0
    time.sleep(1.5)

    assert _stop(lab, live, signal.SIGINT) == 0, live.stderr()
    tcpdump.stop()
    assert all(_gone(p) for p in pids)

    offline = analyze(pcap)
    offline_kinds = set(offline.anomalies["kind"])
    rows = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert {"login_failed"} <= {r["kind"] for r in rows}
    assert {r["kind"] for r in rows} == offline_kinds, live.stdout()
    assert all(_ESC.search(line) is None for line in alerts.read_text().splitlines())

    live_sessions = pd.read_parquet(out / "sessions.parquet")
    assert sorted(_session_key(r) for r in live_sessions.to_dict("records")) == \
        sorted(_session_key(r) for r in offline.sessions.to_dict("records"))
    assert set(pd.read_parquet(out / "anomalies.parquet")["kind"]) == offline_kinds
    status = json.loads((out / "live.json").read_text())
    assert status["final"] is True and status["drops"]["final"] is True and status["drops"]["dropped"] == 0
    assert (out / "anomalies.jsonl").read_text() == alerts.read_text()

    # the plain output: one line per alert, the final status block, no escape sequences
    text = live.stdout()
    assert "ALERT" in text and "login_failed" in text and "final:" in text
    assert _ESC.search(text) is None
    # the ring buffer holds the same traffic as a readable capture
    from analyzer.capture import open_capture

    ring_files = sorted(ring.iterdir())
    assert ring_files
    with open_capture(ring_files[-1]) as reader:
        assert sum(1 for _ in reader) > 0


@pytest.mark.parametrize("how", ["SIGTERM", "duration"])
def test_live_shutdown_paths(lab: Lab, tmp_path: Path, how: str) -> None:
    out = tmp_path / "out"
    args = ["-i", "lo", "--out", str(out), "--plain"]
    if how == "duration":
        args += ["--duration", "3"]
    t0 = time.monotonic()
    live = lab.live(*args, name=f"live-{how}")
    assert live.alive(), live.stderr()
    pids = _capture_pids(live)
    assert lab.client(ini.iscsi_inq_argv(lab.url)) == 0
    if how == "SIGTERM":
        rc = _stop(lab, live, signal.SIGTERM)
    else:
        rc = lab.procs.wait(live, 30)
        assert time.monotonic() - t0 >= 3
    assert rc == 0, live.stderr()
    assert all(_gone(p) for p in pids)
    status = json.loads((out / "live.json").read_text())
    assert status["final"] is True and status["sessions_total"] >= 1
    assert "final:" in live.stdout() and live.stderr() == ""


def test_live_missing_interface_exits_2_with_one_line(lab: Lab) -> None:
    live = lab.live("-i", "nosuch0", name="live-noif")
    rc = lab.procs.wait(live, 20)
    assert rc == 2
    assert live.stderr().splitlines() == ["iscsi-analyzer: no such interface: nosuch0 (available: lo)"]


def test_live_without_capture_tools_exits_2(lab: Lab) -> None:
    argv = lab.ns.exec_argv(["env", f"PATH={lab.workdir / 'empty-bin'}", sys.executable, "-c", LIVE_ENTRY,
                             "-i", "lo"])
    live = lab.procs.start("live-notools", argv)
    rc = lab.procs.wait(live, 20)
    assert rc == 2
    lines = live.stderr().splitlines()
    assert len(lines) == 1 and "neither dumpcap nor tcpdump found" in lines[0]


_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]


def _nobody_can_import(python: str, env: dict[str, str]) -> bool:
    probe = subprocess.run([*_NOBODY, python, "-c", "import analyzer.cli.live, analyzer.capture.live"],
                           env=env, capture_output=True, timeout=60, check=False)
    return probe.returncode == 0


def _readable_copy() -> Path:
    """The package and the few pure-Python modules the failing start needs, in a directory every user
    can read (the checkout, or its virtualenv, may live where "nobody" cannot look)."""
    import click

    import analyzer

    top = Path(tempfile.mkdtemp(prefix="iscsi-live-noperm-", dir="/tmp"))
    for pkg in (Path(analyzer.__file__).parent, Path(click.__file__).parent):
        shutil.copytree(pkg, top / pkg.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for d, _dirs, files in os.walk(top):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    return top


def test_live_without_permission_exits_2(lab: Lab) -> None:
    """Capturing as an unprivileged user exits 2 in one line, wherever the checkout lives: when "nobody"
    cannot read the checkout or its virtualenv, the package is copied where it can."""
    if not Path("/usr/bin/setpriv").exists():
        pytest.skip("setpriv (util-linux) not installed")
    env = {**os.environ, "HOME": "/tmp"}
    python = sys.executable
    copy: Path | None = None
    try:
        if not _nobody_can_import(python, env):
            copy = _readable_copy()
            env["PYTHONPATH"] = str(copy)
            for candidate in (sys.executable, os.path.realpath(sys.executable), "/usr/bin/python3"):
                if os.access(candidate, os.X_OK) and _nobody_can_import(candidate, env):
                    python = candidate
                    break
            else:
                pytest.skip(f"the unprivileged user (uid 65534) can run none of {sys.executable}, "
                            f"{os.path.realpath(sys.executable)}, /usr/bin/python3 with the package: "
                            "install Python where other users can read it")
        argv = lab.ns.exec_argv([*_NOBODY, python, "-c", LIVE_ENTRY, "-i", "lo"])
        proc = lab.procs.start("live-noperm", argv, env=env)
        rc = lab.procs.wait(proc, 30)
        lines = proc.stderr().splitlines()
        assert rc == 2, proc.stderr()
        assert len(lines) == 1 and "no permission to capture on lo" in lines[0]
    finally:
        if copy is not None:
            shutil.rmtree(copy, ignore_errors=True)


def test_live_interface_vanishing_exits_2_with_one_line(lab: Lab) -> None:
    """A veth deleted mid-capture: dumpcap says the adapter is gone; live says so and exits 2 (not 0)."""
    lab.ns.run(["ip", "link", "add", "vgone0", "type", "veth", "peer", "name", "vgone1"])
    try:
        lab.ns.run(["ip", "link", "set", "vgone0", "up"])
        lab.ns.run(["ip", "link", "set", "vgone1", "up"])
        live = lab.live("-i", "vgone0", "--plain", name="live-vanish")
        assert live.alive(), live.stderr()
        time.sleep(1.0)
    finally:
        lab.ns.run(["ip", "link", "del", "vgone0"], check=False)
    rc = lab.procs.wait(live, 30)
    lines = live.stderr().splitlines()
    assert rc == 2, live.stdout() + live.stderr()
    assert len(lines) == 1 and lines[0].startswith("iscsi-analyzer: the interface vgone0 went away"), lines
