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


def test_hash_tree_takes_a_written_hash_only_while_it_holds(tmp_path):
    (tmp_path / "w").write_bytes(b"weights")
    claimed = cache.FileHash.written(tmp_path / "w", "f" * 64)  # what a writer said it wrote
    assert cache.hash_tree(tmp_path, known={"w": claimed})["w"]["sha256"] == "f" * 64
    (tmp_path / "w").write_bytes(b"changed")  # same size, rewritten after the writer closed it
    os.utime(tmp_path / "w", ns=(claimed.mtime_ns + 1, claimed.mtime_ns + 1))
    assert cache.hash_tree(tmp_path, known={"w": claimed})["w"]["sha256"] == cache.sha256_file(tmp_path / "w")


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


def test_replace_dir_never_leaves_readers_with_nothing(tmp_path):
    """A reader polling the target while it is replaced over and over always finds a complete directory."""
    import threading

    target = tmp_path / "model"
    target.mkdir()
    (target / "x").write_text("0")
    missing, stop = [], threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                (target / "x").read_text()
            except FileNotFoundError:
                missing.append(1)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(300):
            tmp = cache.temp_sibling(target, ".partial")
            tmp.mkdir()
            (tmp / "x").write_text(str(i + 1))
            cache.replace_dir(tmp, target)
    finally:
        stop.set()
        thread.join()
    assert missing == [] and (target / "x").read_text() == "300"
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_corrupt_receipts_are_ignored_and_corrupt_pins_are_an_error(tmp_path):
    import pytest

    from zoo.errors import FormatError

    cache.paths("m", tmp_path).receipt.parent.mkdir(parents=True)
    cache.paths("m", tmp_path).receipt.write_text("{not json")
    assert cache.read_receipt("m", tmp_path) is None
    cache.pins_file(tmp_path).write_text("[1, 2")
    with pytest.raises(FormatError, match="corrupt pins file"):
        cache.read_pin("k", tmp_path)
    with pytest.raises(FormatError, match="corrupt pins file"):
        cache.write_pin("k", {"sha256": "0"}, tmp_path)


def test_locks_can_be_probed_without_waiting(tmp_path):
    lock = cache.paths("m", tmp_path).lock_file
    assert not cache.lock_held(lock) and not lock.exists()  # probing creates no lock file
    with cache.locked("m", tmp_path):
        assert cache.lock_held(lock)
        with cache.try_locked(lock) as taken:
            assert taken is False
    with cache.try_locked(lock) as taken:
        assert taken is True
    assert not cache.lock_held(lock)


def test_check_output_dir_refuses_what_cannot_be_written(tmp_path):
    import pytest

    from zoo.errors import OutputError

    a_file = tmp_path / "f"
    a_file.write_text("x")
    for bad in (a_file, a_file / "below", "/proc/zoo-out"):
        with pytest.raises(OutputError) as info:
            cache.check_output_dir(bad)
        assert info.value.exit_code == 2
    cache.check_output_dir(tmp_path / "new" / "deeper")  # missing parents are fine
    assert sorted(os.listdir(tmp_path)) == ["f"]  # the probe leaves nothing behind
