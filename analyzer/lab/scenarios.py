"""The lab's scenarios: what traffic each sample capture holds, and what its capture must show.

Each scenario body drives real libiscsi tools against tgtd; each check reads the finished capture's
`CaptureFacts` (tshark) and returns the problems it finds, so a scenario that did not produce the traffic it
claims fails instead of writing a wrong manifest entry.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from analyzer.lab import initiator as ini
from analyzer.lab.errors import LabError
from analyzer.lab.runner import LabContext, Scenario
from analyzer.lab.target import LunSpec, TargetSpec
from analyzer.lab.verify import CaptureFacts, SessionFacts

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
    _sc("admin_drop", "Random reads, then tgtadm deletes the connection (target RST); libiscsi reconnects "
        "with a new session and finally logs out.", body_admin_drop, check_admin_drop, rate="3mbit"),
    _sc("login_failures", "Login to an unknown target (0x0203), CHAP target without credentials and with a "
        "wrong secret (0x0201 each), then a good CHAP login, reads and logout.", body_login_failures,
        check_login_failures, targets=(DISK, SECURE)),
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
)}


def select(names: list[str], all_: bool) -> list[Scenario]:
    """Scenarios by name (or all of them), failing with the list of known names on a typo."""
    if all_:
        return list(SCENARIOS.values())
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise LabError(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    return [SCENARIOS[n] for n in names]
