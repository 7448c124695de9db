"""Safe zip extraction: nothing escapes the target, nothing is a link, nothing unpacks absurdly.

Every member is judged from the central directory before a byte is written (names, types,
duplicates, declared sizes and ratios); the actual bytes are counted again while extracting,
because headers can lie. Output goes to a temp directory beside `dest`, renamed into place
only when the whole archive extracted cleanly.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from .. import cache, constants
from ..errors import FormatError, UnsafeArchiveError

# Tiny members (configs, vocab files) compress far beyond any bomb ratio without harm; the
# ratio test applies only above this size, so a bomb still cannot grow past it per member.
RATIO_FLOOR_BYTES = 1 << 20
_COPY_CHUNK = 1 << 20
_UNIX = 3  # ZipInfo.create_system value of archives made on Unix
_DRIVE = re.compile(r"^[A-Za-z]:")


def _unsafe(zip_path: Path, member: str, reason: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{zip_path.name}: refusing member {member!r}: {reason}")


def _member_parts(info: zipfile.ZipInfo) -> tuple[str, ...] | str:
    """The member's relative path parts, or why its name is unsafe."""
    name = info.filename
    if not name or "\x00" in name:
        return "empty name or NUL byte in name"
    if "\\" in name:
        return "backslash in name (ambiguous path separator)"
    if name.startswith("/"):
        return "absolute path"
    if _DRIVE.match(name):
        return "drive letter in path"
    parts = tuple(p for p in PurePosixPath(name).parts if p != ".")
    if ".." in parts:
        return "'..' path component escapes the target directory"
    if not parts:
        return "name resolves to the target directory itself"
    return parts


def _member_kind(info: zipfile.ZipInfo) -> str:
    """'file', 'dir' or a description of the non-regular entry."""
    mode = info.external_attr >> 16 if info.create_system == _UNIX else 0
    fmt = stat.S_IFMT(mode)
    if fmt == stat.S_IFLNK:
        return "symbolic link"
    if fmt not in (0, stat.S_IFREG, stat.S_IFDIR):
        return f"non-regular entry (mode {oct(mode)})"
    if (fmt == stat.S_IFDIR) != info.is_dir():
        return "entry type and name disagree (directory without trailing slash or vice versa)"
    return "dir" if info.is_dir() else "file"


def check_members(zip_path: Path, infos: Sequence[zipfile.ZipInfo]) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """Judge every member from its declared metadata; returns (info, parts) or raises UnsafeArchiveError."""
    planned: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    seen: dict[str, str] = {}
    for info in infos:
        parts = _member_parts(info)
        if isinstance(parts, str):
            raise _unsafe(zip_path, info.filename, parts)
        kind = _member_kind(info)
        if kind not in ("file", "dir"):
            raise _unsafe(zip_path, info.filename, kind)
        if info.flag_bits & 0x1:
            raise _unsafe(zip_path, info.filename, "encrypted member")
        key = "/".join(parts).casefold()  # case-insensitive file systems would merge these
        if key in seen and not (kind == "dir" and seen[key] == "dir"):
            raise _unsafe(zip_path, info.filename, "duplicate name in archive")
        seen[key] = kind
        planned.append((info, parts))
    files = {tuple(p.casefold() for p in parts) for info, parts in planned if not info.is_dir()}
    for info, parts in planned:
        folded = tuple(p.casefold() for p in parts)
        if any(folded[:i] in files for i in range(1, len(folded))):
            raise _unsafe(zip_path, info.filename, "a file in the archive has the name of its parent directory")
    total = 0
    for info, _ in planned:
        total += info.file_size
        if total > constants.MAX_UNPACKED_BYTES:
            raise _unsafe(
                zip_path,
                info.filename,
                f"declared unpacked size exceeds {constants.MAX_UNPACKED_BYTES} bytes (zip bomb?)",
            )
    for info, _ in planned:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR_BYTES and ratio > constants.MAX_COMPRESSION_RATIO:
            raise _unsafe(
                zip_path,
                info.filename,
                f"compression ratio {ratio:.0f} exceeds {constants.MAX_COMPRESSION_RATIO:.0f} (zip bomb?)",
            )
    return planned


def _copy_member(zf: zipfile.ZipFile, zip_path: Path, info: zipfile.ZipInfo, target: Path, budget: int) -> int:
    """Copy one member, counting real bytes against its declared size and the archive budget."""
    written = 0
    with zf.open(info) as src, open(target, "xb") as dst:
        while block := src.read(_COPY_CHUNK):
            written += len(block)
            if written > info.file_size:
                raise _unsafe(zip_path, info.filename, "member holds more data than its header declares")
            if written > budget:
                raise _unsafe(
                    zip_path, info.filename, f"unpacked size exceeds {constants.MAX_UNPACKED_BYTES} bytes (zip bomb?)"
                )
            dst.write(block)
    if written != info.file_size:
        raise _unsafe(zip_path, info.filename, f"member holds {written} bytes, header declares {info.file_size}")
    return written


def safe_extract(zip_path: Path, dest: Path) -> Path:
    """Extract `zip_path` into `dest` (replacing it atomically) after refusing anything unsafe."""
    zip_path, dest = Path(zip_path), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.temp_sibling(dest, ".extract")
    try:
        with zipfile.ZipFile(zip_path) as zf:
            planned = check_members(zip_path, zf.infolist())
            tmp.mkdir()
            budget = constants.MAX_UNPACKED_BYTES
            for info, parts in planned:
                target = tmp.joinpath(*parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    budget -= _copy_member(zf, zip_path, info, target, budget)
                except zipfile.BadZipFile as exc:
                    raise _unsafe(zip_path, info.filename, f"data does not match its header ({exc})") from exc
        cache.replace_dir(tmp, dest)
    except (zipfile.BadZipFile, EOFError) as exc:
        what = "not a readable zip archive"
        if _starts_like_zip(zip_path):
            what = "corrupt zip archive, truncated or damaged"
        raise FormatError(f"{zip_path}: {what} ({exc})") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def zip_problem(path: Path) -> str | None:
    """Why a file that starts like a zip (checkpoint zips, torch .ckpt) cannot be read as one; None if it
    can, or if it is no zip at all. A truncated download has lost its central directory at the end."""
    if not _starts_like_zip(path):
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            zf.infolist()
    except (zipfile.BadZipFile, EOFError) as exc:
        return str(exc) or type(exc).__name__
    except OSError:
        return None  # not a readable file: the caller's own checks say what is wrong
    return None


def _starts_like_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError:
        return False
