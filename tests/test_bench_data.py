"""Benchmark data loaders and the NQ-tables TF-record conversion (protos built by the real protobuf
library from interaction.proto's field numbers, records framed by TensorFlow's own writer)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from bench_support import DATA

from zoo.benchmarks import beir, m2kr, nq_tables
from zoo.errors import FormatError

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _proto_classes():
    """Interaction / Table / Question ... message classes from a descriptor equal to tapas' interaction.proto."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    spec = {
        "Cell": [("text", 1, F.TYPE_STRING, None, False)],
        "Cells": [("cells", 1, F.TYPE_MESSAGE, "Cell", True)],
        "Table": [
            ("columns", 1, F.TYPE_MESSAGE, "Cell", True),
            ("rows", 2, F.TYPE_MESSAGE, "Cells", True),
            ("table_id", 3, F.TYPE_STRING, None, False),
            ("document_title", 4, F.TYPE_STRING, None, False),
            ("caption", 5, F.TYPE_STRING, None, False),
            ("alternative_table_ids", 8, F.TYPE_STRING, None, True),
        ],
        "Answer": [
            ("class_index", 6, F.TYPE_INT32, None, False),
            ("answer_texts", 3, F.TYPE_STRING, None, True),
            ("float_value", 4, F.TYPE_FLOAT, None, False),
        ],
        "Question": [
            ("id", 1, F.TYPE_STRING, None, False),
            ("text", 2, F.TYPE_STRING, None, False),
            ("original_text", 3, F.TYPE_STRING, None, False),
            ("answer", 5, F.TYPE_MESSAGE, "Answer", False),
        ],
        "Interaction": [
            ("id", 1, F.TYPE_STRING, None, False),
            ("table", 2, F.TYPE_MESSAGE, "Table", False),
            ("questions", 3, F.TYPE_MESSAGE, "Question", True),
        ],
    }
    file = descriptor_pb2.FileDescriptorProto(name="zoo_test_interaction.proto", package="zoo_test", syntax="proto2")
    for name, fields in spec.items():
        message = file.message_type.add(name=name)
        for field, number, kind, type_name, repeated in fields:
            message.field.add(
                name=field,
                number=number,
                type=kind,
                label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL,
                type_name=f".zoo_test.{type_name}" if type_name else None,
            )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"zoo_test.{name}")) for name in spec}


def _table(classes, table_id: str, title: str, header: list[str], rows: list[list[str]]):
    table = classes["Table"](
        table_id=table_id, document_title=title, caption="ignored", alternative_table_ids=["alt_" + table_id]
    )
    for text in header:
        table.columns.add(text=text)
    for row in rows:
        table.rows.add().cells.extend([classes["Cell"](text=t) for t in row])
    return table


def test_released_tf_records_convert_to_the_jsonl_form(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    classes = _proto_classes()
    src = tmp_path / "nq_tables"
    (src / "tables").mkdir(parents=True)
    (src / "interactions").mkdir()
    t1 = _table(classes, "t1", "Cities", ["city", "population"], [["Paris", "2000"], ["Rome", ""]])
    t2 = _table(classes, "t2", "Teams ünïcode", ["team"], [["club"]])
    with tf.io.TFRecordWriter(str(src / "tables" / "tables.tfrecord")) as writer:
        for table in (t1, t2, t1):
            writer.write(table.SerializeToString())
    interaction = classes["Interaction"](id="i1")
    interaction.table.CopyFrom(t1)
    question = interaction.questions.add(id="q1", text="population of paris", original_text="Population of Paris?")
    question.answer.answer_texts.extend(["2000"])
    question.answer.float_value = 2000.0
    with tf.io.TFRecordWriter(str(src / "interactions" / "test.tfrecord"), options="GZIP") as writer:
        writer.write(interaction.SerializeToString())

    sys.path.insert(0, str(SCRIPTS))
    try:
        import convert_nq_tables
    finally:
        sys.path.remove(str(SCRIPTS))
    assert convert_nq_tables.main([str(src), str(tmp_path / "out")]) == 0
    first = json.loads((tmp_path / "out" / "tables.jsonl").read_text().splitlines()[0])
    assert first == {
        "table_id": "t1",
        "document_title": "Cities",
        "columns": ["city", "population"],
        "rows": [["Paris", "2000"], ["Rome", ""]],
    }
    data = nq_tables.load(tmp_path / "out", "test")
    assert [t.table_id for t in data.tables] == ["t1", "t2"]  # unique by id
    assert data.tables[1].title == "Teams ünïcode"
    assert data.questions == [nq_tables.Question("q1", ("population of paris",), ("t1",))]
    assert data.tables[0].frame().values.tolist() == [["Paris", "2000"], ["Rome", ""]]


def test_corrupt_tf_records_are_format_errors(tmp_path: Path) -> None:
    from zoo.benchmarks.nq_tfrecord import parse, read_tfrecord

    bad = tmp_path / "x.tfrecord"
    bad.write_bytes(b"0123456789abcdef")
    with pytest.raises(FormatError, match="CRC"):
        list(read_tfrecord(bad))
    with pytest.raises(FormatError):
        parse(b"\x0a\x05ab")  # a string field longer than the message


def test_nq_tables_errors(tmp_path: Path) -> None:
    (tmp_path / "tables.jsonl").write_text('{"table_id": "t", "columns": ["a"], "rows": [["1"]]}\n')
    (tmp_path / "test.jsonl").write_text('{"id": "q", "question": "x", "table_ids": ["nope"]}\n')
    with pytest.raises(FormatError, match="nope"):
        nq_tables.load(tmp_path, "test")
    with pytest.raises(FormatError, match="available: test"):
        nq_tables.load(tmp_path, "dev")
    (tmp_path / "test.jsonl").write_text('{"id": "q", "question": "x"}\n')
    with pytest.raises(FormatError, match="test.jsonl:1: missing field 'table_ids'"):
        nq_tables.load(tmp_path, "test")


def test_beir_loader(tmp_path: Path) -> None:
    sets = beir.find_sets(DATA / "beir")
    assert [p.name for p in sets] == ["NanoMSMARCO", "NanoNFCorpus", "NanoNQ"]
    nf = beir.load(sets[1], "test")
    assert nf.doc_texts[0] == "dogs a dog and a cat at the vet"  # title + text
    assert nf.qrels["b"] == {"n1": 2, "n4": 1}
    with pytest.raises(FormatError, match="available: test"):
        beir.load(sets[1], "dev")
    with pytest.raises(FormatError, match="no BEIR dataset"):
        beir.find_sets(tmp_path)


def test_m2kr_loader() -> None:
    assert m2kr.find_sets(DATA / "m2kr") == ["MSMARCO", "OKVQA"]
    ok = m2kr.load(DATA / "m2kr", "OKVQA", "test")
    first = ok.queries[0]
    assert (
        first.text == "using the provided image obtain documents that address the subsequent question:  "
        "what is the capital of france ? "
    )
    assert ok.queries[3].text.startswith(
        "using the provided image obtain documents that address the subsequent question:  "
    )
    assert ok.queries[4].img_path is None and ok.queries[4].pos_item_ids == ()
    assert ok.has_answers and not m2kr.load(DATA / "m2kr", "MSMARCO", "test").has_answers
    with pytest.raises(FormatError, match="no test_passages|no train"):
        m2kr.load(DATA / "m2kr", "OKVQA", "train")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NanoMSMARCO", "MSMARCO"),
        ("nano_fiqa", "FiQA2018"),
        ("webis-touche2020", "Touche2020"),
        ("scifact", "SciFact"),
        ("mydata", None),
    ],
)
def test_nanobeir_names(name: str, expected: str | None) -> None:
    from zoo.benchmarks.splade import nanobeir_name

    assert nanobeir_name(name) == expected
