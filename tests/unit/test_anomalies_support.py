"""Shared helpers for the anomaly tests (no tests here).

``pipe`` runs the real state tracker and the anomaly engine over hand-built records in the
pipeline's order (the tracker's records for an input reach the engine before the input itself);
``direct`` feeds records straight to the engine (state-layer records built by hand).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from state_helpers import LEADING_KEYS_I, LEADING_KEYS_T, MS, Flow, S, Wire, login  # noqa: F401

from analyzer.anomalies import AnomalyEngine
from analyzer.records import Anomaly, Record
from analyzer.state.tracker import SessionTracker

CONN = "10.0.0.1:40000->10.0.0.2:3260"
CONN2 = "10.0.0.1:40001->10.0.0.2:3260"
CONN3 = "10.0.0.9:40002->10.0.0.2:3260"


def pipe(records: Iterable[Record], *, finish: bool = True, end_ts: int | None = None,
         engine: AnomalyEngine | None = None) -> list[Anomaly]:
    tracker = SessionTracker()
    engine = engine or AnomalyEngine()
    out: list[Anomaly] = []
    last: Record | None = None
    for r in records:
        for derived in tracker.feed(r):
            out += engine.feed(derived)
        out += engine.feed(r)
        last = r
    if finish:
        ts = end_ts if end_ts is not None else (last.ts_ns if last else 0)
        for derived in tracker.finish(ts):
            out += engine.feed(derived)
        out += engine.finish(ts)
    return out


def direct(records: Iterable[Record], *, finish: bool = True, end_ts: int | None = None) -> list[Anomaly]:
    engine = AnomalyEngine()
    out: list[Anomaly] = []
    last: Record | None = None
    for r in records:
        out += engine.feed(r)
        last = r
    if finish:
        out += engine.finish(end_ts if end_ts is not None else (last.ts_ns if last else 0))
    return out


def kinds(out: Iterable[Anomaly]) -> Counter[str]:
    return Counter(a.kind for a in out)


def only(out: Iterable[Anomaly], kind: str) -> list[Anomaly]:
    return [a for a in out if a.kind == kind]


def one(out: Iterable[Anomaly], kind: str) -> Anomaly:
    found = only(out, kind)
    assert len(found) == 1, (kind, [(a.kind, a.message) for a in out])
    return found[0]


def logged_in(wire: Wire, conn: str = CONN, **kw: object) -> tuple[Flow, list[Record]]:
    """A flow with its TCP handshake and a two-PDU login (security stage skipped)."""
    f = Flow(wire, conn=conn)
    return f, [f.opened(), *login(f, **kw)]  # type: ignore[arg-type]
