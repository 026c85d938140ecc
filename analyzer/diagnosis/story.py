"""A few plain sentences of what happened: one per drop with its recovery, then paths and queues."""

from __future__ import annotations

from typing import TYPE_CHECKING

from analyzer.diagnosis.causes import CAUSES

if TYPE_CHECKING:
    from analyzer.diagnosis.engine import Diagnosis


def _t(ts: int | None, t0: int | None) -> str:
    if ts is None:
        return "?"
    return f"+{(ts - (t0 or ts)) / 1e9:.3f} s"


def _ms(v: float | None) -> str:
    if v is None:
        return "?"
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.1f} ms"


def story(d: Diagnosis) -> list[str]:
    """Sentences for the summary: why each connection dropped, how long I/O stopped, what stayed down."""
    t0 = d.capture_start_ns
    rec = {r.conn: r for r in d.recoveries}
    lines: list[str] = []
    for x in d.drops:
        if x.cause == "capture_end":
            continue
        who = f"session {x.session}" if x.session else "a connection"
        line = (f"At {_t(x.ts_ns, t0)} (frame {x.frame}) {who} from {x.initiator} to {x.target} "
                f"({x.initiator_address} -> {x.portal}) ended: {CAUSES[x.cause].title.lower()} "
                f"({x.confidence} confidence). {x.explanation}")
        r = rec.get(x.conn)
        if r is not None:
            if r.io_stopped_ms is not None:
                via = {"same_session": "on the same session", "reinstated_session": "on a reinstated session",
                       "new_session": "on a new session over the same path", "other_path": "over another path"
                       }.get(r.resumed_via, r.resumed_via)
                line += (f" I/O from this initiator to this target stopped for {_ms(r.io_stopped_ms)} (last command "
                         f"completed in frame {r.last_completed_frame}, the next in frame {r.first_completed_frame} "
                         f"{via}{', session ' + r.resumed_session if r.resumed_session else ''}).")
            else:
                line += " I/O from this initiator to this target never resumed in the capture."
            if r.lost_commands:
                line += (f" {r.lost_commands} command(s) were lost with the connection"
                         + (f", {r.retried_commands} of them retried after it." if r.retried_commands else "."))
        if x.initiator_log:
            line += f" Initiator logs would say: {x.initiator_log}."
        lines.append(line)
    for p in d.paths:
        if p.never_came_back:
            lines.append(f"The path {p.initiator_address} -> {p.portal} ({p.initiator} to {p.target}) went down and "
                         "never came back in the capture.")
        if p.duplicate_sessions:
            lines.append(f"Sessions {', '.join(p.duplicate_sessions)} were in full feature phase at the same time on "
                         f"the same path {p.initiator_address} -> {p.portal}.")
    for q in d.queues:
        if q.window_exhausted:
            lines.append(f"Session {q.session} used up its command window {q.window_exhausted} time(s) "
                         f"(CmdSN reached MaxCmdSN; {q.window_exhausted_ms:.1f} ms in total, longest "
                         f"{q.window_exhausted_max_ms:.1f} ms).")
    unanswered = [n for n in d.nops if n.outcome != "answered"]
    if unanswered:
        lines.append(f"{len(unanswered)} NOP ping(s) were never answered.")
    for lg in d.logins:
        line = f"Login on {lg.conn} failed ({lg.status or 'no status'} {lg.status_name}): {lg.explanation}"
        if lg.diff:
            keys = ", ".join(f"{k}" for _, k, _, _ in lg.diff[:6])
            line += f" Compared with the good login on {lg.compared_conn}, these keys differ: {keys}."
        lines.append(line)
    return lines
