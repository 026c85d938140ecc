"""Info-column summaries (analyzer/iscsi/describe.py)."""

from __future__ import annotations

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/builders.py

import builders as b

from analyzer.iscsi.describe import info

READ10 = bytes.fromhex("28000000080000000800") + bytes(6)


@pytest.mark.parametrize("wire,text", [
    (b.scsi_command(cdb=READ10, lun=0, read=True), "SCSI Command READ(10) LUN 0 LBA 2048 len 8"),
    (b.scsi_command(cdb=bytes.fromhex("12000000240000000000000000000000"), lun=2), "SCSI Command INQUIRY LUN 2 len 36"),
    (b.scsi_response(status=2, sense=b.fixed_sense(5, 0x24, 0)),
     "SCSI Response (CHECK CONDITION: ILLEGAL REQUEST, Invalid field in CDB)"),
    (b.scsi_response(status=0), "SCSI Response (GOOD)"),
    (b.scsi_response(status=0, underflow=True, residual=512), "SCSI Response (GOOD, residual underflow 512)"),
    (b.scsi_response(response=1), "SCSI Response (Target Failure)"),
    (b.login_response(status_class=2, status_detail=3, transit=False), "Login Response (Not found 0x0203)"),
    (b.login_response(csg=1, nsg=3), "Login Response (Success, Operational negotiation -> Full feature phase)"),
    (b.login_request(csg=0, nsg=1, keys=[("AuthMethod", "None")]),
     "Login Command (Security negotiation -> Operational negotiation) AuthMethod=None"),
    (b.logout_request(reason=0), "Logout Request (close the session)"),
    (b.logout_response(response=1), "Logout Response (CID not found)"),
    (b.r2t(r2tsn=0, buffer_offset=0, desired_length=65536), "R2T R2TSN 0 off 0 len 65536"),
    (b.task_mgmt_request(function=5, lun=1), "Task Management Function LOGICAL UNIT RESET LUN 1"),
    (b.task_mgmt_request(function=1, lun=0, ref_task_tag=0x10),
     "Task Management Function ABORT TASK LUN 0 task 0x00000010"),
    (b.task_mgmt_response(response=0), "Task Management Function Response (Function complete)"),
    (b.data_in(datasn=2, buffer_offset=8192, data=bytes(4096)), "SCSI Data In DataSN 2 off 8192 len 4096"),
    (b.data_in(status=0, data=bytes(4)), "SCSI Data In DataSN 0 off 0 len 4 (GOOD)"),
    (b.data_out(datasn=1, buffer_offset=512, data=bytes(512)), "SCSI Data Out DataSN 1 off 512 len 512 (final)"),
    (b.nop_out(itt=5), "NOP Out (ping ITT 0x00000005)"),
    (b.nop_out(ttt=7), "NOP Out (reply to target ping TTT 0x00000007)"),
    (b.nop_in(ttt=7), "NOP In (target ping TTT 0x00000007)"),
    (b.nop_in(itt=5), "NOP In (ping reply ITT 0x00000005)"),
    (b.text_request(keys=[("SendTargets", "All")]), "Text Command SendTargets=All"),
    (b.text_response(keys=[("TargetName", "iqn.x")], cont=True, final=False), "Text Response (continues) TargetName=iqn.x"),
    (b.snack(snack_type=1, begrun=3, runlength=1), "SNACK Request (Status) BegRun 3 RunLength 1"),
    (b.async_message(async_event=1, param3=10), "Asynchronous Message (Target requests logout within 10 s)"),
    (b.async_message(async_event=0, sense=b.fixed_sense(6, 0x3F, 0x0E)),
     "Asynchronous Message (SCSI asynchronous event: UNIT ATTENTION, Reported LUNs data has changed)"),
    (b.reject(reason=9, rejected_header=b.bhs(1, itt=0x42)),
     "Reject (Invalid PDU field) of SCSI Command ITT 0x00000042"),
    (b.vendor_pdu(0x1D), "Vendor Specific I1 (0x1d)"),
    (b.vendor_pdu(0x0F), "Unknown opcode 0x0f (0x0f)"),
])
def test_info(wire: bytes, text: str) -> None:
    assert info(b.decode_wire(wire)) == text


def test_chap_secrets_are_masked() -> None:
    keys = [("CHAP_A", "5"), ("CHAP_I", "7"), ("CHAP_C", "0xdeadbeef"), ("CHAP_N", "alice"), ("CHAP_R", "0xfeed")]
    text = info(b.decode_wire(b.login_request(keys=keys, csg=0, nsg=1, transit=False)))
    assert "CHAP_A=5" in text and "CHAP_I=7" in text
    for secret in ("deadbeef", "alice", "feed"):
        assert secret not in text
