"""TapasTextEncoder against the original google-research/tapas retrieval pipeline.

Golden: tests/data/golden/tapas_text (features the original code wrote, README there), compared id by
id through the public calls. Per rule: cases whose expected ids follow from the original's code
(retrieval/tf_example_utils.py, utils/tf_example_utils.py, number_utils.py,
number_annotation_utils.py, text_utils.py, official/nlp/bert/tokenization.py), worked out by hand
in the comments.
"""

from __future__ import annotations

import datetime
import json
import random
from pathlib import Path

import pandas as pd
import pytest

from zoo.models.tapas import TOKEN_TYPES, TapasInputError, TapasTextEncoder
from zoo.models.tapas import number_annotation_tapas as numbers
from zoo.models.tapas.wordpiece_tapas import basic_tokenize, basic_tokenize_unicode, load_vocab

GOLDEN = Path(__file__).parent / "data" / "golden" / "tapas_text"
VOCAB = {line.strip(): i for i, line in enumerate((GOLDEN / "vocab.txt").read_text(encoding="utf-8").split("\n"))}
CLS, SEP, EMPTY, UNK = "[CLS]", "[SEP]", "[EMPTY]", "[UNK]"


def ids(*pieces: str) -> list[int]:
    return [VOCAB[p] for p in pieces]


def encoder(max_length: int = 512) -> TapasTextEncoder:
    return TapasTextEncoder.from_pretrained(GOLDEN, max_length=max_length)


def table_features(enc: TapasTextEncoder, header: list, rows: list[list], title: str | None = "t") -> dict:
    """One table through tables() (as a DataFrame), unpadded: input_ids, input_mask and the seven token types."""
    batch = enc.tables([pd.DataFrame(rows, columns=header)], [title])
    n = int(batch["attention_mask"][0].sum())
    out = {"input_ids": batch["input_ids"][0, :n].tolist(), "input_mask": batch["attention_mask"][0, :n].tolist()}
    for i, name in enumerate(TOKEN_TYPES):
        out[name] = batch["token_type_ids"][0, :n, i].tolist()
    return out


def ranks(enc: TapasTextEncoder, column: list[str]) -> tuple[list[int], list[int]]:
    """column_ranks / inv_column_ranks of each data cell of a one-column table (all its pieces agree)."""
    f = table_features(enc, ["v"], [[c] for c in column])
    by_row: dict[int, set] = {}
    for row, rank, inverse in zip(f["row_ids"], f["column_ranks"], f["inv_column_ranks"], strict=True):
        if row > 0:
            by_row.setdefault(row, set()).add((rank, inverse))
    assert all(len(v) == 1 for v in by_row.values()) and sorted(by_row) == list(range(1, len(column) + 1))
    cells = [next(iter(by_row[r])) for r in sorted(by_row)]
    return [rank for rank, _ in cells], [inverse for _, inverse in cells]


# --- golden: the original's features ------------------------------------------------------------


def golden_examples():
    for name in ("examples.json", "examples_seq64.json"):
        data = json.loads((GOLDEN / name).read_text(encoding="utf-8"))
        for example in data["examples"]:
            yield pytest.param(data["settings"]["config"]["max_seq_length"], example, id=f"{name}:{example['name']}")


@pytest.mark.parametrize(("max_length", "example"), list(golden_examples()))
@pytest.mark.parametrize("as_frame", [True, False], ids=["dataframe", "rows"])
def test_golden_examples_are_identical(max_length: int, example: dict, as_frame: bool) -> None:
    enc = encoder(max_length)
    f = example["features"]
    table = (
        pd.DataFrame(example["rows"], columns=example["header"]) if as_frame else [example["header"], *example["rows"]]
    )
    batch = enc.tables([table], [example["title"]])
    n = batch["input_ids"].shape[1]
    assert n == sum(f["input_mask"])
    assert batch["input_ids"][0].tolist() == f["input_ids"][:n] and set(f["input_ids"][n:]) <= {0}
    assert batch["attention_mask"][0].tolist() == f["input_mask"][:n]
    for i, name in enumerate(TOKEN_TYPES):
        expected = f.get(name, [0] * max_length)  # the retriever writes no prev_label_ids: 0
        assert batch["token_type_ids"][0, :, i].tolist() == expected[:n], name
        assert set(expected[n:]) <= {0}, name

    q = enc.questions([example["question"]], max_length=max_length)
    m = q["input_ids"].shape[1]
    assert m == sum(f["question_input_mask"])
    assert q["input_ids"][0].tolist() == f["question_input_ids"][:m] and set(f["question_input_ids"][m:]) <= {0}
    assert q["attention_mask"][0].tolist() == f["question_input_mask"][:m]


def test_golden_examples_batched_together_keep_their_ids() -> None:
    data = json.loads((GOLDEN / "examples.json").read_text(encoding="utf-8"))["examples"]
    enc = encoder(512)
    batch = enc.tables([pd.DataFrame(e["rows"], columns=e["header"]) for e in data], [e["title"] for e in data])
    questions = enc.questions([e["question"] for e in data], max_length=512)
    for b, e in enumerate(data):
        n, m = sum(e["features"]["input_mask"]), sum(e["features"]["question_input_mask"])
        assert batch["input_ids"][b].tolist() == e["features"]["input_ids"][: batch["input_ids"].shape[1]]
        assert batch["attention_mask"][b].sum() == n and questions["attention_mask"][b].sum() == m
        assert (
            questions["input_ids"][b].tolist() == e["features"]["question_input_ids"][: questions["input_ids"].shape[1]]
        )


# --- layout: title, question, segments -----------------------------------------------------------


@pytest.mark.parametrize("title", ["", "   ", None, "n/a", "-"])
def test_an_empty_title_is_one_empty_piece(title) -> None:
    f = table_features(encoder(), ["city"], [["paris"]], title)
    assert f["input_ids"] == ids(CLS, EMPTY, SEP, "city", "paris")  # no trailing [SEP] after the table
    assert f["segment_ids"] == [0, 0, 0, 1, 1]
    assert f["column_ids"] == [0, 0, 0, 1, 1] and f["row_ids"] == [0, 0, 0, 0, 1]
    assert f["prev_label_ids"] == f["numeric_relations"] == [0] * 5


@pytest.mark.parametrize("question", ["", "   ", "?", "N/A", " n/a ", "-", "(?)"])
def test_an_empty_question_is_cls_empty_sep(question: str) -> None:
    q = encoder().questions([question], max_length=512)
    assert q["input_ids"].tolist() == [ids(CLS, EMPTY, SEP)] and q["attention_mask"].tolist() == [[1, 1, 1]]


def test_questions_are_lower_cased_with_accents_stripped_and_whitespace_collapsed() -> None:
    q = encoder().questions(["  Who\tdirected\n\nLE FABULEUX   Destin d'Amélie Poulain?", "Tromsø, ALMODÓVAR"], 512)
    assert q["input_ids"][0].tolist() == ids(
        CLS, "who", "directed", "le", "fabuleux", "destin", "d", "'", "amelie", "poulain", "?", SEP
    )
    # ø has no decomposition (it stays), ó loses its accent
    assert q["input_ids"][1].tolist()[:5] == ids(CLS, "tromsø", ",", "almodovar", SEP)


def test_a_long_question_is_cut_from_the_end_losing_its_sep() -> None:
    enc = encoder(64)
    cut = enc.questions([" ".join(["the"] * 70)], max_length=64)["input_ids"][0].tolist()
    assert cut == ids(CLS, *["the"] * 63)  # 64 ids, the last is a word, not [SEP]
    fits = enc.questions([" ".join(["the"] * 62)], max_length=64)["input_ids"][0].tolist()
    assert fits == ids(CLS, *["the"] * 62, SEP)
    short = enc.questions(["what is the capital", "paris"], max_length=4)
    assert short["input_ids"].tolist() == [ids(CLS, "what", "is", "the"), ids(CLS, "paris", SEP) + [0]]
    assert short["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]


def test_question_whitespace_is_pythons_before_berts() -> None:
    """The question is normalize_for_match'ed first (str.split); a cell is not, and BERT drops \\x0b as a control."""
    enc = encoder()
    assert enc.questions(["paris\x0boslo"], 512)["input_ids"][0].tolist() == ids(CLS, "paris", "oslo", SEP)
    f = table_features(enc, ["city"], [["paris\x0boslo"]])
    assert f["input_ids"][4:] == ids("paris", "##o", "##s", "##l", "##o")  # one word "parisoslo"


# --- cells -------------------------------------------------------------------------------------


def test_empty_cells_and_the_literal_empty() -> None:
    cells = ["", "  ", "-", "?", "n/a", "N/A ", "--", "_", "(?)", "EMPTY", "n/a."]
    header = [chr(ord("a") + i) for i in range(len(cells))]
    f = table_features(encoder(), header, [cells])
    data = f["input_ids"][3 + len(header) :]
    # format_text leaves nothing (or exactly n/a / ?) -> [EMPTY]; "EMPTY" is lower-cased to the word "empty"
    assert data == ids(*[EMPTY] * 9, "empty", "n", "/", "a", ".")
    assert f["column_ids"][3 + len(header) :] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11, 11, 11]


def test_blank_header_cells_and_missing_pandas_values_are_empty() -> None:
    f = table_features(encoder(), ["", "goals"], [[None, float("nan")], [pd.NA, "7"]])
    assert f["input_ids"] == ids(CLS, "t", SEP, EMPTY, "goals", EMPTY, EMPTY, EMPTY, "7")


def test_word_pieces_like_berts() -> None:
    enc = encoder()
    tok = enc.tokenizer
    assert tok.tokenize("Precipitation, Lewandowski") == ["precipitat", "##ion", ",", "lewandow", "##ski"]
    assert tok.tokenize("[EMPTY]") == ["[", "empty", "]"]  # the special token's text is not special
    assert tok.tokenize("par\x00is \u200bparis\ufffd") == ["paris", "paris"]  # NUL, Cf and U+FFFD are dropped
    assert tok.tokenize("\ue000paris") == [UNK]  # a private-use character stays (the original drops only Cc/Cf)
    assert tok.tokenize("中国") == [UNK, UNK]  # CJK ideographs are words of their own
    assert tok.tokenize("a" * 201) == [UNK] and tok.tokenize("«Nemo»") == ["«", "nemo", "»"]
    assert enc.decode(ids("stone", "##bridge", "lakeside")) == "stonebridge lakeside"


def test_the_ascii_fast_path_is_the_general_tokenizer() -> None:
    rng = random.Random(0)
    for _ in range(3000):
        text = "".join(chr(rng.randrange(128)) for _ in range(rng.randint(0, 20)))
        assert basic_tokenize(text) == basic_tokenize_unicode(text), repr(text)


def test_vocab_lines_as_berts_load_vocab(tmp_path: Path) -> None:
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n a \r\n\nb\na\n")
    assert load_vocab(path) == {"[PAD]": 0, "a": 4, "": 2, "b": 3}  # stripped; a repeat keeps its last line


# --- truncation ----------------------------------------------------------------------------------


def test_tokens_per_cell_keep_a_words_trailing_pieces() -> None:
    header, rows = ["district"], [["stonebridge lakeside"], ["oakridge maplewood"]]
    # title "district" -> 3 ids before the table; word starts per cell: header [0], [0, 0, 2], [0, 1]
    # cost(1) = 1 + 2 + 1 = 4, cost(2) = 5, cost(3) = 6 table tokens
    f = table_features(encoder(7), header, rows, "district")  # budget 4: one token per cell
    assert f["input_ids"] == ids(CLS, "district", SEP, "district", "stone", "##bridge", "oakridge")
    assert f["row_ids"] == [0, 0, 0, 0, 1, 1, 2]
    f = table_features(encoder(8), header, rows, "district")  # budget 5: two tokens per cell
    assert f["input_ids"] == ids(CLS, "district", SEP, "district", "stone", "##bridge", "oakridge", "maplewood")


def test_when_one_token_per_cell_does_not_fit_the_last_column_goes_while_columns_reach_rows() -> None:
    # 3 columns >= 2 rows: one token per cell is 9 > budget 8, column c goes
    f = table_features(encoder(11), ["a", "b", "c"], [["x", "y", "z"], ["u", "v", "w"]])
    assert f["input_ids"] == ids(CLS, "t", SEP, "a", "b", "x", "y", "u", "v")
    assert f["column_ids"][3:] == [1, 2, 1, 2, 1, 2] and f["row_ids"][3:] == [0, 0, 1, 1, 2, 2]
    # 2 columns >= 2 rows: 6 > 5, the column goes first
    f = table_features(encoder(8), ["a", "b"], [["x", "y"], ["u", "v"]])
    assert f["input_ids"] == ids(CLS, "t", SEP, "a", "x", "u")


def test_when_rows_outnumber_columns_the_last_row_goes() -> None:
    f = table_features(encoder(10), ["a", "b"], [["x", "y"], ["u", "v"], ["p", "q"]])  # 8 > 7: row 3 goes
    assert f["input_ids"] == ids(CLS, "t", SEP, "a", "b", "x", "y", "u", "v")
    # alternating: 3 x 3 -> column (3 >= 3) -> row (2 < 3) -> 2 x 2 fits 6
    f = table_features(encoder(9), ["a", "b", "c"], [["x", "y", "z"], ["u", "v", "w"], ["p", "q", "r"]])
    assert f["input_ids"] == ids(CLS, "t", SEP, "a", "b", "x", "y", "u", "v")


def test_column_ranks_use_the_whole_table_including_rows_cut_off() -> None:
    f = table_features(encoder(5), ["score"], [["30"], ["10"], ["20"]])  # budget 2: header and one row
    assert f["input_ids"] == ids(CLS, "t", SEP, "score", "30")
    assert f["column_ranks"][-1] == 3 and f["inv_column_ranks"][-1] == 1  # 30 is the largest of 10, 20, 30


def test_errors_where_the_original_writes_no_example() -> None:
    enc = encoder(64)
    with pytest.raises(TapasInputError, match="no data rows"):
        enc.tables([pd.DataFrame(columns=["a", "b"])], ["header only"])
    with pytest.raises(TapasInputError, match="no columns"):
        enc.tables([pd.DataFrame()], ["nothing"])
    with pytest.raises(TapasInputError, match="ragged"):
        enc.tables([[["a", "b"], ["x"]]], ["t"])
    with pytest.raises(TapasInputError, match="Cannot fit table into sequence"):
        enc.tables([pd.DataFrame([["x"]], columns=["a"])], [" ".join(["the"] * 61)])  # 63 + 2 > 64
    assert enc.tables([pd.DataFrame([["x"]], columns=["a"])], [" ".join(["the"] * 60)])["input_ids"].shape == (1, 64)
    assert TapasInputError("x").exit_code == 2


# --- numbers and dates -------------------------------------------------------------------------------


def test_a_column_is_numeric_when_seventy_percent_of_its_rows_parse() -> None:
    enc = encoder()
    six_of_ten = [str(i) for i in range(1, 7)] + ["w", "x", "y", "z"]
    assert ranks(enc, six_of_ten) == ([0] * 10, [0] * 10)  # 6 < 10 * 0.7
    seven_of_ten = [str(i) for i in range(1, 8)] + ["x", "y", "z"]
    assert ranks(enc, seven_of_ten) == ([1, 2, 3, 4, 5, 6, 7, 0, 0, 0], [7, 6, 5, 4, 3, 2, 1, 0, 0, 0])
    assert ranks(enc, ["1", "2", "3", "x", "y"]) == ([0] * 5, [0] * 5)  # 3 < 3.5
    seven_of_nine = [str(i) for i in range(1, 8)] + ["x", "y"]
    assert ranks(enc, seven_of_nine)[0] == [1, 2, 3, 4, 5, 6, 7, 0, 0]


def test_equal_values_share_a_rank_and_numbers_are_float32() -> None:
    enc = encoder()
    assert ranks(enc, ["14", "10", "14", "1,234,567"]) == ([2, 1, 2, 3], [2, 3, 2, 1])
    # a proto float: 16777217 is 16777216 in float32
    assert ranks(enc, ["16777216", "16777217", "5"]) == ([2, 2, 1], [1, 1, 2])


def test_dates_win_a_tie_with_numbers() -> None:
    # "1999", "2003": a number and a date each; "march 2001": a date; "7": a number -> 3 : 3, dates win
    assert ranks(encoder(), ["1999", "march 2001", "7", "2003"]) == ([1, 2, 0, 3], [3, 2, 0, 1])


def test_dates_of_mixed_precision_compare_on_the_fields_they_share() -> None:
    enc = encoder()
    ymd_ym = ["june 5, 1999", "january 20, 1999", "march 2001"]  # share year and month
    assert ranks(enc, ymd_ym) == ([2, 1, 3], [2, 3, 1])
    assert ranks(enc, [*ymd_ym, "2003"]) == ([1, 1, 2, 3], [3, 3, 2, 1])  # a year alone: years only
    assert ranks(enc, ["june", "1999"]) == ([0, 0], [0, 0])  # month vs year: nothing shared, no ranks


def test_number_words_and_ordinals_count_with_the_originals_spelling() -> None:
    enc = encoder()
    # "fith" is the original's fifth ordinal; "fifth" parses as nothing
    assert ranks(enc, ["first", "fith", "fifth", "twelve"]) == ([1, 2, 0, 3], [3, 2, 0, 1])
    assert ranks(enc, ["3rd", "1st", "one", "4th", "2nd"]) == ([3, 1, 1, 4, 2], [2, 4, 4, 1, 3])


def test_number_parsing_rules() -> None:
    def values(text: str) -> list:
        return [v.number if v.kind == "number" else v.date for v in numbers.numeric_values(text)]

    assert values("June 5, 1999") == [(1999, 6, 5)]
    assert values("Sept 9, 2006") == [9.0, 2006.0, (2006, None, None)]  # "sept" is no month name
    assert values("2020-05-01") == [2020.0, 5.0, 1.0]  # years after 2016 are no dates
    assert values("1990s") == [(1990, None, None)]
    assert values("February 29") == [(None, 2, None), 29.0]  # no year: 1900, not a leap year; "february" alone
    assert values("february 28") == [(None, 2, 28)]
    assert values("a -5 and +3") == [-5.0, 3.0]  # a sign after whitespace belongs to the number
    assert values("nan inf 1e5") == [100000.0]
    assert values("1e39") == [float("inf")]  # beyond float32


def test_year_less_dates_parse_as_strptime_would() -> None:
    for text, pattern in [
        ("june 5", "%B %d"),
        ("5 jun", "%d %b"),
        ("feb 29", "%b %d"),
        ("monday, june 31", "%A, %B %d"),
    ]:
        try:
            want = datetime.datetime.strptime(text, pattern).date()
        except ValueError:
            want = None
        try:
            got = numbers._strptime(text, pattern)
        except ValueError:
            got = None
        assert got == want, text


def test_the_retriever_writes_no_numeric_relations_even_with_numbers_in_the_title() -> None:
    f = table_features(encoder(), ["year", "gold"], [["2018", "14"], ["2014", "11"]], "2018 medals 14")
    assert f["numeric_relations"] == [0] * len(f["input_ids"])
    assert f["column_ranks"][-4:] == [2, 2, 1, 1]


# --- reader ------------------------------------------------------------------------------------------------


def reader_features(enc: TapasTextEncoder, question: str, header: list, rows: list, title: str | None) -> dict:
    batch = enc.reader_inputs([question], [pd.DataFrame(rows, columns=header)], [title])
    out = {"input_ids": batch["input_ids"][0].tolist()}
    for i, name in enumerate(TOKEN_TYPES):
        out[name] = batch["token_type_ids"][0, :, i].tolist()
    return out


def test_reader_inputs_layout_and_numeric_relations() -> None:
    enc = encoder()
    rows = [["messi", "5"], ["ronaldo", "10"], ["bob", "20"]]
    f = reader_features(enc, "Who scored 10 goals?", ["player", "goals"], rows, "Top scorers")
    text = ids(CLS, "who", "scored", "10", "goals", "?", SEP, "top", "scorers", SEP)
    assert f["input_ids"] == text + ids("player", "goals", "messi", "5", "ronaldo", "10", "bob", "20")
    assert f["segment_ids"] == [0] * len(text) + [1] * 8
    # the question's 10 against 5, 10, 20: GT (4), EQ (1), LT (2); the player column holds no numbers
    assert f["numeric_relations"][len(text) :] == [0, 0, 0, 4, 0, 1, 0, 2]
    untitled = reader_features(enc, "Who scored 10 goals?", ["player", "goals"], rows, None)
    assert untitled["input_ids"][:7] == ids(CLS, "who", "scored", "10", "goals", "?", SEP)
    assert untitled["input_ids"][7] == VOCAB["player"]


def test_reader_drops_rows_only_and_refuses_what_cannot_fit() -> None:
    rows = [["x", "y", "z"], ["u", "v", "w"]]
    f = reader_features(encoder(10), "t", ["a", "b", "c"], rows, None)  # 3 + 9 > 10: the last row goes
    assert f["input_ids"] == ids(CLS, "t", SEP, "a", "b", "c", "x", "y", "z")
    with pytest.raises(TapasInputError, match="Sequence too long"):
        encoder(5).reader_inputs(["t"], [pd.DataFrame(rows, columns=["a", "b", "c"])], [None])
    with pytest.raises(TapasInputError, match="Too many columns"):
        encoder(3).reader_inputs(["t"], [pd.DataFrame(rows, columns=["a", "b", "c"])], [None])


def test_tables_come_as_dataframes_rows_mappings_or_objects_with_columns_and_rows() -> None:
    from types import SimpleNamespace

    enc = encoder()
    header, rows = ["city", "country"], [["paris", "france"], ["oslo", "norway"]]
    want = enc.tables([pd.DataFrame(rows, columns=header)], ["t"])["input_ids"].tolist()
    for table in ([header, *rows], {"header": header, "rows": rows}, SimpleNamespace(columns=header, rows=rows)):
        assert enc.tables([table], ["t"])["input_ids"].tolist() == want
