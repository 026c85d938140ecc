"""crosscheck --deep: pairing and field comparison against Wireshark-shaped field sets (no tshark)."""

from __future__ import annotations

import builders as b

from analyzer.capture.wireshark import WiresharkPdu
from analyzer.crosscheck.deep import deep_compare

READ16 = bytes([0x88, 0]) + (0x1234).to_bytes(8, "big") + (8).to_bytes(4, "big") + b"\0\0"


def _cmd(frame: int = 5) -> object:
    return b.decode_wire(b.scsi_command(cdb=READ16, itt=0x10, lun=1, read=True, edtl=4096, cmdsn=7,
                                        expstatsn=3), frame=frame)


def _ws_cmd(frame: int = 5, **override: str) -> WiresharkPdu:
    iscsi = {"opcode": ("0x01",), "initiatortasktag": ("0x00000010",), "datasegmentlength": ("0",),
             "totalahslength": ("0",), "cmdsn": ("7",), "expstatsn": ("3",), "i": ("0",),
             "scsicommand_expecteddatatransferlength": ("4096",), "scsi_lun": ("0x0001",)}
    iscsi.update({k: (v,) for k, v in override.items()})
    scsi = {"scsi_sbc_opcode": ("0x88",), "scsi_sbc_rdwr16_lba": ("00:00:00:00:00:00:12:34",),
            "scsi_sbc_rdwr12_xferlen": ("8",)}
    return WiresharkPdu(frame, 0, iscsi, scsi)


def test_equal_fields_agree_and_are_counted() -> None:
    res = deep_compare([_cmd()], [_ws_cmd()])
    assert res.agree, res.differences
    assert res.paired == 1
    for label in ("cmdsn", "expstatsn", "edtl", "lun", "cdb.opcode", "cdb.lba", "cdb.transfer_length", "immediate"):
        assert res.compared[label] == 1, label


def test_a_differing_header_field_is_reported() -> None:
    res = deep_compare([_cmd()], [_ws_cmd(cmdsn="8")])
    assert [(d.field, d.ours, d.theirs) for d in res.differences] == [("cmdsn", "7", "8")]


def test_a_differing_cdb_field_is_reported() -> None:
    ws = _ws_cmd()
    assert ws.scsi is not None
    scsi = dict(ws.scsi, scsi_sbc_rdwr16_lba=("00:00:00:00:00:00:12:35",))
    res = deep_compare([_cmd()], [WiresharkPdu(5, 0, ws.iscsi, scsi)])
    assert [d.field for d in res.differences] == ["cdb.lba"]


def test_keys_are_compared_as_exact_pairs() -> None:
    login = b.decode_wire(b.login_request(keys=(("InitiatorName", "iqn.x"), ("AuthMethod", "None")), itt=2),
                          frame=3)
    ws = WiresharkPdu(3, 0, {"opcode": ("0x03",), "initiatortasktag": ("0x00000002",),
                             "keyvalue": ("InitiatorName=iqn.x", "AuthMethod=CHAP")}, None)
    res = deep_compare([login], [ws])
    assert [d.field for d in res.differences] == ["keys"]


def test_unpaired_pdus_are_counted_not_compared() -> None:
    res = deep_compare([_cmd(frame=5)], [_ws_cmd(frame=6)])
    assert (res.paired, res.unpaired_ours, res.unpaired_theirs) == (0, 1, 1)
    assert res.agree


def test_fields_one_side_lacks_are_skipped() -> None:
    ws = _ws_cmd()
    iscsi = {k: v for k, v in ws.iscsi.items() if k != "cmdsn"}
    res = deep_compare([_cmd()], [WiresharkPdu(5, 0, iscsi, None)])
    assert res.agree and res.compared["cmdsn"] == 0 and res.compared["cdb.opcode"] == 0
