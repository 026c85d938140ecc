"""The anomaly catalogue: every kind the rules emit, with its default severity, RFC section,
meaning, rule and "what to check next" (rendered into ``docs/anomalies.md`` and the reports).

A kind's severity in the catalogue is its *default*; a rule may lower or raise it for one
finding and says so in ``rule`` (e.g. a UNIT ATTENTION shortly after login is info).
Severities: ``info`` = worth knowing, nothing is broken; ``warning`` = something went
wrong or may go wrong, look at it; ``error`` = I/O was lost or the protocol was broken.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from analyzer.records import SEVERITIES


@dataclass(frozen=True, slots=True)
class Kind:
    """One anomaly kind of the catalogue."""

    name: str  #: stable snake_case kind
    severity: str  #: default severity
    rfc: str  #: RFC 7143 section (or other reference)
    title: str  #: a few words
    meaning: str  #: what it means, for a storage engineer
    rule: str  #: when exactly it fires and how its severity is chosen
    check_next: str  #: what to look at next
    group: str  #: catalogue section


def _k(group: str, name: str, severity: str, rfc: str, title: str, meaning: str, rule: str,
       check_next: str) -> Kind:
    assert severity in SEVERITIES, severity
    return Kind(name, severity, rfc, title, meaning, rule, check_next, group)


_LOGIN = "Login and authentication"
_LOGOUT = "Logout"
_CONN = "Connections and sessions"
_TASK = "Tasks and SCSI"
_NUM = "Numbering and flow control"
_WIRE = "Transport and capture"
_STATE = "State machines and negotiation"

#: Every kind, in catalogue order.
CATALOGUE: Final[tuple[Kind, ...]] = (
    # ------------------------------------------------------------------ login
    _k(_LOGIN, "login_failed", "error", "§11.13.5", "Login failed",
       "The target refused a login (Status-Class 2 = initiator error, 3 = target error), or the connection "
       "closed while the login phase was still running. The initiator gets no access through this connection.",
       "Login Response with Status-Class 2 or 3: error. Login phase cut short by a FIN/RST (no final Login "
       "Response): warning.",
       "Status 0x0201/0x0202: CHAP user/secret and ACLs on the target. 0x0203/0x0204: TargetName spelling and "
       "whether the target is exported on this portal. 0x0206/0x0208: MaxConnections and session limits. "
       "Class 3: target logs and resources. Cut-short logins: which side closed and why (target login timeout, "
       "initiator gave up)."),
    _k(_LOGIN, "login_redirected", "info", "§11.13.5 (class 1), §13.8", "Login redirected",
       "The target answered with Status-Class 1 (target moved temporarily/permanently) and a TargetAddress: "
       "the initiator must log in again at that address. This is load balancing or a portal move, not a "
       "failure.",
       "Login Response with Status-Class 1: info.",
       "Check that the initiator followed the redirect (a new connection to the TargetAddress); for "
       "'moved permanently' update the initiator's portal configuration."),
    _k(_LOGIN, "no_authentication", "info", "§12, §13 (AuthMethod)", "Normal session without authentication",
       "A Normal session logged in with AuthMethod=None (or skipped the security stage): anyone who can reach "
       "the portal with this InitiatorName gets the LUNs.",
       "Once per Normal session whose leading login is in the capture and used no CHAP/SRP/KRB5: info.",
       "Whether the target should require CHAP (and mutual CHAP), and whether ACLs restrict InitiatorNames."),
    # ------------------------------------------------------------------ logout
    _k(_LOGOUT, "logout_failed", "warning", "§11.15.1", "Logout failed",
       "The target answered a Logout Request with a failure: CID not found, connection recovery not supported, "
       "or cleanup failed. The connection or session was not cleanly closed.",
       "Logout Response code 1 (CID not found) or 2 (recovery not supported): warning; 3 (cleanup failed): "
       "error.",
       "The Logout Request's reason and CID (frames listed), ErrorRecoveryLevel of the session, and target "
       "logs around the cleanup."),
    _k(_LOGOUT, "logout_unanswered", "warning", "§11.14, §11.15", "Logout Request not answered",
       "The initiator asked to log out but no Logout Response came before the connection closed or the "
       "capture ended. Its commands may still be considered active by the target.",
       "Logout task still open when its connection closed: warning. Still open at capture end: warning if it "
       "waited >= 2 s, else not reported (the capture just stopped).",
       "Whether the target is hung or overloaded; whether the initiator closed TCP without waiting for the "
       "response; what the target logged for that connection."),
    _k(_LOGOUT, "logout_response_unexpected", "warning", "§11.15.1", "Unexpected Logout Response",
       "The target answered a Logout Request with a code the request or the session did not allow: 0 (closed "
       "successfully) for a CID no connection of the session has (expected 1, CID not found), or 0 for a "
       "'remove the connection for recovery' Logout at ErrorRecoveryLevel 0 (expected 2, connection recovery "
       "not supported). The initiator believes something happened that did not.",
       "From the state layer's Deviation records: warning. A CID on a connection the capture does not contain "
       "(another portal) would also explain the first case; not reported for sessions seen only mid-stream.",
       "The Logout Request's reason and CID (frames listed), the session's ErrorRecoveryLevel and connections, "
       "and the target's logout handling (target software version)."),
    _k(_LOGOUT, "logout_closed_wrong_connection", "warning", "§11.14", "Logout closed the wrong connection",
       "A successful Logout naming another connection's CID (sent on a different connection) did not close the "
       "named connection: the target closed the connection that carried the Logout instead, and/or kept the "
       "named one in full feature phase. The initiator's view of its connections no longer matches the "
       "target's.",
       "Target closed the carrier right after answering 0 (no PDU in between): warning. Target sent PDUs on "
       "the named connection after answering 0: warning.",
       "Which connections the initiator still uses afterwards, and the target's CID handling (some targets "
       "ignore the CID and always close the connection the Logout arrived on)."),
    _k(_LOGOUT, "close_session_left_connection_open", "warning", "§11.14",
       "Close-session Logout left a connection open",
       "After a successful 'close the session' Logout the target kept another connection of the session in full "
       "feature phase (it sent PDUs on it). RFC 7143 ends every connection of the session; the analyzer keeps "
       "the connection LOGGED_IN as the wire shows and its tasks are not counted as terminated.",
       "The target sent a PDU on another connection of the session after the close-session Logout Response: "
       "warning (once per connection).",
       "Whether the initiator also kept using the connection (request_after_logout), and the target's logout "
       "implementation (it may handle the reason code as 'close the connection')."),
    _k(_LOGOUT, "request_after_logout", "warning", "§11.14", "Request after Logout",
       "The initiator sent a new request on a connection after its Logout Request (or on any connection of the "
       "session after a close-session Logout). RFC 7143 forbids it; the target will not execute it.",
       "From the state layer's request_after_logout check: warning.",
       "Initiator software bug or a race between its I/O path and its logout path; see which request and "
       "whether it got an answer."),
    # ------------------------------------------------------------------ connections & sessions
    _k(_CONN, "connection_dropped", "warning", "§7.5, §8.1 (T15/T16)", "Connection dropped without logout",
       "A logged-in connection's TCP was closed (FIN) or reset (RST) without an iSCSI Logout. Tasks in flight "
       "on it are lost unless the initiator recovers them.",
       "Initiator FIN with nothing in flight and no Async request: info (the initiator just walked away). "
       "Announced by an Async Message (events 1/2/3): warning. Initiator RST, or initiator FIN with tasks in "
       "flight: warning. Closed or reset by the target without an Async announcement: warning, error when "
       "tasks were in flight.",
       "Who closed it (in the message), target and initiator logs at that time, network path (RST from a "
       "firewall/load balancer?), and whether the initiator reconnected (look for connection_reinstated / "
       "session_reinstated or a new login)."),
    _k(_CONN, "cleanup_wait_stuck", "warning", "§7.5, §8.2 (M1)", "Connection not cleaned up",
       "A failed connection sat in CLEANUP_WAIT and was neither logged out (explicitly or by reinstatement) "
       "within DefaultTime2Wait + DefaultTime2Retain (negotiated, or from the Logout Response / Async "
       "Message): the target discards its state and the tasks that were on it.",
       "State timed out (M1) with tasks open on the connection: warning (those tasks were dropped without "
       "recovery). Timed out with nothing open: info (the normal end of an abandoned connection). Cleanup "
       "started (IN_CLEANUP) but still unresolved after the deadline: warning. Capture ended before the "
       "deadline: info (no verdict possible).",
       "Whether the initiator tried to reconnect at all (a new login with the same ISID/TSIH/CID), its "
       "replacement-timeout settings, and DefaultTime2Wait/Time2Retain values."),
    _k(_CONN, "session_failed", "warning", "§6.3.6, §8.3 (N3/N5)", "Session failed",
       "The last full-feature connection of a session was lost without a logout: the session is FAILED and "
       "survives only if the initiator continues or reinstates it within Time2Wait + Time2Retain.",
       "Session (target side) entered FAILED: warning; info when the connection drop behind it was info "
       "(initiator closed with nothing in flight).",
       "The connection_dropped finding at the same time, and whether a reinstatement or continuation "
       "followed."),
    _k(_CONN, "session_reinstated", "info", "§6.3.5", "Session reinstated",
       "A new leading login (TSIH 0) with the same InitiatorName and ISID replaced an existing session: the "
       "old session's tasks were terminated (implicit close-session logout).",
       "Old session already FAILED (normal recovery after a drop): info. Old session still LOGGED_IN from the "
       "target's view (the initiator lost its session silently, restarted, or a clone uses the same ISID): "
       "warning. Reinstatement login failed: error. Capture ended during it: info.",
       "Why the old session was abandoned (initiator restart, path failover), and whether two hosts share an "
       "InitiatorName/ISID (see duplicate_session)."),
    _k(_CONN, "connection_reinstated", "info", "§6.3.4", "Connection reinstated",
       "A login with the session's TSIH and an existing CID replaced a connection (implicit logout of the old "
       "one): connection recovery.",
       "Old connection already in CLEANUP_WAIT (we saw it fail): info. Old connection still LOGGED_IN from "
       "the target's view (a silent failure): warning. Reinstatement failed: error. Capture ended during it: "
       "info.",
       "What broke the old connection (look just before), and whether its tasks were recovered (ERL>0) or "
       "retried."),
    _k(_CONN, "duplicate_cid_in_session", "warning", "§6.3.4", "Two connections with the same CID",
       "A login with an existing CID succeeded (connection reinstatement), but the target kept answering on the "
       "old connection with that CID: the session now has two connections with one CID, which RFC 7143 rules "
       "out (the reinstatement logs the old connection out implicitly).",
       "The target sent a PDU on the replaced connection after the reinstatement's final Login Response: "
       "warning.",
       "Why the initiator reused a CID that was still in use, and which connection each side now uses for that "
       "CID; target software version."),
    _k(_CONN, "duplicate_session", "warning", "§6.3.5, §11.12.5 (ISID)", "Duplicate or parallel sessions",
       "Warning: the same InitiatorName + ISID is logging in to the same target portal group from two hosts, "
       "or keeps reinstating a live session (a reinstatement fight: each login kills the other's session). "
       "Info: several concurrent sessions from one initiator to one target through different ISIDs or "
       "portals (multipath or cloned sessions).",
       "Warning when a session reinstatement replaces a LOGGED_IN session from a different initiator "
       "address, or when the same nexus reinstates a LOGGED_IN session twice within 120 s. Info when the "
       "number of concurrent LOGGED_IN Normal sessions between one InitiatorName and one TargetName rises "
       "above 1 (reported each time it reaches a new maximum; the paths are listed).",
       "Cloned VMs/hosts with the same InitiatorName, initiator ISID configuration, multipath setup "
       "(expected number of paths)."),
    _k(_CONN, "connection_dropped_on_request", "warning", "§4.2.2.1, §11.10, §11.17",
       "Connection dropped in answer to a request",
       "The target closed or reset a connection right after one request (the only one outstanding, sent "
       "within the last second, with no target PDU since) without answering it: apparently its reaction to "
       "that request, where RFC 7143 wants an answer, a Reject, or (for a command outside the CmdSN window) "
       "silence.",
       "From the state layer's Deviation records: warning. The message names the request and what the RFC "
       "expected (stale or out-of-window CmdSN: ignore it, §4.2.2.1; Text in full feature phase: answer or "
       "reject it, §11.10/§11.17).",
       "The request (frames listed) and the target's logs at that time; whether the initiator recovered "
       "(reconnect, reinstatement)."),
    _k(_CONN, "async_event", "info", "§11.9.1", "Asynchronous Message",
       "The target sent an Async Message: a SCSI asynchronous event, a request to log out, an announcement that "
       "it will drop one or all connections, a request to renegotiate, or a vendor event.",
       "SCSI async event, renegotiation request, vendor event: info. Request logout, drop connection, drop "
       "all connections, task termination: warning.",
       "Target maintenance (port/portal moves, failover), target logs; whether the initiator obeyed (a Logout "
       "within Parameter3 seconds)."),
    # ------------------------------------------------------------------ tasks
    _k(_TASK, "check_condition", "warning", "§11.4.2, SPC-4 sense data", "SCSI CHECK CONDITION",
       "A command ended with CHECK CONDITION; the sense key and ASC/ASCQ say why.",
       "MEDIUM ERROR, HARDWARE ERROR: error. UNIT ATTENTION within 60 s of the session's login, or 'medium may "
       "have changed': info, otherwise warning. ILLEGAL REQUEST 'invalid command operation code', or "
       "'invalid field in CDB' on a probing command (INQUIRY, MODE SENSE, LOG SENSE, REPORT LUNS, ...): info, "
       "otherwise warning. NOT READY on TEST UNIT READY or 'medium not present'/'becoming ready': info. "
       "NO SENSE, RECOVERED ERROR, BLANK CHECK, VOLUME OVERFLOW, COMPLETED: info. Others: warning. After 3 "
       "identical findings (same session, LUN, operation, sense) the rest are counted in one summary.",
       "The LUN and operation; for MEDIUM/HARDWARE errors the backing storage; for UNIT ATTENTION what "
       "changed (reset, reservation, capacity); for ILLEGAL REQUEST the CDB fields."),
    _k(_TASK, "scsi_status", "warning", "§11.4.2, §11.4.3, SAM-5", "SCSI error status",
       "A command ended with a non-GOOD status other than CHECK CONDITION (BUSY, TASK SET FULL, RESERVATION "
       "CONFLICT, ...) or the target reported an iSCSI 'target failure' response.",
       "Target failure response: error. BUSY / TASK SET FULL / RESERVATION CONFLICT / others: warning. "
       "Rate-limited like check_condition.",
       "Target queue depth and load (BUSY, TASK SET FULL), persistent reservations held by other hosts "
       "(RESERVATION CONFLICT), target logs (target failure)."),
    _k(_TASK, "task_management", "info", "§11.5, §11.6", "Task management function",
       "The initiator sent a task management function (ABORT TASK, LOGICAL UNIT RESET, ...) - usually after "
       "a command timed out - and the target answered.",
       "Response 'Function complete': info. Any other response: warning. (An unanswered TMF is "
       "task_unanswered.)",
       "Which task was aborted and why it was slow (task_slow, task_unanswered just before), LUN health."),
    _k(_TASK, "task_unanswered", "warning", "§11.3, §11.14", "Task got no response",
       "Commands (SCSI, task management, text) got no response before their connection dropped or the capture "
       "ended. Tasks a successful logout terminated (§11.14), tasks whose response may be in a capture gap and "
       "commands the target never accepted (CmdSN outside the window, or sent after a Logout Request: see "
       "cmdsn_out_of_window and request_after_logout) are not counted.",
       "One finding per connection drop (all tasks open at that moment) and one per connection at capture "
       "end for tasks that had waited >= 1 s: warning.",
       "The connection_dropped finding at the same time; target latency (task_slow); whether the target "
       "silently discarded out-of-window commands (cmdsn_out_of_window)."),
    _k(_TASK, "tmf_response_inconsistent", "warning", "§11.5.1, §11.6.1", "Inconsistent task management response",
       "The target answered ABORT TASK with 'Task does not exist' for a task it had already sent PDUs for (an "
       "R2T or Data-In), or answered the task after saying it does not exist. The abort did not happen: the "
       "initiator may reuse the ITT or retry the command while the target still executes the original.",
       "'Task does not exist' for a task with target PDUs already seen: warning. The task answered afterwards: "
       "warning.",
       "How the target tracks tasks (some only know tasks that reached their SCSI layer, not writes waiting "
       "for Data-Out), and what the initiator did with the ITT after the TMF."),
    _k(_TASK, "task_slow", "warning", "§11.3", "Task far slower than its peers",
       "A command took far longer than other commands of the same operation on the same target portal and "
       "LUN.",
       "Latency > max(10 x median, 3 x p99, 1 s) of the last <= 2000 finished peers (same portal, LUN, "
       "operation code), judged once >= 20 peers are known (streaming: only earlier peers count). At most "
       "10 findings per peer group, the rest summarised.",
       "Backend latency on the target at that time (disk, RAID rebuild, snapshots), queueing (BUSY / TASK SET "
       "FULL), TCP retransmissions or zero windows on the connection."),
    _k(_TASK, "nop_unanswered", "warning", "§11.18, §11.19", "NOP ping not answered",
       "A NOP-Out ping from the initiator (valid ITT) or a NOP-In ping from the target (valid TTT) got no "
       "answer within 5 s or before the connection closed. The other side is hung, or the path is broken.",
       "Unanswered within 5 s, or still unanswered when the connection closed: warning. Pings whose answer "
       "could be in a capture gap, and pings < 5 s old at capture end, are not reported.",
       "Whether the pinged side was alive (other traffic from it), its CPU/hang state, and the network path."),
    _k(_TASK, "reject", "warning", "§11.17", "Reject PDU",
       "The target rejected a PDU (digest error, protocol error, command not supported, waiting for logout, "
       "...).",
       "Every Reject: warning; at most 10 per connection and reason, the rest summarised.",
       "The rejected PDU (its header is in the Reject's data segment) and the reason; for 'waiting for "
       "logout' the preceding Async Message."),
    # ------------------------------------------------------------------ numbering
    _k(_NUM, "cmdsn_out_of_window", "warning", "§4.2.2.1", "CmdSN outside the command window",
       "A non-immediate command's CmdSN was outside [ExpCmdSN, MaxCmdSN]: the target silently discards it, so "
       "it will never be answered.",
       "warning; info when the target->initiator stream lost capture data since the last window update (our "
       "window may be stale). Rate-limited.",
       "Initiator CmdSN handling, and whether the command was answered anyway (then our view was stale)."),
    _k(_NUM, "cmdsn_duplicate", "warning", "§4.2.2.1", "CmdSN reused",
       "A non-immediate command reused a CmdSN another task already had; the target discards duplicates.",
       "warning. Rate-limited.", "Initiator retry logic (a retry must reuse the ITT as well)."),
    _k(_NUM, "statsn_gap", "warning", "§4.2.2.2", "StatSN gap",
       "Status numbers on a connection skipped values although no capture data was missing: status PDUs were "
       "lost or the target numbered them wrongly.",
       "warning. Suppressed by the state layer after capture gaps. Rate-limited.",
       "Whether the initiator SNACKed or timed out the affected commands; target implementation."),
    _k(_NUM, "datasn_gap", "warning", "§4.2.2.3", "DataSN / R2TSN gap",
       "Data-In, Data-Out or R2T sequence numbers of a task skipped values: data PDUs were lost or misnumbered.",
       "warning (tasks hit by capture gaps excluded). Rate-limited.",
       "Data integrity of the task (its status and residual), SNACKs, ErrorRecoveryLevel."),
    _k(_NUM, "expdatasn_mismatch", "info", "§11.4.8", "ExpDataSN mismatch",
       "A SCSI Response's ExpDataSN disagrees with the number of Data-In and R2T PDUs seen for the task. A target "
       "numbering quirk: initiators at ErrorRecoveryLevel 0 do not use the field; it matters for SNACK recovery.",
       "info (tasks hit by capture gaps excluded). Rate-limited.",
       "Target implementation (some targets send 0 with CHECK CONDITION); lost data PDUs; ErrorRecoveryLevel."),
    _k(_NUM, "r2t_overrun", "error", "§11.7.1, §11.8", "Data-Out beyond what was asked",
       "The initiator sent write data outside the range an R2T solicited, or beyond the command's Expected "
       "Data Transfer Length.",
       "error. Rate-limited.", "Initiator data path; the R2T's BufferOffset/DesiredDataTransferLength."),
    _k(_NUM, "max_recv_data_segment_exceeded", "error", "§13.12", "Data segment above MaxRecvDataSegmentLength",
       "A PDU carried a data segment larger than the receiver declared it can take.",
       "error in full feature phase; warning during login (the login-phase limit is the default 8192). "
       "Rate-limited.",
       "The MaxRecvDataSegmentLength each side declared (connection parameters) and the sender's "
       "implementation."),
    _k(_NUM, "burst_length_exceeded", "warning", "§13.13, §13.14", "Burst length exceeded",
       "An R2T asked for more than MaxBurstLength, or unsolicited/immediate data exceeded FirstBurstLength.",
       "warning. Rate-limited.", "Negotiated MaxBurstLength / FirstBurstLength and the sender."),
    _k(_NUM, "unsolicited_data_not_negotiated", "warning", "§13.10, §13.11", "Unsolicited data not allowed",
       "Immediate data although ImmediateData=No, or unsolicited Data-Out although InitialR2T=Yes.",
       "warning. Rate-limited.", "Negotiated InitialR2T / ImmediateData and the initiator's implementation."),
    _k(_NUM, "unexpected_response", "warning", "§11.2.1.8", "Response for no open task",
       "The target answered an ITT that no open task had (and the capture was complete enough to know).",
       "warning. Rate-limited.", "Duplicate or late responses; target implementation."),
    _k(_NUM, "itt_reused", "warning", "§11.2.1.8", "ITT reused while in use",
       "The initiator started a new task with an ITT that an open task still used.",
       "warning. Rate-limited.", "Initiator tag allocation; whether the earlier task was abandoned."),
    _k(_NUM, "digest_error", "error", "§11.2, §13.1", "Header or data digest mismatch",
       "A PDU's CRC32C header or data digest did not match its bytes: the data was corrupted between the "
       "sender and the capture point (or the sender computes digests wrongly).",
       "Every PDU with a bad header or data digest: error; at most 10 per connection and direction, the rest "
       "summarised.",
       "NICs with offload, switches, cabling; whether the receiver answered with Reject (data digest error) "
       "or dropped the PDU."),
    # ------------------------------------------------------------------ transport & capture
    _k(_WIRE, "tcp_retransmissions", "warning", "RFC 9293", "TCP retransmissions",
       "A connection direction retransmitted a significant share of its data: packet loss on the path, which "
       "costs latency and throughput.",
       "Per connection and direction, reported when it closes (or at capture end): >= 5 retransmissions and "
       "(retransmitted bytes >= 3% of the bytes carried, or >= 10 retransmissions within 1 s): warning.",
       "Interface error counters, switch drops, MTU mismatches, congestion on the storage path."),
    _k(_WIRE, "zero_window", "info", "RFC 9293 §3.8.6", "TCP zero window",
       "A side advertised a zero receive window: it could not take more data (its application was not "
       "reading fast enough).",
       "Per connection and side, reported when it closes: 1-2 zero windows info, >= 3 warning.",
       "Load on the side that advertised it (target backend saturation, initiator CPU)."),
    _k(_WIRE, "capture_gap", "warning", "(capture)", "Bytes missing from the capture",
       "The capture lost bytes of a TCP stream (the peer acknowledged data we never saw): the capture point "
       "dropped packets. Analysis of that stream after the first gap is uncertain.",
       "One finding per connection and direction, when it closes (or at capture end), with the number of "
       "gaps, bytes missing and tasks whose outcome was lost: warning.",
       "Capture with a larger buffer/snaplen on a less loaded host, or capture closer to one endpoint; "
       "findings after the first gap may be artefacts."),
    _k(_WIRE, "capture_truncated", "info", "(capture)", "Frames cut by the snap length",
       "The capture kept only the first bytes of some frames (tcpdump -s / dumpcap -s): the rest of each "
       "segment's payload is missing, but its length and position are known, so framing continues.",
       "One finding per connection and direction with cut segments, when it closes (or at capture end): info.",
       "Capture with -s 0 when data contents, sense data, login keys or data digests matter."),
    _k(_WIRE, "tcp_overlap_conflict", "warning", "RFC 9293", "Retransmission with different bytes",
       "A retransmitted segment carried different bytes than the first copy (the first copy was kept): "
       "corruption or a broken middlebox.",
       "warning. Rate-limited.", "Middleboxes, NIC offloads, capture duplicates."),
    _k(_WIRE, "malformed_pdu", "warning", "§11", "Malformed PDU",
       "Bytes framed as an iSCSI PDU could not be decoded.",
       "warning; info when capture data was missing earlier in that direction (likely a framing artefact). "
       "Rate-limited.",
       "The frame in Wireshark; sender implementation; whether framing was resynchronised (framing_lost)."),
    _k(_WIRE, "framing_lost", "info", "§11.2", "PDU framing lost",
       "The analyzer lost the PDU boundaries of a stream and skipped bytes until it found a plausible header.",
       "After a capture gap or at a mid-stream start: info. Garbage in a stream that was in sync: warning. "
       "Only resyncs that skipped bytes are reported. Rate-limited.",
       "The capture_gap finding for the same stream; PDUs in the skipped range are not analysed."),
    _k(_WIRE, "capture_damaged", "warning", "(capture)", "Capture file damaged",
       "The capture file is cut short or damaged; reading stopped there.",
       "warning.", "How the capture was taken and copied (truncated download, capture killed)."),
    _k(_WIRE, "resource_limit", "warning", "(analyzer)", "Analyzer dropped state",
       "The analyzer evicted the state of a flow (too many flows or too much buffered out-of-order data), so "
       "the analysis of it is incomplete.",
       "A TCP flow closed by eviction: warning.",
       "Raise the analyzer's limits (max flows, out-of-order buffer) or split the capture."),
    # ------------------------------------------------------------------ state machines & negotiation
    _k(_STATE, "state_violation", "warning", "§8", "State machine violation",
       "A PDU or event arrived that the RFC 7143 state machine does not allow in the current state.",
       "warning; info when the machine's state was UNKNOWN (mid-stream capture), the connection had capture "
       "gaps, or the machine is the session/cleanup machine and the state was inferred. Rate-limited per "
       "connection, state and input.",
       "The sequence of PDUs before it; whether capture loss hid a PDU that would explain it."),
    _k(_STATE, "target_protocol_deviation", "warning", "§6.3.5, §8", "Protocol deviation",
       "A peer deviated from RFC 7143 in a way the state machines absorbed (they follow what the wire shows), "
       "for which no more specific kind exists; e.g. the target kept using a connection of a session that a "
       "session reinstatement replaced.",
       "From the state layer's Deviation records without a more specific kind: warning.",
       "The frames listed and the RFC section in the message; the peer's implementation."),
    _k(_STATE, "negotiation_issue", "warning", "§6.2, §13", "Key negotiation problem",
       "A login or text key exchange broke the negotiation rules, or a key got a special answer (Reject, "
       "NotUnderstood, Irrelevant).",
       "NotUnderstood / Irrelevant / unanswered answers, and any issue with a vendor key (X-..., X#...): "
       "info. Answers that violate the result function, bad values, Reject answers: warning.",
       "The key's offer and answer (in the message) against RFC 7143 §13; initiator and target "
       "configuration."),
    _k(_STATE, "unknown_opcode", "info", "§11.2.1.2", "Vendor or reserved opcode",
       "A PDU with a vendor-specific or reserved opcode was framed but not decoded.",
       "info. Rate-limited.", "The vendor's documentation for the opcode."),
    _k(_STATE, "analyzer_error", "warning", "(analyzer)", "Analyzer internal error",
       "The analyzer's state layer hit an internal error on a record and skipped it (a bug).",
       "warning. Rate-limited.", "Report the capture and the message to the analyzer's maintainers."),
)

#: kind name -> Kind.
KINDS: Final[dict[str, Kind]] = {k.name: k for k in CATALOGUE}


def severity_rank(severity: str) -> int:
    """0 for info, 1 for warning, 2 for error; ValueError for anything else."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise ValueError(f"unknown severity {severity!r}; expected one of {', '.join(SEVERITIES)}") from None


def severity_at_least(severity: str, min_severity: str) -> bool:
    """True when ``severity`` is ``min_severity`` or more severe."""
    return severity_rank(severity) >= severity_rank(min_severity)


def render_markdown() -> str:
    """The catalogue as ``docs/anomalies.md``."""
    lines = [
        "# Anomaly catalogue",
        "",
        ("<!-- Generated from analyzer/anomalies/kinds.py by analyzer.anomalies.kinds.render_markdown(); "
         "do not edit by hand. -->"),
        "",
        ("`iscsi-analyzer anomalies CAPTURE` reports these findings. Each finding has a stable `kind`, a "
         "severity, the first evidence frame and all evidence frames (with a Wireshark display filter), the "
         "session and connection, a one-sentence message with names rather than codes, and the RFC 7143 "
         "section."),
        "",
        ("Severities: **info** = worth knowing, nothing is broken; **warning** = something went wrong or may "
         "go wrong; **error** = I/O was lost or the protocol was broken. The severity below is the default; "
         "the *rule* says when a finding gets another one."),
        "",
        ("A passive observer cannot see everything (RFC notes §8): timeouts are inferred from capture time, "
         "captures may begin mid-session (tasks whose command is missing and an unknown StatSN are not "
         "anomalies) and may lose packets (findings that capture loss can explain are lowered to info or "
         "dropped). Floods are rate-limited: after a few identical findings the rest are counted in one "
         "summary finding of the same kind at the end."),
        "",
        ("Why a connection dropped (the drop-cause classification of `iscsi-analyzer drops`) and what the common "
         "initiators log for it (open-iscsi's conn error codes such as 1020 and 1022, ESXi's OFFLINE/ONLINE "
         "connection messages, Windows iScsiPrt events), each message with its source: "
         "[initiator-messages.md](initiator-messages.md)."),
        "",
        "| kind | default severity | RFC 7143 | title |",
        "|---|---|---|---|",
    ]
    lines += [f"| [`{k.name}`](#{k.name}) | {k.severity} | {k.rfc} | {k.title} |" for k in CATALOGUE]
    group = None
    for k in CATALOGUE:
        if k.group != group:
            group = k.group
            lines += ["", f"## {group}"]
        lines += [
            "",
            f"### {k.name}",
            "",
            f"**{k.title}** - default severity **{k.severity}**, {k.rfc}.",
            "",
            f"*Meaning.* {k.meaning}",
            "",
            f"*Rule.* {k.rule}",
            "",
            f"*What to check next.* {k.check_next}",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m analyzer.anomalies.kinds > docs/anomalies.md
    print(render_markdown(), end="")
