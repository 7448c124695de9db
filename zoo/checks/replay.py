"""Find, on this machine, the inputs a conversion read, so checks can replay it from the source.

The manifest names its inputs by name, hash and `ref` (zoo.provenance); this machine remembers
where they were. A registry model's raw source is also found through the cache. When an input is
gone (a downloaded or moved copy), the replay checks say so and do not run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import provenance, sources
from ..errors import ZooError
from ..registry import load_registry


def source_path(manifest: Mapping[str, Any]) -> Path | None:
    """The source artifact of a conversion, if this machine has it."""
    found = provenance.locate(manifest.get("source"))
    if found is not None or not manifest.get("model_id"):
        return found
    try:
        return sources.cached(load_registry().get(manifest["model_id"]))
    except ZooError:
        return None


def inputs(manifest: Mapping[str, Any]) -> tuple[Path, dict[str, Any]] | str:
    """(source, options with local paths) to replay the conversion, or why it cannot be replayed here."""
    src = source_path(manifest)
    if src is None:
        return f"the source {provenance.describe(manifest.get('source'))} is not on this machine"
    options, missing = provenance.local_options(manifest.get("options", {}))
    if missing:
        return f"the conversion input(s) {', '.join(missing)} are not on this machine"
    return src, options
