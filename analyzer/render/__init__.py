"""Pandas-free rendering shared by the CLI, live and the reports: rows, column lists, safe text."""
