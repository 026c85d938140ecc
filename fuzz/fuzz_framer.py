"""atheris harness: ``PduFramer`` over arbitrary stream bytes, splits and gaps.

Input: byte 0 configures the framer (bit 0 direction t2i, bit 1 start out of sync, bit 2 digests
known, bits 3-4 header/data digest on once known, bit 5 small resync limit); then repeated
operations: a byte ``op < 0xF0`` feeds the next ``op + 1`` bytes as one chunk, ``op >= 0xF0``
declares a capture gap of the length in the next two bytes. Checks: only records come out, and
feeding the same bytes (without gaps) in one chunk or byte by byte gives the same records.
"""

from __future__ import annotations

import fuzzlib

from analyzer.iscsi.framing import DigestState, PduFramer
from analyzer.records import I2T, T2I


def _framer(cfg: int) -> PduFramer:
    digests = DigestState(known=bool(cfg & 4))
    if cfg & 4 and cfg & 8:
        digests.header = True
    if cfg & 4 and cfg & 16:
        digests.data = True
    return PduFramer("c", T2I if cfg & 1 else I2T, digests, in_sync=not cfg & 2,
                     resync_max_dsl=4096 if cfg & 32 else 256 * 1024)


def _ops(data: bytes) -> list[tuple[str, bytes | int]]:
    ops: list[tuple[str, bytes | int]] = []
    pos = 1
    while pos < len(data):
        op = data[pos]
        pos += 1
        if op < 0xF0:
            ops.append(("data", data[pos:pos + op + 1]))
            pos += op + 1
        else:
            ops.append(("gap", int.from_bytes(data[pos:pos + 2], "big") + 1))
            pos += 2
    return ops


def _key(recs: list[object]) -> list[object]:
    # Records are compared without frame attribution (that depends on the split, by design).
    return [(type(r).__name__, getattr(r, "opcode", None), getattr(r, "itt", None), getattr(r, "skipped", None))
            for r in recs]


def test_one_input(data: bytes) -> None:
    if not data:
        return
    cfg = data[0]
    ops = _ops(data)
    f = _framer(cfg)
    out: list[object] = []
    for i, (kind, arg) in enumerate(ops):
        recs = f.feed(i, i, arg) if kind == "data" else f.gap(i, i, arg)  # type: ignore[arg-type]
        fuzzlib.check_records(recs, f"PduFramer.{kind}")
        out.extend(recs)
    recs = f.finish(len(ops), len(ops))
    fuzzlib.check_records(recs, "PduFramer.finish")
    if any(k == "gap" for k, _ in ops) or len(data) > 1024:
        return
    # Split-feed invariant (house style §6): one chunk and byte by byte give the same records.
    out.extend(recs)
    stream = b"".join(arg for _, arg in ops)  # type: ignore[misc]
    one = _framer(cfg)
    whole = one.feed(0, 0, stream) + one.finish(1, 1)
    bytewise = _framer(cfg)
    each: list[object] = []
    for b in stream:
        each += bytewise.feed(0, 0, bytes([b]))
    each += bytewise.finish(1, 1)
    if _key(whole) != _key(each):
        raise fuzzlib.FuzzFailure(f"split-feed mismatch: {_key(whole)} != {_key(each)}")


def make_seeds(d: fuzzlib.Path) -> int:
    seeds = []
    for cap in fuzzlib.sample_captures():
        for direction, stream in fuzzlib.streams(cap, 4096):
            cfg = (1 if direction == T2I else 0) | (4 if "digest" not in cap.name else 0)
            body = bytearray([cfg])
            for off in range(0, len(stream), 200):
                chunk = stream[off:off + 200]
                body += bytes([len(chunk) - 1]) + chunk
            seeds.append(bytes(body))
    return fuzzlib.write_seeds(d, seeds)


if __name__ == "__main__":
    fuzzlib.run(test_one_input, make_seeds)
