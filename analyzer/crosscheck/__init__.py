"""Compare our PDU decode with tshark's, PDU by PDU (issue: "Wireshark is the reference decoder").

PDUs are matched per frame (both tools attribute a PDU to the frame carrying its last byte)
and within a frame by opcode and ITT in order. Fields compared: opcode, ITT, CmdSN, StatSN,
DataSegmentLength; CmdSN/StatSN only where both decoders give a value for that PDU type
(tshark shows StatSN on a Data-In without the S bit, where RFC 7143 §11.7.4 says it is reserved;
we leave it empty).

Each of our PDUs that tshark does not have is classified:

* ``recovered`` - it follows a capture gap or resynchronisation on its stream, where tshark's
  reassembly gives up on the stream (Wireshark cannot frame PDUs across missing bytes), or it is
  the last PDU before a gap on its stream (cut short by it). These are expected and documented,
  not disagreements.
* ``extra`` - anything else: a disagreement.

Each tshark PDU we do not have is ``missing``: always a disagreement, except one PDU case: in a
stream with frames cut by the snap length, a PDU whose data was cut is shown by tshark in the
frame of its header (it cannot reassemble) and by us in the frame that carried its last byte
(as for the uncut capture); such a pair is matched by our ``first_frame`` and counted in
``snaplen_header_frame``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from analyzer.capture.tshark import TsharkPdu
from analyzer.records import DataIn, FramingResync, Pdu, TcpGap, TcpOpened


@dataclass
class Difference:
    frame: int
    kind: str  # "field", "missing", "extra"
    detail: str


@dataclass
class CrosscheckResult:
    ours: int = 0
    theirs: int = 0
    matched: int = 0
    recovered: int = 0
    #: matched at the frame of their header: data cut by the snap length (tshark cannot reassemble)
    snaplen_header_frame: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        return not self.differences


def iscsi_ports(records: list[Any]) -> frozenset[int]:
    """The server ports of the connections we decoded PDUs on (a port recognised by its Login
    Request, not only 3260/860 and --port): tshark must be told them too (``-d tcp.port==N,iscsi``),
    or it shows no PDU there and every one of ours looks like a difference."""
    server_port: dict[str, int] = {}
    ports: set[int] = set()
    for r in records:
        if isinstance(r, TcpOpened):
            server_port[r.conn] = r.server_port
        elif isinstance(r, Pdu):
            port = server_port.get(r.conn)
            if port is not None:
                ports.add(port)
    return frozenset(ports)


def _key(op: int, itt: int | None) -> tuple[int, int | None]:
    return (op, itt)


def compare(records: list[Any], theirs: list[TsharkPdu], max_differences: int = 1000) -> CrosscheckResult:
    """Compare our records (PDUs plus TcpGap/FramingResync for context) with tshark's PDUs."""
    res = CrosscheckResult()
    ours_by_frame: dict[int, list[Pdu]] = defaultdict(list)
    # Streams (conn, direction) that lost bytes or framing: PDUs after that point are "recovered".
    disturbed_since: dict[tuple[str, str], int] = {}
    snap_cut: set[tuple[str, str]] = set()  # streams with frames cut by the snap length
    recovered_ok: set[int] = set()
    last_pdu: dict[tuple[str, str], Pdu] = {}
    for r in records:
        if isinstance(r, (TcpGap, FramingResync)):
            key = (r.conn, r.direction)
            disturbed_since.setdefault(key, r.frame)
            if isinstance(r, TcpGap) and r.snaplen:
                snap_cut.add(key)
            if isinstance(r, TcpGap) and key in last_pdu:
                # Records come in capture order, so a PDU cut short by this gap (shown at the frame of
                # its last captured byte) comes before it: tshark cannot reassemble that one either.
                recovered_ok.add(id(last_pdu[key]))
        elif isinstance(r, Pdu):
            ours_by_frame[r.frame].append(r)
            res.ours += 1
            last_pdu[(r.conn, r.direction)] = r
            if (r.conn, r.direction) in disturbed_since:
                recovered_ok.add(id(r))
    theirs_by_frame: dict[int, list[TsharkPdu]] = defaultdict(list)
    for t in theirs:
        theirs_by_frame[t.frame].append(t)
        res.theirs += 1

    def diff(d: Difference) -> None:
        if len(res.differences) < max_differences:
            res.differences.append(d)

    def check(frame: int, o: Pdu, t: TsharkPdu) -> None:
        res.matched += 1
        problems = []
        if t.dsl is not None and t.dsl != o.dsl:
            problems.append(f"DataSegmentLength ours {o.dsl} tshark {t.dsl}")
        cmdsn = getattr(o, "cmdsn", None)
        if t.cmdsn is not None and cmdsn is not None and t.cmdsn != cmdsn:
            problems.append(f"CmdSN ours {cmdsn} tshark {t.cmdsn}")
        statsn = getattr(o, "statsn", None)
        if t.statsn is not None and statsn is not None and t.statsn != statsn:
            problems.append(f"StatSN ours {statsn} tshark {t.statsn}")
        if statsn is None and t.statsn is not None and not isinstance(o, DataIn) and hasattr(o, "statsn"):
            problems.append(f"StatSN ours none tshark {t.statsn}")
        if problems:
            diff(Difference(frame, "field", f"opcode 0x{o.opcode:02x} ITT {_hx(o.itt)}: " + "; ".join(problems)))

    unmatched_theirs: list[TsharkPdu] = []
    for frame in sorted(set(ours_by_frame) | set(theirs_by_frame)):
        ours = ours_by_frame.get(frame, [])
        for t in theirs_by_frame.get(frame, ()):
            match = None
            for i, o in enumerate(ours):
                if _key(o.opcode, o.itt) == _key(t.opcode, t.itt):
                    match = i
                    break
            if match is None:
                unmatched_theirs.append(t)
                continue
            check(frame, ours.pop(match), t)
    # A PDU whose data a snap length cut: Wireshark cannot reassemble it and shows it in the frame
    # of its header; we show it where its last byte was on the wire, as for an uncut capture.
    by_first: dict[tuple[int, int, int | None], list[Pdu]] = defaultdict(list)
    for frame_ours in ours_by_frame.values():
        for o in frame_ours:
            if (o.conn, o.direction) in snap_cut and o.first_frame != o.frame:
                by_first[(o.first_frame, o.opcode, o.itt)].append(o)
    left: set[int] = {id(o) for frame_ours in ours_by_frame.values() for o in frame_ours}
    for t in unmatched_theirs:
        cands = [o for o in by_first.get((t.frame, t.opcode, t.itt), ()) if id(o) in left]
        if cands:
            o = cands[0]
            left.discard(id(o))
            ours_by_frame[o.frame].remove(o)
            res.snaplen_header_frame += 1
            check(t.frame, o, t)
        else:
            diff(Difference(t.frame, "missing",
                            f"tshark has opcode 0x{t.opcode:02x} ITT {_hx(t.itt)} that we did not decode here"))
    for frame in sorted(ours_by_frame):
        for o in ours_by_frame[frame]:
            if id(o) in recovered_ok:
                res.recovered += 1
            else:
                diff(Difference(frame, "extra", f"we decoded opcode 0x{o.opcode:02x} ITT {_hx(o.itt)} "
                                                f"({o.conn} {o.direction}) that tshark does not show"))
    res.differences.sort(key=lambda d: d.frame)
    return res


def _hx(v: int | None) -> str:
    return "-" if v is None else f"0x{v:08x}"
