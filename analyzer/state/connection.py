"""Connection state machines, RFC 7143 §8.1 (states §8.1.1, transitions §8.1.2-§8.1.5).

Theory of operation
-------------------
Two tables, one per endpoint: ``INITIATOR`` (S1, S2, S4..S8) and ``TARGET`` (S1, S3..S8).
The tracker runs both for every TCP connection, because a passive observer infers the
state of *both* ends from the same packets: an initiator->target PDU is "sent" for the
initiator and "received" for the target at the same instant (notes §8: apply initiator
transitions at send time, target ones at receive time; the two coincide for us).

Where a passive observer deviates from the RFC:

* Internal events are invisible. Login/logout/transport timeouts become
  ``TRANSPORT_TIMEOUT``, which the tracker only feeds when a later packet proves the end
  must have given up (e.g. a connection-reinstatement login for a CID we still think is
  LOGGED_IN: the initiator's old connection must be in CLEANUP_WAIT, §6.3.4), and marks
  the transition ``inferred``.
* ``TcpOpened(handshake=True)`` is emitted when the handshake completes, so the initiator
  takes T1 (SYN sent) and T4 (transport established, login starts) at the same frame and
  the target takes T3. The target's T4 happens at the first Login Request.
* ``UNKNOWN`` is not an RFC state: the capture began mid-connection. The first PDU that
  tells (``PLACEMENT``) puts the machine into an RFC state with an inferred transition
  whose label is ``None``.
* "Other-connection close-session success" (T2/T7/T8/T13/T18) is an internal event; we
  derive it from a successful close-session Logout Response seen on a sibling connection
  of the same session (§11.14). "Successful/failed reinstatement" (target T7/T8/T13/T15..
  T18) is derived from the outcome of a reinstatement login on another connection. The
  tracker applies these to a connection still in full feature phase only when its own TCP
  connection closes (or at capture end): a target that keeps sending on it kept it open,
  which is a Deviation, not a state change (see ``tracker.py``).
* S8 is left when the cleanup machine reaches R3 (R3 is S1, §8.2): the tracker then emits
  a connection transition CLEANUP_WAIT -> FREE labelled with the cleanup label (M1/M4).
* ``stays`` (not RFC rows) lists the inputs legal in a state without a transition, so
  e.g. a SCSI Command while IN_LOGIN is a Violation while one in LOGGED_IN is not. In
  IN_LOGOUT and CLEANUP_WAIT we tolerate in-flight FFP PDUs of both directions (requests
  and responses cross on the wire); the "new request after Logout" rule (§11.14) is the
  sequence checker's ``request_after_logout``, not a Violation here. A target-side Async
  "request logout" that crosses the initiator's Logout Request (target in IN_LOGOUT) is
  tolerated as a race.
* S8 is left only through the cleanup machine (§8.2, ``cleanup.py``); this table has no
  row out of CLEANUP_WAIT (see above for the transition the tracker emits at R3).

Checked against the RFC text (docs/rfc-verification.md, items 1-2): T1-T7 against the
RFC 7143 §8.1.2 text; T7 (target) to T18 against the RFC 3720 §7.1.2 wording that RFC 7143
§8.1.2 consolidates, as reproduced verbatim by RFC-derived implementations (T10, T12 and
T18 only through the events they share with T9, T11 and T8/T13; their own lines were not
read). Every event matches, with one row that is an observer's mapping rather than RFC text:
target T7 on a *successful reinstatement* (the RFC 3720 list for target T7 ends with "On
another connection a 'close the session' Logout request was received"). A session
reinstatement is an implicit "close the session" logout (§6.3.5, §11.14.1), so a target
connection of the old session that is still IN_LOGIN is closed by exactly that T7 event; the
row is kept under that reading.
``tests/unit/test_state_tables.py`` holds an independent copy of the events of every label.
"""

from __future__ import annotations

from enum import Enum

from analyzer.records import I2T as _I2T
from analyzer.records import (
    AsyncMessage,
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    Pdu,
    Record,
    TcpClosed,
    TcpFin,
    TcpOpened,
    TcpRst,
    UnknownPdu,
)
from analyzer.state.machine import Spec


class ConnState(Enum):
    """RFC 7143 §8.1.1 connection states; the value is the RFC's spelling."""

    S1_FREE = "FREE"  #: not in use, or closed cleanly
    S2_XPT_WAIT = "XPT_WAIT"  #: initiator: transport connect pending
    S3_XPT_UP = "XPT_UP"  #: target: transport up, awaiting the first Login Request
    S4_IN_LOGIN = "IN_LOGIN"  #: login phase
    S5_LOGGED_IN = "LOGGED_IN"  #: full feature phase
    S6_IN_LOGOUT = "IN_LOGOUT"  #: logout requested, awaiting/processing the response
    S7_LOGOUT_REQUESTED = "LOGOUT_REQUESTED"  #: target asked for a logout (Async event 1)
    S8_CLEANUP_WAIT = "CLEANUP_WAIT"  #: failed; awaiting cleanup (§8.2)
    UNKNOWN = "UNKNOWN"  #: NOT an RFC state: the capture began mid-connection

    @property
    def rfc_id(self) -> str:
        """"S1".."S8", or "?" for UNKNOWN."""
        return self.name.split("_", 1)[0] if self is not ConnState.UNKNOWN else "?"


class ConnInput(Enum):
    """Observable (or inferred) inputs of the connection machines."""

    TRANSPORT_CONNECT_REQUESTED = "SYN seen (transport connect requested)"  #: T1
    TRANSPORT_ESTABLISHED = "TCP handshake completed"  #: I T4, T T3
    TRANSPORT_DISCONNECT = "transport disconnect (FIN)"
    TRANSPORT_RESET = "transport reset (RST)"
    TRANSPORT_TIMEOUT = "transport/login/logout timeout (inferred)"
    LOGIN_REQUEST = "Login Request"
    LOGIN_RESPONSE_PARTIAL = "Login Response, Status-Class 0, not final"
    LOGIN_RESPONSE_FINAL_OK = "final Login Response, Status-Class 0"
    LOGIN_RESPONSE_REJECT = "Login Response with non-zero Status-Class"
    FFP_REQUEST = "full-feature-phase request"
    FFP_RESPONSE = "full-feature-phase response"
    LOGOUT_REQUEST = "Logout Request for this connection"
    LOGOUT_RESPONSE_OK = "Logout Response, success"
    LOGOUT_RESPONSE_FAIL = "Logout Response, failure"
    ASYNC_REQUEST_LOGOUT = "Async Message, AsyncEvent 1 (request logout)"
    ASYNC_DROP = "Async Message, AsyncEvent 2 (this CID) or 3 (all connections)"
    OTHER_CONN_CLOSE_SESSION = "close-session Logout succeeded on another connection"
    REINSTATEMENT_SUCCEEDED = "successful connection/session reinstatement"
    REINSTATEMENT_FAILED = "failed connection/session reinstatement"


S1, S2, S3, S4 = ConnState.S1_FREE, ConnState.S2_XPT_WAIT, ConnState.S3_XPT_UP, ConnState.S4_IN_LOGIN
S5, S6, S7, S8 = (ConnState.S5_LOGGED_IN, ConnState.S6_IN_LOGOUT, ConnState.S7_LOGOUT_REQUESTED,
                  ConnState.S8_CLEANUP_WAIT)
_I = ConnInput

#: Transport failures: disconnect, reset, (inferred) timeout. T15/T16/T17 list them all.
_DROPS = (_I.TRANSPORT_DISCONNECT, _I.TRANSPORT_RESET, _I.TRANSPORT_TIMEOUT, _I.ASYNC_DROP)


def _rows(*entries: tuple[ConnState, tuple[ConnInput, ...], str, ConnState]
          ) -> dict[tuple[ConnState, ConnInput], tuple[str, ConnState]]:
    table: dict[tuple[ConnState, ConnInput], tuple[str, ConnState]] = {}
    for src, inputs, label, dst in entries:
        for inp in inputs:
            assert (src, inp) not in table, (src, inp)
            table[(src, inp)] = (label, dst)
    return table


# RFC 7143 §8.1.3 (initiator diagram) / §8.1.5 (initiator transition table).
INITIATOR_TABLE = _rows(
    (S1, (_I.TRANSPORT_CONNECT_REQUESTED,), "T1", S2),  # transport connect request (SYN sent)
    # T2: connect timed out, transport reset, or other-conn close-session success
    (S2, (_I.TRANSPORT_RESET, _I.TRANSPORT_TIMEOUT, _I.OTHER_CONN_CLOSE_SESSION), "T2", S1),
    (S2, (_I.TRANSPORT_ESTABLISHED,), "T4", S4),  # transport up -> initiator starts login
    (S4, (_I.LOGIN_RESPONSE_FINAL_OK,), "T5", S5),  # final Login Response, Status-Class 0
    # T7: non-zero Status-Class; login timeout; disconnect; reset; transport timeout; other-conn close-session
    (S4, (_I.LOGIN_RESPONSE_REJECT, _I.TRANSPORT_DISCONNECT, _I.TRANSPORT_RESET, _I.TRANSPORT_TIMEOUT,
          _I.OTHER_CONN_CLOSE_SESSION), "T7", S1),
    # T8: other-conn close-session success, "thus closing this connection requiring no further cleanup"
    (S5, (_I.OTHER_CONN_CLOSE_SESSION,), "T8", S1),
    # T9, T10: "readiness to start the Logout process ... prompting an iSCSI Logout to be sent"
    (S5, (_I.LOGOUT_REQUEST,), "T9", S6),
    (S7, (_I.LOGOUT_REQUEST,), "T10", S6),
    # T11, T12: 'Async PDU with AsyncEvent "Request Logout" was received' (T12: in LOGOUT_REQUESTED)
    (S5, (_I.ASYNC_REQUEST_LOGOUT,), "T11", S7),
    (S7, (_I.ASYNC_REQUEST_LOGOUT,), "T12", S7),
    # T13: Logout Response (success) received, or other-conn close-session success
    (S6, (_I.LOGOUT_RESPONSE_OK, _I.OTHER_CONN_CLOSE_SESSION), "T13", S1),
    # T14: 'Async PDU with AsyncEvent "Request Logout" was received again' (target: illegal)
    (S6, (_I.ASYNC_REQUEST_LOGOUT,), "T14", S6),
    # T15, T16: transport timeout, reset, disconnect, Async "Drop connection" (this CID) / "Drop all"
    (S5, _DROPS, "T15", S8),
    (S7, _DROPS, "T16", S8),
    # T17: Logout Response failure (non-zero) received or Logout timed out; any T15/T16 event
    (S6, (_I.LOGOUT_RESPONSE_FAIL, *_DROPS), "T17", S8),
    # T18: other-conn close-session success
    (S7, (_I.OTHER_CONN_CLOSE_SESSION,), "T18", S1),
)

# RFC 7143 §8.1.4 (target diagram) / §8.1.5 (target transition table).
TARGET_TABLE = _rows(
    (S1, (_I.TRANSPORT_ESTABLISHED,), "T3", S3),  # valid incoming connection established
    (S3, (_I.LOGIN_REQUEST,), "T4", S4),  # initial Login Request received
    # T6: no Login in time, disconnect, reset, transport timeout -> close
    (S3, (_I.TRANSPORT_DISCONNECT, _I.TRANSPORT_RESET, _I.TRANSPORT_TIMEOUT), "T6", S1),
    (S4, (_I.LOGIN_RESPONSE_FINAL_OK,), "T5", S5),  # final Login Response, Status-Class 0, sent
    # T7: non-zero-class response sent; login timeout; disconnect; reset; transport timeout;
    # 'On another connection a "close the session" Logout request was received'. Successful
    # reinstatement is NOT in the RFC list: it is mapped here as that implicit close-session
    # logout (§6.3.5, §11.14.1), see the module docstring.
    (S4, (_I.LOGIN_RESPONSE_REJECT, _I.TRANSPORT_DISCONNECT, _I.TRANSPORT_RESET, _I.TRANSPORT_TIMEOUT,
          _I.OTHER_CONN_CLOSE_SESSION, _I.REINSTATEMENT_SUCCEEDED), "T7", S1),
    # T8: other-conn close-session success sent, or an internal event of a successful reinstatement,
    # prompting the target to close this connection cleanly
    (S5, (_I.OTHER_CONN_CLOSE_SESSION, _I.REINSTATEMENT_SUCCEEDED), "T8", S1),
    (S5, (_I.LOGOUT_REQUEST,), "T9", S6),  # T9, T10: "A Logout request was received"
    (S7, (_I.LOGOUT_REQUEST,), "T10", S6),
    # T11, T12: an internal event requiring the connection's decommissioning -> Async "Request Logout" sent
    (S5, (_I.ASYNC_REQUEST_LOGOUT,), "T11", S7),
    (S7, (_I.ASYNC_REQUEST_LOGOUT,), "T12", S7),
    # T13: Logout Response (success) sent; other-conn close-session success; successful reinstatement
    (S6, (_I.LOGOUT_RESPONSE_OK, _I.OTHER_CONN_CLOSE_SESSION, _I.REINSTATEMENT_SUCCEEDED), "T13", S1),
    # T15/T16: transport timeout, failed reinstatement, reset, disconnect, emergency cleanup (Async 2/3 sent)
    (S5, (*_DROPS, _I.REINSTATEMENT_FAILED), "T15", S8),
    (S7, (*_DROPS, _I.REINSTATEMENT_FAILED), "T16", S8),
    # T17: logout processing failed (failure response sent), failed reinstatement, any T15/T16 event
    (S6, (_I.LOGOUT_RESPONSE_FAIL, _I.REINSTATEMENT_FAILED, *_DROPS), "T17", S8),
    (S7, (_I.OTHER_CONN_CLOSE_SESSION, _I.REINSTATEMENT_SUCCEEDED), "T18", S1),
)

_FFP = frozenset({_I.FFP_REQUEST, _I.FFP_RESPONSE})
_TCP_END = frozenset({_I.TRANSPORT_DISCONNECT, _I.TRANSPORT_RESET})

# Inputs that are legal without a transition (not RFC rows; see the module docstring).
INITIATOR_STAYS: dict[ConnState, frozenset[ConnInput]] = {
    S1: _TCP_END | {_I.TRANSPORT_TIMEOUT, _I.OTHER_CONN_CLOSE_SESSION},  # TCP teardown after logout/reject
    S4: frozenset({_I.LOGIN_REQUEST, _I.LOGIN_RESPONSE_PARTIAL}),
    S5: _FFP,
    S6: _FFP,
    S7: _FFP,
    # in-flight PDUs and the actual TCP teardown after an Async drop notice; a second drop notice
    S8: _FFP | _TCP_END | {_I.ASYNC_DROP, _I.TRANSPORT_TIMEOUT},
}
TARGET_STAYS: dict[ConnState, frozenset[ConnInput]] = {
    **INITIATOR_STAYS,
    S1: INITIATOR_STAYS[S1] | {_I.REINSTATEMENT_SUCCEEDED, _I.REINSTATEMENT_FAILED},
    S6: _FFP | {_I.ASYNC_REQUEST_LOGOUT},  # race: Async 1 sent while the Logout Request was in flight
    S8: INITIATOR_STAYS[S8] | {_I.REINSTATEMENT_SUCCEEDED, _I.REINSTATEMENT_FAILED},
}

#: Mid-stream placement out of UNKNOWN: the state this input proves (then stepped from there).
PLACEMENT: dict[ConnInput, ConnState] = {
    _I.LOGIN_REQUEST: S4,
    _I.LOGIN_RESPONSE_PARTIAL: S4,
    _I.LOGIN_RESPONSE_FINAL_OK: S4,
    _I.LOGIN_RESPONSE_REJECT: S4,
    _I.FFP_REQUEST: S5,
    _I.FFP_RESPONSE: S5,
    _I.LOGOUT_REQUEST: S5,
    _I.LOGOUT_RESPONSE_OK: S6,
    _I.LOGOUT_RESPONSE_FAIL: S6,
    _I.ASYNC_REQUEST_LOGOUT: S5,
    _I.ASYNC_DROP: S5,
}

INITIATOR: Spec[ConnState, ConnInput] = Spec("connection", "initiator", ConnState, ConnInput,
                                            INITIATOR_TABLE, INITIATOR_STAYS, PLACEMENT, ConnState.UNKNOWN)
TARGET: Spec[ConnState, ConnInput] = Spec("connection", "target", ConnState, ConnInput,
                                         TARGET_TABLE, TARGET_STAYS, PLACEMENT, ConnState.UNKNOWN)

#: States in which a connection counts as "in full feature phase" for the session machine.
FFP_STATES = frozenset({S5, S6, S7})


def classify_tcp(record: Record) -> ConnInput | None:
    """The connection input a TCP record stands for (``TcpOpened`` is handled by the tracker)."""
    if isinstance(record, TcpFin):
        return _I.TRANSPORT_DISCONNECT
    if isinstance(record, TcpRst):
        return _I.TRANSPORT_RESET
    if isinstance(record, TcpClosed):
        return {"fin": _I.TRANSPORT_DISCONNECT, "rst": _I.TRANSPORT_RESET}.get(record.reason)
    if isinstance(record, TcpOpened):
        return _I.TRANSPORT_ESTABLISHED
    return None


def is_final_login_response(pdu: LoginResponse) -> bool:
    """§11.13 / §6.3: T=1, NSG=FullFeaturePhase (3), Status-Class 0 ends the login phase."""
    return pdu.status_class == 0 and pdu.transit and pdu.nsg == 3


def classify_pdu(pdu: Pdu, *, own_cid: int | None, logout_for_self: bool) -> ConnInput | None:
    """The connection input ``pdu`` is for the connection that carries it.

    ``own_cid`` is the carrier's CID (None if unknown: mid-stream); ``logout_for_self``
    tells whether the Logout being answered closes the carrier (close-session, or its own
    CID) rather than another CID riding this connection (§11.14).
    """
    if isinstance(pdu, LoginRequest):
        return _I.LOGIN_REQUEST
    if isinstance(pdu, LoginResponse):
        if pdu.status_class != 0:
            return _I.LOGIN_RESPONSE_REJECT  # §11.13.5: any non-zero class ends the login (T7)
        return _I.LOGIN_RESPONSE_FINAL_OK if is_final_login_response(pdu) else _I.LOGIN_RESPONSE_PARTIAL
    if isinstance(pdu, LogoutRequest):
        # §11.14.1: the CID is ignored for close-session; otherwise it may name another connection.
        if pdu.reason == 0 or own_cid is None or pdu.cid == own_cid:
            return _I.LOGOUT_REQUEST
        return _I.FFP_REQUEST
    if isinstance(pdu, LogoutResponse):
        if not logout_for_self:
            return _I.FFP_RESPONSE
        return _I.LOGOUT_RESPONSE_OK if pdu.response == 0 else _I.LOGOUT_RESPONSE_FAIL
    if isinstance(pdu, AsyncMessage):
        # §11.9.1: 1 request logout; 2 drop connection P1=CID; 3 drop all connections.
        if pdu.async_event == 1:
            return _I.ASYNC_REQUEST_LOGOUT
        if pdu.async_event == 3 or (pdu.async_event == 2 and (own_cid is None or pdu.param1 == own_cid)):
            return _I.ASYNC_DROP
        return _I.FFP_RESPONSE
    if isinstance(pdu, UnknownPdu):
        return None
    return _I.FFP_REQUEST if pdu.direction == _I2T else _I.FFP_RESPONSE

