"""``iscsi-analyzer pdus`` end to end on every available capture, plus bad and damaged input."""

from __future__ import annotations

import csv
import gzip
import io
import ipaddress
import json
import struct
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from analyzer.capture import iter_tcp, open_capture
from analyzer.render.rows import PDU_COLUMNS

Cli = Callable[..., Any]  # conftest.run_cli: (*args) -> Run(args, returncode, stdout, stderr)


@cache
def tcp_frames(path: Path) -> tuple[int, dict[int, tuple[str, int, str, int, int]]]:
    """(number of frames, frame -> (src, sport, dst, dport, payload length) of each TCP frame)."""
    reader = open_capture(str(path))
    index: dict[int, tuple[str, int, str, int, int]] = {}
    try:
        for seg in iter_tcp(reader):
            frame, _ts, src, dst, sport, dport = seg[:6]
            index[frame] = (ipaddress.ip_address(bytes(src)).compressed, sport,
                            ipaddress.ip_address(bytes(dst)).compressed, dport, len(seg[10]))
    finally:
        reader.close()
    return reader.frames, index


def check_rows(capture: Path, rows: list[dict[str, str]]) -> None:
    """Every row's frame exists, and carries payload of the PDU's own direction (it is the frame
    of the PDU's last captured byte, never e.g. the ACK that revealed a capture gap)."""
    n, index = tcp_frames(capture)
    for row in rows:
        frame, first = int(row["frame"]), int(row["first_frame"])
        assert 1 <= first <= frame <= n, row
        assert row["direction"] in ("i2t", "t2i"), row
        assert row["opcode"].startswith("0x") and row["opcode_name"], row
        seg = index.get(frame)
        assert seg is not None, f"frame {frame} is not a TCP segment: {row}"
        assert seg[:4] == (row["src"], int(row["sport"]), row["dst"], int(row["dport"])) and seg[4] > 0, (
            f"frame {frame} ({seg}) does not carry bytes of this PDU's direction: {row}")


def csv_rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def jsonl_rows(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def is_nmap(capture: Path) -> bool:
    return capture.name.startswith("not-iscsi")


# --------------------------------------------------------------------------- every capture


def test_pdus_csv(capture: Path, cli_runs: Any) -> None:
    run = cli_runs.get("pdus", "--format", "csv", capture)
    assert run.returncode == 0, run.explain()
    assert "Traceback" not in run.stderr, run.explain()
    header, rows = csv_rows(run.stdout)
    assert header == list(PDU_COLUMNS)
    if is_nmap(capture):
        assert rows == [], "a port scan has no iSCSI PDUs"
        return
    assert rows, f"no PDUs found in {capture.name}"
    check_rows(capture, rows)


def test_pdus_jsonl(capture: Path, cli_runs: Any) -> None:
    run = cli_runs.get("pdus", "--format", "jsonl", capture)
    assert run.returncode == 0, run.explain()
    assert "Traceback" not in run.stderr, run.explain()
    rows = jsonl_rows(run.stdout)
    if is_nmap(capture):
        assert rows == []
        return
    assert rows
    n, _ = tcp_frames(capture)
    for row in rows:
        assert list(row) == list(PDU_COLUMNS)
        assert isinstance(row["frame"], int) and isinstance(row["first_frame"], int)
        assert 1 <= row["first_frame"] <= row["frame"] <= n, row
    # csv and jsonl list the same PDUs
    _, crows = csv_rows(cli_runs.get("pdus", "--format", "csv", capture).stdout)
    assert [(r["frame"], r["opcode"], r["itt"]) for r in crows] == [
        (str(r["frame"]), r["opcode"], r["itt"] if r["itt"] is not None else "") for r in rows]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("content", [b"this is not a capture\n" * 3, b""], ids=["text", "empty"])
@pytest.mark.parametrize("fmt", ["csv", "table"])
def test_unreadable_file_exit_2_one_line(cli: Cli, tmp_path: Path, content: bytes, fmt: str) -> None:
    bad = tmp_path / "notes.pcap"
    bad.write_bytes(content)
    run = cli("pdus", "--format", fmt, bad)
    assert run.returncode == 2, run.explain()
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.explain()
    assert str(bad) in lines[0]
    assert "Traceback" not in run.stderr
    assert run.stdout == "", "nothing (not even a header) is printed for an unreadable capture"


def test_missing_file_exit_2(cli: Cli, tmp_path: Path) -> None:
    run = cli("pdus", tmp_path / "nope.pcap")
    assert run.returncode == 2, run.explain()
    assert len(run.stderr.splitlines()) == 1 and "nope.pcap" in run.stderr


# --------------------------------------------------------------------------- damaged and compressed input


def _pcap_record_offsets(data: bytes) -> list[int]:
    """Offsets of every record header of a little/big-endian classic pcap."""
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    offs = []
    pos = 24
    while pos + 16 <= len(data):
        offs.append(pos)
        (incl,) = struct.unpack_from(order + "I", data, pos + 8)
        pos += 16 + incl
    return offs


def test_truncated_capture_keeps_rows_before_the_damage(cli: Cli, real_pcap: Callable[[str], Path],
                                                         tmp_path: Path) -> None:
    src = real_pcap("iscsi-tapel.pcap.gz")
    data = gzip.decompress(src.read_bytes())
    full = tmp_path / "full.pcap"
    full.write_bytes(data)
    offs = _pcap_record_offsets(data)
    k = (len(offs) * 2) // 3  # cut inside record k+1 (1-based frame number k+1)
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:offs[k] + 16 + 20])
    whole = cli("pdus", "--format", "csv", full)
    damaged = cli("pdus", "--format", "csv", cut)
    assert whole.returncode == 0, whole.explain()
    assert damaged.returncode == 0, damaged.explain()
    warn = damaged.stderr.splitlines()
    assert len(warn) == 1 and "warning" in warn[0] and str(cut) in warn[0], damaged.explain()
    assert "Traceback" not in damaged.stderr
    _, all_rows = csv_rows(whole.stdout)
    _, rows = csv_rows(damaged.stdout)
    before = [r for r in all_rows if int(r["frame"]) <= k]
    assert before, "the cut should leave some PDUs"
    assert len(before) < len(all_rows), "the cut should lose some PDUs"
    key = [c for c in PDU_COLUMNS if c != "info"]
    assert [[r[c] for c in key] for r in rows[:len(before)]] == [[r[c] for c in key] for r in before]
    assert all(int(r["frame"]) <= k for r in rows)


def test_gzip_input_same_as_plain(cli: Cli, real_pcap: Callable[[str], Path], tmp_path: Path) -> None:
    src = real_pcap("iscsi-tapel.pcap.gz")
    plain = tmp_path / "tapel.pcap"
    plain.write_bytes(gzip.decompress(src.read_bytes()))
    gz = cli("pdus", "--format", "jsonl", src)
    raw = cli("pdus", "--format", "jsonl", plain)
    assert gz.returncode == 0 and raw.returncode == 0, gz.explain() + raw.explain()
    assert gz.stdout == raw.stdout
    assert len(jsonl_rows(gz.stdout)) > 100


def test_gzip_of_pcapng_sample(cli: Cli, tmp_path: Path, sample_captures: list[Path]) -> None:
    plain = [p for p in sample_captures if p.suffix in (".pcap", ".pcapng") and not p.name.startswith("not-")]
    if not plain:
        pytest.skip("no uncompressed capture to gzip")
    src = min(plain, key=lambda p: p.stat().st_size)
    gz = tmp_path / (src.name + ".gz")
    gz.write_bytes(gzip.compress(src.read_bytes()))
    a = cli("pdus", "--format", "csv", src)
    b = cli("pdus", "--format", "csv", gz)
    assert a.returncode == 0 and b.returncode == 0, a.explain() + b.explain()
    assert a.stdout == b.stdout


# --------------------------------------------------------------------------- synthetic TCP situations


def test_pdu_after_stale_rst_is_listed(cli: Cli, synthetic_captures: dict[str, Path]) -> None:
    """An RST before bytes its sender already sent is out of window and ignored (RFC 9293
    §3.10.7.4): the connection goes on and the initiator's next command is listed."""
    cap = synthetic_captures["stale_rst"]
    run = cli("pdus", "--format", "csv", cap)
    assert run.returncode == 0, run.explain()
    _, rows = csv_rows(run.stdout)
    check_rows(cap, rows)
    assert [(r["opcode_name"], r["itt"]) for r in rows] == [
        ("Login Command", "0x00000010"), ("Login Response", "0x00000010"), ("SCSI Command", "0x00000001"),
        ("SCSI Response", "0x00000001"), ("SCSI Command", "0x00000002")]


def test_pdus_after_capture_gap_keep_their_frames(cli: Cli, synthetic_captures: dict[str, Path]) -> None:
    cap = synthetic_captures["capture_gap"]
    run = cli("pdus", "--format", "csv", cap)
    assert run.returncode == 0, run.explain()
    _, rows = csv_rows(run.stdout)
    check_rows(cap, rows)
    data_in = [r for r in rows if r["opcode"] == "0x25"]
    assert [r["datasn"] for r in data_in] == ["0", "1", "2"]  # the first one's data has the hole
    frames = [int(r["frame"]) for r in data_in]
    assert frames == sorted(frames) and len(set(frames)) == 3, data_in
    assert rows[-1]["opcode_name"] == "Logout Response"
