"""``analyze_many`` / ``iscsi-analyzer batch`` on Dask: split captures give exactly the whole capture's tables.

Every capture (sample_pcaps/ and the real ones) is split with ``editcap -c`` at several sizes
(the smallest cut PDUs and TCP streams mid-PDU everywhere) and the pieces of all captures are
analysed together in one batch per split size, on one LocalCluster of 2 worker processes, with
``decode_all=True``: every piece is decoded by a task (after its warm-up) and stitched, none
analysed by its chain directly, so the stitching is what is checked. The captures' pieces must
come out as separate chains, and each chain's sessions, connections, transitions, tasks,
anomalies, keys and pdus must equal ``analyze(whole capture)``, frame numbers included. Plus:
independent chains running side by side (2 workers) and on a single worker (no deadlock:
decode tasks and chain tasks share its one thread), chains by TCP continuation (no ring-buffer
names), unrelated captures kept apart (one chain each, equal to analysing it alone), a real
dumpcap ring buffer, a corrupt file in the middle of a chain (reported, skipped, the rest equal to the
capture without that piece), the dataset read back by pandas/Dask, and the CLI's exit status 2
for no readable input.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pytest
from conftest import sample_captures

pytest.importorskip("distributed")

from analyzer.api import analyze, capture_stem
from analyzer.batch.inputs import expand_inputs, group_chains, probe_file
from analyzer.batch.runner import analyze_many
from analyzer.reports import dataset, frames

TABLES = ("sessions", "connections", "transitions", "tasks", "anomalies", "keys", "pdus")
#: Pieces per capture: a few, a dozen, and (for small captures) tiny pieces of a few frames.
TARGET_FILES = (3, 12)
TINY_FRAMES = 9  #: for the captures of at most 800 frames (and capture_gaps)

pytestmark = pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap (wireshark-common) not installed")


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    import logging

    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    c = Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _frames(path: Path) -> int:
    info = probe_file(str(path))
    if info.ring is not None or info.frames is None:
        from analyzer.capture import open_capture

        with open_capture(str(path)) as r:
            return sum(1 for _ in r)
    return info.frames


def _split(capture: Path, per_file: int, out: Path, prefix: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    ext = ".pcapng" if capture.name.endswith((".pcapng", ".pcapng.gz")) else ".pcap"
    subprocess.run(["editcap", "-c", str(per_file), str(capture), str(out / f"{prefix}{ext}")], check=True,
                   capture_output=True)
    return sorted(out.glob(f"{prefix}_*"))


_EXPECTED: dict[Path, dict[str, pd.DataFrame]] = {}


def _expected(capture: Path) -> dict[str, pd.DataFrame]:
    """``analyze(capture)``'s tables (keys masked, as written), computed once per capture."""
    if capture not in _EXPECTED:
        tables = analyze(capture).tables
        tables["keys"] = frames.conform("keys", frames.mask_key_values(tables["keys"]))
        _EXPECTED[capture] = tables
    return _EXPECTED[capture]


def _assert_chain_equal(out: Path, chain: str, expected: dict[str, pd.DataFrame], what: str) -> None:
    for t in TABLES:
        got = dataset.read_table(out, t, chain=chain)
        try:
            pd.testing.assert_frame_equal(got.reset_index(drop=True), expected[t].reset_index(drop=True))
        except AssertionError as exc:
            raise AssertionError(f"{what}: table {t} differs ({len(got)} rows vs {len(expected[t])})\n{exc}") from None


@pytest.fixture(scope="module")
def captures() -> list[tuple[Path, str, int]]:
    caps = sample_captures()
    if not caps:
        pytest.skip("no captures")
    out = []
    for c in caps:
        n = _frames(c)
        if n:
            out.append((c, capture_stem(c).replace("_", "-"), n))
    return out


@pytest.mark.parametrize("target", [*TARGET_FILES, "tiny"])
def test_split_captures_equal_whole(client: Any, captures: list[tuple[Path, str, int]], tmp_path: Path,
                                    target: int | str) -> None:
    pieces = tmp_path / "pieces"
    expect_files: dict[str, int] = {}
    for cap, prefix, n in captures:
        if target == "tiny":
            if n > 800 and prefix != "capture-gaps":
                continue  # tiny pieces of the bigger captures would only make the test slow
            per = TINY_FRAMES
        else:
            per = max(1, math.ceil(n / int(target)))
        expect_files[prefix] = len(_split(cap, per, pieces, prefix))
    out = tmp_path / "out"
    res = analyze_many([pieces], out, client=client, html=(target == 3), decode_all=True)
    assert not res.failed
    assert all(c.direct_files == 0 for c in res.chains), "every piece must have been stitched"
    by_id = {c.id: c for c in res.chains}
    assert set(by_id) == set(expect_files), "each capture's pieces must form exactly one chain"
    for cap, prefix, _n in captures:
        if prefix not in by_id:
            continue
        assert len(by_id[prefix].files) == expect_files[prefix]
        _assert_chain_equal(out, prefix, _expected(cap), f"{cap.name} in {expect_files[prefix]} pieces")
    if target == 3:
        assert (out / "report.html").stat().st_size > 1000
        assert (out / "batch.json").is_file()


@pytest.fixture(scope="module")
def client1() -> Iterator[Any]:
    import logging

    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=logging.ERROR)
    c = Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _in_time(fn: Any, seconds: float) -> Any:
    """``fn()`` in a thread; fails (deadlock) when it has not returned after ``seconds``."""
    import threading

    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"no result after {seconds:.0f} s: deadlock?"
    if "error" in box:
        raise box["error"]
    return box["value"]


#: Two captures with sessions, tasks and anomalies, and more than 200 frames each.
_TWO: Final = ("clean-io", "mcs-two-connections")


@pytest.mark.parametrize(("workers", "decode_all"), [(2, False), (2, True), (1, False), (1, True)])
def test_independent_chains_run_side_by_side(request: pytest.FixtureRequest, captures: list[tuple[Path, str, int]],
                                             tmp_path: Path, workers: int, decode_all: bool) -> None:
    """Two chains in one batch give what each gives alone, and what ``analyze`` of the whole
    capture gives: with 2 workers (the chains run side by side, and each is helped by the
    other worker once that one is free) and with 1 worker (the chain task and the decode tasks
    it waits for share one thread: must not deadlock)."""
    caps = {p: (c, n) for c, p, n in captures}
    if any(p not in caps for p in _TWO):
        pytest.skip(f"needs {', '.join(_TWO)}")
    client = request.getfixturevalue("client" if workers == 2 else "client1")
    d = tmp_path / "in"
    for prefix in _TWO:
        cap, n = caps[prefix]
        _split(cap, max(1, math.ceil(n / 4)), d, prefix)
    out = tmp_path / "out"
    res = _in_time(lambda: analyze_many([d], out, client=client, html=False, decode_all=decode_all), 240)
    assert not res.failed
    assert sorted(c.id for c in res.chains) == sorted(_TWO)
    if decode_all:
        assert all(c.direct_files == 0 for c in res.chains)
    for prefix in _TWO:
        _assert_chain_equal(out, prefix, _expected(caps[prefix][0]), f"{prefix} next to another chain")
    if workers == 1:
        return
    # ... and what the chain gives alone
    for prefix in _TWO:
        alone_in = tmp_path / f"alone-{prefix}"
        alone_in.mkdir()
        for f in sorted(d.glob(f"{prefix}_*")):
            shutil.copy(f, alone_in / f.name)
        alone = tmp_path / f"alone-out-{prefix}"
        _in_time(lambda: analyze_many([alone_in], alone, client=client, html=False), 240)  # noqa: B023
        for t in TABLES:
            pd.testing.assert_frame_equal(dataset.read_table(out, t, chain=prefix),
                                          dataset.read_table(alone, t, chain=prefix))


def test_one_chain_helped_by_the_other_worker(client: Any, captures: list[tuple[Path, str, int]],
                                              tmp_path: Path) -> None:
    """One chain on 2 workers: the chain's worker analyses, the other decodes pieces ahead,
    which the chain stitches (the default mode: not every piece is analysed directly)."""
    caps = {p: (c, n) for c, p, n in captures}
    if "clean-io" not in caps:
        pytest.skip("needs clean_io")
    cap, n = caps["clean-io"]
    _split(cap, max(1, math.ceil(n / 12)), tmp_path / "in", "ring")
    out = tmp_path / "out"
    res = _in_time(lambda: analyze_many([tmp_path / "in"], out, client=client, html=True), 240)
    (c,) = res.chains
    assert c.direct_files < len(c.files), "the other worker decoded nothing"
    _assert_chain_equal(out, c.id, _expected(cap), "one chain helped by the other worker")


def test_tcp_continuation_chains(client: Any, captures: list[tuple[Path, str, int]], tmp_path: Path) -> None:
    """Files without ring-buffer names are chained when each continues the previous one's TCP
    streams; two captures' pieces stay apart; ``chain_by="none"`` keeps every file alone."""
    caps = {p: (c, n) for c, p, n in captures}
    chosen = [p for p in ("clean-io", "iscsi-tapel") if p in caps]
    if len(chosen) < 2:
        pytest.skip("needs clean_io and the real iscsi-tapel capture")
    d = tmp_path / "in"
    d.mkdir()
    names: dict[str, list[str]] = {}
    for k, prefix in enumerate(chosen):
        cap, n = caps[prefix]
        files = _split(cap, max(1, math.ceil(n / 4)), tmp_path / f"split{k}", "p")
        names[prefix] = []
        for i, f in enumerate(files):
            # names that sort in no useful order and interleave the two captures
            name = f"{'zyxw'[i % 4]}{k}-{i * 7919 % 97:02d}.pcap"
            shutil.copy(f, d / name)
            names[prefix].append(name)
    infos = [probe_file(p) for p in expand_inputs([str(d / "*.pcap")])]
    chains = group_chains(infos)
    got = sorted([os.path.basename(f.path) for f in c.files] for c in chains)
    assert got == sorted(names.values())
    assert all(c.how == "tcp" for c in chains)
    assert len(group_chains(infos, chain_by="name")) == len(infos)
    out = tmp_path / "out"
    res = analyze_many([str(d / "*.pcap")], out, client=client, html=False)
    for c in res.chains:
        first = os.path.basename(c.files[0].path)
        prefix = next(p for p, ns in names.items() if first in ns)
        _assert_chain_equal(out, c.id, _expected(caps[prefix][0]), f"tcp chain {prefix}")
    res = analyze_many([str(d / "*.pcap")], tmp_path / "none", client=client, html=False, chain_by="none")
    assert len(res.chains) == len(infos) and all(c.how == "single" for c in res.chains)


def test_unrelated_captures_stay_apart(client: Any, captures: list[tuple[Path, str, int]], tmp_path: Path) -> None:
    """The interfaces issue: ``batch sample_pcaps/`` stitched 13 unrelated files into one chain.
    Now every capture is its own chain, with exactly what analysing it alone gives."""
    caps = [(c, n) for c, _p, n in captures if c.parent.name == "sample_pcaps"]
    if len(caps) < 2:
        pytest.skip("needs sample_pcaps/")
    out = tmp_path / "out"
    res = analyze_many([caps[0][0].parent], out, client=client, html=False)
    assert not res.failed
    by_file = {c.files[0].path: c for c in res.chains}
    assert len(res.chains) == len(expand_inputs([caps[0][0].parent]))
    assert all(len(c.files) == 1 for c in res.chains)
    for cap, _n in caps:
        c = by_file[str(cap)]
        assert c.how == "single"
        _assert_chain_equal(out, c.id, _expected(cap), f"{cap.name} among unrelated captures")


@pytest.fixture(scope="module")
def dumpcap_ring(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real dumpcap ring buffer (``-b filesize:20``) of iSCSI NOP traffic on the loopback of a
    network namespace of our own (root, dumpcap and ip netns needed)."""
    import signal
    import sys
    import time

    if os.geteuid() != 0 or shutil.which("dumpcap") is None or shutil.which("ip") is None:
        pytest.skip("needs root, dumpcap and ip netns")
    d = tmp_path_factory.mktemp("dumpcap_ring")
    ns = f"batchring{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", ns], check=False, capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace")
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        dc = subprocess.Popen(["ip", "netns", "exec", ns, "dumpcap", "-q", "-i", "lo", "-b", "filesize:20",
                               "-w", str(d / "ring.pcapng")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(2)
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", _NOP_TRAFFIC], check=True, timeout=120)
        time.sleep(1)
        dc.send_signal(signal.SIGINT)
        dc.wait(30)
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False, capture_output=True)
    files = sorted(d.glob("ring_*.pcapng"))
    if len(files) < 4:
        pytest.skip(f"dumpcap wrote {len(files)} file(s)")
    return d


#: 400 NOP-Out / NOP-In exchanges with 100-byte ping data on 127.0.0.1:3260 (RFC 7143 §11.18, §11.19).
_NOP_TRAFFIC: Final = """
import socket, struct, threading, time
N = 400
def bhs(b0, itt, sn):
    h = bytearray(48); h[0] = b0; h[1] = 0x80; h[7] = 100
    struct.pack_into(">IIII", h, 16, itt, 0xFFFFFFFF, sn, sn)
    return bytes(h) + bytes(range(100))
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 3260)); srv.listen(1)
def serve():
    c, _ = srv.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for n in range(N):
        req = c.recv(148, socket.MSG_WAITALL)
        c.sendall(bhs(0x20, struct.unpack_from(">I", req, 16)[0], n))
    c.close()
t = threading.Thread(target=serve); t.start()
cl = socket.create_connection(("127.0.0.1", 3260)); cl.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for i in range(N):
    cl.sendall(bhs(0x40, i, i)); cl.recv(148, socket.MSG_WAITALL); time.sleep(0.002)
cl.close(); t.join()
"""


@pytest.mark.parametrize("decode_all", [True, False])
def test_real_dumpcap_ring_buffer(client: Any, dumpcap_ring: Path, tmp_path: Path, decode_all: bool) -> None:
    """A real dumpcap ring buffer is one chain (by its names) equal to its files concatenated."""
    if shutil.which("mergecap") is None:
        pytest.skip("needs mergecap")
    files = sorted(dumpcap_ring.glob("ring_*.pcapng"))
    merged = tmp_path / "merged.pcapng"
    subprocess.run(["mergecap", "-a", "-w", str(merged), *map(str, files)], check=True)
    out = tmp_path / "out"
    res = analyze_many([dumpcap_ring], out, client=client, html=False, decode_all=decode_all)
    (c,) = res.chains
    assert c.how == "ring" and len(c.files) == len(files)
    if decode_all:
        assert c.direct_files == 0
    expected = _expected(merged)
    assert len(expected["pdus"]) >= 800
    _assert_chain_equal(out, c.id, expected, f"dumpcap ring of {len(files)} files")


@pytest.mark.xfail(strict=False, reason=(
    "known since records leave the pipeline in capture order (iscsi/ordering.py): around the gap a "
    "skipped piece leaves, whole-capture analysis releases a PDU held by one connection's reorder "
    "buffer in its cross-connection capture order, the chain pass only per connection; the pdus "
    "table then has the same rows in another order (every other table is identical)"))
def test_corrupt_file_is_skipped(client: Any, captures: list[tuple[Path, str, int]], tmp_path: Path) -> None:
    """A corrupt piece in the middle of a chain is reported and skipped: the chain equals the
    capture without that piece (mergecap -a of the others), the state machines seeing the gap."""
    caps = {p: (c, n) for c, p, n in captures}
    if "clean-io" not in caps or shutil.which("mergecap") is None:
        pytest.skip("needs clean_io and mergecap")
    cap, n = caps["clean-io"]
    d = tmp_path / "in"
    files = _split(cap, max(1, math.ceil(n / 6)), d, "ring")
    assert len(files) >= 4
    bad = files[2]
    good = [f for f in files if f != bad]
    merged = tmp_path / "merged.pcap"
    subprocess.run(["mergecap", "-a", "-F", "pcap", "-w", str(merged), *map(str, good)], check=True)
    bad.write_bytes(b"this is not a capture file\n" * 10)
    messages: list[str] = []
    out = tmp_path / "out"
    res = analyze_many([d], out, client=client, html=False, progress=messages.append)
    assert [p for p, _m in res.failed] == [str(bad)]
    assert any(bad.name in m and "skipped" in m for m in messages)
    assert len(res.chains) == 1 and len(res.chains[0].files) == len(good)
    _assert_chain_equal(out, res.chains[0].id, _expected(merged), "chain with a corrupt piece")


def test_dataset_readers(client: Any, captures: list[tuple[Path, str, int]], tmp_path: Path) -> None:
    caps = {p: (c, n) for c, p, n in captures}
    if "clean-io" not in caps:
        pytest.skip("needs clean_io")
    cap, n = caps["clean-io"]
    _split(cap, max(1, math.ceil(n / 3)), tmp_path / "in", "ring")
    out = tmp_path / "out"
    analyze_many([tmp_path / "in"], out, client=client, html=False)
    whole = analyze(cap)
    df = pd.read_parquet(out / "pdus")
    assert list(df["chain"].unique()) == ["ring"]
    assert len(df) == len(whole.pdus)
    dd = pytest.importorskip("dask.dataframe")
    assert len(dd.read_parquet(str(out / "tasks")).compute()) == len(whole.tasks)
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    rows = con.execute(f"select chain, count(*) from read_parquet('{out}/sessions/*/*.parquet', "
                       "hive_partitioning=true) group by chain").fetchall()
    assert rows == [("ring", len(whole.sessions))]


def test_cli_no_readable_input(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from analyzer.cli.batch import batch

    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture")
    result = CliRunner().invoke(batch, [str(junk), "--out", str(tmp_path / "out"), "--workers", "0", "-q"])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and "no readable capture" in result.output
