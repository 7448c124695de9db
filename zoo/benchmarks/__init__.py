"""Benchmarks: recompute each family's published metrics from local data and judge them."""

from .report import render
from .runner import BenchOptions, BenchResult, Section, run

__all__ = ["BenchOptions", "BenchResult", "Section", "render", "run"]
