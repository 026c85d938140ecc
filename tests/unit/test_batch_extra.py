"""Without Dask, batch says which extra to install (one line, exit 2) instead of a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from analyzer.batch import MissingExtra, analyze_many

#: Python run in a child with dask and distributed made unimportable.
_NO_DASK = "import sys\nsys.modules['dask'] = None\nsys.modules['distributed'] = None\n"


def test_missing_dask_names_the_extra(tmp_path: pytest.TempPathFactory) -> None:
    code = _NO_DASK + "from analyzer.cli import main\nmain(['batch', 'sample_pcaps', '--out', sys.argv[1]])\n"
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'iscsi-analyzer[batch]'" in lines[0], proc.stderr


def test_missing_extra_is_raised_by_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(MissingExtra, match=r"iscsi-analyzer\[batch\]"):
        analyze_many(["sample_pcaps/clean_io.pcap"], None, workers=2)
