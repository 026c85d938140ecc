"""CRC32C for iSCSI header and data digests (RFC 7143 §11.2.3 and §13.1; RFC 3720 App. B.4).

The iSCSI digest is the ordinary reflected CRC-32C (Castagnoli, polynomial 0x1EDC6F41,
reflected 0x82F63B78, init and final XOR 0xFFFFFFFF) -- the same value SCTP, ext4 and
``google_crc32c.value`` compute. On the wire the 32-bit value is sent **least
significant byte first**: RFC 3720 B.4 gives 32 zero bytes -> ``aa 36 91 8a`` for
CRC 0x8a9136aa. Use :func:`digest_bytes` to get wire bytes and :func:`digest_from_wire`
to read them back; don't use ``struct`` ``>I`` on a digest.

Incremental use (the framer hashes a data segment chunk by chunk)::

    crc = crc32c(chunk1)
    crc = crc32c(chunk2, crc)     # == crc32c(chunk1 + chunk2)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeAlias

Buffer: TypeAlias = "bytes | bytearray | memoryview"

_POLY_REFLECTED: Final = 0x82F63B78


def _make_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _POLY_REFLECTED if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_TABLE: Final = _make_table()


def crc32c_pure(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """Pure-Python CRC32C (slow; fallback and reference for tests)."""
    crc = value ^ 0xFFFFFFFF
    table = _TABLE
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _load_backend() -> tuple[Callable[[Buffer, int], int], str]:
    """The fastest CRC32C available, imported on first use (the ``crc32c`` package's import pulls
    in importlib.metadata and argparse: tens of milliseconds the PDU listing would pay for nothing
    on captures without digests)."""
    try:  # ICRAR's crc32c: hardware CRC32C, accepts any buffer (memoryview slices, no copy)
        import crc32c as _icrar

        icrar_crc = _icrar.crc32c
        return (lambda data, value: int(icrar_crc(data, value))), "crc32c"
    except ImportError:  # pragma: no cover - depends on the installed wheels
        pass
    return crc32c_pure, "pure-python"  # pragma: no cover


_backend: Callable[[Buffer, int], int] | None = None
IMPLEMENTATION = "not loaded yet"


def crc32c(data: Buffer, value: int = 0) -> int:
    """CRC32C of ``data``, continuing from the finished CRC ``value`` (0 to start)."""
    global _backend, IMPLEMENTATION
    if _backend is None:
        _backend, IMPLEMENTATION = _load_backend()
    return _backend(data, value)


def digest_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """The 4 digest bytes exactly as they follow ``data`` on the wire (CRC little-endian)."""
    return crc32c(data).to_bytes(4, "little")


def digest_from_wire(raw: bytes | bytearray | memoryview) -> int:
    """The CRC value carried by 4 digest bytes from the wire (inverse of ``digest_bytes``)."""
    return int.from_bytes(raw, "little")


def check_digest(data: bytes | bytearray | memoryview, raw: bytes | bytearray | memoryview) -> bool:
    """True if the 4 wire bytes ``raw`` are the correct digest of ``data``."""
    return crc32c(data) == int.from_bytes(raw, "little")
