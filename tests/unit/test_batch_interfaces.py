"""The narrow interfaces batch stitching uses (framer/reassembler state images, snapshot and
graft, renumbering without mutation) and how files are chained (analyzer/batch/inputs)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from analyzer.batch.inputs import FileInfo, continues_tcp, group_chains, probe_file
from analyzer.batch.stitch import Renumber
from analyzer.iscsi.framing import DigestState, PduFramer
from analyzer.records import I2T, TcpGap
from analyzer.tcp.reassembly import Flow, HalfStream, TcpReassembler

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_pcaps"

#: What ``PduFramer.state_image`` reads (in some mode). A new framer field must be added here
#: or to ``PduFramer.NOT_STATE`` once it is placed in the image (else stitching may be wrong).
FRAMER_IMAGE_FIELDS = {
    "conn", "direction", "max_dsl", "mode", "hbuf", "need", "dbuf", "rbuf", "rmarks", "cut_seen", "skipped",
    "resync_reason", "data_end", "dbuf_start", "keep", "data_crc", "data_complete", "dsl", "hd_status",
    "data_left", "last_frame", "last_ts", "cur_hd", "cur_dd", "first_frame", "first_ts", "text_carry", "skip_from",
}


def test_every_framer_field_is_classified() -> None:
    f = PduFramer("c", I2T, DigestState(known=True))
    assert set(vars(f)) == FRAMER_IMAGE_FIELDS | PduFramer.NOT_STATE
    src = (ROOT / "analyzer/iscsi/framing.py").read_text()
    body = src[src.index("def state_image"):src.index("NOT_STATE: Final")]
    assert set(re.findall(r"self\.(\w+)", body)) == FRAMER_IMAGE_FIELDS


def test_every_flow_field_is_classified() -> None:
    src = (ROOT / "analyzer/tcp/reassembly.py").read_text()
    body = src[src.index("def unit_image"):src.index("def unit_snapshot")]
    half = src[src.index("def _half_image"):]
    half = half[:half.index("\n\n\n")]
    read = set(re.findall(r"flow\.(\w+)", body)) | set(re.findall(r"\bh\.(\w+)", body + half))
    # left out on purpose: last_ts (eviction order, kept out of reach), sink (the consumer)
    assert set(Flow.__slots__) - read == {"last_ts"}
    assert set(HalfStream.__slots__) - read == {"sink"}


def test_state_image_follows_the_bytes() -> None:
    a = PduFramer("c", I2T, DigestState(known=True))
    b = PduFramer("c", I2T, DigestState(known=True))
    nop = bytes([0x40, 0x80]) + bytes(46)
    a.feed(1, 1, nop[:20])
    assert a.state_image() != b.state_image()
    b.feed(1, 1, nop[:20])
    assert a.state_image() == b.state_image()
    a.feed(2, 2, nop[20:])
    b.feed(2, 2, nop[20:])
    assert a.state_image() == b.state_image()


def test_graft_moves_a_unit_between_reassemblers() -> None:
    cli, srv = b"\x0a\0\0\x01", b"\x0a\0\0\x02"
    segs = [(1, cli, srv, 40000, 3260, 100, 0, 0x02, b""), (2, srv, cli, 3260, 40000, 500, 101, 0x12, b""),
            (3, cli, srv, 40000, 3260, 101, 501, 0x18, b"x" * 10), (4, cli, srv, 40000, 3260, 121, 501, 0x18, b"y" * 5)]
    a, b = TcpReassembler(), TcpReassembler()
    for fr, s, d, sp, dp, seq, ack, fl, pl in segs:
        a.feed_segment(fr, fr, s, d, sp, dp, seq, ack, fl, 1000, pl)
    keys = ((cli, 40000, srv, 3260), (srv, 3260, cli, 40000))
    snap = a.unit_snapshot(keys, a.flow_positions())
    b.graft({k: e for k, e, _pos in snap.flows}, dict(snap.reuse), a.segments)
    assert b.unit_image(keys) == a.unit_image(keys)
    assert b.total_ooo_bytes == a.total_ooo_bytes == 5 and b.segments == 4


def test_renumber_makes_new_records() -> None:
    ren = Renumber()
    ren.offsets[:] = [0, 10, 30]
    r = TcpGap((2 << 32) | 5, 7, "c", I2T, 1, 2)
    g = ren(r)
    assert g is not r and g.frame == 35 and r.frame == (2 << 32) | 5
    assert dataclasses.replace(g, frame=r.frame) == r
    plain = TcpGap(5, 7, "c", I2T, 1, 2)
    assert ren(plain) is plain


def _info(path: str, first: int, last: int, head: dict, tail: dict) -> FileInfo:
    return FileInfo(path, first_ts_ns=first, last_ts_ns=last, frames=1, linktypes=(1,), tcp_head=head, tcp_tail=tail)


def test_tcp_continuation() -> None:
    k = (b"\x0a\0\0\x01", 40000, b"\x0a\0\0\x02", 3260)
    j = (b"\x0a\0\0\x02", 3260, b"\x0a\0\0\x01", 40000)
    a = _info("/d/a.pcap", 1, 10, {k: 1}, {k: 5000, j: 0xFFFFFFF0})
    b = _info("/d/b.pcap", 11, 20, {k: 5000, j: 0x10}, {})  # j wraps around 2**32: still continues
    c = _info("/d/c.pcap", 11, 20, {k: 5000, j: 0x7000_0000}, {})  # one shared direction does not continue
    d = _info("/d/d.pcap", 11, 20, {}, {})  # nothing shared
    assert continues_tcp(a, b) and not continues_tcp(a, c) and not continues_tcp(a, d)
    assert [len(ch.files) for ch in group_chains([a, b])] == [2]
    assert group_chains([a, b])[0].how == "tcp"
    assert [len(ch.files) for ch in group_chains([a, b], chain_by="name")] == [1, 1]
    assert [len(ch.files) for ch in group_chains([a, c])] == [1, 1]


def test_unrelated_captures_are_separate_chains() -> None:
    """The interfaces issue: admin_drop and header_digest were stitched by time into one chain."""
    files = [SAMPLES / "admin_drop.pcap", SAMPLES / "header_digest.pcap"]
    if not all(f.exists() for f in files):
        pytest.skip("sample captures missing")
    for how in ("tcp", "name", "none"):
        chains = group_chains([probe_file(str(f), how) for f in files], chain_by=how)
        assert sorted(c.id for c in chains) == ["admin_drop", "header_digest"], how
        assert all(c.how == "single" for c in chains)


def test_ring_names_chain_only_by_name() -> None:
    infos = [FileInfo(f"/d/ring_{n:05d}_20250101120000.pcap", first_ts_ns=n, ring=("/d", "ring.pcap", n))
             for n in (2, 1, 3)]
    (c,) = group_chains(infos, chain_by="name")
    assert c.how == "ring" and [f.ring[2] for f in c.files if f.ring] == [1, 2, 3]
    with pytest.raises(ValueError):
        group_chains(infos, chain_by="time")
