"""Open a conversion's source once: the converter and every check that replays it share it.

A zip is extracted, a pickle unpickled, once per `zoo convert` or `zoo verify` instead of once per
reader. Imports nothing of zoo, so `zoo.conversion` can use it while zoo itself is importing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Hashable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")
_OPENING = threading.Lock()
_SHARED: ContextVar[dict[Hashable, Any] | None] = ContextVar("zoo_shared_sources", default=None)


@contextlib.contextmanager
def sharing() -> Iterator[None]:
    """Within the block a source is opened (a zip extracted, a pickle read) once, and the converter
    and every check that replays it share it; everything opened is closed at the end."""
    opened: dict[Hashable, Any] = {}
    token = _SHARED.set(opened)
    try:
        yield
    finally:
        _SHARED.reset(token)
        for value in opened.values():
            close = getattr(value, "close", None)
            if close is not None:
                close()


def shared(key: Hashable, open_source: Callable[[], T]) -> tuple[T, bool]:
    """(the opened source, whether the caller owns it and must close it)."""
    opened = _SHARED.get()
    if opened is None:
        return open_source(), True
    with _OPENING:  # checks run in threads (zoo.checks.runner): one of them opens it
        if key not in opened:
            opened[key] = open_source()
        return opened[key], False
