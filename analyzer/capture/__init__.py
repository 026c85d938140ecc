"""Capture sources: the only code that opens capture files (house style §1).

``open_capture`` sniffs pcap / pcapng / snoop / gzip and returns a streaming ``CaptureReader``;
``iter_tcp`` is the fused per-packet hot loop down to TCP segments; ``decode_frame`` is the
general link/IP/TCP decoder for one frame, through the encapsulations of ``encap`` (ERSPAN,
GRE, VXLAN, MPLS, PPPoE, IP-in-IP). Frames the fused loop does not take go through the
reader's ``FrameDecoder`` (``dedup``), which also reassembles IP fragments (``fragments``)
and drops mirrored duplicates. ``annotate.write_annotated`` writes a capture back as pcapng
with packet comments.
"""

from analyzer.capture.dedup import FrameDecoder
from analyzer.capture.encap import Encapsulation
from analyzer.capture.files import (
    CHUNK_SIZE,
    CaptureError,
    CaptureReader,
    Frame,
    PcapngReader,
    PcapReader,
    TcpFrame,
    iter_tcp,
    open_capture,
)
from analyzer.capture.packets import decode_frame, format_ip

__all__ = [
    "CHUNK_SIZE",
    "CaptureError",
    "CaptureReader",
    "Encapsulation",
    "Frame",
    "FrameDecoder",
    "PcapReader",
    "PcapngReader",
    "TcpFrame",
    "decode_frame",
    "format_ip",
    "iter_tcp",
    "open_capture",
]
