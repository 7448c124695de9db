"""Cache primitives: atomic writes leave no partial file, tree hashes detect any change, pins are shared."""

from __future__ import annotations

import os

from zoo import cache


def test_atomic_write_leaves_only_the_final_file(tmp_path):
    target = tmp_path / "d" / "f.json"
    cache.atomic_write_json(target, {"a": 1})
    assert cache.read_json(target) == {"a": 1}
    assert os.listdir(target.parent) == ["f.json"]


def test_replace_dir_swaps_whole_directories(tmp_path):
    target = tmp_path / "model"
    for content in ("old", "new"):
        tmp = cache.temp_sibling(target, ".partial")
        tmp.mkdir()
        (tmp / "x").write_text(content)
        cache.replace_dir(tmp, target)
    assert (target / "x").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_compare_tree_reports_changed_missing_and_extra(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a").write_bytes(b"aaa")
    (tmp_path / "sub" / "b").write_bytes(b"bbb")
    recorded = cache.hash_tree(tmp_path)
    assert set(recorded) == {"a", "sub/b"}
    assert cache.compare_tree(tmp_path, recorded) == []
    (tmp_path / "a").write_bytes(b"aab")
    (tmp_path / "sub" / "b").unlink()
    (tmp_path / "c").write_bytes(b"c")
    problems = cache.compare_tree(tmp_path, recorded)
    assert any(p.startswith("changed: a") for p in problems)
    assert "missing: sub/b" in problems and "not in manifest: c" in problems


def test_pins_round_trip(tmp_path):
    assert cache.read_pin("k", tmp_path) is None
    cache.write_pin("k", {"sha256": "0" * 64}, tmp_path)
    cache.write_pin("j", {"sha256": "1" * 64}, tmp_path)
    assert cache.read_pin("k", tmp_path) == {"sha256": "0" * 64}
    assert cache.drop_pin("k", tmp_path) and cache.read_pin("k", tmp_path) is None
    assert cache.read_pin("j", tmp_path) == {"sha256": "1" * 64}


def test_paths_follow_zoo_home_at_call_time(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "h1"))
    first = cache.paths("m").converted_dir
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "h2"))
    assert first == tmp_path / "h1" / "converted" / "m"
    assert cache.paths("m").converted_dir == tmp_path / "h2" / "converted" / "m"
