"""Capture-layer bounds: out-of-range pcapng timestamps and unbounded interface lists are damage."""

from __future__ import annotations

import io
import struct

import pytest

from analyzer.capture import files, iter_tcp, open_capture
from tests.unit.capture_builders import block, epb, ethernet, idb, ipv4, shb, tcp

FRAME = ethernet(ipv4(tcp(flags=0x02)))


def read(data: bytes) -> tuple[list[tuple[int, int]], object]:
    reader = open_capture(io.BytesIO(data))
    frames = [(f[0], f[1]) for f in reader]
    return frames, reader


@pytest.mark.parametrize(("ticks", "tsresol", "tsoffset"), [
    ((1 << 64) - 1, None, None),  # µs ticks near 2^64: year 586524
    ((1 << 64) - 5, 9, None),  # ns ticks beyond 2^63
    (5, None, 1 << 40),
    (5, None, -(1 << 40)),
    (5, None, 1 << 62),
    (5, None, -(1 << 62)),
])
def test_out_of_range_timestamp_is_damage_not_a_crash(ticks: int, tsresol: int | None,
                                                      tsoffset: int | None) -> None:
    good = epb(0, 1_700_000_000_000_000, FRAME)
    data = shb() + idb(tsresol=tsresol, tsoffset=tsoffset) + (good if tsoffset is None else b"") + epb(0, ticks, FRAME)
    frames, reader = read(data)
    assert len(frames) == (1 if tsoffset is None else 0)
    assert all(0 <= ts < 1 << 63 for _, ts in frames)
    [damage] = reader.damage  # type: ignore[attr-defined]
    assert "out of range" in damage.message
    assert 0 <= damage.ts_ns < 1 << 63


def test_out_of_range_obsolete_packet_block() -> None:
    body = struct.pack("<HHIIII", 0, 0, 0xFFFFFFFF, 0xFFFFFFFF, len(FRAME), len(FRAME)) + FRAME
    frames, reader = read(shb() + idb() + block(2, body))
    assert frames == [] and "out of range" in reader.damage[0].message  # type: ignore[attr-defined]


def test_timestamps_at_the_edges_of_the_range_are_kept() -> None:
    frames, reader = read(shb() + idb(tsresol=9) + epb(0, 0, FRAME) + epb(0, (1 << 63) - 1, FRAME))
    assert [ts for _, ts in frames] == [0, (1 << 63) - 1] and not reader.damage  # type: ignore[attr-defined]


def test_out_of_range_timestamp_through_iter_tcp() -> None:
    data = shb() + idb(tsoffset=1 << 45) + epb(0, 5, FRAME)
    reader = open_capture(io.BytesIO(data))
    assert list(iter_tcp(reader)) == [] and reader.damage


def test_interface_blocks_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "MAX_INTERFACES", 8)
    data = shb() + idb() * 8 + epb(7, 1, FRAME) + idb() + epb(0, 2, FRAME)
    frames, reader = read(data)
    assert len(frames) == 1
    [damage] = reader.damage  # type: ignore[attr-defined]
    assert "more than 8 interfaces" in damage.message
    assert len(reader.linktypes) == 8  # type: ignore[attr-defined]


def test_interface_list_across_sections_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "MAX_INTERFACES", 4)
    data = (shb() + idb() * 3 + epb(2, 1, FRAME)) * 5
    frames, reader = read(data)
    assert len(frames) == 5 and not reader.damage  # type: ignore[attr-defined]
    assert len(reader.linktypes) == 4  # type: ignore[attr-defined]
