"""``Analysis``: the tables of one capture, plus what is known about the capture file itself."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from analyzer.reports import frames

#: The DataFrame attributes of an ``Analysis``, in report order.
TABLES = ("pdus", "tasks", "sessions", "connections", "transitions", "anomalies", "keys")


@dataclass
class CaptureInfo:
    """The capture file and the pass over it."""

    file: str = ""
    name: str = ""
    size_bytes: int | None = None  #: size of the file on disk (compressed size for .gz)
    format: str = ""  #: "pcap" / "pcapng"
    frames: int = 0
    bytes: int = 0  #: captured bytes of all frames
    non_tcp: int = 0
    truncated_frames: int = 0  #: frames cut by the snap length
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    pdus: int = 0  #: PDUs seen (the pdus table may hold fewer, see ``truncated``)
    damage: list[str] = field(default_factory=list)  #: damaged/truncated capture file warnings
    truncated: dict[str, Any] = field(default_factory=dict)  #: table -> {kept, seen, limit}
    stats: dict[str, Any] = field(default_factory=dict)  #: gap/retransmission/resync counters, record counts
    state_tracker: bool = True
    anomaly_engine: bool = True
    analyzer_version: str = ""
    secrets_available: bool = False  #: the keys table holds unmasked values (not after ``load``)

    @property
    def duration_s(self) -> float:
        """Seconds from the first to the last frame (0 when unknown)."""
        if self.first_ts_ns is None or self.last_ts_ns is None:
            return 0.0
        return max(self.last_ts_ns - self.first_ts_ns, 0) / 1e9

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``duration_s`` included; ``secrets_available`` left out)."""
        d = asdict(self)
        d.pop("secrets_available")
        d["duration_s"] = self.duration_s
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CaptureInfo:
        """The info from ``to_dict`` output (unknown keys ignored)."""
        names = {f.name for f in fields(cls)} - {"secrets_available"}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Analysis:
    """DataFrames of one analysed capture (dtypes: ``analyzer.reports.frames.SCHEMAS``)."""

    pdus: pd.DataFrame
    tasks: pd.DataFrame
    sessions: pd.DataFrame
    connections: pd.DataFrame
    transitions: pd.DataFrame
    anomalies: pd.DataFrame
    keys: pd.DataFrame  #: Login/Text keys; unmasked right after ``analyze``, masked after ``load``
    capture: CaptureInfo

    @classmethod
    def from_tables(cls, tables: dict[str, pd.DataFrame], capture: CaptureInfo) -> Analysis:
        """An Analysis from a dict of tables (missing tables empty)."""
        return cls(**{t: tables[t] if t in tables else frames.empty(t) for t in TABLES}, capture=capture)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Table name -> DataFrame."""
        return {t: getattr(self, t) for t in TABLES}

    def write(self, out_dir: str | os.PathLike[str]) -> list[Path]:
        """Write Parquet (all tables), CSV (small tables) and capture.json; returns the paths."""
        from analyzer.reports.files import write_dir

        return write_dir(self.tables, self.capture.to_dict(), out_dir)

    def html(self, show_secrets: bool = False) -> str:
        """The self-contained HTML report as text."""
        from analyzer.reports.html import render

        return render(self, show_secrets=show_secrets)

    def to_html(self, path: str | os.PathLike[str], show_secrets: bool = False) -> Path:
        """Write the self-contained HTML report to ``path``; returns it."""
        p = Path(path)
        if p.parent != Path():
            p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.html(show_secrets=show_secrets), encoding="utf-8")
        return p

    def summary(self) -> str:
        """A plain-text summary for people (sessions, anomalies, latency, throughput)."""
        from analyzer.reports.summary import summary_text

        return summary_text(self)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{t}={len(getattr(self, t))}" for t in TABLES)
        return f"Analysis({self.capture.name or self.capture.file!r}: {sizes})"
