"""Benchmarks: recompute each family's published metrics from local data and judge them."""

from .report import render
from .runner import BenchOptions, BenchResult, Section, run
from .store import Shard, merge

__all__ = ["BenchOptions", "BenchResult", "Section", "Shard", "merge", "render", "run"]
