"""Every row of every state table (both sides), checked against an independent copy of the
RFC 7143 topology (§8.1.5 connection tables, §8.2.2 cleanup, §8.3 session), plus
hypothesis: any sequence of inputs never raises and always lands in a state of the enum."""

from __future__ import annotations

from enum import Enum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.state import cleanup, connection, session
from analyzer.state.cleanup import CleanupState
from analyzer.state.connection import ConnInput, ConnState
from analyzer.state.events import Transition, Violation
from analyzer.state.machine import Context, Spec, advance, rows, step
from analyzer.state.session import SessState

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
