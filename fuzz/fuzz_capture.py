"""atheris harness: arbitrary bytes as a capture file: ``open_capture`` + ``iter_tcp`` + ``Pipeline``.

Clean outcomes: ``CaptureError`` at open (one line, naming the problem), or frames and records
up to the damage with ``reader.damage`` holding ``CaptureDamage`` records. Anything else is a bug.
"""

from __future__ import annotations

import io

import fuzzlib

from analyzer.capture import CaptureError, iter_tcp, open_capture
from analyzer.pipeline import Options, Pipeline
from analyzer.records import CaptureDamage

SEED_BYTES = 12 * 1024


def test_one_input(data: bytes) -> None:
    try:
        reader = open_capture(io.BytesIO(data))
    except CaptureError as e:
        msg = str(e)
        if not msg or "\n" in msg:
            raise fuzzlib.FuzzFailure(f"CaptureError message is not one line: {msg!r}") from None
        return
    p = Pipeline(Options(max_flows=8, state=True, anomalies=True))
    try:
        for seg in iter_tcp(reader):
            fuzzlib.check_records(p.feed_segment(*seg), "Pipeline.feed_segment")
        fuzzlib.check_records(p.finish(), "Pipeline.finish")
        for d in reader.damage:
            if not isinstance(d, CaptureDamage) or "\n" in d.message:
                raise fuzzlib.FuzzFailure(f"bad damage record {d!r}")
    finally:
        reader.close()


def make_seeds(d: fuzzlib.Path) -> int:
    import gzip

    seeds = []
    for cap in fuzzlib.sample_captures():
        raw = cap.read_bytes()
        if cap.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        seeds.append(raw[:SEED_BYTES])
        if len(seeds) % 4 == 0:
            seeds.append(gzip.compress(raw[:SEED_BYTES // 2]))
    return fuzzlib.write_seeds(d, seeds)


if __name__ == "__main__":
    fuzzlib.run(test_one_input, make_seeds)
