"""Open a conversion's source once: the converter and every check that replays it share it.

A zip is extracted, a pickle unpickled, once per `zoo convert` or `zoo verify` instead of once per
reader; a result several steps need (the TAPAS TF reference's outputs) is computed once, and a
conversion may start computing it early on another thread (`started`) so that it runs beside the
conversion instead of after it. Imports nothing of zoo, so `zoo.conversion` can use it while zoo
itself is importing.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")
_LOCK = threading.Lock()
_SHARED: ContextVar[dict[Hashable, Future[Any]] | None] = ContextVar("zoo_shared_sources", default=None)


@contextlib.contextmanager
def sharing() -> Iterator[None]:
    """Within the block a source is opened (a zip extracted, a pickle read) once, and the converter
    and every check that replays it share it. At the end, work still running is waited for (it may
    read what is closed next; not after Ctrl-C) and everything opened is closed."""
    opened: dict[Hashable, Future[Any]] = {}
    token = _SHARED.set(opened)
    interrupted = False
    try:
        yield
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        _SHARED.reset(token)
        while not interrupted:  # work still running may share more before it ends
            with _LOCK:
                running = [future for future in opened.values() if not future.done()]
            if not running:
                break
            for future in running:
                future.exception()
        with _LOCK:
            finished = [future for future in opened.values() if future.done() and future.exception() is None]
        for future in finished:
            close = getattr(future.result(), "close", None)
            if close is not None:
                close()


def shared(key: Hashable, open_source: Callable[[], T]) -> tuple[T, bool]:
    """(the opened source, whether the caller owns it and must close it).

    In a session the first caller opens it; later callers (other threads too) wait for that and
    get the same value, or the same error.
    """
    opened = _SHARED.get()
    if opened is None:
        return open_source(), True
    with _LOCK:
        future = opened.get(key)
        first = future is None
        if future is None:
            future = opened[key] = Future()
    if first:
        _settle(future, open_source)
    return future.result(), False


def started(key: Hashable, compute: Callable[[], object]) -> None:
    """Run `compute` now on a worker thread, in a copy of this context; the session waits for it
    at its end. Outside a session, nothing runs: there is nothing to share its result with."""
    opened = _SHARED.get()
    if opened is None:
        return
    with _LOCK:
        if key in opened:
            return
        future: Future[Any] = Future()
        opened[key] = future
    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(_settle, future, compute), name="zoo-early", daemon=True).start()


def _settle(future: Future[Any], compute: Callable[[], object]) -> None:
    future.set_running_or_notify_cancel()
    try:
        future.set_result(compute())
    except BaseException as exc:  # handed to whoever waits for it, in their thread
        future.set_exception(exc)
