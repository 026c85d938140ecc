"""The lab's benchmark capture kinds (analyzer/lab/bench.py): what each one asks iscsi-perf for."""

from __future__ import annotations

from click.testing import CliRunner

from analyzer.lab.bench import DEFAULT_MTU, KINDS, bench_file_name
from analyzer.lab.cli import lab


def test_small_kind_is_512_byte_sequential_reads_on_jumbo_frames() -> None:
    blocks, in_flight, random = KINDS["small"]
    assert blocks * 512 == 512 and not random and in_flight > 1
    assert DEFAULT_MTU["small"] == 9000
    assert DEFAULT_MTU["seq"] == DEFAULT_MTU["rand"] == 1500
    assert set(DEFAULT_MTU) == set(KINDS)


def test_file_names_say_kind_io_size_and_mtu() -> None:
    assert bench_file_name("seq", 300, 1500) == "bench_seq_64k_mtu1500_300mb.pcap"
    assert bench_file_name("rand", 300, 1500) == "bench_rand_4k_mtu1500_300mb.pcap"
    assert bench_file_name("small", 300, 9000) == "bench_small_512b_mtu9000_300mb.pcap"


def test_cli_offers_the_small_kind() -> None:
    result = CliRunner().invoke(lab, ["bench", "--help"])
    assert result.exit_code == 0
    assert "small" in result.output
    bad = CliRunner().invoke(lab, ["bench", "--kind", "tiny"])
    assert bad.exit_code == 2
