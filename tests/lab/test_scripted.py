"""The scripted initiator (analyzer/lab/scripted.py): its PDU encoder checked against tshark's decode of a pcap
written here, its decoder, its CmdSN/StatSN bookkeeping, socket timeouts, and one real scenario (lab)."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from analyzer.lab import scripted as sc

INITIATOR_PORT = 40000
TARGET_PORT = 3260
ISID = 0x805C51FF0001


# ------------------------------------------------------------------------------------------- pcap writing

def _ipv4_tcp(src_port: int, dst_port: int, seq: int, ack: int, flags: int, payload: bytes) -> bytes:
    tcp = struct.pack(">HHIIBBHHH", src_port, dst_port, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    total = 20 + len(tcp)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0, bytes([127, 0, 0, 1]),
                     bytes([127, 0, 0, 1]))
    checksum = sum(struct.unpack(">10H", ip))
    checksum = (checksum & 0xFFFF) + (checksum >> 16)
    ip = ip[:10] + struct.pack(">H", ~checksum & 0xFFFF) + ip[12:]
    return ip + tcp


def write_pcap(path: Path, pdus: list[tuple[bool, bytes]]) -> None:
    """A LINKTYPE_RAW pcap: TCP handshake, then one segment per (from_target, pdu)."""
    records: list[bytes] = []
    iseq, tseq = 1000, 5000
    syn, ack_f, psh = 0x02, 0x10, 0x08
    records.append(_ipv4_tcp(INITIATOR_PORT, TARGET_PORT, iseq, 0, syn, b""))
    records.append(_ipv4_tcp(TARGET_PORT, INITIATOR_PORT, tseq, iseq + 1, syn | ack_f, b""))
    iseq, tseq = iseq + 1, tseq + 1
    records.append(_ipv4_tcp(INITIATOR_PORT, TARGET_PORT, iseq, tseq, ack_f, b""))
    for from_target, pdu in pdus:
        if from_target:
            records.append(_ipv4_tcp(TARGET_PORT, INITIATOR_PORT, tseq, iseq, ack_f | psh, pdu))
            tseq += len(pdu)
        else:
            records.append(_ipv4_tcp(INITIATOR_PORT, TARGET_PORT, iseq, tseq, ack_f | psh, pdu))
            iseq += len(pdu)
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
    for i, rec in enumerate(records):
        out += struct.pack("<IIII", 1_700_000_000, i * 1000, len(rec), len(rec)) + rec
    path.write_bytes(bytes(out))


#: tshark fields the tests compare (every test frame carries exactly one PDU, so -T fields is unambiguous;
#: tshark's JSON output files the SCSI Command flags outside the iscsi layer).
TSHARK_FIELDS = (
    "iscsi.opcode", "iscsi.I", "iscsi.initiatortasktag", "iscsi.cmdsn", "iscsi.expstatsn", "iscsi.statsn",
    "iscsi.expcmdsn", "iscsi.maxcmdsn", "iscsi.cid", "iscsi.tsih", "iscsi.isid", "iscsi.login.T",
    "iscsi.login.csg", "iscsi.login.nsg", "iscsi.login.status", "iscsi.keyvalue", "iscsi.datasegmentlength",
    "iscsi.scsicommand.F", "iscsi.scsicommand.R", "iscsi.scsicommand.W",
    "iscsi.scsicommand.expecteddatatransferlength", "scsi.lun", "iscsi.targettransfertag", "iscsi.datasn",
    "iscsi.bufferOffset", "iscsi.scsidata.F", "iscsi.text.F", "iscsi.taskmanfun.function",
    "iscsi.taskmanfun.referencedtasktag", "iscsi.refcmdsn", "iscsi.logout.reason", "iscsi.logout.response",
    "iscsi.time2wait", "iscsi.time2retain", "iscsi.r2tsn", "iscsi.desireddatalength", "iscsi.opcode.invalid",
)


def tshark_pdus(path: Path) -> list[dict[str, Any]]:
    """Every iSCSI frame of `path` as tshark decodes it: field -> value (a list for iscsi.keyvalue)."""
    argv = ["tshark", "-n", "-r", str(path), "-Y", "iscsi", "-T", "fields", "-E", "occurrence=a",
            "-E", "aggregator=\x1f", "-E", "separator=\t"]
    for name in TSHARK_FIELDS:
        argv += ["-e", name]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    rows = []
    for line in out.splitlines():
        cols = line.split("\t")
        row: dict[str, Any] = {}
        for name, col in zip(TSHARK_FIELDS, cols, strict=True):
            if col == "":
                continue
            values = col.split("\x1f")
            row[name] = values if name == "iscsi.keyvalue" else values[0]
        rows.append(row)
    return rows


def _n(value: Any) -> int:
    if isinstance(value, list):
        value = value[0]
    return int(value, 16) if str(value).startswith("0x") else int(value)


# ------------------------------------------------------------------------------------------- encoder cases

KEYS = (("InitiatorName", "iqn.2024-01.org.example:ini"), ("SessionType", "Normal"),
        ("TargetName", "iqn.2024-01.org.example:disk"), ("AuthMethod", "None"))

#: (request bytes, what tshark must decode) — every request kind the scripted initiator sends.
ENCODER_CASES: list[tuple[str, bytes, dict[str, Any]]] = [
    ("login", sc.encode_login_request(isid=ISID, tsih=0x0100, cid=1, itt=0x10, cmdsn=7, exp_statsn=3,
                                      csg=sc.Stage.SECURITY, nsg=sc.Stage.OPERATIONAL, transit=True, keys=KEYS),
     {"iscsi.opcode": 0x03, "iscsi.initiatortasktag": 0x10, "iscsi.cmdsn": 7, "iscsi.expstatsn": 3,
      "iscsi.cid": 1, "iscsi.tsih": 0x0100, "iscsi.login.T": 1, "iscsi.login.csg": 0, "iscsi.login.nsg": 1,
      "isid": "805c51ff0001", "keys": [f"{k}={v}" for k, v in KEYS]}),
    ("scsi_write_immediate", sc.encode_scsi_command(lun=1, itt=0x11, cmdsn=8, exp_statsn=4,
                                                    cdb=sc.cdb_write10(16, 2), expected_length=1024, write=True,
                                                    immediate_data=bytes(range(256)) * 2, final=True),
     {"iscsi.opcode": 0x01, "iscsi.I": 0, "iscsi.initiatortasktag": 0x11, "iscsi.cmdsn": 8,
      "iscsi.expstatsn": 4, "iscsi.scsicommand.expecteddatatransferlength": 1024,
      "iscsi.datasegmentlength": 512, "iscsi.scsicommand.F": 1, "iscsi.scsicommand.W": 1,
      "iscsi.scsicommand.R": 0, "scsi.lun": 1}),
    ("scsi_read_immediate_flag", sc.encode_scsi_command(lun=1, itt=0x12, cmdsn=9, exp_statsn=4,
                                                        cdb=sc.cdb_read10(0, 8), expected_length=4096, read=True,
                                                        immediate=True),
     {"iscsi.opcode": 0x01, "iscsi.I": 1, "iscsi.initiatortasktag": 0x12, "iscsi.cmdsn": 9,
      "iscsi.scsicommand.R": 1, "iscsi.scsicommand.W": 0, "iscsi.scsicommand.expecteddatatransferlength": 4096}),
    ("data_out", sc.encode_data_out(lun=1, itt=0x11, ttt=0xABCD, exp_statsn=5, datasn=2, offset=8192,
                                    data=b"\xaa" * 100, final=True),
     {"iscsi.opcode": 0x05, "iscsi.initiatortasktag": 0x11, "iscsi.targettransfertag": 0xABCD,
      "iscsi.expstatsn": 5, "iscsi.datasn": 2, "iscsi.bufferOffset": 8192, "iscsi.datasegmentlength": 100,
      "iscsi.scsidata.F": 1}),
    ("nop_out_ping", sc.encode_nop_out(itt=0x13, cmdsn=10, exp_statsn=6, data=b"ping"),
     {"iscsi.opcode": 0x00, "iscsi.I": 1, "iscsi.initiatortasktag": 0x13, "iscsi.targettransfertag": 0xFFFFFFFF,
      "iscsi.cmdsn": 10, "iscsi.expstatsn": 6, "iscsi.datasegmentlength": 4}),
    ("text", sc.encode_text_request(itt=0x14, cmdsn=11, exp_statsn=7, keys=[("SendTargets", "All")]),
     {"iscsi.opcode": 0x04, "iscsi.I": 0, "iscsi.initiatortasktag": 0x14, "iscsi.cmdsn": 11,
      "iscsi.text.F": 1, "iscsi.targettransfertag": 0xFFFFFFFF, "keys": ["SendTargets=All"]}),
    ("tmf_abort", sc.encode_tmf_request(itt=0x15, cmdsn=12, exp_statsn=8, function=sc.TmfFunction.ABORT_TASK,
                                        lun=1, ref_itt=0x11, ref_cmdsn=8),
     {"iscsi.opcode": 0x02, "iscsi.I": 1, "iscsi.initiatortasktag": 0x15, "iscsi.cmdsn": 12,
      "iscsi.taskmanfun.function": 1, "iscsi.taskmanfun.referencedtasktag": 0x11, "iscsi.refcmdsn": 8}),
    ("logout_close_connection", sc.encode_logout_request(itt=0x16, cmdsn=12, exp_statsn=9,
                                                         reason=sc.LogoutReason.CLOSE_CONNECTION, cid=7),
     {"iscsi.opcode": 0x06, "iscsi.I": 1, "iscsi.initiatortasktag": 0x16, "iscsi.cmdsn": 12,
      "iscsi.expstatsn": 9, "iscsi.logout.reason": 1, "iscsi.cid": 7}),
]


def _bhs(opcode: int, flags: int, b2: int, b3: int, lun8: bytes, itt: int, words: tuple[int, ...],
         data: bytes = b"") -> bytes:
    head = struct.pack(">BBBBI8sI", opcode, flags, b2, b3, len(data), lun8, itt)
    return head + struct.pack(">7I", *words) + data + b"\0" * (-len(data) % 4)


#: Target PDUs (built by hand here, byte for byte from RFC 7143 §11) -> what `decode_pdu` must return.
DECODER_CASES: list[tuple[str, bytes, dict[str, Any]]] = [
    ("login_response_final", _bhs(0x23, 0x87, 0, 0, sc.isid_bytes(ISID) + b"\x01\x00", 0x10,
                                  (0, 1, 1, 2, 0, 0, 0), b"TargetPortalGroupTag=1\0"),
     {"cls": sc.LoginResponse, "transit": True, "csg": 1, "nsg": 3, "tsih": 0x0100, "isid": ISID, "status": 0,
      "statsn": 1, "exp_cmdsn": 1, "max_cmdsn": 2, "keys": (("TargetPortalGroupTag", "1"),)}),
    ("login_response_reject", _bhs(0x23, 0x00, 0, 0, sc.isid_bytes(ISID) + b"\x01\x00", 0x12,
                                   (0, 0, 2, 3, 0x020A0000, 0, 0)),
     {"cls": sc.LoginResponse, "status": 0x020A, "status_class": 2, "status_detail": 0x0A}),
    ("data_in_with_status", _bhs(0x25, 0x81, 0, 0, sc.encode_lun(1), 0x11, (0xFFFFFFFF, 5, 3, 130, 0, 0, 0),
                                 b"\x01" * 512),
     {"cls": sc.DataIn, "has_status": True, "status": 0, "statsn": 5, "datasn": 0, "offset": 0,
      "advances_statsn": True}),
    ("r2t", _bhs(0x31, 0x80, 0, 0, sc.encode_lun(1), 0x11, (0xABCD, 6, 3, 130, 0, 8192, 57344)),
     {"cls": sc.R2T, "ttt": 0xABCD, "r2tsn": 0, "offset": 8192, "length": 57344, "advances_statsn": False}),
    ("scsi_response_check", _bhs(0x21, 0x80, 0, 2, bytes(8), 0x12, (0, 7, 4, 131, 0, 0, 0), b"\x00\x12" + bytes(18)),
     {"cls": sc.ScsiResponse, "response": 0, "status": 2, "statsn": 7}),
    ("logout_response", _bhs(0x26, 0x80, 1, 0, bytes(8), 0x16, (0, 8, 4, 131, 0, (2 << 16) | 20, 0)),
     {"cls": sc.LogoutResponse, "response": 1, "time2wait": 2, "time2retain": 20}),
    ("tmf_response", _bhs(0x22, 0x80, 1, 0, bytes(8), 0x15, (0, 9, 4, 131, 0, 0, 0)),
     {"cls": sc.TmfResponse, "response": 1}),
    ("nop_in_unsolicited", _bhs(0x20, 0x80, 0, 0, bytes(8), 0xFFFFFFFF, (0x55, 10, 4, 131, 0, 0, 0)),
     {"cls": sc.NopIn, "ttt": 0x55, "advances_statsn": False}),
    ("reject", _bhs(0x3F, 0x80, 0x04, 0, bytes(8), 0xFFFFFFFF, (0, 11, 4, 131, 0, 0, 0),
                    sc.encode_nop_out(itt=0xFFFFFFFF, cmdsn=4, exp_statsn=11, immediate=False)),
     {"cls": sc.Reject, "reason": 0x04}),
    ("async_logout_request", _bhs(0x32, 0x80, 0, 0, bytes(8), 0xFFFFFFFF,
                                  (0, 12, 4, 131, 1 << 24, (0 << 16) | 5, 0)),
     {"cls": sc.AsyncMessage, "event": 1, "param3": 5}),
]


@pytest.fixture
def tshark_ready() -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed (apt-get install tshark)")


@pytest.mark.tshark
def test_encoder_round_trip_through_tshark(tmp_path: Path, tshark_ready: None) -> None:
    """Every encoded request, written into a pcap, decodes in tshark to exactly the fields we put in."""
    path = tmp_path / "encoded.pcap"
    write_pcap(path, [(False, pdu) for _, pdu, _ in ENCODER_CASES])
    rows = tshark_pdus(path)
    assert len(rows) == len(ENCODER_CASES)
    for (name, _, want), got in zip(ENCODER_CASES, rows, strict=True):
        for key, value in want.items():
            if key == "isid":
                assert got["iscsi.isid"] == value, name
            elif key == "keys":
                keyvalues = got["iscsi.keyvalue"]
                assert (keyvalues if isinstance(keyvalues, list) else [keyvalues]) == value, name
            else:
                assert key in got, f"{name}: tshark has no {key}"
                assert _n(got[key]) == value, f"{name}: {key} = {got[key]}, wanted {value}"
        assert "iscsi.opcode.invalid" not in got


@pytest.mark.tshark
def test_decoder_agrees_with_tshark(tmp_path: Path, tshark_ready: None) -> None:
    """Our decode of each target PDU and tshark's agree on opcode, ITT and the numbering fields."""
    path = tmp_path / "target.pcap"
    write_pcap(path, [(True, pdu) for _, pdu, _ in DECODER_CASES])
    rows = tshark_pdus(path)
    assert len(rows) == len(DECODER_CASES)
    for (name, raw, _), got in zip(DECODER_CASES, rows, strict=True):
        pdu = sc.decode_pdu(raw[:48], raw[48:48 + sc.pdu_lengths(raw[:48])[1]])
        assert _n(got["iscsi.opcode"]) == pdu.opcode, name
        assert _n(got.get("iscsi.initiatortasktag", "0xffffffff")) == pdu.itt, name  # Async: no ITT field
        for key, ours in (("iscsi.statsn", pdu.statsn), ("iscsi.expcmdsn", pdu.exp_cmdsn),
                          ("iscsi.maxcmdsn", pdu.max_cmdsn)):
            if key in got:
                assert _n(got[key]) == ours, f"{name}: {key}"
        if isinstance(pdu, sc.LoginResponse):
            assert _n(got.get("iscsi.login.status", "0")) == pdu.status, name
        if isinstance(pdu, sc.LogoutResponse):
            assert _n(got["iscsi.logout.response"]) == pdu.response
            assert _n(got["iscsi.time2wait"]) == pdu.time2wait and _n(got["iscsi.time2retain"]) == pdu.time2retain
        if isinstance(pdu, sc.R2T):
            assert _n(got["iscsi.desireddatalength"]) == pdu.length
            assert _n(got["iscsi.r2tsn"]) == pdu.r2tsn


@pytest.mark.parametrize(("name", "raw", "want"), DECODER_CASES, ids=[c[0] for c in DECODER_CASES])
def test_decode_pdu(name: str, raw: bytes, want: dict[str, Any]) -> None:
    [(bhs, data)] = sc.split_pdus(raw)
    pdu = sc.decode_pdu(bhs, data)
    assert isinstance(pdu, want["cls"])
    for key, value in want.items():
        if key != "cls":
            assert getattr(pdu, key) == value, key


@pytest.mark.parametrize(("name", "raw", "want"), ENCODER_CASES, ids=[c[0] for c in ENCODER_CASES])
def test_encoded_pdus_are_padded_and_framed(name: str, raw: bytes, want: dict[str, Any]) -> None:
    assert len(raw) % 4 == 0
    [(bhs, data)] = sc.split_pdus(raw)
    assert bhs[0] & 0x3F == want["iscsi.opcode"]
    assert len(data) == sc.pdu_lengths(bhs)[1]


def test_login_request_layout() -> None:
    raw = sc.encode_login_request(isid=ISID, tsih=0x0200, cid=3, itt=0x99, cmdsn=5, exp_statsn=0,
                                  csg=sc.Stage.OPERATIONAL, nsg=sc.Stage.FULL_FEATURE, transit=True, keys=KEYS)
    assert raw[0] == 0x43  # Login is always immediate (RFC 7143 §11.12)
    assert raw[1] == 0x80 | (1 << 2) | 3
    assert raw[8:14] == sc.isid_bytes(ISID) and raw[14:16] == b"\x02\x00"
    assert struct.unpack_from(">H", raw, 20)[0] == 3
    assert sc.decode_keys(raw[48:48 + sc.pdu_lengths(raw[:48])[1]]) == KEYS


def test_serial_arithmetic_and_window() -> None:
    assert sc.sn_lt(0xFFFFFFFF, 0) and not sc.sn_lt(0, 0xFFFFFFFF)
    assert sc.sn_add(0xFFFFFFFF, 2) == 1
    s = sc.Session("i", "t", ISID, cmdsn=10, exp_cmdsn=10, max_cmdsn=10)
    assert s.take_cmdsn(immediate=True) == 10 and s.cmdsn == 10  # immediate: not advanced (§4.2.2.1)
    assert s.take_cmdsn(immediate=False) == 10 and s.cmdsn == 11
    s.update_window(11, 42)
    assert (s.exp_cmdsn, s.max_cmdsn) == (11, 42)
    s.update_window(10, 40)  # older values never move the window back
    assert (s.exp_cmdsn, s.max_cmdsn) == (11, 42)
    s.update_window(20, 5)  # MaxCmdSN < ExpCmdSN - 1: invalid pair, ignored
    assert (s.exp_cmdsn, s.max_cmdsn) == (11, 42)
    assert s.in_window(42) and not s.in_window(43) and not s.in_window(10)


def _pair() -> tuple[sc.Connection, socket.socket]:
    a, b = socket.socketpair()
    conn = sc.Connection(sc.Session("i", "t", ISID), a, cid=0, timeout=0.3)
    return conn, b


def test_exp_statsn_follows_status_pdus_only() -> None:
    conn, peer = _pair()
    try:
        r2t = next(c[1] for c in DECODER_CASES if c[0] == "r2t")
        data_in = next(c[1] for c in DECODER_CASES if c[0] == "data_in_with_status")
        peer.sendall(data_in + r2t)
        conn.recv_pdu()
        assert conn.exp_statsn == 6  # StatSN 5 + 1
        conn.recv_pdu()
        assert conn.exp_statsn == 6  # R2T carries the next StatSN (6) without consuming it
        assert (conn.session.exp_cmdsn, conn.session.max_cmdsn) == (3, 130)
    finally:
        conn.sock.close()
        peer.close()


def test_reads_time_out_and_detect_close() -> None:
    conn, peer = _pair()
    try:
        start = time.monotonic()
        with pytest.raises(sc.ScriptedTimeout):
            conn.recv_pdu()
        assert time.monotonic() - start < 2.0
        peer.sendall(b"\x21" + bytes(20))  # half a BHS, then FIN
        peer.shutdown(socket.SHUT_WR)
        with pytest.raises(sc.ConnectionEnded) as exc:
            conn.recv_pdu()
        assert exc.value.how == "fin"
        assert conn.wait_closed(0.1) == "fin"
    finally:
        conn.sock.close()
        peer.close()


def test_login_against_a_fake_target() -> None:
    """Security -> operational -> FFP; the TSIH of the final response becomes the session's."""
    conn, peer = _pair()
    conn.timeout = 2.0
    seen: list[bytes] = []

    def target() -> None:
        buf = b""
        for statsn, flags, tsih in ((0, 0x81, 0), (1, 0x87, 0x0300)):
            while len(buf) < 48 or len(buf) < 48 + sc.pdu_lengths(buf[:48])[1] + (-sc.pdu_lengths(buf[:48])[1] % 4):
                buf += peer.recv(4096)
            dlen = sc.pdu_lengths(buf[:48])[1]
            end = 48 + dlen + (-dlen % 4)
            seen.append(buf[:end])
            buf = buf[end:]
            peer.sendall(_bhs(0x23, flags, 0, 0, sc.isid_bytes(ISID) + tsih.to_bytes(2, "big"), 0x10,
                              (0, statsn, 1, 2, 0, 0, 0), b"MaxConnections=1\0" if statsn else b""))

    th = threading.Thread(target=target, daemon=True)
    th.start()
    try:
        res = conn.login()
        th.join(2.0)
        assert res.ok and res.tsih == 0x0300 and conn.session.tsih == 0x0300
        assert conn.exp_statsn == 2
        assert [b[1] for b in seen] == [0x81, 0x87]  # CSG 0 -> NSG 1, then CSG 1 -> NSG 3, T=1
        assert conn.negotiated["MaxConnections"] == "1"
    finally:
        conn.sock.close()
        peer.close()


# ------------------------------------------------------------------------------------------- end to end

@pytest.mark.lab
def test_session_reinstatement_end_to_end(lab_ready: None, tmp_path: Path) -> None:
    """The scripted initiator against the real tgtd: reinstating session B closes session A."""
    from analyzer.lab.runner import run_scenario
    from analyzer.lab.scenarios import ISID_REINSTATE, SCENARIOS

    entry = run_scenario(SCENARIOS["session_reinstatement"], tmp_path)
    assert (tmp_path / "session_reinstatement.pcap").stat().st_size == entry["size_bytes"]
    scripted = entry["expect"]["scripted"]
    sessions = [s for s in scripted["sessions"] if s["isid"] == f"{ISID_REINSTATE:012x}"]
    assert len(sessions) == 2 and sessions[0]["tsih"] != sessions[1]["tsih"]
    a, b = sessions[0]["connections"][0], sessions[1]["connections"][0]
    assert b["tsih_requested"] == "0x0000" and b["login_status"] == "0x0000"
    assert a["closed_by"] == "target" and not a["logouts"]
    kinds = [f["kind"] for f in entry["expect"]["faults"]]
    assert "session_reinstated" in kinds
    assert entry["expect"]["tcp"]["retransmissions"] == 0
