#!/usr/bin/env python3
"""Render the state tables of analyzer/state to Markdown (like h11's make-state-diagrams).

Usage: scripts/render_state_tables.py [OUT.md]   (stdout when no file is given)

For every machine and side: the RFC 7143 §8.1.5-style matrix (from-state rows, to-state
columns, RFC labels in the cells), then one row per (state, input) pair of the table.
"""

from __future__ import annotations

import sys
from enum import Enum

from analyzer.state import cleanup, connection, coupling, session
from analyzer.state.machine import Spec, rows


def _sid(state: Enum) -> str:
    rfc_id = getattr(state, "rfc_id", "?")
    return f"{rfc_id} {state.value}"


def render(spec: Spec) -> str:  # type: ignore[type-arg]
    table = rows(spec)
    states = [s for s in spec.states if s is not spec.unknown and any(s in (a, b) for a, _, _, b in table)]
    cells: dict[tuple[Enum, Enum], set[str]] = {}
    for src, _, label, dst in table:
        cells.setdefault((src, dst), set()).add(label)
    out = [f"### {spec.machine} machine, {spec.side}", "",
           "| from \\ to | " + " | ".join(_sid(s) for s in states) + " |",
           "|---|" + "---|" * len(states)]
    for src in states:
        row = [", ".join(sorted(cells.get((src, dst), set()), key=lambda x: int(x[1:]))) or "-" for dst in states]
        out.append(f"| {_sid(src)} | " + " | ".join(row) + " |")
    out += ["", "| label | from | input | to |", "|---|---|---|---|"]
    for src, inp, label, dst in sorted(table, key=lambda r: (int(r[2][1:]), r[0].name, r[1].name)):
        out.append(f"| {label} | {_sid(src)} | {inp.name}: {inp.value} | {_sid(dst)} |")
    stays = [(s, sorted(i.name for i in inputs)) for s, inputs in spec.stays.items() if inputs]
    if stays:
        out += ["", "Legal without a transition (not RFC rows): "
                + "; ".join(f"{_sid(s)}: {', '.join(names)}" for s, names in stays)]
    return "\n".join(out) + "\n"


def render_coupling() -> str:
    """The state-triggered tables of ``analyzer/state/coupling.py`` (h11's second table)."""
    out = ["### state-triggered coupling (analyzer/state/coupling.py)", "",
           "Cleanup -> connection (same side): the connection transition carries the cleanup label.", "",
           "| cleanup reached | connection in | connection moves to |", "|---|---|---|"]
    for (cl, conn), nxt in coupling.CLEANUP_TRIGGERED.items():
        out.append(f"| {_sid(cl)} | {_sid(conn)} | {_sid(nxt)} |")
    out += ["", ("Connection -> cleanup / login / tasks / session, evaluated in this order after every "
            "connection step:"), "", "| when | states | guard | machine | effect | RFC |", "|---|---|---|---|---|---|"]
    for row in coupling.CONNECTION_TRIGGERED:
        states = ", ".join(_sid(s) for s in sorted(row.states, key=lambda s: s.name))
        out.append(f"| {row.edge.value} | {states} | {row.guard.value} | {row.target} | {row.effect.value} | "
                   f"{row.rfc} |")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    specs = [connection.INITIATOR, connection.TARGET, cleanup.INITIATOR, cleanup.TARGET, session.INITIATOR,
             session.TARGET]
    text = "# iSCSI state tables (RFC 7143 §8), rendered from analyzer/state\n\n" + "\n".join(
        render(s) for s in specs) + "\n" + render_coupling()
    if len(argv) > 1:
        with open(argv[1], "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
