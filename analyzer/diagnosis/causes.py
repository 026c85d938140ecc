"""The documented classification of why a connection ended without a clean logout.

Each cause names the wire evidence it rests on. The observer sees only the capture, so some
causes are inferences (RFC notes §8): the confidence says how strong the evidence is. The
rules, in the order ``engine.classify`` applies them, are in ``RULES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Cause:
    name: str
    title: str
    meaning: str  #: what happened, in words
    evidence: str  #: what on the wire shows it


CAUSES: Final[dict[str, Cause]] = {c.name: c for c in (
    Cause("login_failure", "Login failed",
          "The connection never reached full feature phase: the target refused the login (Status-Class "
          "not 0) or the connection closed during the login.",
          "A final Login Response with Status-Class 2 or 3 (RFC 7143 §11.13.5), or FIN/RST while in login."),
    Cause("logout_failure", "Logout failed",
          "The initiator asked to log out and the target answered with a non-zero Logout Response, then "
          "the connection ended anyway.",
          "Logout Response with Response != 0 (§11.15.1) before the end."),
    Cause("reinstated", "Replaced by a reinstatement",
          "A new login with the same initiator port (ISID) replaced this session or connection; the "
          "target closed the old one as RFC 7143 §6.3.4/§6.3.5 require.",
          "A Login Request with the same ISID (and TSIH 0 or the session's TSIH) on another connection."),
    Cause("target_requested", "Target requested logout or announced the drop",
          "The target sent an Asynchronous Message asking for a logout (event 1) or announcing that it drops "
          "this connection (2) or all connections of the session (3), then the connection ended.",
          "Async Message with AsyncEvent 1, 2 or 3 (§11.9.1) before the end."),
    Cause("target_restart", "Target restarted",
          "The target process or host went away and came back: every logged-in connection to the portal "
          "ended from the target side at once, or the next login got a session handle (TSIH) that is not "
          "newer than the dropped one (the target lost its session table), or connection attempts were "
          "refused.",
          "Target FIN/RST on all connections to the portal within 2 s; a later TSIH <= the dropped one "
          "(tgtd numbers sessions from 0x0100 again after a restart); SYN answered by RST (not yet visible: "
          "the TCP layer emits no record for a refused SYN)."),
    Cause("nop_timeout", "NOP timeout",
          "One side pinged with NOP (§11.18/§11.19), the other never answered, and the pinger closed the "
          "connection: the peer was hung, or the link was too busy or broken for the ping to get through.",
          "Unanswered NOP-In (TTT != 0xffffffff) before a target close, or unanswered NOP-Out (ITT set) "
          "before an initiator close."),
    Cause("network_failure", "Network path failure",
          "The path between initiator and target stopped delivering: retransmissions, zero windows or "
          "silence in both directions before the end, with no orderly close.",
          "TCP retransmissions or zero-window episodes just before the end, or both directions silent "
          "until the capture ends, without FIN/RST (or a RST after the retransmissions). Checked before the NOP "
          "timeout: NOP pings lost on a dead path are a consequence, not the cause."),
    Cause("target_protocol_drop", "Target dropped the connection in answer to a request",
          "The target closed or reset the connection right after a request it would not process (a "
          "protocol error in the target's view: stale CmdSN, unsupported Text request, ...).",
          "The tracker's connection_dropped_on_request deviation (§4.2.2.1, §11.10, §11.17)."),
    Cause("initiator_gone", "Initiator process or host gone",
          "The initiator closed (FIN) or reset (RST) the connection without a logout: its process was "
          "killed or exited, or its host rebooted; or the initiator fell silent and the target timed it "
          "out.",
          "FIN or RST from the initiator first, no Logout Request; or a target close after >= 5 s without "
          "any PDU from the initiator."),
    Cause("admin_drop", "Administrator drop on the target",
          "The target closed or reset a logged-in connection with no Asynchronous Message, no transport "
          "trouble and no unanswered request before it: the signature of an operator dropping the "
          "session or connection on the target (tgtadm --op delete, targetcli, an array's 'drop session' "
          "button) or of load balancing that moves the session.",
          "FIN/RST from the target while LOGGED_IN; the initiator was active and answered every ping; "
          "no retransmissions before it; other connections to the portal were not affected."),
    Cause("capture_end", "Capture ended",
          "The capture ended while the connection was still open; nothing on the wire says it failed.",
          "No FIN/RST and no logout; traffic until the end of the capture."),
)}

#: Confidence levels, strongest first.
CONFIDENCES: Final = ("high", "medium", "low")

#: The order the rules are tried in (first match wins), as documented.
RULES: Final = (
    "login_failure", "reinstated", "logout_failure", "target_requested", "target_protocol_drop", "target_restart",
    "network_failure", "nop_timeout", "initiator_gone", "admin_drop", "capture_end",
)


def render_markdown() -> str:
    """The cause table as Markdown (docs/initiator-messages.md opens with it)."""
    lines = ["| cause | title | meaning | evidence |", "|---|---|---|---|"]
    for name in RULES:
        c = CAUSES[name]
        lines.append(f"| `{c.name}` | {c.title} | {c.meaning} | {c.evidence} |")
    return "\n".join(lines)
