"""Every environment variable zoo reads, parsed at call time (never frozen at import)."""

from __future__ import annotations

import os
import re
from pathlib import Path

REGISTRY_FILENAME = "registry.json"
MANIFEST_FILENAME = "zoo_manifest.json"
MODEL_CARD_FILENAME = "README.md"
SHARD_BYTES = 2 * 1024**3  # product.md: shard model.safetensors above 2 GB

DOWNLOAD_CHUNK = 1 << 20
DOWNLOAD_RETRIES = 6
DOWNLOAD_RESTARTS = 3  # restarts from zero (412, changed object) before a download gives up
DOWNLOAD_TIMEOUT_S = 30.0
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 8.0

# archive sanity limits (unpacked size and per-member compression ratio)
MAX_UNPACKED_BYTES = 64 * 1024**3
MAX_COMPRESSION_RATIO = 200.0

_TRUE = {"1", "true", "yes", "on"}
_MIRROR_SEP = re.compile(r"[\s,;]+|:(?=[A-Za-z][A-Za-z0-9+.-]*://)")


def _is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUE


def zoo_home() -> Path:
    """Cache root: ZOO_HOME, default ~/.cache/zoo."""
    return Path(os.environ.get("ZOO_HOME") or Path.home() / ".cache" / "zoo").expanduser()


def extra_registry_paths() -> list[Path]:
    """User registry files from ZOO_REGISTRY (os.pathsep-separated), merged over the packaged one."""
    raw = os.environ.get("ZOO_REGISTRY", "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


def is_offline() -> bool:
    """ZOO_OFFLINE=1 (or HF_HUB_OFFLINE=1) forbids any network access."""
    return _is_true(os.environ.get("ZOO_OFFLINE")) or _is_true(os.environ.get("HF_HUB_OFFLINE"))


def hf_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def hf_hub_cache() -> Path:
    """Where HF repos are stored: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(home).expanduser() / "hub"


def url_mirrors() -> list[str]:
    """ZOO_MIRRORS: base URLs that replace the registry URL's origin, tried in order.

    Separated by os.pathsep, whitespace, ',' or ';'. URLs contain ':', so a ':' separates only
    where the next URL's scheme starts (`https://a:https://b`), never inside `host:port`.
    """
    raw = os.environ.get("ZOO_MIRRORS", "")
    return [m.rstrip("/") for m in _MIRROR_SEP.split(raw) if m.strip()]
