"""Running tshark, Wireshark's own dissector, as the reference decoder (crosscheck).

Part of the capture layer because it runs an external capture tool on a file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass


class TsharkError(Exception):
    """tshark is missing or failed; the message is one line."""


@dataclass(frozen=True, slots=True)
class TsharkPdu:
    frame: int
    opcode: int
    itt: int | None
    cmdsn: int | None
    statsn: int | None
    dsl: int | None


def tshark_path() -> str | None:
    return shutil.which("tshark")


def _int(v: object) -> int | None:
    if v is None:
        return None
    if isinstance(v, list):
        v = v[0] if v else None
        if v is None:
            return None
    s = str(v)
    try:
        return int(s, 0)
    except ValueError:
        return None


def tshark_pdus(path: str, ports: Iterable[int] = (), timeout: float = 600.0, *,
                out_of_order: bool = False) -> list[TsharkPdu]:
    """Every iSCSI PDU tshark decodes in ``path``, in frame order (several per frame possible).

    ``out_of_order`` turns on tshark's out-of-order TCP reassembly (off by default in
    Wireshark 4.0): it then also frames PDUs completed by retransmissions that fill holes,
    but loses others after capture gaps.
    """
    exe = tshark_path()
    if exe is None:
        raise TsharkError("tshark not found (apt-get install tshark)")
    cmd = [exe, "-n", "-r", str(path), "-Y", "iscsi", "-T", "json", "-j", "frame iscsi", "--no-duplicate-keys",
           "-o", f"tcp.reassemble_out_of_order:{'TRUE' if out_of_order else 'FALSE'}"]
    for p in sorted(set(ports) - {3260, 860}):
        cmd += ["-d", f"tcp.port=={p},iscsi"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise TsharkError(f"tshark timed out after {timeout:.0f}s on {path}") from e
    if proc.returncode not in (0, 2) and not proc.stdout:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise TsharkError(f"tshark failed on {path}: {msg[-1] if msg else proc.returncode}")
    try:
        packets = json.loads(proc.stdout or b"[]")
    except json.JSONDecodeError as e:
        raise TsharkError(f"tshark output is not JSON: {e}") from e
    out: list[TsharkPdu] = []
    for pkt in packets:
        layers = pkt.get("_source", {}).get("layers", {})
        frame = _int(layers.get("frame", {}).get("frame.number"))
        pdus = layers.get("iscsi")
        if frame is None or pdus is None:
            continue
        if isinstance(pdus, dict):
            pdus = [pdus]
        for p in pdus:
            if not isinstance(p, dict):
                continue
            op = _int(p.get("iscsi.opcode"))
            if op is None:
                continue
            out.append(TsharkPdu(frame, op, _int(p.get("iscsi.initiatortasktag")), _int(p.get("iscsi.cmdsn")),
                                 _int(p.get("iscsi.statsn")), _int(p.get("iscsi.datasegmentlength"))))
    return out


def tshark_pdus_union(path: str, ports: Iterable[int] = (), timeout: float = 600.0) -> list[TsharkPdu]:
    """tshark's PDUs with or without its out-of-order reassembly, each once, by frame.

    A (frame, opcode, ITT, length) key seen k times in one run and j times in the other counts
    max(k, j) times: two Data-Out of one task can end in the same frame.
    """
    from collections import Counter

    ports = tuple(ports)
    best: Counter[tuple[int, int, int | None, int | None]] = Counter()
    merged: list[TsharkPdu] = []
    for ooo in (False, True):
        seen: Counter[tuple[int, int, int | None, int | None]] = Counter()
        for p in tshark_pdus(path, ports, timeout, out_of_order=ooo):
            key = (p.frame, p.opcode, p.itt, p.dsl)
            seen[key] += 1
            if seen[key] > best[key]:
                best[key] = seen[key]
                merged.append(p)
    return sorted(merged, key=lambda p: p.frame)
