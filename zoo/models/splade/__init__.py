"""SPLADE sparse encoders (sentence-transformers SparseEncoder directories)."""

from .spec import SpladeFormatError, SpladeSpec, read_spec

__all__ = ["SpladeFormatError", "SpladeSpec", "read_spec"]
