"""verify: the checks that prove a converted model behaves like its source."""

from .report import Check, Report

__all__ = ["Check", "Report"]
