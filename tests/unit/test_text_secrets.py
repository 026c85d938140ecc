"""CHAP secrets split across Login PDUs with the C bit (RFC 7143 §6.1, §11.10.1, §11.12.4).

A key=value item may be split anywhere between PDUs; the piece in the second PDU parses as a
("", value) fragment (or as a pair under a wrong key when the split is inside the key). The
framer names that piece by the joined item's key when it is a secret, so that every consumer
masking by key name (pdus table/csv/jsonl, the info column, keys.parquet, report.html) masks
it. Checked on the framer's records for every split point, and end to end on a crafted capture
for every output format (``--show-secrets`` shows them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import builders as b
import pytest
from capture_builders import IP4_A, IP4_B, ethernet, ipv4, pcap, tcp

from analyzer.iscsi.describe import info
from analyzer.iscsi.framing import DigestState, PduFramer
from analyzer.iscsi.text_keys import MASK, SECRET_KEYS
from analyzer.records import I2T, T2I, LoginRequest, Record

REPO = Path(__file__).resolve().parents[2]
CHAP_N = "chapkx9wzulu77q"
CHAP_R = "0x" + "5e1f" * 8  # a 16-byte MD5 response
CHAP_C = "0x" + "c0ffee42" * 4  # the target's challenge


def fragments(value: str, longer_than: int = 4) -> set[str]:
    """Every piece of ``value`` longer than ``longer_than`` characters."""
    n = longer_than + 1
    return {value[i:i + n] for i in range(len(value) - n + 1)}


def leaks(text: str, values: tuple[str, ...] = (CHAP_N, CHAP_R, CHAP_C)) -> list[str]:
    return sorted(f for v in values for f in fragments(v) if f in text)


def split_login(text: bytes, cuts: list[int]) -> list[bytes]:
    """The initiator's login text cut at ``cuts``: one Login Request per piece, C=1 but the last."""
    bounds = [0, *cuts, len(text)]
    pieces = [text[lo:hi] for lo, hi in pairwise(bounds)]
    return [b.login_request(data=p, cont=i < len(pieces) - 1, transit=i == len(pieces) - 1, csg=0, nsg=1,
                            itt=1, cmdsn=1) for i, p in enumerate(pieces)]


TEXT = f"CHAP_N={CHAP_N}\0CHAP_R={CHAP_R}\0".encode()
N_AT = TEXT.index(b"CHAP_N=")
R_AT = TEXT.index(b"CHAP_R=")


@pytest.mark.parametrize("cut", sorted({R_AT, R_AT + 3, R_AT + 6, R_AT + 7, R_AT + 8, R_AT + 20,
                                        len(TEXT) - 1, N_AT + 4, N_AT + 7, N_AT + 15}))
def test_split_anywhere_is_masked(cut: int) -> None:
    fr = PduFramer("c", I2T, DigestState(known=True))
    out: list[Record] = []
    for i, wire in enumerate(split_login(TEXT, [cut])):
        out += fr.feed(i + 1, 0, wire)
    logins = [r for r in out if isinstance(r, LoginRequest)]
    assert len(logins) == 2
    for r in logins:
        assert not leaks(info(r)), (cut, info(r))
        for k, v in r.keys:
            if leaks(v):
                assert k in SECRET_KEYS, (cut, r.keys)


def test_split_over_three_pdus_names_the_tail() -> None:
    fr = PduFramer("c", I2T, DigestState(known=True))
    out: list[Record] = []
    for i, wire in enumerate(split_login(TEXT, [R_AT + 9, R_AT + 20])):
        out += fr.feed(i + 1, 0, wire)
    keys = [r.keys for r in out if isinstance(r, LoginRequest)]
    assert keys[0] == (("CHAP_N", CHAP_N),)
    assert keys[1] == ()  # the middle piece is all fragment
    assert keys[2] == (("CHAP_R", CHAP_R),)  # the joined item, under its own key


def test_fragment_of_unknown_key_is_masked() -> None:
    """Mid-stream start right after the PDU that held the key: the value fragment is masked."""
    wires = split_login(TEXT, [R_AT + 10])
    fr = PduFramer("c", I2T, DigestState(known=False), in_sync=False)
    out = fr.feed(1, 0, wires[1] + b.nop_out(itt=5)) + fr.finish(1, 0)
    logins = [r for r in out if isinstance(r, LoginRequest)]
    assert logins and logins[0].keys[0] == ("", MASK)


def test_non_secret_fragment_kept() -> None:
    text = b"InitiatorName=iqn.2024-01.org.example:host\0"
    fr = PduFramer("c", I2T, DigestState(known=True))
    out: list[Record] = []
    for i, wire in enumerate(split_login(text, [20])):
        out += fr.feed(i + 1, 0, wire)
    keys = [r.keys for r in out if isinstance(r, LoginRequest)]
    assert keys == [(), (("", "24-01.org.example:host"),)]


# --------------------------------------------------------------------------- a crafted capture


def chap_capture(path: Path) -> None:
    """TCP handshake, then a CHAP login whose CHAP_N/CHAP_R are split across Login PDUs (C bit)."""
    a, bb = IP4_A, IP4_B
    frames: list[bytes] = []
    seq = {I2T: 1000, T2I: 5000}

    def seg(direction: str, payload: bytes = b"", flags: int = 0x18) -> None:
        src, dst, sp, dp = (a, bb, 51000, 3260) if direction == I2T else (bb, a, 3260, 51000)
        other = T2I if direction == I2T else I2T
        frames.append(ethernet(ipv4(tcp(sp, dp, seq[direction], seq[other], flags, payload=payload), src, dst)))
        seq[direction] += len(payload) + (1 if flags & 0x03 else 0)

    seg(I2T, flags=0x02)
    seq[T2I] -= 0
    seg(T2I, flags=0x12)
    seg(I2T, flags=0x10)
    seg(I2T, b.login_request(keys=(("InitiatorName", "iqn.2024-01.org.example:host"), ("SessionType", "Normal"),
                                   ("TargetName", "iqn.2024-01.org.example:disk"), ("AuthMethod", "CHAP")),
                             transit=False, csg=0, nsg=0, itt=1))
    seg(T2I, b.login_response(keys=(("AuthMethod", "CHAP"),), transit=False, csg=0, nsg=0, itt=1, tsih=0))
    seg(I2T, b.login_request(keys=(("CHAP_A", "5"),), transit=False, csg=0, nsg=0, itt=1))
    # The target's challenge, split inside the value.
    ctext = f"CHAP_A=5\0CHAP_I=7\0CHAP_C={CHAP_C}\0".encode()
    cat = ctext.index(b"CHAP_C=") + 12
    seg(T2I, b.login_response(data=ctext[:cat], cont=True, transit=False, csg=0, nsg=0, itt=1, tsih=0))
    seg(I2T, b.login_request(transit=False, csg=0, nsg=0, itt=1))  # an empty request for the rest (§11.12.2)
    seg(T2I, b.login_response(data=ctext[cat:], transit=False, csg=0, nsg=0, itt=1, tsih=0, statsn=1))
    # The initiator's name and response, split after "CHAP_R=" and inside the response.
    for wire in split_login(TEXT, [R_AT + 7, R_AT + 15]):
        seg(I2T, wire)
        seg(T2I, b.login_response(transit=False, csg=0, nsg=0, itt=1, tsih=0, statsn=2)
            if wire[1] & 0x40 else b.login_response(transit=True, csg=0, nsg=1, itt=1, tsih=1, statsn=2))
    records = [(1_700_000_000_000_000_000 + i * 1_000_000, f) for i, f in enumerate(frames)]
    path.write_bytes(pcap(records))


def _cli(*args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("chap") / "chap_split.pcap"
    chap_capture(p)
    return p


@pytest.mark.parametrize("fmt", ["table", "csv", "jsonl"])
def test_pdus_outputs_mask_split_secrets(capture: Path, fmt: str) -> None:
    out = _cli("pdus", "--format", fmt, str(capture))
    assert "CHAP_A" in out  # the login is there
    assert not leaks(out), leaks(out)


def test_report_masks_split_secrets_unless_shown(capture: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out_dir = tmp_path / "report"
    _cli("analyze", str(capture), "--out", str(out_dir), "-q")
    texts = []
    for f in sorted(out_dir.rglob("*")):
        if f.suffix == ".parquet":
            texts.append(json.dumps(pq.read_table(f).to_pylist(), default=str))
        elif f.is_file():
            texts.append(f.read_text(errors="replace"))
    assert texts
    assert not leaks("\n".join(texts)), leaks("\n".join(texts))
    keys = pq.read_table(out_dir / "keys.parquet").to_pylist() if (out_dir / "keys.parquet").exists() else []
    assert all(k.get("key") != "" or k.get("value") == MASK for k in keys)
    shown = tmp_path / "shown.html"
    _cli("report", str(capture), "-o", str(shown), "--show-secrets")
    assert CHAP_R in shown.read_text()
