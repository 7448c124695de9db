"""zoo: a registry, converter and verifier for published retrieval checkpoints."""
from ._version import __version__
from .api import convert, get, list_models, load, pull, resolve, verify
from .errors import ZooError

__all__ = ["__version__", "ZooError", "convert", "get", "list_models", "load", "pull", "resolve", "verify"]
