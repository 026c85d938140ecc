"""The rule interface: Zeek-style handlers per record type over a shared :class:`Context`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from analyzer.anomalies.context import Context

Handler = Callable[[Any], None]


class Rule:
    """A family of anomaly kinds. Subclasses return their handlers from ``handlers``."""

    #: True when ``on_time`` must run after every record (time-based rules)
    timed = False

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def handlers(self) -> dict[type, Handler]:
        """Record type -> handler; a handler for a base class also gets its subclasses."""
        return {}

    def on_time(self, now: int) -> None:
        """Capture time advanced to ``now`` (only called when ``timed``)."""

    def finish(self, ts_ns: int) -> None:
        """End of capture."""

    def forget(self, sid: str | None, conns: frozenset[str]) -> None:
        """Session ``sid`` (None: none) and connections ``conns`` ended and will not be seen
        again: drop what is kept for them. Rules with history across sessions prune it to what
        they still need (``self.ctx.now`` is the capture clock)."""
