"""Every row of every state table (both sides), checked against an independent copy of the
RFC 7143 topology (§8.1.5 connection tables, §8.2.2 cleanup, §8.3 session), plus
hypothesis: any sequence of inputs never raises and always lands in a state of the enum."""

from __future__ import annotations

from enum import Enum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.iscsi.opcodes import async_event_name, login_status_name
from analyzer.state import cleanup, connection, session
from analyzer.state.cleanup import CleanupInput, CleanupState
from analyzer.state.connection import ConnInput, ConnState
from analyzer.state.events import Transition, Violation
from analyzer.state.machine import Context, Spec, advance, rows, step
from analyzer.state.session import SessInput, SessState

C = ConnState
# RFC 7143 §8.1.5 transition tables: label -> (from, to). Independent of the implementation.
CONN_TOPOLOGY = {
    "T1": (C.S1_FREE, C.S2_XPT_WAIT), "T2": (C.S2_XPT_WAIT, C.S1_FREE), "T3": (C.S1_FREE, C.S3_XPT_UP),
    "T5": (C.S4_IN_LOGIN, C.S5_LOGGED_IN), "T6": (C.S3_XPT_UP, C.S1_FREE), "T7": (C.S4_IN_LOGIN, C.S1_FREE),
    "T8": (C.S5_LOGGED_IN, C.S1_FREE), "T9": (C.S5_LOGGED_IN, C.S6_IN_LOGOUT),
    "T10": (C.S7_LOGOUT_REQUESTED, C.S6_IN_LOGOUT), "T11": (C.S5_LOGGED_IN, C.S7_LOGOUT_REQUESTED),
    "T12": (C.S7_LOGOUT_REQUESTED, C.S7_LOGOUT_REQUESTED), "T13": (C.S6_IN_LOGOUT, C.S1_FREE),
    "T14": (C.S6_IN_LOGOUT, C.S6_IN_LOGOUT), "T15": (C.S5_LOGGED_IN, C.S8_CLEANUP_WAIT),
    "T16": (C.S7_LOGOUT_REQUESTED, C.S8_CLEANUP_WAIT), "T17": (C.S6_IN_LOGOUT, C.S8_CLEANUP_WAIT),
    "T18": (C.S7_LOGOUT_REQUESTED, C.S1_FREE),
}
T4_FROM = {"initiator": C.S2_XPT_WAIT, "target": C.S3_XPT_UP}
CONN_LABELS = {
    "initiator": {f"T{i}" for i in range(1, 19)} - {"T3", "T6"},
    "target": {f"T{i}" for i in range(1, 19)} - {"T1", "T2", "T14"},
}
R = CleanupState
CLEANUP_TOPOLOGY = {"M1": {(R.R1_CLEANUP_WAIT, R.R3_FREE)}, "M2": {(R.R1_CLEANUP_WAIT, R.R2_IN_CLEANUP)},
                    "M3": {(R.R2_IN_CLEANUP, R.R1_CLEANUP_WAIT)}, "M4": {(R.R2_IN_CLEANUP, R.R3_FREE)}}
Q = SessState
SESSION_TOPOLOGY = {
    "initiator": {"N1": (Q.Q1_FREE, Q.Q3_LOGGED_IN), "N2": (Q.Q3_LOGGED_IN, Q.Q1_FREE),
                  "N3": (Q.Q3_LOGGED_IN, Q.Q4_FAILED), "N4": (Q.Q4_FAILED, Q.Q3_LOGGED_IN),
                  "N5": (Q.Q4_FAILED, Q.Q1_FREE)},
    "target": {"N1": (Q.Q1_FREE, Q.Q2_ACTIVE), "N2": (Q.Q2_ACTIVE, Q.Q3_LOGGED_IN),
               "N3": (Q.Q3_LOGGED_IN, Q.Q1_FREE), "N5": (Q.Q3_LOGGED_IN, Q.Q4_FAILED),
               "N6": (Q.Q4_FAILED, Q.Q1_FREE), "N7": (Q.Q4_FAILED, Q.Q5_IN_CONTINUE),
               "N8": (Q.Q5_IN_CONTINUE, Q.Q4_FAILED), "N9": (Q.Q2_ACTIVE, Q.Q1_FREE),
               "N10": (Q.Q5_IN_CONTINUE, Q.Q3_LOGGED_IN), "N11": (Q.Q5_IN_CONTINUE, Q.Q1_FREE)},
}

# The events of every label, written from the RFC text (docs/rfc-verification.md items 1-3),
# independently of the tables: T1-T7 from RFC 7143 §8.1.2; target T7 .. T18 from the RFC 3720
# §7.1.2 wording RFC 7143 consolidates; M1-M4 from §8.2.2; N1-N11 from the §8.3.3 wording.
CI = ConnInput
#: T15/T16's transport failures plus Async "Drop connection"/"Drop all connections" ("any T15/T16 event")
DROPS = {CI.TRANSPORT_DISCONNECT, CI.TRANSPORT_RESET, CI.TRANSPORT_TIMEOUT, CI.ASYNC_DROP}
RFC_CONN_EVENTS: dict[str, dict[str, set[ConnInput]]] = {
    "initiator": {
        "T1": {CI.TRANSPORT_CONNECT_REQUESTED},  # "Transport connect request was made (e.g., TCP SYN sent)"
        # "Transport connection request timed out, a transport reset was received, or ... close the session"
        "T2": {CI.TRANSPORT_RESET, CI.TRANSPORT_TIMEOUT, CI.OTHER_CONN_CLOSE_SESSION},
        "T4": {CI.TRANSPORT_ESTABLISHED},  # "Transport connection established, thus prompting ... Login"
        "T5": {CI.LOGIN_RESPONSE_FINAL_OK},  # "The final iSCSI Login Response with a Status-Class of zero"
        # a) non-zero Status-Class b) Login timed out c) disconnect d) reset e) transport timeout
        # f) close-session success on another connection
        "T7": {CI.LOGIN_RESPONSE_REJECT, CI.TRANSPORT_TIMEOUT, CI.TRANSPORT_DISCONNECT, CI.TRANSPORT_RESET,
               CI.OTHER_CONN_CLOSE_SESSION},
        "T8": {CI.OTHER_CONN_CLOSE_SESSION},  # "... closing this connection requiring no further cleanup"
        "T9": {CI.LOGOUT_REQUEST}, "T10": {CI.LOGOUT_REQUEST},  # "... prompting an iSCSI Logout to be sent"
        "T11": {CI.ASYNC_REQUEST_LOGOUT}, "T12": {CI.ASYNC_REQUEST_LOGOUT},  # Async "Request Logout" received
        "T13": {CI.LOGOUT_RESPONSE_OK, CI.OTHER_CONN_CLOSE_SESSION},
        "T14": {CI.ASYNC_REQUEST_LOGOUT},  # 'AsyncEvent "Request Logout" was received again'
        "T15": DROPS, "T16": DROPS,  # timeout, RESET, disconnect, "Drop connection" (this CID), "Drop all"
        "T17": DROPS | {CI.LOGOUT_RESPONSE_FAIL},  # Logout Response failure or timeout; any T15 event
        "T18": {CI.OTHER_CONN_CLOSE_SESSION},
    },
    "target": {
        "T3": {CI.TRANSPORT_ESTABLISHED},  # "Received a valid transport connection request ..."
        "T4": {CI.LOGIN_REQUEST},  # "Initial iSCSI Login Request was received"
        "T5": {CI.LOGIN_RESPONSE_FINAL_OK},  # final Login Request -> final Login Response, Status-Class 0
        # "Timed out waiting for an iSCSI Login, transport disconnect ..., transport reset ..., ... timeout"
        "T6": {CI.TRANSPORT_TIMEOUT, CI.TRANSPORT_DISCONNECT, CI.TRANSPORT_RESET},
        # non-zero Status-Class sent; Login timed out; disconnect; reset; transport timeout; "On another
        # connection a 'close the session' Logout request was received". REINSTATEMENT_SUCCEEDED is the
        # observer's mapping of a session reinstatement as that implicit close-session logout (§6.3.5).
        "T7": {CI.LOGIN_RESPONSE_REJECT, CI.TRANSPORT_TIMEOUT, CI.TRANSPORT_DISCONNECT, CI.TRANSPORT_RESET,
               CI.OTHER_CONN_CLOSE_SESSION, CI.REINSTATEMENT_SUCCEEDED},
        # close-session success sent on another connection, "or an internal event of a successful
        # session reinstatement" (RFC 3720 as quoted by Delphix; connection reinstatement likewise)
        "T8": {CI.OTHER_CONN_CLOSE_SESSION, CI.REINSTATEMENT_SUCCEEDED},
        "T9": {CI.LOGOUT_REQUEST}, "T10": {CI.LOGOUT_REQUEST},  # "A Logout request was received"
        "T11": {CI.ASYNC_REQUEST_LOGOUT}, "T12": {CI.ASYNC_REQUEST_LOGOUT},  # Async "Request Logout" sent
        "T13": {CI.LOGOUT_RESPONSE_OK, CI.OTHER_CONN_CLOSE_SESSION, CI.REINSTATEMENT_SUCCEEDED},
        # transport timeout, failed reinstatement, RESET, disconnect, emergency cleanup (Async 2/3 sent)
        "T15": DROPS | {CI.REINSTATEMENT_FAILED}, "T16": DROPS | {CI.REINSTATEMENT_FAILED},
        # failed Logout processing (failure response sent), failed reinstatement, any T15/T16 event
        "T17": DROPS | {CI.REINSTATEMENT_FAILED, CI.LOGOUT_RESPONSE_FAIL},
        "T18": {CI.OTHER_CONN_CLOSE_SESSION, CI.REINSTATEMENT_SUCCEEDED},
    },
}
M = CleanupInput
RFC_CLEANUP_EVENTS: dict[str, set[CleanupInput]] = {
    "M1": {M.STATE_TIMEOUT, M.CLOSE_SESSION_SUCCESS},  # connection state timeout; close-session success
    "M2": {M.CLEANUP_STARTED},  # implicit/explicit logout process initiated (CSM-I login, CSM-E Logout)
    "M3": {M.CLEANUP_FAILED},  # CSM-I ended in FREE; CSM-E logout failed/timed out
    "M4": {M.CLEANUP_SUCCEEDED, M.CLOSE_SESSION_SUCCESS},  # CSM-I LOGGED_IN / CSM-E success; close-session
}
N = SessInput
RFC_SESSION_EVENTS: dict[str, dict[str, set[SessInput]]] = {
    "initiator": {
        "N1": {N.CONN_LOGGED_IN},  # "At least one transport connection reached the LOGGED_IN state"
        "N2": {N.SESSION_CLOSED},  # graceful closing of the session via session closure
        "N3": {N.SESSION_FAILED},  # session failure
        "N4": {N.CONN_LOGGED_IN},  # "A session continuation attempt succeeded"
        # "Session state timeout occurred, or a session reinstatement cleared this session instance"
        "N5": {N.SESSION_TIMEOUT, N.SESSION_REINSTATED},
    },
    "target": {
        "N1": {N.LOGIN_STARTED},  # "The first iSCSI connection in the session had reached the IN_LOGIN state"
        "N2": {N.CONN_LOGGED_IN},  # "At least one iSCSI connection reached the LOGGED_IN state"
        "N3": {N.SESSION_CLOSED},  # "Graceful closing of the session via session closure"
        "N5": {N.SESSION_FAILED},  # "Session failure"
        "N6": {N.SESSION_TIMEOUT, N.SESSION_REINSTATED},  # timeout, or "a session reinstatement cleared" it
        "N7": {N.LOGIN_STARTED},  # "A session continuation attempt is initiated"
        "N8": {N.LOGIN_FAILED},  # "The last session continuation attempt failed"
        "N9": {N.LOGIN_FAILED},  # "Login attempt on the leading connection failed"
        "N10": {N.CONN_LOGGED_IN},  # "A session continuation attempt succeeded"
        "N11": {N.SESSION_REINSTATED},  # "A successful session reinstatement cleanly closed the session"
    },
}

SPECS: list[Spec] = [connection.INITIATOR, connection.TARGET, cleanup.INITIATOR, cleanup.TARGET,  # type: ignore[type-arg]
                     session.INITIATOR, session.TARGET]
CTX = Context(7, 1234, "s1", "c1", "test input")


def _all_rows() -> list[tuple[Spec, Enum, Enum, str, Enum]]:  # type: ignore[type-arg]
    return [(spec, s, i, label, nxt) for spec in SPECS for s, i, label, nxt in rows(spec)]


@pytest.mark.parametrize(("spec", "state", "inp", "label", "nxt"), _all_rows(),
                         ids=lambda v: getattr(v, "name", None) or (f"{v.machine}-{v.side}" if isinstance(v, Spec)
                                                                    else str(v)))
def test_every_row_steps_as_tabled(spec: Spec, state: Enum, inp: Enum, label: str, nxt: Enum) -> None:  # type: ignore[type-arg]
    result = step(spec, state, inp, CTX)
    assert isinstance(result, Transition)
    assert (result.label, result.from_state, result.to_state) == (label, state.value, nxt.value)
    assert (result.machine, result.side, result.frame, result.ts_ns) == (spec.machine, spec.side, 7, 1234)
    assert result.session == "s1" and result.conn == "c1" and result.event == "test input"
    # the label's RFC topology
    if spec.machine == "connection":
        expected = (T4_FROM[spec.side], C.S4_IN_LOGIN) if label == "T4" else CONN_TOPOLOGY[label]
        assert (state, nxt) == expected
        assert label in CONN_LABELS[spec.side]
    elif spec.machine == "cleanup":
        assert (state, nxt) in CLEANUP_TOPOLOGY[label]
    else:
        assert (state, nxt) == SESSION_TOPOLOGY[spec.side][label]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.machine}-{s.side}")
def test_every_rfc_label_of_the_side_is_in_its_table(spec: Spec) -> None:  # type: ignore[type-arg]
    have = {label for _, _, label, _ in rows(spec)}
    if spec.machine == "connection":
        assert have == CONN_LABELS[spec.side]
    elif spec.machine == "cleanup":
        assert have == set(CLEANUP_TOPOLOGY)
    else:
        assert have == set(SESSION_TOPOLOGY[spec.side])


def test_target_never_has_initiator_only_states() -> None:
    states = {s for s, _, _, n in rows(connection.TARGET)} | {n for _, _, _, n in rows(connection.TARGET)}
    assert C.S2_XPT_WAIT not in states
    states = {s for s, _, _, n in rows(connection.INITIATOR)} | {n for _, _, _, n in rows(connection.INITIATOR)}
    assert C.S3_XPT_UP not in states


def test_cleanup_wait_is_left_only_through_the_cleanup_machine() -> None:
    for spec in (connection.INITIATOR, connection.TARGET):
        assert not [r for r in rows(spec) if r[0] is C.S8_CLEANUP_WAIT]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.machine}-{s.side}")
def test_pairs_outside_table_and_stays_are_violations_and_stay_put(spec: Spec) -> None:  # type: ignore[type-arg]
    for state in spec.states:
        if state is spec.unknown:
            continue
        for inp in spec.inputs:
            r = step(spec, state, inp, CTX)
            if (state, inp) in spec.table:
                assert isinstance(r, Transition)
            elif inp in spec.stays.get(state, frozenset()):
                assert r is None
            else:
                assert isinstance(r, Violation)
                assert (r.state, r.input, r.machine, r.side) == (state.value, inp.name, spec.machine, spec.side)
                new, recs = advance(spec, state, inp, CTX)
                assert new is state and recs == [r]


@pytest.mark.parametrize("spec", [connection.INITIATOR, connection.TARGET], ids=lambda s: s.side)
def test_unknown_is_placed_by_the_first_telling_pdu(spec: Spec) -> None:  # type: ignore[type-arg]
    new, recs = advance(spec, C.UNKNOWN, ConnInput.FFP_REQUEST, CTX)
    assert new is C.S5_LOGGED_IN
    assert len(recs) == 1 and isinstance(recs[0], Transition)
    assert (recs[0].from_state, recs[0].to_state, recs[0].label, recs[0].inferred) == (
        "UNKNOWN", "LOGGED_IN", None, True)
    # a Logout Request seen first: placed LOGGED_IN, then T9
    new, recs = advance(spec, C.UNKNOWN, ConnInput.LOGOUT_REQUEST, CTX)
    assert new is C.S6_IN_LOGOUT and [r.label for r in recs] == [None, "T9"]  # type: ignore[union-attr]
    # a FIN tells nothing: stays UNKNOWN without records
    assert advance(spec, C.UNKNOWN, ConnInput.TRANSPORT_DISCONNECT, CTX) == (C.UNKNOWN, [])


def test_state_values_are_rfc_spellings() -> None:
    assert [s.value for s in ConnState][:8] == ["FREE", "XPT_WAIT", "XPT_UP", "IN_LOGIN", "LOGGED_IN", "IN_LOGOUT",
                                                "LOGOUT_REQUESTED", "CLEANUP_WAIT"]
    assert [s.rfc_id for s in ConnState] == ["S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "?"]
    assert [s.value for s in CleanupState] == ["CLEANUP_WAIT", "IN_CLEANUP", "FREE"]
    assert [s.value for s in SessState][:5] == ["FREE", "ACTIVE", "LOGGED_IN", "FAILED", "IN_CONTINUE"]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_input_sequence_never_raises_and_stays_in_the_enum(data: st.DataObject) -> None:
    spec = data.draw(st.sampled_from(SPECS))
    state = data.draw(st.sampled_from(list(spec.states)))
    for inp in data.draw(st.lists(st.sampled_from(list(spec.inputs)), max_size=40)):
        state, recs = advance(spec, state, inp, CTX)
        assert isinstance(state, spec.states)
        for r in recs:
            assert isinstance(r, (Transition, Violation))
            if isinstance(r, Transition):
                spec.states(r.to_state)  # a member of the enum


def _events_by_label(spec: Spec) -> dict[str, set[Enum]]:  # type: ignore[type-arg]
    got: dict[str, set[Enum]] = {}
    for _, inp, label, _ in rows(spec):
        got.setdefault(label, set()).add(inp)
    return got


@pytest.mark.parametrize(("side", "label"), [(side, label) for side, labels in RFC_CONN_EVENTS.items()
                                             for label in labels])
def test_connection_label_fires_on_exactly_the_rfc_events(side: str, label: str) -> None:
    spec = connection.INITIATOR if side == "initiator" else connection.TARGET
    assert _events_by_label(spec)[label] == RFC_CONN_EVENTS[side][label]


@pytest.mark.parametrize("spec", [cleanup.INITIATOR, cleanup.TARGET], ids=lambda s: s.side)
def test_cleanup_labels_fire_on_exactly_the_rfc_events(spec: Spec) -> None:  # type: ignore[type-arg]
    assert _events_by_label(spec) == RFC_CLEANUP_EVENTS


@pytest.mark.parametrize(("side", "label"), [(side, label) for side, labels in RFC_SESSION_EVENTS.items()
                                             for label in labels])
def test_session_label_fires_on_exactly_the_rfc_events(side: str, label: str) -> None:
    spec = session.INITIATOR if side == "initiator" else session.TARGET
    assert _events_by_label(spec)[label] == RFC_SESSION_EVENTS[side][label]


def test_rfc_event_copies_cover_every_label() -> None:
    assert set(RFC_CONN_EVENTS["initiator"]) == CONN_LABELS["initiator"]
    assert set(RFC_CONN_EVENTS["target"]) == CONN_LABELS["target"]
    for side in ("initiator", "target"):
        assert set(RFC_SESSION_EVENTS[side]) == set(SESSION_TOPOLOGY[side])


def test_target_reinstatement_of_a_logging_in_connection_is_t7_not_a_violation() -> None:
    """The one observer mapping (docs/rfc-verification.md item 2): a successful session
    reinstatement is an implicit "close the session" logout (§6.3.5, §11.14.1), the RFC's
    last target-T7 event, so the old session's IN_LOGIN connection goes to FREE."""
    r = step(connection.TARGET, C.S4_IN_LOGIN, ConnInput.REINSTATEMENT_SUCCEEDED, CTX)
    assert isinstance(r, Transition) and (r.label, r.to_state) == ("T7", "FREE")
    r = step(connection.INITIATOR, C.S4_IN_LOGIN, ConnInput.REINSTATEMENT_SUCCEEDED, CTX)
    assert isinstance(r, Violation)  # the initiator learns nothing from the target's internal event


# RFC 3720 §10.13.5 status table (consolidated as RFC 7143 §11.13.5). The tracker names T7 events
# and login outcomes with iscsi/opcodes.py's table, the only copy (state/tasks.py has none any more).
RFC_LOGIN_STATUS = {
    0x0000: "Success", 0x0101: "Target moved temporarily", 0x0102: "Target moved permanently",
    0x0200: "Initiator error", 0x0201: "Authentication failure", 0x0202: "Authorization failure",
    0x0203: "Not found", 0x0204: "Target removed", 0x0205: "Unsupported version",
    0x0206: "Too many connections", 0x0207: "Missing parameter", 0x0208: "Can't include in session",
    0x0209: "Session type not supported", 0x020A: "Session does not exist", 0x020B: "Invalid during login",
    0x0300: "Target error", 0x0301: "Service unavailable", 0x0302: "Out of resources",
}


@pytest.mark.parametrize("code", sorted(RFC_LOGIN_STATUS), ids=lambda c: f"{c:04x}")
def test_login_status_names_are_the_rfc_names(code: int) -> None:
    assert login_status_name(code >> 8, code & 0xFF) == RFC_LOGIN_STATUS[code]


def test_the_tracker_names_login_outcomes_with_the_one_table() -> None:
    # the tracker's own text (T7 event, the login task's response_name) uses opcodes.LOGIN_STATUS
    from analyzer.iscsi import opcodes
    from analyzer.state import logins, tasks

    assert not hasattr(tasks, "LOGIN_STATUS") and not hasattr(tasks, "login_status_name")
    assert logins.login_status_name is opcodes.login_status_name


def test_async_vendor_code_names() -> None:
    # RFC 3720 §10.9.1: "255 - vendor specific iSCSI Event ... All other event codes are reserved."
    assert async_event_name(255) == "Vendor-specific event"
    assert async_event_name(248) == "Reserved event 248"  # RFC 7143's range not checkable: neutral name


def test_state_triggered_coupling_is_the_rfc_identity_of_cleanup_and_connection_states() -> None:
    # §8.2: "R1 is S8", "R3 is S1": the only cleanup-triggered row moves CLEANUP_WAIT to FREE
    from analyzer.state import coupling

    assert coupling.CLEANUP_TRIGGERED == {(CleanupState.R3_FREE, C.S8_CLEANUP_WAIT): C.S1_FREE}
    first = coupling.CONNECTION_TRIGGERED[0]
    assert (first.states, first.effect) == (frozenset({C.S8_CLEANUP_WAIT}), coupling.Effect.START_CLEANUP)
    # every effect has a row, and the session inputs the session rows step exist in both session tables
    assert {r.effect for r in coupling.CONNECTION_TRIGGERED} == set(coupling.Effect)
    for spec in (session.INITIATOR, session.TARGET):
        have = {i for _, i, _, _ in rows(spec)}
        assert {SessInput.CONN_LOGGED_IN, SessInput.SESSION_CLOSED, SessInput.SESSION_FAILED} <= have
    assert SessInput.LOGIN_FAILED in {i for _, i, _, _ in rows(session.TARGET)}  # the initiator has no row


def test_render_script_shows_the_coupling_table() -> None:
    import runpy

    text = runpy.run_path("scripts/render_state_tables.py")["render_coupling"]()
    assert "R3 FREE | S8 CLEANUP_WAIT | S1 FREE" in text and text.count("| session |") == 4
