"""analyzer.capture.files: pcap / pcapng / gzip readers, damage handling, iter_tcp.

Captures are built in memory (capture_builders); only the file-reader tests use tmp_path.
The cross-checks against tshark on the real captures are skipped without tshark or
without /work/shared/real_pcaps.
"""

from __future__ import annotations

import gzip
import io
import os
import random
import shutil
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from capture_builders import (
    IP4_A,
    IP4_B,
    custom,
    epb,
    ethernet,
    idb,
    ipv4,
    ipv6,
    isb,
    nrb,
    null,
    pb,
    pcap,
    shb,
    sll,
    sll2,
    spb,
    tcp,
)
from capture_builders import block as pcapng_block
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.capture import CaptureError, CaptureReader, decode_frame, files, iter_tcp, open_capture
from analyzer.records import CaptureDamage, CaptureStats

T0 = 1_700_000_000_123_456_789  # ns since the epoch
REAL = Path(__file__).resolve().parents[3] / "shared" / "real_pcaps"
if not REAL.is_dir():
    REAL = Path("/work/shared/real_pcaps")
HAVE_TSHARK = shutil.which("tshark") is not None


def eth_tcp(i: int, payload: bytes = b"") -> bytes:
    return ethernet(ipv4(tcp(seq=1000 + i, payload=payload or bytes([i % 256]) * (i % 50))))


def frames_of(data: bytes) -> list[tuple[int, int, int, bytes, int]]:
    r = open_capture(io.BytesIO(data))
    return [(n, ts, lt, bytes(d), orig) for n, ts, lt, d, orig in r]


def tcp_of(data: bytes) -> tuple[list[tuple[object, ...]], CaptureReader]:
    r = open_capture(io.BytesIO(data))
    out = [t[:10] + (bytes(t[10]),) for t in iter_tcp(r)]
    return out, r


class Trickle(io.RawIOBase):
    """A non-seekable stream handing out the data in small pieces (like a pipe)."""

    def __init__(self, data: bytes, sizes: Iterator[int]) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._sizes = sizes

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def seek(self, *args: object) -> int:
        raise AssertionError("seek() called on a stream")

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        n = min(len(b), next(self._sizes), len(self._data) - self._pos)
        b[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


# --------------------------------------------------------------------------- pcap


@pytest.mark.parametrize("nsec", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
def test_pcap_variants(nsec: bool, big_endian: bool) -> None:
    recs = [(T0 + i * 1_000_001, eth_tcp(i)) for i in range(5)]
    data = pcap(recs, nsec=nsec, big_endian=big_endian)
    got = frames_of(data)
    assert [g[0] for g in got] == [1, 2, 3, 4, 5]
    for (ts, frame), (_n, gts, lt, gdata, orig) in zip(recs, got, strict=True):
        assert gts == (ts if nsec else ts // 1000 * 1000)
        assert (lt, gdata, orig) == (1, frame, len(frame))
    r = open_capture(io.BytesIO(data))
    assert isinstance(r, files.PcapReader)
    assert (r.nanosecond, r.big_endian, r.linktype, r.snaplen) == (nsec, big_endian, 1, 65535)
    list(r)
    assert (r.frames, r.bytes, r.damage) == (5, sum(len(f) for _, f in recs), [])


def test_pcap_linktype_fcs_bits_masked() -> None:
    data = pcap([(T0, ipv4(tcp()))], linktype=101 | 0x14000000)
    assert frames_of(data)[0][2] == 101


def test_pcap_other_link_type_goes_through_general_path() -> None:
    recs = [(T0, sll(ipv4(tcp(payload=b"abc")))), (T0 + 1000, sll(b"\x00" * 30, protocol=0x0806))]
    out, r = tcp_of(pcap(recs, linktype=113))
    assert len(out) == 1 and out[0][10] == b"abc" and r.non_tcp == 1


def test_empty_pcap_has_no_frames_and_no_damage() -> None:
    r = open_capture(io.BytesIO(pcap([])))
    assert list(r) == [] and r.damage == [] and r.frames == 0


# --------------------------------------------------------------------------- pcapng


def test_pcapng_interfaces_with_own_linktype_and_tsresol() -> None:
    v4 = ipv4(tcp(payload=b"raw"))
    data = b"".join([
        shb(),
        idb(1),  # default resolution 10^-6
        idb(101, tsresol=9),  # 10^-9
        idb(113, tsresol=0x80 | 20, tsoffset=-100),  # 2^-20, offset -100 s
        idb(1, tsresol=3, tsoffset=5),  # 10^-3, offset 5 s
        idb(1, tsresol=12),  # 10^-12 (finer than ns)
        epb(0, 1_700_000_000_123_456, eth_tcp(1)),
        epb(1, 1_700_000_000_123_456_789, v4),
        epb(2, (1_700_000_000 << 20) + (1 << 19), sll(v4)),
        epb(3, 1_700_000_000_123, eth_tcp(3)),
        epb(4, 12_345_678_901_234_567_891, eth_tcp(4)),  # ps: 64 bits cover ~213 days
    ])
    got = frames_of(data)
    assert [(g[0], g[1], g[2]) for g in got] == [
        (1, 1_700_000_000_123_456_000, 1),
        (2, 1_700_000_000_123_456_789, 101),
        (3, (1_700_000_000 - 100) * 10**9 + 500_000_000, 113),
        (4, 1_700_000_005_123_000_000, 1),
        (5, 12_345_678_901_234_567, 1),
    ]
    assert got[1][3] == v4
    r = open_capture(io.BytesIO(data))
    list(r)
    assert r.linktypes == [1, 101, 113, 1, 1] and r.damage == []


def test_pcapng_power_of_two_resolution_floors() -> None:
    data = shb() + idb(1, tsresol=0x80 | 10) + epb(0, 3, eth_tcp(0))  # 3/1024 s
    assert frames_of(data)[0][1] == 3 * 10**9 // 1024


def test_pcapng_spb_uses_previous_timestamp_and_interface_0() -> None:
    f1, f2 = eth_tcp(1), eth_tcp(2, payload=bytes(300))
    data = b"".join([shb(), idb(1, snaplen=100), idb(101), epb(1, 5_000_000, ipv4(tcp())),
                     spb(f1), spb(f2)])
    got = frames_of(data)
    assert [(g[1], g[2]) for g in got] == [(5_000_000_000, 101), (5_000_000_000, 1), (5_000_000_000, 1)]
    assert got[1][3] == f1 and got[1][4] == len(f1)
    assert got[2][3] == f2[:100] and got[2][4] == len(f2)  # clipped to interface 0's snaplen


def test_pcapng_spb_before_any_timestamp() -> None:
    got = frames_of(shb() + idb(1) + spb(eth_tcp(0)))
    assert got[0][:3] == (1, 0, 1)


def test_pcapng_obsolete_packet_block() -> None:
    data = shb() + idb(1, tsresol=9) + pb(0, T0, eth_tcp(7))
    assert frames_of(data) == [(1, T0, 1, eth_tcp(7), len(eth_tcp(7)))]


def test_pcapng_unknown_blocks_skipped() -> None:
    dsb = pcapng_block(0x0000000A, struct.pack("<II", 0x544C534B, 4) + b"keys")
    data = b"".join([shb(), nrb(), idb(1), custom(), epb(0, 1, eth_tcp(0)), isb(), dsb,
                     pcapng_block(0x40000123, b"\x01" * 13), epb(0, 2, eth_tcp(1)), isb()])
    assert [g[0] for g in frames_of(data)] == [1, 2]


def test_pcapng_epb_options_and_padding() -> None:
    opts = struct.pack("<HHI", 2, 4, 1) + struct.pack("<HH", 0, 0)  # epb_flags
    frame = eth_tcp(3)[:61]  # odd length: padded
    got = frames_of(shb() + idb(1) + epb(0, 10, frame, orig_len=70, options=opts))
    assert got == [(1, 10_000, 1, frame, 70)]


def test_pcapng_several_sections_both_byte_orders() -> None:
    data = b"".join([
        shb("<"), idb(1, e="<"), epb(0, 1, eth_tcp(0), e="<"),
        shb(">"), idb(101, tsresol=9, e=">"), epb(0, 2, ipv4(tcp()), e=">"), isb(e=">"),
        shb("<"), idb(113, e="<"), idb(1, e="<"), epb(1, 3, eth_tcp(1), e="<"), epb(0, 4, sll(ipv4(tcp())), e="<"),
    ])
    got = frames_of(data)
    assert [(g[0], g[1], g[2]) for g in got] == [(1, 1000, 1), (2, 2, 101), (3, 3000, 1), (4, 4000, 113)]


def test_pcapng_big_endian_file() -> None:
    data = shb(">") + idb(1, tsresol=9, e=">") + epb(0, T0, eth_tcp(5), e=">") + spb(eth_tcp(6), e=">")
    got = frames_of(data)
    assert [(g[1], g[3]) for g in got] == [(T0, eth_tcp(5)), (T0, eth_tcp(6))]


def test_pcapng_iter_tcp_mixed_interfaces() -> None:
    data = b"".join([shb(), idb(1), idb(101), idb(276),
                     epb(0, 1, eth_tcp(0, payload=b"e")),
                     epb(1, 2, ipv6(tcp(payload=b"r6"))),
                     epb(0, 3, ethernet(b"\x00" * 28, 0x0806)),
                     epb(2, 4, b"\x00" * 20)])
    out, r = tcp_of(data)
    assert [(t[0], t[10]) for t in out] == [(1, b"e"), (2, b"r6")]
    assert r.non_tcp == 2 and r.frames == 4


# --------------------------------------------------------------------------- iter_tcp


def mixed_frames() -> list[bytes]:
    seg = tcp(payload=b"payload!", options=b"\x01\x01\x01\x01")
    return [
        eth_tcp(1, payload=b"fast path"),
        ethernet(ipv4(tcp(payload=b"x")), pad_to=60),  # padding
        ethernet(ipv4(seg, options=b"\x01" * 4)),  # IP options: general path
        ethernet(ipv6(seg), 0x86DD),
        ethernet(ipv4(seg), tags=[(0x8100, 7)]),
        ethernet(ipv4(seg), tags=[(0x88A8, 1), (0x8100, 7)]),
        ethernet(ipv4(seg, frag=0x2000)),  # fragment
        ethernet(ipv4(seg, proto=17)),  # UDP
        ethernet(b"\x00" * 28, 0x0806),  # ARP
        ethernet(ipv4(seg, total_len=0)),  # TSO
        ethernet(ipv4(tcp(flags=0x02))),  # SYN, no payload
        ethernet(ipv4(seg[:12] + b"\x30" + seg[13:])),  # bad data offset
        ethernet(ipv4(seg))[:40],  # cut in the TCP header
        b"\x00" * 10,  # runt
    ]


@pytest.mark.parametrize("container", ["pcap", "pcapng"])
def test_iter_tcp_agrees_with_decode_frame(container: str) -> None:
    frames = mixed_frames()
    if container == "pcap":
        data = pcap([(T0 + i, f) for i, f in enumerate(frames)], nsec=True)
    else:
        data = shb() + idb(1, tsresol=9) + b"".join(epb(0, T0 + i, f) for i, f in enumerate(frames))
    expected = []
    for i, f in enumerate(frames):
        seg = decode_frame(1, f)
        if seg is not None:
            expected.append((i + 1, T0 + i) + seg[:8] + (bytes(seg[8]),))
    out, r = tcp_of(data)
    assert out == expected
    assert len(out) == 8
    assert r.non_tcp == len(frames) - len(out) and r.frames == len(frames)
    assert out[0][2:10] == (IP4_A, IP4_B, 51000, 3260, 1001, 2000, 0x18, 501)


def link(linktype: int, ip: bytes) -> bytes:
    v6 = ip[0] >> 4 == 6
    if linktype == 1:
        return ethernet(ip, 0x86DD if v6 else 0x0800, pad_to=60)
    if linktype == 113:
        return sll(ip, 0x86DD if v6 else 0x0800)
    if linktype == 276:
        return sll2(ip, 0x86DD if v6 else 0x0800)
    if linktype == 0:
        return null(ip, 30 if v6 else 2)
    if linktype == 108:
        return null(ip, 24 if v6 else 2, big_endian=True)
    return ip


@pytest.mark.parametrize("linktype", [0, 1, 12, 14, 101, 108, 113, 228, 276])
@pytest.mark.parametrize("container", ["pcap", "pcapng"])
def test_fast_paths_agree_with_decode_frame(linktype: int, container: str) -> None:
    seg = tcp(payload=b"0123456789")
    ips = [ipv4(seg), ipv4(tcp()), ipv4(tcp(options=b"\x01" * 4)), ipv4(seg, options=b"\x01" * 4),
           ipv4(seg, frag=0x2001), ipv4(seg, proto=17), ipv4(seg, total_len=0), ipv4(seg, total_len=45),
           ipv4(seg)[:50], ipv4(seg[:12] + b"\x40" + seg[13:]), ipv4(seg[:12] + b"\xf0" + seg[13:])]
    if linktype != 228:
        ips += [ipv6(seg), ipv6(tcp())]
    frames = [link(linktype, ip) for ip in ips] + [link(linktype, ips[0])[:30], b"\x45"]
    if linktype == 0:
        frames.append(null(ipv4(seg), 2, big_endian=True))  # a big-endian host's NULL header
    if container == "pcap":
        data = pcap([(T0 + i, f) for i, f in enumerate(frames)], nsec=True, linktype=linktype)
    else:
        data = shb() + idb(1) + idb(linktype, tsresol=9) + b"".join(
            epb(1, T0 + i, f) for i, f in enumerate(frames))
    expected = []
    for i, f in enumerate(frames):
        r = decode_frame(linktype, f)
        if r is not None:
            expected.append((i + 1, T0 + i) + r[:8] + (bytes(r[8]),))
    out, reader = tcp_of(data)
    assert out == expected
    assert len(out) >= 5 and reader.non_tcp == len(frames) - len(out)


def test_snaplen_truncated_frames_clipped_and_counted() -> None:
    full = eth_tcp(0, payload=bytes(range(200)))
    recs = [(T0, full[:100], len(full)), (T0, full), (T0, full[:64], len(full))]
    out, r = tcp_of(pcap(recs, snaplen=100))
    assert [len(t[10]) for t in out] == [46, 200, 10]
    assert out[0][10] == bytes(range(46))
    assert r.truncated == 2 and r.non_tcp == 0
    assert r.stats() == CaptureStats(3, T0 // 1000 * 1000, 3, 100 + len(full) + 64, 0, 2)


def test_frames_counted_when_iteration_stops_early() -> None:
    data = pcap([(T0, eth_tcp(i)) for i in range(10)])
    r = open_capture(io.BytesIO(data))
    it = iter(r)
    next(it)
    next(it)
    r.close()
    assert r.frames == 2


def test_reader_iterates_once_and_closes(tmp_path: Path) -> None:
    path = tmp_path / "a.pcap"
    path.write_bytes(pcap([(T0, eth_tcp(0))]))
    with open_capture(path) as r:
        assert len(list(r)) == 1
        with pytest.raises(ValueError):
            iter(r)
    assert r._closer is None


def test_yielded_views_stay_valid_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "CHUNK_SIZE", 100)
    frames = [eth_tcp(i, payload=bytes([i]) * 77) for i in range(30)]
    r = open_capture(io.BytesIO(pcap([(T0, f) for f in frames])))
    kept = list(iter_tcp(r))
    assert [bytes(t[10]) for t in kept] == [bytes([i]) * 77 for i in range(30)]


# --------------------------------------------------------------------------- streams and chunking


def sample_captures() -> dict[str, bytes]:
    frames = mixed_frames() * 3
    p = pcap([(T0 + i * 7, f) for i, f in enumerate(frames)])
    ng = b"".join([shb(), idb(1), idb(101, tsresol=9), nrb()]
                  + [epb(i % 2, T0 // 1000 + i if i % 2 == 0 else T0 + i, f if i % 2 == 0 else ipv4(tcp(seq=i)))
                     for i, f in enumerate(frames)]  # interface 0 counts µs, interface 1 ns
                  + [isb(), shb(">"), idb(1, e=">"), epb(0, 5, frames[0], e=">"), spb(frames[1], e=">")])
    return {"pcap": p, "pcapng": ng, "pcap.gz": gzip.compress(p), "pcapng.gz": gzip.compress(ng)}


@pytest.mark.parametrize("kind", ["pcap", "pcapng", "pcap.gz", "pcapng.gz"])
@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1000])
def test_split_feed_invariance(kind: str, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    data = sample_captures()[kind]
    whole = frames_of(data)
    whole_tcp, r0 = tcp_of(data)
    monkeypatch.setattr(files, "CHUNK_SIZE", chunk)
    rnd = random.Random(chunk)
    sizes = iter(lambda: rnd.randint(1, 50), None)
    r = open_capture(io.BufferedReader(Trickle(data, sizes), buffer_size=16))
    assert [(n, ts, lt, bytes(d), o) for n, ts, lt, d, o in r] == whole
    assert r.damage == []
    r = open_capture(Trickle(data, iter(lambda: chunk, None)))  # raw stream: read(), no read1()
    assert [t[:10] + (bytes(t[10]),) for t in iter_tcp(r)] == whole_tcp
    assert (r.non_tcp, r.frames, r.damage) == (r0.non_tcp, r0.frames, [])


def test_live_pipe_yields_frames_as_they_arrive() -> None:
    rfd, wfd = os.pipe()
    first = pcap([(T0, eth_tcp(0))])
    second = pcap([(T0 + 1000, eth_tcp(1))])[24:]
    got_first = threading.Event()
    timed_out: list[bool] = []

    def writer() -> None:
        with os.fdopen(wfd, "wb") as w:
            w.write(first)
            w.flush()
            timed_out.append(not got_first.wait(10))
            w.write(second)

    t = threading.Thread(target=writer)
    t.start()
    with os.fdopen(rfd, "rb") as pipe:
        r = open_capture(pipe)
        out = []
        for frame in r:
            out.append(frame[0])
            got_first.set()
    t.join()
    assert out == [1, 2] and timed_out == [False]


def test_gzip_file_and_multi_member(tmp_path: Path) -> None:
    recs = [(T0 + i, eth_tcp(i)) for i in range(20)]
    data = pcap(recs)
    path = tmp_path / "a.pcap.gz"
    path.write_bytes(gzip.compress(data[:500]) + gzip.compress(data[500:]) + b"\x00" * 8)
    r = open_capture(str(path))
    assert [(n, bytes(d)) for n, _, _, d, _ in r] == [(i + 1, f) for i, (_, f) in enumerate(recs)]
    assert r.damage == []
    r.close()


# --------------------------------------------------------------------------- damage


def one_damage(data: bytes, *words: str) -> tuple[CaptureReader, list[int]]:
    r = open_capture(io.BytesIO(data))
    nums = [f[0] for f in r]
    assert len(r.damage) == 1, r.damage
    d = r.damage[0]
    assert isinstance(d, CaptureDamage) and d.frame == len(nums)
    assert "\n" not in d.message and d.message.startswith("<stream>: ") or d.message.startswith("/")
    for w in words:
        assert w in d.message, d.message
    return r, nums


def test_pcap_cut_mid_record() -> None:
    data = pcap([(T0, eth_tcp(i)) for i in range(3)])
    _, nums = one_damage(data[:-5], "cut short", "after frame 2")
    assert nums == [1, 2]
    _, nums = one_damage(data[:24 + 16 + len(eth_tcp(0)) + 7], "cut short")  # inside a record header
    assert nums == [1]


def test_pcap_absurd_record_length() -> None:
    good = pcap([(T0, eth_tcp(0))])
    bad = good + struct.pack("<IIII", 1, 0, 10_000_000, 60) + bytes(60) + good[24:]
    r, nums = one_damage(bad, "absurd length 10000000")
    assert nums == [1] and r.damage[0].ts_ns == T0 // 1000 * 1000
    # beyond the snaplen + slack, but below 256 KiB
    small = pcap([(T0, eth_tcp(0))], snaplen=128)
    one_damage(small + struct.pack("<IIII", 1, 0, 128 + files.SNAPLEN_SLACK + 1, 60), "absurd")


@pytest.mark.parametrize("blen", [8, 30, 0, 0x7FFFFFF0])
def test_pcapng_bad_block_length(blen: int) -> None:
    good = shb() + idb(1) + epb(0, 1, eth_tcp(0))
    bad = good + struct.pack("<II", 6, blen) + bytes(40)
    _, nums = one_damage(bad, "bad pcapng block length")
    assert nums == [1]


def test_pcapng_trailing_length_mismatch() -> None:
    good = shb() + idb(1) + epb(0, 1, eth_tcp(0))
    bad_epb = bytearray(epb(0, 2, eth_tcp(1)))
    bad_epb[-4:] = struct.pack("<I", len(bad_epb) + 4)
    _, nums = one_damage(good + bytes(bad_epb) + epb(0, 3, eth_tcp(2)), "leading")
    assert nums == [1]


def test_pcapng_caplen_overruns_block() -> None:
    b = bytearray(epb(0, 2, eth_tcp(1)))
    b[20:24] = struct.pack("<I", 5000)
    one_damage(shb() + idb(1) + bytes(b), "overruns")


def test_pcapng_cut_mid_block() -> None:
    data = shb() + idb(1) + epb(0, 1, eth_tcp(0)) + epb(0, 2, eth_tcp(1))
    _, nums = one_damage(data[:-10], "cut short")
    assert nums == [1]


@pytest.mark.parametrize("data,words", [
    (shb() + epb(0, 1, eth_tcp(0)), "undefined interface 0"),
    (shb() + idb(1) + epb(3, 1, eth_tcp(0)), "undefined interface 3"),
    (shb() + spb(eth_tcp(0)), "no interface"),
    (shb() + idb(1) + pb(2, 1, eth_tcp(0)), "undefined interface 2"),
    (shb() + idb(1) + shb(major=2), "major version"),
    (shb() + idb(1) + shb()[:8] + b"junk" + shb()[12:], "byte-order magic"),
])
def test_pcapng_structural_damage(data: bytes, words: str) -> None:
    one_damage(data, words)


def test_gzip_truncated_keeps_frames_so_far() -> None:
    data = pcap([(T0 + i, eth_tcp(i, payload=os.urandom(300))) for i in range(50)])
    gz = gzip.compress(data)
    r = open_capture(io.BytesIO(gz[:len(gz) // 2]))
    nums = [f[0] for f in r]
    assert 0 < len(nums) < 50 and nums == list(range(1, len(nums) + 1))
    assert len(r.damage) == 1 and "gzip stream truncated" in r.damage[0].message


def test_gzip_corrupt_and_trailing_garbage() -> None:
    data = pcap([(T0 + i, eth_tcp(i, payload=os.urandom(300))) for i in range(50)])
    gz = bytearray(gzip.compress(data))
    gz[-6] ^= 0xFF  # CRC / length trailer
    r = open_capture(io.BytesIO(bytes(gz)))
    assert len(list(r)) == 50 and "gzip data corrupt" in r.damage[0].message
    r = open_capture(io.BytesIO(gzip.compress(data) + b"garbage"))
    assert len(list(r)) == 50 and "trailing garbage" in r.damage[0].message


@pytest.mark.parametrize("data,words", [
    (b"", "empty file (0 bytes)"),
    (b"hello world, this is not a capture file", "not a pcap or pcapng file"),
    (b"\x00" * 100, "not a pcap or pcapng file"),
    (gzip.compress(b"text text text text text text"), "not a pcap or pcapng file (inside gzip)"),
    (gzip.compress(b""), "empty capture inside gzip"),
    (b"\x1f\x8b\x08\x00garbage-not-deflate", "gzip"),
    (pcap([])[:20], "pcap file header cut short"),
    (shb()[:10], "pcapng section header cut short"),
    (shb()[:8] + b"\x00\x00\x00\x00" + shb()[12:], "bad byte-order magic"),
    (struct.pack("<IHH", 0xA1B2C3D4, 1, 0) + bytes(16), "unsupported pcap version"),
    (b"snoop\x00\x00\x00" + bytes(16), "unsupported snoop version 0; convert it with: editcap -F pcap"),
    (b"snoop\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x08" + bytes(16), "unsupported snoop datalink type 8"),
    (b"GMBU" + bytes(30), "Microsoft Network Monitor capture; convert it with: editcap -F pcap <stream> OUT.pcap"),
    (b"BZh91AY&SY" + bytes(16), "bzip2"),
    (struct.pack("<I", 0xA1B2CD34) + bytes(20), "Kuznetzov"),
])
def test_capture_errors(data: bytes, words: str) -> None:
    with pytest.raises(CaptureError) as exc:
        open_capture(io.BytesIO(data))
    assert words in str(exc.value) and str(exc.value).startswith("<stream>: ")
    assert "\n" not in str(exc.value)


def test_capture_errors_on_paths(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="no such file"):
        open_capture(tmp_path / "missing.pcap")
    with pytest.raises(CaptureError, match="is a directory"):
        open_capture(tmp_path)
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(CaptureError, match=f"^{empty}: empty file"):
        open_capture(empty)
    text = tmp_path / "notes.txt"
    text.write_text("not a capture\n" * 10)
    with pytest.raises(CaptureError, match="not a pcap or pcapng file"):
        open_capture(str(text))
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.pcap"
        locked.write_bytes(pcap([]))
        locked.chmod(0)
        with pytest.raises(CaptureError, match="permission denied"):
            open_capture(locked)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["pcap", "pcapng", "pcap.gz", "pcapng.gz"]), cut=st.integers(0, 4000),
       tail=st.binary(max_size=64), flip=st.integers(0, 4000), chunk=st.sampled_from([1 << 20, 13]))
def test_mangled_captures_only_raise_capture_error(kind: str, cut: int, tail: bytes, flip: int,
                                                   chunk: int) -> None:
    files.CHUNK_SIZE = chunk
    try:
        base = SAMPLES[kind]
        variants = [base[:cut], base[:cut] + tail, base + tail]
        mangled = bytearray(base)
        mangled[flip % len(base)] ^= 0x5A
        variants.append(bytes(mangled))
        for data in variants:
            try:
                r = open_capture(io.BytesIO(data))
            except CaptureError:
                continue
            n = sum(1 for _ in r)
            assert r.frames == n and len(r.damage) <= 1
            r2 = open_capture(io.BytesIO(data))
            m = sum(1 for _ in iter_tcp(r2))
            assert r2.frames == n and m + r2.non_tcp == n and len(r2.damage) <= 1
    finally:
        files.CHUNK_SIZE = 1 << 20


SAMPLES = sample_captures()


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_random_bytes_only_raise_capture_error(data: bytes) -> None:
    for prefix in (b"", pcap([])[:24], shb() + idb(1), b"\x1f\x8b"):
        try:
            r = open_capture(io.BytesIO(prefix + data))
        except CaptureError:
            continue
        list(iter_tcp(r))


# --------------------------------------------------------------------------- real captures, tshark


def tshark_times(path: Path | str) -> list[tuple[int, int | None, int]]:
    """[(frame number, ts_ns, frame.cap_len)] as tshark sees them (ts_ns None: no timestamp)."""
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.number",
                          "-e", "frame.time_epoch", "-e", "frame.cap_len"],
                         capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        num, epoch, caplen = line.split("\t")
        if not epoch:  # a Simple Packet Block: Wireshark shows no time, we keep the previous one
            rows.append((int(num), None, int(caplen)))
            continue
        sec, _, frac = epoch.partition(".")
        sign = -1 if sec.startswith("-") else 1
        rows.append((int(num), int(sec) * 10**9 + sign * int(frac.ljust(9, "0")[:9]), int(caplen)))
    return rows


def ours(path: Path | str) -> list[tuple[int, int, int]]:
    with open_capture(path) as r:
        rows = [(n, ts, len(d)) for n, ts, _lt, d, _orig in r]
        assert r.damage == []
    return rows


REAL_FILES = sorted(REAL.glob("*.pcap*")) if REAL.is_dir() else []


@pytest.mark.tshark
@pytest.mark.skipif(not HAVE_TSHARK, reason="needs tshark")
@pytest.mark.parametrize("path", REAL_FILES, ids=[p.name for p in REAL_FILES])
def test_real_captures_match_tshark(path: Path) -> None:
    assert ours(path) == tshark_times(path)


@pytest.mark.skipif(not (REAL / "iscsi-scsi-data-cdrom.pcap.gz").exists(), reason="needs the real captures")
def test_real_gzip_capture() -> None:
    with open_capture(REAL / "iscsi-scsi-data-cdrom.pcap.gz") as r:
        assert isinstance(r, files.PcapReader)
        segs = sum(1 for _ in iter_tcp(r))
    assert (r.frames, segs, r.non_tcp, r.damage) == (2364, 2364, 0, [])


def run_tool(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@pytest.mark.tshark
@pytest.mark.skipif(not all(shutil.which(t) for t in ("tshark", "mergecap", "editcap")),
                    reason="needs tshark, mergecap and editcap")
def test_tool_made_pcapng_with_two_interfaces(tmp_path: Path) -> None:
    eth = tmp_path / "eth.pcap"
    raw = tmp_path / "raw.pcap"
    eth.write_bytes(pcap([(T0 + i * 2_000_000, eth_tcp(i, payload=b"E")) for i in range(5)], nsec=True))
    raw.write_bytes(pcap([(T0 + i * 2_000_000 + 1_000_000, ipv4(tcp(payload=b"R"))) for i in range(5)],
                         linktype=101))
    merged = tmp_path / "merged.pcapng"
    run_tool("mergecap", "-F", "pcapng", "-w", str(merged), str(eth), str(raw))
    with open_capture(merged) as r:
        assert isinstance(r, files.PcapngReader)
        rows = [(n, ts, lt) for n, ts, lt, _d, _o in r]
        assert r.linktypes == [1, 101]
    assert [lt for _, _, lt in rows] == [1, 101] * 5
    assert [(n, ts) for n, ts, _ in rows] == [(n, ts) for n, ts, _ in tshark_times(merged)]
    with open_capture(merged) as r:
        assert [bytes(t[10]) for t in iter_tcp(r)] == [b"E", b"R"] * 5
    # editcap conversions: pcap -> pcapng, -> nanosecond pcap, -> gzip-compressed pcapng
    for fmt, name in (("pcapng", "e.pcapng"), ("nsecpcap", "e.pcap"), ("pcapng", "e.pcapng.gz")):
        out = tmp_path / name
        run_tool("editcap", "-F", fmt, str(eth), str(out))
        if name.endswith(".gz"):
            out.write_bytes(gzip.compress(out.read_bytes()))
        assert ours(out) == tshark_times(out) == ours(eth)


@pytest.mark.tshark
@pytest.mark.skipif(not HAVE_TSHARK, reason="needs tshark")
def test_our_pcapng_timestamps_match_tshark(tmp_path: Path) -> None:
    """Multi-IDB pcapng with assorted if_tsresol/if_tsoffset, and a second big-endian section."""
    data = b"".join([
        shb(), idb(1), idb(101, tsresol=9), idb(1, tsresol=0x80 | 20), idb(1, tsresol=4, tsoffset=7),
        epb(0, 1_700_000_000_654_321, eth_tcp(0)),
        epb(1, 1_700_000_000_987_654_321, ipv4(tcp())),
        epb(2, (1_700_000_001 << 20) + 12345, eth_tcp(2)),
        epb(3, 17_000_000_001_234, eth_tcp(3)),
        spb(eth_tcp(4)),
        shb(">"), idb(0, tsresol=9, e=">"), epb(0, T0, null(ipv4(tcp()), 2), e=">"),
    ])
    path = tmp_path / "multi.pcapng"
    path.write_bytes(data)
    mine = ours(path)
    theirs = tshark_times(path)
    assert theirs[4][1] is None and mine[4][1] == mine[3][1]  # SPB
    assert mine[:4] + mine[5:] == theirs[:4] + theirs[5:]
    assert [m[2] for m in mine] == [t[2] for t in theirs]
