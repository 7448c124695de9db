"""FLMR checks: `encodings` (converted vs a reference model on a probe batch) and `golden` fixtures.

Both compare query embeddings, document embeddings, document masks and late-interaction scores
in float32 against a 1e-5 absolute tolerance, and check the tokenizers give the same ids. Models
are loaded one at a time so two ViT-G towers never sit in memory together.
"""
from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ZooError
from .report import Check

TOLERANCE = 1e-5

# Mixed lengths: a truncated query, padded ones; documents with punctuation and padding.
PROBE_QUERIES = (
    "Using the provided image, obtain documents that address the subsequent question: what is the name of "
    "the river that flows through the city shown in this picture, and where does it reach the sea?",
    "Extract documents linked to the question provided in conjunction with the image: who built this?",
    "Answer: colour?",
)
PROBE_DOCS = (
    "Paris is the capital of France.",
    "The Seine is a 777-kilometre-long river in northern France; it flows through Paris (and Rouen) "
    "before reaching the English Channel at Le Havre. Its drainage basin covers most of the Paris Basin!",
    "A red car, on a road: in a city?",
)
PROBE_SEED = 1234


@dataclass(frozen=True)
class _Encoded:
    query_ids: torch.Tensor
    query_mask: torch.Tensor
    doc_ids: torch.Tensor
    doc_mask: torch.Tensor


@dataclass(frozen=True)
class _Outputs:
    queries: torch.Tensor
    docs: torch.Tensor
    doc_mask: torch.Tensor
    scores: torch.Tensor


def encodings(model_dir: Path, reference_dir: Path) -> Check:
    """Converted model vs a second model of the same architecture (e.g. the official hub repo)."""
    from ..models.flmr import FLMRModelForRetrieval

    try:
        model = FLMRModelForRetrieval.from_pretrained(model_dir)
        tokens = _tokenize(model, PROBE_QUERIES, PROBE_DOCS)
        pixels = _probe_pixels(model, len(PROBE_QUERIES))
        ours = _run(model, tokens, pixels)
        del model
        gc.collect()
        reference = FLMRModelForRetrieval.from_pretrained(reference_dir)
        ref_tokens = _tokenize(reference, PROBE_QUERIES, PROBE_DOCS)
        theirs = _run(reference, tokens, pixels)
    except ZooError as exc:
        return Check("encodings", ok=False, value="unloadable", tolerance=TOLERANCE, detail=str(exc))
    ids_equal = all(torch.equal(getattr(tokens, f), getattr(ref_tokens, f)) for f in _Encoded.__dataclass_fields__)
    return _compare("encodings", ours, theirs, ids_equal, f"vs {reference_dir}")


def golden(model_dir: Path, golden_dir: Path) -> Check:
    """Reproduce a golden fixture (inputs.pt / outputs.pt written by the authors' code)."""
    from ..models.flmr import FLMRModelForRetrieval

    golden_dir = Path(golden_dir)
    try:
        inputs = torch.load(golden_dir / "inputs.pt", weights_only=True)
        expected = torch.load(golden_dir / "outputs.pt", weights_only=True)
    except (OSError, RuntimeError) as exc:
        return Check("golden", ok=False, value="fixture unreadable", tolerance=TOLERANCE, detail=str(exc))
    try:
        model = FLMRModelForRetrieval.from_pretrained(model_dir)
    except ZooError as exc:
        return Check("golden", ok=False, value="unloadable", tolerance=TOLERANCE, detail=str(exc))
    given = _Encoded(inputs["query_input_ids"], inputs["query_attention_mask"],
                     inputs["doc_input_ids"], inputs["doc_attention_mask"])
    ids_equal = True
    if "query_texts" in inputs and "doc_texts" in inputs:
        mine = _tokenize(model, inputs["query_texts"], inputs["doc_texts"])
        ids_equal = all(torch.equal(getattr(mine, f), getattr(given, f)) for f in _Encoded.__dataclass_fields__)
    ours = _run(model, given, inputs.get("pixel_values"))
    want = _Outputs(expected["query_embeddings"], expected["doc_embeddings"], expected["doc_mask"], expected["scores"])
    return _compare("golden", ours, want, ids_equal, f"fixture {golden_dir}")


def _tokenize(model, queries, docs) -> _Encoded:
    q = model.query_tokenizer(list(queries))
    d = model.context_tokenizer(list(docs))
    return _Encoded(q["input_ids"], q["attention_mask"], d["input_ids"], d["attention_mask"])


def _probe_pixels(model, n: int) -> torch.Tensor | None:
    if not model.config.use_vision_encoder:
        return None
    v = model.config.vision_config
    gen = torch.Generator().manual_seed(PROBE_SEED)
    return torch.randn(n, v.num_channels, v.image_size, v.image_size, generator=gen)


@torch.no_grad()
def _run(model, enc: _Encoded, pixel_values: torch.Tensor | None) -> _Outputs:
    q = model.query(enc.query_ids, enc.query_mask, pixel_values=pixel_values,
                    concat_output_from_vision_encoder=None if pixel_values is not None else False)
    d = model.doc(enc.doc_ids, enc.doc_mask)
    scores = model.score_matrix(q.late_interaction_output, d.late_interaction_output, d.context_mask)
    return _Outputs(q.late_interaction_output.float().cpu(), d.late_interaction_output.float().cpu(),
                    d.context_mask.cpu(), scores.float().cpu())


def _compare(name: str, got: _Outputs, want: _Outputs, ids_equal: bool, against: str) -> Check:
    data: dict[str, object] = {"ids_equal": ids_equal}
    problems = [] if ids_equal else ["tokenizer ids differ"]
    diffs = []
    for field in ("queries", "docs", "scores"):
        a, b = getattr(got, field), getattr(want, field).float()
        if a.shape != b.shape:
            problems.append(f"{field}: shape {tuple(a.shape)} vs {tuple(b.shape)}")
            continue
        diff = float((a - b).abs().max()) if a.numel() else 0.0
        diffs.append(diff)
        data[f"{field}_max_abs_diff"] = diff
        if field != "scores":
            data[f"{field}_min_cosine"] = _min_cosine(a, b)
    masks_equal = got.doc_mask.shape == want.doc_mask.shape and torch.equal(got.doc_mask.bool(), want.doc_mask.bool())
    data["doc_mask_equal"] = masks_equal
    if not masks_equal:
        problems.append("document masks differ")
    value = max(diffs) if diffs else float("nan")
    if diffs and value > TOLERANCE:
        problems.append(f"max abs diff {value:.3g} > {TOLERANCE}")
    ok = not problems
    detail = f"{against}: " + ("query/doc embeddings, masks and scores agree" if ok else "; ".join(problems))
    return Check(name, ok=ok, value=value, tolerance=TOLERANCE, detail=detail, data=data)


def _min_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Smallest cosine between matching rows (all-zero masked rows count as agreeing)."""
    a2, b2 = a.reshape(-1, a.shape[-1]).double(), b.reshape(-1, b.shape[-1]).double()
    live = (a2.norm(dim=1) > 0) | (b2.norm(dim=1) > 0)
    if not bool(live.any()):
        return 1.0
    cos = torch.nn.functional.cosine_similarity(a2[live], b2[live], dim=1)
    return float(cos.min())
