"""Every encapsulation gives the plain capture's analysis, on every sample capture.

Each frame of sample_pcaps/* is re-wrapped (tests/encap_writer.py, at test time into tmp_path)
in ERSPAN I/II/III, GRE, VXLAN, MPLS, PPPoE, IP-in-IP, IPv4/IPv6 fragments, or twice (the
original plus a mirrored copy, or two mirror sessions). Every record the pipeline gives (PDUs,
TCP events, transitions, tasks, sessions, findings) must equal the plain capture's, frame
numbers mapped back to the original frames; tshark, which dissects all of these, must agree
with us PDU by PDU as it does on the plain capture.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from analyzer.capture import iter_tcp, open_capture
from analyzer.pipeline import Pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from encap_writer import KINDS, wrap

SAMPLES = sorted(p for p in Path("sample_pcaps").glob("*.pcap*"))
#: Captures the tshark cross-check runs on (tshark is slow: two cover IPv4 and IPv6).
TSHARK_SAMPLES = ("clean_io.pcap", "ipv6.pcap")
#: tshark needs a "decode as" for these (an Ethernet pseudowire behind MPLS; VXLAN off 4789).
TSHARK_NEEDS_DECODE_AS = ("mpls_pw", "vxlan_port")
DUPLICATING = ("mirror_dup", "two_sessions")
_FRAME_RE = re.compile(r"frame (\d+)")


def analyse(path: Path, vxlan_ports: tuple[int, ...] = (4789,)) -> tuple[list[Any], Any]:
    """-> (records as ``pipeline.iter_records`` gives them, the reader); ``reader.segments``
    is how many TCP segments it gave."""
    reader = open_capture(path, vxlan_ports=vxlan_ports)
    pipeline = Pipeline(None)
    out: list[Any] = []
    segments = 0
    with reader:
        for seg in iter_tcp(reader):
            segments += 1
            out.extend(pipeline.feed_segment(*seg))
        out.extend(reader.damage)
        out.extend(pipeline.finish())
    reader.segments = segments
    return out, reader


def normalise(records: list[Any], fmap: dict[int, int] | None) -> list[tuple[str, dict[str, Any]]]:
    """Records as comparable dicts, frame numbers mapped through ``fmap`` (None: as they are)."""
    def frame(n: int) -> object:
        return n if fmap is None else fmap.get(n, ("unmapped", n))

    out = []
    for r in records:
        d: dict[str, Any] = {}
        for f in dataclasses.fields(r):
            v = getattr(r, f.name)
            if (f.name == "frame" or f.name.endswith("_frame")) and isinstance(v, int) and v:
                v = frame(v)
            elif f.name == "frames" and isinstance(v, tuple):
                v = tuple(frame(x) for x in v)
            elif isinstance(v, str):
                v = _FRAME_RE.sub(lambda m: f"frame {frame(int(m.group(1)))}", v)
            d[f.name] = v
        out.append((type(r).__name__, d))
    return out


@cache
def plain(path: Path) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """-> (normalised records, TCP segments) of the capture as it is."""
    records, reader = analyse(path)
    assert any(hasattr(r, "opcode") for r in records), f"{path.name}: no PDUs in the plain capture"
    return normalise(records, None), reader.segments


@pytest.mark.parametrize("kind", KINDS)
def test_encapsulation_gives_the_plain_analysis(kind: str, tmp_path: Path) -> None:
    ports = (8472,) if kind == "vxlan_port" else (4789,)
    for sample in SAMPLES:
        data, fmap = wrap(sample, kind)
        path = tmp_path / f"{sample.stem}.{kind}.pcap"
        path.write_bytes(data)
        records, reader = analyse(path, ports)
        want, segments = plain(sample)
        got = normalise(records, fmap)
        assert got == want, f"{sample.name} as {kind}: analysis differs"
        dec = reader.decoder
        if kind in DUPLICATING:
            # every copy but (at most) the first frame's, whose original came before the first
            # encapsulated frame switched duplicate detection on
            assert segments - 1 <= dec.duplicates <= segments, (sample.name, dec.duplicates, segments)
            assert reader.segments + dec.duplicates == 2 * segments
        if kind in ("frag4", "frag6", "gre_frag"):
            assert dec.ip_fragments.dropped == 0
        if kind.startswith("erspan") or kind in ("gre_ip", "vxlan", "mpls", "pppoe", "ipip", "two_sessions"):
            assert dec.encapsulated, f"{sample.name} as {kind}: nothing counted as encapsulated"


def test_encapsulation_labels_carry_session_and_vlan(tmp_path: Path) -> None:
    sample = Path("sample_pcaps/clean_io.pcap")
    seen = {}
    for kind in ("erspan2", "erspan3", "vxlan", "mpls", "pppoe", "gre_eth_key"):
        path = tmp_path / f"{kind}.pcap"
        path.write_bytes(wrap(sample, kind)[0])
        _records, reader = analyse(path)
        seen[kind] = set(reader.decoder.encapsulated)
    assert seen == {
        "erspan2": {"ERSPAN II session 7 VLAN 100"},
        "erspan3": {"ERSPAN III session 300 VLAN 42"},
        "vxlan": {"VXLAN VNI 4242"},
        "mpls": {"MPLS label 1000"},
        "pppoe": {"PPPoE session 42"},
        "gre_eth_key": {"GRE key 5"},
    }


def test_fragments_of_a_plain_capture_are_counted(tmp_path: Path) -> None:
    sample = Path("sample_pcaps/clean_io.pcap")
    data, _fmap = wrap(sample, "frag4")
    path = tmp_path / "f.pcap"
    path.write_bytes(data)
    _records, reader = analyse(path)
    frag = reader.decoder.ip_fragments
    assert frag.fragments > 0 and frag.reassembled > 0 and frag.dropped == 0 and frag.pending == 0


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("kind", [k for k in KINDS if k not in DUPLICATING and k not in TSHARK_NEEDS_DECODE_AS])
def test_tshark_agrees_pdu_by_pdu(kind: str, tmp_path: Path) -> None:
    from analyzer.capture.tshark import tshark_pdus_union
    from analyzer.crosscheck import compare

    for name in TSHARK_SAMPLES:
        sample = Path("sample_pcaps") / name
        base = compare(analyse(sample)[0], tshark_pdus_union(str(sample)))
        data, _fmap = wrap(sample, kind)
        path = tmp_path / f"{sample.stem}.{kind}.pcap"
        path.write_bytes(data)
        res = compare(analyse(path)[0], tshark_pdus_union(str(path)))
        assert res.theirs == base.theirs and res.matched == base.matched, (name, kind, res, base)
        assert len(res.differences) == len(base.differences), (name, kind, res.differences[:5])
