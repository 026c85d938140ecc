"""iSCSI PDU framing on one direction of a reassembled TCP stream (RFC 7143 §11.2).

Theory of operation
-------------------
A PDU is BHS (48 bytes) | AHS (TotalAHSLength * 4) | HeaderDigest (4, if negotiated) |
data segment (DataSegmentLength, zero-padded to 4) | DataDigest (4, if negotiated and
DataSegmentLength > 0). ``PduFramer.feed`` takes the stream's bytes in any split and emits
one record per complete PDU, attributed to the frame carrying its last byte (where
Wireshark shows it); any split of the same bytes gives the same records.

Only what is decoded is buffered: the header, and the data segment of PDUs whose data we
read (login/text keys, sense data, rejected headers, async sense, and any data segment of
at most ``SMALL_DATA`` bytes). Large Data-In/Data-Out payloads are skipped by length (their
data digest, if any, is still computed incrementally, without copying). A PDU claiming a
16 MiB segment is framed and skipped, never buffered.

Digests (§13.1) apply only in Full Feature Phase. Both directions of a connection share a
``DigestState``: the target-to-initiator framer sees every Login Response, remembers the
HeaderDigest/DataDigest values the login settled on (the last single value either side
sent: offers are lists, answers single values), and switches digests on right after the
final Login Response (T=1, NSG=3, Status-Class 0). When the login was not captured the
digests are *detected*, as Wireshark does: the header digest by checking the CRC32C of the
first framed header against the 4 bytes after it; the data digest at the first PDU with
data, by comparing the 4 bytes after the padded segment with the segment's CRC32C.

Resynchronisation (after a capture gap, a mid-stream start or an implausible header)
scans forward for a plausible BHS, a test modelled on Wireshark's "bogus PDU" filter:

1. the opcode is a known request opcode (initiator->target) or response opcode
   (target->initiator), with the I bit only on requests and bit 7 of byte 0 clear;
2. byte 1 has the opcode's fixed or reserved bits as RFC 7143 §11 requires (e.g. 0x80
   exactly for NOP, R2T, Async, Reject; reserved flag bits zero for SCSI Command,
   Response, Data-In/Out, Login, Text; a valid function/reason/type code for TMF,
   Logout and SNACK);
3. TotalAHSLength is 0 except for SCSI Command (up to 255 words: an Extended CDB AHS,
   §11.2.1.2; OSD commands use 47; the AHS segments must be well formed, §11.2.2), and
   DataSegmentLength is at most ``resync_max_dsl`` (the receiver's declared
   MaxRecvDataSegmentLength when known, else 256 KiB, Wireshark's bogus threshold), and 0
   for PDUs that never carry data (R2T, Logout, TMF, SNACK);
4. opcode-specific reserved words are zero where cheap to check (R2T desired length
   non-zero; Data-In/Out TTT or LUN sanity is not assumed);
5. when header digests are on, the CRC32C must match - this alone is decisive;
6. when the whole PDU and the next 48 bytes are buffered (within ``CONFIRM_LIMIT``) the
   next header must pass 1-3 too (when the data digest is not known yet, the next header
   may start right after the data or 4 bytes later); at the end of the stream a candidate
   that cannot be confirmed is accepted only if its PDU ends exactly where the stream does.

Bytes that could not be framed are counted in ``FramingResync.skipped``. A PDU cut short by
a gap or by the end of the stream is reported at the frame of its last captured byte.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import TYPE_CHECKING, Final

from analyzer.iscsi.crc32c import crc32c
from analyzer.iscsi.pdus import DecodeError, decode_pdu
from analyzer.iscsi.text_keys import MASK, MAX_VALUE_BYTES, SECRET_KEYS
from analyzer.records import (
    I2T,
    FramingResync,
    LoginRequest,
    LoginResponse,
    MalformedPdu,
    Record,
    TextRequest,
    TextResponse,
)

if TYPE_CHECKING:
    from analyzer.iscsi.ordering import ConnectionOrder

BHS_LEN: Final = 48
#: Data segments of at most this many bytes are kept and decoded (INQUIRY data, pings...).
SMALL_DATA: Final = 1024
#: Largest data segment kept for opcodes whose data we always read (text keys, sense).
KEEP_MAX: Final = 1024 * 1024
#: Wireshark's default "bogus PDU data length" threshold, used while resynchronising.
DEFAULT_RESYNC_MAX_DSL: Final = 256 * 1024
#: Wait for up to this many bytes to confirm a resync candidate by the header after it.
CONFIRM_LIMIT: Final = 16 * 1024

#: Opcodes whose data segment is always read (bounded by KEEP_MAX).
KEEP_DATA_OPCODES: Final = frozenset({0x03, 0x23, 0x04, 0x24, 0x21, 0x3F, 0x32})

REQUEST_OPCODES: Final = frozenset({0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x10})
RESPONSE_OPCODES: Final = frozenset({0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x31, 0x32, 0x3F})
VENDOR_OPCODES: Final = frozenset({0x1C, 0x1D, 0x1E, 0x3C, 0x3D, 0x3E})
#: Login and Text Request/Response: key=value text that may continue across PDUs (§6.1).
TEXT_OPCODES: Final = frozenset({0x03, 0x23, 0x04, 0x24})
#: ``PduFramer.text_carry`` when it is not known how the previous text PDU ended.
CARRY_UNKNOWN: Final = b"\0unknown"

#: Opcodes whose PDUs never carry a data segment (§11).
NO_DATA_OPCODES: Final = frozenset({0x02, 0x06, 0x10, 0x22, 0x26, 0x31})


def _byte1_ok(op: int, b1: int) -> bool:
    """RFC 7143 §11: fixed and reserved bits of byte 1 for each opcode."""
    if op in (0x00, 0x20, 0x22, 0x26, 0x31, 0x32, 0x3F):
        return b1 == 0x80
    if op == 0x01:  # F R W . . ATTR
        return not b1 & 0x18
    if op == 0x02:  # 1 + function
        return b1 & 0x80 != 0 and 1 <= (b1 & 0x7F) <= 14
    if op in (0x03, 0x23):  # T C . . CSG NSG
        return not b1 & 0x30 and (b1 >> 2) & 3 != 2
    if op in (0x04, 0x24):  # F C
        return not b1 & 0x3F and b1 & 0xC0 != 0xC0
    if op == 0x05:  # F
        return not b1 & 0x7F
    if op == 0x06:  # 1 + reason
        return b1 & 0x80 != 0 and (b1 & 0x7F) <= 2
    if op == 0x10:  # F . . . type
        return not b1 & 0x70 and (b1 & 0x0F) <= 3
    if op == 0x21:  # 1 . . o u O U .
        return b1 & 0x80 != 0 and not b1 & 0x61
    if op == 0x25:  # F A . . . O U S
        return not b1 & 0x38 and (not b1 & 0x01 or b1 & 0x80 != 0)
    return False


def _candidate_regex(requests: bool) -> re.Pattern[bytes]:
    """A regex matching (by lookahead, so overlapping) every offset whose bytes 0-1 pass tests 1-2."""
    ops = REQUEST_OPCODES if requests else RESPONSE_OPCODES
    alternatives = []
    for op in sorted(ops):
        firsts = [op, op | 0x40] if requests and op != 0x03 else [op | 0x40] if op == 0x03 else [op]
        seconds = bytes(b for b in range(256) if _byte1_ok(op, b))
        if seconds:
            cls1 = b"".join(re.escape(bytes([f])) for f in firsts)
            cls2 = b"".join(re.escape(bytes([x])) for x in seconds)
            alternatives.append(b"[" + cls1 + b"][" + cls2 + b"]")
    return re.compile(b"(?=" + b"|".join(alternatives) + b")", re.DOTALL)


#: Regular expressions finding resync candidates by their first two bytes, per direction.
_CANDIDATE_RE: Final = {True: _candidate_regex(True), False: _candidate_regex(False)}


def plausible_bhs(b: bytes | bytearray | memoryview, pos: int, requests: bool, max_dsl: int) -> bool:
    """Tests 1-4 of the resync rules (module doc) on the 48 bytes at ``b[pos:]``."""
    b0 = b[pos]
    if b0 & 0x80:
        return False
    op = b0 & 0x3F
    if requests:
        if op not in REQUEST_OPCODES:
            return False
    elif op not in RESPONSE_OPCODES or b0 & 0x40:
        return False
    if not _byte1_ok(op, b[pos + 1]):
        return False
    ahs = b[pos + 4]
    dsl = (b[pos + 5] << 16) | (b[pos + 6] << 8) | b[pos + 7]
    if ahs and op != 0x01:  # only a SCSI Command carries AHS: up to 255 words (§11.2.1.2, §11.3.1.1)
        return False
    if dsl > max_dsl or (dsl and op in NO_DATA_OPCODES):
        return False
    if op == 0x03 and b0 != 0x43:  # Login Request always has I=1 (§11.12)
        return False
    if op == 0x31 and b[pos + 44:pos + 48] == b"\0\0\0\0":  # R2T desired length != 0 (§11.8.4)
        return False
    if op in (0x00, 0x20, 0x23, 0x26, 0x3F):
        # Version/reserved bytes 2-3 are zero for NOP, Logout Response and Reject;
        # Login Response bytes 2-3 are versions, 0x00 for every RFC 3720/7143 implementation.
        if b[pos + 2] or b[pos + 3]:
            return False
    return True


def _digest(b: bytes | bytearray) -> tuple[int, str]:
    return len(b), hashlib.blake2b(b, digest_size=16).hexdigest()


def ahs_well_formed(b: bytes | bytearray | memoryview, start: int, end: int) -> bool:
    """The AHS in ``b[start:end]`` is a sequence of well-formed segments (RFC 7143 §11.2.2):
    AHSLength (2 bytes, the bytes after the AHSType byte), AHSType 1 (Extended CDB, §11.2.2.3:
    a reserved byte and CDB bytes 17 on) or 2 (Bidirectional Read Expected Data Transfer
    Length, §11.2.2.4: AHSLength 5), each padded to 4 bytes, filling the AHS exactly."""
    pos = start
    while pos < end:
        if end - pos < 4:
            return False
        length = (b[pos] << 8) | b[pos + 1]
        kind = b[pos + 2]
        if kind == 1:
            if length < 2:
                return False
        elif kind != 2 or length != 5:
            return False
        pos += 3 + length + (-(3 + length) & 3)
    return pos == end


class DigestState:
    """Digest settings shared by both directions of one connection (see module doc)."""

    __slots__ = ("data", "header", "login_data", "login_header", "login_seen", "login_text_cut")

    def __init__(self, *, known: bool) -> None:
        #: True/False once known; None = unknown (login not captured: detect)
        self.header: bool | None = False if known else None
        self.data: bool | None = False if known else None
        self.login_header = False
        self.login_data = False
        #: which of "HeaderDigest"/"DataDigest" the login settled on in what we saw
        self.login_seen: frozenset[str] = frozenset()
        #: a Login PDU's text was not captured whole (snap length, capture gap)
        self.login_text_cut = False

    def note_keys(self, keys: tuple[tuple[str, str], ...]) -> None:
        for k, v in keys:
            if k == "HeaderDigest" and "," not in v:
                self.login_header = v == "CRC32C"
                self.login_seen |= {k}
            elif k == "DataDigest" and "," not in v:
                self.login_data = v == "CRC32C"
                self.login_seen |= {k}

    def image(self) -> tuple[bool | None, bool | None]:
        """What the framers read in Full Feature Phase: the digests in force (batch stitching)."""
        return self.header, self.data

    def login_image(self) -> tuple[object, ...]:
        """What a later Login/Text PDU reads: the digest keys settled so far (batch stitching)."""
        return self.login_header, self.login_data, tuple(sorted(self.login_seen)), self.login_text_cut

    def enter_full_feature_phase(self) -> None:
        # A key not seen is None (not offered) when the login text was all there, else unknown:
        # then the framers detect the digest at the next header, as after a mid-stream start.
        cut = self.login_text_cut
        self.header = self.login_header if "HeaderDigest" in self.login_seen or not cut else None
        self.data = self.login_data if "DataDigest" in self.login_seen or not cut else None


# framer modes
_HEADER, _DATA, _DDIGEST, _RESYNC = range(4)


def _plausible_first_bytes(requests: bool) -> tuple[bool, ...]:
    """Byte 0 values the header test accepts (known or vendor opcode, bit 7 clear), per direction."""
    known = REQUEST_OPCODES if requests else RESPONSE_OPCODES
    return tuple(not b0 & 0x80 and ((b0 & 0x3F) in known or (b0 & 0x3F) in VENDOR_OPCODES) for b0 in range(256))


_PLAUSIBLE_FIRST_BYTE: Final = {True: _plausible_first_bytes(True), False: _plausible_first_bytes(False)}


class PduFramer:
    """Frames and decodes PDUs of one direction of one connection."""

    def __init__(
        self,
        conn: str,
        direction: str,
        digests: DigestState,
        *,
        in_sync: bool = True,
        max_dsl: int = (1 << 24) - 1,
        resync_max_dsl: int = DEFAULT_RESYNC_MAX_DSL,
    ) -> None:
        self.conn = conn
        self.direction = direction
        self.requests = direction == I2T
        self.plausible_op = _PLAUSIBLE_FIRST_BYTE[self.requests]
        self.digests = digests
        self.max_dsl = max_dsl
        self.resync_max_dsl = resync_max_dsl
        self.mode = _HEADER if in_sync else _RESYNC
        self.resync_reason = "mid_stream"
        self.hbuf: bytes | bytearray = bytearray()
        self.need = BHS_LEN  # header bytes needed (BHS, then BHS+AHS+digest)
        self.first_frame = 0
        self.first_ts = 0
        self.data_left = 0  # data + padding bytes still to come
        self.dsl = 0
        self.keep: bytearray | None = None
        self.data_crc: int | None = None  # running CRC of the data segment (when a digest is checked)
        self.data_complete = True
        self.hd_status: str | None = None
        #: digest expectations for the PDU being framed (False for Login PDUs; None = detect)
        self.cur_hd: bool | None = False
        self.cur_dd: bool | None = False
        self.dbuf = bytearray()
        self.data_end = (0, 0)
        #: frame and ts_ns of the last chunk fed: where a PDU cut short by a gap or the end ends
        self.last_frame = 0
        self.last_ts = 0
        #: (frame, ts_ns) of the chunk holding the first byte of ``dbuf``
        self.dbuf_start = (0, 0)
        self.rbuf = bytearray()
        #: (offset in rbuf, frame, ts_ns) where each captured chunk in the resync buffer starts
        self.rmarks: list[tuple[int, int, int]] = []
        self.skipped = 0
        #: frame of the first of the ``skipped`` bytes (0: none yet)
        self.skip_from = 0
        #: the stream had frames cut by the snap length (see ``gap``)
        self.cut_seen = False
        #: totals for reports
        self.pdus = 0
        self.bytes_unframed = 0
        #: times a header scan ran (resync or digest detection; it reads ``resync_max_dsl``)
        self.resyncs = 0
        #: the reorder buffer this framer shares with the other direction (set by the pipeline)
        self.order: ConnectionOrder | None = None
        #: the unterminated key=value item the last Login/Text PDU of this direction ended with
        #: (C bit, §6.1), b"" when it ended with a whole item, CARRY_UNKNOWN when not seen
        self.text_carry: bytes = b"" if in_sync else CARRY_UNKNOWN


    # ------------------------------------------------------------------ state image (batch)

    def state_image(self) -> tuple[object, ...]:
        """Canonical image of the framing state: equal images + equal bytes in = equal records out.

        ``analyzer.batch`` compares it to accept a piece of a capture decoded elsewhere. Left
        out: the counters (``pdus``, ``bytes_unframed``, ``resyncs``), the shared ``digests``
        (``DigestState.image``), ``resync_max_dsl`` (an input the caller tracks) and fields the
        current mode rewrites before it reads them again (per-PDU fields between PDUs, the
        resync and data-digest bookkeeping outside those modes). A field added to ``__init__``
        must be placed here or in that list (tests/unit/test_batch_interfaces.py checks it).
        """
        mode = self.mode
        in_pdu = mode == _DATA or mode == _DDIGEST
        img: list[object] = [self.conn, self.direction, self.max_dsl, mode, _digest(self.hbuf), self.need,
                             _digest(self.dbuf), _digest(self.rbuf), tuple(self.rmarks), self.cut_seen,
                             self.text_carry, self.skip_from]
        if mode == _RESYNC:
            img += [self.skipped, self.resync_reason]
        if mode == _DDIGEST:
            img += [self.data_end, self.dbuf_start]
        if in_pdu:
            img += [None if self.keep is None else _digest(self.keep), self.data_crc, self.data_complete,
                    self.dsl, self.hd_status, self.data_left, self.last_frame, self.last_ts]
        if in_pdu or len(self.hbuf) >= BHS_LEN or self.need != BHS_LEN:
            img += [self.cur_hd, self.cur_dd]
        if in_pdu or self.hbuf:
            img += [self.first_frame, self.first_ts]
        return tuple(img)

    #: ``__init__`` fields that are not in ``state_image`` whatever the mode (see there).
    #: ``order`` is the connection's reorder buffer, shared by both directions (``ordering.py``):
    #: batch stitches at file ends, where it holds nothing the caller has not been handed.
    NOT_STATE: Final = frozenset({"requests", "plausible_op", "digests", "resync_max_dsl", "pdus",
                                  "bytes_unframed", "resyncs", "order"})

    # ------------------------------------------------------------------ feeding

    def feed(self, frame: int, ts_ns: int, data: bytes | bytearray | memoryview) -> list[Record]:
        """Feed the next in-order bytes of the stream; returns completed PDU records."""
        n = len(data)
        self.last_frame = frame
        self.last_ts = ts_ns
        if n < self.data_left and self.mode == _DATA and self.keep is None and self.data_crc is None:
            # Hot path: the middle of a data segment we skip (Data-In/Data-Out payload).
            self.data_left -= n
            return []
        out: list[Record] = []
        mv = data if isinstance(data, memoryview) else memoryview(data)
        pos = 0
        while pos < n:
            mode = self.mode
            if mode == _HEADER and not self.hbuf and n - pos >= BHS_LEN:
                # Fast path: a whole BHS in this chunk, no AHS, no header digest (the common case).
                b0 = mv[pos]
                op = b0 & 0x3F
                if self.plausible_op[b0] and not mv[pos + 4]:
                    login = op == 0x03 or op == 0x23
                    digests = self.digests
                    if login or digests.header is False:
                        bhs = bytes(mv[pos:pos + BHS_LEN])
                        pos += BHS_LEN
                        if not (bhs[5] or bhs[6] or bhs[7]) and not login:
                            # No data segment either: the PDU is complete here. (In this mode keep
                            # and data_crc are None already; per-PDU fields are not read until
                            # the next header starts.)
                            self.pdus += 1
                            try:
                                rec: Record = decode_pdu(bhs, b"", None, frame, ts_ns, self.conn, self.direction,
                                                         frame, None, None)
                            except DecodeError as e:
                                rec = MalformedPdu(frame, ts_ns, self.conn, self.direction, frame, op, e.reason,
                                                   e.offset, bhs)
                            out.append(rec)
                            continue
                        self.hbuf = bhs
                        self.first_frame = frame
                        self.first_ts = ts_ns
                        self.cur_hd = False if login else digests.header
                        dd = self.cur_dd = False if login else digests.data
                        self.hd_status = None
                        dsl = self.dsl = (bhs[5] << 16) | (bhs[6] << 8) | bhs[7]
                        self.data_complete = True
                        if dsl == 0:
                            self.keep = None
                            self.data_crc = None
                            self._emit(frame, ts_ns, out)
                            continue
                        self.keep = bytearray() if (op in KEEP_DATA_OPCODES and dsl <= KEEP_MAX) or \
                            dsl <= SMALL_DATA else None
                        self.data_crc = 0 if dd is None or dd else None
                        self.data_left = dsl + (-dsl & 3)
                        self.mode = mode = _DATA
            if mode == _DATA:
                left = self.data_left
                take = min(n - pos, left)
                keep = self.keep
                crc = self.data_crc
                if keep is not None or crc is not None:  # (skipped payload is never sliced)
                    chunk = mv[pos:pos + take]
                    if keep is not None:
                        keep += chunk
                    if crc is not None:
                        self.data_crc = crc32c(chunk, crc)
                self.data_left = left - take
                pos += take
                if left == take:
                    self._data_done(frame, ts_ns, out)
            elif mode == _HEADER:
                hb = self.hbuf
                if not hb:
                    self.first_frame = frame
                    self.first_ts = ts_ns
                    hb = self.hbuf = bytearray()
                take = self.need - len(hb)
                take = min(take, n - pos)
                hb += mv[pos:pos + take]
                pos += take
                if len(hb) == self.need:
                    self._header_progress(frame, ts_ns, out)
            elif mode == _DDIGEST:
                take = 4 - len(self.dbuf)
                if take == 4:
                    self.dbuf_start = (frame, ts_ns)
                take = min(take, n - pos)
                self.dbuf += mv[pos:pos + take]
                pos += take
                if len(self.dbuf) == 4:
                    self._data_digest_done(frame, ts_ns, out)
            else:
                self.rmarks.append((len(self.rbuf), frame, ts_ns))
                self.rbuf += mv[pos:]
                pos = n
                self._resync_and_refeed(frame, ts_ns, out)
        return out

    def gap(self, frame: int, ts_ns: int, length: int, snaplen: bool = False) -> list[Record]:
        """``length`` bytes of the stream are missing from the capture.

        ``snaplen``: they are the tail of a captured frame cut by the snap length. While
        resynchronising, a plausible header at the start of a captured chunk whose PDU runs
        into such a cut is then accepted unconfirmed (its next header is in or after the cut,
        so it can never be confirmed), and framing resumes at that PDU: in a capture with a
        small snap length every segment is cut, and PDUs mostly start segments.
        """
        out: list[Record] = []
        if snaplen:
            self.cut_seen = True
        if snaplen and self.mode == _RESYNC and self.rbuf:
            self._resync_and_refeed(self.last_frame, self.last_ts, out, cut=True)
        if self.mode == _DATA and length <= self.data_left:
            # The hole is inside a data segment we are skipping anyway: framing survives.
            self.data_left -= length
            self.data_complete = False
            self.keep = None
            self.data_crc = None
            if self.data_left == 0:
                self._data_done(self.last_frame, self.last_ts, out)  # ends in the hole: at its last captured byte
            return out
        # A PDU cut short is reported at the frame of its last captured byte (the gap's frame
        # may even be an ACK of the other direction).
        if self.mode == _DATA:
            self.data_complete = False
            self.keep = None
            self.data_crc = None
            self._emit(self.last_frame, self.last_ts, out)  # the header was complete: report the PDU
        elif self.mode == _DDIGEST:
            self.data_crc = None
            if self.cur_dd is None:
                # Digest detection pending: the PDU ended with its data; dbuf is unframed.
                self._emit(*self.data_end, out)
                self.hbuf = self.dbuf
            else:
                self._emit(self.last_frame, self.last_ts, out)
        if self.mode != _RESYNC:
            self.skipped = 0
            self.skip_from = 0
        if not self.skip_from and (self.hbuf or self.rbuf):
            self.skip_from = self.first_frame if self.hbuf else (self.rmarks[0][1] if self.rmarks else frame)
        self.skipped += len(self.hbuf) + len(self.rbuf)  # captured bytes left unframed
        self.bytes_unframed += len(self.hbuf)
        self.hbuf = bytearray()
        self.rbuf = bytearray()
        self.rmarks = []
        self.dbuf = bytearray()
        self.mode = _RESYNC
        self.resync_reason = "snaplen" if snaplen else "gap"
        self.text_carry = CARRY_UNKNOWN
        return out

    def finish(self, frame: int, ts_ns: int) -> list[Record]:
        """End of stream: a PDU cut short is reported as unframed bytes."""
        out: list[Record] = []
        while self.mode == _RESYNC and self.rbuf:
            # A candidate still waiting for the header after it: accept it if its PDU ends the stream.
            left = len(self.rbuf)
            _, last_frame, last_ts = self.rmarks[-1] if self.rmarks else (0, frame, ts_ns)
            self._resync_and_refeed(last_frame, last_ts, out, final=True)
            if self.mode == _RESYNC and len(self.rbuf) >= left:
                break
        pending = len(self.hbuf) + len(self.rbuf) + len(self.dbuf)
        if self.mode == _DATA:
            self.data_complete = False
            self.keep = None
            self.data_crc = None
            self._emit(self.last_frame, self.last_ts, out)
        elif self.mode == _DDIGEST and self.cur_dd is None:
            # Digest detection pending: the PDU ended with its data; what follows is unframed.
            pending = len(self.dbuf)
            self.data_crc = None
            self._emit(*self.data_end, out)
            if pending:
                self.bytes_unframed += pending
                out.append(FramingResync(frame, ts_ns, self.conn, self.direction, pending, "stream_end",
                                         False))
        elif self.mode == _DDIGEST:
            pending = 0
            self.data_crc = None
            self._emit(self.last_frame, self.last_ts, out)
        elif self.mode == _RESYNC and (self.skipped or pending):
            self.bytes_unframed += pending
            if not self.skip_from and self.rmarks:
                self.skip_from = self.rmarks[0][1]
            out.append(FramingResync(frame, ts_ns, self.conn, self.direction, self.skipped + pending,
                                     self.resync_reason, False, self.skip_from))
        elif pending:
            self.bytes_unframed += pending
            out.append(FramingResync(frame, ts_ns, self.conn, self.direction, pending, "stream_end", False))
        self.hbuf = bytearray()
        self.rbuf = bytearray()
        self.rmarks = []
        self.dbuf = bytearray()
        self.skipped = 0
        self.skip_from = 0
        return out

    def pending_frame(self) -> int | None:
        """The lowest frame a record this framer has not emitted yet may carry, or None when
        nothing is pending (the pipeline orders records by this).

        While resynchronising: the first chunk of the held bytes (a confirmed candidate is
        re-fed from there). A PDU in progress: it may still end at the last frame fed (a gap or
        the end of the stream cuts it short), or at the end of its data segment when its data
        digest is being detected; a header in progress may be re-fed from its first chunk."""
        mode = self.mode
        if mode == _DATA:
            return self.last_frame
        if mode == _HEADER:
            return self.first_frame if self.hbuf else None
        if mode == _DDIGEST:
            return self.data_end[0] if self.cur_dd is None else self.last_frame
        return self.rmarks[0][1] if self.rmarks else None

    # ------------------------------------------------------------------ header

    def _header_progress(self, frame: int, ts_ns: int, out: list[Record]) -> None:
        hb = self.hbuf
        if self.need == BHS_LEN:
            b0 = hb[0]
            op = b0 & 0x3F
            known = (op in REQUEST_OPCODES) if self.requests else (op in RESPONSE_OPCODES)
            if (not known and op not in VENDOR_OPCODES) or b0 & 0x80:
                # Framing is lost (or the peer sent garbage): resynchronise from here.
                self._lose_sync(frame, ts_ns, out, "implausible_header")
                return
            # Login PDUs never carry digests: they are negotiated by the login (§13.1).
            login = op == 0x03 or op == 0x23
            self.cur_hd = False if login else self.digests.header
            self.cur_dd = False if login else self.digests.data
            if self.cur_hd is None:
                # Digests unknown in sync (the login's digest keys were not captured): detect the
                # header digest as resynchronisation does (its CRC check), starting at this header.
                self.rbuf = bytearray(hb)
                self.rmarks = [(0, self.first_frame, self.first_ts)]
                self.skipped = 0
                self.skip_from = 0
                self.hbuf = b""
                self.mode = _RESYNC
                self.resync_reason = "digests_unknown"
                self._resync_and_refeed(frame, ts_ns, out)
                return
            extra = hb[4] * 4 + (4 if self.cur_hd else 0)
            if extra:
                self.need = BHS_LEN + extra
                return
        self._header_done(frame, ts_ns, out)

    def _header_done(self, frame: int, ts_ns: int, out: list[Record]) -> None:
        hb = self.hbuf
        if self.cur_hd:
            end = len(hb) - 4
            got = int.from_bytes(hb[end:], "little")
            self.hd_status = "ok" if crc32c(hb[:end]) == got else "bad"
        else:
            self.hd_status = None
        dsl = (hb[5] << 16) | (hb[6] << 8) | hb[7]
        self.dsl = dsl
        if dsl == 0:
            self.data_complete = True
            self.keep = None
            self.data_crc = None
            self._emit(frame, ts_ns, out)
            return
        op = hb[0] & 0x3F
        if (op in KEEP_DATA_OPCODES and dsl <= KEEP_MAX) or dsl <= SMALL_DATA:
            self.keep = bytearray()
        else:
            self.keep = None
        dd = self.cur_dd
        self.data_crc = 0 if dd is None or dd else None
        self.data_left = dsl + (-dsl & 3)
        self.data_complete = True
        self.mode = _DATA

    def _data_done(self, frame: int, ts_ns: int, out: list[Record]) -> None:
        dd = self.cur_dd
        if dd is False:
            self._emit(frame, ts_ns, out)
        else:
            # Where the data segment ended: the PDU's last byte if no digest follows after all.
            self.data_end = (frame, ts_ns)
            self.dbuf = bytearray()
            self.mode = _DDIGEST

    def _data_digest_done(self, frame: int, ts_ns: int, out: list[Record]) -> None:
        raw = self.dbuf
        got = int.from_bytes(raw, "little")
        self.dbuf = bytearray()  # consumed (finish() counts what is left in it as unframed)
        crc = self.data_crc
        if self.cur_dd is None:
            # Detection (login not captured): a digest is there iff the CRC matches.
            if crc is not None and crc == got:
                self.digests.data = True
                self._emit(frame, ts_ns, out, dd_status="ok")
                return
            if crc is not None and self.digests.data is None:
                self.digests.data = False
            # No digest here (or cannot tell, the data being incomplete): these 4 bytes start the next PDU.
            rest = bytes(raw)
            self._emit(*self.data_end, out)
            # They are re-fed as of the chunk that carried the first of them (the next PDU's first_frame).
            out.extend(self.feed(*self.dbuf_start, rest))
            return
        status = None if crc is None else ("ok" if crc == got else "bad")
        self._emit(frame, ts_ns, out, dd_status=status)

    def _emit(self, frame: int, ts_ns: int, out: list[Record], dd_status: str | None = None) -> None:
        hb = self.hbuf
        if len(hb) == BHS_LEN:  # the common case: no AHS, no header digest
            bhs = hb if type(hb) is bytes else bytes(hb)
            ahs = b""
        else:
            ahs_end = BHS_LEN + hb[4] * 4
            bhs = bytes(hb[:BHS_LEN])
            ahs = bytes(hb[BHS_LEN:ahs_end])
        data: bytes | None
        if self.keep is not None and self.data_complete:
            data = bytes(self.keep[:self.dsl])
        else:
            data = None
        self.pdus += 1
        rec: Record
        try:
            rec = decode_pdu(bhs, ahs, data, frame, ts_ns, self.conn, self.direction, self.first_frame,
                             self.hd_status, dd_status)
        except DecodeError as e:
            rec = MalformedPdu(frame, ts_ns, self.conn, self.direction, self.first_frame, bhs[0] & 0x3F,
                               e.reason, e.offset, bhs)
        op = bhs[0] & 0x3F
        if op in TEXT_OPCODES:
            rec = self._mask_continued_secret(rec, bhs, data)
        out.append(rec)
        # Login Response: track the digest keys and the switch to Full Feature Phase (§13.1).
        if op == 0x23 or op == 0x03:
            keys = getattr(rec, "keys", ())
            self.digests.note_keys(keys)
            if data is None and self.dsl:
                self.digests.login_text_cut = True
            if op == 0x23 and bhs[1] & 0x83 == 0x83 and bhs[36] == 0:
                self.digests.enter_full_feature_phase()
        self.hbuf = b""
        self.need = BHS_LEN
        self.keep = None
        self.data_crc = None
        self.mode = _HEADER

    def _mask_continued_secret(self, rec: Record, bhs: bytes, data: bytes | None) -> Record:
        """A key=value item split across Login/Text PDUs (C bit: RFC 7143 §6.1, §11.10.1,
        §11.12.4) is one item: the key is in the PDU where it starts, the rest of the item in the
        next PDU(s), where it parses as a ("", value) fragment (or as a pair under a wrong key,
        when the split is inside the key). Name that piece by the joined item's key when it is a
        secret (CHAP_R, CHAP_N, CHAP_C, SRP_*, KRB_*), so that everything masking secrets by key
        name masks it; a value fragment whose key is unknown (its first PDU not captured) is
        masked here. The raw ``text`` stays as received (the state layer rejoins it)."""
        carry = self.text_carry
        more = bool(bhs[1] & 0x40) or (bhs[0] & 0x3F in (0x04, 0x24) and not bhs[1] & 0x80)
        if not isinstance(rec, (LoginRequest, LoginResponse, TextRequest, TextResponse)):
            return rec
        keys = rec.keys
        if data is None:
            self.text_carry = CARRY_UNKNOWN if self.dsl else b""
            return rec
        nul = data.find(b"\0")
        head = data if nul < 0 else data[:nul]
        new_keys = keys
        if carry is CARRY_UNKNOWN:
            if keys and head and keys[0] == ("", head.decode("utf-8", "replace")):
                new_keys = (("", MASK), *keys[1:])  # the tail of an item whose key we did not see
        elif carry and head and keys and (nul >= 0 or not more):
            key, eq, value = (carry + head).decode("utf-8", "replace").partition("=")
            if eq and key in SECRET_KEYS:
                new_keys = ((key, value), *keys[1:])
        if more and data and data[-1] != 0:
            tail = data[data.rfind(b"\0") + 1:]
            joined = tail if nul >= 0 or carry is CARRY_UNKNOWN else carry + tail
            self.text_carry = joined[-MAX_VALUE_BYTES:] if len(joined) > MAX_VALUE_BYTES else joined
        else:
            self.text_carry = b""
        if new_keys is keys:
            return rec
        return dataclasses.replace(rec, keys=new_keys)

    def _lose_sync(self, frame: int, ts_ns: int, out: list[Record], reason: str) -> None:
        self.rbuf = bytearray(self.hbuf[1:])
        self.rmarks = [(0, self.first_frame, self.first_ts)]
        self.skipped = 1
        self.skip_from = self.first_frame
        self.hbuf = bytearray()
        self.need = BHS_LEN
        self.mode = _RESYNC
        self.resync_reason = reason
        self._resync_and_refeed(frame, ts_ns, out)

    # ------------------------------------------------------------------ resync

    def _resync_and_refeed(self, frame: int, ts_ns: int, out: list[Record], final: bool = False,
                           cut: bool = False) -> None:
        """Resynchronise; on success re-feed the buffered bytes, each chunk with its own frame."""
        self.resyncs += 1
        marks = self.rmarks
        rest = self._resync(frame, ts_ns, out, final, cut)
        if rest is None:
            return
        start, chunks = rest
        self.rmarks = []
        for i, (off, fr, ts) in enumerate(marks):
            end = marks[i + 1][0] if i + 1 < len(marks) else None
            lo = max(off, start)
            piece = chunks[lo - start:None if end is None else end - start]
            if end is not None and end <= start:
                continue
            if piece:
                out.extend(self.feed(fr, ts, piece))

    def _resync(self, frame: int, ts_ns: int, out: list[Record],
                final: bool = False, cut: bool = False) -> tuple[int, bytes] | None:
        """Scan ``rbuf`` for a plausible BHS. Returns (its offset, the bytes from it on) or None.

        ``final``: the stream has ended, no more bytes will come; a candidate that cannot be
        confirmed by a next header is accepted only if its PDU ends exactly where the stream does.
        ``cut``: a snap-length cut follows the buffered bytes (see ``gap``); an unconfirmable
        candidate is accepted if it starts a captured chunk.
        """
        chunk_starts = {off for off, _fr, _ts in self.rmarks} if cut or self.cut_seen else None
        rb = self.rbuf
        finder = _CANDIDATE_RE[self.requests]
        hd = self.digests.header
        pos = 0
        n = len(rb)
        while True:
            m = finder.search(rb, pos)
            if m is None:
                keep_from = max(n - (BHS_LEN - 1), pos)
                break
            p = m.start()
            if n - p < BHS_LEN + (4 if hd else 0):
                keep_from = p
                break
            if not plausible_bhs(rb, p, self.requests, self.resync_max_dsl):
                pos = p + 1
                continue
            ahs_len = rb[p + 4] * 4
            hdr_end = p + BHS_LEN + ahs_len
            if ahs_len:
                # A SCSI Command with AHS (up to 255 words): its segments must be well formed.
                if n < hdr_end:
                    keep_from = p
                    break
                if not ahs_well_formed(rb, p + BHS_LEN, hdr_end):
                    pos = p + 1
                    continue
            verdict = self._digest_verdict(rb, p, hdr_end, final)
            if verdict is None:  # need more bytes
                keep_from = p
                break
            if verdict is False:
                pos = p + 1
                continue
            login = rb[p] & 0x3F in (0x03, 0x23)
            has_hd = verdict == "digest" and not login
            dsl = (rb[p + 5] << 16) | (rb[p + 6] << 8) | rb[p + 7]
            total = (hdr_end - p) + (4 if has_hd else 0) + dsl + (-dsl & 3)
            dd_unknown = False
            if dsl and not login:
                if self.digests.data:
                    total += 4
                elif self.digests.data is None:
                    dd_unknown = True  # the next header is right after the data, or 4 bytes later
            # Confirm by the next header when it is (or soon will be) in the buffer.
            nexts = (p + total, p + total + 4) if dd_unknown else (p + total,)
            confirmed = undecided = False
            for nxt in nexts:
                if nxt + BHS_LEN > n:
                    undecided = True
                elif plausible_bhs(rb, nxt, self.requests, self.resync_max_dsl):
                    confirmed = True
                    break
            if not confirmed:
                if not undecided:
                    pos = p + 1
                    continue
                if cut:
                    if p not in chunk_starts:  # type: ignore[operator]  # only a chunk's first byte is a likely PDU start
                        pos = p + 1
                        continue
                elif chunk_starts is not None and p in chunk_starts and n in nexts:
                    pass  # (a stream cut by the snap length) a whole PDU filling the last captured chunk(s)
                elif final:
                    if n - p not in (nxt - p for nxt in nexts):
                        pos = p + 1
                        continue
                elif nexts[-1] - p + BHS_LEN <= CONFIRM_LIMIT:
                    keep_from = p
                    break
            # Accept.
            if self.digests.header is None and not login:
                self.digests.header = has_hd  # detected (login not captured)
            if p and not self.skip_from and self.rmarks:
                self.skip_from = self.rmarks[0][1]
            self.skipped += p
            self.bytes_unframed += p
            if self.skipped or self.resync_reason != "mid_stream":
                # Reported at the frame of the header found (where its chunk starts), so it comes
                # before the PDUs re-framed from there.
                at_frame, at_ts = frame, ts_ns
                for off, fr, ts in self.rmarks:
                    if off > p:
                        break
                    at_frame, at_ts = fr, ts
                out.append(FramingResync(at_frame, at_ts, self.conn, self.direction, self.skipped,
                                         self.resync_reason, True, self.skip_from if self.skipped else 0))
            self.skipped = 0
            self.skip_from = 0
            rest = bytes(rb[p:])
            self.rbuf = bytearray()
            self.mode = _HEADER
            self.hbuf = bytearray()
            self.need = BHS_LEN
            return p, rest
        if keep_from and not self.skip_from and self.rmarks:
            self.skip_from = self.rmarks[0][1]
        self.skipped += keep_from
        self.bytes_unframed += keep_from
        del rb[:keep_from]
        if keep_from:
            # Re-base the chunk marks; the chunk that straddles the cut keeps its frame.
            marks = [(off - keep_from, fr, ts) for off, fr, ts in self.rmarks]
            kept = [m for m in marks if m[0] > 0]
            before = [m for m in marks if m[0] <= 0]
            if before and rb:
                kept.insert(0, (0, before[-1][1], before[-1][2]))
            self.rmarks = kept if rb else []
        return None

    def _digest_verdict(self, rb: bytearray, p: int, hdr_end: int, final: bool = False) -> str | bool | None:
        """Header digest test for a candidate.

        Returns "digest" (a matching header digest follows), "plain" (no digest expected, or
        digests unknown and the CRC does not match), False (digest expected but wrong), or None
        when more bytes are needed to tell. ``final``: the stream has ended, so a header that
        ends less than 4 bytes before the end has no digest (digests unknown: it is "plain").
        """
        hd = self.digests.header
        if hd is False:
            return "plain"
        if len(rb) < hdr_end + 4:
            if final and hd is None and len(rb) >= hdr_end:
                return "plain"
            return None
        # A copy of the candidate header, not a view: no export of rbuf, which feed() resizes.
        ok = crc32c(bytes(rb[p:hdr_end])) == int.from_bytes(rb[hdr_end:hdr_end + 4], "little")
        if ok:
            return "digest"
        return "plain" if hd is None else False
