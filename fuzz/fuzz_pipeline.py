"""atheris harness: arbitrary TCP segment sequences through ``Pipeline`` with the state machines
and anomaly rules on (encoding in fuzzlib's doc). Only records may come out, never an exception.
Small limits so eviction (``resource_limit``) and gaps happen.
"""

from __future__ import annotations

import fuzzlib

from analyzer.pipeline import Options, Pipeline


def test_one_input(data: bytes) -> None:
    p = Pipeline(Options(max_ooo_bytes=4096, max_total_ooo_bytes=8192, max_flows=4, state=True, anomalies=True))
    for seg in fuzzlib.iter_segments(data):
        fuzzlib.check_records(p.feed_segment(*seg), "Pipeline.feed_segment")
    fuzzlib.check_records(p.finish(), "Pipeline.finish")


def make_seeds(d: fuzzlib.Path) -> int:
    seeds = []
    for cap in fuzzlib.sample_captures():
        segs = fuzzlib.capture_segments(cap, 400)
        seeds.append(fuzzlib.segments_as_input(segs, 48 * 1024))
    return fuzzlib.write_seeds(d, seeds)


if __name__ == "__main__":
    fuzzlib.run(test_one_input, make_seeds)
