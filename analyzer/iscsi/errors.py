"""The one exception the pure iSCSI decoders raise (house style §2).

The framing loop catches :class:`DecodeError` and turns it into a ``MalformedPdu``
record; nothing else may escape a decoder.
"""

from __future__ import annotations


class DecodeError(Exception):
    """Bytes that framed as a PDU (or a CDB, sense blob, key text) but cannot be decoded.

    ``reason`` is a short human sentence; ``offset`` is the byte offset where decoding
    failed, counted from the start of the PDU (or of the blob for the stand-alone
    helpers ``decode_sense``, ``decode_cdb`` and ``parse_keys``).
    """

    __slots__ = ("offset", "reason")

    def __init__(self, reason: str, offset: int = 0) -> None:
        super().__init__(reason, offset)
        self.reason = reason
        self.offset = offset

    def __str__(self) -> str:
        return f"{self.reason} (at byte {self.offset})"

    def shifted(self, delta: int) -> DecodeError:
        """The same error with ``offset`` moved by ``delta`` (blob offset -> PDU offset)."""
        return DecodeError(self.reason, self.offset + delta)
