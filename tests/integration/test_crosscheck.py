"""``iscsi-analyzer crosscheck``: our PDU decode agrees with tshark's on every available capture.

Wireshark is the reference decoder. Where the two disagree and tshark is the one that is
wrong (per RFC 7143 / RFC 9293), the difference is allow-listed below, narrowly: capture file,
frame, kind of difference, the opcode/ITT it names, and the reason. Anything else fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SUMMARY = re.compile(r"ours (\d+) PDUs, tshark (\d+) PDUs, matched (\d+), .*?(\d+), differences (\d+)")
DIFF = re.compile(r"^\s+frame (\d+): (\w+): (.*)$")


@dataclass(frozen=True)
class Allowed:
    capture: str
    frame: int
    kind: str  #: "missing" (tshark has it, we don't), "extra" or "field"
    needle: str  #: text the difference line must contain (opcode and ITT)
    reason: str


#: Differences where tshark, not we, is wrong (or where we differ by documented design).
#: Keep each entry to one frame of one capture; re-investigate when a capture is regenerated.
#:
#: Classes seen so far, for whoever re-investigates:
#: * tshark dissects the bytes of a TCP retransmission again and shows its PDU twice; TCP hands
#:   each sequence number to the iSCSI layer once (RFC 9293 §3.10.7.4, first copy wins), so
#:   there is one PDU (RFC 7143 §11.2: PDUs are framed in the byte stream) and we show it at its
#:   first transmission. (Seen in an earlier packet_loss.pcap.)
#: * PDUs the target's stack sends after the initiator reset the connection with an in-window
#:   RST: see the entry below.
ALLOWED: tuple[Allowed, ...] = (
    # initiator_killed: the killed initiator's kernel sends RST,ACK (frame 610, Seq = its next
    # sequence number 6397, so in the target's window): the connection is aborted there
    # (RFC 9293 §3.10.7.4) and the iSCSI connection with it (RFC 7143 §6.1 / §7.1: a connection
    # ends with its TCP connection). The Data-In the target's stack had queued still goes out
    # afterwards (frame 616) and reaches no iSCSI layer; the initiator answers it with RSTs. We
    # end the connection at the RST (analyzer/tcp/reassembly.py policy); tshark dissects on.
    Allowed("initiator_killed.pcap", 616, "missing", "opcode 0x25 ITT 0x4cbfbec1",
            "Data-In sent by the target after the initiator's in-window RST (frame 610)"),
    # text_continuation: tgtd answers SendTargets=All to an initiator that declared
    # MaxRecvDataSegmentLength=512 with 512-byte Text Responses with F=0 and C=0 and a TTT (a
    # long response continued by follow-on Text Requests, RFC 7143 §11.11.1). tshark 4.0.17 does
    # not take a Text Response with neither F nor C set as iSCSI (the frame stays plain TCP, with
    # or without its bogus-PDU filter; setting F or C alone in the same bytes makes it dissect),
    # so it shows 3 PDUs fewer. The lab manifest lists them under
    # expect.text_continuation.tshark_undissected.
    *(Allowed("text_continuation.pcap", frame, "extra", "opcode 0x24 ITT 0x00000011",
              "Text Response with F=0 and C=0 that tshark does not dissect") for frame in (17, 19, 21)),
)


@dataclass(frozen=True)
class Result:
    ours: int
    theirs: int
    matched: int
    recovered: int
    differences: list[tuple[int, str, str]]


def parse(stdout: str) -> Result:
    m = SUMMARY.search(stdout)
    assert m, f"no summary line in crosscheck output:\n{stdout[:2000]}"
    ours, theirs, matched, recovered, ndiff = (int(x) for x in m.groups())
    diffs = [(int(d.group(1)), d.group(2), d.group(3)) for d in map(DIFF.match, stdout.splitlines()) if d]
    assert len(diffs) == ndiff or "more" in stdout
    return Result(ours, theirs, matched, recovered, diffs)


def allowed(capture: str, frame: int, kind: str, detail: str) -> Allowed | None:
    for a in ALLOWED:
        if a.capture == capture and a.frame == frame and a.kind == kind and a.needle in detail:
            return a
    return None


def test_crosscheck_agrees_with_tshark(capture: Path, crosscheck_runs: Any) -> None:
    run = crosscheck_runs.get("crosscheck", "--max-differences", "1000", capture)
    assert run.returncode in (0, 1), run.explain()
    res = parse(run.stdout)
    unexplained = [d for d in res.differences if allowed(capture.name, *d) is None]
    assert not unexplained, "differences with tshark:\n" + "\n".join(
        f"  frame {f}: {k}: {t}" for f, k, t in unexplained) + "\n" + run.explain()
    if not res.differences:
        assert run.returncode == 0, run.explain()
    assert res.matched == res.theirs - len([d for d in res.differences if d[1] == "missing"])


def test_cdrom_we_recover_at_least_what_tshark_frames(crosscheck_runs: Any,
                                                      real_pcap: Callable[[str], Path]) -> None:
    """The lossy, mid-stream capture: resync after gaps gives at least tshark's PDUs."""
    cap = real_pcap("iscsi-scsi-data-cdrom.pcap.gz")
    res = parse(crosscheck_runs.get("crosscheck", "--max-differences", "1000", cap).stdout)
    assert res.ours >= res.theirs
    assert res.recovered > 0, "the capture has gaps: some PDUs are only found by resynchronising"
    assert res.matched == res.theirs


@pytest.mark.parametrize("name", ["stale_rst", "capture_gap"])
def test_crosscheck_synthetic(name: str, cli: Callable[..., Any], tshark: str,
                             synthetic_captures: dict[str, Path]) -> None:
    """tshark agrees on the PDU after an out-of-window RST, and on the frames of PDUs after a gap."""
    run = cli("crosscheck", synthetic_captures[name])
    assert run.returncode == 0, run.explain()
    res = parse(run.stdout)
    assert res.differences == [] and res.matched == res.theirs > 0
