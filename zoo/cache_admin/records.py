"""What `zoo cache ls/rm/prune/verify` report: plain records, each with the `to_dict` the CLI's --json prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


@dataclass
class Part:
    """One kind of thing a model holds: its paths and the bytes they add to the disk."""

    part: str
    paths: list[Path] = field(default_factory=list)
    size_bytes: int = 0  # bytes of inodes not already counted for an earlier part
    linked_bytes: int = 0  # bytes of hard links to inodes counted for an earlier part
    files: int = 0
    last_modified: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "paths": [str(p) for p in self.paths],
            "size_bytes": self.size_bytes,
            "linked_bytes": self.linked_bytes,
            "files": self.files,
            "last_modified": _iso(self.last_modified),
        }


@dataclass
class CacheEntry:
    """A model with something on disk (`registered` False: an id the registry does not list)."""

    id: str
    registered: bool
    kind: str | None
    state: dict[str, bool]
    parts: list[Part]

    @property
    def size_bytes(self) -> int:
        return sum(p.size_bytes for p in self.parts)

    @property
    def last_modified(self) -> float | None:
        return max((p.last_modified for p in self.parts if p.last_modified is not None), default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "registered": self.registered,
            "kind": self.kind,
            "state": self.state,
            "size_bytes": self.size_bytes,
            "last_modified": _iso(self.last_modified),
            "parts": [p.to_dict() for p in self.parts],
        }


@dataclass(frozen=True)
class Removal:
    """One thing `cache_remove` / `cache_prune` removed (or would remove, in a dry run)."""

    id: str  # "-" for files of the cache as a whole
    part: str
    path: Path
    size_bytes: int  # bytes freed on disk (an inode still linked elsewhere frees nothing)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "part": self.part,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "note": self.note,
        }


@dataclass(frozen=True)
class Problem:
    """A file that does not match its record (changed, missing, extra, unreadable), or a corrupt record."""

    part: str
    path: Path
    kind: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "path": str(self.path), "kind": self.kind, "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.part}: {self.kind}: {self.path}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class CacheCheck:
    """`cache_verify` of one model: files checked per part, and every problem found."""

    id: str
    checked: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "ok": self.ok, "checked": self.checked, "problems": [p.to_dict() for p in self.problems]}


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds") if ts is not None else None
