"""iSCSI code tables (RFC 7143 §11, RFC 7144) and their human names.

Every table is an ``IntEnum`` (house style §3) plus a ``*_name(value) -> str`` function
that never raises: unknown or reserved values get a readable fallback such as
``"Reserved (0x07)"``. Names are written for storage engineers; where Wireshark has an
established wording we keep close to it (``opcode_name`` matches Wireshark's Info column
exactly).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import Final


class Opcode(IntEnum):
    """BHS byte 0, low 6 bits (RFC 7143 §11.2.1.2)."""

    # Initiator opcodes
    NOP_OUT = 0x00  #: §11.18 NOP-Out
    SCSI_COMMAND = 0x01  #: §11.3 SCSI Command
    TASK_MGMT_REQUEST = 0x02  #: §11.5 Task Management Function Request
    LOGIN_REQUEST = 0x03  #: §11.12 Login Request
    TEXT_REQUEST = 0x04  #: §11.10 Text Request
    DATA_OUT = 0x05  #: §11.7.1 SCSI Data-Out
    LOGOUT_REQUEST = 0x06  #: §11.14 Logout Request
    SNACK = 0x10  #: §11.16 SNACK Request
    VENDOR_I0 = 0x1C  #: vendor-specific initiator opcode
    VENDOR_I1 = 0x1D  #: vendor-specific initiator opcode
    VENDOR_I2 = 0x1E  #: vendor-specific initiator opcode
    # Target opcodes
    NOP_IN = 0x20  #: §11.19 NOP-In
    SCSI_RESPONSE = 0x21  #: §11.4 SCSI Response
    TASK_MGMT_RESPONSE = 0x22  #: §11.6 Task Management Function Response
    LOGIN_RESPONSE = 0x23  #: §11.13 Login Response
    TEXT_RESPONSE = 0x24  #: §11.11 Text Response
    DATA_IN = 0x25  #: §11.7.2 SCSI Data-In
    LOGOUT_RESPONSE = 0x26  #: §11.15 Logout Response
    R2T = 0x31  #: §11.8 Ready To Transfer
    ASYNC_MESSAGE = 0x32  #: §11.9 Asynchronous Message
    VENDOR_T0 = 0x3C  #: vendor-specific target opcode
    VENDOR_T1 = 0x3D  #: vendor-specific target opcode
    VENDOR_T2 = 0x3E  #: vendor-specific target opcode
    REJECT = 0x3F  #: §11.17 Reject


#: Standard initiator -> target opcodes (vendor opcodes excluded).
REQUEST_OPCODES: Final = frozenset({
    Opcode.NOP_OUT, Opcode.SCSI_COMMAND, Opcode.TASK_MGMT_REQUEST, Opcode.LOGIN_REQUEST,
    Opcode.TEXT_REQUEST, Opcode.DATA_OUT, Opcode.LOGOUT_REQUEST, Opcode.SNACK,
})
#: Standard target -> initiator opcodes (vendor opcodes excluded).
RESPONSE_OPCODES: Final = frozenset({
    Opcode.NOP_IN, Opcode.SCSI_RESPONSE, Opcode.TASK_MGMT_RESPONSE, Opcode.LOGIN_RESPONSE,
    Opcode.TEXT_RESPONSE, Opcode.DATA_IN, Opcode.LOGOUT_RESPONSE, Opcode.R2T,
    Opcode.ASYNC_MESSAGE, Opcode.REJECT,
})
#: Vendor-specific opcodes (§11.2.1.2): 0x1c-0x1e initiator, 0x3c-0x3e target.
VENDOR_OPCODES: Final = frozenset({
    Opcode.VENDOR_I0, Opcode.VENDOR_I1, Opcode.VENDOR_I2,
    Opcode.VENDOR_T0, Opcode.VENDOR_T1, Opcode.VENDOR_T2,
})
#: Opcodes RFC 7143 defines and we decode (requests + responses, no vendor opcodes).
#: This is the set for the framer's resync plausibility test.
KNOWN_OPCODES: Final = REQUEST_OPCODES | RESPONSE_OPCODES
#: Every opcode value that is not reserved (KNOWN_OPCODES plus the vendor opcodes).
DEFINED_OPCODES: Final = KNOWN_OPCODES | VENDOR_OPCODES

_OPCODE_NAMES: Final[Mapping[int, str]] = {
    0x00: "NOP Out",
    0x01: "SCSI Command",
    0x02: "Task Management Function",
    0x03: "Login Command",
    0x04: "Text Command",
    0x05: "SCSI Data Out",
    0x06: "Logout Command",
    0x10: "SNACK Request",
    0x1C: "Vendor Specific I0",
    0x1D: "Vendor Specific I1",
    0x1E: "Vendor Specific I2",
    0x20: "NOP In",
    0x21: "SCSI Response",
    0x22: "Task Management Function Response",
    0x23: "Login Response",
    0x24: "Text Response",
    0x25: "SCSI Data In",
    0x26: "Logout Response",
    0x31: "Ready To Transfer",
    0x32: "Asynchronous Message",
    0x3C: "Vendor Specific T0",
    0x3D: "Vendor Specific T1",
    0x3E: "Vendor Specific T2",
    0x3F: "Reject",
}


def is_request_opcode(op: int) -> bool:
    """True for initiator opcodes (bit 0x20 clear; §11.2.1.2)."""
    return not op & 0x20


def opcode_name(op: int) -> str:
    """Wireshark's name for an opcode (``"SCSI Data In"``), or ``"Unknown opcode 0x0b"``."""
    name = _OPCODE_NAMES.get(op)
    return name if name is not None else f"Unknown opcode 0x{op:02x}"


# --------------------------------------------------------------------------- login


class LoginStage(IntEnum):
    """CSG / NSG values (§11.12.3)."""

    SECURITY_NEGOTIATION = 0  #: SecurityNegotiation
    OPERATIONAL_NEGOTIATION = 1  #: LoginOperationalNegotiation
    FULL_FEATURE_PHASE = 3  #: FullFeaturePhase (2 is reserved)


_STAGE_NAMES: Final[Mapping[int, str]] = {
    0: "Security negotiation",
    1: "Operational negotiation",
    2: "Reserved stage 2",
    3: "Full feature phase",
}


def login_stage_name(stage: int) -> str:
    """Name of a CSG/NSG value."""
    return _STAGE_NAMES.get(stage, f"Invalid stage {stage}")


class LoginStatusClass(IntEnum):
    """Login Response Status-Class (§11.13.5)."""

    SUCCESS = 0  #: the request was accepted
    REDIRECTION = 1  #: the initiator must retry at the TargetAddress given
    INITIATOR_ERROR = 2  #: the initiator made a mistake; do not retry as-is
    TARGET_ERROR = 3  #: the target cannot serve the request now; may retry later


_STATUS_CLASS_NAMES: Final[Mapping[int, str]] = {
    0: "Success",
    1: "Redirection",
    2: "Initiator error",
    3: "Target error",
}

#: (Status-Class, Status-Detail) -> name (§11.13.5). Wording is the RFC status table's
#: (checked against the RFC 3720 §10.13.5 table that RFC 7143 §11.13.5 consolidates; see
#: docs/rfc-verification.md). This is the one table of login status names: the state layer's
#: task and transition texts and the anomaly messages use it too (Wireshark calls 0x0203
#: "Target not found" and 0x020B "Invalid request during login"; the RFC's words win).
LOGIN_STATUS: Final[Mapping[tuple[int, int], str]] = {
    (0, 0x00): "Success",
    (1, 0x01): "Target moved temporarily",
    (1, 0x02): "Target moved permanently",
    (2, 0x00): "Initiator error",
    (2, 0x01): "Authentication failure",
    (2, 0x02): "Authorization failure",
    (2, 0x03): "Not found",
    (2, 0x04): "Target removed",
    (2, 0x05): "Unsupported version",
    (2, 0x06): "Too many connections",
    (2, 0x07): "Missing parameter",
    (2, 0x08): "Can't include in session",
    (2, 0x09): "Session type not supported",
    (2, 0x0A): "Session does not exist",
    (2, 0x0B): "Invalid during login",  # RFC name; "Invalid request during login" is Wireshark's
    (3, 0x00): "Target error",
    (3, 0x01): "Service unavailable",
    (3, 0x02): "Out of resources",
}


def login_status_name(status_class: int, status_detail: int) -> str:
    """Name of a login status, e.g. ``(2, 3) -> "Not found"``.

    Unknown details fall back to the class name: ``"Initiator error (detail 0x42)"``.
    """
    name = LOGIN_STATUS.get((status_class, status_detail))
    if name is not None:
        return name
    cls = _STATUS_CLASS_NAMES.get(status_class)
    if cls is None:
        return f"Unknown status class {status_class} (detail 0x{status_detail:02x})"
    return f"{cls} (detail 0x{status_detail:02x})"


def login_status_code(status_class: int, status_detail: int) -> str:
    """The four-hex-digit form storage logs use, e.g. ``"0x0203"``."""
    return f"0x{status_class:02x}{status_detail:02x}"


# --------------------------------------------------------------------------- reject


class RejectReason(IntEnum):
    """Reject PDU Reason (§11.17.1)."""

    RESERVED = 0x01  #: reserved (draft-08 used it for "full feature phase command before login")
    DATA_DIGEST_ERROR = 0x02  #: data (payload) digest error
    SNACK_REJECT = 0x03  #: SNACK reject
    PROTOCOL_ERROR = 0x04  #: protocol error (e.g. SNACK for a status already acked)
    COMMAND_NOT_SUPPORTED = 0x05  #: command not supported (e.g. in a discovery session)
    IMMEDIATE_COMMAND_REJECT = 0x06  #: immediate command reject - too many immediate commands
    TASK_IN_PROGRESS = 0x07  #: task in progress
    INVALID_DATA_ACK = 0x08  #: invalid data ack
    INVALID_PDU_FIELD = 0x09  #: invalid PDU field
    LONG_OPERATION_REJECT = 0x0A  #: long op reject - can't generate a target transfer tag, out of resources
    NEGOTIATION_RESET = 0x0B  #: deprecated; MUST NOT be sent (was "negotiation reset")
    WAITING_FOR_LOGOUT = 0x0C  #: waiting for logout (after an Async "request logout")


#: §11.17.1, in the RFC table's words (its short form where a line goes on with an explanation).
_REJECT_NAMES: Final[Mapping[int, str]] = {
    0x01: "Reserved",
    0x02: "Data (payload) digest error",
    0x03: "SNACK Reject",
    0x04: "Protocol Error",
    0x05: "Command not supported",
    0x06: "Immediate command reject",
    0x07: "Task in progress",
    0x08: "Invalid data ack",
    0x09: "Invalid PDU field",
    0x0A: "Long op reject",
    0x0B: "Deprecated",
    0x0C: "Waiting for Logout",
}


def reject_reason_name(reason: int) -> str:
    """Name of a Reject reason code."""
    return _REJECT_NAMES.get(reason, f"Reserved (0x{reason:02x})")


# --------------------------------------------------------------------------- async


class AsyncEvent(IntEnum):
    """Asynchronous Message AsyncEvent (§11.9.1; 5 from RFC 7144).

    Vendor codes: RFC 3720 §10.9.1 defines only 255 ("vendor specific iSCSI Event. The
    AsyncVCode details the vendor code") and reserves every other value. Whether RFC 7143
    widened this to 248-255 could not be checked against its text (docs/rfc-verification.md),
    so 248-254 keep the neutral "Reserved event N" name rather than a guessed one.
    """

    SCSI_ASYNC_EVENT = 0  #: SCSI asynchronous event; sense data in the data segment, LUN valid
    REQUEST_LOGOUT = 1  #: target requests a logout within Parameter3 seconds
    DROP_CONNECTION = 2  #: target will drop connection Parameter1 (P2 = Time2Wait, P3 = Time2Retain)
    DROP_ALL_CONNECTIONS = 3  #: target will drop all connections of the session
    REQUEST_NEGOTIATION = 4  #: target requests parameter (re)negotiation within Parameter3 seconds
    TASK_TERMINATION = 5  #: RFC 7144: tasks terminated (TaskReporting=FastAbort only)
    VENDOR_SPECIFIC = 255  #: vendor-specific event; AsyncVCode has the vendor code


_ASYNC_NAMES: Final[Mapping[int, str]] = {
    0: "SCSI asynchronous event",
    1: "Target requests logout",
    2: "Target will drop the connection",
    3: "Target will drop all connections",
    4: "Target requests parameter negotiation",
    5: "Task termination",
    255: "Vendor-specific event",
}


def async_event_name(event: int) -> str:
    """Name of an AsyncEvent code."""
    return _ASYNC_NAMES.get(event, f"Reserved event {event}")


# --------------------------------------------------------------------------- logout


class LogoutReason(IntEnum):
    """Logout Request reason code (§11.14.1)."""

    CLOSE_SESSION = 0  #: close the session (all connections)
    CLOSE_CONNECTION = 1  #: close the connection named by CID
    REMOVE_FOR_RECOVERY = 2  #: remove the connection for recovery (ERL 2 task reassignment)


_LOGOUT_REASON_NAMES: Final[Mapping[int, str]] = {
    0: "close the session",
    1: "close the connection",
    2: "remove the connection for recovery",
}


def logout_reason_name(reason: int) -> str:
    """Name of a Logout reason code (lower case: it reads as "Logout Request (close the session)")."""
    return _LOGOUT_REASON_NAMES.get(reason, f"reserved reason {reason}")


class LogoutResponseCode(IntEnum):
    """Logout Response code (§11.15.1)."""

    SUCCESS = 0  #: connection or session closed successfully
    CID_NOT_FOUND = 1  #: CID not found
    RECOVERY_NOT_SUPPORTED = 2  #: connection recovery is not supported (ERL < 2)
    CLEANUP_FAILED = 3  #: cleanup failed for various reasons


#: §11.15.1, in the RFC's words.
_LOGOUT_RESPONSE_NAMES: Final[Mapping[int, str]] = {
    0: "connection or session closed successfully",
    1: "CID not found",
    2: "connection recovery is not supported",
    3: "cleanup failed for various reasons",
}


def logout_response_name(code: int) -> str:
    """Name of a Logout Response code."""
    return _LOGOUT_RESPONSE_NAMES.get(code, f"Reserved response {code}")


# --------------------------------------------------------------------------- task management


class TmfFunction(IntEnum):
    """Task Management Function Request function code (§11.5.1; 9-12 from RFC 7144)."""

    ABORT_TASK = 1  #: abort the task named by Referenced Task Tag
    ABORT_TASK_SET = 2  #: abort all tasks of this I_T nexus on the LUN
    CLEAR_ACA = 3  #: clear the ACA condition
    CLEAR_TASK_SET = 4  #: abort all tasks on the LUN (all initiators)
    LOGICAL_UNIT_RESET = 5  #: reset the logical unit
    TARGET_WARM_RESET = 6  #: reset the target (sessions survive)
    TARGET_COLD_RESET = 7  #: reset the target and drop all connections
    TASK_REASSIGN = 8  #: reassign a task to this connection (ERL 2)
    QUERY_TASK = 9  #: RFC 7144 / SAM-5 QUERY TASK
    QUERY_TASK_SET = 10  #: RFC 7144 / SAM-5 QUERY TASK SET
    I_T_NEXUS_RESET = 11  #: RFC 7144 / SAM-5 I_T NEXUS RESET
    QUERY_ASYNC_EVENT = 12  #: RFC 7144 / SAM-5 QUERY ASYNCHRONOUS EVENT


_TMF_NAMES: Final[Mapping[int, str]] = {
    1: "ABORT TASK",
    2: "ABORT TASK SET",
    3: "CLEAR ACA",
    4: "CLEAR TASK SET",
    5: "LOGICAL UNIT RESET",
    6: "TARGET WARM RESET",
    7: "TARGET COLD RESET",
    8: "TASK REASSIGN",
    9: "QUERY TASK",
    10: "QUERY TASK SET",
    11: "I_T NEXUS RESET",
    12: "QUERY ASYNCHRONOUS EVENT",
}


def tmf_function_name(function: int) -> str:
    """SAM name of a TMF function code (``5 -> "LOGICAL UNIT RESET"``)."""
    return _TMF_NAMES.get(function, f"Reserved function {function}")


class TmfResponse(IntEnum):
    """Task Management Function Response code (§11.6.1)."""

    FUNCTION_COMPLETE = 0  #: function complete
    TASK_DOES_NOT_EXIST = 1  #: task does not exist
    LUN_DOES_NOT_EXIST = 2  #: LUN does not exist
    TASK_STILL_ALLEGIANT = 3  #: task still allegiant
    REASSIGN_NOT_SUPPORTED = 4  #: task allegiance reassignment not supported
    NOT_SUPPORTED = 5  #: task management function not supported
    AUTHORIZATION_FAILED = 6  #: function authorization failed
    FUNCTION_REJECTED = 255  #: function rejected


_TMF_RESPONSE_NAMES: Final[Mapping[int, str]] = {
    0: "Function complete",
    1: "Task does not exist",
    2: "LUN does not exist",
    3: "Task still allegiant",
    4: "Task allegiance reassignment not supported",
    5: "Task management function not supported",
    6: "Function authorization failed",
    255: "Function rejected",
}


def tmf_response_name(code: int) -> str:
    """Name of a TMF response code."""
    return _TMF_RESPONSE_NAMES.get(code, f"Reserved response {code}")


# --------------------------------------------------------------------------- SNACK


class SnackType(IntEnum):
    """SNACK Type, byte 1 low 4 bits (§11.16.1)."""

    DATA_R2T = 0  #: Data/R2T SNACK: resend Data-In or R2T PDUs
    STATUS = 1  #: Status SNACK: resend responses
    DATA_ACK = 2  #: DataACK: positive ack of Data-In up to BegRun
    R_DATA = 3  #: R-Data SNACK: resend all data with a new SNACK Tag (resegmentation)


_SNACK_NAMES: Final[Mapping[int, str]] = {0: "Data/R2T", 1: "Status", 2: "DataACK", 3: "R-Data"}


def snack_type_name(snack_type: int) -> str:
    """Name of a SNACK type."""
    return _SNACK_NAMES.get(snack_type, f"Reserved type {snack_type}")


# --------------------------------------------------------------------------- SCSI Response


class ScsiResponseCode(IntEnum):
    """SCSI Response PDU "Response" field (§11.4.3); 0x80-0xff are vendor specific."""

    COMMAND_COMPLETED = 0x00  #: command completed at target; Status is valid
    TARGET_FAILURE = 0x01  #: target failure; Status is not valid


def scsi_response_name(code: int) -> str:
    """Name of the iSCSI Response field of a SCSI Response PDU."""
    if code == 0x00:  # §11.4.3, in the RFC's words
        return "Command Completed at Target"
    if code == 0x01:
        return "Target Failure"
    if code >= 0x80:
        return f"Vendor specific (0x{code:02x})"
    return f"Reserved (0x{code:02x})"


class TaskAttribute(IntEnum):
    """SCSI Command ATTR field (§11.3.1, SAM task attributes)."""

    UNTAGGED = 0  #: untagged (treated as simple)
    SIMPLE = 1  #: simple
    ORDERED = 2  #: ordered
    HEAD_OF_QUEUE = 3  #: head of queue
    ACA = 4  #: ACA


_ATTR_NAMES: Final[Mapping[int, str]] = {0: "Untagged", 1: "Simple", 2: "Ordered", 3: "Head of queue", 4: "ACA"}


def task_attribute_name(attr: int) -> str:
    """Name of a task attribute."""
    return _ATTR_NAMES.get(attr, f"Reserved attribute {attr}")
