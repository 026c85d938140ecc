"""``iscsi-analyzer live`` sees iSCSI carried in remote-mirror encapsulations (needs root).

Two namespaces joined by a veth pair (the underlay, 10.199.0.0/24); live captures the underlay veth
with its default capture filter, which must admit the encapsulated traffic and ``open_capture``
must unwrap it:

* VXLAN: a real VXLAN tunnel device on both sides (UDP 4789, and UDP 8472 with ``--vxlan-port``);
  tgtd listens in one namespace, the libiscsi initiator logs in from the other through the tunnel.
* GRE: this kernel may have no GRE/IP-in-IP tunnel devices (no modules), so a lab capture is
  wrapped frame by frame in Ethernet/IPv4/GRE (transparent Ethernet bridging, 0x6558: what ERSPAN-less
  remote SPAN over GRE sends) and written onto the veth with a packet socket, like tcpreplay.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer.lab import initiator as ini
from analyzer.lab.errors import LabSetupError
from analyzer.lab.netns import Namespace, unique_name
from analyzer.lab.preflight import check_prerequisites
from analyzer.lab.procs import ProcessRegistry, Started, wait_until
from analyzer.lab.runner import control_port
from analyzer.lab.scenarios import DISK
from analyzer.lab.target import Tgtd

pytestmark = pytest.mark.lab

TOOLS = ("ip", "ethtool", "sysctl", "tc", "ss", "tgtd", "tgtadm", "dumpcap", "iscsi-inq")
LIVE_ENTRY = "from analyzer.cli.live import live; live(prog_name='iscsi-analyzer live')"
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_pcaps" / "clean_io.pcap"
UNDER_A, UNDER_B = "10.199.0.1", "10.199.0.2"
OVER_A, OVER_B = "10.200.0.1", "10.200.0.2"


class Pair:
    """Namespaces A (target side) and B (initiator side) joined by veth vA <-> vB."""

    def __init__(self, workdir: Path) -> None:
        self.a = Namespace(unique_name("iscsiencA"))
        self.b = Namespace(unique_name("iscsiencB"))
        self.procs = ProcessRegistry(workdir)
        self.workdir = workdir

    def create(self) -> None:
        self.a.create()
        self.b.create()
        subprocess.run(["ip", "link", "add", "vA", "netns", self.a.name, "type", "veth", "peer", "name", "vB",
                        "netns", self.b.name], check=True, capture_output=True, timeout=30)
        for ns, dev, addr in ((self.a, "vA", UNDER_A), (self.b, "vB", UNDER_B)):
            ns.run(["ip", "link", "set", dev, "mtu", "9000"])
            ns.run(["ip", "addr", "add", f"{addr}/24", "dev", dev])
            ns.run(["ip", "link", "set", dev, "up"])
            ns.run(["ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off"], check=False)

    def vxlan(self, port: int) -> None:
        for ns, dev, local, remote, addr in ((self.a, "vA", UNDER_A, UNDER_B, OVER_A),
                                             (self.b, "vB", UNDER_B, UNDER_A, OVER_B)):
            ns.run(["ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "local", local, "remote", remote,
                    "dstport", str(port), "dev", dev])
            ns.run(["ip", "addr", "add", f"{addr}/30", "dev", "vx0"])
            ns.run(["ip", "link", "set", "vx0", "up"])

    def live(self, ns: Namespace, *args: str) -> Started:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = self.procs.start("live", ns.exec_argv([sys.executable, "-c", LIVE_ENTRY, *args]), env=env)
        wait_until(lambda: "capturing on" in proc.stdout() or not proc.alive(), timeout=30.0)
        assert proc.alive(), proc.stderr()
        return proc

    def delete(self) -> None:
        self.procs.stop_all()
        self.a.delete()
        self.b.delete()


@pytest.fixture
def pair() -> Iterator[Pair]:
    try:
        check_prerequisites(TOOLS)
    except LabSetupError as exc:
        pytest.skip(f"encapsulation lab needs root, dumpcap, tgtd and libiscsi-bin: {exc}")
    workdir = Path(tempfile.mkdtemp(prefix="iscsi-live-encap-"))
    p = Pair(workdir)
    try:
        p.create()
        yield p
    finally:
        p.delete()


def _stop(pair: Pair, proc: Started) -> dict[str, object]:
    os.kill(proc.pid, signal.SIGINT)
    assert pair.procs.wait(proc, 60) == 0, proc.stderr()
    return dict(json.loads((pair.workdir / "out" / "live.json").read_text()))


@pytest.mark.parametrize("port", [4789, 8472])
def test_live_sees_a_session_through_a_vxlan_tunnel(pair: Pair, port: int) -> None:
    try:
        pair.vxlan(port)
    except Exception as exc:  # noqa: BLE001 - a kernel without VXLAN
        pytest.skip(f"no VXLAN tunnel devices here: {exc}")
    tgtd = Tgtd(pair.a, pair.procs, pair.workdir, control_port())
    tgtd.start()
    try:
        tgtd.add_target(DISK)
        extra = ["--vxlan-port", str(port)] if port != 4789 else []
        live = pair.live(pair.a, "-i", "vA", "--plain", "--out", str(pair.workdir / "out"), *extra)
        url = ini.lun_url(ini.Portal(OVER_A), DISK.iqn, 1)
        assert pair.b.run(ini.iscsi_inq_argv(url), check=False, timeout=60).returncode == 0
        assert pair.b.run(ini.io_argv(url, "read", lba=0, blocks=8, count=4), check=False,
                          timeout=60).returncode == 0
        time.sleep(1.0)
        status = _stop(pair, live)
    finally:
        tgtd.stop()
    assert f"udp dst port {port}" in str(status["filter"])
    sessions = status["sessions"]
    assert isinstance(sessions, list)
    assert sum(1 for s in sessions if s["target"] == DISK.iqn) >= 2, status  # the inquiry and the reads
    assert isinstance(status["pdus"], int) and status["pdus"] > 10
    drops = status["drops"]
    assert isinstance(drops, dict) and drops["dropped"] == 0


_SENDER = textwrap.dedent("""
    import socket, struct, sys, time
    path, dev, src_mac, dst_mac, src, dst = sys.argv[1:7]
    def csum(h):
        s = sum(struct.unpack("!10H", h))
        s = (s & 0xffff) + (s >> 16)
        s = (s & 0xffff) + (s >> 16)
        return (~s) & 0xffff
    data = open(path, "rb").read()
    assert data[:4] in (b"\\xd4\\xc3\\xb2\\xa1", b"\\x4d\\x3c\\xb2\\xa1") and struct.unpack_from("<I", data, 20)[0] == 1
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((dev, 0))
    off, n = 24, 0
    mac = lambda m: bytes.fromhex(m.replace(":", ""))
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        frame = data[off + 16: off + 16 + incl]
        off += 16 + incl
        gre = struct.pack("!HH", 0, 0x6558) + frame  # RFC 2784 GRE, transparent Ethernet bridging
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(gre), n & 0xffff, 0x4000, 64, 47, 0,
                          socket.inet_aton(src), socket.inet_aton(dst))
        hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
        s.send(mac(dst_mac) + mac(src_mac) + b"\\x08\\x00" + hdr + gre)
        n += 1
        if n % 50 == 0:
            time.sleep(0.002)
    print(n)
""")


def test_live_sees_sessions_in_gre_replayed_onto_a_veth(pair: Pair) -> None:
    pytest.importorskip("pandas")
    from analyzer.api import analyze

    mac_a = pair.a.run(["cat", "/sys/class/net/vA/address"]).stdout.strip()
    mac_b = pair.b.run(["cat", "/sys/class/net/vB/address"]).stdout.strip()
    live = pair.live(pair.b, "-i", "vB", "--plain", "--out", str(pair.workdir / "out"))
    sent = pair.a.run([sys.executable, "-c", _SENDER, str(SAMPLE), "vA", mac_a, mac_b, UNDER_A, UNDER_B],
                      timeout=120)
    assert int(sent.stdout.strip()) > 100
    time.sleep(1.0)
    status = _stop(pair, live)
    assert "ip proto 47" in str(status["filter"])
    offline = analyze(SAMPLE)
    sessions = status["sessions"]
    assert isinstance(sessions, list)
    assert sorted((str(s["initiator"] or ""), str(s["target"] or "")) for s in sessions) == \
        sorted((str(r["initiator_name"] or ""), str(r["target_name"] or ""))
               for r in offline.sessions.to_dict("records")), status
    assert isinstance(status["pdus"], int) and status["pdus"] > 100
    assert len(offline.sessions) >= 1
