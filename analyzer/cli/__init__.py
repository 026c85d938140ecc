"""Command-line front end (click only): parse arguments, call the pipeline or the API, render rows.

``app`` holds the click group and the analysis commands; ``live`` and ``batch`` the commands of
those front ends; ``limits`` the resource-limit flags shared by every capture command.
"""

from analyzer.cli.app import cli, main

__all__ = ["cli", "main"]
