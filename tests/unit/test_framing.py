"""PDU framing (analyzer/iscsi/framing.py): split-feed invariant, digests, gaps, resync, limits.

Every test drives ``PduFramer`` directly with wire bytes from ``tests/builders.py`` (no disk).
Expected records come from ``builders.decode_wire`` on each PDU's own wire bytes, with the
frame numbers the framer must assign: a PDU's ``frame`` is the frame of the chunk holding
its last byte, ``first_frame`` the frame of the chunk holding its first byte (house style
§6, module doc of framing.py).
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import builders as b
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.iscsi.framing import DigestState, PduFramer
from analyzer.records import (
    I2T,
    T2I,
    DataIn,
    FramingResync,
    LoginRequest,
    LoginResponse,
    MalformedPdu,
    NopIn,
    Pdu,
    Record,
    TextRequest,
    TextResponse,
    UnknownPdu,
)

CONN = "c"
READ10 = bytes.fromhex("28000000001000000800") + bytes(6)
WRITE10 = bytes.fromhex("2a000000002000000200") + bytes(6)
TUR = bytes(16)
#: a 32-byte CDB (variable-length, opcode 0x7f) that needs an Extended CDB AHS
CDB32 = bytes([0x7F, 0, 0, 0, 0, 0, 0, 0x18]) + bytes(24)


# --------------------------------------------------------------------------- conversations


@dataclass(frozen=True)
class Msg:
    """One PDU on the wire and how to decode it for the expected record."""

    direction: str
    wire: bytes
    hd: bool = False  #: carries a header digest
    dd: bool = False  #: carries a data digest (when it has data)


def login_phase(*, digests: bool) -> list[Msg]:
    """Security stage then operational stage, ending with the final Login Response (T=1, NSG=3)."""
    offer = "CRC32C,None" if digests else "None"
    answer = "CRC32C" if digests else "None"
    return [
        Msg(I2T, b.login_request(csg=0, nsg=1, keys=[("InitiatorName", "iqn.2024-01.org.example:init"),
                                                     ("SessionType", "Normal"),
                                                     ("TargetName", "iqn.2024-01.org.example:tgt"),
                                                     ("AuthMethod", "None")])),
        Msg(T2I, b.login_response(csg=0, nsg=1, tsih=0, keys=[("AuthMethod", "None"),
                                                              ("TargetPortalGroupTag", "1")])),
        # Operational stage: the initiator offers lists; the target's non-final answer settles them.
        Msg(I2T, b.login_request(csg=1, nsg=3, transit=False, keys=[("HeaderDigest", offer),
                                                                     ("DataDigest", offer),
                                                                     ("MaxRecvDataSegmentLength", "262144")])),
        Msg(T2I, b.login_response(csg=1, nsg=3, transit=False, tsih=0, keys=[("HeaderDigest", answer),
                                                                             ("DataDigest", answer),
                                                                             ("MaxRecvDataSegmentLength",
                                                                              "65536")])),
        # Login PDUs never carry digests, even once the keys are settled (§13.1).
        Msg(I2T, b.login_request(csg=1, nsg=3, cmdsn=0, expstatsn=1)),
        Msg(T2I, b.login_response(csg=1, nsg=3, tsih=7, statsn=1, expcmdsn=0, maxcmdsn=16)),
    ]


def ffp(*, digests: bool, big: int = 4096) -> list[Msg]:
    """Full Feature Phase PDUs of every kind (digests on when ``digests``)."""
    h = d = digests
    kw = {"header_digest": h}
    kwd = {"header_digest": h, "data_digest": d}
    many_keys = [("TargetName", f"iqn.2024-01.org.example:target-{i:03d}") for i in range(40)] + [
        ("TargetAddress", f"10.0.{i}.1:3260,1") for i in range(40)]
    rejected = b.scsi_command(cdb=READ10, itt=0x99, read=True, edtl=4096)[:48]
    msgs = [
        (I2T, b.text_request(keys=[("SendTargets", "All")], itt=1, cmdsn=1, expstatsn=2, **kwd)),
        (T2I, b.text_response(keys=many_keys, itt=1, statsn=2, expcmdsn=2, maxcmdsn=17, **kwd)),
        # READ(10) answered by Data-In without then with the S bit
        (I2T, b.scsi_command(cdb=READ10, itt=2, read=True, edtl=2 * big, cmdsn=2, expstatsn=3, **kwd)),
        (T2I, b.data_in(itt=2, datasn=0, final=False, data=bytes(range(256)) * (big // 256), **kwd)),
        (T2I, b.data_in(itt=2, datasn=1, buffer_offset=big, status=0, statsn=3, expcmdsn=3, maxcmdsn=18,
                        data=b"\xa5" * big, **kwd)),
        # WRITE(10) with immediate data, an R2T and two Data-Out
        (I2T, b.scsi_command(cdb=WRITE10, itt=3, write=True, final=False, edtl=3 * 512, cmdsn=3, expstatsn=4,
                             data=b"\x11" * 512, **kwd)),
        (I2T, b.data_out(itt=3, ttt=0xFFFFFFFF, datasn=0, buffer_offset=512, final=True, data=b"\x22" * 510,
                         **kwd)),
        (T2I, b.r2t(itt=3, ttt=0x1000, statsn=4, expcmdsn=4, maxcmdsn=19, buffer_offset=1022,
                    desired_length=514, **kw)),
        (I2T, b.data_out(itt=3, ttt=0x1000, datasn=0, buffer_offset=1022, final=True, data=b"\x33" * 514,
                         **kwd)),
        (T2I, b.scsi_response(itt=3, statsn=4, expcmdsn=4, maxcmdsn=19, **kwd)),
        # 32-byte CDB with a bidirectional AHS; CHECK CONDITION with sense data
        (I2T, b.scsi_command(cdb=CDB32, itt=4, read=True, write=True, edtl=512, bidi_read_edtl=512, cmdsn=4,
                             expstatsn=5, **kwd)),
        (T2I, b.scsi_response(itt=4, status=2, sense=b.fixed_sense(5, 0x24, 0), statsn=5, expcmdsn=5,
                              maxcmdsn=20, **kwd)),
        (I2T, b.scsi_command(cdb=TUR, itt=5, cmdsn=5, expstatsn=6, **kwd)),
        (T2I, b.scsi_response(itt=5, status=2, sense=b.descriptor_sense(6, 0x29, 0, information=7), statsn=6,
                              expcmdsn=6, maxcmdsn=21, underflow=True, residual=0, **kwd)),
        # pings both ways
        (I2T, b.nop_out(itt=6, cmdsn=6, expstatsn=7, immediate=True, data=b"ping-data!", **kwd)),
        (T2I, b.nop_in(itt=6, statsn=7, expcmdsn=6, maxcmdsn=21, data=b"ping-data!", **kwd)),
        (T2I, b.nop_in(ttt=0x2000, statsn=7, expcmdsn=6, maxcmdsn=21, **kwd)),
        (I2T, b.nop_out(ttt=0x2000, cmdsn=6, expstatsn=7, **kwd)),
        # task management, SNACK, async, reject, vendor opcodes
        (I2T, b.task_mgmt_request(function=1, itt=7, ref_task_tag=2, cmdsn=6, expstatsn=7, **kw)),
        (T2I, b.task_mgmt_response(itt=7, statsn=7, expcmdsn=7, maxcmdsn=22, **kw)),
        (I2T, b.snack(snack_type=1, begrun=3, runlength=1, expstatsn=7, **kw)),
        (T2I, b.async_message(async_event=0, sense=b.fixed_sense(6, 0x3F, 0x0E), statsn=8, expcmdsn=7,
                              maxcmdsn=22, **kwd)),
        (T2I, b.async_message(async_event=1, param3=5, statsn=9, expcmdsn=7, maxcmdsn=22, **kwd)),
        (T2I, b.reject(reason=4, rejected_header=rejected, statsn=10, expcmdsn=7, maxcmdsn=22, **kwd)),
        (I2T, b.pdu(b.bhs(0x1C, itt=8), data=b"vendor", header_digest=h, data_digest=d)),
        (T2I, b.pdu(b.bhs(0x3C, itt=8), data=b"vendor", header_digest=h, data_digest=d)),
        # logout
        (I2T, b.logout_request(reason=0, itt=9, cmdsn=7, expstatsn=11, **kw)),
        (T2I, b.logout_response(itt=9, statsn=11, expcmdsn=8, maxcmdsn=23, time2wait=2, time2retain=20,
                                **kw)),
    ]
    return [Msg(direction, wire, h, d) for direction, wire in msgs]


def conversation(*, digests: bool = False) -> list[Msg]:
    return login_phase(digests=digests) + ffp(digests=digests)


def runs(msgs: Sequence[Msg]) -> list[tuple[str, list[Msg]]]:
    """Consecutive messages of one direction, merged (a chunk may hold several of their PDUs)."""
    out: list[tuple[str, list[Msg]]] = []
    for m in msgs:
        if out and out[-1][0] == m.direction:
            out[-1][1].append(m)
        else:
            out.append((m.direction, [m]))
    return out


Cutter = Callable[[int, int], list[int]]  # (run index, run length) -> sorted cut offsets inside (0, length)


def one_chunk(_i: int, _n: int) -> list[int]:
    return []


def byte_by_byte(_i: int, n: int) -> list[int]:
    return list(range(1, n))


def random_cuts(seed: int, max_cuts: int = 12) -> Cutter:
    rng = random.Random(seed)

    def cut(_i: int, n: int) -> list[int]:
        k = rng.randint(0, min(max_cuts, n - 1))
        return sorted(rng.sample(range(1, n), k))

    return cut


def framers(digests: DigestState | None = None, *, in_sync: bool = True, **kw: int) -> dict[str, PduFramer]:
    ds = digests if digests is not None else DigestState(known=True)
    return {d: PduFramer(CONN, d, ds, in_sync=in_sync, **kw) for d in (I2T, T2I)}


def feed_msgs(msgs: Sequence[Msg], cutter: Cutter, fr: dict[str, PduFramer] | None = None,
              ) -> tuple[list[Record], list[Pdu]]:
    """Feed a conversation cut into chunks, one frame per chunk; returns (records, expected PDUs)."""
    fr = fr or framers()
    out: list[Record] = []
    expected: list[Pdu] = []
    frame = 0
    for i, (direction, group) in enumerate(runs(msgs)):
        data = b"".join(m.wire for m in group)
        bounds = [0, *cutter(i, len(data)), len(data)]
        first = frame + 1
        for lo, hi in itertools.pairwise(bounds):
            frame += 1
            out += fr[direction].feed(frame, frame * 1000, data[lo:hi])

        def frame_at(off: int, bounds: list[int] = bounds, first: int = first) -> int:
            for k in range(len(bounds) - 1):
                if bounds[k] <= off < bounds[k + 1]:
                    return first + k
            raise AssertionError(off)

        off = 0
        for m in group:
            last = frame_at(off + len(m.wire) - 1)
            expected.append(b.decode_wire(m.wire, header_digest=m.hd, data_digest=m.dd, frame=last,
                                          ts_ns=last * 1000, conn=CONN, direction=direction,
                                          first_frame=frame_at(off)))
            off += len(m.wire)
    for d in (I2T, T2I):
        out += fr[d].finish(frame + 1, (frame + 1) * 1000)
    return out, expected


def strip_frames(recs: Iterable[Record]) -> list[tuple[type, tuple[object, ...]]]:
    """Every field except frame/ts_ns/first_frame, for comparing feeds cut differently."""
    skip = ("frame", "ts_ns", "first_frame")
    return [(type(r), tuple((f.name, getattr(r, f.name)) for f in dataclasses.fields(r)
                            if f.name not in skip)) for r in recs]


# --------------------------------------------------------------------------- 1. split-feed invariant


@pytest.mark.parametrize("digests", [False, True], ids=["plain", "digests"])
@pytest.mark.parametrize("cutter", [one_chunk, byte_by_byte, random_cuts(1), random_cuts(2, 200)],
                         ids=["one_chunk", "byte_by_byte", "random1", "random2"])
def test_split_feed_gives_the_pdus_with_their_frames(digests: bool, cutter: Cutter) -> None:
    msgs = conversation(digests=digests)
    out, expected = feed_msgs(msgs, cutter)
    assert out == expected
    # sanity: the conversation exercises every opcode family
    kinds = {type(r).__name__ for r in out}
    assert {"LoginRequest", "LoginResponse", "TextRequest", "TextResponse", "ScsiCommand", "DataIn", "DataOut",
            "R2T", "ScsiResponse", "NopOut", "NopIn", "TaskMgmtRequest", "TaskMgmtResponse", "Snack",
            "AsyncMessage", "Reject", "UnknownPdu", "LogoutRequest", "LogoutResponse"} <= kinds


def test_split_feed_records_identical_without_frames() -> None:
    msgs = conversation(digests=True)
    whole, _ = feed_msgs(msgs, one_chunk)
    bytewise, _ = feed_msgs(msgs, byte_by_byte)
    assert strip_frames(whole) == strip_frames(bytewise)
    assert [r.frame for r in whole] != [r.frame for r in bytewise]  # frames did follow the chunks


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), digests=st.booleans())
def test_split_feed_hypothesis(data: st.DataObject, digests: bool) -> None:
    msgs = conversation(digests=digests)

    def cutter(_i: int, n: int) -> list[int]:
        cuts = data.draw(st.lists(st.integers(1, n - 1), max_size=16, unique=True)) if n > 1 else []
        return sorted(cuts)

    out, expected = feed_msgs(msgs, cutter)
    assert out == expected


# --------------------------------------------------------------------------- 2. digests negotiated by login


def test_login_switches_digests_on_after_final_response() -> None:
    ds = DigestState(known=True)
    fr = framers(ds)
    login = login_phase(digests=True)
    out, expected = feed_msgs(login, random_cuts(5), fr)
    assert out == expected
    assert all(r.header_digest is None and r.data_digest is None for r in out if isinstance(r, Pdu))
    assert (ds.header, ds.data) == (True, True)
    out, expected = feed_msgs(ffp(digests=True), random_cuts(6), fr)
    assert out == expected
    assert all(r.header_digest == "ok" for r in out if isinstance(r, Pdu))
    assert {r.direction for r in out} == {I2T, T2I}
    assert all(r.data_digest == ("ok" if r.dsl else None) for r in out if isinstance(r, Pdu))


def test_digests_stay_off_until_the_final_login_response() -> None:
    ds = DigestState(known=True)
    fr = framers(ds)
    login = login_phase(digests=True)
    # Everything up to (not including) the final Login Response: the keys are settled, not in force.
    feed_msgs(login[:-1], one_chunk, fr)
    assert (ds.header, ds.data) == (False, False)
    feed_msgs(login[-1:], one_chunk, fr)
    assert (ds.header, ds.data) == (True, True)


@pytest.mark.parametrize("status_class,transit,nsg", [(2, True, 3), (0, False, 3), (0, True, 1)],
                         ids=["rejected", "not_transit", "nsg_operational"])
def test_non_final_login_response_does_not_switch_digests(status_class: int, transit: bool, nsg: int) -> None:
    ds = DigestState(known=True)
    fr = framers(ds)
    msgs = [Msg(I2T, b.login_request(csg=1, nsg=3, keys=[("HeaderDigest", "CRC32C"),
                                                          ("DataDigest", "CRC32C")])),
            Msg(T2I, b.login_response(csg=1, nsg=nsg, transit=transit, status_class=status_class,
                                      keys=[("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C")]))]
    out, expected = feed_msgs(msgs, one_chunk, fr)
    assert out == expected
    assert (ds.header, ds.data) == (False, False)


def test_bad_digests_are_reported_and_framing_continues() -> None:
    ds = DigestState(known=True)
    fr = framers(ds)
    feed_msgs(login_phase(digests=True), one_chunk, fr)
    kwd = {"header_digest": True, "data_digest": True}
    msgs = [
        Msg(I2T, b.pdu(b.bhs(0x00, immediate=True, byte1=0x80, itt=1, w20=0xFFFFFFFF), data=b"abc",
                       bad_header_digest=True, **kwd), True, True),
        Msg(I2T, b.pdu(b.bhs(0x00, immediate=True, byte1=0x80, itt=2, w20=0xFFFFFFFF), data=b"abcd",
                       bad_data_digest=True, **kwd), True, True),
        Msg(T2I, b.pdu(b.bhs(0x25, byte1=0x80, itt=3, w20=0xFFFFFFFF), data=bytes(3000), bad_data_digest=True,
                       **kwd), True, True),
        Msg(T2I, b.pdu(b.bhs(0x25, byte1=0x80, itt=3, w20=0xFFFFFFFF, w36=1), data=bytes(3000),
                       bad_header_digest=True, bad_data_digest=True, **kwd), True, True),
        Msg(I2T, b.nop_out(itt=4, **kwd), True, True),
        Msg(T2I, b.nop_in(itt=4, data=b"x", **kwd), True, True),
    ]
    out, expected = feed_msgs(msgs, random_cuts(9), fr)
    assert out == expected
    got = [(r.itt, r.header_digest, r.data_digest) for r in out if isinstance(r, Pdu)]
    assert got == [(1, "bad", "ok"), (2, "ok", "bad"), (3, "ok", "bad"), (3, "bad", "bad"), (4, "ok", None),
                   (4, "ok", "ok")]


# --------------------------------------------------------------------------- 3. digest detection


@pytest.mark.parametrize("digests", [True, False], ids=["on", "off"])
@pytest.mark.parametrize("cutter", [one_chunk, byte_by_byte, random_cuts(3)], ids=["one", "bytes", "random"])
def test_digest_detection_without_login(digests: bool, cutter: Cutter) -> None:
    ds = DigestState(known=False)
    fr = framers(ds, in_sync=False)
    out, expected = feed_msgs(ffp(digests=digests), cutter, fr)
    assert not [r for r in out if isinstance(r, FramingResync)]
    # The first PDU with data waits for 4 more bytes of its stream to tell whether a data digest
    # follows, so records may come out of order across the two directions; within one they may not.
    assert by_direction(out) == by_direction(expected)
    assert (ds.header, ds.data) == (digests, digests)
    if digests:
        assert all(r.header_digest == "ok" for r in out if isinstance(r, Pdu))
        assert any(r.data_digest == "ok" for r in out if isinstance(r, Pdu))


def by_direction(recs: Iterable[Record]) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = {I2T: [], T2I: []}
    for r in recs:
        out[r.direction].append(r)
    return out


def test_detection_first_data_pdu_last_in_stream() -> None:
    """Data digest unknown and the stream ends right after a PDU's data: the PDU is still reported
    (at the frame of its last byte), and nothing is left unframed."""
    ds = DigestState(known=False)
    fr = framers(ds, in_sync=False)
    msgs = [Msg(T2I, b.nop_in(itt=1)), Msg(T2I, b.data_in(itt=2, data=b"\x01" * 600))]
    out, expected = feed_msgs(msgs, byte_by_byte, fr)
    assert out == expected


# --------------------------------------------------------------------------- 4. gaps


def feed_items(fr: PduFramer, items: Sequence[tuple[str, bytes | int]], start_frame: int = 1) -> list[Record]:
    """Feed ("data", bytes) / ("gap", length) items, one frame each; then finish."""
    out: list[Record] = []
    frame = start_frame - 1
    for kind, v in items:
        frame += 1
        if kind == "data":
            assert isinstance(v, bytes)
            out += fr.feed(frame, frame * 1000, v)
        else:
            assert isinstance(v, int)
            out += fr.gap(frame, frame * 1000, v)
    return out + fr.finish(frame + 1, (frame + 1) * 1000)


@pytest.mark.parametrize("digests", [False, True], ids=["plain", "digests"])
@pytest.mark.parametrize("gap_len", [1, 100, 6192], ids=["1", "100", "all_remaining"])
def test_gap_inside_skipped_data_keeps_framing(digests: bool, gap_len: int) -> None:
    ds = DigestState(known=True)
    ds.header = ds.data = digests
    fr = PduFramer(CONN, T2I, ds)
    a = b.data_in(itt=1, data=bytes(8192), header_digest=digests, data_digest=digests)
    nxt = b.nop_in(itt=2, statsn=5, header_digest=digests, data_digest=digests)
    hdr = 48 + (4 if digests else 0)
    cut = hdr + 2000
    tail = a[cut + gap_len:]
    out = feed_items(fr, [("data", a[:cut]), ("gap", gap_len), ("data", tail), ("data", nxt)])
    assert not [r for r in out if isinstance(r, (FramingResync, MalformedPdu))]
    assert [type(r) for r in out] == [DataIn, NopIn]
    din, nop = out
    assert isinstance(din, DataIn) and din.dsl == 8192 and din.first_frame == 1
    # the Data-In ends in the frame after the gap; when the hole took the rest of it, at the frame
    # of its last captured byte (not the gap's frame, which may be an ACK of the other direction)
    assert din.frame == (3 if tail else 1)
    assert din.header_digest == ("ok" if digests else None)
    assert din.data_digest is None  # cannot be checked over missing bytes
    assert nop == b.decode_wire(nxt, header_digest=digests, data_digest=digests, frame=4, ts_ns=4000,
                                conn=CONN, direction=T2I, first_frame=4)


@pytest.mark.parametrize("direction", [I2T, T2I])
def test_gap_covering_a_header_resyncs(direction: str) -> None:
    fr = PduFramer(CONN, direction, DigestState(known=True))
    if direction == I2T:
        pdus = [b.scsi_command(cdb=READ10, itt=i, read=True, edtl=4096, cmdsn=i) for i in range(1, 3)] + [
            b.data_out(itt=3, data=bytes(2000)), b.nop_out(itt=4), b.scsi_command(cdb=TUR, itt=5, cmdsn=5)]
    else:
        pdus = [b.data_in(itt=1, data=bytes(100)), b.scsi_response(itt=1, statsn=1),
                b.data_in(itt=3, data=bytes(2000)), b.nop_in(itt=4), b.r2t(itt=5)]
    a, bb, c, d, e = pdus
    items: list[tuple[str, bytes | int]] = [
        ("data", a + bb[:10]),  # the start of B is captured ...
        ("gap", len(bb) - 10 + 20),  # ... its rest and the start of C are not
        ("data", c[20:]),  # the captured tail of C cannot be framed
        ("data", d + e),
    ]
    out = feed_items(fr, items)
    rs = [r for r in out if isinstance(r, FramingResync)]
    assert len(rs) == 1
    assert (rs[0].reason, rs[0].found, rs[0].skipped) == ("gap", True, 10 + len(c) - 20)
    assert rs[0].direction == direction
    pdus_out = [r for r in out if isinstance(r, Pdu)]
    assert pdus_out == [
        b.decode_wire(a, frame=1, ts_ns=1000, conn=CONN, direction=direction),
        b.decode_wire(d, frame=4, ts_ns=4000, conn=CONN, direction=direction),
        b.decode_wire(e, frame=4, ts_ns=4000, conn=CONN, direction=direction),
    ]
    assert out.index(rs[0]) == 1  # reported before the PDUs it found


def test_pdu_cut_by_a_gap_is_reported_at_its_last_captured_byte() -> None:
    fr = PduFramer(CONN, T2I, DigestState(known=True))
    a, c = b.data_in(itt=1, data=bytes(4000)), b.nop_in(itt=2)
    out = feed_items(fr, [("data", a[:1000]), ("data", a[1000:2000]), ("gap", 5000), ("data", c)])
    assert [type(r) for r in out] == [DataIn, FramingResync, NopIn]
    din, rs, nop = out
    assert isinstance(din, DataIn) and (din.first_frame, din.frame, din.dsl) == (1, 2, 4000)
    assert isinstance(rs, FramingResync) and (rs.reason, rs.found, rs.skipped) == ("gap", True, 0)
    assert nop.frame == 4


def test_gap_at_a_pdu_boundary_reports_resync_with_nothing_skipped() -> None:
    fr = PduFramer(CONN, T2I, DigestState(known=True))
    a, c, d = b.nop_in(itt=1), b.r2t(itt=3), b.nop_in(itt=4)
    out = feed_items(fr, [("data", a), ("gap", 48), ("data", c + d)])
    assert [type(r) for r in out] == [NopIn, FramingResync, type(b.decode_wire(c, direction=T2I)), NopIn]
    rs = out[1]
    assert isinstance(rs, FramingResync) and (rs.reason, rs.found, rs.skipped) == ("gap", True, 0)


def test_gap_then_stream_end_reports_unframed_bytes() -> None:
    fr = PduFramer(CONN, I2T, DigestState(known=True))
    out = feed_items(fr, [("data", b.nop_out(itt=1)), ("gap", 100), ("data", b"\x07" * 30)])
    rs = [r for r in out if isinstance(r, FramingResync)]
    assert len(rs) == 1 and (rs[0].reason, rs[0].found, rs[0].skipped) == ("gap", False, 30)


def test_last_pdu_after_a_gap_is_not_lost_at_stream_end() -> None:
    """After a gap, a candidate waiting for the next header to confirm it must still be reported
    when the stream ends with exactly that PDU (e.g. the final Logout Response)."""
    fr = PduFramer(CONN, T2I, DigestState(known=True))
    last = b.logout_response(itt=9, statsn=11)
    out = feed_items(fr, [("data", b.nop_in(itt=1)), ("gap", 100), ("data", last)])
    assert [type(r).__name__ for r in out] == ["NopIn", "FramingResync", "LogoutResponse"]
    rs = out[1]
    assert isinstance(rs, FramingResync) and (rs.reason, rs.found, rs.skipped) == ("gap", True, 0)
    assert out[2] == b.decode_wire(last, frame=3, ts_ns=3000, conn=CONN, direction=T2I)


# --------------------------------------------------------------------------- 5. garbage prefix / mid-stream


def stream_for(direction: str, *, digests: bool = False) -> list[bytes]:
    return [m.wire for m in ffp(digests=digests) if m.direction == direction]


@pytest.mark.parametrize("direction", [I2T, T2I])
@pytest.mark.parametrize("digests", [False, True], ids=["plain", "digests"])
@pytest.mark.parametrize("seed", range(12))
def test_garbage_prefix_resyncs_to_first_pdu(direction: str, digests: bool, seed: int) -> None:
    rng = random.Random(seed)
    garbage = rng.randbytes(rng.randint(1, 3000))
    pdus = stream_for(direction, digests=digests)
    fr = PduFramer(CONN, direction, DigestState(known=False), in_sync=False)
    stream = garbage + b"".join(pdus)
    out: list[Record] = []
    bounds = [0, *sorted(rng.sample(range(1, len(stream)), 30)), len(stream)]
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        out += fr.feed(i + 1, 0, stream[lo:hi])
    out += fr.finish(999, 0)
    rs = [r for r in out if isinstance(r, FramingResync)]
    assert [(r.reason, r.found, r.skipped) for r in rs] == [("mid_stream", True, len(garbage))]
    assert out[0] is rs[0]
    assert strip_frames(out[1:]) == strip_frames(
        b.decode_wire(p, header_digest=digests, data_digest=digests, conn=CONN, direction=direction)
        for p in pdus)


@pytest.mark.parametrize("direction", [I2T, T2I])
@pytest.mark.parametrize("known", [False, True], ids=["detect", "known"])
def test_zero_filled_data_gives_no_false_pdus(direction: str, known: bool) -> None:
    """Mid-stream start inside 64 KiB of zeros (a disk read's payload), then real PDUs."""
    zeros = bytes(65536)
    pdus = stream_for(direction)
    fr = PduFramer(CONN, direction, DigestState(known=known), in_sync=False)
    out = feed_items(fr, [("data", zeros[i:i + 1448]) for i in range(0, len(zeros), 1448)]
                     + [("data", b"".join(pdus))])
    rs = [r for r in out if isinstance(r, FramingResync)]
    assert [(r.reason, r.found, r.skipped) for r in rs] == [("mid_stream", True, 65536)]
    assert strip_frames(r for r in out if not isinstance(r, FramingResync)) == strip_frames(
        b.decode_wire(p, conn=CONN, direction=direction) for p in pdus)


@pytest.mark.parametrize("direction", [I2T, T2I])
def test_gap_into_zero_payload_gives_no_false_pdus(direction: str) -> None:
    fr = PduFramer(CONN, direction, DigestState(known=True))
    first = b.nop_out(itt=1) if direction == I2T else b.nop_in(itt=1)
    pdus = stream_for(direction)
    out = feed_items(fr, [("data", first), ("gap", 5000), ("data", bytes(65536)), ("data", b"".join(pdus))])
    rs = [r for r in out if isinstance(r, FramingResync)]
    assert [(r.reason, r.found, r.skipped) for r in rs] == [("gap", True, 65536)]
    assert strip_frames(r for r in out if not isinstance(r, FramingResync)) == strip_frames(
        b.decode_wire(p, conn=CONN, direction=direction) for p in [first, *pdus])


# --------------------------------------------------------------------------- 6. huge data segment


@pytest.mark.parametrize("digests", [False, True], ids=["plain", "digests"])
def test_16mib_data_segment_is_skipped_not_buffered(digests: bool) -> None:
    ds = DigestState(known=True)
    ds.header = ds.data = digests
    fr = PduFramer(CONN, T2I, ds)
    dsl = (1 << 24) - 1
    header = b.pdu(b.bhs(0x25, byte1=0x80, itt=1, w20=0xFFFFFFFF), header_digest=digests)
    header = header[:5] + dsl.to_bytes(3, "big") + header[8:]
    if digests:  # the header digest covers the patched length
        header = header[:48] + b.digest_bytes(header[:48])
    chunk = bytes(65536)
    padded = dsl + 1
    nxt = b.nop_in(itt=2, statsn=9, header_digest=digests)
    tail = bytes(padded % 65536) + (bytes(4) if digests else b"")  # (bytes(4): a wrong data digest)
    out: list[Record] = []
    tracemalloc.start()
    try:
        out += fr.feed(1, 1000, header)
        for i in range(padded // 65536):
            out += fr.feed(2 + i, 0, chunk)
        out += fr.feed(1000, 0, tail + nxt)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024, f"framer buffered {peak} bytes"
    assert [type(r) for r in out] == [DataIn, NopIn]
    assert out[0].dsl == dsl and out[0].first_frame == 1
    assert out[0].frame == (1000 if tail else 1 + padded // 65536)  # the frame of its last byte
    if digests:
        assert (out[0].header_digest, out[0].data_digest) == ("ok", "bad")
    assert out[1] == b.decode_wire(nxt, header_digest=digests, frame=1000, ts_ns=0, conn=CONN, direction=T2I)


# --------------------------------------------------------------------------- 7. implausible header in sync


@pytest.mark.parametrize("direction,bad_opcode", [(T2I, 0x3B), (T2I, 0x01), (I2T, 0x21), (I2T, 0x3B)])
def test_implausible_header_in_sync_resyncs(direction: str, bad_opcode: int) -> None:
    fr = PduFramer(CONN, direction, DigestState(known=True))
    pdus = stream_for(direction)
    bogus = bytes([bad_opcode]) + bytes(47)
    out = feed_items(fr, [("data", pdus[0]), ("data", bogus + b"".join(pdus[1:]))])
    rs = [r for r in out if isinstance(r, FramingResync)]
    assert [(r.reason, r.found, r.skipped) for r in rs] == [("implausible_header", True, 48)]
    assert strip_frames(r for r in out if isinstance(r, Pdu)) == strip_frames(
        b.decode_wire(p, conn=CONN, direction=direction) for p in pdus)


def test_vendor_opcode_in_sync_is_framed_not_resynced() -> None:
    fr = PduFramer(CONN, T2I, DigestState(known=True))
    out = feed_items(fr, [("data", b.vendor_pdu(0x3D, data=b"abcdef") + b.nop_in(itt=3))])
    assert [type(r) for r in out] == [UnknownPdu, NopIn]


# --------------------------------------------------------------------------- 8. garbage never raises


_VALID = [m.wire for m in conversation(digests=False)] + [m.wire for m in ffp(digests=True, big=512)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    known=st.booleans(),
    in_sync=st.booleans(),
    items=st.lists(
        st.tuples(
            st.sampled_from([I2T, T2I]),
            st.one_of(
                st.binary(max_size=300),
                st.sampled_from(_VALID),
                st.tuples(st.sampled_from(_VALID), st.integers(0, 600), st.integers(0, 600)).map(
                    lambda t: t[0][t[1]:t[1] + t[2]]),
                st.integers(0, 5000),  # a gap
            ),
        ),
        max_size=40,
    ),
)
def test_arbitrary_input_yields_only_records(known: bool, in_sync: bool,
                                              items: list[tuple[str, bytes | int]]) -> None:
    fr = framers(DigestState(known=known), in_sync=in_sync)
    out: list[object] = []
    for frame, (direction, v) in enumerate(items, 1):
        if isinstance(v, int):
            out += fr[direction].gap(frame, frame, v)
        else:
            out += fr[direction].feed(frame, frame, v)
    for d in (I2T, T2I):
        out += fr[d].finish(len(items) + 1, 0)
    assert all(isinstance(r, Record) for r in out)
    for r in out:
        if isinstance(r, FramingResync):
            assert r.skipped >= 0
        if isinstance(r, (Pdu, MalformedPdu)):
            assert 1 <= r.first_frame <= r.frame <= len(items) + 1


# --------------------------------------------------------------------------- 9. keys across segments


@pytest.mark.parametrize("seg", [1, 7, 100, 1448])
def test_text_and_login_keys_split_across_segments(seg: int) -> None:
    keys = [("InitiatorName", "iqn.2024-01.org.example:" + "x" * 200), ("SessionType", "Normal"),
            ("AuthMethod", "CHAP,None")] + [(f"X-com.example.key{i}", "v" * (i % 50)) for i in range(120)]
    msgs = [Msg(I2T, b.login_request(csg=0, nsg=1, keys=keys)),
            Msg(T2I, b.login_response(csg=0, nsg=1, keys=keys[:60])),
            Msg(I2T, b.login_request(csg=1, nsg=3)),
            Msg(T2I, b.login_response(csg=1, nsg=3)),
            Msg(I2T, b.text_request(keys=keys)),
            Msg(T2I, b.text_response(keys=keys))]

    def cutter(_i: int, n: int) -> list[int]:
        return list(range(seg, n, seg))

    out, expected = feed_msgs(msgs, cutter)
    assert out == expected
    keyed = [r for r in out if isinstance(r, (LoginRequest, LoginResponse, TextRequest, TextResponse))]
    assert [r.keys for r in keyed] == [tuple(keys), tuple(keys[:60]), (), (), tuple(keys), tuple(keys)]
    if seg < 100:
        assert all(r.first_frame < r.frame for r in keyed if r.keys)


# --------------------------------------------------------------------------- mid-stream (issue: captures
# that start, stop or wander mid-protocol)


def test_resync_accepts_extended_cdb_ahs_of_47_words() -> None:
    """RFC 7143 §11.2.1.2: TotalAHSLength up to 255 words; an OSD command's Extended CDB AHS is 47
    words. Resynchronisation takes it as a candidate (it used to stop at 16 words and lose every
    PDU up to the next ordinary header)."""
    cdb = bytes([0x7F]) + bytes(199)  # a 200-byte variable-length CDB: AHS 3 + 1 + 184 bytes = 47 words
    osd = b.scsi_command(cdb=cdb, itt=7, cmdsn=5, edtl=0)
    assert osd[4] == 47
    big = b.scsi_command(cdb=bytes([0x7F]) + bytes(1031), itt=8, cmdsn=6)
    assert big[4] == 255
    tail = b.nop_out(itt=9, cmdsn=7)
    fr = PduFramer(CONN, I2T, DigestState(known=True), in_sync=False)
    out = fr.feed(1, 0, b"\x00\x11garbage" + osd)
    out += fr.feed(2, 0, big)
    out += fr.feed(3, 0, tail)
    out += fr.finish(3, 0)
    assert [(type(r).__name__, getattr(r, "itt", None)) for r in out if not isinstance(r, FramingResync)] == [
        ("ScsiCommand", 7), ("ScsiCommand", 8), ("NopOut", 9)]


def test_resync_rejects_malformed_ahs() -> None:
    """A candidate SCSI Command whose AHS segments do not fill TotalAHSLength exactly is refused."""
    good = b.scsi_command(cdb=bytes([0x7F]) + bytes(31), itt=1)
    bad = bytearray(good)
    bad[48 + 2] = 9  # AHSType 9 does not exist (§11.2.2)
    fr = PduFramer(CONN, I2T, DigestState(known=True), in_sync=False)
    out = fr.feed(1, 0, bytes(bad) + b.nop_out(itt=2) + b.nop_out(itt=3))
    out += fr.finish(1, 0)
    assert [getattr(r, "itt", None) for r in out if not isinstance(r, FramingResync)] == [2, 3]


def test_pending_frame_marks_records_still_to_come_for_earlier_frames() -> None:
    """What the pipeline orders records by: a framer holding a resync candidate, or in the middle of
    a PDU that a later gap may cut short, may still emit a record for an earlier frame."""
    fr = PduFramer(CONN, T2I, DigestState(known=True), in_sync=False)
    assert fr.pending_frame() is None
    first = b.nop_in(itt=1, statsn=1)
    fr.feed(5, 0, first)  # a candidate: held until the next header confirms it
    assert fr.pending_frame() == 5
    data_in = b.data_in(itt=2, data=bytes(4000))
    out = fr.feed(6, 0, data_in[:1000])  # confirms the first; the Data-In is in progress
    assert [r.frame for r in out if not isinstance(r, FramingResync)] == [5]
    assert fr.pending_frame() == 6
    out = fr.gap(7, 0, 5000)  # cut short (the hole runs past it): reported at the frame of its last byte
    assert [r.frame for r in out] == [6]


def test_mid_stream_last_pdu_ending_with_the_stream_is_framed() -> None:
    """Issue item 3: a stream that starts with its last PDU (a cut capture: the Logout Response, then
    FIN) - the PDU ends exactly where the stream does, so it is framed, digests unknown or not."""
    fr = PduFramer(CONN, T2I, DigestState(known=False), in_sync=False)
    out = fr.feed(1, 0, b.logout_response(itt=2, statsn=1)) + fr.finish(2, 0)
    assert [type(r).__name__ for r in out] == ["LogoutResponse"]
