"""Numbers and dates in table cells and questions, as the original TAPAS pipeline annotated them.

Written from google-research/tapas `utils/number_utils.parse_text` and
`utils/number_annotation_utils` (the rules, not transformers' port):

- a text is normalized (lower-cased, whitespace collapsed) and searched for number-pattern matches
  (`1,234.5`, a signed number after whitespace), single alphanumeric words that parse as a number
  (ordinal suffixes st/nd/rd/th dropped: "1st", "10th"; also "1e5"), number words ("zero".."twelve"),
  ordinal words (the original's list, "zeroth".."twelfth", spells "fifth" as "fith", so "fifth" is no
  number) and dates of up to five words (21 strptime patterns, years 1700..2016; a year alone is
  both a number and a date); the longest spans win;
- values are stored as the original's protobuf did: numbers as float32, dates as (year, month, day)
  with the fields the pattern sets;
- a column is numeric when one type (number or date) appears in at least 70% of its rows
  (`count < rows * 0.7` fails, in floating point); dates win a tie; each row keeps its first value
  of that type;
- values compare on what they all share: dates of mixed precision compare on the fields every value
  of the column has (none shared: the column gets no ranks).
"""

from __future__ import annotations

import datetime
import functools
import math
import re
import struct
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from .wordpiece_tapas import normalize_for_match

NUMBER, DATE = "number", "date"
MIN_CONSOLIDATION_FRACTION = 0.7
Date = tuple[int | None, int | None, int | None]  # (year, month, day); None where the pattern sets no field
SortKey = tuple[float, ...]


class NumericValue(NamedTuple):
    """One parsed value: `number` is a float32-rounded float, or `date` a (year, month, day) triple."""

    kind: str
    number: float | None = None
    date: Date | None = None


# (strptime pattern, (sets year, sets month, sets day)), in the original's order (duplicates included).
_Y, _YM, _YMD = (True, False, False), (True, True, False), (True, True, True)
_M, _MD = (False, True, False), (False, True, True)
_DATE_PATTERNS = (
    ("%B", _M),
    ("%Y", _Y),
    ("%Ys", _Y),
    ("%b %Y", _YM),
    ("%B %Y", _YM),
    ("%B %d", _MD),
    ("%b %d", _MD),
    ("%d %b", _MD),
    ("%d %B", _MD),
    ("%B %d, %Y", _YMD),
    ("%d %B %Y", _YMD),
    ("%m-%d-%Y", _YMD),
    ("%Y-%m-%d", _YMD),
    ("%Y-%m", _YM),
    ("%B %Y", _YM),
    ("%d %b %Y", _YMD),
    ("%Y-%m-%d", _YMD),
    ("%b %d, %Y", _YMD),
    ("%d.%m.%Y", _YMD),
    ("%A, %b %d", _MD),
    ("%A, %B %d", _MD),
)
_FIELD_TO_REGEX = (
    ("%A", r"\w+"),
    ("%B", r"\w+"),
    ("%Y", r"\d{4}"),
    ("%b", r"\w{3}"),
    ("%d", r"\d{1,2}"),
    ("%m", r"\d{1,2}"),
)
_MAX_DATE_NGRAM_SIZE = 5
_MIN_YEAR, _MAX_YEAR = 1700, 2016
_NUMBER_WORDS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
)
_ORDINAL_WORDS = (
    "zeroth",
    "first",
    "second",
    "third",
    "fourth",
    "fith",  # sic: the original's list, kept so "fifth" stays a plain word as it was there
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
)
_ORDINAL_SUFFIXES = ("st", "nd", "rd", "th")
_NUMBER_PATTERN = re.compile(r"((^|\s)[+-])?((\.\d+)|(\d+(,\d\d\d)*(\.\d*)?))")
_FLOAT32_MAX = 3.4028234663852886e38


def _date_regex(pattern: str) -> re.Pattern[str]:
    """The original's prefilter: the strptime pattern as a regex ('.', '-' escaped, spaces as \\s+)."""
    regex = pattern.replace(".", re.escape(".")).replace("-", re.escape("-")).replace(" ", r"\s+")
    for field, field_regex in _FIELD_TO_REGEX:
        regex = regex.replace(field, field_regex)
    return re.compile("^" + regex + "$")


_PROCESSED_DATE_PATTERNS = tuple((p, mask, _date_regex(p)) for p, mask in _DATE_PATTERNS)


def to_float32(value: float) -> float:
    """A double stored in a proto float field: rounded to float32, beyond its range +-inf."""
    try:
        return struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


def _strptime(text: str, pattern: str) -> datetime.date:
    """datetime.strptime; a pattern without a year parses with year 1900 (strptime's default) spelled out.

    Spelling the default out keeps the result and avoids the year-less %d deprecation of Python 3.13+.
    """
    if "%Y" not in pattern:
        return datetime.datetime.strptime(f"{text} 1900", f"{pattern} %Y").date()
    return datetime.datetime.strptime(text, pattern).date()


def _parse_date(text: str) -> NumericValue | None:
    text = re.sub(r"Sept\b", "Sep", text)  # as the original (texts are lower-cased, so it never fires)
    for pattern, (has_year, has_month, has_day), regex in _PROCESSED_DATE_PATTERNS:
        if not regex.match(text):
            continue
        try:
            date = _strptime(text, pattern)
        except ValueError:
            continue
        if date.year < _MIN_YEAR or date.year > _MAX_YEAR:
            continue
        return NumericValue(
            DATE,
            date=(
                date.year if has_year else None,
                date.month if has_month else None,
                date.day if has_day else None,
            ),
        )
    return None


def _parse_number(text: str) -> float | None:
    for suffix in _ORDINAL_SUFFIXES:
        if text.endswith(suffix):
            text = text[: -len(suffix)]
            break
    text = text.replace(",", "")
    try:
        value = float(text)
    except ValueError:
        return None
    if math.isnan(value) or value == math.inf:
        return None
    return value


def _number(value: float) -> NumericValue:
    return NumericValue(NUMBER, number=to_float32(value))


def _word_spans(text: str, max_ngram_length: int) -> Iterable[tuple[int, int]]:
    """text_utils.get_all_spans: runs of up to n alphanumeric words (split at anything else)."""
    starts: list[int] = []
    for index, char in enumerate(text):
        if not char.isalnum():
            continue
        if index == 0 or not text[index - 1].isalnum():
            starts.append(index)
        if index + 1 == len(text) or not text[index + 1].isalnum():
            for start in starts[-max_ngram_length:]:
                yield start, index + 1


@functools.lru_cache(maxsize=65536)
def parse_text(text: str) -> tuple[tuple[int, int, tuple[NumericValue, ...]], ...]:
    """Longest numeric spans of `text` (already normalized), each (begin, end, values) in text order."""
    spans: dict[tuple[int, int], list[NumericValue]] = defaultdict(list)
    for match in _NUMBER_PATTERN.finditer(text):
        number = _parse_number(text[match.start() : match.end()])
        if number is not None:
            spans[match.span()].append(_number(number))
    for begin, end in _word_spans(text, 1):
        if (begin, end) in spans:
            continue
        word = text[begin:end]
        number = _parse_number(word)
        if number is not None:
            spans[begin, end].append(_number(number))
        if word in _NUMBER_WORDS:
            spans[begin, end].append(_number(float(_NUMBER_WORDS.index(word))))
        if word in _ORDINAL_WORDS:
            spans[begin, end].append(_number(float(_ORDINAL_WORDS.index(word))))
    for begin, end in _word_spans(text, _MAX_DATE_NGRAM_SIZE):
        date = _parse_date(text[begin:end])
        if date is not None:
            spans[begin, end].append(date)

    longest_first = sorted(spans.items(), key=lambda item: (item[0][1] - item[0][0], -item[0][0]), reverse=True)
    selected: list[tuple[tuple[int, int], list[NumericValue]]] = []
    for span, values in longest_first:
        if not any(s[0] <= span[0] and span[1] <= s[1] for s, _ in selected):
            selected.append((span, values))
    selected.sort(key=lambda item: item[0][0])
    return tuple((begin, end, tuple(values)) for (begin, end), values in selected)


def numeric_values(text: str) -> list[NumericValue]:
    """All values in a raw cell or question text, span by span (what the original's _get_numeric_values chains)."""
    return [value for _, _, values in parse_text(normalize_for_match(text)) for value in values]


def consolidate_column(cells: Sequence[str]) -> dict[int, NumericValue]:
    """Row index -> the cell's value of the column's majority type; {} when no type reaches 70% of rows."""
    row_values = {row: numeric_values(text) for row, text in enumerate(cells)}
    type_counts: Counter[str] = Counter()
    for values in row_values.values():
        type_counts.update({v.kind for v in values})
    if not type_counts:
        return {}
    max_count = max(type_counts.values())
    if max_count < len(row_values) * MIN_CONSOLIDATION_FRACTION:
        return {}
    winners = {kind for kind, count in type_counts.items() if count == max_count}
    max_type = DATE if len(winners) > 1 else next(iter(winners))
    out = {}
    for row, values in row_values.items():
        first = next((v for v in values if v.kind == max_type), None)
        if first is not None:
            out[row] = first
    return out


def _fields(value: NumericValue) -> tuple[float | None, ...]:
    """The original's primitive value: the float, or the date's (year, month, day) with None where unset."""
    if value.kind == NUMBER:
        return (value.number,)
    return tuple(None if f is None else float(f) for f in value.date or (None, None, None))


def sort_key_fn(values: Iterable[NumericValue]) -> Callable[[NumericValue], SortKey]:
    """Key comparing `values` on what they share; ValueError when they have no common type or date field.

    Numbers compare as 1-tuples, which orders and equates them exactly as the floats.
    """
    values = list(values)
    if len({v.kind for v in values}) != 1:
        raise ValueError(f"no common value type in {values}")
    fields = [_fields(v) for v in values]
    shared = [i for i in range(len(fields[0])) if all(f[i] is not None for f in fields)]
    if not shared:
        raise ValueError(f"no common date field in {values}")

    def key(value: NumericValue) -> SortKey:
        own = _fields(value)
        return tuple(f for i in shared if (f := own[i]) is not None)

    return key


def column_ranks(column: dict[int, NumericValue]) -> dict[int, tuple[int, int]]:
    """Row -> (rank, inverse rank) among the column's distinct values (1 = smallest); {} when not comparable."""
    if not column:
        return {}
    try:
        key = sort_key_fn(column.values())
    except ValueError:
        return {}
    keys = {row: key(value) for row, value in column.items()}
    distinct = sorted(set(keys.values()))
    rank = {k: i + 1 for i, k in enumerate(distinct)}
    return {row: (rank[k], len(distinct) - rank[k] + 1) for row, k in keys.items()}


EQ, LT, GT = 1, 2, 4  # relation bits: 2 ** (Relation - Relation.EQ) for EQ = 7, LT = 8, GT = 9


def numeric_relations(question_values: Sequence[NumericValue], columns: Sequence[dict[int, NumericValue]]) -> dict:
    """(column, row) -> OR of EQ/LT/GT bits, the question value compared with the cell value (reader only)."""
    out: dict[tuple[int, int], int] = defaultdict(int)
    for value in question_values:
        for col, column in enumerate(columns):
            if not column:
                continue
            try:
                key = sort_key_fn([*column.values(), value])
            except ValueError:
                continue
            mine = key(value)
            for row, cell in column.items():
                other = key(cell)
                if mine == other:
                    out[col, row] |= EQ
                elif mine < other:
                    out[col, row] |= LT
                elif mine > other:
                    out[col, row] |= GT
    return dict(out)
