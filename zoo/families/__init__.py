"""Model families: one typed contract (contract.Family) per family, listed in catalog.FAMILIES."""

from .catalog import (
    FAMILIES,
    family,
    find_format,
    format_names,
    formats,
    names,
    recognize,
    tasks,
    translate,
)
from .contract import CardInfo, Family, FamilyChecks, Format, RemoteCode, import_attr

__all__ = [
    "FAMILIES",
    "CardInfo",
    "Family",
    "FamilyChecks",
    "Format",
    "RemoteCode",
    "family",
    "find_format",
    "format_names",
    "formats",
    "import_attr",
    "names",
    "recognize",
    "tasks",
    "translate",
]
