"""Running and ending the lab's processes.

Every long-lived process the lab starts goes through `ProcessRegistry.start`, which records its pid; the lab
only ever signals those pids (never by name). Short commands go through `run`, which always has a timeout.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.lab.errors import LabError

log = logging.getLogger(__name__)

#: Default timeout (seconds) for short commands such as `ip`, `tgtadm`, `iptables`.
DEFAULT_TIMEOUT = 30.0


def run(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion with a timeout and return its result (text stdout/stderr).

    With `check`, a non-zero exit or a timeout raises `LabError` naming the command and its stderr.
    """
    log.debug("run: %s", " ".join(argv))
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False,
            errors="replace",
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"command timed out after {timeout:g}s: {' '.join(argv)}") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        tail = detail[-1] if detail else "(no output)"
        raise LabError(f"command failed (exit {proc.returncode}): {' '.join(argv)}: {tail}")
    return proc


@dataclass
class Started:
    """A background process the lab started: its pid, its argv and where its output goes."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    started_at: float

    @property
    def pid(self) -> int:
        """The process id recorded at start."""
        return self.popen.pid

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.popen.poll() is None

    def stdout(self) -> str:
        """Everything the process wrote to stdout so far."""
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        """Everything the process wrote to stderr so far."""
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""


@dataclass
class ProcessRegistry:
    """Starts background processes with output in `log_dir`, and ends exactly those (by pid)."""

    log_dir: Path
    started: list[Started] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> Started:
        """Start `argv` in the background; stdout/stderr go to `<log_dir>/<name>.out|.err`."""
        index = len(self.started)
        out = self.log_dir / f"{index:02d}-{name}.out"
        err = self.log_dir / f"{index:02d}-{name}.err"
        log.debug("start %s: %s", name, " ".join(argv))
        with open(out, "wb") as fo, open(err, "wb") as fe:
            try:
                popen = subprocess.Popen(list(argv), stdout=fo, stderr=fe, stdin=subprocess.DEVNULL,
                                         env=env, cwd=cwd)
            except OSError as exc:
                raise LabError(f"cannot start {name}: {exc}") from exc
        proc = Started(name, list(argv), popen, out, err, time.monotonic())
        self.started.append(proc)
        return proc

    def stop(self, proc: Started, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Send `sig` to the recorded pid, wait up to `timeout`, then SIGKILL; return the exit status."""
        if proc.alive():
            _signal_pid(proc.pid, sig)
            try:
                return proc.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) ignored signal %d; sending SIGKILL", proc.name, proc.pid, sig)
                _signal_pid(proc.pid, signal.SIGKILL)
                try:
                    return proc.popen.wait(timeout=5.0)
                except subprocess.TimeoutExpired:
                    log.error("%s (pid %d) did not exit after SIGKILL", proc.name, proc.pid)
                    return None
        return proc.popen.returncode

    def wait(self, proc: Started, timeout: float) -> int:
        """Wait for a process to exit on its own; raise `LabError` (after killing it) on timeout."""
        try:
            return proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.stop(proc, signal.SIGKILL)
            raise LabError(f"{proc.name} (pid {proc.pid}) did not finish within {timeout:g}s") from exc

    def stop_all(self, keep: Started | None = None) -> None:
        """End every process still running except `keep`, newest first (clients, then the capture)."""
        for proc in reversed(self.started):
            if proc is not keep and proc.alive():
                self.stop(proc, signal.SIGTERM, timeout=5.0)


def _signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until it returns True or `timeout` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
