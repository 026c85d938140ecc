"""Fixtures for the integration tests: the captures to run on, and the real CLI run on them.

Captures: every ``sample_pcaps/*.pcap*`` of the repository (lab captures, listed in its
``manifest.json``) plus the real third-party captures in ``<repo>/../shared/real_pcaps``
(falling back to ``/work/shared/real_pcaps``). Tests parametrized with ``capture`` run once
per capture found; with none they are skipped (empty parameter set), not failed.

The CLI runs as a subprocess (``python -m analyzer``), exactly as a user runs it. Runs are
cached for the session and started in parallel (a few worker threads), so each command runs
once per capture however many tests look at its output.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import builders as b
import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPO / "sample_pcaps"
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz")


def real_pcaps_dir() -> Path | None:
    """The shared real captures: next to the repository, else the workplace's shared folder."""
    for d in (REPO.parent / "shared" / "real_pcaps", Path("/work/shared/real_pcaps")):
        if d.is_dir():
            return d
    return None


def _captures_in(d: Path | None, pattern: str) -> list[Path]:
    if d is None or not d.is_dir():
        return []
    return sorted(p for p in d.glob(pattern) if p.is_file() and p.name.endswith(CAPTURE_SUFFIXES))


def sample_captures() -> list[Path]:
    """Every capture to test on: sample_pcaps/*.pcap* then the real captures."""
    return _captures_in(SAMPLE_DIR, "*.pcap*") + _captures_in(real_pcaps_dir(), "*")


def real_capture(name: str) -> Path:
    """One of the real captures by file name, or skip the test."""
    d = real_pcaps_dir()
    p = d / name if d is not None else None
    if p is None or not p.is_file():
        pytest.skip(f"real capture {name} not found (looked in {REPO.parent / 'shared' / 'real_pcaps'} "
                    "and /work/shared/real_pcaps)")
    return p


def capture_id(p: Path) -> str:
    return p.name


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "capture" in metafunc.fixturenames:
        caps = sample_captures()
        metafunc.parametrize("capture", caps, ids=[capture_id(p) for p in caps])


@pytest.fixture(scope="session", name="sample_captures")
def sample_captures_fixture() -> list[Path]:
    """The list of captures (skips the test when there is none)."""
    caps = sample_captures()
    if not caps:
        pytest.skip("no captures: sample_pcaps/ is empty and shared/real_pcaps is missing")
    return caps


@pytest.fixture(scope="session")
def tshark() -> str:
    """Path of tshark, or skip."""
    exe = shutil.which("tshark")
    if exe is None:
        pytest.skip("tshark not installed (apt-get install tshark): crosscheck cannot run")
    return exe


@pytest.fixture(scope="session")
def real_pcap() -> Callable[[str], Path]:
    """``real_pcap(name)``: a real capture by file name (skips the test when it is missing)."""
    return real_capture


# --------------------------------------------------------------------------- running the CLI


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def explain(self) -> str:
        return (f"iscsi-analyzer {' '.join(self.args)} -> exit {self.returncode}\n"
                f"--- stdout (head) ---\n{self.stdout[:3000]}\n--- stderr ---\n{self.stderr[:3000]}")


def run_cli(*args: str | os.PathLike[str], timeout: float = 300) -> Run:
    """Run ``python -m analyzer ARGS`` (the installed package, as a user would)."""
    sargs = tuple(str(a) for a in args)
    proc = subprocess.run([sys.executable, "-m", "analyzer", *sargs], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, check=False)
    return Run(sargs, proc.returncode, proc.stdout, proc.stderr)


class CliRuns:
    """Session cache of CLI runs; ``prefetch`` starts them in the background."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)))
        self._futures: dict[tuple[str, ...], Future[Run]] = {}

    def prefetch(self, *args: str | os.PathLike[str]) -> None:
        key = tuple(str(a) for a in args)
        if key not in self._futures:
            self._futures[key] = self._pool.submit(run_cli, *key)

    def get(self, *args: str | os.PathLike[str]) -> Run:
        self.prefetch(*args)
        return self._futures[tuple(str(a) for a in args)].result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def cli() -> Callable[..., Run]:
    """``cli(*args)``: run the CLI now (uncached)."""
    return run_cli


@pytest.fixture(scope="session")
def cli_runs() -> Iterator[CliRuns]:
    """Cached CLI runs; every capture's ``pdus`` (csv, jsonl) runs are started at once."""
    runs = CliRuns()
    for cap in sample_captures():
        for fmt in ("csv", "jsonl"):
            runs.prefetch("pdus", "--format", fmt, cap)
    yield runs
    runs.close()


@pytest.fixture(scope="session")
def crosscheck_runs(cli_runs: CliRuns, tshark: str) -> CliRuns:
    """``cli_runs`` with every capture's ``crosscheck --max-differences 1000`` started.

    Skips the test when tshark is missing.
    """
    for cap in sample_captures():
        cli_runs.prefetch("crosscheck", "--max-differences", "1000", cap)
    return cli_runs


# --------------------------------------------------------------------------- synthetic captures
#
# Small pcaps written in the test's temporary directory, for TCP situations the lab captures
# show only by chance: both the pdus and the crosscheck tests run on them.

_CLIENT_IP = bytes([10, 9, 0, 1])
_SERVER_IP = bytes([10, 9, 0, 2])
_SYN, _FIN, _RST, _PSH, _ACK = 0x02, 0x01, 0x04, 0x08, 0x10


class PcapWriter:
    """Ethernet/IPv4/TCP frames of one connection (client 10.9.0.1:40000 -> server 10.9.0.2:3260)."""

    def __init__(self, isn_c: int = 1_000_000, isn_s: int = 7_000_000) -> None:
        self.frames: list[bytes] = []
        self.c = isn_c  # next sequence number of the client
        self.s = isn_s

    def _frame(self, to_server: bool, seq: int, ack: int, flags: int, payload: bytes) -> None:
        sport, dport = (40000, 3260) if to_server else (3260, 40000)
        src, dst = (_CLIENT_IP, _SERVER_IP) if to_server else (_SERVER_IP, _CLIENT_IP)
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535,
                          0, 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", _ip_checksum(ip)) + ip[12:]
        self.frames.append(b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00" + ip + tcp)

    def handshake(self) -> None:
        self._frame(True, self.c, 0, _SYN, b"")
        self._frame(False, self.s, self.c + 1, _SYN | _ACK, b"")
        self.c += 1
        self.s += 1
        self._frame(True, self.c, self.s, _ACK, b"")

    def c2s(self, data: bytes = b"", flags: int = _PSH | _ACK, seq: int | None = None) -> None:
        self._frame(True, self.c if seq is None else seq, self.s, flags, data)
        if seq is None:
            self.c += len(data) + (1 if flags & _FIN else 0)

    def s2c(self, data: bytes = b"", flags: int = _PSH | _ACK, seq: int | None = None,
            mss: int = 1448, drop: frozenset[int] = frozenset()) -> None:
        """Server data in segments of ``mss`` bytes; segment indexes in ``drop`` are not captured."""
        if seq is not None or not data:
            self._frame(False, self.s if seq is None else seq, self.c, flags, data)
            if seq is None:
                self.s += len(data) + (1 if flags & _FIN else 0)
            return
        for i, off in enumerate(range(0, len(data), mss)):
            part = data[off:off + mss]
            if i not in drop:
                self._frame(False, self.s, self.c, flags, part)
            self.s += len(part)

    def write(self, path: Path) -> Path:
        out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
        for i, f in enumerate(self.frames):
            out.append(struct.pack("<IIII", 1_700_000_000, i * 1000, len(f), len(f)) + f)
        path.write_bytes(b"".join(out))
        return path


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _login(w: PcapWriter) -> None:
    w.c2s(b.login_request(csg=1, nsg=3, itt=0x10, keys=[("InitiatorName", "iqn.2024-01.org.example:i"),
                                                         ("TargetName", "iqn.2024-01.org.example:t"),
                                                         ("SessionType", "Normal"), ("HeaderDigest", "None"),
                                                         ("DataDigest", "None")]))
    w.s2c(b.login_response(csg=1, nsg=3, itt=0x10, tsih=1, statsn=0, expcmdsn=1, maxcmdsn=9,
                           keys=[("HeaderDigest", "None"), ("DataDigest", "None")]))


def stale_rst_capture(path: Path) -> Path:
    """The target closes with FIN, then answers late segments with RSTs whose sequence number is
    before its FIN (out of the initiator's window, RFC 9293 §3.10.7.4: ignored); the initiator's
    SCSI Command sent after them is on the wire and must be listed."""
    w = PcapWriter()
    w.handshake()
    _login(w)
    w.c2s(b.scsi_command(cdb=bytes(16), itt=1, cmdsn=1, expstatsn=1))
    w.s2c(b.scsi_response(itt=1, statsn=1, expcmdsn=2, maxcmdsn=10))
    w.s2c(flags=_FIN | _ACK)
    w.s2c(flags=_RST, seq=w.s - 200)  # stale: before bytes the target already sent
    w.c2s(b.scsi_command(cdb=bytes(16), itt=2, cmdsn=2, expstatsn=2))
    w.c2s(flags=_FIN | _ACK)
    w.s2c(flags=_RST, seq=w.s)  # in window: the end
    return w.write(path)


def capture_gap_capture(path: Path) -> Path:
    """Three 4 KiB Data-In: a segment inside the first one's data is missing from the capture; the
    initiator's ACK past the hole declares the gap. The PDUs after it keep their own frames."""
    w = PcapWriter()
    w.handshake()
    _login(w)
    w.c2s(b.scsi_command(cdb=bytes.fromhex("28000000000000000800") + bytes(6), itt=1, read=True, edtl=3 * 4096,
                         cmdsn=1, expstatsn=1))
    data = b"".join(b.data_in(itt=1, datasn=i, buffer_offset=4096 * i, data=bytes([i + 1]) * 4096,
                              final=i == 2, status=0 if i == 2 else None, statsn=1, expcmdsn=2, maxcmdsn=10)
                    for i in range(3))
    w.s2c(data, drop=frozenset({1}))
    w.c2s(flags=_ACK)  # acknowledges everything: the capture lost segment 1
    w.c2s(b.logout_request(itt=2, cmdsn=2, expstatsn=2))
    w.s2c(b.logout_response(itt=2, statsn=2, expcmdsn=3, maxcmdsn=10))
    return w.write(path)


@pytest.fixture(scope="session")
def synthetic_captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> path of each synthetic capture (written once per session)."""
    d = tmp_path_factory.mktemp("synthetic")
    return {
        "stale_rst": stale_rst_capture(d / "stale_rst.pcap"),
        "capture_gap": capture_gap_capture(d / "capture_gap.pcap"),
    }
