"""`iscsi-analyzer lab ...`: produce real iSCSI captures (click only; the work is in runner/bench).

Exit status: 0 success, 1 a scenario failed, 2 the lab cannot run here (not root, a tool missing, bad
arguments) — always with one line on stderr, never a traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from analyzer.lab.errors import LabError, LabSetupError

#: Where `lab run` writes by default (the committed sample captures).
DEFAULT_OUT = Path("sample_pcaps")


def _fail(message: str, code: int) -> None:
    click.echo(f"iscsi-analyzer lab: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="Log lab steps (-v) or every command (-vv).")
def lab(verbose: int) -> None:
    """Real-traffic lab: tgtd + libiscsi in a private network namespace, captured with tcpdump/dumpcap."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)


@lab.command("list")
def list_cmd() -> None:
    """List the scenarios."""
    from analyzer.lab.scenarios import SCENARIOS

    width = max(len(n) for n in SCENARIOS)
    for name, scenario in SCENARIOS.items():
        click.echo(f"{name:<{width}}  {scenario.file_name:<24} {scenario.description}")


@lab.command("run")
@click.argument("scenario_names", metavar="SCENARIO...", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Run every scenario.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT,
              show_default=True, help="Directory for the captures and manifest.json.")
@click.option("--keep-workdir", is_flag=True, help="Keep each scenario's temp dir (tgtd/tool logs).")
def run_cmd(scenario_names: tuple[str, ...], all_: bool, out_dir: Path, keep_workdir: bool) -> None:
    """Run scenarios; write <out>/<scenario>.pcap[ng] and update <out>/manifest.json."""
    from analyzer.lab import manifest
    from analyzer.lab.runner import LabInterrupted, run_scenario
    from analyzer.lab.scenarios import select

    if not scenario_names and not all_:
        _fail("name at least one scenario or use --all (see: iscsi-analyzer lab list)", 2)
    try:
        chosen = select(list(scenario_names), all_)
    except LabError as exc:
        _fail(str(exc), 2)
    entries, failed = [], []
    interrupted = False
    for scenario in chosen:
        click.echo(f"lab: {scenario.name} ...", err=True)
        try:
            entry = run_scenario(scenario, out_dir, keep_workdir=keep_workdir)
        except LabSetupError as exc:
            _fail(str(exc), 2)
        except LabInterrupted as exc:
            click.echo(f"lab: {scenario.name} interrupted ({exc}); cleaned up", err=True)
            interrupted = True
            break
        except LabError as exc:
            click.echo(f"lab: {scenario.name} FAILED: {exc}", err=True)
            failed.append(scenario.name)
            continue
        entries.append(entry)
        click.echo(f"lab: {scenario.name} ok: {entry['file']} ({entry['size_bytes']} bytes, "
                   f"{entry['expect']['min_pdus']} iSCSI PDUs)", err=True)
    path = out_dir / manifest.MANIFEST_NAME
    try:
        # A failed scenario wrote nothing, so its previous capture and entry (if any) stay, still consistent.
        manifest.save(path, manifest.merge(manifest.load(path), entries))
    except (LabError, ValueError) as exc:
        _fail(f"cannot write {path}: {exc}", 1)
    click.echo(f"lab: {len(entries)} ok, {len(failed)} failed; manifest: {path}", err=True)
    if interrupted:
        sys.exit(130)
    if failed:
        sys.exit(1)


@lab.command("bench")
@click.option("--kind", type=click.Choice(["seq", "rand", "small"]), required=True,
              help="seq: 64 KiB sequential reads; rand: 4 KiB random reads; small: 512-byte sequential reads "
                   "(MTU 9000 unless --mtu).")
@click.option("--size-mb", type=click.IntRange(1, 100_000), default=300, show_default=True,
              help="Stop once the capture file reaches this many MiB.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("bench/out"),
              show_default=True)
@click.option("--mtu", type=click.IntRange(1280, 65535), default=None,
              help="Link MTU [default: 9000 for small, else 1500].")
@click.option("--rate", default=None, help="Optional tbf rate limit on lo (e.g. 2gbit) if tcpdump drops.")
def bench_cmd(kind: str, size_mb: int, out_dir: Path, mtu: int | None, rate: str | None) -> None:
    """Write one LARGE capture for benchmarking (git-ignored bench/out/)."""
    from analyzer.lab.bench import run_bench

    try:
        result = run_bench(kind, size_mb, out_dir, mtu=mtu, rate=rate)
    except LabSetupError as exc:
        _fail(str(exc), 2)
    except LabError as exc:
        _fail(str(exc), 1)
    click.echo(f"{out_dir / result.file}: {result.size_bytes} bytes in {result.seconds}s, "
               f"{result.packets_captured} packets, {result.dropped_by_kernel} dropped by kernel")
    if result.dropped_by_kernel:
        click.echo("warning: tcpdump dropped packets; rerun with --rate (e.g. --rate 2gbit)", err=True)
        sys.exit(1)
