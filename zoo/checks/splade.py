"""SPLADE checks: sentence-transformers vs a plain-transformers reference, and recorded similarities.

`encodings` encodes a fixed probe set of queries and documents (mixed lengths, one longer than
any max_seq_length, so every batch is padded and one text truncated) with the SparseEncoder,
and again with `reference_encode`: AutoTokenizer + AutoModelForMaskedLM and the SPLADE formula
sv[v] = max_t log1p(relu(mask_t * logit[t, v])) written out here, configured only from the
directory's JSON files (`zoo.models.splade.read_spec`). It also reports sparsity (active
dimensions per query and per document) next to the model card's NanoBEIR numbers when the
registry has them; the probe set is not NanoBEIR, so those numbers inform and do not judge.

`registry_golden` recomputes the registry's model-card examples,
`model.similarity(model.encode_query([query]), model.encode_document(documents))`, against the
stored values and tolerance. `golden` does the same for a golden directory holding
`golden.json`:

    {"tolerance": 0.001,
     "cases": [{"name": "card example", "query": "canine ultrasound cost",
                "documents": ["...", "..."], "similarities": [33.7473, 25.6638]}]}

`tolerance` (absolute, per similarity) may also be given per case.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .. import manifest
from ..errors import ZooError
from ..families.splade import load_sparse_encoder
from ..models.splade import SpladeSpec, read_spec
from ..registry import GoldenValue, load_registry
from .reference import Probe, run_encodings
from .report import Check
from .similarity import max_abs_diff, min_row_cosine

TOLERANCE = 1e-5  # fp32 max abs diff, product.md
GOLDEN_FILENAME = "golden.json"
CARD_SPARSITY = {"query": "query_active_dims", "document": "corpus_active_dims"}

PROBE_QUERIES = (
    "canine ultrasound cost",
    "what temperature does water boil at sea level",
    "paris",
    "how many trains run from the capital of france to the sea on a long weekend",
)
PROBE_DOCUMENTS = (
    (
        "VetInfo indicates that any type of canine ultrasound costs anywhere from $300 to $500 depending on what "
        "region of the country you live in and whether or not a veterinarian or a technician performs the procedure."
    ),
    "Water boils at 100 degrees at sea level.",
    "Sparse lexical retrieval.",
    " ".join(
        [
            (
                "A neural sparse retrieval model expands every query and document into weighted vocabulary terms, "
                "so an inverted index can search them fast."
            )
        ]
        * 24
    ),  # past any max_seq_length: truncated
)
LOAD_ERRORS = (ZooError, OSError, ValueError, KeyError, RuntimeError)


# --- encodings ------------------------------------------------------------------------------


def encodings(model_dir: Path, manifest: Mapping[str, Any]) -> Check:
    """SparseEncoder output vs the plain-transformers reference on the probe set (max abs diff, cosine)."""
    return run_encodings(reference_probe(model_dir, manifest), lambda probe: check_probe(model_dir, probe, "encodings"))


def reference_probe(model_dir: Path, manifest: Mapping[str, Any]) -> Probe | str:
    """The probe texts through `reference_encode` (AutoModelForMaskedLM and the SPLADE formula)."""
    try:
        spec = read_spec(model_dir)
        outputs = {
            "query": reference_encode(spec, PROBE_QUERIES, "query").numpy(),
            "document": reference_encode(spec, PROBE_DOCUMENTS, "document").numpy(),
        }
    except LOAD_ERRORS as exc:
        return f"the plain-transformers reference cannot run on this directory: {type(exc).__name__}: {exc}"
    texts = {"query": list(PROBE_QUERIES), "document": list(PROBE_DOCUMENTS)}
    return Probe({}, outputs, "the plain-transformers SPLADE computation", texts)


def check_probe(model_dir: Path, probe: Probe, name: str) -> Check:
    """SparseEncoder on the probe texts vs the reference's vectors; sparsity next to the card's numbers."""
    try:
        spec = read_spec(model_dir)
        model = load_sparse_encoder(model_dir, device="cpu")
        ours = {
            kind: _dense(encode(probe.texts[kind], batch_size=len(probe.texts[kind]), convert_to_sparse_tensor=False))
            for kind, encode in (("query", model.encode_query), ("document", model.encode_document))
        }
    except LOAD_ERRORS as exc:
        return Check(
            name,
            ok=False,
            value="error",
            tolerance=TOLERANCE,
            detail=f"could not encode the probe set: {type(exc).__name__}: {exc}",
        )
    theirs = {kind: torch.from_numpy(probe.outputs[kind]) for kind in ("query", "document")}
    diffs: dict[str, float] = {}
    cosines: dict[str, float] = {}
    problems: list[str] = []
    for kind in ("query", "document"):
        if ours[kind].shape != theirs[kind].shape:
            problems.append(f"{kind} shape {tuple(ours[kind].shape)} vs reference {tuple(theirs[kind].shape)}")
            continue
        diffs[kind] = max_abs_diff(ours[kind], theirs[kind])
        cosines[kind] = min_row_cosine(ours[kind], theirs[kind])
    worst = max(diffs.values(), default=math.inf)
    ok = not problems and math.isfinite(worst) and worst <= TOLERANCE
    sparsity = _sparsity(ours, _model_id(model_dir))
    text = "; ".join(problems) or (
        f"vs {probe.reference}: layout {spec.layout}; max abs diff query {diffs['query']:.2e} "
        f"document {diffs['document']:.2e}; min cosine {min(cosines.values()):.8f}; {sparsity['summary']}"
    )
    return Check(
        name,
        ok=ok,
        value=worst,
        tolerance=TOLERANCE,
        detail=text,
        data={
            "layout": spec.layout,
            "max_abs_diff": diffs,
            "cosine": cosines,
            "probe": {"queries": len(probe.texts["query"]), "documents": len(probe.texts["document"])},
            "sparsity": sparsity,
        },
    )


def _model_id(model_dir: Path) -> str | None:
    try:
        return manifest.read(model_dir).get("model_id")
    except ZooError:
        return None


def reference_encode(spec: SpladeSpec, texts: Sequence[str], kind: str) -> torch.Tensor:
    """SPLADE vectors [N, V] from AutoModelForMaskedLM, as the directory's files define the model."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(spec.transformer_dir, local_files_only=True)
    mlm = AutoModelForMaskedLM.from_pretrained(spec.transformer_dir, local_files_only=True).eval()
    max_length = spec.max_seq_length or min(tokenizer.model_max_length, mlm.config.max_position_embeddings)
    prompt = spec.prompt(kind)
    inputs = [prompt + t for t in texts]
    if spec.do_lower_case:
        inputs = [t.lower() for t in inputs]
    batch = tokenizer(inputs, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    accepted = inspect.signature(mlm.forward).parameters
    with torch.inference_mode():
        logits = mlm(**{k: v for k, v in batch.items() if k in accepted}).logits.float()
    mask = batch["attention_mask"].unsqueeze(-1).to(logits.dtype)
    weights = torch.log1p(torch.relu(logits * mask))  # the mask acts on the logits, before the activation
    if spec.activation == "log1p_relu":
        weights = torch.log1p(weights)
    pooled = weights.amax(dim=1) if spec.pooling_strategy == "max" else weights.sum(dim=1)
    if spec.max_active_dims:
        top = pooled.topk(min(spec.max_active_dims, pooled.shape[1]), dim=1)
        pooled = torch.zeros_like(pooled).scatter(1, top.indices, top.values)
    return pooled


def _sparsity(vectors: Mapping[str, torch.Tensor], model_id: str | None) -> dict[str, Any]:
    """Active (non-zero) dimensions per text, with the card's NanoBEIR means when the registry has them."""
    active = {kind: [int(n) for n in (v != 0).sum(dim=1)] for kind, v in vectors.items()}
    means = {kind: sum(n) / len(n) for kind, n in active.items()}
    card = _card_sparsity(model_id)
    parts = [
        f"active dims per {kind} {means[kind]:.1f}" + (f" (card ~{card[kind]:g} on NanoBEIR)" if kind in card else "")
        for kind in ("query", "document")
    ]
    return {
        "active_dims": active,
        "mean_active_dims": means,
        "card": card,
        "summary": ", ".join(parts) + " on the probe set",
    }


def _card_sparsity(model_id: str | None) -> dict[str, float]:
    if not model_id:
        return {}
    try:
        entry = load_registry().get(model_id)
    except ZooError:
        return {}
    wanted = {metric: kind for kind, metric in CARD_SPARSITY.items()}
    return {wanted[m.metric]: m.value for m in entry.metrics if m.metric in wanted}


# --- golden -----------------------------------------------------------------------------


def registry_golden(model_dir: Path, golden_values: tuple[GoldenValue, ...]) -> Check:
    """Recompute the registry's recorded similarities; values whose inputs are not recorded cannot run (SKIP)."""
    cases = [_case(g.name, g.kind, g.inputs, g.values, g.tolerance, g.provenance) for g in golden_values]
    return _similarity_check(model_dir, cases, source="registry")


def golden(model_dir: Path, golden_dir: Path) -> Check:
    """Recompute the similarities stored in `golden_dir`/golden.json (format in the module docstring)."""
    path = Path(golden_dir) / GOLDEN_FILENAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        default = data.get("tolerance")
        cases = [
            _case(
                c.get("name", f"case {i + 1}"),
                "similarity",
                {"query": c.get("query"), "documents": c.get("documents")},
                c.get("similarities"),
                c.get("tolerance", default),
                str(path),
            )
            for i, c in enumerate(data["cases"])
        ]
    except FileNotFoundError:
        return Check(
            "golden",
            ok=False,
            value="not runnable",
            detail=f"{path} not found (a SPLADE golden dir "
            "holds golden.json with tolerance and cases of query, documents, similarities)",
        )
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        return Check("golden", ok=False, value="not runnable", detail=f"{path}: malformed: {exc!r}")
    return _similarity_check(model_dir, cases, source=str(path))


def _case(name: str, kind: str, inputs: Mapping[str, Any], values: Any, tolerance: Any, provenance: str) -> dict:
    """One similarity row to recompute; `problem` says why it cannot be (it then fails, never passes)."""
    query, documents = inputs.get("query"), inputs.get("documents")
    problem = None
    if kind != "similarity":
        problem = f"kind {kind!r} is not a SPLADE similarity"
    elif not isinstance(query, str):
        problem = "the query text is not recorded"
    elif not isinstance(documents, list) or not documents:
        problem = "the documents are not recorded"
    elif missing := [i + 1 for i, d in enumerate(documents) if not isinstance(d, str)]:
        problem = (
            f"document(s) {', '.join(map(str, missing))} of {len(documents)} are not recorded verbatim "
            "(null), so their similarities cannot be recomputed; add the card text in a user registry "
            "(ZOO_REGISTRY) to run this check"
        )
    elif not isinstance(values, (list, tuple)) or len(values) != len(documents):
        problem = f"{len(documents)} documents but values {values!r}"
    elif not isinstance(tolerance, (int, float)) or tolerance < 0:
        problem = f"no valid tolerance ({tolerance!r})"
    return {
        "name": name,
        "query": query,
        "documents": documents,
        "expected": list(values or ()),
        "tolerance": tolerance,
        "provenance": provenance,
        "problem": problem,
    }


def _similarity_check(model_dir: Path, cases: list[dict], *, source: str) -> Check:
    if not cases:
        return Check("golden", ok=False, value="not runnable", detail=f"{source}: no golden values")
    runnable = [c for c in cases if c["problem"] is None]
    if runnable:
        try:
            model = load_sparse_encoder(model_dir, device="cpu")
            for case in runnable:
                scores = model.similarity(model.encode_query([case["query"]]), model.encode_document(case["documents"]))
                case["actual"] = [float(s) for s in _dense(scores)[0]]
                case["max_abs_diff"] = max(abs(a - e) for a, e in zip(case["actual"], case["expected"], strict=False))
        except LOAD_ERRORS as exc:
            return Check(
                "golden",
                ok=False,
                value="error",
                detail=f"{source}: could not compute similarities: {type(exc).__name__}: {exc}",
            )
    blocked = [c for c in cases if c["problem"] is not None]
    failed = [c for c in runnable if not c["max_abs_diff"] <= c["tolerance"]]
    worst = max((c["max_abs_diff"] for c in runnable), default=None)
    lines = [f"{c['name']}: NOT RUNNABLE: {c['problem']}" for c in blocked]
    lines += [
        f"{c['name']}: expected {c['expected']}, got {[round(a, 4) for a in c['actual']]} "
        f"(max abs diff {c['max_abs_diff']:.2e}, tolerance {c['tolerance']:g})"
        for c in runnable
    ]
    if not runnable:  # nothing could be recomputed: say why, without a verdict on the model
        return Check(
            "golden",
            ok=True,
            ran=False,
            value="not run",
            detail=f"{source}: " + "; ".join(lines),
            data={"source": source, "cases": cases},
        )
    return Check(
        "golden",
        ok=not blocked and not failed,
        value="not runnable" if blocked and not failed else worst,
        tolerance=min((c["tolerance"] for c in cases if isinstance(c["tolerance"], (int, float))), default=None),
        detail=f"{source}: " + "; ".join(lines),
        data={"source": source, "cases": cases},
    )


# --- helpers ----------------------------------------------------------------------------


def _dense(tensor: torch.Tensor) -> torch.Tensor:
    return (tensor.to_dense() if tensor.is_sparse else tensor).float().cpu()
