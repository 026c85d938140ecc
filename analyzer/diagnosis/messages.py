"""What the common initiators log for each drop cause, with the public source of every message.

Only messages read in a source are listed (repository + path, or a vendor's page); a cause an
initiator's source does not cover says so instead of guessing. Rendered into
docs/initiator-messages.md by ``render_markdown()`` (a test keeps the file in step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from analyzer.diagnosis.causes import CAUSES, RULES
from analyzer.diagnosis.causes import render_markdown as _cause_table


@dataclass(frozen=True)
class Source:
    key: str
    where: str  #: "repository path" or URL
    shows: str


@dataclass(frozen=True)
class Message:
    initiator: str  #: "open-iscsi", "libiscsi", "ESXi", "Windows"
    text: str  #: the message (format string as in the source)
    source: str  #: a key of SOURCES
    note: str = ""


SOURCES: Final[dict[str, Source]] = {s.key: s for s in (
    Source("linux-iscsi_if", "torvalds/linux include/scsi/iscsi_if.h",
           "enum iscsi_err: ISCSI_ERR_BASE + n, e.g. ISCSI_ERR_CONN_FAILED = +11, ISCSI_ERR_HDR_DGST = +14, "
           "ISCSI_ERR_DATA_DGST = +15, ISCSI_ERR_TCP_CONN_CLOSE = +20, ISCSI_ERR_SCSI_EH_SESSION_RST = +21, "
           "ISCSI_ERR_NOP_TIMEDOUT = +22 (ISCSI_ERR_BASE is 1000, so 1011, 1014, 1015, 1020, 1021, 1022)"),
    Source("linux-transport", "torvalds/linux drivers/scsi/scsi_transport_iscsi.c",
           "iscsi_conn_error_event() prints \"detected conn error (%d)\" with the iscsi_err code"),
    Source("linux-iscsi_tcp", "torvalds/linux drivers/scsi/iscsi_tcp.c",
           "iscsi_sw_sk_state_check(): a socket in TCP_CLOSE_WAIT (peer sent FIN) or TCP_CLOSE (reset) outside "
           "logout calls iscsi_conn_failure(conn, ISCSI_ERR_TCP_CONN_CLOSE)"),
    Source("linux-libiscsi", "torvalds/linux drivers/scsi/libiscsi.c",
           "iscsi_check_transport_timeouts(): \"ping timeout of %d secs expired, recv timeout %d, last rx %lu, "
           "last ping %lu, now %lu\" then iscsi_conn_failure(conn, ISCSI_ERR_NOP_TIMEDOUT); a NOP-Out is sent "
           "as a ping after recv_timeout without traffic; TMF timeouts raise ISCSI_ERR_SCSI_EH_SESSION_RST"),
    Source("openiscsi-kern_err", "open-iscsi/open-iscsi usr/kern_err_table.c",
           "kern_err_code_to_string(): \"ISCSI_ERR_TCP_CONN_CLOSE: TCP connection closed\", "
           "\"ISCSI_ERR_NOP_TIMEDOUT: A NOP has timed out\", \"ISCSI_ERR_CONN_FAILED: iSCSI connection failed\", "
           "\"ISCSI_ERR_HDR_DGST: Header digest mismatch\", \"ISCSI_ERR_DATA_DGST: Data digest mismatch\""),
    Source("openiscsi-initiator", "open-iscsi/open-iscsi usr/initiator.c",
           "session_conn_error(): \"Kernel reported iSCSI connection %d:%d error (%d - %s) state (%d)\"; "
           "iscsi_recv_async_msg(): \"Target requests logout within %u seconds for connection\", \"Target "
           "dropping connection %u, reconnect min %u max %u\", \"Target dropping all connections, reconnect "
           "min %u max %u\""),
    Source("openiscsi-iscsi_err", "open-iscsi/open-iscsi include/iscsi_err.h",
           "iscsiadm exit codes: ISCSI_ERR_LOGIN = 5 (generic login failure), ISCSI_ERR_TRANS_TIMEOUT = 8, "
           "ISCSI_ERR_PDU_TIMEOUT = 11, ISCSI_ERR_FATAL_LOGIN = 19, ISCSI_ERR_LOGIN_AUTH_FAILED = 24"),
    Source("libiscsi-pdu", "sahlberg/libiscsi lib/pdu.c",
           "Async Message handling: \"target requests logout within %u seconds\", \"target will drop this "
           "connection. Time2Wait is %u seconds\", \"target will drop all connections of this session. "
           "Time2Wait is %u seconds\""),
    Source("esxi-kb-410618", "https://knowledge.broadcom.com/external/article/410618",
           "Broadcom KB \"iSCSI connection flapping between 'offline' and 'online'\": vmkernel.log lines "
           "\"iscsivmk_ConnReceiveAtomic: ... Failed to receive data: Connection closed by peer\", "
           "\"iscsivmk_StopConnection: ... iSCSI connection is being marked \\\"OFFLINE\\\"\", "
           "\"iscsivmk_StartConnection: ... iSCSI connection is being marked \\\"ONLINE\\\"\""),
    Source("windows-iscsiprt", "http://38.142.81.21:8001/manual/dell/qlogic-family-of-adapters/2-1-users-guide-english/page-165.html",
           "QLogic/Dell adapter user's guide, 'iSCSI Offload in Windows Server', the iScsiPrt event log table: "
           "7 \"The initiator could not send an iSCSI PDU\", 8 \"Target or discovery service did not respond "
           "in time for an iSCSI request sent by the initiator\", 9 \"Target did not respond in time for a "
           "SCSI request\", 10 \"Login request failed\""),
)}

_CLOSE = Message("open-iscsi", "connectionN:0: detected conn error (1020)", "linux-transport",
                 "1020 = ISCSI_ERR_TCP_CONN_CLOSE (linux-iscsi_if), raised by iscsi_sw_sk_state_check on FIN or RST "
                 "from the target (linux-iscsi_tcp)")
_CLOSE_D = Message("open-iscsi", "Kernel reported iSCSI connection N:0 error (1020 - ISCSI_ERR_TCP_CONN_CLOSE: TCP "
                   "connection closed) state (3)", "openiscsi-initiator", "string from openiscsi-kern_err")
_ESX_CLOSED = Message("ESXi", "iscsivmk_ConnReceiveAtomic: ... Failed to receive data: Connection closed by peer",
                      "esxi-kb-410618")
_ESX_OFFLINE = Message("ESXi", "iscsivmk_StopConnection: ... iSCSI connection is being marked \"OFFLINE\"",
                       "esxi-kb-410618", "and \"ONLINE\" from iscsivmk_StartConnection when the path returns")
_WIN_SEND = Message("Windows", "iScsiPrt event 7: The initiator could not send an iSCSI PDU", "windows-iscsiprt")
_WIN_SCSI_TMO = Message("Windows", "iScsiPrt event 9: Target did not respond in time for a SCSI request",
                        "windows-iscsiprt")
_NOP = Message("open-iscsi", "connectionN:0: ping timeout of %d secs expired, recv timeout %d, last rx ..., last "
               "ping ..., now ...; then detected conn error (1022)", "linux-libiscsi",
               "1022 = ISCSI_ERR_NOP_TIMEDOUT (linux-iscsi_if); iscsid: \"... error (1022 - ISCSI_ERR_NOP_TIMEDOUT: "
               "A NOP has timed out)\" (openiscsi-kern_err)")

#: cause -> what the initiators log. The side that did NOT close sees a closed socket; the side
#: that gave up logs its own reason.
INITIATOR_MESSAGES: Final[dict[str, tuple[Message, ...]]] = {
    "admin_drop": (_CLOSE, _CLOSE_D, _ESX_CLOSED, _ESX_OFFLINE),
    "target_restart": (_CLOSE, _CLOSE_D, _ESX_CLOSED, _ESX_OFFLINE,
                       Message("open-iscsi", "iscsiadm exit 8 (ISCSI_ERR_TRANS_TIMEOUT) while the portal refuses "
                               "connections", "openiscsi-iscsi_err", "for an iscsiadm login during the restart")),
    "target_protocol_drop": (_CLOSE, _CLOSE_D, _ESX_CLOSED, _ESX_OFFLINE),
    "target_requested": (
        Message("open-iscsi", "Target requests logout within %u seconds for connection", "openiscsi-initiator",
                "Async event 1"),
        Message("open-iscsi", "Target dropping connection %u, reconnect min %u max %u", "openiscsi-initiator",
                "Async event 2"),
        Message("open-iscsi", "Target dropping all connections, reconnect min %u max %u", "openiscsi-initiator",
                "Async event 3"),
        Message("libiscsi", "target requests logout within %u seconds / target will drop this connection. "
                "Time2Wait is %u seconds / target will drop all connections of this session", "libiscsi-pdu"),
        _ESX_OFFLINE),
    "nop_timeout": (_NOP, _ESX_OFFLINE,
                    Message("open-iscsi", "when the TARGET timed out the initiator's silence and closed: detected "
                            "conn error (1020)", "linux-iscsi_tcp")),
    "network_failure": (_NOP, _WIN_SEND, _WIN_SCSI_TMO, _ESX_OFFLINE),
    "initiator_gone": (),  # the initiator is the one that went away: it logs nothing about the drop
    "login_failure": (
        Message("open-iscsi", "iscsiadm exit 24 (ISCSI_ERR_LOGIN_AUTH_FAILED) for status 0x0201/0x0202; exit 19 "
                "(ISCSI_ERR_FATAL_LOGIN) or 5 (ISCSI_ERR_LOGIN) otherwise", "openiscsi-iscsi_err"),
        Message("Windows", "iScsiPrt event 10: Login request failed. The login response packet is specified in the "
                "dump data", "windows-iscsiprt")),
    "logout_failure": (),
    "reinstated": (),
    "capture_end": (),
}

#: Digest errors are not drop causes of their own, but initiators name them:
DIGEST_MESSAGES: Final = (
    Message("open-iscsi", "detected conn error (1014) - ISCSI_ERR_HDR_DGST: Header digest mismatch",
            "openiscsi-kern_err", "code from linux-iscsi_if"),
    Message("open-iscsi", "detected conn error (1015) - ISCSI_ERR_DATA_DGST: Data digest mismatch",
            "openiscsi-kern_err", "code from linux-iscsi_if"),
)


def initiator_log(cause: str, closed_by_target: bool | None = None) -> str:
    """One line: what open-iscsi / ESXi / Windows would log for this cause (sources in docs)."""
    msgs = INITIATOR_MESSAGES.get(cause, ())
    if cause == "nop_timeout" and closed_by_target:
        msgs = tuple(m for m in msgs if "TARGET timed out" in m.text) + (_ESX_OFFLINE,)
    elif cause == "nop_timeout":
        msgs = (_NOP, _ESX_OFFLINE)
    if not msgs:
        return ""
    return "; ".join(f"{m.initiator}: {m.text}" for m in msgs[:3])


def render_markdown() -> str:
    """docs/initiator-messages.md."""
    lines = [
        "# Drop causes and what initiators log for them",
        "",
        ("<!-- Generated from analyzer/diagnosis/causes.py and messages.py by "
        "analyzer.diagnosis.messages.render_markdown(); do not edit by hand. -->"),
        "",
        ("`iscsi-analyzer drops CAPTURE` gives every connection that ended without a clean logout a cause "
        "from this table, with its evidence frames and a confidence. The rules are tried in this order; "
        "the first that matches wins."),
        "",
        _cause_table(),
        "",
        "## What the initiator log says",
        "",
        ("Every message below was read in the source named after it; codes we could not read in a source are "
        "not listed. `N`, `%d`, `%u` stand for the numbers the initiator fills in."),
        "",
    ]
    for name in RULES:
        lines += [f"### `{name}` - {CAUSES[name].title}", ""]
        msgs = INITIATOR_MESSAGES.get(name, ())
        if not msgs:
            reason = {
                "initiator_gone": "The initiator is the side that went away; the target's log has the record.",
                "capture_end": "Nothing failed on the wire.",
                "reinstated": "The initiator asked for it (a new login with the same ISID); no error is logged "
                              "for the replaced session.",
                "logout_failure": "No initiator source read for this case.",
            }.get(name, "No initiator source read for this case.")
            lines += [reason, ""]
            continue
        lines += ["| initiator | message | source | note |", "|---|---|---|---|"]
        for m in msgs:
            src = SOURCES[m.source]
            lines.append(f"| {m.initiator} | `{m.text}` | {src.where} | {m.note} |")
        lines.append("")
    lines += ["### Digest errors", "", "| initiator | message | source | note |", "|---|---|---|---|"]
    for m in DIGEST_MESSAGES:
        lines.append(f"| {m.initiator} | `{m.text}` | {SOURCES[m.source].where} | {m.note} |")
    lines += ["", "## Sources", "", "| key | where | what it shows |", "|---|---|---|"]
    for s in SOURCES.values():
        lines.append(f"| {s.key} | {s.where} | {s.shows} |")
    lines += ["", ("Not mapped: the Windows iScsiPrt event for a lost connection (event 20 in common reports) and "
              "ESXi's login failure messages, for want of a source we could read; ISCSI_ERR_CONN_FAILED (1011) "
              "is listed in the enum and string table, but the code paths that raise it were not read, so no "
              "cause maps to it."), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown(), end="")
