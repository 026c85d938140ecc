"""Control of one private tgtd instance (the iSCSI target) inside the lab namespace.

tgtd's management socket is `$TGT_IPC_SOCKET.<control-port>`; we point TGT_IPC_SOCKET into the lab's temp
dir and pass the same `-C <port>` to every tgtadm call, so we can never talk to any other tgtd on the host.
"""

from __future__ import annotations

import logging
import os
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.lab.errors import LabError
from analyzer.lab.netns import Namespace
from analyzer.lab.procs import ProcessRegistry, Started, run, wait_until

log = logging.getLogger(__name__)

#: The IANA-registered iSCSI port; tgtd listens on it on every address of the namespace.
ISCSI_PORT = 3260

_CONN_SESSION = re.compile(r"^\s*Session:\s*(\d+)")
_CONN_CONNECTION = re.compile(r"^\s*Connection:\s*(\d+)")
_CONN_INITIATOR = re.compile(r"^\s*Initiator:\s*(\S+)")
_CONN_ADDRESS = re.compile(r"^\s*IP Address:\s*(\S+)")


@dataclass(frozen=True)
class LunSpec:
    """A logical unit backed by a sparse file."""

    lun: int
    size_mib: int = 64


@dataclass(frozen=True)
class TargetSpec:
    """One target: tid, IQN, LUNs, optional CHAP account and target parameters (tgtadm names)."""

    tid: int
    iqn: str
    luns: tuple[LunSpec, ...] = (LunSpec(1),)
    chap_user: str | None = None
    chap_password: str | None = None
    params: tuple[tuple[str, str], ...] = ()

    @property
    def chap(self) -> bool:
        """True when logins to this target must authenticate with CHAP."""
        return self.chap_user is not None


@dataclass(frozen=True)
class ConnInfo:
    """One connection as tgtadm reports it."""

    sid: int
    cid: int
    initiator: str
    address: str


def parse_conn_show(text: str) -> list[ConnInfo]:
    """Parse `tgtadm --op show --mode conn --tid T` output into connections."""
    conns: list[ConnInfo] = []
    sid: int | None = None
    cid: int | None = None
    initiator = ""
    for line in text.splitlines():
        if m := _CONN_SESSION.match(line):
            sid, cid, initiator = int(m.group(1)), None, ""
        elif m := _CONN_CONNECTION.match(line):
            cid, initiator = int(m.group(1)), ""
        elif m := _CONN_INITIATOR.match(line):
            initiator = m.group(1)
        elif (m := _CONN_ADDRESS.match(line)) and sid is not None and cid is not None:
            conns.append(ConnInfo(sid, cid, initiator, m.group(1)))
    return conns


def tgtadm_argv(control_port: int, *args: str) -> list[str]:
    """A tgtadm command line that only talks to the tgtd with `control_port` (iSCSI driver)."""
    return ["tgtadm", "-C", str(control_port), "--lld", "iscsi", *args]


@dataclass
class Tgtd:
    """A tgtd daemon started by the lab, plus its targets."""

    ns: Namespace
    procs: ProcessRegistry
    workdir: Path
    control_port: int
    targets: list[TargetSpec] = field(default_factory=list)
    proc: Started | None = None

    @property
    def env(self) -> dict[str, str]:
        """Environment for tgtd and tgtadm: the private management socket path."""
        return {**os.environ, "TGT_IPC_SOCKET": str(self.workdir / "tgtd.sock")}

    @property
    def socket_path(self) -> Path:
        """The management socket tgtd creates."""
        return self.workdir / f"tgtd.sock.{self.control_port}"

    def tgtadm(self, *args: str, check: bool = True, timeout: float = 20.0) -> str:
        """Run tgtadm against this tgtd and return its stdout."""
        return run(tgtadm_argv(self.control_port, *args), env=self.env, check=check, timeout=timeout).stdout

    def start(self, extra_iscsi_opts: str | None = None) -> None:
        """Start `tgtd -f` in the namespace and wait until it accepts tgtadm and listens on port 3260."""
        argv = ["tgtd", "-f", "-C", str(self.control_port)]
        if extra_iscsi_opts:
            argv += ["--iscsi", extra_iscsi_opts]
        self.proc = self.procs.start("tgtd", self.ns.exec_argv(argv), env=self.env)
        if not wait_until(self._ready, timeout=10.0, interval=0.1):
            err = self.proc.stderr().strip().splitlines()
            raise LabError(f"tgtd did not come up in namespace {self.ns.name}: {err[-1] if err else 'no output'}")
        log.info("tgtd pid %d up (control port %d)", self.proc.pid, self.control_port)

    def _ready(self) -> bool:
        if self.proc is None or not self.proc.alive():
            raise LabError(f"tgtd exited early: {self.proc.stderr().strip() if self.proc else ''}")
        if not self.socket_path.exists():
            return False
        if run(tgtadm_argv(self.control_port, "--op", "show", "--mode", "sys"), env=self.env,
               check=False, timeout=5.0).returncode != 0:
            return False
        return self.listening()

    def listening(self) -> bool:
        """True when something listens on TCP port 3260 inside the namespace."""
        out = self.ns.run(["ss", "-Hltn", f"sport = :{ISCSI_PORT}"], check=False, timeout=5.0).stdout
        return bool(out.strip())

    def add_target(self, spec: TargetSpec) -> None:
        """Create the target, its LUNs (sparse `rdwr` files), ACL ALL, CHAP account and parameters."""
        self.tgtadm("--op", "new", "--mode", "target", "--tid", str(spec.tid), "-T", spec.iqn)
        for lun in spec.luns:
            backing = self.workdir / f"tid{spec.tid}-lun{lun.lun}.img"
            with open(backing, "wb") as f:
                f.truncate(lun.size_mib * 1024 * 1024)
            self.tgtadm("--op", "new", "--mode", "logicalunit", "--tid", str(spec.tid), "--lun", str(lun.lun),
                        "-b", str(backing), "--bstype", "rdwr")
        self.tgtadm("--op", "bind", "--mode", "target", "--tid", str(spec.tid), "-I", "ALL")
        if spec.chap_user is not None:
            self.tgtadm("--op", "new", "--mode", "account", "--user", spec.chap_user,
                        "--password", spec.chap_password or "")
            self.tgtadm("--op", "bind", "--mode", "account", "--tid", str(spec.tid), "--user", spec.chap_user)
        for name, value in spec.params:
            self.set_param(spec.tid, name, value)
        self.targets.append(spec)

    def set_param(self, tid: int, name: str, value: str) -> None:
        """`tgtadm --op update --mode target` (e.g. HeaderDigest=CRC32C, nop_interval=1)."""
        self.tgtadm("--op", "update", "--mode", "target", "--tid", str(tid), "-n", name, "-v", value)

    def target_params(self, tid: int) -> dict[str, str]:
        """The `Name=Value` parameters tgtd reports for a target."""
        out = self.tgtadm("--op", "show", "--mode", "target", "--tid", str(tid))
        params: dict[str, str] = {}
        for line in out.splitlines():
            if "=" in line:
                key, _, value = line.strip().partition("=")
                params[key] = value
        return params

    def connections(self, tid: int) -> list[ConnInfo]:
        """The connections tgtd currently has on target `tid`."""
        return parse_conn_show(self.tgtadm("--op", "show", "--mode", "conn", "--tid", str(tid)))

    def drop_connection(self, tid: int, conn: ConnInfo) -> None:
        """Have the target tear down one connection (`--op delete --mode conn`)."""
        self.tgtadm("--op", "delete", "--mode", "conn", "--tid", str(tid), "--sid", str(conn.sid),
                    "--cid", str(conn.cid))

    def stop(self) -> None:
        """Shut tgtd down: ask it over its socket, then signal the recorded pid if it is still alive."""
        if self.proc is None or not self.proc.alive():
            return
        # tgtd only shuts down once it has no targets: offline, delete each target (--force), then the system.
        self.tgtadm("--op", "update", "--mode", "sys", "-n", "State", "-v", "offline", check=False, timeout=5.0)
        for spec in self.targets:
            self.tgtadm("--op", "delete", "--mode", "target", "--tid", str(spec.tid), "--force", check=False,
                        timeout=5.0)
        self.tgtadm("--op", "delete", "--mode", "system", check=False, timeout=5.0)
        proc = self.proc
        if wait_until(lambda: not proc.alive(), timeout=3.0):
            log.info("tgtd pid %d shut down", proc.pid)
        else:
            log.warning("tgtd pid %d did not shut down; sending SIGKILL", proc.pid)
            self.procs.stop(proc, signal.SIGKILL)
