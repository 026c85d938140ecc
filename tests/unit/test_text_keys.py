"""Login/Text keys (analyzer/iscsi/text_keys.py): parsing, masking, negotiation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.iscsi.errors import DecodeError
from analyzer.iscsi.text_keys import (
    KEY_SPEC,
    MASK,
    MAX_PAIRS,
    MAX_VALUE_BYTES,
    SECRET_KEYS,
    encode_keys,
    format_keys,
    mask_keys,
    mask_secret,
    negotiate,
    negotiate_detail,
    parse_keys,
)


@pytest.mark.parametrize("raw,pairs", [
    (b"", ()),
    (b"\0\0\0", ()),
    (b"HeaderDigest=None\0", (("HeaderDigest", "None"),)),
    (b"A=1\0B=2\0\0\0", (("A", "1"), ("B", "2"))),  # padding / empty items
    (b"A=1\0B=2", (("A", "1"), ("B", "2"))),  # missing final NUL
    (b"TargetAddress=10.0.0.1:3260,1\0", (("TargetAddress", "10.0.0.1:3260,1"),)),
    (b"X-com.example.k=a=b\0", (("X-com.example.k", "a=b"),)),  # value keeps later '='
    (b"Empty=\0", (("Empty", ""),)),
    (b"tail-of-split-value\0A=1\0", (("", "tail-of-split-value"), ("A", "1"))),
    (b"Name=\xff\xfe\0", (("Name", "\ufffd\ufffd"),)),
])
def test_parse_keys(raw: bytes, pairs: tuple[tuple[str, str], ...]) -> None:
    assert parse_keys(raw) == pairs


def test_encode_round_trip() -> None:
    pairs = (("InitiatorName", "iqn.x"), ("MaxBurstLength", "262144"))
    assert parse_keys(encode_keys(pairs)) == pairs


def test_limits() -> None:
    with pytest.raises(DecodeError):
        parse_keys(b"A=1\0" * (MAX_PAIRS + 1))
    assert len(parse_keys(b"A=1\0" * MAX_PAIRS)) == MAX_PAIRS
    with pytest.raises(DecodeError) as e:
        parse_keys(b"A=1\0B=" + b"x" * MAX_VALUE_BYTES + b"\0")
    assert e.value.offset == 4


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=2000))
def test_parse_keys_garbage(raw: bytes) -> None:
    try:
        pairs = parse_keys(raw)
    except DecodeError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in pairs)


def test_masking() -> None:
    assert {"CHAP_C", "CHAP_R", "CHAP_N"} <= SECRET_KEYS
    assert mask_secret("CHAP_R", "0xabcdef") == MASK
    assert mask_secret("CHAP_N", "user") == MASK
    assert mask_secret("CHAP_A", "5") == "5"
    pairs = (("CHAP_A", "5"), ("CHAP_I", "1"), ("CHAP_C", "0x1234"))
    assert mask_keys(pairs) == (("CHAP_A", "5"), ("CHAP_I", "1"), ("CHAP_C", MASK))
    assert "0x1234" not in format_keys(pairs)
    assert format_keys((("A", "x" * 50),), limit=20) == "A=" + "x" * 15 + "..."


@pytest.mark.parametrize("key,offer,answer,result", [
    ("MaxBurstLength", "262144", "65536", "65536"),  # Min
    ("FirstBurstLength", "65536", "262144", "65536"),  # Min, answer violates but result is min
    ("DefaultTime2Wait", "2", "5", "5"),  # Max
    ("DefaultTime2Retain", "20", "0", "0"),  # Min
    ("MaxConnections", "1", "1", "1"),
    ("ErrorRecoveryLevel", "2", "0", "0"),
    ("InitialR2T", "No", "Yes", "Yes"),  # OR
    ("InitialR2T", "No", "No", "No"),
    ("ImmediateData", "Yes", "No", "No"),  # AND
    ("ImmediateData", "Yes", "Yes", "Yes"),
    ("DataPDUInOrder", "Yes", "No", "Yes"),
    ("HeaderDigest", "CRC32C,None", "CRC32C", "CRC32C"),  # list: the answer
    ("AuthMethod", "CHAP,None", "None", "None"),
    ("MaxRecvDataSegmentLength", "262144", "8192", "262144"),  # declarative: each side's own
    ("MaxBurstLength", "262144", "Reject", "262144"),  # special answers keep the default
    ("ImmediateData", "Yes", "NotUnderstood", "Yes"),
    ("OFMarker", "Yes", "Irrelevant", "No"),
    ("MaxBurstLength", "0x10000", "262144", "65536"),
    ("X-vendor.key", "a", "b", "b"),
])
def test_negotiate(key: str, offer: str, answer: str, result: str) -> None:
    assert negotiate(key, offer, answer) == result


def test_negotiate_notes() -> None:
    assert negotiate_detail("MaxBurstLength", "1000", "Reject").note == "answer Reject: default kept"
    assert "violates" in negotiate_detail("FirstBurstLength", "512", "1024").note
    assert negotiate_detail("HeaderDigest", "None", "CRC32C").note == "answer not among the offered values"
    assert negotiate_detail("MaxBurstLength", "abc", "1").note == "non-numeric value"


def test_key_spec_table() -> None:
    for name in ("HeaderDigest", "DataDigest", "MaxConnections", "SendTargets", "TargetName", "InitiatorName",
                 "TargetAlias", "InitiatorAlias", "TargetAddress", "TargetPortalGroupTag", "InitialR2T",
                 "ImmediateData", "MaxRecvDataSegmentLength", "MaxBurstLength", "FirstBurstLength",
                 "DefaultTime2Wait", "DefaultTime2Retain", "MaxOutstandingR2T", "DataPDUInOrder",
                 "DataSequenceInOrder", "ErrorRecoveryLevel", "SessionType", "AuthMethod"):
        assert KEY_SPEC[name].name == name
    assert KEY_SPEC["MaxBurstLength"].default == "262144"
    assert KEY_SPEC["DefaultTime2Wait"].result == "Max"
    assert KEY_SPEC["ImmediateData"].result == "AND"
    assert KEY_SPEC["InitialR2T"].result == "OR"
