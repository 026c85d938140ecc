#!/usr/bin/env python3
"""Regenerate the generated tables of README.md (anomaly kinds, sample captures) in place.

Usage: .venv/bin/python scripts/readme_tables.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def anomaly_table() -> str:
    from analyzer.anomalies import KINDS

    rows = ["| kind | default severity | what it means |", "|---|---|---|"]
    for name, k in KINDS.items():
        rows.append(f"| [`{name}`](docs/anomalies.md#{name}) | {k.severity} | {k.title} |")
    return "\n".join(rows)


def samples_table() -> str:
    manifest = json.loads((ROOT / "sample_pcaps" / "manifest.json").read_text())
    rows = ["| capture | scenario |", "|---|---|"]
    for e in manifest:
        rows.append(f"| `{e['file']}` | {e['description']} |")
    return "\n".join(rows)


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    for name, body in (("anomaly-kinds", anomaly_table()), ("sample-captures", samples_table())):
        begin, end = f"<!-- begin {name} (scripts/readme_tables.py) -->", f"<!-- end {name} -->"
        block = f"{begin}\n{body}\n{end}"
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        text = pattern.sub(lambda _m, b=block: b, text) if pattern.search(text) else text
    readme.write_text(text)


if __name__ == "__main__":
    main()
