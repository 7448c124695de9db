"""JSON Lines and parquet records with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import extras
from ..errors import FormatError


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """One JSON object per non-blank line."""
    try:
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise FormatError(f"{path}:{number}: not JSON ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise FormatError(f"{path}:{number}: expected a JSON object")
                yield record
    except FileNotFoundError:
        raise FormatError(f"{path}: file not found") from None


def read_records(path: Path) -> list[dict[str, Any]]:
    """Rows of a .jsonl or .parquet file as plain Python values (lists, not numpy arrays)."""
    if path.suffix != ".parquet":
        return list(read_jsonl(path))
    import pandas as pd

    extras.require("pyarrow", f"reading {path.name} (parquet)")
    frame = pd.read_parquet(path)
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def require(record: dict[str, Any], field: str, where: str) -> Any:
    if field not in record:
        raise FormatError(f"{where}: missing field {field!r}")
    return record[field]
