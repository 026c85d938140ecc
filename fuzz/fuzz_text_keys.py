"""atheris harness: text key parsing (RFC 7143 §6.1), masking, formatting and negotiation (§13).

Input: a Login/Text data segment. Checks: ``parse_keys`` returns pairs of strings or raises
DecodeError; ``encode_keys`` round-trips what it parsed; secrets never show in ``format_keys``;
``negotiate_detail`` accepts any offer/answer pair of parsed values.
"""

from __future__ import annotations

import fuzzlib

from analyzer.iscsi.pdus import DecodeError
from analyzer.iscsi.text_keys import (
    KEY_SPEC,
    MASK,
    SECRET_KEYS,
    encode_keys,
    format_keys,
    mask_keys,
    negotiate_detail,
    parse_keys,
)

_KEYS = sorted(KEY_SPEC)


def test_one_input(data: bytes) -> None:
    try:
        pairs = parse_keys(data)
    except DecodeError:
        return
    for k, v in pairs:
        if not isinstance(k, str) or not isinstance(v, str):
            raise fuzzlib.FuzzFailure("parse_keys gave a non-string")
    if all(k for k, _ in pairs) and b"\xef\xbf\xbd" not in data:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            again = parse_keys(encode_keys(pairs))
            if again != pairs:
                raise fuzzlib.FuzzFailure(f"encode/parse round trip changed {pairs!r} into {again!r}")
    masked = mask_keys(pairs)
    text = format_keys(pairs, 120) + format_keys(pairs)
    for (k, v), (_k2, mv) in zip(pairs, masked, strict=True):
        if k in SECRET_KEYS and (mv != MASK or format_keys(((k, v),)) != f"{k}={MASK}"):
            raise fuzzlib.FuzzFailure(f"{k} not masked")
    if not isinstance(text, str):
        raise fuzzlib.FuzzFailure("format_keys")
    vals = [v for _, v in pairs][:8] or [""]
    for i, (k, v) in enumerate(pairs[:8]):
        key = k if k in KEY_SPEC else _KEYS[(len(k) + i) % len(_KEYS)]
        negotiate_detail(key, v, vals[(i + 1) % len(vals)])
        negotiate_detail(k, v, v)


def make_seeds(d: fuzzlib.Path) -> int:
    seeds = []
    for cap in fuzzlib.sample_captures():
        for _direction, stream in fuzzlib.streams(cap, 8192):
            for p in fuzzlib.split_pdus(stream):
                if len(p) > 48 and p[0] & 0x3F in (0x03, 0x23, 0x04, 0x24):
                    dsl = int.from_bytes(p[5:8], "big")
                    seeds.append(p[48 + p[4] * 4:48 + p[4] * 4 + dsl])
    seeds.append(b"CHAP_A=5\0CHAP_C=0x1234\0CHAP_N=user\0CHAP_R=0xabcdef\0")
    seeds.append(b"MaxRecvDataSegmentLength=0x2000\0HeaderDigest=CRC32C,None\0InitialR2T=No\0")
    return fuzzlib.write_seeds(d, seeds)


if __name__ == "__main__":
    fuzzlib.run(test_one_input, make_seeds)
