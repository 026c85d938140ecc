"""Batch front end: many captures (ring-buffer chains) analysed on Dask."""

from analyzer.batch.runner import MissingExtra, NoInput, analyze_many, require_dask

__all__ = ["MissingExtra", "NoInput", "analyze_many", "require_dask"]
