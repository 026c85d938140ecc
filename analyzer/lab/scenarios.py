"""The lab's scenarios: what traffic each sample capture holds, and what its capture must show.

Each scenario body drives real libiscsi tools against tgtd; each check reads the finished capture's
`CaptureFacts` (tshark) and returns the problems it finds, so a scenario that did not produce the traffic it
claims fails instead of writing a wrong manifest entry.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

from analyzer.lab import initiator as ini
from analyzer.lab import scripted as sc
from analyzer.lab.errors import LabError
from analyzer.lab.manifest import tool_versions
from analyzer.lab.runner import LabContext, Scenario
from analyzer.lab.target import LunSpec, TargetSpec
from analyzer.lab.verify import (
    CaptureFacts,
    ExchangeFacts,
    PduFacts,
    SessionFacts,
    collect_exchanges,
    collect_text_pdus,
    text_series,
    undissected_text_pdus,
)

DISK_IQN = "iqn.2024-01.org.iscsi-analyzer:disk1"
SECURE_IQN = "iqn.2024-01.org.iscsi-analyzer:secure"
UNKNOWN_IQN = "iqn.2024-01.org.iscsi-analyzer:no-such-target"
CHAP_USER = "labuser"
CHAP_SECRET = "lab-secret-123"
WRONG_SECRET = "wrong-secret-99"

DISK = TargetSpec(1, DISK_IQN, luns=(LunSpec(1, 64), LunSpec(2, 16)))
SECURE = TargetSpec(2, SECURE_IQN, luns=(LunSpec(1, 64),), chap_user=CHAP_USER, chap_password=CHAP_SECRET)

#: Capture filter for `capture_gaps`: drop ~1/64 of the larger segments, picked by sequence-number bits.
CAPTURE_GAP_FILTER = "tcp port 3260 and not (greater 254 and (tcp[4:4] & 0x3f) = 0x15)"

#: Login status codes (RFC 7143 §11.13.5).
LOGIN_AUTH_FAILED = "0x0201"
LOGIN_NOT_FOUND = "0x0203"
LOGIN_MOVED_TEMPORARILY = "0x0101"


# ---------------------------------------------------------------------------------------------- helpers

def _perf(ctx: LabContext, url: str, seconds: float, *, random: bool, blocks: int = 8, max_requests: int = 4,
          label: str = "") -> None:
    kind = "random" if random else "sequential"
    proc = ctx.start_client(f"iscsi-perf {kind} READ16 {blocks * 512} B x{max_requests} in flight{label}",
                            ini.perf_argv(url, ctx.initiator, blocks=blocks, max_requests=max_requests,
                                          random=random))
    ctx.sleep(seconds)
    rc = ctx.stop_client(proc, "SIGINT iscsi-perf (drains, then logs out)")
    if rc != 0:
        raise LabError(f"iscsi-perf exited {rc}: {proc.stdout()[-300:]}")


def _test_cu(ctx: LabContext, tests: str, url: str, timeout: float = 60.0) -> list[ini.TestResult]:
    out = ctx.client(f"iscsi-test-cu -t {tests}", ini.test_cu_argv(url, tests, ctx.initiator),
                     timeout=timeout, expect_rc=None)
    results = ini.parse_test_cu_output(out)
    if not results:
        raise LabError(f"iscsi-test-cu -t {tests} ran no test: {out[-300:]}")
    ctx.steps[-1].result = (f"{sum(r.outcome == 'passed' for r in results)}/{len(results)} passed")
    return results


def _writes(ctx: LabContext, url: str) -> None:
    """WRITE(10)s of 4 KiB (immediate data only), 64 KiB and 256 KiB (immediate data + R2T/Data-Out)."""
    for lba, blocks, count in ((1024, 8, 4), (2048, 128, 2), (4096, 512, 1)):
        ctx.client(f"{count} x WRITE(10) of {blocks * 512 // 1024} KiB",
                   ini.io_argv(url, "write", ctx.initiator, lba=lba, blocks=blocks, count=count))


def _clean_flow(ctx: LabContext, *, header_digest: str | None = None, discovery: bool = True,
                writes: bool = True, seq_s: float = 0.5, rand_s: float = 0.5, blocks: int = 8) -> None:
    """Discovery, INQUIRY, READ CAPACITY(16), a few WRITE(10)s, short sequential and random reads."""
    url = ctx.lun_url(1, 1, header_digest=header_digest)
    if discovery:
        ctx.client("discovery: SendTargets + REPORT LUNS per target (iscsi-ls -s)",
                   ini.iscsi_ls_argv(ini.portal_url(ctx.portal), ctx.initiator))
    ctx.client("standard INQUIRY", ini.iscsi_inq_argv(url, ctx.initiator))
    ctx.client("INQUIRY VPD 0x80 (unit serial number)", ini.iscsi_inq_argv(url, ctx.initiator, evpd=1, page=0x80))
    ctx.client("READ CAPACITY(16)", ini.readcapacity16_argv(url, ctx.initiator))
    if writes:
        _writes(ctx, url)
    _perf(ctx, url, seq_s, random=False, blocks=blocks)
    _perf(ctx, url, rand_s, random=True, blocks=blocks)


def _problems() -> list[str]:
    return []


def _need(problems: list[str], ok: bool, message: str) -> None:
    if not ok:
        problems.append(message)


def _normal(facts: CaptureFacts) -> list[SessionFacts]:
    return [s for s in facts.sessions if s.session_type == "Normal"]


def _check_clean(facts: CaptureFacts, ctx: LabContext, *, discovery: bool = True, writes: bool = True,
                 digest: str = "None") -> list[str]:
    p = _problems()
    if discovery:
        disc = [s for s in facts.sessions if s.session_type == "Discovery"]
        _need(p, len(disc) >= 1 and all(s.login_ok for s in disc), "no successful Discovery session")
        _need(p, facts.pdus["Text Request"] >= 1 and facts.pdus["Text Response"] >= 1,
              "no SendTargets Text Request/Response")
    normal = _normal(facts)
    _need(p, len(normal) >= 5, f"expected >= 5 Normal sessions, saw {len(normal)}")
    for s in facts.sessions:
        _need(p, s.login_status == "0x0000", f"stream {s.tcp_stream}: login status {s.login_status}")
        # iscsi-ls -s closes its LUN-listing session with a plain FIN (no Logout): libiscsi behaviour.
        _need(p, s.ended_by in ("logout", "initiator_closed"), f"stream {s.tcp_stream}: ended by {s.ended_by}")
    closed = [s.tcp_stream for s in normal if s.ended_by == "initiator_closed"]
    allowed = len(ctx.scenario.targets) if discovery else 0
    _need(p, len(closed) <= allowed, f"sessions closed without logout: streams {closed}")
    for s in normal:
        _need(p, (s.header_digest or "None") == digest,
              f"stream {s.tcp_stream}: HeaderDigest {s.header_digest}, wanted {digest}")
    for name in ("SCSI Command", "SCSI Data-In", "SCSI Response", "Logout Request", "Logout Response"):
        _need(p, facts.pdus[name] > 0, f"no {name} PDU")
    if writes:
        _need(p, facts.pdus["R2T"] > 0 and facts.pdus["SCSI Data-Out"] > 0, "no R2T/Data-Out (writes)")
    _need(p, facts.retransmissions == 0, f"{facts.retransmissions} TCP retransmissions in a clean capture")
    return p


# ---------------------------------------------------------------------------------------------- bodies

def body_clean_io(ctx: LabContext) -> None:
    """The demo capture: everything a healthy initiator does, then logout."""
    _clean_flow(ctx)


def body_header_digest(ctx: LabContext) -> None:
    """The clean flow with HeaderDigest=CRC32C required by the target and requested in the URL."""
    params = ctx.tgtd.target_params(1)
    ctx.step(f"target parameters: HeaderDigest={params.get('HeaderDigest')} DataDigest={params.get('DataDigest')}")
    _clean_flow(ctx, header_digest="crc32c", discovery=False, seq_s=0.5, rand_s=0.5)


def body_initiator_killed(ctx: LabContext) -> None:
    """Reads running, then SIGKILL the initiator: no logout, the kernel closes the socket."""
    url = ctx.lun_url(1, 1)
    proc = ctx.start_client("iscsi-perf random READ16 4 KiB x4 in flight",
                            ini.perf_argv(url, ctx.initiator, blocks=8, max_requests=4, random=True))
    ctx.sleep(1.0)
    ctx.signal_client(proc, signal.SIGKILL, "SIGKILL iscsi-perf (initiator dies mid-I/O)")
    ctx.procs.wait(proc, timeout=5.0)
    ctx.sleep(2.0)
    ctx.step("2 s after the kill: still capturing, initiator never came back")


def body_admin_drop(ctx: LabContext) -> None:
    """Reads running, then the target admin deletes the connection; libiscsi reconnects by itself."""
    url = ctx.lun_url(1, 1)
    proc = ctx.start_client("iscsi-perf random READ16 4 KiB x4 in flight",
                            ini.perf_argv(url, ctx.initiator, blocks=8, max_requests=4, random=True))
    ctx.sleep(1.0)
    conns = [c for c in ctx.tgtd.connections(1) if c.initiator == ctx.initiator]
    if len(conns) != 1:
        raise LabError(f"expected one connection of {ctx.initiator} on tid 1, tgtadm shows {conns}")
    conn = conns[0]
    ctx.step(f"tgtadm --op delete --mode conn --tid 1 --sid {conn.sid} --cid {conn.cid}")
    ctx.tgtd.drop_connection(1, conn)
    ctx.sleep(2.5)
    after = [c for c in ctx.tgtd.connections(1) if c.initiator == ctx.initiator]
    ctx.step(f"tgtadm shows {len(after)} connection(s) of the initiator after the drop"
             + (f" (sid {after[0].sid}, was {conn.sid})" if after else ""))
    ctx.data["tgtadm_sid_before"] = conn.sid
    ctx.data["tgtadm_sid_after"] = after[0].sid if after else None
    rc = ctx.stop_client(proc, "SIGINT iscsi-perf (drains, then logs out)")
    if rc != 0:
        raise LabError(f"iscsi-perf exited {rc} after the reconnect")


def body_login_failures(ctx: LabContext) -> None:
    """Unknown target name, CHAP without credentials, CHAP with a wrong secret, then the right one."""
    ctx.client("login to an unknown target name", ini.iscsi_inq_argv(ctx.lun_url(iqn=UNKNOWN_IQN), ctx.initiator),
               expect_rc=None)
    ctx.sleep(0.3)
    ctx.client("login to the CHAP target without credentials",
               ini.iscsi_inq_argv(ctx.lun_url(2, 1), ctx.initiator), expect_rc=None)
    ctx.sleep(0.3)
    ctx.client("CHAP login with a wrong secret",
               ini.iscsi_inq_argv(ctx.lun_url(2, 1, user=CHAP_USER, password=WRONG_SECRET), ctx.initiator),
               expect_rc=None)
    ctx.sleep(0.3)
    good = ctx.lun_url(2, 1, user=CHAP_USER, password=CHAP_SECRET)
    ctx.client("CHAP login with the right secret: INQUIRY", ini.iscsi_inq_argv(good, ctx.initiator))
    _perf(ctx, good, 0.5, random=True, label=" (CHAP session)")


def body_login_redirect(ctx: LabContext) -> None:
    """tgtd redirects every login to the target (Status-Class 1, 0x0101 Target moved temporarily, with a
    TargetAddress, §11.13.5) to 127.0.0.2:3260, the same tgtd, which redirects again: libiscsi follows each
    redirect with a new login and gives up after 11 ("login took too many tries")."""
    params = ctx.tgtd.target_params(1)
    ctx.step(f"target parameters: RedirectAddress={params.get('RedirectAddress')} "
             f"RedirectPort={params.get('RedirectPort')} RedirectReason={params.get('RedirectReason')}")
    ctx.client("login redirected again and again", ini.iscsi_inq_argv(ctx.lun_url(), ctx.initiator),
               expect_rc=None, timeout=15.0)


def body_conformance_iscsi(ctx: LabContext) -> None:
    """libiscsi's iSCSI conformance family (CmdSN/DataSN errors, residuals, task management)."""
    results = _test_cu(ctx, "iSCSI", ctx.lun_url(1, 1), timeout=90.0)
    ctx.data["expect_extra"] = {"conformance": {
        "suite": "iscsi-test-cu -t iSCSI",
        "ran": [r.name for r in results],
        "passed": [r.name for r in results if r.outcome == "passed"],
        "failed": [r.name for r in results if r.outcome == "failed"],
    }}


def body_tmf_abort(ctx: LabContext) -> None:
    """Task management only: ABORT TASK and LOGICAL UNIT RESET against outstanding commands."""
    results = _test_cu(ctx, "iSCSI.iSCSITMF", ctx.lun_url(1, 1))
    ctx.data["expect_extra"] = {"conformance": {
        "suite": "iscsi-test-cu -t iSCSI.iSCSITMF",
        "ran": [r.name for r in results],
        "passed": [r.name for r in results if r.outcome == "passed"],
        "failed": [r.name for r in results if r.outcome == "failed"],
    }}


def body_packet_loss(ctx: LabContext) -> None:
    """5 % random drop of port-3260 segments in INPUT (after the capture point) during writes and reads."""
    for rule in (["INPUT", "-p", "tcp", "--dport", "3260"], ["INPUT", "-p", "tcp", "--sport", "3260"]):
        full = [*rule, "-m", "statistic", "--mode", "random", "--probability", "0.05", "-j", "DROP"]
        ctx.step("iptables -A " + " ".join(full))
        ctx.ns.add_iptables_rule(full)
    url = ctx.lun_url(1, 1)
    _writes(ctx, url)
    _perf(ctx, url, 1.5, random=False)
    ctx.ns.delete_iptables_rules()
    ctx.step("iptables rules deleted")


def body_ipv6(ctx: LabContext) -> None:
    """The clean flow over [::1]."""
    _clean_flow(ctx)


def body_jumbo(ctx: LabContext) -> None:
    """MTU 9000 on lo: 32 KiB reads arrive in ~9 KB segments."""
    _clean_flow(ctx, discovery=False, seq_s=0.4, rand_s=0.4, blocks=64)


def body_short_clean(ctx: LabContext) -> None:
    """A shorter clean flow (for the capture-format scenarios)."""
    _clean_flow(ctx, writes=True, seq_s=0.4, rand_s=0.4)


def body_nop_timeout(ctx: LabContext) -> None:
    """Target pings with NOP-In every second; the initiator is frozen (SIGSTOP) and never answers."""
    url = ctx.lun_url(1, 1)
    proc = ctx.start_client("iscsi-perf random READ16 512 B x1 in flight",
                            ini.perf_argv(url, ctx.initiator, blocks=1, max_requests=1, random=True))
    ctx.sleep(0.8)
    ctx.signal_client(proc, signal.SIGSTOP, "SIGSTOP iscsi-perf (initiator hangs, socket stays open)")
    dropped = False
    for _ in range(80):
        ctx.sleep(0.1)
        if not [c for c in ctx.tgtd.connections(1) if c.initiator == ctx.initiator]:
            dropped = True
            break
    ctx.step("tgtd closed the connection after unanswered NOP-Ins" if dropped
             else "tgtd still holds the connection after 8 s")
    ctx.sleep(0.5)
    ctx.signal_client(proc, signal.SIGKILL, "SIGKILL the frozen iscsi-perf")
    ctx.procs.wait(proc, timeout=5.0)
    ctx.sleep(0.5)


def body_target_restart(ctx: LabContext) -> None:
    """Reads running, then tgtd is killed (SIGKILL) and started again; libiscsi reconnects by itself."""
    url = ctx.lun_url(1, 1)
    proc = ctx.start_client("iscsi-perf random READ16 512 B x2 in flight",
                            ini.perf_argv(url, ctx.initiator, blocks=1, max_requests=2, random=True))
    ctx.sleep(0.8)
    old = ctx.tgtd.proc
    if old is None:
        raise LabError("tgtd is not running")
    ctx.step(f"SIGKILL tgtd (pid {old.pid}): the kernel closes its sockets, the portal refuses connections")
    ctx.procs.stop(old, signal.SIGKILL)
    ctx.sleep(1.5)
    ctx.step("start tgtd again with the same targets")
    specs = list(ctx.tgtd.targets)
    ctx.tgtd.targets.clear()
    ctx.tgtd.start(ctx.scenario.tgtd_opts)
    for spec in specs:
        ctx.tgtd.add_target(spec)
    back = False
    for _ in range(60):
        ctx.sleep(0.1)
        if [c for c in ctx.tgtd.connections(1) if c.initiator == ctx.initiator]:
            back = True
            break
    ctx.step("libiscsi logged in again to the restarted tgtd" if back else "libiscsi did not come back within 6 s")
    ctx.data["reconnected"] = back
    ctx.sleep(0.7)
    rc = ctx.stop_client(proc, "SIGINT iscsi-perf (drains, then logs out)")
    if rc != 0:
        raise LabError(f"iscsi-perf exited {rc} after the restart")


def body_path_failure(ctx: LabContext) -> None:
    """Reads running, then iptables drops every port-3260 segment (the path fails) until tgtd's NOP-In pings
    time out; the rules are removed and libiscsi reconnects."""
    url = ctx.lun_url(1, 1)
    proc = ctx.start_client("iscsi-perf random READ16 512 B x1 in flight",
                            ini.perf_argv(url, ctx.initiator, blocks=1, max_requests=1, random=True))
    ctx.sleep(0.3)
    for rule in (["INPUT", "-p", "tcp", "--dport", "3260", "-j", "DROP"],
                 ["INPUT", "-p", "tcp", "--sport", "3260", "-j", "DROP"]):
        ctx.step("iptables -A " + " ".join(rule))
        ctx.ns.add_iptables_rule(rule)
    outage_start = ctx.steps[-1].at
    dropped = False
    for _ in range(100):
        ctx.sleep(0.1)
        if not [c for c in ctx.tgtd.connections(1) if c.initiator == ctx.initiator]:
            dropped = True
            break
    ctx.step("tgtd gave up on the connection (NOP-In pings unanswered)" if dropped
             else "tgtd still holds the connection after 10 s")
    # No more pings once the path is back: the reconnected session's own NOP-Ins would race its logout.
    ctx.step("tgtadm: nop_interval=0 (stop the NOP-In pings)")
    ctx.tgtd.set_param(1, "nop_interval", "0")
    # Keep the path down until the initiator's backed-off retransmissions of its READ reach five
    # (RTO 0.2 s doubling: 6.2 s after the outage began), so the loss is visible per direction.
    ctx.sleep(max(0.5, outage_start + 7.0 - time.time()))
    ctx.ns.delete_iptables_rules()
    ctx.step("iptables rules deleted: the path is back")
    back = False
    for _ in range(80):
        ctx.sleep(0.1)
        if [c for c in ctx.tgtd.connections(1) if c.initiator == ctx.initiator]:
            back = True
            break
    ctx.step("libiscsi logged in again" if back else "libiscsi did not come back within 8 s")
    ctx.data["reconnected"] = back
    ctx.sleep(0.5)
    rc = ctx.stop_client(proc, "SIGINT iscsi-perf (drains, then logs out)")
    if rc != 0:
        raise LabError(f"iscsi-perf exited {rc} after the path came back")


# ---------------------------------------------------------------------------------------------- checks

def check_clean_io(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """Clean flow, no digests."""
    return _check_clean(facts, ctx)


def check_header_digest(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """Clean flow, and every Normal session negotiated HeaderDigest=CRC32C; tshark saw the digests."""
    p = _check_clean(facts, ctx, discovery=False, digest="CRC32C")
    _need(p, facts.header_digest_pdus > 0, "tshark decoded no header digest")
    data = sorted({s.data_digest or "None" for s in _normal(facts)})
    ctx.notes.append(f"tgtd was configured with DataDigest=CRC32C; libiscsi only offers DataDigest=None, so the "
                     f"Login Responses negotiated DataDigest={','.join(data)}")
    return p


def check_initiator_killed(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """One Normal session, no logout, closed from the initiator side, traffic stops after."""
    p = _problems()
    normal = _normal(facts)
    _need(p, len(normal) == 1, f"expected one Normal session, saw {len(normal)}")
    if normal:
        s = normal[0]
        _need(p, s.login_ok, "login failed")
        _need(p, s.pdus["Logout Request"] == 0, "a Logout Request was sent")
        _need(p, s.closed_by == "initiator", f"connection closed by {s.closed_by}, not the initiator")
    return p


def check_admin_drop(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """First session dropped by the target mid-I/O; a new session follows and ends with logout."""
    p = _problems()
    normal = _normal(facts)
    _need(p, len(normal) >= 2, f"expected >= 2 Normal sessions (drop + reconnect), saw {len(normal)}")
    if len(normal) >= 2:
        _need(p, normal[0].ended_by == "target_dropped", f"first session ended by {normal[0].ended_by}")
        _need(p, normal[-1].ended_by == "logout", f"last session ended by {normal[-1].ended_by}")
        _need(p, all(s.login_ok for s in normal), "a reconnect login failed")
        _need(p, normal[0].pdus["SCSI Command"] > 0 and normal[-1].pdus["SCSI Command"] > 0,
              "no I/O before and after the reconnect")
        first, last = normal[0], normal[-1]
        ctx.notes.append(
            f"target closed stream {first.tcp_stream} with {first.close_kind.upper() if first.close_kind else '?'}; "
            f"libiscsi reconnected on stream {last.tcp_stream} "
            + ("with a NEW session (different ISID, TSIH 0 in the Login Request), not a reinstatement"
               if first.isid != last.isid else "reinstating the session (same ISID)")
            + f"; tgtadm sid {ctx.data.get('tgtadm_sid_before')} -> {ctx.data.get('tgtadm_sid_after')}")
    return p


def check_login_failures(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """0x0203 for the unknown target, 0x0201 twice for CHAP, then a CHAP login that works."""
    p = _problems()
    statuses = [(s.target, s.login_status) for s in facts.sessions]
    _need(p, (UNKNOWN_IQN, LOGIN_NOT_FOUND) in statuses, f"no 0x0203 for the unknown target: {statuses}")
    _need(p, [st for t, st in statuses if t == SECURE_IQN].count(LOGIN_AUTH_FAILED) == 2,
          f"expected two 0x0201 on the CHAP target: {statuses}")
    good = [s for s in facts.sessions if s.target == SECURE_IQN and s.login_ok]
    _need(p, len(good) >= 1 and all(s.auth_method == "CHAP" for s in good), "no successful CHAP login")
    _need(p, all(s.ended_by == "logout" for s in good), "CHAP session did not log out")
    return p


def check_login_redirect(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """Logins answered 0x0101 (target moved temporarily), a follow-up login after each but the last, none
    logged in."""
    p = _problems()
    statuses = [s.login_status for s in facts.sessions]
    # (libiscsi may open one last connection and give up before its Login Request: status None)
    _need(p, statuses.count(LOGIN_MOVED_TEMPORARILY) >= 2
          and all(st in (LOGIN_MOVED_TEMPORARILY, None) for st in statuses),
          f"expected repeated 0x0101 redirects: {statuses}")
    _need(p, not any(s.login_ok for s in facts.sessions), "a login succeeded although every login is redirected")
    return p


def _check_conformance(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    p = _problems()
    conf = ctx.data.get("expect_extra", {}).get("conformance", {})
    _need(p, bool(conf.get("ran")), "no conformance test ran")
    _need(p, len(_normal(facts)) >= 1, "no Normal session")
    return p


def check_conformance_iscsi(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """The family ran and the capture holds its TMFs."""
    p = _check_conformance(facts, ctx)
    _need(p, facts.pdus["Task Management Request"] > 0, "no Task Management Request")
    return p


def check_tmf_abort(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """At least one ABORT TASK, answered (which TMFs occur and how tgtd answers depends on timing)."""
    p = _check_conformance(facts, ctx)
    aborts = [t for t in facts.tmf if t["function"] == "ABORT TASK"]
    _need(p, bool(aborts) and all(t["response"] is not None for t in aborts), f"TMFs seen: {facts.tmf}")
    for t in facts.tmf:
        ctx.notes.append(f"{t['function']} at t={t['t']}s answered: {t['response'] or 'no response in capture'}")
    on_wire = {str(t["function"]) for t in facts.tmf}
    conf = ctx.data.get("expect_extra", {}).get("conformance", {})
    for test in conf.get("ran", []):
        if "LUNReset" in test and "LOGICAL UNIT RESET" not in on_wire:
            outcome = "passed" if test in conf.get("passed", []) else "failed"
            ctx.notes.append(f"iscsi-test-cu reported {test} {outcome}, but no LOGICAL UNIT RESET is on the wire")
    return p


def check_packet_loss(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """Retransmissions present; the iSCSI sessions still complete."""
    p = _problems()
    _need(p, facts.retransmissions > 0, "no TCP retransmission")
    _need(p, all(s.ended_by == "logout" for s in _normal(facts)), "a session did not end with logout")
    return p


def check_capture_gaps(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """Segments missing from the capture, no TCP retransmission, every iSCSI session still logs out."""
    p = _problems()
    _need(p, facts.lost_segments > 0, "tshark reports no segment missing from the capture")
    _need(p, facts.retransmissions == 0, f"{facts.retransmissions} retransmissions (gaps must be capture-only)")
    _need(p, all(s.ended_by in ("logout", "initiator_closed") for s in facts.sessions),
          "a session did not end normally")
    ctx.notes.append(f"capture filter: {CAPTURE_GAP_FILTER}; tshark flags {facts.lost_segments} frames with "
                     "'previous segment(s) not captured'")
    return p


def check_ipv6(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """Clean flow, every connection over IPv6."""
    p = _check_clean(facts, ctx)
    _need(p, all(s.ip_version == 6 for s in facts.sessions), "a connection was not IPv6")
    return p


def check_jumbo(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """Clean flow; segments larger than 1500 bytes occur."""
    p = _check_clean(facts, ctx, discovery=False)
    from analyzer.lab.verify import count_frames  # local: only this check needs a frame-length query
    _need(p, count_frames(facts.path, "frame.len > 1514") > 0, "no frame above 1514 bytes at MTU 9000")
    return p


def check_short_clean(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """Clean flow (capture format scenarios)."""
    return _check_clean(facts, ctx)


def check_nop_timeout(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """NOP-Ins from the target without NOP-Out answers, then the target closes the connection."""
    p = _problems()
    normal = _normal(facts)
    _need(p, len(normal) == 1, f"expected one Normal session, saw {len(normal)}")
    _need(p, facts.pdus["NOP-In"] >= 2, f"only {facts.pdus['NOP-In']} NOP-In")
    if normal:
        _need(p, normal[0].ended_by == "target_dropped", f"session ended by {normal[0].ended_by}")
    unanswered = [ping for ping in facts.nop_pings if not ping["answered"]]
    _need(p, len(unanswered) >= 3, f"expected >= 3 unanswered NOP-In pings, saw {len(unanswered)}")
    ctx.notes.append(f"{len(facts.nop_pings)} NOP-In pings, {len(unanswered)} unanswered; tgtd closed the "
                     "connection one interval after the last unanswered ping")
    return p


def check_target_restart(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """The first session is closed by the (killed) target; a session to the restarted tgtd logs out."""
    p = _problems()
    normal = _normal(facts)
    _need(p, len(normal) >= 2, f"expected >= 2 Normal sessions (before and after the restart), saw {len(normal)}")
    _need(p, bool(ctx.data.get("reconnected")), "libiscsi did not log in again after the restart")
    if len(normal) >= 2:
        _need(p, normal[0].closed_by == "target", f"first session closed by {normal[0].closed_by}")
        _need(p, normal[0].pdus["Logout Request"] == 0, "the first session logged out")
        _need(p, normal[-1].ended_by == "logout", f"last session ended by {normal[-1].ended_by}")
        ctx.notes.append(f"tgtd killed: stream {normal[0].tcp_stream} closed by the target "
                         f"({normal[0].close_kind}); after the restart libiscsi logged in on stream "
                         f"{normal[-1].tcp_stream} with TSIH {normal[-1].tsih} (before: {normal[0].tsih})")
    return p


def check_path_failure(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """Retransmissions while the path is down, the first session ends, a new one logs out after the path is back."""
    p = _problems()
    normal = _normal(facts)
    _need(p, len(normal) >= 2, f"expected >= 2 Normal sessions (before and after the outage), saw {len(normal)}")
    _need(p, facts.retransmissions >= 3, f"only {facts.retransmissions} retransmissions during the outage")
    _need(p, bool(ctx.data.get("reconnected")), "libiscsi did not log in again after the path came back")
    if len(normal) >= 2:
        _need(p, normal[0].pdus["Logout Request"] == 0, "the first session logged out")
        _need(p, normal[-1].ended_by == "logout", f"last session ended by {normal[-1].ended_by}")
        ctx.notes.append(f"path down: {facts.retransmissions} retransmissions; stream {normal[0].tcp_stream} "
                         f"ended by {normal[0].closed_by} ({normal[0].close_kind}); libiscsi logged in again on "
                         f"stream {normal[-1].tcp_stream}")
    return p


# ---------------------------------------------------------------------------------------------- scripted
# Scenarios driven by the lab's own raw-PDU initiator (analyzer/lab/scripted.py) against the real tgtd, for
# situations libiscsi never produces. Bodies record what tgtd did in ctx.data; checks re-derive everything
# from the capture (tshark) and put it under expect["scripted"].

#: Target with MaxConnections=2 (tgtd's default is 1) for the MC/S scenarios.
DISK_MC2 = TargetSpec(1, DISK_IQN, luns=(LunSpec(1, 16),), params=(("MaxConnections", "2"),))
DISK_SMALL = TargetSpec(1, DISK_IQN, luns=(LunSpec(1, 16),))
#: ISIDs of the scripted sessions: type 10 (random) with a recognisable "5c51" marker, one block per scenario.
ISID_MCS = 0x805C51010001
ISID_REINSTATE = 0x805C51020001
ISID_CONN_SINGLE = 0x805C51030001
ISID_CONN_MCS = 0x805C51030002
ISID_LOGOUT = 0x805C51040000  # + 1..n
ISID_WINDOW = 0x805C51050000  # + 1..n
ISID_NOP = 0x805C51060000  # + 1..n
ISID_TEXT = 0x805C51070000  # + 1..n
#: tbf rate for the scripted scenarios: high enough not to matter, but `Namespace.shape` also turns off tail
#: loss probes, which otherwise retransmit tgtd's FIN while the peer's (delayed) ACK is on its way.
SCRIPTED_RATE = "100mbit"
#: Seconds the scripted initiator waits after an abrupt loss before reinstating (DefaultTime2Wait=2, §13.15).
TIME2WAIT_S = 2.2


class ScriptedRun:
    """The scripted initiator's connections in one scenario body: opened in the lab namespace, each step
    logged, every socket closed at the end."""

    def __init__(self, ctx: LabContext) -> None:
        self.ctx = ctx
        self.conns: list[sc.Connection] = []

    def session(self, isid: int) -> sc.Session:
        """A new scripted session towards the scenario's first target."""
        return sc.Session(self.ctx.initiator, self.ctx.scenario.targets[0].iqn, isid=isid)

    def connect(self, session: sc.Session, cid: int = 0) -> sc.Connection:
        """A new TCP connection (inside the lab namespace) for `session`."""
        conn = sc.Connection.open(session, self.ctx.portal.host, self.ctx.portal.port, cid=cid,
                                  netns=self.ctx.ns.name)
        self.conns.append(conn)
        return conn

    def login(self, conn: sc.Connection, action: str, **kw: Any) -> sc.LoginResult:
        """Log `conn` in (security + operational stage) and record the status/TSIH as the step result."""
        st = self.ctx.step(action)
        res = conn.login(**kw)
        st.result = f"status 0x{res.status:04x}, TSIH 0x{res.tsih:04x}"
        return res

    def do(self, action: str, fn: Callable[[], Any], describe: Callable[[Any], str] = str) -> Any:
        """Run one scripted action as a step; its result (or the error) becomes the step result."""
        st = self.ctx.step(action)
        try:
            out = fn()
        except sc.ScriptedError as exc:
            st.result = f"{type(exc).__name__}: {exc}"
            raise
        st.result = describe(out)
        return out

    def io(self, conn: sc.Connection, label: str, *, lba: int = 0, write_kib: int = 16) -> None:
        """TEST UNIT READY (absorbs tgtd's power-on Unit Attention), READ(10) 4 KiB, WRITE(10) with R2T."""
        self.do(f"{label}: TEST UNIT READY", conn.test_unit_ready, _status)
        self.do(f"{label}: READ(10) 8 blocks at LBA {lba}", lambda: conn.read10(lba, 8), _status)
        if write_kib:
            data = bytes((i * 7) & 0xFF for i in range(write_kib * 1024))
            self.do(f"{label}: WRITE(10) {write_kib} KiB at LBA {lba + 64} (immediate data + R2T/Data-Out)",
                    lambda: conn.write10(lba + 64, data), _status)

    def wait_closed(self, conn: sc.Connection, label: str, timeout: float) -> str | None:
        """Wait up to `timeout` for the target to close `conn`; record what happened."""
        st = self.ctx.step(f"{label}: wait up to {timeout:g}s for the target to close the connection")
        how = conn.wait_closed(timeout)
        st.result = f"closed by target ({how})" if how else "still open"
        return how

    def close_all(self) -> None:
        """Close every socket still open (FIN)."""
        for conn in self.conns:
            if conn.closed != "local":
                conn.close()


def _status(res: sc.CommandResult) -> str:
    return "no status" if res.status is None else f"status 0x{res.status:02x}"


def _scripted(body: Callable[[ScriptedRun], None]) -> Callable[[LabContext], None]:
    def run(ctx: LabContext) -> None:
        lab = ScriptedRun(ctx)
        try:
            body(lab)
        finally:
            lab.close_all()
    run.__doc__ = body.__doc__
    return run


def _tgtadm_conns(lab: ScriptedRun) -> list[dict[str, object]]:
    conns = lab.ctx.tgtd.connections(lab.ctx.scenario.targets[0].tid)
    return [{"sid": c.sid, "cid": c.cid} for c in conns]


def _body_mcs(lab: ScriptedRun) -> None:
    """MC/S: CID 0 leading login, CID 1 joins with the TSIH, I/O on both, close-session Logout on CID 0."""
    ctx = lab.ctx
    s = lab.session(ISID_MCS)
    c0 = lab.connect(s, 0)
    r0 = lab.login(c0, "CID 0: leading login (TSIH 0), offers MaxConnections=2",
                   operational=[("MaxConnections", "2")])
    if not r0.ok:
        raise LabError(f"leading login failed: 0x{r0.status:04x}")
    ctx.data["negotiated_max_connections"] = dict(r0.keys).get("MaxConnections")
    lab.io(c0, "CID 0")
    c1 = lab.connect(s, 1)
    r1 = lab.login(c1, f"CID 1: second connection, same ISID 0x{s.isid:012x} + TSIH 0x{s.tsih:04x}",
                   operational=[("MaxConnections", "2")])
    ctx.data["second_login_status"] = f"0x{r1.status:04x}"
    if not r1.ok:
        lab.wait_closed(c1, "CID 1", 1.0)
        lab.do("CID 0: close-session Logout", lambda: c0.logout(sc.LogoutReason.CLOSE_SESSION),
               lambda r: f"response {r.response}")
        lab.wait_closed(c0, "CID 0", 2.0)
        return
    ctx.data["tgtadm_after_second_login"] = _tgtadm_conns(lab)
    ctx.step(f"tgtadm --op show --mode conn: {ctx.data['tgtadm_after_second_login']}")
    lab.io(c1, "CID 1", lba=256)
    lab.do("CID 0: READ(10) 8 blocks at LBA 512 (both connections in use)", lambda: c0.read10(512, 8), _status)
    lab.do("CID 0: Logout reason 0 (close the session)", lambda: c0.logout(sc.LogoutReason.CLOSE_SESSION),
           lambda r: f"response {r.response}, Time2Wait {r.time2wait}, Time2Retain {r.time2retain}")
    ctx.data["cid0_closed"] = lab.wait_closed(c0, "CID 0", 2.0)
    ctx.data["cid1_closed"] = lab.wait_closed(c1, "CID 1 (RFC 7143 §11.14: close-session ends all connections)", 1.5)
    ctx.data["tgtadm_after_logout"] = _tgtadm_conns(lab)
    ctx.step(f"tgtadm --op show --mode conn: {ctx.data['tgtadm_after_logout']}")
    if ctx.data["cid1_closed"] is None:
        res = lab.do("CID 1: READ(10) 8 blocks after the close-session Logout on CID 0",
                     lambda: c1.read10(768, 8), _status)
        ctx.data["cid1_io_after_close_session"] = res.status
        lab.do("CID 1: Logout reason 0 (close the session)", lambda: c1.logout(sc.LogoutReason.CLOSE_SESSION),
               lambda r: f"response {r.response}")
        lab.wait_closed(c1, "CID 1", 2.0)


def _body_session_reinstatement(lab: ScriptedRun) -> None:
    """Session A up; a new connection logs in with the same InitiatorName + ISID and TSIH 0 (§6.3.5)."""
    ctx = lab.ctx
    a = lab.session(ISID_REINSTATE)
    ca = lab.connect(a, 0)
    if not lab.login(ca, "session A: leading login (TSIH 0)").ok:
        raise LabError("session A login failed")
    ctx.data["tsih_a"] = a.tsih
    lab.io(ca, "session A")
    ctx.sleep(0.3)
    b = lab.session(ISID_REINSTATE)
    cb = lab.connect(b, 0)
    rb = lab.login(cb, f"session B: same InitiatorName + ISID 0x{a.isid:012x}, TSIH 0 (reinstatement)")
    ctx.data["reinstatement_status"] = f"0x{rb.status:04x}"
    ctx.data["tsih_b"] = b.tsih
    ctx.data["a_closed"] = lab.wait_closed(ca, "session A's connection", 2.0)
    if rb.ok:
        lab.io(cb, "session B", lba=128, write_kib=0)
        lab.do("session B: Logout reason 0", lambda: cb.logout(sc.LogoutReason.CLOSE_SESSION),
               lambda r: f"response {r.response}")
        lab.wait_closed(cb, "session B", 2.0)


def _body_connection_reinstatement(lab: ScriptedRun) -> None:
    """Abrupt loss (RST) then reinstatement of the same CID, for a 1-connection and a 2-connection session."""
    ctx = lab.ctx
    # Part 1: single-connection session at ERL 0.
    s1 = lab.session(ISID_CONN_SINGLE)
    c = lab.connect(s1, 0)
    if not lab.login(c, "part 1, session 1 CID 0: leading login").ok:
        raise LabError("login failed")
    lab.io(c, "part 1 CID 0", write_kib=0)
    lab.do("part 1 CID 0: abort the TCP connection (SO_LINGER 0 -> RST), no Logout", c.reset, lambda _: "RST sent")
    ctx.sleep(TIME2WAIT_S)
    c2 = lab.connect(s1, 0)
    c2.exp_statsn = c.exp_statsn  # §6.3.4: the reinstating login carries the old connection's ExpStatSN
    r = lab.login(c2, f"part 1: reinstatement login ISID 0x{s1.isid:012x} TSIH 0x{s1.tsih:04x} CID 0 "
                      f"{TIME2WAIT_S}s after the RST")
    ctx.data["single_reinstatement_status"] = f"0x{r.status:04x}"
    if r.ok:
        lab.io(c2, "part 1 reinstated CID 0", write_kib=0)
        lab.do("part 1: Logout reason 0", lambda: c2.logout(sc.LogoutReason.CLOSE_SESSION),
               lambda x: f"response {x.response}")
    lab.wait_closed(c2, "part 1 reinstatement connection", 1.0)
    ctx.sleep(0.3)
    # Part 2: a two-connection session keeps the session alive while CID 1 is lost and reinstated.
    s2 = lab.session(ISID_CONN_MCS)
    d0 = lab.connect(s2, 0)
    if not lab.login(d0, "part 2, session 2 CID 0: leading login, MaxConnections=2",
                     operational=[("MaxConnections", "2")]).ok:
        raise LabError("login failed")
    lab.io(d0, "part 2 CID 0", write_kib=0)
    d1 = lab.connect(s2, 1)
    if not lab.login(d1, "part 2 CID 1: second connection", operational=[("MaxConnections", "2")]).ok:
        raise LabError("second connection login failed")
    lab.do("part 2 CID 1: READ(10)", lambda: d1.read10(64, 8), _status)
    lab.do("part 2 CID 1: abort the TCP connection (RST), no Logout", d1.reset, lambda _: "RST sent")
    ctx.sleep(TIME2WAIT_S)
    ctx.data["tgtadm_after_rst"] = _tgtadm_conns(lab)
    ctx.step(f"tgtadm --op show --mode conn: {ctx.data['tgtadm_after_rst']}")
    d1b = lab.connect(s2, 1)
    d1b.exp_statsn = d1.exp_statsn
    r = lab.login(d1b, f"part 2: reinstatement login TSIH 0x{s2.tsih:04x} CID 1",
                  operational=[("MaxConnections", "2")])
    ctx.data["mcs_reinstatement_status"] = f"0x{r.status:04x}"
    if r.ok:
        lab.do("part 2 reinstated CID 1: READ(10)", lambda: d1b.read10(128, 8), _status)
    # Part 3: reinstate CID 0 while its old connection is still up (the initiator believes it dead).
    d0b = lab.connect(s2, 0)
    d0b.exp_statsn = d0.exp_statsn
    r = lab.login(d0b, "part 3: login with CID 0 again while the old CID 0 connection is still open "
                       "(implicit logout of the old one, §6.3.4)", operational=[("MaxConnections", "2")])
    ctx.data["live_reinstatement_status"] = f"0x{r.status:04x}"
    ctx.data["old_cid0_closed"] = lab.wait_closed(d0, "part 3 old CID 0", 1.5)
    ctx.data["tgtadm_after_live_reinstatement"] = _tgtadm_conns(lab)
    ctx.step(f"tgtadm --op show --mode conn: {ctx.data['tgtadm_after_live_reinstatement']}")
    if r.ok:
        lab.do("part 3 new CID 0: READ(10)", lambda: d0b.read10(192, 8), _status)
    if ctx.data["old_cid0_closed"] is None:
        lab.do("part 3 old CID 0: READ(10) on the connection that should have been logged out",
               lambda: d0.read10(256, 8), _status)
    # Clean up: a close-session Logout on every connection the target still holds.
    for conn, label in ((d0b, "new CID 0"), (d1b, "reinstated CID 1"), (d0, "old CID 0")):
        if conn.closed is None and conn.wait_closed(0.1) is None:
            try:
                lab.do(f"{label}: Logout reason 0", lambda c=conn: c.logout(sc.LogoutReason.CLOSE_SESSION, timeout=2.0),
                       lambda x: f"response {x.response}")
            except sc.ScriptedError:
                pass
            lab.wait_closed(conn, label, 1.5)


def _body_logout_failures(lab: ScriptedRun) -> None:
    """Logout with a CID that does not exist, a recovery logout at ERL 0, a close-connection Logout for the
    OTHER connection of an MC/S session, a proper close-session Logout, and requests after a Logout."""
    ctx = lab.ctx

    def new(n: int, label: str) -> sc.Connection:
        conn = lab.connect(lab.session(ISID_LOGOUT + n), 0)
        if not lab.login(conn, f"{label}: login").ok:
            raise LabError(f"{label}: login failed")
        lab.do(f"{label}: TEST UNIT READY", conn.test_unit_ready, _status)
        return conn

    c = new(1, "session 1")
    lab.do("session 1: Logout reason 1 (close the connection) for CID 7, which does not exist",
           lambda: c.logout(sc.LogoutReason.CLOSE_CONNECTION, cid=7), lambda r: f"response {r.response}")
    ctx.data["cid_not_found_closed"] = lab.wait_closed(c, "session 1", 1.5)
    if ctx.data["cid_not_found_closed"] is None:
        lab.do("session 1: READ(10) after the failed Logout", lambda: c.read10(0, 8), _status)
        lab.do("session 1: Logout reason 0", lambda: c.logout(), lambda r: f"response {r.response}")
        lab.wait_closed(c, "session 1", 1.5)
    c = new(2, "session 2")
    lab.do("session 2: Logout reason 2 (remove the connection for recovery) at ErrorRecoveryLevel=0",
           lambda: c.logout(sc.LogoutReason.REMOVE_FOR_RECOVERY), lambda r: f"response {r.response}")
    ctx.data["recovery_closed"] = lab.wait_closed(c, "session 2", 1.5)
    if ctx.data["recovery_closed"] is None:
        lab.do("session 2: Logout reason 0", lambda: c.logout(), lambda r: f"response {r.response}")
        lab.wait_closed(c, "session 2", 1.5)
    # Session 3: two connections; a close-connection Logout for CID 1 carried by CID 0 (§11.14).
    s3 = lab.session(ISID_LOGOUT + 3)
    e0 = lab.connect(s3, 0)
    if not lab.login(e0, "session 3 CID 0: login, MaxConnections=2", operational=[("MaxConnections", "2")]).ok:
        raise LabError("session 3 login failed")
    lab.do("session 3 CID 0: TEST UNIT READY", e0.test_unit_ready, _status)
    e1 = lab.connect(s3, 1)
    if not lab.login(e1, "session 3 CID 1: login", operational=[("MaxConnections", "2")]).ok:
        raise LabError("session 3 CID 1 login failed")
    lab.do("session 3 CID 1: READ(10)", lambda: e1.read10(0, 8), _status)
    lab.do("session 3 CID 0: Logout reason 1 (close the connection) naming CID 1",
           lambda: e0.logout(sc.LogoutReason.CLOSE_CONNECTION, cid=1), lambda r: f"response {r.response}")
    ctx.data["other_cid_carrier_closed"] = lab.wait_closed(e0, "session 3 CID 0 (the carrier)", 1.5)
    ctx.data["other_cid_named_closed"] = lab.wait_closed(e1, "session 3 CID 1 (the CID named)", 1.0)
    for conn, label in ((e1, "session 3 CID 1"), (e0, "session 3 CID 0")):
        if conn.closed is None:
            lab.do(f"{label}: READ(10)", lambda c=conn: c.read10(8, 8), _status)
            lab.do(f"{label}: Logout reason 0", lambda c=conn: c.logout(), lambda r: f"response {r.response}")
            lab.wait_closed(conn, label, 1.5)
    # Session 4: proper close-session Logout.
    c = new(4, "session 4")
    lab.do("session 4: READ(10)", lambda: c.read10(0, 8), _status)
    lab.do("session 4: Logout reason 0 (close the session)", lambda: c.logout(), lambda r: f"response {r.response}")
    lab.wait_closed(c, "session 4", 1.5)
    # Session 5: requests sent after the Logout Request, in the same TCP segment (request_after_logout).
    c = new(5, "session 5")
    st = ctx.step("session 5: Logout reason 0, then a NOP-Out ping and a READ(10), in one TCP segment")
    with c.batch():
        c.send_logout(sc.LogoutReason.CLOSE_SESSION)
        c.send_nop_ping(b"after-logout")
        c.submit_command(sc.cdb_read10(0, 1), read_length=512)
    got = c.drain(1.5)
    st.result = "target sent: " + (", ".join(sc.describe(p).split(" StatSN")[0] for p in got) or "nothing") \
        + f"; connection {c.closed or 'open'}"
    lab.wait_closed(c, "session 5", 0.5)


def _body_cmdsn_window(lab: ScriptedRun) -> None:
    """A command beyond MaxCmdSN (§4.2.2.1: silently ignored), normal I/O after it, an immediate NOP-Out
    ping, logout; then a second session sends a command with a stale CmdSN (below ExpCmdSN)."""
    ctx = lab.ctx
    s = lab.session(ISID_WINDOW + 1)
    c = lab.connect(s, 0)
    if not lab.login(c, "session 1: login").ok:
        raise LabError("login failed")
    lab.io(c, "session 1", write_kib=0)
    bad = sc.sn_add(s.max_cmdsn, 1)
    ctx.data["window_before"] = (s.exp_cmdsn, s.max_cmdsn)
    st = ctx.step(f"session 1: READ(10) with CmdSN {bad} = MaxCmdSN + 1 (window {s.exp_cmdsn}..{s.max_cmdsn}); "
                  "the initiator's CmdSN counter is not advanced")
    itt_bad, _ = c.submit_command(sc.cdb_read10(1000, 1), read_length=512, cmdsn=bad)
    got = [p for p in c.drain(1.0) if p.itt == itt_bad]
    st.result = "answered" if got else "no response within 1 s"
    ctx.data["oow_itt"] = itt_bad
    lab.do("session 1: READ(10) with the next in-window CmdSN", lambda: c.read10(16, 8), _status)
    lab.do("session 1: WRITE(10) 16 KiB", lambda: c.write10(64, bytes(16384)), _status)
    lab.do("session 1: immediate NOP-Out ping (valid ITT)", lambda: c.nop_ping(b"window-ping"),
           lambda p: f"NOP-In ITT 0x{p.itt:x}, {len(p.data)} bytes echoed")
    got = c.drain(0.5)
    ctx.step("session 1: still no response for the out-of-window command" if not any(p.itt == itt_bad for p in got)
             else "session 1: the out-of-window command was answered late")
    lab.do("session 1: Logout reason 0", lambda: c.logout(), lambda r: f"response {r.response}")
    lab.wait_closed(c, "session 1", 1.5)
    ctx.sleep(0.3)
    s2 = lab.session(ISID_WINDOW + 2)
    c2 = lab.connect(s2, 0)
    if not lab.login(c2, "session 2: login").ok:
        raise LabError("login failed")
    lab.io(c2, "session 2", write_kib=0)
    stale = sc.sn_add(s2.exp_cmdsn, -1)
    st = ctx.step(f"session 2: READ(10) with CmdSN {stale} = ExpCmdSN - 1 (already used; §4.2.2.1 says ignore)")
    itt_stale, _ = c2.submit_command(sc.cdb_read10(0, 1), read_length=512, cmdsn=stale)
    got = c2.drain(1.0)
    st.result = ("answered" if any(p.itt == itt_stale for p in got) else "no response") \
        + f"; connection {c2.closed or 'open'}"
    ctx.data["stale_closed"] = c2.closed
    if c2.closed is None:
        lab.do("session 2: NOP-Out ping", lambda: c2.nop_ping(), lambda p: f"NOP-In ITT 0x{p.itt:x}")
        lab.do("session 2: Logout reason 0", lambda: c2.logout(), lambda r: f"response {r.response}")
        lab.wait_closed(c2, "session 2", 1.5)


def _body_nop_and_text(lab: ScriptedRun) -> None:
    """Discovery SendTargets; NOP-Out pings; ABORT TASK for a WRITE waiting for Data-Out and for an unknown
    ITT; the WRITE completed afterwards; then a Text Request (SendTargets=All) in a Normal session's FFP."""
    ctx = lab.ctx
    d = lab.connect(lab.session(ISID_NOP + 1), 0)
    if not lab.login(d, "discovery session: login SessionType=Discovery", session_type="Discovery").ok:
        raise LabError("discovery login failed")
    tx = d.send_text([("SendTargets", "All")])
    lab.do("discovery session: Text Request SendTargets=All",
           lambda: d.wait_for(lambda p: p.itt == tx), lambda p: f"{p.name} {getattr(p, 'keys', '')}")
    lab.do("discovery session: Logout reason 0", lambda: d.logout(), lambda r: f"response {r.response}")
    lab.wait_closed(d, "discovery session", 1.5)
    s = lab.session(ISID_NOP + 2)
    c = lab.connect(s, 0)
    if not lab.login(c, "normal session: login").ok:
        raise LabError("login failed")
    lab.do("normal session: TEST UNIT READY", c.test_unit_ready, _status)
    lab.do("normal session: immediate NOP-Out ping with 64 bytes", lambda: c.nop_ping(bytes(range(64))),
           lambda p: f"NOP-In echoed {len(p.data)} bytes")
    lab.do("normal session: non-immediate NOP-Out ping (consumes a CmdSN)", lambda: c.nop_ping(immediate=False),
           lambda p: f"NOP-In ITT 0x{p.itt:x}")
    data = bytes((i * 13) & 0xFF for i in range(65536))
    st = ctx.step("normal session: WRITE(10) 64 KiB, 8 KiB immediate data; Data-Out held back")
    witt, wsn = c.submit_command(sc.cdb_write10(2048, 128), write_data=data)
    r2t = c.wait_for(lambda p: p.itt == witt)
    st.result = sc.describe(r2t)
    t = c.send_abort_task(witt, wsn)
    lab.do(f"normal session: ABORT TASK for the WRITE (ITT 0x{witt:x}, CmdSN {wsn}) while its R2T is open",
           lambda: c.wait_for(lambda p: p.itt == t), lambda p: f"TMF response {getattr(p, 'response', '?')}")
    ctx.data["abort_open_write"] = None
    st = ctx.step("normal session: 1 s later, send the Data-Out the R2T asked for")
    ctx.sleep(1.0)
    late = [p for p in c.backlog if p.itt == witt]
    if isinstance(r2t, sc.R2T):
        try:
            c._answer_r2t(r2t, 1, data)  # the R2T is still open: answer it as an initiator would
            res = c.complete_command(witt, write_data=data, timeout=2.0)
            st.result = f"WRITE completed: {_status(res)}" + (f" (after {len(late)} late PDUs)" if late else "")
            ctx.data["write_after_abort_status"] = res.status
        except sc.ScriptedError as exc:
            st.result = f"{type(exc).__name__}: {exc}"
    t2 = c.send_abort_task(0x7777, wsn)
    lab.do("normal session: ABORT TASK for ITT 0x7777 (never used)", lambda: c.wait_for(lambda p: p.itt == t2),
           lambda p: f"TMF response {getattr(p, 'response', '?')}")
    lab.do("normal session: READ(10)", lambda: c.read10(2048, 8), _status)
    st = ctx.step("normal session: Text Request SendTargets=All in Full Feature Phase")
    tx = c.send_text([("SendTargets", "All")])
    try:
        rsp = c.wait_for(lambda p: p.itt == tx, 2.0)
        st.result = sc.describe(rsp)
        ctx.data["ffp_text"] = "answered"
    except sc.ConnectionEnded as exc:
        st.result = f"connection ended by target ({exc.how})"
        ctx.data["ffp_text"] = f"connection {exc.how}"
    except sc.ScriptedTimeout:
        st.result = "no response within 2 s"
        ctx.data["ffp_text"] = "no response"
    if c.closed is None:
        lab.do("normal session: Logout reason 0", lambda: c.logout(), lambda r: f"response {r.response}")
        lab.wait_closed(c, "normal session", 1.5)


#: Ten targets with long IQNs (no LUNs): the SendTargets=All reply is about 1.7 KB, far above the 512 bytes
#: the discovery session's initiator declares it can receive (MaxRecvDataSegmentLength, §13.12).
TEXT_TARGETS = tuple(
    TargetSpec(tid, f"iqn.2024-01.org.iscsi-analyzer:text-continuation-target-{tid:02d}"
                    ".with-a-long-name-so-that-sendtargets-needs-several-pdus", luns=())
    for tid in range(1, 11))
#: The discovery login's security-stage text (> 512 bytes): a 255-byte InitiatorAlias and a vendor key.
TEXT_ALIAS = "lab initiator whose alias is long enough to make the login text span PDUs " * 3 + "(end)"
TEXT_VENDOR_KEY = ("X-org.iscsi-analyzer.padding", "p" * 300)
#: The Discovery session's MaxRecvDataSegmentLength (§13.12: the smallest legal value).
TEXT_MRDSL = 512


def _text_login_keys(initiator: str) -> list[tuple[str, str]]:
    return [("InitiatorName", initiator), ("SessionType", "Discovery"), ("AuthMethod", "None"),
            ("InitiatorAlias", TEXT_ALIAS[:255]), TEXT_VENDOR_KEY]


def _text_login_cuts(text: bytes) -> list[int]:
    """Byte offsets where the discovery login text is cut into 4 C-bit PDUs (§6.1): inside the key
    InitiatorAlias, inside its value, and right before the NUL that ends the vendor key's value."""
    alias = text.index(b"InitiatorAlias=")
    return [alias + len(b"Initiator"), alias + len(b"InitiatorAlias=") + 120, len(text) - 1]


def _body_text_continuation(lab: ScriptedRun) -> None:
    """Discovery login whose security-stage text goes out as 4 C=1 Login Requests cut mid-key, mid-value
    and before a NUL; MaxRecvDataSegmentLength=512, so tgtd must split the SendTargets=All reply; a Text
    Request cut mid-key with C=1; then a login whose InitiatorName is cut across two PDUs."""
    ctx = lab.ctx
    keys = _text_login_keys(ctx.initiator)
    cuts = _text_login_cuts(sc.encode_keys(keys))
    ctx.data["login_text"] = {"bytes": len(sc.encode_keys(keys)), "cuts": cuts}
    d = lab.connect(lab.session(ISID_TEXT + 1), 0)
    res = lab.login(d, f"discovery login: security-stage text of {len(sc.encode_keys(keys))} bytes as 4 "
                       f"Login Requests (C=1 cut at bytes {cuts}), MaxRecvDataSegmentLength={TEXT_MRDSL}",
                    session_type="Discovery", first=keys, cuts=cuts,
                    operational=(("MaxRecvDataSegmentLength", str(TEXT_MRDSL)),))
    if not res.ok:
        raise LabError(f"discovery login with a C-bit series failed: 0x{res.status:04x}")
    st = lab.ctx.step("discovery session: Text Request SendTargets=All (reply far above 512 bytes)")
    tx = d.text([("SendTargets", "All")])
    names = [v for k, v in tx.keys if k == "TargetName"]
    st.result = "; ".join(sc.describe(p) for p in tx.responses) + f"; {len(names)} TargetName keys rejoined"
    ctx.data["sendtargets"] = names
    st = lab.ctx.step("discovery session: Text Request SendTargets=All cut mid-key into 2 PDUs (C=1)")
    tc = d.text([("SendTargets", "All")], cuts=[len("SendTar")])
    st.result = "; ".join(sc.describe(p) for p in tc.responses) + f"; keys {list(tc.keys)}"
    lab.do("discovery session: Logout reason 0", lambda: d.logout(), lambda r: f"response {r.response}")
    lab.wait_closed(d, "discovery session", 1.5)
    name_keys = [("SessionType", "Discovery"), ("InitiatorName", ctx.initiator), ("AuthMethod", "None")]
    text = sc.encode_keys(name_keys)
    cut = text.index(b"InitiatorName=") + len(b"InitiatorName=iqn.2024")
    e = lab.connect(lab.session(ISID_TEXT + 2), 0)
    res2 = lab.login(e, f"discovery login with InitiatorName cut mid-value across 2 Login Requests (C=1 at byte "
                        f"{cut})", session_type="Discovery", first=name_keys, cuts=[cut])
    ctx.data["split_name_login"] = f"0x{res2.status:04x}"
    if res2.ok:
        lab.do("second discovery session: Logout reason 0", lambda: e.logout(), lambda r: f"response {r.response}")
    lab.wait_closed(e, "second discovery session", 1.5)


body_mcs_two_connections = _scripted(_body_mcs)
body_session_reinstatement = _scripted(_body_session_reinstatement)
body_connection_reinstatement = _scripted(_body_connection_reinstatement)
body_logout_failures = _scripted(_body_logout_failures)
body_cmdsn_window = _scripted(_body_cmdsn_window)
body_nop_and_text = _scripted(_body_nop_and_text)
body_text_continuation = _scripted(_body_text_continuation)


# -- checks of the scripted scenarios

def _task_cause(task: dict[str, Any]) -> str:
    if task.get("in_window") is False:
        exp, _ = task["window"]
        below = exp != task["cmdsn"] and ((exp - task["cmdsn"]) & 0xFFFFFFFF) < 0x80000000
        return "cmdsn_below_window" if below else "cmdsn_above_window"
    if task.get("after_logout_request"):
        return "sent_after_logout_request"
    end = task.get("connection_end") or {}
    if end.get("closed_by") == "target":
        return f"connection_{'reset' if end.get('how') == 'rst' else 'closed'}_by_target"
    if end.get("closed_by") == "initiator":
        return "connection_closed_by_initiator"
    return "no_response"


def _scripted_expect(facts: CaptureFacts, ctx: LabContext, findings: list[str],
                     extra: list[PduFacts] | None = None) -> ExchangeFacts:
    """Fill expect["scripted"] and the extra faults from the capture; return the exchange facts. `extra`: PDUs
    the capture holds that tshark does not dissect."""
    x = collect_exchanges(facts, extra=extra)
    unanswered = []
    for t in x.unanswered:
        item = {k: t[k] for k in ("tcp_stream", "frame", "t", "opcode", "itt", "cmdsn", "immediate", "window",
                                  "in_window", "after_logout_request") if k in t}
        item["cause"] = _task_cause(t)
        unanswered.append(item)
        ctx.data.setdefault("extra_faults", []).append(
            {"kind": "task_unanswered", "opcode": t["opcode"], "itt": t["itt"], "cmdsn": t["cmdsn"],
             "cause": item["cause"], "tcp_stream": t["tcp_stream"], "frame": t["frame"], "approx_t": t["t"]})
    ctx.data.setdefault("expect_extra", {})["scripted"] = {
        "initiator": "analyzer.lab.scripted (raw PDUs over a socket in the lab namespace)",
        "sessions": x.sessions,
        "logins": [{k: lg[k] for k in ("tcp_stream", "frame", "t", "isid", "tsih_requested", "cid", "statuses", "tsih")}
                   for lg in x.logins],
        "logouts": x.logouts,
        "unanswered_tasks": unanswered,
        "tmf": [{k: t.get(k) for k in ("tcp_stream", "frame", "t", "tmf_function", "referenced_itt", "tmf_response",
                                       "response_t")} for t in x.tasks if t["opcode"] == "Task Management Request"],
        "tgtd_behaviour": findings,
    }
    return x


def _conn(x: ExchangeFacts, isid: int, cid: int, nth: int = 0) -> dict[str, Any] | None:
    """The nth connection (capture order) with this ISID and CID, across sessions and failed logins."""
    want = f"{isid:012x}"
    found = [c for s in x.sessions if s["isid"] == want for c in s["connections"]  # type: ignore[union-attr]
             if c["cid"] == cid]
    found.sort(key=lambda c: c["tcp_stream"])
    return found[nth] if len(found) > nth else None


def _answered(x: ExchangeFacts, stream: int, opcode: str, after: float = 0.0) -> list[dict[str, Any]]:
    return [t for t in x.tasks if t["tcp_stream"] == stream and t["opcode"] == opcode and t["answered"]
            and float(t["t"]) >= after]  # type: ignore[arg-type]


def check_mcs_two_connections(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """Both connections of one ISID+TSIH, I/O on both; what the close-session Logout did to the other CID."""
    p = _problems()
    findings: list[str] = []
    x = _scripted_expect(facts, ctx, findings)
    c0, c1 = _conn(x, ISID_MCS, 0), _conn(x, ISID_MCS, 1)
    _need(p, c0 is not None and c0["login_status"] == "0x0000", f"CID 0 login: {c0}")
    _need(p, c1 is not None, "no CID 1 login in the capture")
    if not (c0 and c1):
        return p
    login1 = next(lg for lg in x.logins if lg["tcp_stream"] == c1["tcp_stream"])
    _need(p, login1["tsih_requested"] != "0x0000", "CID 1 login did not carry the session's TSIH")
    findings.append(f"MaxConnections negotiated on CID 0: {ctx.data.get('negotiated_max_connections')} "
                    "(tgtd configured with MaxConnections=2)")
    if c1["login_status"] != "0x0000":
        findings.append(f"second connection (CID 1, TSIH {login1['tsih_requested']}) rejected with "
                        f"{c1['login_status']}: tgtd does not support MC/S here")
        return p
    sess = next(s for s in x.sessions if s["isid"] == f"{ISID_MCS:012x}")
    _need(p, len(sess["connections"]) == 2, f"expected 2 connections in session {sess['tsih']}")
    findings.append(f"second connection CID 1 joined session TSIH {sess['tsih']} (MC/S supported); tgtadm "
                    f"showed {ctx.data.get('tgtadm_after_second_login')}")
    for c in (c0, c1):
        _need(p, len(_answered(x, c["tcp_stream"], "SCSI Command")) >= 2, f"no I/O on CID {c['cid']}")
    lo = c0["logouts"]
    _need(p, len(lo) == 1 and lo[0]["reason"] == 0 and lo[0]["response"] == 0,
          f"CID 0: expected one close-session Logout answered 0, saw {lo}")
    _need(p, c0["closed_by"] == "target", f"CID 0 closed by {c0['closed_by']}")
    if not lo:
        return p
    t_lo = float(lo[0]["response_t"] or lo[0]["t"])
    later = _answered(x, c1["tcp_stream"], "SCSI Command", after=t_lo)
    if c1["closed_by"] == "target" and c1["t_end"] is not None and float(c1["t_end"]) - t_lo < 1.0 and not later:
        findings.append(f"close-session Logout on CID 0 at t={t_lo}: tgtd also closed CID 1 "
                        f"({c1['close_kind']}) at t={c1['t_end']} (RFC 7143 §11.14 behaviour)")
    else:
        findings.append(f"close-session Logout on CID 0 (answered 0 at t={t_lo}) closed ONLY CID 0; CID 1 stayed "
                        f"in Full Feature Phase and answered {len(later)} SCSI command(s) afterwards; it ended with "
                        f"its own Logout (reason {c1['logouts'][0]['reason'] if c1['logouts'] else '-'}) at "
                        f"t={c1['t_end']}. RFC 7143 §11.14 requires a close-session Logout to end every connection "
                        "of the session: tgtd ignores the reason code")
        ctx.data.setdefault("extra_faults", []).append(
            {"kind": "close_session_left_connection_open", "tcp_stream": c1["tcp_stream"], "cid": 1,
             "logout_tcp_stream": c0["tcp_stream"], "approx_t": t_lo})
    return p


def check_session_reinstatement(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """Session B (same ISID, TSIH 0) logs in; tgtd closes session A's connection."""
    p = _problems()
    findings: list[str] = []
    x = _scripted_expect(facts, ctx, findings)
    sessions = [s for s in x.sessions if s["isid"] == f"{ISID_REINSTATE:012x}"]
    _need(p, len(sessions) == 2, f"expected sessions A and B with the same ISID, saw {len(sessions)}")
    if len(sessions) != 2:
        return p
    a, b = sessions[0]["connections"][0], sessions[1]["connections"][0]
    _need(p, b["tsih_requested"] == "0x0000", "session B's login did not carry TSIH 0")
    _need(p, b["login_status"] == "0x0000", f"session B login status {b['login_status']}")
    _need(p, sessions[0]["tsih"] != sessions[1]["tsih"], "session B got the same TSIH as A")
    _need(p, a["closed_by"] == "target" and a["logouts"] == [], f"session A ended {a['ended_by']} by {a['closed_by']}")
    t_b = b["t_login"]
    if a["closed_by"] == "target" and a["t_end"] is not None and t_b is not None:
        findings.append(
            f"session B (ISID {sessions[1]['isid']}, TSIH 0 in the request) logged in at t={t_b} and got a NEW TSIH "
            f"{sessions[1]['tsih']} (A had {sessions[0]['tsih']}); tgtd closed A's connection (stream {a['tcp_stream']}) "
            f"with {str(a['close_kind']).upper()} at t={a['t_end']}, without any Logout or Async Message: "
            "implicit logout by session reinstatement (RFC 7143 §6.3.5)")
        _need(p, abs(float(a["t_end"]) - float(t_b)) < 0.5, "A was not closed at B's login")
        ctx.data.setdefault("extra_faults", []).append(
            {"kind": "session_reinstated", "old_tcp_stream": a["tcp_stream"], "new_tcp_stream": b["tcp_stream"],
             "isid": sessions[0]["isid"], "old_tsih": sessions[0]["tsih"], "new_tsih": sessions[1]["tsih"],
             "approx_t": t_b})
    findings.append(f"B's first command after login got status "
                    f"{next((t.get('scsi_status') for t in x.tasks if t['tcp_stream'] == b['tcp_stream'] and t['opcode'] == 'SCSI Command'), None)} "
                    "(tgtd reports a fresh Unit Attention for the new session)")
    return p


def check_connection_reinstatement(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """RST then same-CID login: part 1 (1-connection session) and part 2/3 (2-connection session)."""
    p = _problems()
    findings: list[str] = []
    x = _scripted_expect(facts, ctx, findings)
    first, again = _conn(x, ISID_CONN_SINGLE, 0, 0), _conn(x, ISID_CONN_SINGLE, 0, 1)
    _need(p, first is not None and first["close_kind"] == "rst" and first["closed_by"] == "initiator",
          f"part 1: first connection did not end with an initiator RST: {first}")
    _need(p, again is not None and again["tsih_requested"] != "0x0000", "part 1: no reinstatement login with TSIH")
    if first and again:
        gap = round(float(again["t_start"]) - float(first["t_end"]), 2)
        findings.append(
            f"part 1 (one connection, ERL 0): RST at t={first['t_end']}, reinstatement login (same ISID, TSIH "
            f"{again['tsih_requested']}, CID 0) {gap}s later answered {again['login_status']}"
            + (" (Session does not exist): tgtd dropped the whole session when its only connection was reset, "
               "although DefaultTime2Retain=20 was negotiated" if again["login_status"] == "0x020a" else ""))
    d0, d1, d1b = _conn(x, ISID_CONN_MCS, 0, 0), _conn(x, ISID_CONN_MCS, 1, 0), _conn(x, ISID_CONN_MCS, 1, 1)
    d0b = _conn(x, ISID_CONN_MCS, 0, 1)
    _need(p, None not in (d0, d1, d1b, d0b), "part 2/3: missing connections")
    if None in (d0, d1, d1b, d0b):
        return p
    assert d0 and d1 and d1b and d0b
    _need(p, d1["close_kind"] == "rst" and d1["closed_by"] == "initiator", "part 2: CID 1 not reset by the initiator")
    findings.append(f"part 2 (two connections): CID 1 reset at t={d1['t_end']}; reinstatement login with TSIH "
                    f"{d1b['tsih_requested']} CID 1 answered {d1b['login_status']}"
                    + (f"; it then served {len(_answered(x, d1b['tcp_stream'], 'SCSI Command'))} SCSI command(s)"
                       if d1b["login_status"] == "0x0000" else ""))
    old_closed = ctx.data.get("old_cid0_closed")
    findings.append(
        f"part 3: login with CID 0 while the old CID 0 connection (stream {d0['tcp_stream']}) was still open "
        f"answered {d0b['login_status']}; the old connection was "
        + (f"closed by tgtd ({d0['close_kind']}) at t={d0['t_end']} (implicit logout, RFC 7143 §6.3.4)"
           if old_closed else
           f"NOT closed: tgtd kept two connections with CID 0 in one session (RFC 7143 §6.3.4 requires the old "
           f"one to be logged out implicitly); tgtadm showed {ctx.data.get('tgtadm_after_live_reinstatement')}"
           + (f"; the old CID 0 still answered {len(_answered(x, d0['tcp_stream'], 'SCSI Command', float(d0b['t_login'] or 0)))}"
              " SCSI command(s) after the new login" if d0b["t_login"] else "")))
    if not old_closed and d0b["login_status"] == "0x0000":
        ctx.data.setdefault("extra_faults", []).append(
            {"kind": "duplicate_cid_in_session", "cid": 0, "tcp_streams": [d0["tcp_stream"], d0b["tcp_stream"]],
             "approx_t": d0b["t_login"]})
    return p


def check_logout_failures(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """Logout responses as tgtd gives them, and the requests after a Logout left unanswered."""
    p = _problems()
    findings: list[str] = []
    x = _scripted_expect(facts, ctx, findings)

    def only(n: int, cid: int = 0) -> dict[str, Any] | None:
        return _conn(x, ISID_LOGOUT + n, cid)

    s1, s2, s4, s5 = only(1), only(2), only(4), only(5)
    s3a, s3b = only(3, 0), only(3, 1)
    _need(p, None not in (s1, s2, s3a, s3b, s4, s5), "missing a session")
    if None in (s1, s2, s3a, s3b, s4, s5):
        return p
    assert s1 and s2 and s3a and s3b and s4 and s5
    for c, reason, cid in ((s1, 1, 7), (s2, 2, 0), (s3a, 1, 1), (s4, 0, 0)):
        _need(p, bool(c["logouts"]) and c["logouts"][0]["reason"] == reason and c["logouts"][0]["cid"] == cid,
              f"stream {c['tcp_stream']}: expected Logout reason {reason} CID {cid}, saw {c['logouts']}")
    r1 = s1["logouts"][0]["response"] if s1["logouts"] else None
    r2 = s2["logouts"][0]["response"] if s2["logouts"] else None
    r3 = s3a["logouts"][0]["response"] if s3a["logouts"] else None
    findings.append(f"Logout reason 1 for CID 7 (no such connection): response {r1}"
                    + (" (expected 1 'CID not found', RFC 7143 §11.15.1); tgtd then closed the connection the "
                       f"Logout came on ({s1['close_kind']} at t={s1['t_end']})" if r1 == 0 else ""))
    findings.append(f"Logout reason 2 (remove for recovery) at ErrorRecoveryLevel=0: response {r2}"
                    + (" (expected 2 'connection recovery is not supported'); tgtd closed the connection "
                       f"({s2['close_kind']} at t={s2['t_end']})" if r2 == 0 else ""))
    carrier_closed = s3a["closed_by"] == "target" and s3a["t_end"] is not None
    named_alive = bool(_answered(x, s3b["tcp_stream"], "SCSI Command", float(s3a["logouts"][0]["t"])))
    findings.append(
        f"MC/S session: Logout reason 1 naming CID 1, sent on CID 0: response {r3}; tgtd closed "
        + ("the carrier CID 0" if carrier_closed else "nothing")
        + (" while CID 1 stayed up and kept answering commands" if named_alive else "")
        + f" (CID 1 ended by {s3b['ended_by']} at t={s3b['t_end']}); RFC 7143 §11.14: the named CID is closed, "
          "the carrier stays up")
    _need(p, bool(s4["logouts"]) and s4["logouts"][0]["response"] == 0, "proper close-session logout not answered 0")
    after = [t for t in x.tasks if t["tcp_stream"] == s5["tcp_stream"] and t["after_logout_request"]]
    _need(p, len(after) == 2, f"expected 2 requests after the Logout Request on stream {s5['tcp_stream']}")
    findings.append("requests after a close-session Logout Request (same TCP segment): "
                    + ", ".join(f"{t['opcode']} ITT {t['itt']} {'answered' if t['answered'] else 'unanswered'}"
                                for t in after)
                    + f"; Logout answered {s5['logouts'][0]['response'] if s5['logouts'] else None}, connection "
                      f"closed by {s5['closed_by']} ({s5['close_kind']})")
    for c, expected in ((s1, 1), (s2, 2)):
        if c["logouts"] and c["logouts"][0]["response"] != expected:
            ctx.data.setdefault("extra_faults", []).append(
                {"kind": "logout_response_unexpected", "tcp_stream": c["tcp_stream"],
                 "reason": c["logouts"][0]["reason"], "cid": c["logouts"][0]["cid"],
                 "response": c["logouts"][0]["response"], "expected": expected, "approx_t": c["logouts"][0]["t"]})
    if carrier_closed and s3a["logouts"]:
        ctx.data.setdefault("extra_faults", []).append(
            {"kind": "logout_closed_wrong_connection", "tcp_stream": s3a["tcp_stream"], "cid_named": 1,
             "cid_closed": 0, "named_tcp_stream": s3b["tcp_stream"], "approx_t": s3a["logouts"][0]["t"]})
    for t in after:
        ctx.data.setdefault("extra_faults", []).append(
            {"kind": "request_after_logout", "opcode": t["opcode"], "itt": t["itt"], "tcp_stream": t["tcp_stream"],
             "frame": t["frame"], "approx_t": t["t"]})
    return p


def check_cmdsn_window(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """The out-of-window command is never answered; later in-window I/O and the NOP ping are."""
    p = _problems()
    findings: list[str] = []
    x = _scripted_expect(facts, ctx, findings)
    s1 = _conn(x, ISID_WINDOW + 1, 0)
    if s1 is None:
        return [*p, "session 1 missing"]
    oow = [t for t in x.tasks if t["in_window"] is False and t["tcp_stream"] == s1["tcp_stream"]]
    _need(p, len(oow) == 1 and oow[0]["opcode"] == "SCSI Command", f"expected one out-of-window command: {oow}")
    _need(p, all(not t["answered"] for t in oow), "the out-of-window command was answered")
    pings = [t for t in x.tasks if t["tcp_stream"] == s1["tcp_stream"] and t["opcode"] == "NOP-Out"]
    _need(p, any(t["answered"] and t["immediate"] for t in pings), "no answered immediate NOP-Out ping")
    for t in oow:
        findings.append(f"{t['opcode']} ITT {t['itt']} CmdSN {t['cmdsn']} (outside ExpCmdSN..MaxCmdSN "
                        f"{ctx.data.get('window_before')}) at t={t['t']}: "
                        + ("answered" if t["answered"] else "never answered; later in-window commands were "
                           "(tgtd queues it as a future CmdSN rather than dropping it; the hole is never filled)"))
    s2 = _conn(x, ISID_WINDOW + 2, 0)
    if s2 is not None:
        stale = [t for t in x.tasks if t["tcp_stream"] == s2["tcp_stream"] and t["opcode"] == "SCSI Command"
                 and t["in_window"] is False]
        for t in stale:
            findings.append(f"stale CmdSN {t['cmdsn']} (below ExpCmdSN) at t={t['t']}: "
                            + ("answered" if t["answered"] else "no response")
                            + f"; connection ended by {s2['closed_by']} ({s2['close_kind']}) at t={s2['t_end']}"
                            + (" — tgtd drops the connection instead of ignoring the PDU (RFC 7143 §4.2.2.1)"
                               if s2["closed_by"] == "target" and not s2["logouts"] else ""))
    return p


def check_nop_and_text(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """Discovery Text answered, NOP pings answered, TMF responses, and what the FFP Text Request did."""
    p = _problems()
    findings: list[str] = []
    x = _scripted_expect(facts, ctx, findings)
    disc, norm = _conn(x, ISID_NOP + 1, 0), _conn(x, ISID_NOP + 2, 0)
    _need(p, disc is not None and norm is not None, "missing the discovery or the normal session")
    if not (disc and norm):
        return p
    _need(p, bool(_answered(x, disc["tcp_stream"], "Text Request")), "discovery SendTargets not answered")
    pings = [t for t in x.tasks if t["tcp_stream"] == norm["tcp_stream"] and t["opcode"] == "NOP-Out"]
    _need(p, len(pings) == 2 and all(t["answered"] for t in pings), f"NOP-Out pings: {pings}")
    tmfs = [t for t in x.tasks if t["opcode"] == "Task Management Request"]
    _need(p, len(tmfs) == 2 and all(t["answered"] for t in tmfs), f"TMFs: {tmfs}")
    for t in tmfs:
        findings.append(f"ABORT TASK for {t['referenced_itt']} at t={t['t']}: {t.get('tmf_response')}")
    st = ctx.data.get("write_after_abort_status")
    findings.append(f"the WRITE whose ABORT TASK got 'task does not exist' was still alive: after its Data-Out it "
                    f"completed with status {st if st is None else f'0x{st:02x}'} (tgtd only sees tasks that "
                    "reached its SCSI layer; a WRITE waiting for Data-Out is not one)")
    texts = [t for t in x.tasks if t["tcp_stream"] == norm["tcp_stream"] and t["opcode"] == "Text Request"]
    _need(p, len(texts) == 1, "no FFP Text Request")
    if texts:
        t = texts[0]
        findings.append(f"Text Request SendTargets=All in the Normal session's FFP at t={t['t']}: "
                        + ("answered" if t["answered"] else
                           f"no Text Response; tgtd ended the connection with {str(norm['close_kind']).upper()} at "
                           f"t={norm['t_end']} (tgtd only handles Text in discovery/login; RFC 7143 §11.10 allows "
                           "it in FFP)"))
        if not t["answered"] and norm["closed_by"] == "target":
            ctx.data.setdefault("extra_faults", []).append(
                {"kind": "connection_dropped_on_text_request", "tcp_stream": t["tcp_stream"], "how": norm["close_kind"],
                 "approx_t": norm["t_end"]})
    return p


def check_text_continuation(facts: CaptureFacts, ctx: LabContext) -> list[str]:
    """The C-bit login series and tgtd's split SendTargets reply, rejoined from the TCP payload; what tgtd did
    with each (expect["text_continuation"]); which of those PDUs tshark does not dissect."""
    p = _problems()
    findings: list[str] = []
    blind_pdus = undissected_text_pdus(facts.path)
    x = _scripted_expect(facts, ctx, findings, [q.as_pdu_facts() for q in blind_pdus])
    pdus = collect_text_pdus(facts.path)
    series = text_series(pdus)
    login_s = [s for s in series if s["opcode"] == "Login Request" and s["completed"]]
    sendtargets = [s for s in series if s["opcode"] == "Text Response" and s["completed"]]
    _need(p, len(login_s) == 1, f"expected one completed C-bit Login Request series, saw {len(login_s)}")
    _need(p, len(sendtargets) == 1, f"expected one completed multi-PDU Text Response, saw {len(sendtargets)}")
    if not (login_s and sendtargets):
        return p
    lg, st = login_s[0], sendtargets[0]
    sent = [list(kv) for kv in _text_login_keys(ctx.initiator)]
    _need(p, lg["keys"] == sent, f"rejoined login text {lg['keys']} is not what was sent {sent}")
    _need(p, len(lg["pieces"]) == 4, f"login text in {len(lg['pieces'])} PDUs, expected 4")
    for a in lg["answers"]:
        if a["dsl"]:
            findings.append(f"tgtd answered a C=1 Login Request with a non-empty Login Response (frame {a['frame']}: "
                            f"{' '.join('='.join(kv) for kv in a['keys'])}); RFC 7143 §6.2 wants an empty one")
            ctx.data.setdefault("extra_faults", []).append(
                {"kind": "text_continuation_answer_not_empty", "tcp_stream": lg["stream"], "frame": a["frame"]})
    names = [v for k, v in st["keys"] if k == "TargetName"]
    _need(p, names == [t.iqn for t in TEXT_TARGETS], f"rejoined SendTargets names {names}")
    pieces = st["pieces"]
    _need(p, len(pieces) >= 3, f"SendTargets reply in {len(pieces)} PDU(s), expected at least 3")
    cut = [pc for pc in pieces if pc["ends_inside_pair"]]
    with_c = [pc for pc in pieces if pc["c"]]
    findings.append(f"SendTargets=All with MaxRecvDataSegmentLength={TEXT_MRDSL}: tgtd sent {len(pieces)} Text "
                    f"Responses of {', '.join(str(pc['dsl']) for pc in pieces)} bytes (flags "
                    f"{', '.join(pc['flags'] for pc in pieces)}); {len(cut)} end inside a key=value pair, "
                    + ("none sets the C bit: tgtd continues with F=0 and a TTT only (RFC 7143 §6.1 allows a split "
                       "pair only with C=1)" if not with_c else f"{len(with_c)} set the C bit"))
    for pc in cut:
        if not pc["c"]:
            ctx.data.setdefault("extra_faults", []).append(
                {"kind": "text_split_without_continue", "tcp_stream": st["stream"], "frame": pc["frame"]})
    blind = [{"frame": q.frame, "opcode": q.name, "itt": f"0x{q.itt:08x}", "flags": f"0x{q.flags:02x}"}
             for q in blind_pdus]
    if blind:
        findings.append(f"tshark {tool_versions()['wireshark']} does not dissect "
                        + ", ".join(f"the {b['opcode']} of frame {b['frame']} (flags {b['flags']})" for b in blind))
    for sr in series:
        if sr["completed"]:
            continue
        end = sr["ended_by"] or {}
        what = "the capture ended"
        if end:
            what = (f"the {end['opcode']} of frame {end['frame']}"
                    + (f" (status {end['status']})" if end.get("status") else f" (flags {end['flags']})"))
        findings.append(f"{sr['sender']}'s {sr['opcode']} cut with C=1 at frame {sr['pieces'][0]['frame']} "
                        f"(fragment {sr['pieces'][-1]['fragment']!r}) never completed: {what} ended it")
        ctx.data.setdefault("extra_faults", []).append(
            {"kind": "text_continuation_abandoned", "tcp_stream": sr["stream"], "sender": sr["sender"],
             "frame": sr["pieces"][0]["frame"], "ended_by_frame": end.get("frame")})
    closed = [t for t in x.tasks if t["in_window"] is False and t["answered"]]
    if closed:
        findings.append(f"{len(closed)} Text/other requests with a CmdSN outside [ExpCmdSN, MaxCmdSN] were answered "
                        f"(frames {', '.join(str(t['frame']) for t in closed)}): tgtd never raises MaxCmdSN in a "
                        "discovery session, so its command window closes after the first request")
        ctx.data.setdefault("extra_faults", []).append(
            {"kind": "cmdsn_window_closed", "tcp_stream": lg["stream"], "frames": [t["frame"] for t in closed]})
    ctx.data["expect_extra"]["text_continuation"] = {
        "login_keys_sent": sent,
        "mrdsl_initiator": TEXT_MRDSL,
        "targets": [t.iqn for t in TEXT_TARGETS],
        "series": series,
        "tshark_undissected": blind,
    }
    return p


def _sc(name: str, description: str, body: Callable[[LabContext], None],
        check: Callable[[CaptureFacts, LabContext], list[str]], **kw: Any) -> Scenario:
    kw.setdefault("targets", (DISK,))
    return Scenario(name=name, description=description, body=body, check=check, **kw)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    _sc("clean_io", "Demo: SendTargets discovery, INQUIRY, READ CAPACITY(16), WRITE(10) with R2T/Data-Out, "
        "short sequential and random READ(16), clean logouts (IPv4, MTU 1500).", body_clean_io, check_clean_io),
    _sc("header_digest", "Clean flow with HeaderDigest=CRC32C required by tgtd and requested by libiscsi; "
        "DataDigest=CRC32C configured on tgtd but libiscsi only offers None.", body_header_digest,
        check_header_digest,
        targets=(TargetSpec(1, DISK_IQN, luns=(LunSpec(1, 64),),
                            params=(("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C"))),)),
    _sc("initiator_killed", "Random reads, then SIGKILL of the initiator mid-I/O: no logout, the kernel closes "
        "the socket; capture continues 2 s.", body_initiator_killed, check_initiator_killed,
        initiator_close_label="initiator_killed"),
    _sc("admin_drop", "Random reads, then tgtadm deletes the connection (the target closes it with FIN, then "
        "RSTs what still arrives); libiscsi reconnects with a new session and finally logs out.", body_admin_drop, check_admin_drop, rate="3mbit"),
    _sc("login_failures", "Login to an unknown target (0x0203), CHAP target without credentials and with a "
        "wrong secret (0x0201 each), then a good CHAP login, reads and logout.", body_login_failures,
        check_login_failures, targets=(DISK, SECURE)),
    _sc("login_redirect", "tgtd redirects every login to its target (0x0101 Target moved temporarily, "
        "TargetAddress 127.0.0.2:3260, the same tgtd, which redirects again); libiscsi follows each redirect "
        "with a new login and gives up after 11 logins ('login took too many tries').", body_login_redirect, check_login_redirect,
        targets=(TargetSpec(1, DISK_IQN, luns=(LunSpec(1, 16),),
                            params=(("RedirectAddress", "127.0.0.2"), ("RedirectPort", "3260"),
                                    ("RedirectReason", "Temporary"))),)),
    _sc("conformance_iscsi", "libiscsi iscsi-test-cu iSCSI family: CmdSN too high/low, invalid DataSN, "
        "residual over/underflow, ABORT TASK, LUN RESET.", body_conformance_iscsi, check_conformance_iscsi,
        rate=None),
    _sc("tmf_abort", "iscsi-test-cu iSCSI.iSCSITMF: ABORT TASK and LOGICAL UNIT RESET with commands "
        "outstanding.", body_tmf_abort, check_tmf_abort, rate=None),
    _sc("packet_loss", "5% random drop of port-3260 segments in iptables INPUT during WRITE(10)s and sequential "
        "reads. lo is captured on transmit, before INPUT, so every dropped segment IS in the capture and "
        "reappears as a retransmission (no gaps).", body_packet_loss, check_packet_loss,
        extra_tools=("iptables",)),
    _sc("capture_gaps", "Clean flow, but the capture filter itself discards about 1 in 64 segments with more "
        "than 200 bytes (chosen by TCP sequence-number bits): the capture has real gaps that TCP never "
        "retransmits, like a SPAN port that drops frames.", body_short_clean, check_capture_gaps,
        bpf=CAPTURE_GAP_FILTER),
    _sc("ipv6", "The clean flow over IPv6 ([::1]:3260).", body_ipv6, check_ipv6, portal_host="::1"),
    _sc("jumbo_9000", "Clean flow (no discovery) at MTU 9000 with 32 KiB reads.", body_jumbo, check_jumbo,
        mtu=9000, rate="8mbit"),
    _sc("pcapng_dumpcap", "Short clean flow captured with dumpcap (pcapng).", body_short_clean,
        check_short_clean, capture_tool="dumpcap", extra_tools=("dumpcap",)),
    _sc("linux_cooked", "Short clean flow captured on 'any' (Linux cooked v1, LINUX_SLL).", body_short_clean,
        check_short_clean, interface="any", linktype="LINUX_SLL"),
    _sc("linux_cooked_sll2", "Short clean flow captured on 'any' (Linux cooked v2, LINUX_SLL2).",
        body_short_clean, check_short_clean, interface="any", linktype="LINUX_SLL2"),
    _sc("nop_timeout", "tgtd pings with NOP-In every 1 s (nop_count 3); the initiator is frozen with SIGSTOP "
        "and never answers; tgtd tears the connection down.", body_nop_timeout, check_nop_timeout,
        targets=(TargetSpec(1, DISK_IQN, luns=(LunSpec(1, 64),),
                            params=(("nop_interval", "1"), ("nop_count", "3"))),)),
    _sc("target_restart", "Random 512-byte reads, then tgtd is killed (SIGKILL: the kernel closes its sockets) "
        "and started again 1.5 s later with the same targets; libiscsi's reconnects are refused until then, "
        "then it logs in to the restarted tgtd and finally logs out.", body_target_restart, check_target_restart,
        rate="2mbit"),
    _sc("path_failure", "Random 512-byte reads, then iptables drops every port-3260 segment in INPUT (the path "
        "fails; lo is captured before INPUT, so the capture shows both sides retransmitting); tgtd's NOP-In pings "
        "(every 1 s, nop_count 3) go unanswered and it gives up; the rules are removed and libiscsi logs in "
        "again.", body_path_failure, check_path_failure, extra_tools=("iptables",), rate="2mbit",
        targets=(TargetSpec(1, DISK_IQN, luns=(LunSpec(1, 64),),
                            params=(("nop_interval", "1"), ("nop_count", "3"))),)),
    _sc("mcs_two_connections", "Scripted initiator, MC/S: tgtd with MaxConnections=2; CID 0 leading login, CID 1 "
        "joins with the same ISID+TSIH, I/O on both, then a close-session Logout on CID 0 (tgtd keeps CID 1 up).",
        body_mcs_two_connections, check_mcs_two_connections, targets=(DISK_MC2,), rate=SCRIPTED_RATE),
    _sc("session_reinstatement", "Scripted initiator: session A logged in with I/O; a new connection logs in with "
        "the same InitiatorName+ISID and TSIH 0 (RFC 7143 §6.3.5); tgtd closes A and gives B a new TSIH.",
        body_session_reinstatement, check_session_reinstatement, targets=(DISK_SMALL,), rate=SCRIPTED_RATE),
    _sc("connection_reinstatement", "Scripted initiator: RST then same-CID login with the TSIH after Time2Wait "
        "(1-connection session: 0x020a; 2-connection session: accepted), then a CID 0 login while the old CID 0 "
        "is still open (RFC 7143 §6.3.4).", body_connection_reinstatement, check_connection_reinstatement,
        targets=(DISK_MC2,), rate=SCRIPTED_RATE),
    _sc("logout_failures", "Scripted initiator: Logout close-connection for a non-existent CID, remove-for-recovery "
        "at ERL 0, close-connection for the other CID of an MC/S session, a proper close-session Logout, and a "
        "NOP-Out + READ(10) sent after a Logout Request.", body_logout_failures, check_logout_failures,
        targets=(DISK_MC2,), rate=SCRIPTED_RATE),
    _sc("cmdsn_window", "Scripted initiator: a READ(10) with CmdSN = MaxCmdSN + 1 (never answered), in-window I/O and "
        "an immediate NOP-Out ping after it, logout; a second session sends a stale CmdSN (tgtd drops the "
        "connection).", body_cmdsn_window, check_cmdsn_window, targets=(DISK_SMALL,), rate=SCRIPTED_RATE),
    _sc("nop_and_text", "Scripted initiator: Discovery SendTargets; NOP-Out pings (immediate and not); ABORT TASK for "
        "a WRITE waiting for Data-Out and for an unknown ITT (both 'task does not exist'); the WRITE then "
        "completes; Text SendTargets=All in FFP (tgtd resets the connection).", body_nop_and_text,
        check_nop_and_text, targets=(DISK_SMALL,), rate=SCRIPTED_RATE),
    _sc("text_continuation", "Scripted initiator: a discovery login whose security-stage text goes out as 4 Login "
        "Requests with the C bit (cut mid-key, mid-value, before a NUL; tgtd answers the first with keys); "
        "MaxRecvDataSegmentLength=512 against ten long-named targets, so tgtd cuts the SendTargets=All reply into "
        "512-byte Text Responses anywhere, with F=0 and no C bit (tshark does not dissect them); a Text Request cut "
        "with C=1 (tgtd ends the exchange after the first piece); a login whose InitiatorName is cut across two "
        "PDUs (tgtd: 0x0207).", body_text_continuation, check_text_continuation, targets=TEXT_TARGETS,
        rate=SCRIPTED_RATE),
)}


def select(names: list[str], all_: bool) -> list[Scenario]:
    """Scenarios by name (or all of them), failing with the list of known names on a typo."""
    if all_:
        return list(SCENARIOS.values())
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise LabError(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    return [SCENARIOS[n] for n in names]
