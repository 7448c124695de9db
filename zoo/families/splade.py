"""SPLADE sparse encoders: sentence-transformers repos on the Hub, loaded as `SparseEncoder`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .contract import CardInfo, Family

if TYPE_CHECKING:
    from sentence_transformers import SparseEncoder


def _recognize(path: Path) -> bool:
    """A sentence-transformers folder (modules.json)."""
    return (path / "modules.json").is_file()


def load_sparse_encoder(path: str | Path, *, device: str | None = None) -> SparseEncoder:
    """A SparseEncoder from a local directory (v5 or v6 layout); never downloads anything."""
    from ..extras import require

    sentence_transformers = require("sentence_transformers", "loading a SPLADE model")

    from ..models.splade import SpladeFormatError, read_spec

    read_spec(path)  # a clear SpladeFormatError for directories that are not SPLADE encoders
    try:
        encoder: SparseEncoder = sentence_transformers.SparseEncoder(
            str(Path(path)), device=device, local_files_only=True
        )
        return encoder
    except (OSError, ValueError, KeyError) as exc:
        raise SpladeFormatError(f"{path}: sentence-transformers cannot load this SPLADE model: {exc}") from exc


FAMILY = Family(
    name="splade",
    description="SPLADE sparse encoders (sentence-transformers SparseEncoder)",
    tasks=("sparse-encoder",),
    formats=(),
    loader="zoo.families.splade:load_sparse_encoder",
    checks="zoo.checks.splade",
    bench="zoo.benchmarks.splade",
    card=CardInfo(
        library_name="sentence-transformers",
        pipeline_tags={"sparse-encoder": "feature-extraction"},
        tags=("sparse-encoder", "splade", "sparse"),
    ),
    recognize=_recognize,
    input_errors=("zoo.models.splade.spec:SpladeFormatError",),
)
