"""Exceptions raised by the lab.

`LabSetupError` means the machine cannot run the lab at all (not root, a tool missing): the CLI turns it
into one line on stderr and exit status 2. `LabError` means a scenario went wrong while running.
"""

from __future__ import annotations


class LabError(Exception):
    """A lab step failed (a command returned an error, a daemon did not come up, a check did not hold)."""


class LabSetupError(LabError):
    """The lab cannot run on this machine; the message says what is missing, in one line."""
