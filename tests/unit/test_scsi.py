"""SCSI names, CDB and sense decoding (analyzer/iscsi/scsi.py)."""

from __future__ import annotations

import pathlib
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/builders.py

import builders as b

from analyzer.iscsi.errors import DecodeError
from analyzer.iscsi.scsi import (
    ASC_NAMES,
    asc_name,
    decode_cdb,
    decode_sense,
    opcode_name,
    sense_key_name,
    sense_summary,
    status_name,
)
from analyzer.records import Cdb, Sense


def cdb(hexstr: str, size: int = 16) -> bytes:
    return bytes.fromhex(hexstr.replace(" ", "")).ljust(size, b"\0")


@pytest.mark.parametrize("raw,name,lba,length,sa", [
    (cdb("00"), "TEST UNIT READY", None, None, None),
    (cdb("12 00 00 00 24 00"), "INQUIRY", None, 0x24, None),
    (cdb("12 01 83 01 00 00"), "INQUIRY", None, 0x100, None),
    (cdb("03 00 00 00 12 00"), "REQUEST SENSE", None, 18, None),
    (cdb("08 01 02 03 00 00"), "READ(6)", 0x010203, 256, None),  # length 0 means 256
    (cdb("0a 1f ff ff 10 00"), "WRITE(6)", 0x1FFFFF, 16, None),
    (cdb("28 00 00 00 08 00 00 00 08 00"), "READ(10)", 2048, 8, None),
    (cdb("2a 00 ff ff ff ff 00 ff ff 00"), "WRITE(10)", 0xFFFFFFFF, 0xFFFF, None),
    (cdb("2f 00 00 00 00 10 00 00 01 00"), "VERIFY(10)", 16, 1, None),
    (cdb("41 00 00 00 00 20 00 00 80 00"), "WRITE SAME(10)", 32, 128, None),
    (cdb("35 00 00 00 00 00 00 00 00 00"), "SYNCHRONIZE CACHE(10)", 0, 0, None),
    (cdb("a8 00 00 00 01 00 00 00 00 40 00 00"), "READ(12)", 256, 64, None),
    (cdb("aa 00 00 00 01 00 00 00 00 40 00 00"), "WRITE(12)", 256, 64, None),
    (cdb("88 00 00 00 00 01 00 00 00 00 00 00 00 80 00 00"), "READ(16)", 1 << 32, 128, None),
    (cdb("8a 00 00 00 00 00 00 00 10 00 00 00 00 08 00 00"), "WRITE(16)", 4096, 8, None),
    (cdb("93 08 00 00 00 00 00 00 10 00 00 00 10 00 00 00"), "WRITE SAME(16) / ERASE(16)", 4096, 4096, None),
    (cdb("89 00 00 00 00 00 00 00 00 07 00 00 00 01 00 00"), "COMPARE AND WRITE", 7, 1, None),
    (cdb("25 00 00 00 00 00 00 00 00 00"), "READ CAPACITY(10)", None, None, None),
    (cdb("9e 10 00 00 00 00 00 00 00 00 00 00 00 20 00 00"), "READ CAPACITY(16)", None, 32, 0x10),
    (cdb("a0 00 00 00 00 00 00 00 10 00 00 00"), "REPORT LUNS", None, 4096, None),
    (cdb("a3 0a 00 00 00 00 00 00 04 00 00 00"), "REPORT TARGET PORT GROUPS", None, 1024, 0x0A),
    (cdb("a3 0c 00 00 00 00 00 00 02 00 00 00"), "REPORT SUPPORTED OPERATION CODES", None, 512, 0x0C),
    (cdb("5e 00 00 00 00 00 00 10 00 00"), "PERSISTENT RESERVE IN (READ KEYS)", None, 4096, 0),
    (cdb("5f 01 00 00 00 00 00 00 18 00"), "PERSISTENT RESERVE OUT (RESERVE)", None, 24, 1),
    (cdb("1a 00 3f 00 c0 00"), "MODE SENSE(6)", None, 192, None),
    (cdb("5a 00 3f 00 00 00 00 10 00 00"), "MODE SENSE(10)", None, 4096, None),
    (cdb("4d 00 40 00 00 00 00 02 00 00"), "LOG SENSE", None, 512, None),
    (cdb("42 00 00 00 00 00 00 00 18 00"), "UNMAP / READ SUB-CHANNEL", None, 24, None),
    (cdb("46 02 00 00 00 00 00 00 08 00"), "GET CONFIGURATION", None, 8, None),
    (cdb("43 02 00 00 00 00 00 03 24 00"), "READ TOC/PMA/ATIP", None, 0x324, None),
    (cdb("b8 10 00 00 ff ff 00 00 04 00 00 00"), "READ ELEMENT STATUS", None, 1024, None),
    (cdb("a5 00 00 00 00 01 00 02 00 00 00 00"), "MOVE MEDIUM / PLAY AUDIO(12)", None, None, None),
    (cdb("01 00 00 00 00 00"), "REWIND / REZERO UNIT", None, None, None),
    (cdb("7f 00 00 00 00 00 00 18 00 0b 00 00 00 00 00 00", 32)[:12] + (5).to_bytes(8, "big") + bytes(8)
     + (9).to_bytes(4, "big"), "WRITE(32)", 5, 9, 0x0B),
    (cdb("c0"), "Vendor specific 0xc0", None, None, None),
])
def test_decode_cdb(raw: bytes, name: str, lba: int | None, length: int | None, sa: int | None) -> None:
    assert decode_cdb(raw) == Cdb(raw[0], name, lba, length, sa, raw)


@pytest.mark.parametrize("raw,device_type,name,lba,length", [
    (cdb("08 01 00 00 10 00"), 1, "READ(6)", None, 16),  # tape: 24-bit length, FIXED bit
    (cdb("0a 00 01 00 00 00"), 1, "WRITE(6)", None, 0x10000),
    (cdb("01 00 00 00 00 00"), 1, "REWIND", None, None),
    (cdb("01 00 00 00 00 00"), 0, "REZERO UNIT", None, None),
    (cdb("1b 00 00 00 01 00"), 1, "LOAD UNLOAD", None, None),
    (cdb("1b 00 00 00 01 00"), 0, "START STOP UNIT", None, None),
    (cdb("11 01 ff ff ff 00"), 1, "SPACE(6)", None, -1),
    (cdb("10 00 00 00 02 00"), 1, "WRITE FILEMARKS(6)", None, 2),
    (cdb("2b 00 00 00 00 00 10 00 00 00"), 1, "LOCATE(10)", 16, None),
    (cdb("34 00 00 00 00 00 00 00 00 00"), 1, "READ POSITION", None, None),
    (cdb("a5 00 00 00 00 01 00 02 00 00 00 00"), 8, "MOVE MEDIUM", None, None),
    (cdb("07 00 00 00 00 00"), 8, "INITIALIZE ELEMENT STATUS", None, None),
    (cdb("a4 00 00 00 00 00 00 00 00 08 00 00"), 5, "REPORT KEY", None, 8),
])
def test_decode_cdb_device_type(raw: bytes, device_type: int, name: str, lba: int | None,
                                length: int | None) -> None:
    c = decode_cdb(raw, device_type)
    assert (c.name, c.lba, c.transfer_length) == (name, lba, length)


def test_short_and_empty_cdb() -> None:
    assert decode_cdb(b"\x28\x00") == Cdb(0x28, "READ(10)", None, None, None, b"\x28\x00")
    with pytest.raises(DecodeError):
        decode_cdb(b"")


def test_fixed_sense() -> None:
    s = decode_sense(b.fixed_sense(5, 0x24, 0x00))
    assert s == Sense(0x70, 5, 0x24, 0, "ILLEGAL REQUEST", "Invalid field in CDB", None)
    assert sense_summary(s) == "ILLEGAL REQUEST, Invalid field in CDB"


def test_fixed_sense_with_information_and_deferred() -> None:
    s = decode_sense(b.fixed_sense(3, 0x11, 0x00, information=0xDEAD, response_code=0x71))
    assert (s.response_code, s.key_name, s.asc_name, s.information) == (0x71, "MEDIUM ERROR",
                                                                       "Unrecovered read error", 0xDEAD)


def test_short_fixed_sense_without_asc() -> None:
    s = decode_sense(bytes([0x70, 0, 0x06, 0, 0, 0, 0, 0]))
    assert (s.sense_key, s.asc, s.ascq) == (6, 0, 0)


def test_descriptor_sense_information() -> None:
    s = decode_sense(b.descriptor_sense(6, 0x29, 0x00, information=1 << 40))
    assert s == Sense(0x72, 6, 0x29, 0, "UNIT ATTENTION", "Power on, reset, or bus device reset occurred", 1 << 40)
    assert decode_sense(b.descriptor_sense(2, 0x3A, 0)).information is None


@pytest.mark.parametrize("raw", [b"", b"\x70\x00", b"\x72\x00\x00", b"\x7f" + bytes(17), b"\x00" * 18])
def test_bad_sense(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_sense(raw)


@pytest.mark.parametrize("asc,ascq,name", [
    (0x00, 0x00, "No additional sense information"),
    (0x00, 0x01, "Filemark detected"),
    (0x04, 0x01, "Logical unit is in process of becoming ready"),
    (0x20, 0x00, "Invalid command operation code"),
    (0x21, 0x00, "Logical block address out of range"),
    (0x25, 0x00, "Logical unit not supported"),
    (0x28, 0x00, "Not ready to ready change, medium may have changed"),
    (0x29, 0x01, "Power on occurred"),
    (0x2A, 0x01, "Mode parameters changed"),
    (0x3A, 0x00, "Medium not present"),
    (0x3F, 0x0E, "Reported LUNs data has changed"),
    (0x47, 0x7F, "Some commands cleared by iSCSI protocol event"),
    (0x49, 0x00, "Invalid message error"),
    (0x0C, 0x00, "Write error"),
    (0x44, 0x00, "Internal target failure"),
    (0x5D, 0x00, "Failure prediction threshold exceeded"),
    (0x40, 0x81, "Diagnostic failure on component 0x81"),
    (0x80, 0x00, "Vendor specific (0x80/0x00)"),
    (0x7E, 0x7E, ""),
])
def test_asc_names(asc: int, ascq: int, name: str) -> None:
    assert asc_name(asc, ascq) == name


def test_asc_table_is_large_and_sane() -> None:
    assert len(ASC_NAMES) > 500
    assert all(name and name == name.strip() for name in ASC_NAMES.values())
    assert all(0 <= code <= 0xFFFF for code in ASC_NAMES)


def test_names() -> None:
    assert status_name(0x02) == "CHECK CONDITION"
    assert status_name(0x28) == "TASK SET FULL"
    assert status_name(0x99) == "Status 0x99"
    assert sense_key_name(6) == "UNIT ATTENTION"
    assert opcode_name(0x28) == "READ(10)"
    assert opcode_name(0x25, 5) == "READ CAPACITY"


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=64), st.sampled_from([None, 0, 1, 5, 8, 0x1F]))
def test_decode_cdb_garbage(raw: bytes, device_type: int | None) -> None:
    try:
        c = decode_cdb(raw, device_type)
    except DecodeError:
        assert raw == b""
    else:
        assert c.raw == raw and isinstance(c.name, str)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_decode_sense_garbage(raw: bytes) -> None:
    try:
        s = decode_sense(raw)
    except DecodeError:
        return
    assert 0 <= s.sense_key <= 15 and isinstance(s.asc_name, str)


@given(st.binary(min_size=1, max_size=1).map(lambda x: x[0] | 0x70), st.binary(max_size=40))
def test_decode_sense_garbage_valid_codes(rc: int, rest: bytes) -> None:
    try:
        decode_sense(bytes([rc]) + rest)
    except DecodeError:
        pass
