"""SIGINT/SIGTERM for the live command: the first asks for a clean stop, the second for an immediate one."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class StopSignals:
    """SIGINT/SIGTERM turned into a counter: the first asks for a clean stop, the second for an
    immediate one. Install it before starting the capture so no signal falls between the two."""

    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()
        self._old: dict[int, Any] = {}

    def _on(self, signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        self.event.set()

    def install(self) -> StopSignals:
        """Take over SIGINT and SIGTERM (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._on)
        return self

    def restore(self) -> None:
        """Give the previous handlers back."""
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()
