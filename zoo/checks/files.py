"""The `files` check: every file in a directory still has the sha256 its manifest recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import cache
from ..manifest import UNLISTED
from .report import Check


def files(model_dir: Path, manifest: dict[str, Any], receipt: dict[str, Any] | None = None) -> Check:
    """Compare the directory with its manifest and, for registry models, the pulled source with its receipt."""
    problems = cache.compare_tree(model_dir, manifest["files"], exclude=UNLISTED)
    checked = len(manifest["files"])
    if receipt is not None:
        root = Path(receipt["path"])
        if root.is_dir():
            problems += [f"source {p}" for p in cache.compare_tree(root, receipt["files"])]
        else:
            problems.append(f"source directory missing: {root}")
        checked += len(receipt["files"])
    ok = not problems
    return Check(
        name="files",
        ok=ok,
        value=f"{checked - len(problems)}/{checked} files intact" if ok else f"{len(problems)} problem(s)",
        tolerance="sha256 equal",
        detail="; ".join(problems[:10]) + (f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""),
        data={"problems": problems},
    )
