"""``iscsi-analyzer batch``: many captures on Dask distributed (click only; the work is in ``analyzer.batch``).

The lead registers it with ``cli.add_command(batch)``.
"""

from __future__ import annotations

import sys

import click


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory: a Parquet dataset per table, report.html, batch.json. The workers write "
                   "the dataset: with --scheduler it must be shared storage, at the same path on every machine.")
@click.option("--scheduler", metavar="ADDRESS", help="Use an existing Dask cluster (e.g. tcp://host:8786).")
@click.option("--workers", type=click.IntRange(min=0), metavar="N",
              help="Worker processes of the local Dask cluster [default: one per CPU; 0 = no cluster].")
@click.option("--port", "ports", type=click.IntRange(1, 65535), multiple=True, metavar="PORT",
              help="Also treat PORT as iSCSI (repeatable; 3260 and 860 always are).")
@click.option("--warmup-mb", type=click.FloatRange(min=0), default=4.0, show_default=True,
              help="Tail of the previous file each task decodes first to sync TCP and framing state.")
@click.option("--chain-by", type=click.Choice(["tcp", "name", "none"]), default="tcp", show_default=True,
              help="Which files are pieces of one capture: tcp = ring-buffer names (dumpcap -b, editcap -c) or a "
                   "file that provably continues the previous one's TCP streams; name = ring-buffer names only; "
                   "none = every file is its own chain.")
@click.option("--max-gap", "max_gap_s", type=click.FloatRange(min=0), default=300.0, show_default=True,
              help="Largest silence (s) between two files chained by TCP continuation.")
@click.option("--no-html", is_flag=True, help="Do not write report.html.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def batch(paths: tuple[str, ...], out_dir: str, scheduler: str | None, workers: int | None, ports: tuple[int, ...],
          warmup_mb: float, chain_by: str, max_gap_s: float, no_html: bool, quiet: bool) -> None:
    """Analyse many captures (files, directories, globs) on Dask distributed.

    Ring-buffer files (dumpcap's PREFIX_NNNNN_YYYYMMDDhhmmss.pcapng, editcap -c) and files whose
    TCP streams continue the previous file's are stitched into chains (--chain-by): each chain
    gives the same result as its files concatenated; any other file is its own chain.
    Writes OUT/<table>/chain=<id>/part-*.parquet for pdus, tasks,
    sessions, connections, transitions, anomalies and keys, plus OUT/report.html.
    """
    from analyzer.batch.runner import MissingExtra, NoInput, analyze_many
    from analyzer.pipeline import Options

    if scheduler is not None and workers is not None:
        raise click.UsageError("--scheduler and --workers exclude each other")

    def progress(msg: str) -> None:
        if not quiet:
            click.echo(msg, err=True)

    options = Options()
    if ports:
        from analyzer.tcp.reassembly import DEFAULT_PORTS

        options.ports = frozenset(DEFAULT_PORTS) | frozenset(ports)
    try:
        result = analyze_many(paths, out_dir, scheduler=scheduler, workers=workers, progress=progress,
                              html=not no_html, warmup_bytes=int(warmup_mb * 1024 * 1024), max_gap_s=max_gap_s,
                              chain_by=chain_by, options=options)
    except (NoInput, MissingExtra) as exc:
        click.echo(f"iscsi-analyzer batch: {exc}", err=True)
        sys.exit(2)
    rerun = sum(c.rerun_units for c in result.chains)
    units = sum(c.units for c in result.chains)
    stitched = sum(len(c.files) - c.direct_files for c in result.chains)
    click.echo(
        f"{sum(len(c.files) for c in result.chains)} file(s) in {len(result.chains)} chain(s), "
        f"{sum(c.frames for c in result.chains):,} frames, {sum(c.sessions for c in result.chains)} session(s), "
        f"{sum(c.anomalies for c in result.chains)} anomalies in {result.seconds:.1f} s "
        f"({result.workers} workers; {stitched} file(s) decoded ahead and stitched, {rerun}/{units} of their "
        f"streams re-run)"
        + (f"; {len(result.failed)} file(s) skipped" if result.failed else "")
    )
    click.echo(f"dataset: {result.out_dir}" + (f"  report: {result.html}" if result.html else ""))
