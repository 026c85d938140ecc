"""Sans-I/O iSCSI state layer (RFC 7143 §8): connection (S/T), cleanup (R/M) and session (Q/N)
machines, tasks, key negotiation and sequence-number checks, wired by ``SessionTracker``.

Output records live in :mod:`analyzer.state.events`.
"""

from analyzer.state.tracker import SessionTracker

__all__ = ["SessionTracker"]
