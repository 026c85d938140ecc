"""Sequence-number rules (RFC 7143 §4.2.2) with RFC 1982 serial arithmetic (SERIAL_BITS = 32).

Theory of operation
-------------------
* CmdSN window (§4.2.2.1) is session-wide. The target advertises ExpCmdSN/MaxCmdSN on
  every response; like the initiator, we ignore a pair with MaxCmdSN < ExpCmdSN - 1 and
  otherwise adopt each value only when it moves forward (serially). A non-immediate
  command whose CmdSN lies outside [ExpCmdSN, MaxCmdSN] is ``cmdsn_out_of_window``; one
  whose CmdSN an earlier non-immediate command with another ITT already used is
  ``cmdsn_duplicate`` (a retry keeps ITT and CmdSN, §4.2.2.1, and is not flagged).
  Immediate commands (I bit) are exempt. With several connections per session the
  per-connection CmdSN streams have gaps; we never flag gaps in CmdSN.
  RFC text (RFC 3720 §3.2.2.1, consolidated as RFC 7143 §4.2.2.1; docs/rfc-verification.md
  items 4-6): "The target MUST NOT transmit a MaxCmdSN that is less than ExpCmdSN-1. For
  non-immediate commands, the CmdSN field can take any value from ExpCmdSN to MaxCmdSN
  inclusive. The target MUST silently ignore any non-immediate command outside of this range
  or non-immediate duplicates within the range. The CmdSN carried by immediate commands may
  lie outside the ExpCmdSN to MaxCmdSN range." MaxCmdSN = ExpCmdSN - 1 is a valid, closed
  window (RFC 3720 §10.4.11: "the target cannot receive any additional commands"),
  so such a pair is adopted, not ignored.
* StatSN (§4.2.2.2) is per connection: the first Login Response seeds it, every later
  status-bearing PDU carries the next value. Not advancing: R2T, Data-In without S,
  NOP-In with ITT 0xffffffff (their StatSN field carries the *next* StatSN, so we check
  it without advancing). Reject and Async Message advance. A forward jump is a
  ``statsn_gap``; a value behind the expected one (a SNACK-requested retransmission) is
  not flagged. After a capture gap in the target->initiator direction we re-seed.
* DataSN/R2TSN (§4.2.2.3) live on the task (``tasks.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

_HALF = 1 << 31
_MOD = 1 << 32


def serial_lt(a: int, b: int) -> bool:
    """RFC 1982 §3.2: a < b in 32-bit serial arithmetic (undefined pairs at distance 2^31 are False)."""
    return a != b and ((a < b and b - a < _HALF) or (a > b and a - b > _HALF))


def serial_gt(a: int, b: int) -> bool:
    """RFC 1982 §3.2: a > b."""
    return serial_lt(b, a)


def serial_add(a: int, n: int) -> int:
    """RFC 1982 §3.1: a + n modulo 2^32."""
    return (a + n) % _MOD


def in_window(sn: int, exp: int, max_: int) -> bool:
    """exp <= sn <= max in serial order; an empty window (max = exp - 1) contains nothing."""
    return not serial_lt(sn, exp) and not serial_gt(sn, max_)


@dataclass(slots=True)
class CmdWindow:
    """The session's command window as last advertised by the target (§4.2.2.1)."""

    exp: int | None = None
    max: int | None = None

    def update(self, expcmdsn: int, maxcmdsn: int) -> None:
        """Adopt a target's ExpCmdSN/MaxCmdSN pair (initiator rule of §4.2.2.1)."""
        if serial_lt(maxcmdsn, serial_add(expcmdsn, -1)):
            return  # MaxCmdSN < ExpCmdSN - 1: both ignored
        if self.exp is None or serial_gt(expcmdsn, self.exp):
            self.exp = expcmdsn
        if self.max is None or serial_gt(maxcmdsn, self.max):
            self.max = maxcmdsn

    def contains(self, cmdsn: int) -> bool | None:
        """None when no window is known yet."""
        if self.exp is None or self.max is None:
            return None
        return in_window(cmdsn, self.exp, self.max)


@dataclass(slots=True)
class StatSn:
    """Per-connection StatSN expectation (§4.2.2.2)."""

    expected: int | None = None

    def advance(self, statsn: int) -> int | None:
        """A StatSN-advancing PDU; returns the expected value when it jumped forward, else None."""
        exp = self.expected
        if exp is None or statsn == exp:
            self.expected = serial_add(statsn, 1)
            return None
        if serial_gt(statsn, exp):
            self.expected = serial_add(statsn, 1)
            return exp
        return None  # behind: retransmission (SNACK) or duplicate; keep the expectation

    def peek(self, statsn: int) -> int | None:
        """A non-advancing PDU whose StatSN field carries the next StatSN; gap -> expected value."""
        exp = self.expected
        if exp is None:
            self.expected = statsn
            return None
        if serial_gt(statsn, exp):
            self.expected = statsn
            return exp
        return None

    def reseed(self) -> None:
        """Forget the expectation (capture gap, resync)."""
        self.expected = None
