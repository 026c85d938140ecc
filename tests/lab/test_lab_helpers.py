"""Unit tests for the lab helpers: no root, no network, no external tools."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from analyzer.lab import cli as lab_cli
from analyzer.lab import initiator as ini
from analyzer.lab import manifest, preflight
from analyzer.lab.capture import CaptureSpec, capture_argv, parse_capture_stats
from analyzer.lab.errors import LabError, LabSetupError
from analyzer.lab.libiscsi_io import parse_url
from analyzer.lab.netns import Namespace, unique_name
from analyzer.lab.scenarios import SCENARIOS, select
from analyzer.lab.target import parse_conn_show, tgtadm_argv
from analyzer.lab.verify import read_linktype

# ---------------------------------------------------------------------------------------- URLs and argv


@pytest.mark.parametrize(
    ("portal", "kw", "expected"),
    [
        (ini.Portal(), {}, "iscsi://127.0.0.1:3260/iqn.x:t/1"),
        (ini.Portal("::1"), {}, "iscsi://[::1]:3260/iqn.x:t/1"),
        (ini.Portal(), {"user": "u", "password": "p w"}, "iscsi://u%p w@127.0.0.1:3260/iqn.x:t/1"),
        (ini.Portal(), {"header_digest": "crc32c"}, "iscsi://127.0.0.1:3260/iqn.x:t/1?header_digest=crc32c"),
    ],
)
def test_lun_url(portal: ini.Portal, kw: dict[str, Any], expected: str) -> None:
    assert ini.lun_url(portal, "iqn.x:t", 1, **kw) == expected


def test_portal_ip_version() -> None:
    assert ini.Portal().ip_version == 4
    assert ini.Portal("::1").ip_version == 6


def test_perf_argv() -> None:
    argv = ini.perf_argv("URL", "iqn.i", blocks=1, max_requests=2, random=True, runtime_s=3, max_reconnects=0)
    assert argv == ["iscsi-perf", "-i", "iqn.i", "-b", "1", "-m", "2", "-r", "-t", "3", "-x", "0", "URL"]


def test_other_tool_argv() -> None:
    assert ini.iscsi_ls_argv("iscsi://h", "iqn.i") == ["iscsi-ls", "-i", "iqn.i", "-s", "iscsi://h"]
    assert ini.iscsi_inq_argv("U", "iqn.i", evpd=1, page=0x80) == ["iscsi-inq", "-i", "iqn.i", "-e", "1",
                                                                    "-c", "128", "U"]
    assert ini.readcapacity16_argv("U", "iqn.i") == ["iscsi-readcapacity16", "-i", "iqn.i", "U"]
    assert ini.test_cu_argv("U", "iSCSI", "iqn.i") == ["iscsi-test-cu", "-i", "iqn.i", "-d", "-v", "-t",
                                                       "iSCSI", "U"]
    io = ini.io_argv("U", "write", "iqn.i", lba=8, blocks=16, count=2)
    assert io[1:3] == ["-m", "analyzer.lab.libiscsi_io"]
    assert io[3:] == ["--initiator", "iqn.i", "U", "write", "--lba", "8", "--blocks", "16", "--count", "2"]


def test_tgtadm_argv_always_names_the_control_port() -> None:
    assert tgtadm_argv(4711, "--op", "show") == ["tgtadm", "-C", "4711", "--lld", "iscsi", "--op", "show"]


def test_namespace_exec_argv_and_unique_names() -> None:
    ns = Namespace("iscsilab-test")
    assert ns.exec_argv(["tgtd", "-f"]) == ["ip", "netns", "exec", "iscsilab-test", "tgtd", "-f"]
    a, b = unique_name(), unique_name()
    assert a != b and a.startswith("iscsilab-")


def test_namespace_delete_is_a_no_op_when_never_created() -> None:
    Namespace("iscsilab-never-created").delete()  # must not run `ip`


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (CaptureSpec(Path("/t/x.pcap")),
         ["tcpdump", "-i", "lo", "-s", "0", "-B", "32768", "-n", "-Z", "root", "-U", "--immediate-mode",
          "-w", "/t/x.pcap", "tcp port 3260"]),
        (CaptureSpec(Path("/t/x.pcap"), interface="any", linktype="LINUX_SLL2", packet_buffered=False),
         ["tcpdump", "-i", "any", "-s", "0", "-B", "32768", "-n", "-Z", "root", "-y", "LINUX_SLL2",
          "-w", "/t/x.pcap", "tcp port 3260"]),
        (CaptureSpec(Path("/t/x.pcapng"), tool="dumpcap"),
         ["dumpcap", "-q", "-i", "lo", "-s", "0", "-B", "32", "-f", "tcp port 3260", "-w", "/t/x.pcapng"]),
    ],
)
def test_capture_argv(spec: CaptureSpec, expected: list[str]) -> None:
    assert capture_argv(spec) == expected


def test_capture_argv_rejects_unknown_tool() -> None:
    with pytest.raises(ValueError):
        capture_argv(CaptureSpec(Path("x"), tool="wireshark"))


# ---------------------------------------------------------------------------------------- output parsers


def test_parse_tcpdump_stats() -> None:
    err = ("tcpdump: listening on lo, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n"
           "1204 packets captured\n2408 packets received by filter\n7 packets dropped by kernel\n")
    stats = parse_capture_stats("tcpdump", err)
    assert (stats.captured, stats.received, stats.dropped) == (1204, 2408, 7)


def test_parse_dumpcap_stats() -> None:
    err = ("Capturing on 'Loopback: lo'\nFile: x.pcapng\nPackets captured: 42\n"
           "Packets received/dropped on interface 'Loopback: lo': 42/3 (pcap:0/dumpcap:0/flushed:0/ps_ifdrop:0)\n")
    stats = parse_capture_stats("dumpcap", err)
    assert (stats.captured, stats.received, stats.dropped) == (42, 42, 3)


def test_parse_capture_stats_missing_lines() -> None:
    stats = parse_capture_stats("tcpdump", "tcpdump: killed\n")
    assert (stats.captured, stats.received, stats.dropped) == (None, None, None)


def test_parse_conn_show() -> None:
    text = ("Session: 15\n    Connection: 0\n        Initiator: iqn.a:b\n        IP Address: 127.0.0.1\n"
            "Session: 16\n    Connection: 1\n        Initiator: iqn.c:d\n        IP Address: ::1\n")
    conns = parse_conn_show(text)
    assert [(c.sid, c.cid, c.initiator, c.address) for c in conns] == [
        (15, 0, "iqn.a:b", "127.0.0.1"), (16, 1, "iqn.c:d", "::1")]
    assert parse_conn_show("") == []


def test_parse_test_cu_output_plain_and_interleaved() -> None:
    text = ("Suite: iSCSITMF\n  Test: AbortTaskSimpleAsync ...passed\n"
            "  Test: LUNResetSimpleAsync ...    WRITE10 queued: (CmdSN=0x1, ITT=0x2)\n    dispatched\nFAILED\n"
            "    1. test_async_lu_reset_simple.c:157  - CU_ASSERT_EQUAL(reconnect_succeeded,1)\n"
            "Suite: iSCSIdatasn\n  Test: iSCSIDataSnInvalid ...FAILED\n")
    results = ini.parse_test_cu_output(text)
    assert [(r.name, r.outcome) for r in results] == [
        ("iSCSITMF.AbortTaskSimpleAsync", "passed"),
        ("iSCSITMF.LUNResetSimpleAsync", "failed"),
        ("iSCSIdatasn.iSCSIDataSnInvalid", "failed"),
    ]


def test_parse_libiscsi_url() -> None:
    url = parse_url("iscsi://user%pw@[::1]:3260/iqn.2024-01.x%3Ay/2?header_digest=crc32c")
    assert (url.portal, url.target, url.lun, url.user, url.password, url.header_digest) == (
        "[::1]:3260", "iqn.2024-01.x:y", 2, "user", "pw", "crc32c")
    assert parse_url("iscsi://127.0.0.1/iqn.x/0").user is None
    for bad in ("http://x/iqn/1", "iscsi://127.0.0.1", "iscsi://h/iqn/x", "iscsi://h/iqn/1?header_digest=md5"):
        with pytest.raises(ValueError):
            parse_url(bad)


# ---------------------------------------------------------------------------------------- link types


def _pcap_header(linktype: int, endian: str = "<") -> bytes:
    return struct.pack(endian + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)


def _pcapng_header(linktype: int) -> bytes:
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = struct.pack("<IIHHI", 1, 20, linktype, 0, 0) + struct.pack("<I", 20)
    return shb + idb


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_pcap_header(1), ("pcap", 1)),
        (_pcap_header(113, ">"), ("pcap", 113)),
        (_pcapng_header(276), ("pcapng", 276)),
    ],
)
def test_read_linktype(tmp_path: Path, data: bytes, expected: tuple[str, int]) -> None:
    path = tmp_path / "c"
    path.write_bytes(data)
    assert read_linktype(path) == expected


def test_read_linktype_rejects_garbage(tmp_path: Path) -> None:
    path = tmp_path / "c"
    path.write_bytes(b"not a capture at all, no sir" * 2)
    with pytest.raises(LabError):
        read_linktype(path)


# ---------------------------------------------------------------------------------------- manifest


def _entry(**over: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "file": "x.pcap", "scenario": "x", "description": "d", "format": "pcap", "link_type": "EN10MB",
        "ip_version": 4, "mtu": 1500, "created": "2024-01-01T00:00:00+00:00", "size_bytes": 10, "frames": 1,
        "tools": {}, "target": {}, "initiator_name": "iqn.i", "capture": {}, "steps": [{"t": 0.0, "action": "a"}],
        "expect": {"sessions": [{"type": "Normal", "target": "iqn.t", "initiator": "iqn.i",
                                 "login_status": "0x0000", "ended_by": "logout", "tcp_stream": 0}],
                   "faults": [{"kind": "login_failed"}], "header_digest": "None", "data_digest": "None",
                   "min_pdus": 4, "pdu_counts": {}},
    }
    entry.update(over)
    return entry


def test_validate_entry_accepts_a_good_entry() -> None:
    assert manifest.validate_entry(_entry()) == []


@pytest.mark.parametrize(
    ("over", "fragment"),
    [
        ({"ip_version": 5}, "ip_version"),
        ({"created": "yesterday"}, "ISO"),
        ({"file": "../x.pcap"}, "bare"),
        ({"mtu": "1500"}, "'mtu'"),
        ({"steps": [{"action": "no time"}]}, "step"),
        ({"expect": {"sessions": [], "faults": [], "header_digest": "None", "data_digest": "None",
                     "pdu_counts": {}}}, "min_pdus"),
    ],
)
def test_validate_entry_finds_problems(over: dict[str, Any], fragment: str) -> None:
    problems = manifest.validate_entry(_entry(**over))
    assert any(fragment in p for p in problems), problems


def test_validate_entry_rejects_unknown_ended_by() -> None:
    entry = _entry()
    entry["expect"]["sessions"][0]["ended_by"] = "vanished"
    assert any("ended_by" in p for p in manifest.validate_entry(entry))


def test_merge_replaces_and_drops() -> None:
    old = [_entry(scenario="a", description="old"), _entry(scenario="b")]
    merged = manifest.merge(old, [_entry(scenario="a", description="new"), _entry(scenario="c")],
                            drop_scenarios=["b"])
    assert [(e["scenario"], e["description"]) for e in merged] == [("a", "new"), ("c", "d")]


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    assert manifest.load(path) == []
    manifest.save(path, [_entry()])
    assert manifest.load(path) == [_entry()]
    with pytest.raises(LabError):
        manifest.save(path, [_entry(ip_version=7)])
    assert json.loads(path.read_text()) == [_entry()]  # a bad entry never replaces a good manifest


# ---------------------------------------------------------------------------------------- scenarios


def test_at_least_twelve_scenarios_with_distinct_files() -> None:
    assert len(SCENARIOS) >= 12
    assert len({s.file_name for s in SCENARIOS.values()}) == len(SCENARIOS)
    assert SCENARIOS["pcapng_dumpcap"].file_name.endswith(".pcapng")
    assert SCENARIOS["clean_io"].file_name == "clean_io.pcap"


def test_select() -> None:
    assert [s.name for s in select(["clean_io"], False)] == ["clean_io"]
    assert len(select([], True)) == len(SCENARIOS)
    with pytest.raises(LabError, match="unknown scenario"):
        select(["nope"], False)


# ---------------------------------------------------------------------------------------- clear errors


def test_not_root_is_a_setup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    with pytest.raises(LabSetupError, match="root"):
        preflight.check_prerequisites()


def test_missing_tool_is_a_setup_error_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 0)
    monkeypatch.setattr(preflight.shutil, "which", lambda tool, path=None: None if tool == "tgtd" else "/bin/x")
    with pytest.raises(LabSetupError) as info:
        preflight.check_prerequisites()
    assert "tgtd" in str(info.value) and "apt-get install tgt" in str(info.value)
    assert "\n" not in str(info.value)


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip() and not line.startswith("lab: ")]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


@pytest.mark.parametrize("tool", ["tgtd", "tcpdump", "iscsi-perf", "ip"])
def test_cli_missing_tool_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tool: str) -> None:
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 0)
    monkeypatch.setattr(preflight.shutil, "which", lambda t, path=None: None if t == tool else "/bin/x")
    result = CliRunner().invoke(lab_cli.lab, ["run", "clean_io", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert tool in _one_error_line(result.output)
    assert not list(tmp_path.iterdir())


def test_cli_not_root_exits_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    for args in (["run", "--all", "--out", str(tmp_path)], ["bench", "--kind", "seq", "--out", str(tmp_path)]):
        result = CliRunner().invoke(lab_cli.lab, args)
        assert result.exit_code == 2
        assert "root" in _one_error_line(result.output)


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(lab_cli.lab, ["run", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--all" in _one_error_line(result.output)
    result = CliRunner().invoke(lab_cli.lab, ["run", "no_such_scenario", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown scenario" in _one_error_line(result.output)


def test_cli_list() -> None:
    result = CliRunner().invoke(lab_cli.lab, ["list"])
    assert result.exit_code == 0
    assert all(name in result.output for name in SCENARIOS)
