#!/usr/bin/env python3
"""Rewrite tests/golden/ from the current code (``make golden``).

Run it only when an output change is meant; review ``git diff tests/golden`` and commit the
diff together with the change, saying why in the commit message.

Usage: scripts/golden.py [CAPTURE_NAME ...]   (default: every sample and real capture)
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import goldens  # noqa: E402


def main(names: list[str]) -> int:
    caps = goldens.captures()
    if names:
        caps = [c for c in caps if c.name in names]
    else:
        known = {c.name for c in caps}
        if goldens.GOLDEN_DIR.is_dir():
            for d in goldens.GOLDEN_DIR.iterdir():
                if d.is_dir() and d.name not in known:
                    shutil.rmtree(d)
    for cap in caps:
        target = goldens.golden_path(cap)
        target.mkdir(parents=True, exist_ok=True)
        outputs = goldens.render(cap)
        for old in target.iterdir():
            if old.name not in outputs:
                old.unlink()
        for name, data in outputs.items():
            (target / name).write_bytes(data)
        print(f"golden: {cap.name}: {len(outputs)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
