"""CRC32C digests (analyzer/iscsi/crc32c.py) against RFC 3720 Appendix B.4 vectors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.iscsi.crc32c import check_digest, crc32c, crc32c_pure, digest_bytes, digest_from_wire

# RFC 3720 B.4: the 48-byte iSCSI SCSI Read (10) command PDU example.
READ10_PDU = bytes.fromhex(
    "01c00000000000000000000000000000"
    "14000000000004000000001400000018"
    "28000000000000000200000000000000"
)

VECTORS = [  # (data, CRC value, bytes as they appear on the wire)
    (bytes(32), 0x8A9136AA, "aa36918a"),
    (b"\xff" * 32, 0x62A8AB43, "43aba862"),
    (bytes(range(32)), 0x46DD794E, "4e79dd46"),
    (bytes(range(31, -1, -1)), 0x113FDB5C, "5cdb3f11"),
    (READ10_PDU, 0xD9963A56, "563a96d9"),
]


@pytest.mark.parametrize("data,value,wire", VECTORS)
def test_rfc3720_vectors(data: bytes, value: int, wire: str) -> None:
    assert crc32c(data) == value
    assert crc32c_pure(data) == value
    assert digest_bytes(data) == bytes.fromhex(wire)
    assert digest_from_wire(bytes.fromhex(wire)) == value
    assert check_digest(data, bytes.fromhex(wire))
    assert not check_digest(data, value.to_bytes(4, "big"))


def test_empty() -> None:
    assert crc32c(b"") == 0 == crc32c_pure(b"")


def test_residue() -> None:
    """RFC 7143 §11.2.3 / 3720 B.4: CRC over data followed by its wire digest is the constant residue."""
    for data in (bytes(range(100)), b"", b"iSCSI"):
        # the finished CRC over data + digest is constant (the residue, post-inversion form)
        assert crc32c(data + digest_bytes(data)) == 0x48674BC7


@given(st.binary(max_size=500), st.binary(max_size=500), st.binary(max_size=50))
def test_incremental_equals_one_shot(a: bytes, b: bytes, c: bytes) -> None:
    assert crc32c(c, crc32c(b, crc32c(a))) == crc32c(a + b + c) == crc32c_pure(a + b + c)
    assert crc32c_pure(b, crc32c_pure(a)) == crc32c(a + b)


def test_accepts_memoryview_and_bytearray() -> None:
    data = bytearray(b"x" * 40)
    assert crc32c(memoryview(data)[8:]) == crc32c(bytes(32 * b"x"))
