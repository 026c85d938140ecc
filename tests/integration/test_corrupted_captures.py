"""Damaged captures through the real CLI: a decode up to the damage plus ONE warning line (exit
0), or ONE error line (exit 2); never a traceback, never exit 3 (README "Exit codes").

Mutants are written into the test's temporary directory from sample_pcaps/ and the shared real
captures (both read-only): editcap bit errors, records cut short, a zero-length file, wrong magic,
absurd record lengths in pcap record headers and pcapng blocks, pcapng blocks of unknown type or
with bad lengths, and gzip streams cut short or corrupted.
"""

from __future__ import annotations

import gzip
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_pcaps"
COMMANDS: tuple[tuple[str, ...], ...] = (("pdus", "--format", "csv"), ("anomalies", "--format", "jsonl"),
                                         ("analyze", "--no-html", "--quiet"))


def _real(name: str) -> Path | None:
    for d in (REPO.parent / "shared" / "real_pcaps", Path("/work/shared/real_pcaps")):
        if (d / name).is_file():
            return d / name
    return None


def _pcap_records(data: bytes) -> list[tuple[int, int]]:
    """(offset of the record header, captured length) of each record of a little-endian pcap."""
    out = []
    pos = 24
    while pos + 16 <= len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        out.append((pos, incl))
        pos += 16 + incl
    return out


def _pcapng_blocks(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, total length) of each block of a little-endian pcapng."""
    out = []
    pos = 0
    while pos + 12 <= len(data):
        btype, blen = struct.unpack_from("<II", data, pos)
        out.append((pos, btype, blen))
        if blen < 12:
            break
        pos += blen
    return out


def _set_u32(data: bytes, off: int, value: int) -> bytes:
    return data[:off] + struct.pack("<I", value) + data[off + 4:]


# --------------------------------------------------------------------------- mutants
# name -> (builder(tmp dir) -> path, expected exit status: 0 = decoded up to the damage, 2 = unreadable,
#          None = either)

Builder = Callable[[Path], Path]


def _from(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def _write(d: Path, name: str, data: bytes) -> Path:
    p = d / name
    p.write_bytes(data)
    return p


def _editcap(src: Path, dst: Path, prob: str, seed: int) -> Path:
    exe = shutil.which("editcap")
    if exe is None:
        pytest.skip("editcap not installed (apt-get install wireshark-common / tshark)")
    subprocess.run([exe, "-E", prob, "--seed", str(seed), str(src), str(dst)], check=True, capture_output=True)
    return dst


def _cut_mid_record(d: Path) -> Path:
    data = _from("tmf_abort.pcap")
    recs = _pcap_records(data)
    off, incl = recs[len(recs) // 2]
    return _write(d, "cut_mid_record.pcap", data[:off + 16 + incl // 2])


def _cut_mid_record_header(d: Path) -> Path:
    data = _from("tmf_abort.pcap")
    off, _ = _pcap_records(data)[5]
    return _write(d, "cut_mid_header.pcap", data[:off + 7])


def _cut_file_header(d: Path) -> Path:
    return _write(d, "cut_file_header.pcap", _from("tmf_abort.pcap")[:13])


def _absurd_pcap_length(d: Path) -> Path:
    data = _from("tmf_abort.pcap")
    off, _ = _pcap_records(data)[10]
    return _write(d, "absurd_len.pcap", _set_u32(data, off + 8, 0x7FFFFFF0))


def _absurd_orig_length(d: Path) -> Path:
    data = _from("tmf_abort.pcap")
    off, _ = _pcap_records(data)[10]
    return _write(d, "absurd_orig_len.pcap", _set_u32(data, off + 12, 0xFFFFFFFF))


def _zero_length_record(d: Path) -> Path:
    data = _from("tmf_abort.pcap")
    off, _incl = _pcap_records(data)[10]
    # a record claiming 0 bytes: its bytes are then read as the next record header (garbage lengths)
    return _write(d, "zero_len_record.pcap", _set_u32(data, off + 8, 0))


def _absurd_snaplen(d: Path) -> Path:
    data = _from("tmf_abort.pcap")
    return _write(d, "absurd_snaplen.pcap", _set_u32(data, 16, 0xFFFFFFFF))


def _unknown_linktype(d: Path) -> Path:
    return _write(d, "unknown_linktype.pcap", _set_u32(_from("tmf_abort.pcap"), 20, 0xBEEF))


def _gzip_cut(d: Path) -> Path:
    z = gzip.compress(_from("login_failures.pcap"))
    return _write(d, "cut.pcap.gz", z[:len(z) // 2])


def _gzip_corrupt(d: Path) -> Path:
    z = gzip.compress(_from("login_failures.pcap"))
    mid = len(z) // 2
    return _write(d, "corrupt.pcap.gz", z[:mid] + bytes(64) + z[mid + 64:])


def _pcapng_block(d: Path, name: str, mutate: Callable[[bytes, list[tuple[int, int, int]]], bytes]) -> Path:
    data = _from("pcapng_dumpcap.pcapng")
    return _write(d, name, mutate(data, _pcapng_blocks(data)))


def _epb(blocks: list[tuple[int, int, int]], n: int) -> tuple[int, int, int]:
    return [b for b in blocks if b[1] == 6][n]


MUTANTS: dict[str, tuple[Builder, int | None]] = {
    "zero_length_file": (lambda d: _write(d, "empty.pcap", b""), 2),
    "wrong_magic": (lambda d: _write(d, "wrong_magic.pcap", b"\xde\xad\xbe\xef" + _from("tmf_abort.pcap")[4:]), 2),
    "text_file": (lambda d: _write(d, "notes.pcap", b"this is not a capture\n" * 10), 2),
    "gzip_of_garbage": (lambda d: _write(d, "garbage.pcap.gz", gzip.compress(b"\x00" * 100)), 2),
    "pcap_file_header_cut": (_cut_file_header, 2),
    "pcap_cut_mid_record": (_cut_mid_record, 0),
    "pcap_cut_mid_record_header": (_cut_mid_record_header, 0),
    "pcap_absurd_record_length": (_absurd_pcap_length, 0),
    "pcap_absurd_orig_length": (_absurd_orig_length, None),
    "pcap_zero_length_record": (_zero_length_record, None),
    "pcap_absurd_snaplen": (_absurd_snaplen, None),
    "pcap_unknown_linktype": (_unknown_linktype, 0),
    "editcap_bit_errors_1pct": (lambda d: _editcap(SAMPLES / "login_failures.pcap", d / "bits1.pcap", "0.01", 1), 0),
    "editcap_bit_errors_10pct": (lambda d: _editcap(SAMPLES / "tmf_abort.pcap", d / "bits10.pcap", "0.1", 2), 0),
    "editcap_bit_errors_pcapng": (lambda d: _editcap(SAMPLES / "pcapng_dumpcap.pcapng", d / "bits.pcapng", "0.02", 3),
                                  0),
    "pcapng_cut_mid_block": (lambda d: _pcapng_block(d, "cut.pcapng", lambda b, bl: b[:_epb(bl, 20)[0] + 30]), 0),
    "pcapng_block_length_huge": (lambda d: _pcapng_block(
        d, "huge_block.pcapng", lambda b, bl: _set_u32(b, _epb(bl, 20)[0] + 4, 0x7FFFFFFC)), 0),
    "pcapng_block_length_small": (lambda d: _pcapng_block(
        d, "small_block.pcapng", lambda b, bl: _set_u32(b, _epb(bl, 20)[0] + 4, 8)), 0),
    "pcapng_block_length_unaligned": (lambda d: _pcapng_block(
        d, "unaligned_block.pcapng", lambda b, bl: _set_u32(b, _epb(bl, 20)[0] + 4, _epb(bl, 20)[2] + 1)), 0),
    "pcapng_trailing_length_mismatch": (lambda d: _pcapng_block(
        d, "trailer.pcapng", lambda b, bl: _set_u32(b, _epb(bl, 20)[0] + _epb(bl, 20)[2] - 4, 12)), None),
    "pcapng_epb_caplen_absurd": (lambda d: _pcapng_block(
        d, "epb_caplen.pcapng", lambda b, bl: _set_u32(b, _epb(bl, 20)[0] + 20, 0x7FFFFFFF)), None),
    "pcapng_epb_bad_interface": (lambda d: _pcapng_block(
        d, "epb_ifid.pcapng", lambda b, bl: _set_u32(b, _epb(bl, 20)[0] + 8, 77)), None),
    "pcapng_unknown_block_types": (lambda d: _pcapng_block(
        d, "unknown_types.pcapng",
        lambda b, bl: b"".join(_set_u32(b[o:o + n], 0, 0x0BADF00D) if t == 6 and i % 7 == 0 else b[o:o + n]
                               for i, (o, t, n) in enumerate(bl))), 0),
    "pcapng_shb_bad_length": (lambda d: _pcapng_block(d, "shb.pcapng", lambda b, bl: _set_u32(b, 4, 4)), None),
    "gzip_cut_short": (_gzip_cut, 0),
    "gzip_corrupt_middle": (_gzip_corrupt, 0),
    "gzip_header_only": (lambda d: _write(d, "header.pcap.gz", gzip.compress(_from("tmf_abort.pcap"))[:12]), 2),
}


def _real_mutants() -> dict[str, tuple[Builder, int | None]]:
    out: dict[str, tuple[Builder, int | None]] = {}
    tape = _real("iscsi-tapel.pcap.gz")
    if tape is not None:
        out["real_gzip_cut_short"] = (lambda d: _write(d, "tape_cut.pcap.gz", tape.read_bytes()[:60_000]), 0)
        out["real_editcap_bit_errors"] = (lambda d: _editcap(tape, d / "tape_bits.pcap", "0.01", 4), 0)
    nmap = _real("not-iscsi-nmap-scan-3260.pcap")
    if nmap is not None:
        out["real_cut_mid_record"] = (lambda d: _write(d, "nmap_cut.pcap", nmap.read_bytes()[:100_001]), 0)
    return out


ALL_MUTANTS = {**MUTANTS, **_real_mutants()}


class Result:
    def __init__(self, args: list[str], proc: subprocess.CompletedProcess[str]) -> None:
        self.args = args
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def explain(self) -> str:
        return (f"iscsi-analyzer {' '.join(self.args)} -> exit {self.rc}\n--- stdout (head) ---\n{self.out[:1500]}"
                f"\n--- stderr ---\n{self.err[:3000]}")


def _run(args: list[str]) -> Result:
    proc = subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True, text=True, timeout=300,
                          cwd=REPO, check=False)
    return Result(args, proc)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Result]:
    """Every mutant through every command, run in parallel once per module."""
    d = tmp_path_factory.mktemp("mutants")
    jobs: dict[tuple[str, str], list[str]] = {}
    for name, (build, _expected) in ALL_MUTANTS.items():
        path = build(d)
        for cmd in COMMANDS:
            extra = ["--out", str(d / f"report-{name}")] if cmd[0] == "analyze" else []
            jobs[(name, cmd[0])] = [*cmd, *extra, str(path)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {k: pool.submit(_run, args) for k, args in jobs.items()}
        return {k: f.result() for k, f in futures.items()}


@pytest.mark.parametrize("command", [c[0] for c in COMMANDS])
@pytest.mark.parametrize("mutant", sorted(ALL_MUTANTS))
def test_damage_gives_one_line_and_a_clean_exit(runs: dict[tuple[str, str], Result], mutant: str,
                                                command: str) -> None:
    r = runs[(mutant, command)]
    expected = ALL_MUTANTS[mutant][1]
    assert r.rc in (0, 2), r.explain()
    assert "Traceback" not in r.err and "internal error" not in r.err, r.explain()
    err_lines = [line for line in r.err.splitlines() if line.strip()]
    assert len(err_lines) <= 1, "at most one line on stderr\n" + r.explain()
    if expected is not None:
        assert r.rc == expected, r.explain()
    if r.rc == 2:
        assert len(err_lines) == 1 and err_lines[0].startswith("iscsi-analyzer: "), r.explain()
        assert not r.out.strip() or command == "analyze", "nothing on stdout for an unreadable capture\n" + r.explain()
    elif err_lines:
        assert err_lines[0].startswith("iscsi-analyzer: warning: "), r.explain()


@pytest.mark.parametrize("mutant", ["pcap_cut_mid_record", "pcap_absurd_record_length", "gzip_cut_short",
                                    "pcapng_cut_mid_block", "pcapng_block_length_huge"])
def test_damage_is_warned_and_what_came_before_is_decoded(runs: dict[tuple[str, str], Result], mutant: str) -> None:
    r = runs[(mutant, "pdus")]
    assert r.rc == 0, r.explain()
    assert r.err.startswith("iscsi-analyzer: warning: "), r.explain()
    assert "everything before it was analyzed" in r.err
    rows = r.out.splitlines()[1:]
    assert rows, "PDUs before the damage are listed\n" + r.explain()
    a = runs[(mutant, "anomalies")]
    assert '"capture_damaged"' in a.out, a.explain()


def test_unknown_block_types_are_skipped_silently(runs: dict[tuple[str, str], Result]) -> None:
    r = runs[("pcapng_unknown_block_types", "pdus")]
    assert r.rc == 0 and not r.err.strip(), r.explain()
    assert len(r.out.splitlines()) > 10
