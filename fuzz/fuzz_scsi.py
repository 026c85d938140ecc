"""atheris harness: CDB and sense data decoding (SBC/SSC/MMC/SPC-4) and their summaries.

Input: byte 0 selects the decoder (bit 0: sense data, else a CDB) and a device type (bits 1-5:
0 disk, 1 tape, 5 CD/DVD, others as is, 31 = unknown); the rest is the CDB or the sense data.
"""

from __future__ import annotations

import fuzzlib

from analyzer.iscsi.pdus import DecodeError
from analyzer.iscsi.scsi import asc_name, decode_cdb, decode_sense, opcode_name, sense_summary, status_name


def test_one_input(data: bytes) -> None:
    if not data:
        return
    sel, body = data[0], data[1:]
    dev = (sel >> 1) & 31
    device_type = None if dev == 31 else dev
    if sel & 1:
        try:
            sense = decode_sense(body)
        except DecodeError:
            return
        if not isinstance(sense_summary(sense), str):
            raise fuzzlib.FuzzFailure("sense_summary")
        if len(body) >= 2:
            asc_name(body[0], body[1])
        return
    try:
        cdb = decode_cdb(body, device_type)
    except DecodeError:
        if body:
            raise fuzzlib.FuzzFailure("decode_cdb raised on a non-empty CDB") from None
        return
    if body:
        opcode_name(body[0], device_type)
        status_name(body[0])
    if cdb is None:
        raise fuzzlib.FuzzFailure("decode_cdb returned None")


def make_seeds(d: fuzzlib.Path) -> int:
    seeds = []
    for cap in fuzzlib.sample_captures():
        for _direction, stream in fuzzlib.streams(cap, 8192):
            for p in fuzzlib.split_pdus(stream):
                if len(p) >= 48 and p[0] & 0x3F == 0x01:
                    seeds.append(b"\x00" + p[32:48])
                    seeds.append(b"\x02" + p[32:48])
                if len(p) > 50 and p[0] & 0x3F == 0x21 and int.from_bytes(p[5:8], "big"):
                    seeds.append(b"\x01" + p[50:48 + int.from_bytes(p[5:8], "big")])
    seeds += [b"\x01\x70\x00\x05\x00\x00\x00\x00\x0a\x00\x00\x00\x00\x24\x00",
              b"\x01\x72\x05\x24\x00\x00\x00\x00\x0c\x00\x0a\x80\x00\x00\x00\x00\x00\x00\x00\x12\x34"]
    return fuzzlib.write_seeds(d, seeds)


if __name__ == "__main__":
    fuzzlib.run(test_one_input, make_seeds)
