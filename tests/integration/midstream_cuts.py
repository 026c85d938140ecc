"""Cut copies of captures (``editcap -r``) and what the analyzer says about them.

Shared by ``test_midstream.py`` (the property test) and usable by hand:
``python tests/integration/midstream_cuts.py CAPTURE`` prints every violation on the test's
cut points. A cut keeps frames A..B of the whole capture; frame f of the cut is frame
f + A - 1 of the whole.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analyzer.capture.tshark import TsharkPdu, tshark_pdus_union
from analyzer.pipeline import Options, iter_records
from analyzer.records import Anomaly, FramingResync, MalformedPdu, Pdu, TcpGap
from analyzer.state.events import SessionSummary

#: Findings about the cut itself: a cut capture may have them where the whole one has none.
CUT_KINDS = frozenset({
    "framing_lost",  # the cut starts inside a PDU: its bytes are skipped
    "capture_gap",  # the reassembler sees the cut as missing bytes
    "mid_stream",
})

#: Start cut points per capture besides the special ones (every Nth frame).
START_CUTS = 6


@dataclass
class Analysis:
    pdus: list[tuple[int, int, int | None, str]] = field(default_factory=list)  #: frame, opcode, ITT, direction
    anomalies: list[Anomaly] = field(default_factory=list)
    sessions: list[SessionSummary] = field(default_factory=list)
    pdu_records: list[Pdu] = field(default_factory=list)
    resyncs: list[FramingResync] = field(default_factory=list)
    records: list[Any] = field(default_factory=list)


def analyse(path: Path | str, ports: frozenset[int] = frozenset()) -> Analysis:
    """Every PDU, finding and session summary of a capture, in the order the pipeline gives them."""
    opts = Options()
    if ports:
        opts.ports = opts.ports | ports
    a = Analysis()
    for r in iter_records(str(path), opts):
        if isinstance(r, Pdu):
            a.pdus.append((r.frame, r.opcode, r.itt, r.direction))
            a.pdu_records.append(r)
            a.records.append(r)
        elif isinstance(r, Anomaly):
            a.anomalies.append(r)
        elif isinstance(r, SessionSummary):
            a.sessions.append(r)
        elif isinstance(r, (FramingResync, TcpGap, MalformedPdu)):
            if isinstance(r, FramingResync):
                a.resyncs.append(r)
            a.records.append(r)
    return a


def frame_count(path: Path) -> int:
    out = subprocess.run(["capinfos", "-c", "-M", str(path)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if "Number of packets" in line:
            return int(line.split(":")[1].strip())
    raise RuntimeError(f"capinfos gave no frame count for {path}")


def cut(path: Path, first: int, last: int, out_dir: Path) -> Path:
    """Frames ``first``..``last`` of ``path`` as a new capture (pcap, like the original's format)."""
    out = out_dir / f"{path.name.split('.')[0]}_{first}-{last}.pcap"
    if not out.exists():
        subprocess.run(["editcap", "-F", "pcap", "-r", str(path), str(out), f"{first}-{last}"], check=True,
                       capture_output=True)
    return out


def cut_points(whole: Analysis, n_frames: int) -> list[tuple[int, int, str]]:
    """(first, last, why): every Nth start frame, plus starts and ends inside logins, data segments
    and headers (taken from the whole capture's PDUs: a PDU whose first byte is in an earlier
    frame than its last is cut inside by a cut between them)."""
    pts: dict[tuple[int, int], str] = {}
    step = max(2, n_frames // (START_CUTS + 1))
    for a in range(step, n_frames, step):
        pts.setdefault((a, n_frames), "every Nth frame")
    logins = [p for p in whole.pdu_records if p.opcode in (0x03, 0x23)]
    if len(logins) >= 2:
        # Inside a login: after its first Login Request, before its final response.
        pts.setdefault((logins[1].frame, n_frames), "inside a login")
    spanning = [p for p in whole.pdu_records if p.first_frame < p.frame]
    data = [p for p in spanning if p.dsl > 0]
    if data:
        p = data[len(data) // 2]
        mid = (p.first_frame + p.frame + 1) // 2
        pts.setdefault((mid, n_frames), "start inside a data segment")
        pts.setdefault((1, mid), "end inside a data segment")
    headers = [p for p in spanning if p.dsl == 0]
    if headers:
        p = headers[0]
        pts.setdefault((p.frame, n_frames), "start inside a header")
        pts.setdefault((1, p.first_frame), "end inside a header")
    # The last frames only (a capture that starts just before the end).
    if n_frames > 4:
        pts.setdefault((n_frames - 3, n_frames), "the last frames")
    return sorted((a, b, why) for (a, b), why in pts.items() if 1 <= a <= b <= n_frames)


def tshark_cached(path: Path, ports: frozenset[int], cache_dir: Path) -> list[TsharkPdu]:
    """tshark's PDUs of a cut, cached on disk by the cut's content (tshark is the slow part)."""
    h = hashlib.sha256(path.read_bytes()).hexdigest()[:24]
    key = cache_dir / f"{h}-{'-'.join(map(str, sorted(ports)))}.json"
    if key.exists():
        return [TsharkPdu(*row) for row in json.loads(key.read_text())]
    pdus = tshark_pdus_union(str(path), ports)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key.write_text(json.dumps([[p.frame, p.opcode, p.itt, p.cmdsn, p.statsn, p.dsl] for p in pdus]))
    return pdus


def other_ports(whole: Analysis) -> frozenset[int]:
    """Ports besides 3260/860 that the analyzer recognised iSCSI on (for tshark's -d)."""
    ports = set()
    for p in whole.pdu_records:
        for part in p.conn.split("->")[1:]:
            port = int(part.rsplit(":", 1)[1])
            if port not in (3260, 860):
                ports.add(port)
    return frozenset(ports)


# --------------------------------------------------------------------------- the properties


def pdus_not_in_whole(whole: Analysis, part: Analysis, offset: int, last: int) -> list[str]:
    """(a): the cut's PDUs are the whole capture's, at the same frames, in capture order. A PDU
    cut short by the end of the cut (``last``) is shown at its last captured byte: it must be a
    PDU of the whole capture with the same first frame that ends after the cut."""
    have = Counter((f, op, itt, d) for f, op, itt, d in whole.pdus)
    cut_short = Counter((p.first_frame, p.opcode, p.itt, p.direction) for p in whole.pdu_records if p.frame > last)
    out = []
    prev = 0
    for r in part.pdu_records:
        f, op, itt, d = r.frame, r.opcode, r.itt, r.direction
        key = (f + offset, op, itt, d)
        if have[key] <= 0 and cut_short[(r.first_frame + offset, op, itt, d)] > 0:
            cut_short[(r.first_frame + offset, op, itt, d)] -= 1
        elif have[key] <= 0:
            out.append(f"PDU opcode 0x{op:02x} ITT {itt} {d} at frame {f + offset} is not the whole capture's")
        else:
            have[key] -= 1
        if f < prev:
            out.append(f"PDU at frame {f + offset} comes after one at frame {prev + offset} (not capture order)")
        prev = f
    return out


def tshark_not_ours(part: Analysis, theirs: list[TsharkPdu], offset: int) -> list[tuple[int, str]]:
    """(b): every PDU tshark decodes on the cut, we decode too (same frame, opcode, ITT).
    Returns (frame in the whole capture, what is missing) in crosscheck's words."""
    ours = Counter((f, op, itt) for f, op, itt, _d in part.pdus)
    # tshark shows a PDU whose data a snap length cut at its header's frame; match by first_frame too.
    firsts = Counter((p.first_frame, p.opcode, p.itt) for p in part.pdu_records)
    out = []
    for t in theirs:
        k = (t.frame, t.opcode, t.itt)
        if ours[k] > 0:
            ours[k] -= 1
        elif firsts[k] > 0:
            firsts[k] -= 1
        else:
            itt = "-" if t.itt is None else f"0x{t.itt:08x}"
            msg = f"tshark has opcode 0x{t.opcode:02x} ITT {itt} at frame {t.frame + offset}, we do not"
            out.append((t.frame + offset, msg))
    return out


def new_findings(whole: Analysis, part: Analysis, offset: int, last: int, cut_end: bool = False) -> list[str]:
    """(c): no warning or error the whole capture does not also have at that place (same kind,
    same first evidence frame), except findings about the cut itself (``CUT_KINDS``; and, when
    the cut ends before the whole capture, requests unanswered "by the end of the capture")."""
    have = {(a.kind, a.frame) for a in whole.anomalies}
    kinds_at: dict[str, set[int]] = {}
    for a in whole.anomalies:
        kinds_at.setdefault(a.kind, set()).update(a.frames)
    out = []
    for a in part.anomalies:
        if a.severity == "info" or a.kind in CUT_KINDS:
            continue
        if cut_end and "by the end of the capture" in a.message:
            continue
        if (a.kind, a.frame + offset) in have:
            continue
        # The same finding with its evidence shifted by the cut (its first frame was cut off).
        if any(f + offset in kinds_at.get(a.kind, ()) for f in a.frames):
            continue
        out.append(f"{a.severity} {a.kind} at frame {a.frame + offset}: {a.message}")
    return out


SESSION_FACTS = ("session_type", "isid", "tpgt", "tsih", "initiator_name", "target_name")


def wrong_session_facts(whole: Analysis, part: Analysis, cut_end: bool) -> list[str]:
    """(d): a cut's session facts are the whole capture's or unknown (None, "unknown")."""
    by_conn: dict[str, SessionSummary] = {}
    for s in whole.sessions:
        for c in s.connections:
            by_conn.setdefault(c, s)
    out = []
    for s in part.sessions:
        w = next((by_conn[c] for c in s.connections if c in by_conn), None)
        if w is None:
            continue
        for name in SESSION_FACTS:
            v = getattr(s, name)
            if v is None or v == "unknown" or v == getattr(w, name):
                continue
            out.append(f"session {s.session} {name} {v!r}, whole capture {getattr(w, name)!r}")
        for k, v in s.params.items():
            wv = w.params.get(k)
            if wv is not None and wv != v:
                out.append(f"session {s.session} param {k}={v!r}, whole capture {wv!r}")
        if not cut_end and s.ended != w.ended and s.ended not in ("open", "capture_end"):
            out.append(f"session {s.session} ended {s.ended!r}, whole capture {w.ended!r}")
    return out


def main(argv: list[str]) -> int:
    import tempfile

    bad = 0
    for arg in argv:
        path = Path(arg)
        whole = analyse(path)
        ports = other_ports(whole)
        n = frame_count(path)
        with tempfile.TemporaryDirectory() as tmp:
            for a, b, why in cut_points(whole, n):
                part_path = cut(path, a, b, Path(tmp))
                part = analyse(part_path, ports)
                off = a - 1
                problems = (pdus_not_in_whole(whole, part, off, b) + new_findings(whole, part, off, b, b < n)
                            + wrong_session_facts(whole, part, b < n))
                if shutil.which("tshark"):
                    problems += [m for _f, m in tshark_not_ours(
                        part, tshark_cached(part_path, ports, Path(tempfile.gettempdir()) / "tshark-cuts"), off)]
                for p in problems:
                    print(f"{path.name} [{a}-{b}] ({why}): {p}")
                bad += len(problems)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
