"""safe_extract refuses anything that escapes the target, is a link, or unpacks absurdly, and
never leaves a half-extracted directory behind."""

from __future__ import annotations

import os
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from zoo import constants
from zoo.errors import FormatError, UnsafeArchiveError
from zoo.sources.extract import RATIO_FLOOR_BYTES, safe_extract


def make_zip(
    path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]], compression: int = zipfile.ZIP_DEFLATED
) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def special(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


def patch_declared_sizes(path: Path, size: int) -> None:
    """Overwrite every central-directory 'uncompressed size' field (headers that lie)."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at != -1:
        data[at + 24 : at + 28] = struct.pack("<I", size)
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_extracts_nested_members_and_replaces_old_dest(tmp_path: Path) -> None:
    zpath = make_zip(
        tmp_path / "ok.zip",
        [
            ("model/", b""),
            ("model/model.ckpt.index", b"idx"),
            ("model/sub/vocab.txt", b"a\nb\n"),
            ("./top.txt", b"top"),
            (special("model/exec.sh", stat.S_IFREG | 0o755), b"#!/bin/sh\n"),
        ],
    )
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "stale.txt").write_text("old")
    assert safe_extract(zpath, dest) == dest
    found = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert found == ["model/exec.sh", "model/model.ckpt.index", "model/sub/vocab.txt", "top.txt"]
    assert (dest / "model/sub/vocab.txt").read_bytes() == b"a\nb\n"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("/etc/x", "absolute path"),
        ("C:/x", "drive letter"),
        ("a\\..\\x", "backslash"),
    ],
)
def test_refuses_names_that_escape(tmp_path: Path, name: str, reason: str) -> None:
    zpath = make_zip(tmp_path / "evil.zip", [("fine.txt", b"ok"), (name, b"pwned")])
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError) as info:
        safe_extract(zpath, dest)
    assert info.value.exit_code == 2
    assert repr(name) in str(info.value) and reason in str(info.value)
    assert not dest.exists() and leftovers(tmp_path) == []
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        (stat.S_IFLNK | 0o777, "symbolic link"),
        (stat.S_IFIFO | 0o644, "non-regular"),
        (stat.S_IFCHR | 0o644, "non-regular"),
    ],
)
def test_refuses_links_and_special_files(tmp_path: Path, mode: int, reason: str) -> None:
    zpath = make_zip(tmp_path / "link.zip", [(special("model/link", mode), b"/etc/passwd")])
    with pytest.raises(UnsafeArchiveError, match=reason):
        safe_extract(zpath, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_refuses_duplicates_and_file_dir_clashes(tmp_path: Path) -> None:
    with pytest.warns(UserWarning):  # zipfile itself warns about the duplicate
        dup = make_zip(tmp_path / "dup.zip", [("a.txt", b"1"), ("a.txt", b"2")])
    with pytest.raises(UnsafeArchiveError, match="duplicate"):
        safe_extract(dup, tmp_path / "out")
    case = make_zip(tmp_path / "case.zip", [("Vocab.txt", b"1"), ("vocab.txt", b"2")])
    with pytest.raises(UnsafeArchiveError, match="duplicate"):
        safe_extract(case, tmp_path / "out")
    clash = make_zip(tmp_path / "clash.zip", [("a", b"file"), ("a/b", b"child")])
    with pytest.raises(UnsafeArchiveError, match="parent directory"):
        safe_extract(clash, tmp_path / "out")


def test_refuses_high_compression_ratio(tmp_path: Path) -> None:
    bomb = make_zip(tmp_path / "bomb.zip", [("zeros.bin", bytes(2 * RATIO_FLOOR_BYTES))])
    with pytest.raises(UnsafeArchiveError, match=r"'zeros.bin'.*compression ratio"):
        safe_extract(bomb, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_small_members_may_compress_well(tmp_path: Path) -> None:
    zpath = make_zip(tmp_path / "small.zip", [("zeros.bin", bytes(RATIO_FLOOR_BYTES // 2))])
    assert (safe_extract(zpath, tmp_path / "out") / "zeros.bin").stat().st_size == RATIO_FLOOR_BYTES // 2


def test_refuses_huge_declared_size(tmp_path: Path) -> None:
    zpath = make_zip(tmp_path / "huge.zip", [(f"part{i}.bin", b"x") for i in range(20)], zipfile.ZIP_STORED)
    patch_declared_sizes(zpath, 0xFFFF_FFF0)  # 20 x 4 GiB > MAX_UNPACKED_BYTES
    assert constants.MAX_UNPACKED_BYTES < 20 * 0xFFFF_FFF0
    with pytest.raises(UnsafeArchiveError, match="declared unpacked size exceeds"):
        safe_extract(zpath, tmp_path / "out")


def test_total_size_limit_is_read_at_call_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zpath = make_zip(tmp_path / "big.zip", [("a.bin", os.urandom(600)), ("b.bin", os.urandom(600))])
    monkeypatch.setattr(constants, "MAX_UNPACKED_BYTES", 1000)
    with pytest.raises(UnsafeArchiveError, match="'b.bin'.*exceeds 1000 bytes"):
        safe_extract(zpath, tmp_path / "out")


@pytest.mark.parametrize("declared", [100, 9000])  # the real member holds 5000 bytes
def test_refuses_member_whose_header_lies_about_its_size(tmp_path: Path, declared: int) -> None:
    zpath = make_zip(tmp_path / "liar.zip", [("w.bin", os.urandom(5000))])
    patch_declared_sizes(zpath, declared)
    with pytest.raises(UnsafeArchiveError, match="'w.bin'.*header"):
        safe_extract(zpath, tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_not_a_zip_is_a_format_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip archive")
    with pytest.raises(FormatError, match="not a readable zip"):
        safe_extract(junk, tmp_path / "out")
