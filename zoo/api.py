"""The Python API: everything the `zoo` command line does, one call per verb.

Models are named by registry id (or, for Hub models, the full repo id); directories by Path.
Every function raises only ZooError subclasses: a model package's own bad-input error becomes a
FormatError (exit 2 on the command line), so scripts and the CLI see the same typed errors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from . import cache_admin, conversion, manifest, sources
from .cache_admin import CacheCheck, CacheEntry, Removal
from .checks.report import Report
from .errors import FormatError, InputError, NotCachedError, UnknownModelError, ZooError
from .families import family, translate
from .judging import drift_table
from .registry import Entry, load_registry
from .sources.extract import zip_problem

if TYPE_CHECKING:
    from .benchmarks import BenchResult
    from .hub import PushResult

P = ParamSpec("P")
R = TypeVar("R")


def _typed_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Re-raise a model package's bad-input error as the zoo error it stands for."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ZooError:
            raise
        except Exception as exc:
            translated = translate(exc)
            if translated is None:
                raise
            raise translated from exc

    return wrapper


# --- the registry -------------------------------------------------------------------------------


def list_models(family: str | None = None) -> list[Entry]:
    return load_registry().filter(family)


def get(model_id: str) -> Entry:
    return load_registry().get(model_id)


def state(model: str | Entry) -> dict[str, bool]:
    """Cache state (pulled / converted / verified), from the disk now (the HF cache included); no network.

    pulled: every file the pull receipt lists is there; converted: every file the manifest lists
    is there; verified: the last `zoo verify` passed and nothing it checked changed since.
    """
    return cache_admin.entry_state(model if isinstance(model, Entry) else get(model))


def info(model_id: str) -> dict[str, Any]:
    """Everything `zoo info` shows: the entry, its cache state and the paper-vs-converted drift table."""
    entry = get(model_id)
    return {
        **entry.to_dict(),
        "state": state(entry),
        "drift": [{**vars(r), "delta": r.delta} for r in drift_table(entry)],
    }


# --- pulling and converting ---------------------------------------------------------------------


@_typed_errors
def pull(model_id: str, *, force: bool = False, repin: bool = False, progress: bool = False) -> Path:
    """Download and verify the raw artifact; returns its local directory.

    `repin` accepts a changed upstream file for an entry pinned on first use (URL sources).
    """
    return sources.pull(get(model_id), force=force, progress=progress, repin=repin)


@_typed_errors
def convert(
    model_or_path: str | Path,
    format: str | None = None,
    out: str | Path | None = None,
    *,
    force: bool = False,
    progress: bool = False,
    accept_mismatch: bool = False,
    **options: Any,
) -> Path:
    """Convert a registry model (pulled if needed), or with `format` a local artifact, into `out`.

    A registry model goes to the cache (or `out`); a local artifact (zip, unzipped folder,
    checkpoint prefix, .ckpt) needs `format` and `out`. `options` are the format's converter
    options (e.g. `config=`, `vision=` for flmr-legacy; `reset_position_index_per_cell=` for TAPAS).
    `accept_mismatch` keeps a conversion that fails its parity checks, recorded in manifest and card.
    """
    if format is not None:
        if out is None:
            raise InputError("converting a local artifact needs out= (--out DIR)")
        if (problem := zip_problem(Path(model_or_path))) is not None:
            raise FormatError(f"{model_or_path}: corrupt archive, a zip that cannot be read (truncated?): {problem}")
        return conversion.convert_local(
            Path(model_or_path),
            format,
            Path(out),
            options=options,
            force=force,
            progress=progress,
            accept_mismatch=accept_mismatch,
        )
    if options:
        raise InputError(
            f"options {', '.join(sorted(options))} apply to local artifacts (give format=); "
            "a registry model is converted as the registry says"
        )
    try:
        entry = get(str(model_or_path))
    except UnknownModelError:
        if Path(model_or_path).exists():
            raise InputError(
                f"{model_or_path} is a path, not a registry id: give its format "
                "(--format / format=) and an output directory"
            ) from None
        raise
    return conversion.convert_entry(
        entry, Path(out) if out is not None else None, force=force, progress=progress, accept_mismatch=accept_mismatch
    )


@_typed_errors
def resolve(model_id: str, *, progress: bool = False) -> Path:
    """The directory to pass to from_pretrained: converted if present, else pulled and converted now."""
    return conversion.resolve(get(model_id), progress=progress)


def path(model_id: str) -> Path:
    """Where the model is on disk: its converted directory, else its pulled files; never downloads."""
    entry = get(model_id)
    where = cache_admin.model_path(entry)
    if where is None:
        raise NotCachedError(f"{entry.id} is not in the cache; run `zoo pull {entry.id}` or `zoo convert {entry.id}`")
    return where


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """A converted directory's zoo_manifest.json (source, converter, notes, checks at conversion)."""
    return manifest.read(Path(directory))


# --- the cache -----------------------------------------------------------------------------------


def cache_list(models: Iterable[str] = ()) -> list[CacheEntry]:
    """What each model (all with anything on disk, or the named ones) holds: parts, sizes, state."""
    return cache_admin.cache_list(models)


def cache_remove(models: Iterable[str], parts: Iterable[str] = (), *, dry_run: bool = False) -> list[Removal]:
    """Remove parts ("archive", "raw", "converted"; default all) of models; a Hub model's "raw" is its
    HF cache snapshot. CacheBusyError while a pull or conversion holds the model's lock."""
    return cache_admin.cache_remove(models, parts, dry_run=dry_run)


def cache_prune(*, archives: bool = False, dry_run: bool = False) -> list[Removal]:
    """Remove leftovers of killed pulls and conversions, superseded and orphaned files (and with
    `archives`, archives whose extraction is verified)."""
    return cache_admin.cache_prune(archives=archives, dry_run=dry_run)


def cache_verify(models: Iterable[str] = ()) -> list[CacheCheck]:
    """Re-hash the cache offline against receipts, manifests and Hub oids; `check.ok`, `check.problems`."""
    return cache_admin.cache_verify(models)


# --- using and checking -------------------------------------------------------------------------


def _locate(target: str | Path) -> tuple[Path, Entry | None]:
    """A zoo model directory, or a registry id resolved to its converted directory.

    A Path, or a string naming a directory with a zoo manifest, is a directory; any other
    string is a registry id first, so a same-named folder (an unzipped download) never shadows it.
    """
    where = Path(target)
    if isinstance(target, Path) or manifest.exists(where):
        data = manifest.read(where)
        entry = None
        if data.get("model_id"):
            try:
                entry = get(data["model_id"])
            except InputError:
                entry = None
        return where, entry
    try:
        entry = get(str(target))
    except UnknownModelError:
        if where.is_dir():
            manifest.read(where)  # raises: a directory, but not one zoo wrote
        raise
    return resolve(entry.id), entry


@_typed_errors
def load(model_id_or_dir: str | Path) -> Any:
    """A ready torch model (TapasDualEncoder, TapasReader, FLMRModelForRetrieval or SparseEncoder)."""
    where, entry = _locate(model_id_or_dir)
    name = entry.family if entry is not None else manifest.read(where)["family"]
    return family(name).load(where)


@_typed_errors
def verify(model_id_or_dir: str | Path, golden: str | Path | None = None) -> Report:
    """Run every applicable check; `report.ok` is True only if all that ran pass (and one ran)."""
    from .checks.runner import verify_dir

    where, entry = _locate(model_id_or_dir)
    return verify_dir(where, golden=Path(golden) if golden is not None else None, entry=entry)


@_typed_errors
def push(
    model_or_dir: str | Path,
    repo: str,
    *,
    revision: str | None = None,
    private: bool = False,
    message: str | None = None,
    force: bool = False,
) -> PushResult:
    """Verify, then upload a converted model to a Hub repo (HF_ENDPOINT, HF_TOKEN or a stored login).

    A model that does not pass verify is refused (VerifyFailed) unless `force`, and then its
    card says the upload is unverified. Pushing unchanged files again makes no new commit.
    """
    from .hub import push as push_dir

    where, entry = _locate(model_or_dir)
    return push_dir(where, entry, repo, revision=revision, private=private, message=message, force=force)


@_typed_errors
def bench(
    model_or_dir: str | Path,
    data: str | Path,
    *,
    judge_as: str | None = None,
    **options: Any,
) -> BenchResult:
    """Recompute published metrics from local benchmark data and judge them (docs/benchmarks.md).

    `options` are BenchOptions fields: split, work, batch_size, chunk_size, device, images,
    backend, tables_tsv, progress, and the corpus-encoding engine: engine ("single", the default,
    or "ray"), ray_address (join that cluster: "auto", "ray://host:10001"; default: a local Ray
    instance started and shut down by this call), workers, gpus_per_worker.
    """
    from . import benchmarks

    try:
        fields: dict[str, Any] = {k: Path(v) if k in _PATH_OPTIONS and v is not None else v for k, v in options.items()}
        settings = benchmarks.BenchOptions(**fields)
    except TypeError as exc:
        raise InputError(f"bench: {exc}") from None
    return benchmarks.run(str(model_or_dir), Path(data), settings, judge_as=judge_as)


_PATH_OPTIONS = frozenset({"work", "images", "tables_tsv"})
