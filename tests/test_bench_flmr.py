"""`zoo bench` for PreFLMR on the tiny M2KR set: exact MaxSim rankings equal the model's own padded
score(), Recall@K / Pseudo-Recall@K identical to ir-measures, images resolved like the authors' example."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from bench_support import DATA, peer, run_lists

M2KR = DATA / "m2kr"
MODEL = Path(__file__).resolve().parent / "data" / "golden" / "flmr" / "preflmr" / "hf"
CUTOFFS = (1, 5, 10, 20, 50, 100)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    from zoo.benchmarks import BenchOptions, run

    return run(str(MODEL), M2KR, BenchOptions(work=tmp_path_factory.mktemp("work"), chunk_size=3, batch_size=2))


def test_sections(result) -> None:
    assert [s.benchmark for s in result.sections] == ["M2KR MSMARCO", "M2KR OKVQA"]
    msmarco, okvqa = result.sections
    assert set(msmarco.metrics) == {f"R@{k}" for k in CUTOFFS}  # no answers: no Pseudo-Recall
    assert set(okvqa.metrics) == {f"{m}@{k}" for m in ("R", "PR") for k in CUTOFFS}
    assert okvqa.metrics["R@100"] == 0.8  # ok5 has no positive passage and still counts
    assert (okvqa.queries, okvqa.documents) == (5, 7)


def test_rankings_equal_the_models_padded_late_interaction(result) -> None:
    """Independent path: encode with padding to doc_maxlen and rank by FLMRModelForRetrieval.score_matrix."""
    from PIL import Image
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from zoo.benchmarks import m2kr
    from zoo.models.flmr import FLMRModelForRetrieval

    model = FLMRModelForRetrieval.from_pretrained(MODEL).eval()
    size = model.config.vision_config.image_size
    processor = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    data = m2kr.load(M2KR, "OKVQA", "test")
    images = [
        Image.open(M2KR / q.img_path).convert("RGB") if q.img_path else Image.new("RGB", (336, 336))
        for q in data.queries
    ]
    pixels = processor(images, return_tensors="pt").pixel_values
    with torch.no_grad():
        queries = model.encode_queries([q.text for q in data.queries], pixel_values=pixels)
        docs = model.encode_documents(data.passage_texts)
        scores = model.score_matrix(queries.late_interaction_output, docs.late_interaction_output, docs.context_mask)
    expected = {
        q.id: [data.passage_ids[i] for i in torch.argsort(-scores[n], stable=True).tolist()]
        for n, q in enumerate(data.queries)
    }
    assert run_lists(result.sections[1].files["run"]) == expected


@pytest.mark.parametrize(
    ("index", "prefix", "qrels"), [(0, "R", "qrels"), (1, "R", "qrels"), (1, "PR", "pseudo_qrels")]
)
def test_identical_to_ir_measures(result, index: int, prefix: str, qrels: str) -> None:
    section = result.sections[index]
    got = peer(section.files, [f"Success@{k}" for k in CUTOFFS], qrels)
    for k in CUTOFFS:
        assert section.metrics[f"{prefix}@{k}"] == got[f"Success@{k}"], k


def test_pseudo_recall_reads_the_answers(result) -> None:
    """ok4's answer "city" is in three passages; ok5's answer is in none: PR counts the first, not the second."""
    pseudo = Path(result.sections[1].files["pseudo_qrels"]).read_text().splitlines()
    assert "ok5 0 zoo:nothing-relevant 0" in pseudo
    assert {"ok4 0 p_road 1", "ok4 0 p_river 1"} <= set(pseudo)


def test_missing_images_are_named(tmp_path: Path) -> None:
    from zoo.benchmarks import BenchOptions, run
    from zoo.errors import FormatError

    with pytest.raises(FormatError, match="red.png"):
        run(str(MODEL), M2KR, BenchOptions(work=tmp_path, images=tmp_path, chunk_size=8))
