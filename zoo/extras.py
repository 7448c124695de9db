"""Optional dependencies: which extra installs each, and one way to import them."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from .errors import MissingDependencyError

# importable module -> the zoo extra (pyproject.toml [project.optional-dependencies]) that installs it
EXTRAS = {
    "tensorflow": "tf",
    "sentence_transformers": "splade",
    "pyarrow": "bench",
    "PIL": "bench",
    "ray": "ray",
}


def require(module: str, needed_for: str) -> ModuleType:
    """Import `module`, or raise MissingDependencyError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != module.split(".")[0]:
            raise  # the package is there but something it needs is broken: show the real error
        raise MissingDependencyError(module, EXTRAS[module], needed_for) from exc


def tensorflow(needed_for: str) -> ModuleType:
    """TensorFlow, with its C++ start-up chatter turned down unless the user set a level."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return require("tensorflow", needed_for)
