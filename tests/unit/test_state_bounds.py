"""Memory bounds of the tracker on long, lossy captures (tasks whose answer fell into a gap)."""

from __future__ import annotations

from state_helpers import MS, Flow, S, SequenceEvent, Wire, login, of, run

from analyzer.records import T2I, Record
from analyzer.state.events import TaskRecord
from analyzer.state.tracker import SessionTracker


def _lossy_reads(tr: SessionTracker, f: Flow, n: int, *, dt_ns: int = MS) -> tuple[list[Record], int]:
    """``n`` READs of three Data-In each; the third (with the status) of every one falls into a
    capture gap. Returns the tracker's records and the largest open-task count seen."""
    out: list[Record] = []
    most = 0
    for _ in range(n):
        itt = f.new_itt()
        f.wire.advance(dt_ns)
        out += run(tr, [f.scsi_cmd(itt, edtl=12288), f.data_in(itt, datasn=0),
                        f.data_in(itt, datasn=1, offset=4096)])
        f.data_in(itt, datasn=2, offset=8192, status=0)  # built (StatSN advances) but never captured
        out += run(tr, [f.gap(T2I)])
        most = max(most, tr.kept()["open_tasks"])
    return out, most


def test_tasks_lost_in_gaps_stay_bounded_by_count() -> None:
    # Hardening issue: every third Data-In missing grew the task maps until the connection closed.
    w, tr = Wire(), SessionTracker(max_gap_tasks=200)
    f = Flow(w)
    run(tr, [f.opened(), *login(f)])
    out, most = _lossy_reads(tr, f, 3000)
    assert most <= 201  # the bound, plus the command being read when the sweep runs
    lost = [t for t in of(out, TaskRecord) if t.outcome == "lost_in_capture_gap"]
    assert len(lost) >= 3000 - 201
    assert all(t.unanswered_cause == "capture_gap" and t.kind == "scsi" for t in lost)
    assert "fell into a capture gap" in lost[0].note


def test_a_gap_task_idle_while_the_target_answers_later_ones_is_concluded_in_time() -> None:
    w, tr = Wire(), SessionTracker(gap_task_idle_s=30)
    f = Flow(w)
    run(tr, [f.opened(), *login(f)])
    out, _ = _lossy_reads(tr, f, 1)  # one task loses its status
    lost_itt = f.itt
    for _ in range(40):  # 40 s of answered commands
        itt = f.new_itt()
        w.advance(S)
        out += run(tr, [f.scsi_cmd(itt), f.data_in(itt, status=0)])
    lost = [t for t in of(out, TaskRecord) if t.outcome == "lost_in_capture_gap"]
    assert [t.itt for t in lost] == [lost_itt]
    assert 30 * S <= lost[0].ts_ns - lost[0].start_ts_ns <= 33 * S
    assert tr.kept()["open_tasks"] == 0 and tr.kept()["gap_tasks"] == 0
    # its answer arriving late after all is no "unexpected_response"
    late = run(tr, [f.data_in(lost_itt, datasn=2, offset=8192, status=0)])
    assert [e for e in of(late, SequenceEvent) if e.kind == "unexpected_response"] == []


def test_an_active_gap_task_is_kept() -> None:
    # a damaged task that goes on (Data-In keeps coming) is not idle: it ends with its own status
    w, tr = Wire(), SessionTracker(gap_task_idle_s=5)
    f = Flow(w)
    run(tr, [f.opened(), *login(f)])
    itt = f.new_itt()
    out = run(tr, [f.scsi_cmd(itt, edtl=4096 * 20), f.data_in(itt, datasn=0), f.gap(T2I)])
    for n in range(2, 20):
        w.advance(S)
        out += run(tr, [f.data_in(itt, datasn=n, offset=4096 * n)])
    out += run(tr, [f.data_in(itt, datasn=20, offset=4096 * 19, dsl=4096, status=0)])
    (task,) = [t for t in of(out, TaskRecord) if t.kind == "scsi"]
    assert task.outcome == "completed"
