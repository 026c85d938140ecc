"""Command line interface (click only: parse arguments, call the pipeline, print)."""

from __future__ import annotations

import click

from analyzer import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="iscsi-analyzer")
def main() -> None:
    """Wireshark-style iSCSI analyzer: what happened to my sessions, and why?"""


def _register_lab() -> None:
    from analyzer.lab.cli import lab

    main.add_command(lab)


try:
    _register_lab()
except ImportError:  # the lab package is optional at import time
    pass


if __name__ == "__main__":
    main()
