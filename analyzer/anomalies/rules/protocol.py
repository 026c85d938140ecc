"""Protocol findings from the state layer's checks and from PDU digests (RFC 7143 §4.2.2, §6.2,
§8, §11, §13).

Kinds: cmdsn_out_of_window, cmdsn_duplicate, statsn_gap, datasn_gap, expdatasn_mismatch,
r2t_overrun, max_recv_data_segment_exceeded, burst_length_exceeded,
unsolicited_data_not_negotiated, request_after_logout, unexpected_response, itt_reused,
digest_error, state_violation, negotiation_issue, unknown_opcode, analyzer_error; from the state
layer's Deviation records: close_session_left_connection_open, logout_response_unexpected,
logout_closed_wrong_connection, duplicate_cid_in_session, tmf_response_inconsistent,
connection_dropped_on_request, target_protocol_deviation.
"""

from __future__ import annotations

from analyzer.anomalies.context import direction_word
from analyzer.anomalies.rules.base import Handler, Rule
from analyzer.iscsi.opcodes import opcode_name
from analyzer.records import T2I, Pdu, UnknownPdu
from analyzer.state.events import Deviation, NegotiationIssue, SequenceEvent, TrackerError, Violation

#: SequenceEvent.kind -> anomaly kind
SEQUENCE_KIND_MAP = {
    "cmdsn_out_of_window": "cmdsn_out_of_window",
    "cmdsn_duplicate": "cmdsn_duplicate",
    "statsn_gap": "statsn_gap",
    "datasn_gap": "datasn_gap",
    "r2tsn_gap": "datasn_gap",
    "expdatasn_mismatch": "expdatasn_mismatch",
    "r2t_overrun": "r2t_overrun",
    "max_recv_dsl_exceeded": "max_recv_data_segment_exceeded",
    "burst_length_exceeded": "burst_length_exceeded",
    "unsolicited_data_not_negotiated": "unsolicited_data_not_negotiated",
    "request_after_logout": "request_after_logout",
    "unexpected_response": "unexpected_response",
    "itt_in_use": "itt_reused",
}

_LEADS = {
    "cmdsn_out_of_window": "Command outside the command window",
    "cmdsn_duplicate": "CmdSN reused",
    "statsn_gap": "StatSN gap",
    "datasn_gap": "DataSN gap",
    "r2tsn_gap": "R2TSN gap",
    "expdatasn_mismatch": "ExpDataSN mismatch",
    "r2t_overrun": "Write data beyond what was solicited",
    "max_recv_dsl_exceeded": "Data segment too large",
    "burst_length_exceeded": "Burst length exceeded",
    "unsolicited_data_not_negotiated": "Unsolicited data not allowed",
    "request_after_logout": "Request after Logout",
    "unexpected_response": "Response for no open task",
    "itt_in_use": "ITT reused",
}

#: NegotiationIssue kinds that are harmless answers (§6.2 special values): info
_NEG_INFO = frozenset({"not_understood", "irrelevant", "unanswered"})


class SequenceRule(Rule):
    """The state layer's numbering and flow-control checks, as findings."""

    def handlers(self) -> dict[type, Handler]:
        return {SequenceEvent: self.event}

    def event(self, ev: SequenceEvent) -> None:
        ctx = self.ctx
        kind = SEQUENCE_KIND_MAP.get(ev.kind)
        if kind is None:
            return
        lead = _LEADS.get(ev.kind, ev.kind.replace("_", " ").capitalize())
        msg = f"{lead}: {ev.detail}"
        if ev.itt is not None and ev.itt != 0xFFFFFFFF and "ITT" not in ev.detail:
            msg += f" (ITT 0x{ev.itt:x})"
        sev = None
        limit_key: tuple[object, ...] = (ev.conn, ev.kind)
        if ev.kind == "cmdsn_out_of_window":
            if self._window_stale(ev):
                sev = "info"
                msg += ("; the capture lost target->initiator data since the last window update, so the window "
                        "we know may be stale")
                limit_key = (ev.conn, ev.kind, "stale")
            else:
                msg += "; the target must silently discard it, so it will not be answered"
        elif ev.kind == "max_recv_dsl_exceeded" and ev.phase == "login":
            sev = "warning"
        ctx.emit(kind, ev.frame, ev.ts_ns, msg + ".", session=ev.session, conn=ev.conn, severity=sev,
                 limit_key=limit_key, limit=5)

    def _window_stale(self, ev: SequenceEvent) -> bool:
        """ExpCmdSN/MaxCmdSN come from target PDUs: stale if target->initiator data went missing since."""
        ctx = self.ctx
        conns = ctx.sessions[ev.session].conns if ev.session in ctx.sessions else [ev.conn]
        for cn in conns or [ev.conn]:
            c = ctx.conns.get(cn)
            if c is None:
                continue
            loss = c.last_loss_ts.get(T2I)
            if loss is not None and loss >= c.last_pdu_ts.get(T2I, 0):
                return True
        return False


#: Deviation.kind -> anomaly kind (kinds not listed become target_protocol_deviation)
DEVIATION_KIND_MAP = {
    "close_session_left_connection_open": "close_session_left_connection_open",
    "logout_response_unexpected": "logout_response_unexpected",
    "logout_closed_wrong_connection": "logout_closed_wrong_connection",
    "duplicate_cid_in_session": "duplicate_cid_in_session",
    "tmf_response_inconsistent": "tmf_response_inconsistent",
    "connection_dropped_on_request": "connection_dropped_on_request",
    "reinstated_session_left_open": "target_protocol_deviation",
}

_DEVIATION_LEADS = {
    "close_session_left_connection_open": "Close-session Logout left a connection open",
    "logout_response_unexpected": "Unexpected Logout Response",
    "logout_closed_wrong_connection": "Logout closed the wrong connection",
    "duplicate_cid_in_session": "Two connections with the same CID",
    "tmf_response_inconsistent": "Inconsistent task management response",
    "connection_dropped_on_request": "Connection dropped in answer to a request",
    "reinstated_session_left_open": "Reinstated session left open",
}


class DeviationRule(Rule):
    """The state layer's Deviation records (a peer deviating from RFC 7143 in a way the state
    machines absorbed), as findings."""

    def handlers(self) -> dict[type, Handler]:
        return {Deviation: self.deviation}

    def deviation(self, d: Deviation) -> None:
        kind = DEVIATION_KIND_MAP.get(d.kind, "target_protocol_deviation")
        lead = _DEVIATION_LEADS.get(d.kind, "Protocol deviation")
        who = "" if d.side == "target" else f" ({d.side})"
        frames = [d.frame] + ([d.start_frame] if d.start_frame else [])
        self.ctx.emit(kind, d.frame, d.ts_ns, f"{lead}{who}: {d.detail}.", session=d.session, conn=d.conn,
                      frames=frames, rfc=d.rfc, limit_key=(d.session, d.kind), limit=10)


class DigestRule(Rule):
    """digest_error: a PDU whose CRC32C header or data digest did not match."""

    def handlers(self) -> dict[type, Handler]:
        return {Pdu: self.pdu}

    def pdu(self, pdu: Pdu) -> None:
        hd, dd = pdu.header_digest, pdu.data_digest
        if hd != "bad" and dd != "bad":
            return
        which = " and ".join(w for w, v in (("header", hd), ("data", dd)) if v == "bad")
        self.ctx.emit("digest_error", pdu.frame, pdu.ts_ns,
                      f"{which.capitalize()} digest (CRC32C) mismatch on a {opcode_name(pdu.opcode)} PDU "
                      f"(ITT 0x{pdu.itt:x}, {direction_word(pdu.direction)}): the bytes were corrupted on the "
                      f"way or the sender computes digests wrongly.",
                      conn=pdu.conn, frames=[pdu.first_frame, pdu.frame], limit_key=(pdu.conn, pdu.direction),
                      limit=10)


class StateRule(Rule):
    """state_violation, negotiation_issue, unknown_opcode, analyzer_error."""

    def handlers(self) -> dict[type, Handler]:
        return {Violation: self.violation, NegotiationIssue: self.negotiation, UnknownPdu: self.unknown,
                TrackerError: self.tracker_error}

    def violation(self, v: Violation) -> None:
        ctx = self.ctx
        c = ctx.conns.get(v.conn) if v.conn else None
        lossy = c is not None and bool(c.last_loss_ts)
        observer = v.observer_limited or lossy or v.state == "UNKNOWN"
        why = ""
        if v.state == "UNKNOWN":
            why = " (the capture began mid-connection, so the state is a guess)"
        elif lossy:
            why = " (the capture lost data of this connection, which may hide the PDU that explains it)"
        ctx.emit("state_violation", v.frame, v.ts_ns,
                 f"The {v.side}'s {v.machine} state machine got {v.input.replace('_', ' ')} in state {v.state}, "
                 f"which RFC 7143 does not allow: {v.detail}{why}.",
                 session=v.session, conn=v.conn, severity="info" if observer else "warning",
                 limit_key=(v.conn, v.machine, v.side, v.state, v.input), limit=3)

    def negotiation(self, n: NegotiationIssue) -> None:
        vendor = n.key.startswith(("X-", "X#", "x-"))
        sev = "info" if vendor or n.kind in _NEG_INFO else "warning"
        self.ctx.emit("negotiation_issue", n.frame, n.ts_ns, f"Key {n.key}: {n.detail}.", session=n.session,
                      conn=n.conn, severity=sev, limit_key=(n.session, n.key, n.kind), limit=3)

    def unknown(self, pdu: UnknownPdu) -> None:
        self.ctx.emit("unknown_opcode", pdu.frame, pdu.ts_ns,
                      f"{opcode_name(pdu.opcode)} PDU ({direction_word(pdu.direction)}) was framed but not decoded.",
                      conn=pdu.conn, frames=[pdu.first_frame, pdu.frame], limit_key=(pdu.conn, pdu.opcode), limit=5)

    def tracker_error(self, e: TrackerError) -> None:
        self.ctx.emit("analyzer_error", e.frame, e.ts_ns, f"The state layer skipped a record: {e.detail}.",
                      conn=e.conn, limit_key=("tracker",), limit=5)
