"""The readers' slow path: frames the fused fast path did not take.

``FrameDecoder.decode`` decodes one frame through the encapsulations (``encap``), reassembles
IP fragments (``fragments``) and drops duplicate frames.

Duplicates are found as Wireshark's ``editcap -D`` finds them: a frame is a duplicate when
it equals one of the previous ``DEDUP_WINDOW`` frames. We compare the innermost IP packet
rather than the whole frame, with the IPv4 TTL and header checksum (IPv6 hop limit)
masked, so that the original frame and its mirrored copy (another VLAN tag, an ERSPAN or
VXLAN wrapper, a router hop between the two mirror points) match, and so do the copies two
mirror sessions send of one frame. A TCP retransmission is not a duplicate: it carries a new
IPv4 identification (and usually a new TCP timestamp).

Each frame's path is the list of encapsulations it arrived through (plain; ERSPAN II session
7 VLAN 100; ...). By default a frame is a duplicate only when its packet has been seen more
often through another path than through its own within the window: the same packet twice
through one path is two packets (a killed initiator's kernel answers every segment with
byte-identical RSTs), once through each of two paths is one packet mirrored twice.
``dedup=True`` uses editcap's rule instead (any equal packet in the window, whatever path).

Duplicate detection starts at the first frame that arrives encapsulated: from then on the
reader sends every frame here (its fast path is off), so the plain copies are compared too.
Frames before that first encapsulated frame are not compared (a plain capture pays nothing
for the feature); ``dedup=True`` compares from the first frame.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from analyzer.capture.encap import VXLAN_PORT, Encapsulation, IpFragment, walk, walk_ip
from analyzer.capture.fragments import Reassembler
from analyzer.capture.packets import TcpSegment

#: How many previous frames a frame is compared with (editcap -D takes a window too; its
#: default for -d is 5, too small for two mirror sessions under load).
DEDUP_WINDOW: Final = 64
#: How much of a packet's start and end the comparison looks at (see ``_duplicate``).
KEY_HEAD: Final = 192
KEY_TAIL: Final = 64


class FrameDecoder:
    """Slow-path decoding with per-encapsulation counts, fragment reassembly and dedup.

    Counters: ``encapsulated`` (frame count per outermost layer label, e.g. "ERSPAN II session
    7 VLAN 100"), ``duplicates`` (frames dropped as copies), and the reassembler's
    ``fragments``/``reassembled``/``dropped`` (``ip_fragments``).
    """

    def __init__(self, vxlan_ports: tuple[int, ...] | frozenset[int] = (VXLAN_PORT,),
                 dedup: bool | None = None) -> None:
        self.vxlan_ports = frozenset(vxlan_ports)
        #: True: every frame comes here and is compared; None: from the first encapsulated one.
        self.dedup_on = bool(dedup)
        self._dedup_auto = dedup is None
        self.encapsulated: dict[str, int] = {}
        self.duplicates = 0
        self.ip_fragments = Reassembler()
        self._any_path = bool(dedup)
        self._window: deque[tuple[bytes, tuple[Encapsulation, ...]]] = deque()
        self._seen: dict[bytes, dict[tuple[Encapsulation, ...], int]] = {}

    def decode(self, linktype: int, data: memoryview, frame_no: int, ts_ns: int) -> TcpSegment | None:
        """The TCP segment in this frame (None: not TCP, a fragment held back, or a duplicate)."""
        tags: list[Encapsulation] = []
        where: list[tuple[memoryview, int, int]] = []
        found = walk(linktype, data, self.vxlan_ports, tags, where)
        for _ in range(4):  # a reassembled packet may hold a fragment of an inner layer
            if not isinstance(found, IpFragment):
                break
            packet = self.ip_fragments.feed(found, frame_no, ts_ns)
            if packet is None:
                return None
            found = walk_ip(memoryview(packet), 0, found.version, self.vxlan_ports, tags, where)
        if found is None or isinstance(found, IpFragment):
            return None
        if tags:
            label = tags[0].label()
            self.encapsulated[label] = self.encapsulated.get(label, 0) + 1
            if self._dedup_auto and not self.dedup_on:
                self.dedup_on = True
        if self.dedup_on and where and self._duplicate(*where[-1], tuple(tags)):
            self.duplicates += 1
            return None
        return found

    def finish(self) -> None:
        """End of the capture: incomplete datagrams are counted as given up."""
        self.ip_fragments.finish()

    def notes(self) -> list[str]:
        """One-line facts worth a warning (fragments not reassembled)."""
        frag = self.ip_fragments
        out = list(frag.notes)
        if frag.dropped > len(frag.notes):
            out.append(f"{frag.dropped} IP datagrams in all could not be reassembled")
        return out

    def _duplicate(self, mv: memoryview, off: int, end: int, path: tuple[Encapsulation, ...]) -> bool:
        # The innermost IP packet without TTL/hop limit and the IPv4 header checksum: its
        # first KEY_HEAD bytes (IP and TCP headers, identification, sequence numbers, options,
        # the start of the payload), its last KEY_TAIL bytes and its length. Copying whole
        # 64 KiB offloaded segments would cost more than the rest of the slow path.
        n = end - off
        tail = bytes(mv[max(off + KEY_HEAD, end - KEY_TAIL):end])
        if mv[off] >> 4 == 4:
            key = (bytes(mv[off:off + 8]) + bytes(mv[off + 9:off + 10]) + bytes(mv[off + 12:min(end, off + KEY_HEAD)])
                   + tail + n.to_bytes(4, "big"))
        else:
            key = bytes(mv[off:off + 7]) + bytes(mv[off + 8:min(end, off + KEY_HEAD)]) + tail + n.to_bytes(4, "big")
        if self._any_path:
            path = ()
        counts = self._seen.get(key)
        if counts is None:
            counts = self._seen[key] = {}
        mine = counts.get(path, 0)
        if self._any_path:
            duplicate = mine > 0
        else:
            duplicate = any(n > mine for p, n in counts.items() if p != path)
        counts[path] = mine + 1
        window = self._window
        window.append((key, path))
        if len(window) > DEDUP_WINDOW:
            old_key, old_path = window.popleft()
            old = self._seen[old_key]
            left = old[old_path] - 1
            if left:
                old[old_path] = left
            else:
                del old[old_path]
                if not old:
                    del self._seen[old_key]
        return duplicate
