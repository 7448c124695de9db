"""`zoo bench` for TAPAS retrievers on the tiny NQ-tables set: converted model vs TF reference, the
original evaluation's semantics, tables.tsv reproduction, numbers identical to ir-measures."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import numpy as np
import pytest
from bench_support import DATA, peer, run_lists

pytest.importorskip("tensorflow")

NQ = DATA / "nq_tables"
CUTOFFS = (1, 5, 10, 15, 50, 100)


@pytest.fixture(scope="module")
def retriever(tmp_path_factory) -> Path:
    """A tiny TF retriever checkpoint (with a tables.tsv made by the TF reference) converted by zoo."""
    from tapas_support import factory

    from zoo.benchmarks import nq_tables
    from zoo.benchmarks.tapas import TFRetriever
    from zoo.conversion import convert_local

    root = tmp_path_factory.mktemp("tapas")
    make = factory()
    make.write_checkpoint(make.CheckpointSpec(kind="retriever", seed=7), root / "ckpt")
    from converters.tapas_checkpoint import locate

    tables = nq_tables.load(NQ, "test").tables
    reps = TFRetriever(locate(root / "ckpt"), 128, 4).tables(tables)
    with open(root / "ckpt" / "tables.tsv", "w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t")
        writer.writerow(["query_id", "query_rep", "table_id", "table_rep"])
        for table, rep in zip(tables, reps, strict=False):
            writer.writerow(["FAKE", "[0.0]", table.table_id, repr([float(x) for x in rep])])
    return convert_local(root / "ckpt", "tapas-retriever", root / "converted")


def _bench(model: Path, work: Path, **options):
    from zoo.benchmarks import BenchOptions, run

    return run(str(model), NQ, BenchOptions(work=work, chunk_size=3, batch_size=4, **options))


@pytest.fixture(scope="module")
def results(retriever: Path, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("work")
    return {backend: _bench(retriever, work, backend=backend) for backend in ("zoo", "tf")}


def test_converted_model_and_tf_reference_rank_identically(results: dict) -> None:
    zoo, tf = results["zoo"].sections[0], results["tf"].sections[0]
    assert zoo.metrics == tf.metrics
    assert run_lists(zoo.files["run"]) == run_lists(tf.files["run"])
    assert zoo.files["run"] != tf.files["run"]  # two stores: the backends never share embeddings


def test_tables_tsv_is_reproduced(results: dict) -> None:
    for result in results.values():
        (check,) = result.checks
        assert check.name == "tables.tsv" and check.ok, check
        assert check.data["tables"] == 7 and check.data["max_abs_diff"] < 1e-4


def test_original_evaluation_semantics(results: dict) -> None:
    """Corpus made unique by table id, q4's two rows merged with both gold tables, recall@k of the original."""
    section = results["zoo"].sections[0]
    assert (section.benchmark, section.queries, section.documents) == ("NQ-tables", 6, 7)
    assert list(section.metrics) == [f"recall@{k}" for k in CUTOFFS]
    qrels = Path(section.files["qrels"]).read_text().split("\n")
    assert {"q4 0 capitals_1 1", "q4 0 cities_1 1"} <= set(qrels)
    assert section.metrics["recall@10"] == 1.0  # 7 tables: everything is within 10


def test_numbers_equal_a_brute_force_recomputation(retriever: Path, results: dict) -> None:
    """Independent path: the model's text-level helpers, a numpy matrix product and a python loop."""
    from zoo.benchmarks import nq_tables
    from zoo.models.tapas import TapasDualEncoder, TapasTextEncoder

    data = nq_tables.load(NQ, "test")
    model = TapasDualEncoder.from_pretrained(str(retriever)).eval()
    text = TapasTextEncoder.from_pretrained(retriever, max_length=64)
    tables = model.embed_tables([t.frame() for t in data.tables], [t.title for t in data.tables], text).numpy()
    hits = dict.fromkeys(CUTOFFS, 0)
    for q in data.questions:
        query = model.embed_questions(list(q.texts), text).numpy().mean(0)
        order = np.argsort(-(tables @ query), kind="stable")
        ranked = [data.tables[i].table_id for i in order]
        for k in CUTOFFS:
            hits[k] += any(t in q.table_ids for t in ranked[:k])
    expected = {f"recall@{k}": hits[k] / len(data.questions) for k in CUTOFFS}
    assert results["zoo"].sections[0].metrics == pytest.approx(expected, abs=1e-12)


def test_numbers_identical_to_ir_measures(results: dict) -> None:
    section = results["zoo"].sections[0]
    got = peer(section.files, [f"Success@{k}" for k in CUTOFFS])
    for k in CUTOFFS:
        assert section.metrics[f"recall@{k}"] == got[f"Success@{k}"]


def test_a_wrong_tables_tsv_fails_the_check(retriever: Path, tmp_path: Path) -> None:
    bad = tmp_path / "tables.tsv"
    with open(retriever.parent / "ckpt" / "tables.tsv", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    for row in rows[1:]:
        row[3] = repr([-float(x) for x in ast.literal_eval(row[3])])
    with open(bad, "w", newline="") as fh:
        csv.writer(fh, delimiter="\t").writerows(rows)
    result = _bench(retriever, tmp_path / "work", tables_tsv=bad)
    assert not result.ok and not result.checks[0].ok


def test_tables_the_original_writes_no_example_for_are_left_out(retriever: Path) -> None:
    """A header-only table, a ragged one and one whose title cannot fit are never indexed (the original skips them)."""
    from zoo.benchmarks.nq_tables import Table
    from zoo.benchmarks.tapas import encodable
    from zoo.models.tapas import TapasTextEncoder

    text = TapasTextEncoder.from_pretrained(retriever, max_length=64)
    good = Table("good", "cities", ("city", "year"), (("paris", "1999"),))
    header_only = Table("header_only", "cities", ("city", "year"), ())
    ragged = Table("ragged", "cities", ("city", "year"), (("paris",),))
    long_title = Table("long_title", " ".join(["city"] * 200), ("city",), (("paris",),))
    kept, rejected = encodable([good, header_only, ragged, long_title], text)
    assert [t.table_id for t in kept] == ["good"]
    assert [t.table_id for t in rejected] == ["header_only", "ragged", "long_title"]
