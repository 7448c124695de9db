"""zoo: a registry, converter, verifier and hub manager for published retrieval checkpoints."""

from ._version import __version__
from .api import (
    bench,
    cache_list,
    cache_prune,
    cache_remove,
    cache_verify,
    convert,
    get,
    info,
    list_models,
    load,
    path,
    pull,
    push,
    read_manifest,
    resolve,
    state,
    verify,
)
from .errors import ZooError

__all__ = [
    "ZooError",
    "__version__",
    "bench",
    "cache_list",
    "cache_prune",
    "cache_remove",
    "cache_verify",
    "convert",
    "get",
    "info",
    "list_models",
    "load",
    "path",
    "pull",
    "push",
    "read_manifest",
    "resolve",
    "state",
    "verify",
]
