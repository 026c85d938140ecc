"""AnomalyEngine: pure rules over the record stream (house style §1, §2).

``feed(record)`` takes every record in capture order (TCP, PDUs, state-layer records) and
returns the :class:`~analyzer.records.Anomaly` records it can decide on so far;
``tick(ts_ns)`` advances capture time for the time-based rules in live mode (NOP ping
timeouts, cleanup deadlines); ``finish(ts_ns)`` flushes what is pending at the end of the
capture (per-stream summaries, unanswered tasks, rate-limit summaries).

Rules (``rules/``) register handlers per record type; a handler registered for a base class
(e.g. ``Pdu``) also receives its subclasses. The engine never raises on input: an internal
error becomes an ``analyzer_error`` finding.
"""

from __future__ import annotations

from collections.abc import Iterable

from analyzer.anomalies.context import Context
from analyzer.anomalies.rules import RULES
from analyzer.anomalies.rules.base import Handler, Rule
from analyzer.records import Anomaly, Record


class AnomalyEngine:
    """Runs every anomaly rule over a record stream."""

    def __init__(self, rules: tuple[type[Rule], ...] = RULES) -> None:
        self.ctx = Context()
        self.rules = [cls(self.ctx) for cls in rules]
        self._registry: dict[type, list[Handler]] = {}
        for rule in self.rules:
            for typ, fn in rule.handlers().items():
                self._registry.setdefault(typ, []).append(fn)
        self._dispatch: dict[type, tuple[Handler, ...]] = {}
        self._timed = [r for r in self.rules if r.timed]
        self._finished = False

    def _handlers(self, typ: type) -> tuple[Handler, ...]:
        found = self._dispatch.get(typ)
        if found is None:
            fns: list[Handler] = []
            for base in typ.__mro__:
                fns.extend(self._registry.get(base, ()))
            found = self._dispatch[typ] = tuple(fns)
        return found

    def feed(self, record: Record) -> list[Anomaly]:
        """Account for one record; return the findings decided so far."""
        ctx = self.ctx
        if type(record) is Anomaly:
            return []
        try:
            if ctx.has_deferred and record.frame != ctx.frame:
                ctx.run_deferred()
            ctx.observe(record)
            for fn in self._handlers(type(record)):
                fn(record)
            for rule in self._timed:
                rule.on_time(ctx.now)
        except Exception as exc:  # noqa: BLE001 - never raise on input (house style §2)
            self._internal_error(record.frame, record.ts_ns, f"{type(record).__name__}: {exc!r}")
        return self._take()

    def tick(self, ts_ns: int) -> list[Anomaly]:
        """Capture time advanced to ``ts_ns`` without a record (live mode)."""
        ctx = self.ctx
        try:
            ctx.now = max(ctx.now, ts_ns)
            ctx.run_deferred()
            for rule in self._timed:
                rule.on_time(ctx.now)
        except Exception as exc:  # noqa: BLE001
            self._internal_error(ctx.frame, ts_ns, f"tick: {exc!r}")
        return self._take()

    def finish(self, ts_ns: int) -> list[Anomaly]:
        """End of capture: decide everything still pending."""
        ctx = self.ctx
        if self._finished:
            return []
        self._finished = True
        try:
            ctx.now = max(ctx.now, ts_ns)
            ctx.run_deferred()
            for rule in self.rules:
                rule.finish(ctx.now)
            ctx.run_deferred()
        except Exception as exc:  # noqa: BLE001
            self._internal_error(ctx.frame, ts_ns, f"finish: {exc!r}")
        ctx.flush_suppressed()
        return self._take()

    def forget(self, session_id: str, conns: Iterable[str] = ()) -> list[Anomaly]:
        """Session ``session_id`` ended and will not be seen again (the tracker forgot it): drop
        what the context and the rules keep for it and for its connections (``conns`` plus those
        the context linked to it). Returns the findings that this decides: the checks deferred
        to the end of the current frame, and the summaries of findings the rate limits held
        back for the session (otherwise given at ``finish``). Never called on file analysis."""
        return self._forget(session_id, conns)

    def forget_connection(self, conn: str) -> list[Anomaly]:
        """Like ``forget`` for a connection that belongs to no session (e.g. a port probe)."""
        return self._forget(None, (conn,))

    def _forget(self, sid: str | None, conns: Iterable[str]) -> list[Anomaly]:
        ctx = self.ctx
        try:
            ctx.run_deferred()
            owned = set(conns)
            s = ctx.sessions.get(sid) if sid is not None else None
            if s is not None:
                owned.update(s.conns)
            frozen = frozenset(owned)
            for rule in self.rules:
                rule.forget(sid, frozen)
            ctx.forget(sid, frozen)
        except Exception as exc:  # noqa: BLE001
            self._internal_error(ctx.frame, ctx.now, f"forget: {exc!r}")
        return self._take()

    def _internal_error(self, frame: int, ts_ns: int, detail: str) -> None:
        self.ctx.emit("analyzer_error", frame, ts_ns, f"An anomaly rule failed on a record: {detail}.",
                      limit_key=("engine",), limit=5)

    def _take(self) -> list[Anomaly]:
        out = self.ctx.out
        if not out:
            return out
        self.ctx.out = []
        return out
