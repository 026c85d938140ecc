"""Batch front end: many captures (ring-buffer chains) analysed on Dask."""

from analyzer.batch.runner import NoInput, analyze_many

__all__ = ["NoInput", "analyze_many"]
