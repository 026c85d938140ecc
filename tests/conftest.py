"""Test-suite wide settings."""

import os

# Records are immutable by contract; in tests they are real frozen dataclasses so that any
# code that mutates one fails loudly (analyzer/records.py, FROZEN_RECORDS).
os.environ.setdefault("ISCSI_ANALYZER_FROZEN_RECORDS", "1")
