"""Runs one scenario end to end and turns the capture into a manifest entry.

Order of a run: namespace -> tgtd + targets -> capture -> scenario body (the libiscsi tools) -> stop capture
-> stop tgtd -> read the capture back with tshark -> scenario checks -> manifest entry. Everything started is
torn down in a `finally` (also on SIGINT/SIGTERM and when a step fails): processes by recorded pid, then the
namespace (with its qdisc and iptables rules), then the temp dir.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from analyzer.lab import initiator as ini
from analyzer.lab.capture import DEFAULT_FILTER, Capture, CaptureSpec, CaptureStats
from analyzer.lab.errors import LabError
from analyzer.lab.manifest import tool_versions
from analyzer.lab.netns import Namespace, unique_name
from analyzer.lab.preflight import BASE_TOOLS, check_prerequisites
from analyzer.lab.procs import ProcessRegistry, Started
from analyzer.lab.target import TargetSpec, Tgtd
from analyzer.lab.verify import CaptureFacts, SessionFacts, collect_facts

log = logging.getLogger(__name__)

#: A committed sample capture must stay below this size (bytes).
MAX_SAMPLE_BYTES = 2 * 1024 * 1024 + 512 * 1024


class LabInterrupted(LabError):
    """SIGINT or SIGTERM arrived while a scenario was running."""


@dataclass
class Step:
    """One thing the scenario did, at wall-clock time `at` (converted to capture time later)."""

    at: float
    action: str
    command: list[str] | None = None
    result: str | None = None


@dataclass
class LabContext:
    """What a scenario body gets: the namespace, the target, the capture and a step log."""

    scenario: Scenario
    ns: Namespace
    tgtd: Tgtd
    procs: ProcessRegistry
    capture: Capture
    workdir: Path
    portal: ini.Portal
    initiator: str = ini.DEFAULT_INITIATOR
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def target(self, tid: int) -> TargetSpec:
        """The scenario's target with this tid."""
        for spec in self.scenario.targets:
            if spec.tid == tid:
                return spec
        raise LabError(f"scenario {self.scenario.name} has no target {tid}")

    def step(self, action: str, command: Sequence[str] | None = None, result: str | None = None) -> Step:
        """Record a step at the current time."""
        st = Step(time.time(), action, list(command) if command else None, result)
        self.steps.append(st)
        log.info("[%s] %s", self.scenario.name, action)
        return st

    def client(self, action: str, argv: Sequence[str], *, timeout: float = 30.0, expect_rc: int | None = 0) -> str:
        """Run a libiscsi tool to completion in the namespace; check its exit status; return stdout."""
        st = self.step(action, argv)
        proc = self.ns.run(argv, timeout=timeout, check=False)
        st.result = f"exit {proc.returncode}"
        last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        if last and proc.returncode != 0:
            st.result += f": {last[-1][:200]}"
        if expect_rc is not None and proc.returncode != expect_rc:
            raise LabError(f"{action}: {argv[0]} exited {proc.returncode} (expected {expect_rc}): "
                           f"{last[-1] if last else ''}")
        return proc.stdout + proc.stderr

    def start_client(self, action: str, argv: Sequence[str]) -> Started:
        """Start a libiscsi tool in the background in the namespace (recorded pid)."""
        self.step(action, argv)
        return self.procs.start(argv[0], self.ns.exec_argv(argv))

    def signal_client(self, proc: Started, sig: int, action: str) -> None:
        """Send `sig` to a client we started, after checking the pid still is that tool."""
        comm = Path(f"/proc/{proc.pid}/comm")
        expected = Path(proc.argv[proc.argv.index("exec") + 2] if "exec" in proc.argv else proc.argv[0]).name
        if not proc.alive() or not comm.exists() or comm.read_text().strip() != expected[:15]:
            raise LabError(f"{action}: pid {proc.pid} is not a running {expected}")
        self.step(action)
        os.kill(proc.pid, sig)

    def stop_client(self, proc: Started, action: str, timeout: float = 30.0) -> int:
        """SIGINT a background client (iscsi-perf then drains and logs out) and wait for it."""
        self.signal_client(proc, signal.SIGINT, action)
        rc = self.procs.wait(proc, timeout=timeout)
        self.steps[-1].result = f"exit {rc}"
        return rc

    def sleep(self, seconds: float) -> None:
        """Wait while traffic flows."""
        time.sleep(seconds)

    def lun_url(self, tid: int = 1, lun: int = 1, *, user: str | None = None, password: str | None = None,
                header_digest: str | None = None, iqn: str | None = None) -> str:
        """libiscsi URL for a LUN of one of the scenario's targets (or an arbitrary `iqn`)."""
        return ini.lun_url(self.portal, iqn or self.target(tid).iqn, lun, user=user, password=password,
                           header_digest=header_digest)


Check = Callable[[CaptureFacts, LabContext], list[str]]


@dataclass(frozen=True)
class Scenario:
    """A named, reproducible traffic recipe plus the checks its capture must pass."""

    name: str
    description: str
    body: Callable[[LabContext], None]
    targets: tuple[TargetSpec, ...]
    check: Check
    mtu: int = 1500
    portal_host: str = "127.0.0.1"
    capture_tool: str = "tcpdump"
    interface: str = "lo"
    linktype: str | None = None
    rate: str | None = "4mbit"
    extra_tools: tuple[str, ...] = ()
    initiator_close_label: str = "initiator_closed"
    tgtd_opts: str | None = None
    bpf: str = DEFAULT_FILTER

    @property
    def file_name(self) -> str:
        """`<name>.pcap` or `<name>.pcapng` (dumpcap)."""
        return f"{self.name}.{'pcapng' if self.capture_tool == 'dumpcap' else 'pcap'}"


@contextmanager
def signals_raise() -> Iterator[None]:
    """Turn SIGTERM (and SIGINT) into `LabInterrupted` so the `finally` blocks clean up."""
    def handler(signum: int, _frame: FrameType | None) -> None:
        raise LabInterrupted(f"interrupted by signal {signum}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def control_port() -> int:
    """A tgtd control port (management socket suffix) unlikely to collide with another lab run."""
    return 1000 + (os.getpid() * 7 + int(time.monotonic() * 1000)) % 30000


def run_scenario(scenario: Scenario, out_dir: Path, *, keep_workdir: bool = False) -> dict[str, Any]:
    """Run `scenario`, move its capture to `out_dir` and return its manifest entry.

    Raises `LabSetupError` when the machine cannot run the lab and `LabError` when the scenario or one of
    its checks fails (nothing is written to `out_dir` then).
    """
    check_prerequisites((*BASE_TOOLS, *scenario.extra_tools))
    out_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"iscsilab-{scenario.name}-"))
    procs = ProcessRegistry(workdir)
    ns = Namespace(unique_name(), mtu=scenario.mtu)
    tgtd = Tgtd(ns, procs, workdir, control_port())
    with signals_raise():
        try:
            ns.create()
            if scenario.rate:
                ns.shape(scenario.rate)
            tgtd.start(scenario.tgtd_opts)
            for spec in scenario.targets:
                tgtd.add_target(spec)
            cap_path = workdir / scenario.file_name
            capture = Capture(ns, procs, CaptureSpec(cap_path, scenario.capture_tool, scenario.interface,
                                                     bpf=scenario.bpf, linktype=scenario.linktype))
            ctx = LabContext(scenario, ns, tgtd, procs, capture, workdir, ini.Portal(scenario.portal_host))
            capture.start()
            scenario.body(ctx)
            ctx.step("capture stopped")
            stats = capture.stop()
            qdisc_drops = ns.qdisc_drops()
            tgtd.stop()
            facts = collect_facts(cap_path)
            problems = scenario.check(facts, ctx)
            if facts.iscsi_pdus == 0:
                problems.append("tshark decoded no iSCSI PDU")
            size = cap_path.stat().st_size
            if size > MAX_SAMPLE_BYTES:
                problems.append(f"capture is {size} bytes, above the {MAX_SAMPLE_BYTES} byte limit")
            if stats.dropped:
                problems.append(f"{stats.dropped} packets dropped by the kernel during capture")
            if problems:
                raise LabError(f"scenario {scenario.name}: capture does not show what it should: "
                               + "; ".join(problems))
            entry = build_entry(scenario, ctx, facts, stats, qdisc_drops, size)
            dest = out_dir / scenario.file_name
            shutil.move(str(cap_path), dest)
            dest.chmod(0o644)  # dumpcap creates its files 0600
            return entry
        finally:
            procs.stop_all(keep=tgtd.proc)
            try:
                tgtd.stop()
                procs.stop_all()
            finally:
                ns.delete()
                if keep_workdir:
                    log.warning("keeping %s", workdir)
                else:
                    shutil.rmtree(workdir, ignore_errors=True)


def session_expect(s: SessionFacts, facts: CaptureFacts, scenario: Scenario) -> dict[str, Any]:
    """The manifest's view of one observed session (TCP connection)."""
    ended_by = s.ended_by
    if ended_by == "initiator_closed":
        ended_by = scenario.initiator_close_label
    out: dict[str, Any] = {
        "tcp_stream": s.tcp_stream,
        "initiator_port": s.initiator_port,
        "type": s.session_type or "unknown",
        "target": s.target,
        "initiator": s.initiator,
        "isid": s.isid,
        "tsih": s.tsih,
        "auth": s.auth_method or "None",
        "login_status": s.login_status,
        "login_responses": len(s.login_statuses),
        "header_digest": (s.header_digest or "None") if s.login_ok else None,
        "data_digest": (s.data_digest or "None") if s.login_ok else None,
        "ended_by": ended_by,
        "scsi_commands": s.pdus.get("SCSI Command", 0),
        "t_start": facts.rel(s.t_syn) if s.t_syn is not None else None,
        "t_login": facts.rel(s.t_login) if s.t_login is not None else None,
        "t_end": facts.rel(s.t_close) if s.t_close is not None else None,
        "closed_by": s.closed_by,
        "close_kind": s.close_kind,
    }
    if s.logout_reason is not None:
        out["logout_reason"] = s.logout_reason
        out["logout_response"] = s.logout_response
    return out


def observed_faults(facts: CaptureFacts, scenario: Scenario) -> list[dict[str, Any]]:
    """Faults the capture shows: failed logins, dropped connections, TMFs, rejects, TCP loss."""
    faults: list[dict[str, Any]] = []
    for s in facts.sessions:
        if s.ended_by in ("login_failed", "login_redirected"):
            faults.append({"kind": s.ended_by, "status": s.login_status, "target": s.target,
                           "tcp_stream": s.tcp_stream, "approx_t": facts.rel(s.t_syn or facts.t_first)})
        elif s.ended_by == "target_dropped" and s.login_ok:
            faults.append({"kind": "connection_dropped", "by": "target", "how": s.close_kind,
                           "tcp_stream": s.tcp_stream, "approx_t": facts.rel(s.t_close or 0.0)})
        elif s.ended_by == "initiator_closed" and s.login_ok:
            faults.append({"kind": "connection_dropped", "by": "initiator", "how": s.close_kind,
                           "cause": scenario.initiator_close_label, "tcp_stream": s.tcp_stream,
                           "approx_t": facts.rel(s.t_close or 0.0)})
    for item in facts.tmf:
        faults.append({"kind": "task_management", **item})
    for ping in facts.nop_pings:
        if not ping["answered"]:
            faults.append({"kind": "nop_unanswered", "ttt": ping["ttt"], "tcp_stream": ping["tcp_stream"],
                           "approx_t": ping["t"]})
    for item in facts.rejects:
        faults.append({"kind": "reject", **item})
    if facts.retransmissions:
        faults.append({"kind": "tcp_retransmission", "count": facts.retransmissions})
    if facts.out_of_order:
        faults.append({"kind": "tcp_out_of_order", "count": facts.out_of_order})
    if facts.lost_segments:
        faults.append({"kind": "tcp_lost_segment", "count": facts.lost_segments})
    return faults


def _digest_summary(values: list[str]) -> str:
    distinct = sorted(set(values))
    if not distinct:
        return "None"
    return distinct[0] if len(distinct) == 1 else "mixed:" + ",".join(distinct)


def build_entry(scenario: Scenario, ctx: LabContext, facts: CaptureFacts, stats: CaptureStats,
                qdisc_drops: int, size: int) -> dict[str, Any]:
    """The manifest entry for a finished, checked scenario."""
    normal = [s for s in facts.sessions if s.login_ok and s.session_type == "Normal"]
    expect: dict[str, Any] = {
        "sessions": [session_expect(s, facts, scenario) for s in facts.sessions],
        # Scenario checks may add faults the generic pass cannot see (unanswered tasks, reinstatements, ...).
        "faults": observed_faults(facts, scenario) + list(ctx.data.get("extra_faults", [])),
        "header_digest": _digest_summary([s.header_digest or "None" for s in normal]),
        "data_digest": _digest_summary([s.data_digest or "None" for s in normal]),
        "header_digest_pdus": facts.header_digest_pdus,
        "min_pdus": facts.iscsi_pdus,
        "pdu_counts": dict(sorted(facts.pdus.items())),
        "scsi_check_conditions": facts.check_conditions,
        "nop_pings": [{"t": p["t"], "answered": p["answered"], "tcp_stream": p["tcp_stream"]}
                      for p in facts.nop_pings],
        "tcp": {"retransmissions": facts.retransmissions, "out_of_order": facts.out_of_order,
                "lost_segments": facts.lost_segments},
    }
    expect.update(ctx.data.get("expect_extra", {}))
    targets = [{"tid": t.tid, "iqn": t.iqn, "luns": [lun.lun for lun in t.luns], "chap": t.chap,
                **({"chap_user": t.chap_user} if t.chap else {}),
                **({"params": dict(t.params)} if t.params else {})} for t in scenario.targets]
    return {
        "file": scenario.file_name,
        "scenario": scenario.name,
        "description": scenario.description,
        "format": facts.file_format,
        "link_type": facts.linktype_name,
        "link_type_id": facts.linktype,
        "ip_version": ctx.portal.ip_version,
        "mtu": scenario.mtu,
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "size_bytes": size,
        "frames": facts.frames,
        "tools": tool_versions(),
        "target": {"portal": ctx.portal.authority, "targets": targets},
        "initiator_name": ctx.initiator,
        "capture": {"tool": scenario.capture_tool, "interface": scenario.interface, "filter": scenario.bpf,
                    "snaplen": 0, "rate_limit": scenario.rate, "packets_captured": stats.captured,
                    "dropped_by_kernel": stats.dropped, "qdisc_drops": qdisc_drops},
        "time_origin": "first frame",
        "steps": [{"t": max(0.0, round(st.at - facts.t_first, 2)), "action": st.action,
                   **({"command": " ".join(st.command)} if st.command else {}),
                   **({"result": st.result} if st.result else {})} for st in ctx.steps],
        "notes": ctx.notes,
        "expect": expect,
    }
