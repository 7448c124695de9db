"""Shared fixtures. Each section is self-contained; add new sections rather than editing others."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts"

# huggingface_hub reads these at import time, so they are set before any test imports it.
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


# --- local HF Hub server (scripts/hub_server.py) -------------------------------------

HUB_REPO = "org/tiny-repo"
HUB_REPO_ID = "tiny-repo"


def make_hub_repo(repo_dir: Path, seed: int = 0) -> dict[str, bytes]:
    """A tiny repo with the layout of a real one: config, LFS weights, tokenizer files, nested folders."""
    import numpy as np
    from safetensors.numpy import save

    rng = np.random.default_rng(seed)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"tok{i}" for i in range(200 + seed)]
    files = {
        "config.json": json.dumps({"model_type": "distilbert", "dim": 8, "seed": seed}).encode(),
        "model.safetensors": save({"w": rng.standard_normal((16, 32)).astype(np.float32)}),
        "tokenizer.json": json.dumps({"model": {"vocab": {t: i for i, t in enumerate(vocab)}}}).encode(),
        "tokenizer_config.json": b'{"do_lower_case": true}',
        "vocab.txt": "\n".join(vocab).encode(),
        "1_Pooling/config.json": b'{"pooling_strategy": "max"}',
        "docs/deep/notes.txt": f"revision seed {seed}\n".encode(),
    }
    for rel, data in files.items():
        (repo_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo_dir / rel).write_bytes(data)
    return files


@pytest.fixture()
def hub_root(tmp_path: Path) -> Path:
    """ROOT/org/tiny-repo (branch main) plus branch "v1" with different content."""
    root = tmp_path / "hub"
    make_hub_repo(root / HUB_REPO)
    make_hub_repo(root / HUB_REPO / ".revisions" / "v1", seed=1)
    return root


@pytest.fixture()
def hub_server(hub_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A running HubServer over `hub_root`; HF_ENDPOINT points at it."""
    monkeypatch.syspath_prepend(str(SCRIPTS_DIR))
    from hub_server import HubServer

    with HubServer(hub_root) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


@pytest.fixture()
def hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Private ZOO_HOME and HF cache, online, and a user registry (ZOO_REGISTRY) with the `tiny-repo` entry."""
    env = {"ZOO_HOME": tmp_path / "zoo", "HF_HOME": tmp_path / "hf", "HF_HUB_CACHE": tmp_path / "hf" / "hub"}
    for name, path in env.items():
        monkeypatch.setenv(name, str(path))
    for name in ("ZOO_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    registry = tmp_path / "hub_registry.json"
    registry.write_text(json.dumps({"schema_version": 1, "models": [hub_registry_entry(HUB_REPO_ID, HUB_REPO)]}))
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    return {**env, "ZOO_REGISTRY": registry}


def hub_registry_entry(model_id: str, repo: str, revision: str | None = None) -> dict:
    """A registry.json model entry for an HF repo."""
    return {
        "id": model_id,
        "family": "splade",
        "task": "sparse-encoder",
        "size": "tiny",
        "attributes": {
            "hard_negatives": None,
            "down_projection_dim": None,
            "fine_tuned_on": None,
            "vision_encoder": None,
            "text_encoder": None,
            "params": None,
        },
        "source": {
            "kind": "hf",
            "url": None,
            "archive": None,
            "size": None,
            "sha256": None,
            "md5": None,
            "crc32c": None,
            "repo": repo,
            "revision": revision,
        },
        "converter": None,
        "license": "apache-2.0",
        "paper": {"title": "x", "arxiv": None, "url": None},
        "metrics": [],
        "golden": [],
        "notes": "",
    }


@pytest.fixture()
def hub_entry(tmp_path: Path) -> Callable[..., object]:
    """Build a registry Entry for an HF repo through the real registry loader."""
    from zoo.registry import load_registry

    def build(revision: str | None = None, repo: str = HUB_REPO, model_id: str = HUB_REPO_ID) -> object:
        path = tmp_path / f"entry-{model_id}-{revision}.json"
        path.write_text(json.dumps({"schema_version": 1, "models": [hub_registry_entry(model_id, repo, revision)]}))
        return load_registry([path]).get(model_id)

    return build


# --- GCS-like server and URL entries (scripts/gcs_server.py, zoo/sources/http.py) ------


@pytest.fixture()
def gcs_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ZOO_HOME, online, no mirrors; returns the ZOO_HOME path."""
    home = tmp_path / "zoo_home"
    monkeypatch.setenv("ZOO_HOME", str(home))
    for name in ("ZOO_OFFLINE", "HF_HUB_OFFLINE", "ZOO_MIRRORS", "ZOO_REGISTRY"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture()
def gcs_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A running GCSServer on 127.0.0.1 serving tmp_path/gcs as /BUCKET/OBJECT (faults off)."""
    monkeypatch.syspath_prepend(str(SCRIPTS_DIR))
    from gcs_server import GCSServer

    root = tmp_path / "gcs"
    root.mkdir()
    with GCSServer(root) as server:
        yield server


@pytest.fixture()
def url_entry() -> Callable[..., object]:
    """Build a registry Entry for a zip at a URL; hashes default to null (pinned on first pull)."""
    from zoo.registry import Attributes, Entry, Paper, Source

    def build(
        model_id: str,
        url: str,
        *,
        size: int | None = None,
        sha256: str | None = None,
        md5: str | None = None,
        crc32c: str | None = None,
    ) -> Entry:
        return Entry(
            id=model_id,
            family="tapas",
            task="dense-retriever",
            size="tiny",
            attributes=Attributes(hard_negatives=False, down_projection_dim=8),
            source=Source(kind="url", url=url, archive="zip", size=size, sha256=sha256, md5=md5, crc32c=crc32c),
            converter="tapas-retriever",
            license="Apache-2.0",
            paper=Paper(title="test"),
        )

    return build


@pytest.fixture()
def url_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write Entry objects to a user registry file and point ZOO_REGISTRY at it (for `zoo` subprocesses)."""

    def write(*entries: object) -> Path:
        path = tmp_path / "url_registry.json"
        models = [e.to_dict() for e in entries]  # type: ignore[attr-defined]
        path.write_text(json.dumps({"schema_version": 1, "models": models}, indent=2))
        monkeypatch.setenv("ZOO_REGISTRY", str(path))
        return path

    return write


# --- tiny SPLADE repos (tests/splade_factory.py) --------------------------------------------


@pytest.fixture(scope="session")
def splade_repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny SPLADE repos generated once per session: "v5", "v6" (safetensors) and "v5-bin" (pytorch_model.bin only).

    Read-only: copy one before changing it.
    """
    from splade_factory import write_repo

    base = tmp_path_factory.mktemp("splade-repos")
    return {
        "v5": write_repo(base / "v5"),
        "v6": write_repo(base / "v6", layout="v6"),
        "v5-bin": write_repo(base / "v5-bin", weights="bin"),
    }
