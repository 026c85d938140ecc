"""Session state machines, RFC 7143 §8.3 (initiator §8.3.1, target §8.3.2), with §6.3.5/§6.3.6.

Theory of operation
-------------------
Initiator: Q1 FREE, Q3 LOGGED_IN, Q4 FAILED. Target adds Q2 ACTIVE (the leading connection
is logging in) and Q5 IN_CONTINUE (a continuation attempt is in progress). The tracker
derives the inputs from the connection machines of the session's connections:

* ``LOGIN_STARTED``: a connection of the session entered IN_LOGIN (the leading one for a
  new session, or one with the session's TSIH: add-connection or continuation).
* ``LOGIN_FAILED``: such a login ended without reaching LOGGED_IN (T7).
* ``CONN_LOGGED_IN``: such a login reached LOGGED_IN (T5).
* ``SESSION_CLOSED``: graceful closure: a successful close-session Logout, or a
  close-connection Logout of the last FFP connection with nothing awaiting cleanup.
* ``SESSION_FAILED``: the last FFP connection reached CLEANUP_WAIT (or completed a
  recovery logout).
* ``SESSION_TIMEOUT``: inferred from the capture clock: the session stayed FAILED until
  its last connection-state timeout (Time2Wait + Time2Retain) expired.
* ``SESSION_REINSTATED``: a session reinstatement login (TSIH 0, same initiator, ISID and
  target, §6.3.5) succeeded and cleared this session.

The table interprets one input per state (LOGIN_STARTED in Q1 is N1 for the target, in
Q4 it is N7; in Q3 it just adds a connection), so it stays pure data.

Where a passive observer deviates: session state timeout and continuation decisions are
internal; the timeout is inferred. A session seen only mid-stream starts in the non-RFC
``UNKNOWN`` and is placed (inferred) by the first connection state that tells.

RFC text (docs/rfc-verification.md, item 3): the §8.3 diagrams could not be read from an RFC
copy here. The target table matches the RFC 3720 §7.3 transition wording as quoted by
RFC-derived implementations (an ordered N1..N11 list: "The first iSCSI connection in the
session had reached the IN_LOGIN state", ..., N4 "Illegal", ..., "A successful session
reinstatement cleanly closed the session") and the Delphix target matrix (the same ten
cells, except that Delphix ends N3, N6 and N11 in a ZOMBIE state of its own rather than
FREE); the initiator table (N1-N5) follows the same transition texts and the rule that an
initiator reinstates a session only from FAILED (§6.3.5). Every row is kept;
``tests/unit/test_state_tables.py`` holds an independent copy of each label's event.
"""

from __future__ import annotations

from enum import Enum

from analyzer.state.machine import Spec


class SessState(Enum):
    """RFC 7143 §8.3 session states; the value is the RFC's spelling."""

    Q1_FREE = "FREE"  #: no session
    Q2_ACTIVE = "ACTIVE"  #: target: the leading connection is logging in
    Q3_LOGGED_IN = "LOGGED_IN"  #: at least one connection in full feature phase
    Q4_FAILED = "FAILED"  #: last FFP connection failed; state retained for continuation
    Q5_IN_CONTINUE = "IN_CONTINUE"  #: target: continuation attempt in progress
    UNKNOWN = "UNKNOWN"  #: NOT an RFC state: the capture began inside the session

    @property
    def rfc_id(self) -> str:
        """"Q1".."Q5", or "?" for UNKNOWN."""
        return self.name.split("_", 1)[0] if self is not SessState.UNKNOWN else "?"


class SessInput(Enum):
    """Inputs of the session machines (derived from connection transitions)."""

    LOGIN_STARTED = "a connection of the session entered IN_LOGIN"
    LOGIN_FAILED = "a login of the session ended in FREE"
    CONN_LOGGED_IN = "a connection of the session reached LOGGED_IN"
    SESSION_CLOSED = "graceful session closure"
    SESSION_FAILED = "last full-feature connection failed"
    SESSION_TIMEOUT = "session state timeout (inferred)"
    SESSION_REINSTATED = "session reinstatement cleared the session"


Q1, Q2, Q3, Q4, Q5 = (SessState.Q1_FREE, SessState.Q2_ACTIVE, SessState.Q3_LOGGED_IN,
                      SessState.Q4_FAILED, SessState.Q5_IN_CONTINUE)
_I = SessInput

# RFC 7143 §8.3.1, initiator (see module docstring for how it was checked).
INITIATOR_TABLE: dict[tuple[SessState, SessInput], tuple[str, SessState]] = {
    (Q1, _I.CONN_LOGGED_IN): ("N1", Q3),  # at least one connection reached LOGGED_IN
    (Q3, _I.SESSION_CLOSED): ("N2", Q1),  # graceful closing of the session
    (Q3, _I.SESSION_FAILED): ("N3", Q4),  # session failure
    (Q4, _I.CONN_LOGGED_IN): ("N4", Q3),  # session continuation succeeded
    (Q4, _I.SESSION_TIMEOUT): ("N5", Q1),  # session timeout
    (Q4, _I.SESSION_REINSTATED): ("N5", Q1),  # session reinstatement cleared it
}

# RFC 7143 §8.3.2, target (see module docstring for how it was checked).
TARGET_TABLE: dict[tuple[SessState, SessInput], tuple[str, SessState]] = {
    (Q1, _I.LOGIN_STARTED): ("N1", Q2),  # first connection of the session entered IN_LOGIN
    (Q2, _I.CONN_LOGGED_IN): ("N2", Q3),  # a connection reached LOGGED_IN
    (Q3, _I.SESSION_CLOSED): ("N3", Q1),  # graceful closing of the session
    (Q3, _I.SESSION_FAILED): ("N5", Q4),  # session failure
    (Q4, _I.SESSION_TIMEOUT): ("N6", Q1),  # session state timeout
    (Q4, _I.SESSION_REINSTATED): ("N6", Q1),  # session reinstatement: state discarded
    (Q4, _I.LOGIN_STARTED): ("N7", Q5),  # continuation attempt started
    (Q5, _I.LOGIN_FAILED): ("N8", Q4),  # last continuation attempt failed
    (Q2, _I.LOGIN_FAILED): ("N9", Q1),  # login on the leading connection failed
    (Q5, _I.CONN_LOGGED_IN): ("N10", Q3),  # continuation succeeded
    (Q5, _I.SESSION_REINSTATED): ("N11", Q1),  # successful session reinstatement closed the session
}

_LOGINS = frozenset({_I.LOGIN_STARTED, _I.LOGIN_FAILED, _I.CONN_LOGGED_IN})

# Legal inputs without a transition (not RFC rows): logins that add connections to a
# LOGGED_IN session, the initiator's view of login attempts before/after FAILED.
INITIATOR_STAYS: dict[SessState, frozenset[SessInput]] = {
    Q1: frozenset({_I.LOGIN_STARTED, _I.LOGIN_FAILED, _I.SESSION_TIMEOUT}),
    Q3: _LOGINS,
    Q4: frozenset({_I.LOGIN_STARTED, _I.LOGIN_FAILED}),
}
TARGET_STAYS: dict[SessState, frozenset[SessInput]] = {
    # a login still running on a sibling connection when the session closed/was reinstated fails afterwards
    Q1: frozenset({_I.SESSION_TIMEOUT, _I.LOGIN_FAILED}),
    Q2: frozenset({_I.LOGIN_STARTED}),
    Q3: _LOGINS,
    Q5: frozenset({_I.LOGIN_STARTED, _I.SESSION_TIMEOUT}),
}

#: Mid-stream placement: the session state an input proves when the session is UNKNOWN.
PLACEMENT: dict[SessInput, SessState] = {
    _I.CONN_LOGGED_IN: Q3,  # stepped from LOGGED_IN: stays
    _I.SESSION_CLOSED: Q3,
    _I.SESSION_FAILED: Q3,
}

INITIATOR: Spec[SessState, SessInput] = Spec("session", "initiator", SessState, SessInput,
                                            INITIATOR_TABLE, INITIATOR_STAYS, PLACEMENT, SessState.UNKNOWN)
TARGET: Spec[SessState, SessInput] = Spec("session", "target", SessState, SessInput,
                                         TARGET_TABLE, TARGET_STAYS, PLACEMENT, SessState.UNKNOWN)

#: States in which a session is "still there" for reinstatement purposes (§6.3.5).
LIVE_STATES = frozenset({Q2, Q3, Q4, Q5, SessState.UNKNOWN})
