"""The families zoo knows, and lookups over them: the one list to extend with a new family."""

from __future__ import annotations

from pathlib import Path

from ..errors import FormatError, InputError, ZooError
from . import flmr, splade, tapas
from .contract import Family, Format

FAMILIES: tuple[Family, ...] = (tapas.FAMILY, flmr.FAMILY, splade.FAMILY)


def names() -> list[str]:
    return [f.name for f in FAMILIES]


def family(name: str) -> Family:
    for fam in FAMILIES:
        if fam.name == name:
            return fam
    raise InputError(f"unknown family {name!r}; known: {', '.join(names())}")


def tasks() -> list[str]:
    return [t for f in FAMILIES for t in f.tasks]


def formats() -> list[Format]:
    return [fmt for f in FAMILIES for fmt in f.formats]


def format_names() -> list[str]:
    return [fmt.name for fmt in formats()]


def find_format(name: str) -> tuple[Family, Format]:
    """The family and format a `--format` value names."""
    for fam in FAMILIES:
        for fmt in fam.formats:
            if fmt.name == name:
                return fam, fmt
    raise InputError(f"unknown format {name!r}; choose one of: {', '.join(format_names())}")


def recognize(path: Path) -> Family:
    """The family of a model directory without a zoo manifest, from its files alone."""
    for fam in FAMILIES:
        if fam.recognize(path):
            return fam
    raise FormatError(
        f"{path}: not a model directory zoo knows (no zoo manifest, and not a "
        + ", ".join(f.name for f in FAMILIES)
        + " layout)"
    )


def translate(exc: BaseException) -> ZooError | None:
    """A model package's bad-input error as a zoo FormatError (exit 2); None for anything else."""
    if isinstance(exc, ZooError):
        return exc
    if any(fam.is_input_error(exc) for fam in FAMILIES):
        return FormatError(str(exc))
    return None
