"""Capture sources: the only code that opens capture files (house style §1).

``open_capture`` sniffs pcap / pcapng / gzip and returns a streaming ``CaptureReader``;
``iter_tcp`` is the fused per-packet hot loop down to TCP segments; ``decode_frame`` is the
general link/IP/TCP decoder for one frame.
"""

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
    "Frame",
    "PcapReader",
    "PcapngReader",
    "TcpFrame",
    "decode_frame",
    "format_ip",
    "iter_tcp",
    "open_capture",
]
