"""One exception hierarchy for zoo; every error carries its CLI exit code.

Exit 2 means the caller gave bad input (unknown id, malformed file, wrong format);
exit 1 means the operation or a check failed. Builtin bases let callers catch either.
"""

from __future__ import annotations

from collections.abc import Sequence


class ZooError(Exception):
    """Root of every error zoo raises on purpose."""

    exit_code: int = 1


# --- bad input: exit 2 -------------------------------------------------------------


class InputError(ZooError, ValueError):
    """The caller asked for something that cannot be done as asked."""

    exit_code = 2


class UnknownModelError(InputError, LookupError):
    def __init__(self, model_id: str, suggestions: Sequence[str] = ()) -> None:
        self.model_id = model_id
        self.suggestions = list(suggestions)
        hint = f"; did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown model id {model_id!r}{hint} (see `zoo list`)")


class RegistryError(InputError):
    """A registry file is malformed; names the file, the entry and the field."""

    def __init__(self, file: str, entry: str | None, field: str | None, problem: str) -> None:
        self.file, self.entry, self.field, self.problem = file, entry, field, problem
        where = file
        if entry is not None:
            where += f": entry {entry!r}"
        if field is not None:
            where += f": field {field!r}"
        super().__init__(f"{where}: {problem}")


class FormatError(InputError):
    """An input artifact (checkpoint, archive, config) is not what its format requires."""


class UnsafeArchiveError(FormatError):
    """An archive member would escape the target, is a link, or unpacks absurdly large."""


class OutputError(InputError):
    """An output path that cannot be written (unwritable, a file where a directory is needed)."""


class MissingDependencyError(InputError, ImportError):
    """An optional dependency is not installed; names the extra that provides it."""

    def __init__(self, module: str, extra: str, needed_for: str) -> None:
        self.module, self.extra = module, extra
        super().__init__(
            f"{needed_for} needs the Python package {module!r}, which is not installed; "
            f"install it with: pip install 'zoo[{extra}]'"
        )


# --- failures: exit 1 --------------------------------------------------------------


class DownloadError(ZooError, OSError):
    """The network or server failed after retries."""


class BadResponseError(DownloadError):
    """A server answered something zoo refuses to use: a path that would escape the cache, a
    malformed commit sha or oid, a revision that is no ref name."""


class CacheBusyError(ZooError):
    """A pull or conversion of the model holds its lock; the cache operation was refused."""


class Aborted(ZooError):
    """The user declined the confirmation; nothing was changed."""


class UploadError(ZooError):
    """A Hub refused or dropped an upload; `status` is its HTTP answer when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class IntegrityError(ZooError):
    """Bytes on disk or on the wire do not match what was expected."""

    def __init__(
        self, message: str, *, expected: str | None = None, actual: str | None = None, source: str | None = None
    ) -> None:
        self.expected, self.actual, self.source = expected, actual, source
        super().__init__(message)


class NotCachedError(ZooError, LookupError):
    """A known model that is not in the cache (pull or convert it first)."""


class OfflineError(ZooError):
    """Offline mode is on and something needed is not in the cache."""

    def __init__(self, message: str, missing: Sequence[str] = ()) -> None:
        self.missing = list(missing)
        super().__init__(message)


class ConversionError(ZooError):
    """A conversion could not produce a faithful model."""


class MappingError(ConversionError, FormatError):
    """Source tensors and the rule table disagree (unmapped, unused, missing or misshapen).

    A checkpoint that does not fit its format is bad input, so this exits 2.
    """

    exit_code = 2


class UnverifiedModelError(ZooError):
    """An operation that needs a verified model (`zoo push`) met one whose checks did not pass."""

    def __init__(self, message: str, failed: Sequence[str] = ()) -> None:
        self.failed = list(failed)
        super().__init__(message)


class VerifyFailed(ZooError):
    """At least one verify check failed."""

    def __init__(self, message: str, report: object | None = None) -> None:
        self.report = report
        super().__init__(message)
