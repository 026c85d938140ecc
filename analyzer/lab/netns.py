"""A private network namespace with only a loopback interface.

All lab traffic stays on `lo` inside this namespace: tgtd, the libiscsi tools and the capture all run under
`ip netns exec <name>`. Offloads are switched off so that captured frames are wire-sized (no 64 KiB TSO
super-frames). iptables rules and qdiscs added here live and die with the namespace.
"""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from analyzer.lab.errors import LabError
from analyzer.lab.procs import run

log = logging.getLogger(__name__)


_COUNTER = itertools.count(1)


def unique_name(prefix: str = "iscsilab") -> str:
    """A namespace name unique to this process and call, e.g. `iscsilab-1234-1`."""
    return f"{prefix}-{os.getpid()}-{next(_COUNTER)}"


@dataclass
class Namespace:
    """One network namespace created (and later deleted) by the lab."""

    name: str
    mtu: int = 1500
    created: bool = False
    iptables_rules: list[tuple[str, list[str]]] = field(default_factory=list)

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """`argv` prefixed so it runs inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: Sequence[str], *, timeout: float = 30.0, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a short command inside the namespace (see `procs.run`)."""
        return run(self.exec_argv(argv), timeout=timeout, check=check, env=env)

    def create(self) -> None:
        """Create the namespace, bring `lo` up with `mtu`, and turn off TSO/GSO/GRO."""
        existing = run(["ip", "netns", "list"]).stdout.split()
        if self.name in existing:
            raise LabError(f"network namespace {self.name} already exists; refusing to reuse it")
        run(["ip", "netns", "add", self.name])
        self.created = True
        self.run(["ip", "link", "set", "lo", "mtu", str(self.mtu)])
        self.run(["ip", "link", "set", "lo", "up"])
        self.run(["ethtool", "-K", "lo", "tso", "off", "gso", "off", "gro", "off"])
        log.info("namespace %s up (lo mtu %d, offloads off)", self.name, self.mtu)

    def shape(self, rate: str, burst: str = "32kb", limit: str = "4mb", tsq_bytes: int = 16384) -> None:
        """Limit `lo` to `rate` (tbf) so short I/O bursts stay small.

        The queue is long enough never to drop. TCP Small Queues is cut to `tsq_bytes` per socket (the
        namespace's default is 4 MB): otherwise a socket parks seconds of data in the tbf queue, the RTO
        (sized on the microsecond loopback RTT) fires and the capture shows spurious retransmissions.
        Tail loss probes are off for the same reason (the queueing delay looks like a lost tail).
        """
        self.run(["sysctl", "-q", "-w", f"net.ipv4.tcp_limit_output_bytes={tsq_bytes}"])
        self.run(["sysctl", "-q", "-w", "net.ipv4.tcp_early_retrans=0"])
        self.run(["tc", "qdisc", "replace", "dev", "lo", "root", "tbf", "rate", rate, "burst", burst,
                  "limit", limit])

    def qdisc_drops(self) -> int:
        """Packets the root qdisc of `lo` dropped so far (0 if unknown)."""
        out = self.run(["tc", "-s", "qdisc", "show", "dev", "lo"], check=False).stdout
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("Sent ") and "dropped" in line:
                try:
                    return int(line.split("dropped", 1)[1].split(",")[0].strip())
                except ValueError:
                    return 0
        return 0

    def add_iptables_rule(self, rule: Sequence[str], *, ipv6: bool = False) -> None:
        """Append `rule` (e.g. `["INPUT", "-p", "tcp", ...]`) with iptables/ip6tables in the namespace."""
        tool = "ip6tables" if ipv6 else "iptables"
        self.run([tool, "-A", *rule])
        self.iptables_rules.append((tool, list(rule)))

    def delete_iptables_rules(self) -> None:
        """Delete the rules this object added (deleting the namespace would drop them too)."""
        while self.iptables_rules:
            tool, rule = self.iptables_rules.pop()
            self.run([tool, "-D", *rule], check=False)

    def delete(self) -> None:
        """Delete the namespace if we created it (its interfaces, qdiscs and iptables rules go with it)."""
        if not self.created:
            return
        self.delete_iptables_rules()
        run(["ip", "netns", "delete", self.name], check=False)
        self.created = False
        log.info("namespace %s deleted", self.name)
