"""`zoo cache verify`: re-hash, offline, what each model holds against the records made when it was written."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .. import cache, constants, manifest
from ..errors import BadResponseError
from ..registry import Entry
from ..sources import hf
from .inventory import PARTIAL_SUFFIXES, children, files_under, is_temp, select
from .records import CacheCheck, Problem


def cache_verify(models: Iterable[str] = ()) -> list[CacheCheck]:
    """Re-hash, offline, archives and raw files against their pull receipts, converted directories
    against their manifests, and Hub snapshots against the oids recorded at pull.

    Without `models`: every model with something to check (lock files alone are not listed).
    """
    names = list(models)
    checks = [_verify_model(model_id, entry) for model_id, entry in select(names)]
    return checks if names else [c for c in checks if c.checked or c.problems]


def _verify_model(model_id: str, entry: Entry | None) -> CacheCheck:
    p = cache.paths(model_id)
    result = CacheCheck(model_id)
    receipt, problem = cache.load_json(p.receipt)
    if problem is not None or (receipt is not None and not isinstance(receipt, dict)):
        result.problems.append(Problem("receipt", p.receipt, "corrupt", problem or "not a JSON object"))
        receipt = None
    if receipt is not None and receipt.get("kind") == "hf":
        _verify_snapshot(result, p.receipt, receipt)
    elif receipt is not None:
        _verify_raw(result, model_id, receipt)
    for path in children(p.download_dir):
        if not path.name.endswith((*PARTIAL_SUFFIXES, ".json")) and not is_temp(path) and path.is_file():
            _verify_archive(result, path, receipt)
    if p.converted_dir.exists():
        _verify_converted(result, p.converted_dir)
    return result


def _verify_raw(result: CacheCheck, model_id: str, receipt: dict[str, Any]) -> None:
    files = receipt.get("files")
    current = cache.receipt_raw_dir(model_id, receipt)
    if not isinstance(files, dict) or not all(isinstance(i, dict) for i in files.values()):
        result.problems.append(Problem("receipt", cache.paths(model_id).receipt, "corrupt", "no usable 'files' table"))
    elif current is None:
        result.problems.append(Problem("raw", Path(str(receipt.get("path"))), "missing", "the extracted directory"))
    else:
        result.checked["raw"] = len(files)
        result.problems += _compare("raw", current, {rel: info.get("sha256") for rel, info in files.items()})


def _verify_archive(result: CacheCheck, path: Path, receipt: dict[str, Any] | None) -> None:
    record_path = path.with_name(path.name + ".json")
    record, problem = cache.load_json(record_path)
    if problem is not None or not isinstance(record, dict):
        why = problem or ("missing" if record is None else "not a JSON object")
        result.problems.append(Problem("archive", record_path, "corrupt", f"archive record: {why}"))
        return
    result.checked["archive"] = result.checked.get("archive", 0) + 1
    actual = _sha256(path)
    expected = [("its record", record.get("sha256"))]
    if receipt is not None and receipt.get("archive") == str(path):
        expected.append(("the receipt", receipt.get("sha256")))
    if actual is None:
        result.problems.append(Problem("archive", path, "unreadable"))
        return
    for origin, sha in expected:
        if actual != sha:
            result.problems.append(Problem("archive", path, "changed", f"sha256 {actual}, {origin} says {sha}"))
            return


def _verify_snapshot(result: CacheCheck, receipt_path: Path, receipt: dict[str, Any]) -> None:
    files = receipt.get("files")
    try:
        snapshot = hf.snapshot_dir(str(receipt.get("repo")), str(receipt.get("commit")))
    except BadResponseError as exc:  # a damaged receipt: its repo or commit cannot name a path
        result.problems.append(Problem("receipt", receipt_path, "corrupt", str(exc)))
        return
    if not isinstance(files, dict) or any(hf.path_problem(r) or not isinstance(i, dict) for r, i in files.items()):
        result.problems.append(Problem("receipt", receipt_path, "corrupt", "no usable 'files' table"))
        return
    if not snapshot.is_dir():
        result.problems.append(Problem("snapshot", snapshot, "missing", "no longer in the HF cache"))
        return
    result.checked["snapshot"] = len(files)
    present = set(_relative_files(snapshot))
    result.problems += [Problem("snapshot", snapshot / r, "missing") for r in sorted(set(files) - present)]
    result.problems += [
        Problem("snapshot", snapshot / r, "extra", "not in the receipt") for r in sorted(present - set(files))
    ]
    for rel in sorted(present & set(files)):
        info = files[rel]
        lfs = bool(info.get("lfs"))
        try:
            sha256, git_sha1, _ = hf.hash_file(snapshot / rel, git=not lfs)
        except OSError as exc:
            result.problems.append(Problem("snapshot", snapshot / rel, "unreadable", exc.strerror or str(exc)))
            continue
        actual, algorithm = (sha256, "sha256") if lfs else (git_sha1, "git-sha1")
        if actual != info.get("oid") or sha256 != info.get("sha256"):
            detail = f"{algorithm} {actual}, the repo's oid at pull was {info.get('oid')}"
            result.problems.append(Problem("snapshot", snapshot / rel, "changed", detail))


def _verify_converted(result: CacheCheck, directory: Path) -> None:
    path = directory / constants.MANIFEST_FILENAME
    data, problem = cache.load_json(path)
    files = data.get("files") if isinstance(data, dict) else None
    if problem is not None or not isinstance(files, dict) or not all(isinstance(i, dict) for i in files.values()):
        why = problem or ("missing" if data is None else "no usable 'files' table")
        result.problems.append(Problem("converted", path, "corrupt", f"manifest: {why}"))
        return
    result.checked["converted"] = len(files)
    expected = {rel: info.get("sha256") for rel, info in files.items()}
    result.problems += _compare("converted", directory, expected, exclude=manifest.UNLISTED)


def _compare(part: str, root: Path, expected: dict[str, Any], exclude: frozenset[str] = frozenset()) -> list[Problem]:
    present = set(_relative_files(root)) - exclude
    problems = [Problem(part, root / rel, "missing") for rel in sorted(set(expected) - present)]
    problems += [Problem(part, root / rel, "extra", "not in the record") for rel in sorted(present - set(expected))]
    for rel in sorted(present & set(expected)):
        actual = _sha256(root / rel)
        if actual is None:
            problems.append(Problem(part, root / rel, "unreadable"))
        elif actual != expected[rel]:
            problems.append(Problem(part, root / rel, "changed", f"sha256 {actual}, recorded {expected[rel]}"))
    return problems


def _relative_files(root: Path) -> list[str]:
    """POSIX paths, relative to `root`, of what reads as a file there (a link to a missing blob does not)."""
    return [file.relative_to(root).as_posix() for file in files_under(root) if file.is_file()]


def _sha256(path: Path) -> str | None:
    try:
        return cache.sha256_file(path)
    except OSError:
        return None
