"""Connection cleanup state machine, RFC 7143 §8.2 (states §8.2.1, transitions §8.2.2).

Theory of operation
-------------------
A cleanup machine exists for a connection (and one side) from the moment that side's
connection machine enters CLEANUP_WAIT (S8, which *is* R1). It starts in R1 CLEANUP_WAIT,
and ends in R3 FREE (which is S1). Cleanup is done either through another LOGGED_IN
connection of the session (CSM-E: an explicit Logout naming the failed CID) or through a
new TCP connection (CSM-I: a connection-reinstatement login with the same ISID, TSIH and
CID, §6.3.4). The initiator and target tables have the same shape; only the wording of
the events differs (sent vs received), so both are built from one row list.

Where a passive observer deviates from the RFC:

* M1's "connection state timeout" is invisible. The tracker infers it from the capture
  clock (``tick``/``finish``): Time2Wait + Time2Retain after entering R1, with the values
  in force (negotiated DefaultTime2Wait/DefaultTime2Retain §13.15/§13.16, or Time2Wait/
  Time2Retain from the Logout Response §11.15 / Async Message P2/P3 §11.9.1). The real
  detection delay is unknown, so M1 is always ``inferred``.
* "Other-connection close-session success" (M1 from R1, M4 from R2) is derived from a
  successful close-session Logout Response on a sibling connection, or from a successful
  session reinstatement (its implicit logout reason is "close the session", §11.14.1).
* ``stays`` tolerates a late TIMEOUT in R2 (the cleanup already started) and anything in R3.
* R3 is S1: when a cleanup machine reaches R3 the tracker moves that side's connection
  machine from CLEANUP_WAIT to FREE (a connection transition labelled M1/M4).
* A Login Response 0x020a "Session does not exist" shows the target had already discarded
  the session: its cleanup machines go to R3 through an inferred M1 (outcome "discarded").

All four rows are verified against RFC 3720 wording (notes §1.3), assumed unchanged.
"""

from __future__ import annotations

from enum import Enum

from analyzer.state.machine import Spec


class CleanupState(Enum):
    """RFC 7143 §8.2.1 cleanup states; the value is the RFC's spelling."""

    R1_CLEANUP_WAIT = "CLEANUP_WAIT"  #: same as S8: waiting for cleanup
    R2_IN_CLEANUP = "IN_CLEANUP"  #: CSM-E logout or CSM-I reinstatement in progress
    R3_FREE = "FREE"  #: same as S1: cleaned up

    @property
    def rfc_id(self) -> str:
        """"R1".."R3"."""
        return self.name.split("_", 1)[0]


class CleanupInput(Enum):
    """Inputs of the cleanup machine."""

    STATE_TIMEOUT = "connection state timeout (Time2Wait + Time2Retain elapsed, inferred)"
    CLOSE_SESSION_SUCCESS = "close-session Logout succeeded on another connection (or session reinstated)"
    CLEANUP_STARTED = "CSM-E Logout for this CID or CSM-I reinstatement Login started"
    CLEANUP_FAILED = "CSM-E Logout failed / CSM-I reinstatement login failed"
    CLEANUP_SUCCEEDED = "CSM-E Logout succeeded / CSM-I reinstatement reached LOGGED_IN"


R1, R2, R3 = CleanupState.R1_CLEANUP_WAIT, CleanupState.R2_IN_CLEANUP, CleanupState.R3_FREE
_I = CleanupInput

# RFC 7143 §8.2.2. (state, input) -> (label, next).
_TABLE: dict[tuple[CleanupState, CleanupInput], tuple[str, CleanupState]] = {
    (R1, _I.STATE_TIMEOUT): ("M1", R3),  # connection state timeout
    (R1, _I.CLOSE_SESSION_SUCCESS): ("M1", R3),  # other-conn close-session success
    (R1, _I.CLEANUP_STARTED): ("M2", R2),  # CSM-E Logout for this CID / CSM-I reinstatement login
    (R2, _I.CLEANUP_FAILED): ("M3", R1),  # CSM-I ended FREE / CSM-E logout failed or timed out
    (R2, _I.CLEANUP_SUCCEEDED): ("M4", R3),  # CSM-I reached LOGGED_IN / CSM-E Logout Response success
    (R2, _I.CLOSE_SESSION_SUCCESS): ("M4", R3),  # other-conn close-session success
}
INITIATOR_TABLE = dict(_TABLE)
TARGET_TABLE = dict(_TABLE)

STAYS: dict[CleanupState, frozenset[CleanupInput]] = {
    R2: frozenset({_I.STATE_TIMEOUT}),
    R3: frozenset(CleanupInput),
}

INITIATOR: Spec[CleanupState, CleanupInput] = Spec("cleanup", "initiator", CleanupState, CleanupInput,
                                                  INITIATOR_TABLE, STAYS, {}, None)
TARGET: Spec[CleanupState, CleanupInput] = Spec("cleanup", "target", CleanupState, CleanupInput,
                                               TARGET_TABLE, STAYS, {}, None)
