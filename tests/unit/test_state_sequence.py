"""RFC 1982 serial arithmetic and the CmdSN/StatSN bookkeeping of sequence.py."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from analyzer.state.sequence import CmdWindow, StatSn, in_window, serial_add, serial_gt, serial_lt

u32 = st.integers(0, 0xFFFFFFFF)


def test_serial_compare_across_the_wrap() -> None:
    assert serial_lt(0xFFFFFFFF, 0) and serial_gt(0, 0xFFFFFFFF)
    assert serial_lt(1, 2) and not serial_lt(2, 1) and not serial_lt(5, 5)
    assert not serial_lt(0, 0x80000000) and not serial_gt(0, 0x80000000)  # undefined pair: neither


@given(u32, st.integers(1, 0x7FFFFFFF))
def test_adding_less_than_half_is_greater(a: int, n: int) -> None:
    assert serial_gt(serial_add(a, n), a) and serial_lt(a, serial_add(a, n))


def test_window() -> None:
    assert in_window(5, 5, 5) and not in_window(6, 5, 5)
    assert not in_window(5, 5, 4)  # MaxCmdSN = ExpCmdSN - 1: closed window
    assert in_window(2, 0xFFFFFFF0, 10)


def test_cmd_window_adopts_only_forward_values_and_ignores_invalid_pairs() -> None:
    w = CmdWindow()
    assert w.contains(1) is None
    w.update(10, 41)
    w.update(9, 40)  # older advertisement crossing on the wire: ignored
    assert (w.exp, w.max) == (10, 41)
    w.update(20, 5)  # MaxCmdSN < ExpCmdSN - 1: both ignored
    assert (w.exp, w.max) == (10, 41)
    assert w.contains(41) and not w.contains(42) and not w.contains(9)


def test_statsn() -> None:
    s = StatSn()
    assert s.advance(100) is None and s.expected == 101
    assert s.peek(101) is None and s.expected == 101  # R2T carries the next StatSN, no advance
    assert s.advance(101) is None
    assert s.advance(105) == 102 and s.expected == 106
    assert s.advance(103) is None and s.expected == 106  # retransmission: not a gap, no regression
    s.reseed()
    assert s.advance(7) is None and s.expected == 8


# RFC 3720 §3.2.2.1 (consolidated as RFC 7143 §4.2.2.1), docs/rfc-verification.md items 4-6.

def test_closed_window_is_a_valid_advertisement() -> None:
    """'If MaxCmdSN is equal to ExpCmdSN-1, this indicates ... the target cannot receive any
    additional commands' (RFC 3720 §10.4.11): adopted, and it contains nothing."""
    w = CmdWindow()
    w.update(10, 9)
    assert (w.exp, w.max) == (10, 9)
    assert w.contains(10) is False and w.contains(9) is False


def test_maxcmdsn_below_expcmdsn_minus_one_is_ignored_as_a_pair() -> None:
    """'The target MUST NOT transmit a MaxCmdSN that is less than ExpCmdSN-1': the first value
    it would be is ExpCmdSN-2, and then neither value is adopted."""
    w = CmdWindow()
    w.update(10, 8)
    assert (w.exp, w.max) == (None, None)
    w.update(5, 20)
    w.update(30, 28)  # would move both forward, but the pair is invalid
    assert (w.exp, w.max) == (5, 20)


def test_each_value_is_adopted_on_its_own_when_larger() -> None:
    w = CmdWindow()
    w.update(10, 41)
    w.update(12, 40)  # ExpCmdSN moved forward, MaxCmdSN did not: only ExpCmdSN adopted
    assert (w.exp, w.max) == (12, 41)
    w.update(11, 50)  # MaxCmdSN moved forward, ExpCmdSN did not
    assert (w.exp, w.max) == (12, 50)


def test_window_rules_hold_across_the_wrap() -> None:
    w = CmdWindow()
    w.update(0xFFFFFFFF, 0xFFFFFFFE)  # closed window at the wrap point: valid
    assert (w.exp, w.max) == (0xFFFFFFFF, 0xFFFFFFFE)
    w.update(0, 0xFFFFFFFD)  # MaxCmdSN = ExpCmdSN - 3 (serially): ignored
    assert (w.exp, w.max) == (0xFFFFFFFF, 0xFFFFFFFE)
    w.update(1, 4)
    assert (w.exp, w.max) == (1, 4) and w.contains(0) is False and w.contains(4) is True
