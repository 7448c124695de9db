"""Ship a family's model code beside a converted model, so stock transformers loads it without zoo.

The files are the model package itself (zoo/models/<family>/*.py but `__init__.py`): one source
of truth, imported by zoo and by `AutoModel.from_pretrained(dir, trust_remote_code=True)` alike.
config.json gets the family's `auto_map` for the model's task; each tokenizer subfolder's
tokenizer_config.json gets an `AutoTokenizer` entry. Files that may be hard links into a pulled
snapshot are replaced, never written through.
"""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path
from typing import Any

from . import cache
from .errors import FormatError
from .families import Family

CONFIG_NAME = "config.json"
TOKENIZER_CONFIG_NAME = "tokenizer_config.json"


def package_files(family: Family) -> list[Path]:
    """The model package's modules, as they ship (its __init__ only re-exports for zoo)."""
    if family.model_package is None:
        return []
    package = importlib.import_module(family.model_package)
    root = Path(package.__file__ or "").parent
    return sorted(p for p in root.glob("*.py") if p.name != "__init__.py")


def install(directory: Path, family: Family, task: str) -> list[str]:
    """Copy the code into `directory` and point the Auto classes at it; returns the files written."""
    spec = family.remote_code
    if spec is None:
        return []
    if task not in spec.auto_map:
        raise FormatError(f"{family.name} has no remote-code classes for task {task!r}")
    written = []
    for source in package_files(family):
        target = directory / source.name
        target.unlink(missing_ok=True)
        shutil.copyfile(source, target)
        written.append(source.name)
    _update_json(directory / CONFIG_NAME, {"auto_map": dict(spec.auto_map[task])})
    written.append(CONFIG_NAME)
    for subfolder, tokenizer in spec.tokenizers.items():
        _update_json(directory / subfolder / TOKENIZER_CONFIG_NAME, {"auto_map": {"AutoTokenizer": [tokenizer, None]}})
        written.append(f"{subfolder}/{TOKENIZER_CONFIG_NAME}")
    return written


def _update_json(path: Path, fields: dict[str, Any]) -> None:
    """Set top-level fields of a JSON file, replacing the file (it may be a link into the HF cache)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError as exc:
        raise FormatError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise FormatError(f"{path}: expected a JSON object")
    path.unlink(missing_ok=True)
    cache.atomic_write_bytes(path, (json.dumps({**data, **fields}, indent=2, sort_keys=True) + "\n").encode())
