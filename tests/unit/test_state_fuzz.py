"""Garbage ordering in, records out: the tracker never raises and never hits its safety net."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from state_helpers import INAME, LEADING_KEYS_I, LEADING_KEYS_T, TNAME, Flow, Wire

from analyzer.records import I2T, T2I, Record
from analyzer.state.cleanup import CleanupState
from analyzer.state.connection import ConnState
from analyzer.state.events import TrackerError, Transition, Violation
from analyzer.state.session import SessState
from analyzer.state.tracker import SessionTracker

STATES = {"connection": ConnState, "cleanup": CleanupState, "session": SessState}
ITTS = st.sampled_from([0x1, 0x11, 0x12, 0x13, 0xFFFFFFFF])

Maker = Callable[[Flow, st.DataObject], Record]


def _makers() -> list[Maker]:
    def pick(d: st.DataObject, s: st.SearchStrategy) -> object:  # type: ignore[type-arg]
        return d.draw(s)

    return [
        lambda f, d: f.opened(handshake=bool(pick(d, st.booleans()))),
        lambda f, d: f.fin(pick(d, st.sampled_from([I2T, T2I]))),  # type: ignore[arg-type]
        lambda f, d: f.rst(pick(d, st.sampled_from([I2T, T2I]))),  # type: ignore[arg-type]
        lambda f, d: f.closed(pick(d, st.sampled_from(["fin", "rst", "evicted", "capture_end"]))),  # type: ignore[arg-type]
        lambda f, d: f.gap(pick(d, st.sampled_from([I2T, T2I]))),  # type: ignore[arg-type]
        lambda f, d: f.login_req(LEADING_KEYS_I if pick(d, st.booleans()) else (("InitiatorName", INAME),
                                                                               ("TargetName", TNAME)),
                                 tsih=pick(d, st.sampled_from([0, 0x12])), cid=pick(d, st.sampled_from([0, 1])),  # type: ignore[arg-type]
                                 transit=bool(pick(d, st.booleans()))),
        lambda f, d: f.login_rsp(LEADING_KEYS_T, tsih=0x12, status_class=pick(d, st.sampled_from([0, 0, 2, 3])),  # type: ignore[arg-type]
                                 transit=bool(pick(d, st.booleans()))),
        lambda f, d: f.scsi_cmd(pick(d, ITTS), write=bool(pick(d, st.booleans())),  # type: ignore[arg-type]
                                immediate=bool(pick(d, st.booleans())), dsl=pick(d, st.sampled_from([0, 512]))),  # type: ignore[arg-type]
        lambda f, d: f.data_in(pick(d, ITTS), datasn=pick(d, st.integers(0, 3)),  # type: ignore[arg-type]
                               status=pick(d, st.sampled_from([None, 0, 2]))),  # type: ignore[arg-type]
        lambda f, d: f.data_out(pick(d, ITTS), ttt=pick(d, st.sampled_from([0xFFFFFFFF, 0x100])),  # type: ignore[arg-type]
                                datasn=pick(d, st.integers(0, 3)), final=bool(pick(d, st.booleans()))),  # type: ignore[arg-type]
        lambda f, d: f.r2t(pick(d, ITTS), r2tsn=pick(d, st.integers(0, 3))),  # type: ignore[arg-type]
        lambda f, d: f.scsi_rsp(pick(d, ITTS), status=pick(d, st.sampled_from([0, 2, 8])),  # type: ignore[arg-type]
                                statsn=pick(d, st.sampled_from([None, 0, 0xFFFFFFFF]))),  # type: ignore[arg-type]
        lambda f, d: f.logout_req(reason=pick(d, st.integers(0, 2)), cid=pick(d, st.sampled_from([0, 1])),  # type: ignore[arg-type]
                                  itt=pick(d, ITTS)),  # type: ignore[arg-type]
        lambda f, d: f.logout_rsp(pick(d, ITTS), response=pick(d, st.integers(0, 3)),  # type: ignore[arg-type]
                                  time2wait=pick(d, st.integers(0, 5)), time2retain=pick(d, st.integers(0, 5))),  # type: ignore[arg-type]
        lambda f, d: f.async_msg(pick(d, st.integers(0, 5)), p1=pick(d, st.sampled_from([0, 1])),  # type: ignore[arg-type]
                                 p2=pick(d, st.integers(0, 3)), p3=pick(d, st.integers(0, 3))),  # type: ignore[arg-type]
        lambda f, d: f.nop_out(pick(d, ITTS)),  # type: ignore[arg-type]
        lambda f, d: f.nop_in(pick(d, ITTS)),  # type: ignore[arg-type]
        lambda f, d: f.tmf_req(pick(d, st.integers(1, 8)), ref=pick(d, ITTS), itt=pick(d, ITTS)),  # type: ignore[arg-type]
        lambda f, d: f.tmf_rsp(pick(d, ITTS), response=pick(d, st.sampled_from([0, 1]))),  # type: ignore[arg-type]
        lambda f, d: f.text_req((("SendTargets", "All"),), itt=pick(d, ITTS)),  # type: ignore[arg-type]
        lambda f, d: f.text_rsp(pick(d, ITTS), (("TargetName", TNAME),), final=bool(pick(d, st.booleans()))),  # type: ignore[arg-type]
        lambda f, d: f.reject(reason=4, rejected_opcode=pick(d, st.sampled_from([None, 1, 5])),  # type: ignore[arg-type]
                              rejected_itt=pick(d, ITTS)),  # type: ignore[arg-type]
    ]


MAKERS = _makers()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_record_streams_never_raise(data: st.DataObject) -> None:
    w = Wire()
    flows = [Flow(w), Flow(w, conn="10.0.0.1:40001->10.0.0.2:3260")]
    flows[1].nums = flows[0].nums
    tr = SessionTracker(time2wait_default=0, time2retain_default=1)
    out: list[Record] = []
    for _ in range(data.draw(st.integers(1, 60))):
        f = data.draw(st.sampled_from(flows))
        maker = data.draw(st.sampled_from(MAKERS))
        if data.draw(st.booleans()):
            w.advance(data.draw(st.integers(0, 3_000_000_000)))
        out += tr.feed(maker(f, data))
    out += tr.tick(w.ts + 1)
    out += tr.finish(w.ts + 10_000_000_000)
    assert [r for r in out if isinstance(r, TrackerError)] == []
    for r in out:
        if isinstance(r, Transition):
            STATES[r.machine](r.from_state)
            STATES[r.machine](r.to_state)
        elif isinstance(r, Violation):
            STATES[r.machine](r.state)
    assert tr.sessions() is not None and tr.connections() is not None
