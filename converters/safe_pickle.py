"""Load torch pickles (Lightning .ckpt, pytorch_model.bin) without ever running code from the file.

First `torch.load(weights_only=True)`. Lightning checkpoints often also pickle bookkeeping objects
(hyper-parameter dicts, callbacks' state) that weights_only refuses; for those a restricted
unpickler takes over: it resolves only SAFE_GLOBALS (tensor rebuilders, storages, dtypes, a few
containers), refuses globals from modules that can run code (DENIED_MODULES: os, subprocess,
builtins, ...) with a FormatError, and replaces any other global with an inert placeholder that
records its name and arguments but executes nothing. Tensors come back real; placeholders tell
the caller what was not reconstructed.
"""

from __future__ import annotations

import importlib
import pickle
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from zoo.errors import FormatError

# "module.name" of every global the restricted unpickler hands out for real.
SAFE_GLOBALS: frozenset[str] = frozenset(
    {
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.Counter",
        "builtins.set",
        "builtins.frozenset",
        "builtins.slice",
        "builtins.complex",
        "builtins.bytearray",
        "builtins.range",
        "_codecs.encode",
        "torch.Size",
        "torch.device",
        "torch.Tensor",
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._tensor._rebuild_from_type_v2",
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
    }
)
# Globals from these modules are how pickles run code; finding one means the file is refused.
DENIED_MODULES: frozenset[str] = frozenset(
    {
        "os",
        "posix",
        "nt",
        "sys",
        "subprocess",
        "builtins",
        "__builtin__",
        "shutil",
        "importlib",
        "runpy",
        "code",
        "codeop",
        "pty",
        "socket",
        "ctypes",
        "pickle",
        "_pickle",
        "marshal",
        "types",
        "functools",
        "operator",
        "io",
        "_io",
        "tempfile",
        "glob",
        "multiprocessing",
        "threading",
        "_thread",
        "signal",
        "asyncio",
        "webbrowser",
        "pdb",
        "timeit",
        "platform",
        "sysconfig",
        "inspect",
        "gc",
        "ssl",
        "urllib",
        "http",
        "ftplib",
        "smtplib",
        "requests",
        "dill",
        "cloudpickle",
        "yaml",
        "torch",
        "numpy",
        "setuptools",
        "pip",
        "distutils",
        "site",
        "zipimport",
        "weakref",
        "atexit",
    }
)


@dataclass(frozen=True)
class LoadedPickle:
    obj: Any
    restricted: bool  # True when weights_only refused the file and the restricted unpickler was used
    placeholders: tuple[str, ...]  # globals that were stood in for, not reconstructed


class Placeholder:
    """Stands in for an unknown global: absorbs construction and state, runs nothing."""

    __slots__ = ("args", "items", "state")
    global_name = "?"
    args: tuple[Any, ...]
    items: dict[Any, Any]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> Placeholder:  # NEWOBJ calls __new__ only
        obj = super().__new__(cls)
        obj.args, obj.state, obj.items = args, kwargs or None, {}
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.items[len(self.items)] = value

    def extend(self, values: Any) -> None:
        for v in values:
            self.append(v)

    def __repr__(self) -> str:
        return f"<not reconstructed: {self.global_name}>"


def _is_dtype(module: str, name: str) -> bool:
    return module == "torch" and isinstance(getattr(torch, name, None), torch.dtype)


class _RestrictedUnpickler(pickle.Unpickler):
    placeholders: set[str]

    def find_class(self, module: str, name: str) -> Any:
        qualified = f"{module}.{name}"
        if qualified in SAFE_GLOBALS or _is_dtype(module, name):
            return getattr(importlib.import_module(module), name)
        if module.split(".")[0] in DENIED_MODULES:
            raise FormatError(f"refusing to unpickle: the file calls {qualified}, which can run code")
        self.placeholders.add(qualified)
        return type(name, (Placeholder,), {"__slots__": (), "global_name": qualified, "__module__": module})


def _restricted_module() -> tuple[types.ModuleType, set[str]]:
    """A pickle-module stand-in for torch.load(pickle_module=...), sharing one placeholder log."""
    seen: set[str] = set()

    class Unpickler(_RestrictedUnpickler):
        placeholders = seen

    module = types.ModuleType("zoo_restricted_pickle")
    module.Unpickler = Unpickler  # type: ignore[attr-defined]
    module.load = lambda fh, **kw: Unpickler(fh, **kw).load()  # type: ignore[attr-defined]
    module.__name__ = "zoo_restricted_pickle"
    return module, seen


def load_torch_pickle(path: Path) -> LoadedPickle:
    """torch.load that never executes code from `path`; FormatError if the file is not loadable."""
    try:
        return LoadedPickle(torch.load(path, map_location="cpu", weights_only=True, mmap=_is_zip(path)), False, ())
    except pickle.UnpicklingError:
        pass  # a global outside weights_only's allowlist: try the restricted unpickler below
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise FormatError(f"{path}: not a readable torch checkpoint ({exc})") from None
    module, seen = _restricted_module()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=module)
    except FormatError as exc:
        raise FormatError(f"{path}: {exc}") from None
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        AttributeError,
        TypeError,
        zipfile.BadZipFile,
    ) as exc:
        raise FormatError(f"{path}: not a readable torch checkpoint ({exc})") from None
    return LoadedPickle(obj, True, tuple(sorted(seen)))


def _is_zip(path: Path) -> bool:
    return zipfile.is_zipfile(path)
