"""FLMR checks: `encodings` (converted vs a reference model on a probe batch) and `golden` fixtures.

Both compare query embeddings, document embeddings, document masks and late-interaction scores
in float32 against a 1e-5 absolute tolerance, and check the tokenizers give the same ids. Models
are loaded one at a time so two ViT-G towers never sit in memory together.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import cache, provenance
from ..errors import ZooError
from ..models.flmr import FLMRInputError
from ..registry import GoldenValue, load_registry
from .reference import Probe, run_encodings
from .report import Check
from .similarity import max_abs_diff, min_row_cosine

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


def encodings(model_dir: Path, manifest: Mapping[str, Any]) -> Check:
    """A converted legacy checkpoint vs the official hub model of the same architecture.

    A hub model is its own reference, so it has none; nor has a conversion when no such model
    is available here. Both are reported as not run, with the reason.
    """
    return run_encodings(reference_probe(model_dir, manifest), lambda probe: check_probe(model_dir, probe, "encodings"))


def reference_probe(model_dir: Path, manifest: Mapping[str, Any]) -> Probe | str:
    reference = official_reference(manifest)
    if reference is None:
        if manifest.get("format") != "flmr-legacy":
            return "a hub model is its own reference"
        return "no official hub repo of the same architecture is in the cache to compare with"
    return probe_from(reference)


def probe_from(reference_dir: Path) -> Probe | str:
    """The probe queries and documents through a reference model (loaded alone, then released)."""
    from ..models.flmr import FLMRModelForRetrieval

    try:
        reference = FLMRModelForRetrieval.from_pretrained(reference_dir)
    except (ZooError, FLMRInputError) as exc:
        return f"the reference {reference_dir.name} cannot be loaded: {exc}"
    tokens = _tokenize(reference, PROBE_QUERIES, PROBE_DOCS)
    pixels = _probe_pixels(reference, len(PROBE_QUERIES))
    out = _run(reference, tokens, pixels)
    del reference
    gc.collect()
    inputs = {f: getattr(tokens, f).numpy() for f in _Encoded.__dataclass_fields__}
    if pixels is not None:
        inputs["pixel_values"] = pixels.numpy()
    outputs = {f: getattr(out, f).numpy() for f in _Outputs.__dataclass_fields__}
    texts = {"queries": list(PROBE_QUERIES), "docs": list(PROBE_DOCS)}
    return Probe(inputs, outputs, f"the official model {reference_dir.name}", texts)


def check_probe(model_dir: Path, probe: Probe, name: str) -> Check:
    """The model on the probe's token ids (and images) vs the reference's outputs; its tokenizers on the texts."""
    from ..models.flmr import FLMRModelForRetrieval

    try:
        model = FLMRModelForRetrieval.from_pretrained(model_dir)
    except (ZooError, FLMRInputError) as exc:
        return Check(name, ok=False, value="unloadable", tolerance=TOLERANCE, detail=str(exc))
    given = _Encoded(*(torch.from_numpy(probe.inputs[f]) for f in _Encoded.__dataclass_fields__))
    ids_equal = True
    if probe.texts:
        mine = _tokenize(model, probe.texts["queries"], probe.texts["docs"])
        ids_equal = all(torch.equal(getattr(mine, f), getattr(given, f)) for f in _Encoded.__dataclass_fields__)
    pixels = probe.inputs.get("pixel_values")
    ours = _run(model, given, None if pixels is None else torch.from_numpy(pixels))
    want = _Outputs(*(torch.from_numpy(probe.outputs[f]) for f in _Outputs.__dataclass_fields__))
    return _compare(name, ours, want, ids_equal, f"vs {probe.reference}")


def compare_models(model_dir: Path, reference_dir: Path) -> Check:
    """Model vs a second model of the same architecture (e.g. the official hub repo) on the probe batch."""
    probe = probe_from(reference_dir)
    if isinstance(probe, str):
        return Check("encodings", ok=False, value="reference unloadable", tolerance=TOLERANCE, detail=probe)
    return check_probe(model_dir, probe, "encodings")


def official_reference(manifest: Mapping[str, Any]) -> Path | None:
    """The official hub model to compare a converted legacy FLMR checkpoint with, if available.

    The `--config` directory given at conversion is used when it holds weights (a pulled hub
    repo); otherwise a pulled registry hub repo whose config.json describes the same architecture.
    """
    if manifest.get("format") != "flmr-legacy":
        return None
    config_dir = provenance.local_options(manifest.get("options", {}))[0].get("config")
    if config_dir and any(Path(config_dir).glob("*.safetensors")):
        return Path(config_dir)
    wanted = _architecture(Path(config_dir) / "config.json") if config_dir else None
    if wanted is None:
        return None
    from ..sources import cached

    for entry in load_registry().filter("flmr"):
        pulled = cached(entry)
        if pulled is not None and _architecture(pulled / "config.json") == wanted:
            return pulled
    return None


_NOT_ARCHITECTURE = frozenset(
    {
        "transformers_version",
        "_name_or_path",
        "_attn_implementation_autoset",
        "architectures",
        "auto_map",
        "dtype",
        "torch_dtype",
    }
)


def _architecture(config_path: Path) -> dict[str, Any] | None:
    """config.json without the keys that record who wrote it rather than what the model is."""
    data = cache.read_json(config_path) if config_path.is_file() else None
    if not isinstance(data, dict):
        return None

    def strip(d: dict[str, Any]) -> dict[str, Any]:
        return {k: strip(v) if isinstance(v, dict) else v for k, v in d.items() if k not in _NOT_ARCHITECTURE}

    return strip(data)


def golden(model_dir: Path, golden_dir: Path) -> Check:
    """Reproduce a golden fixture (inputs.pt / outputs.pt written by the authors' code)."""
    golden_dir = Path(golden_dir)
    try:
        inputs = torch.load(golden_dir / "inputs.pt", weights_only=True)
        expected = torch.load(golden_dir / "outputs.pt", weights_only=True)
    except (OSError, RuntimeError) as exc:
        return Check("golden", ok=False, value="fixture unreadable", tolerance=TOLERANCE, detail=str(exc))
    names = {
        "query_ids": "query_input_ids",
        "query_mask": "query_attention_mask",
        "doc_ids": "doc_input_ids",
        "doc_mask": "doc_attention_mask",
        "pixel_values": "pixel_values",
    }
    outputs = {"queries": "query_embeddings", "docs": "doc_embeddings", "doc_mask": "doc_mask", "scores": "scores"}
    texts = (
        {"queries": list(inputs["query_texts"]), "docs": list(inputs["doc_texts"])}
        if "query_texts" in inputs and "doc_texts" in inputs
        else {}
    )
    probe = Probe(
        {k: inputs[v].numpy() for k, v in names.items() if v in inputs},
        {k: expected[v].numpy() for k, v in outputs.items()},
        f"fixture {golden_dir}",
        texts,
    )
    return check_probe(model_dir, probe, "golden")


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
    q = model.query(
        enc.query_ids,
        enc.query_mask,
        pixel_values=pixel_values,
        concat_output_from_vision_encoder=None if pixel_values is not None else False,
    )
    d = model.doc(enc.doc_ids, enc.doc_mask)
    scores = model.score_matrix(q.late_interaction_output, d.late_interaction_output, d.context_mask)
    return _Outputs(
        q.late_interaction_output.float().cpu(),
        d.late_interaction_output.float().cpu(),
        d.context_mask.cpu(),
        scores.float().cpu(),
    )


def _compare(name: str, got: _Outputs, want: _Outputs, ids_equal: bool, against: str) -> Check:
    data: dict[str, object] = {"ids_equal": ids_equal}
    problems = [] if ids_equal else ["tokenizer ids differ"]
    diffs = []
    for field in ("queries", "docs", "scores"):
        a, b = getattr(got, field), getattr(want, field).float()
        if a.shape != b.shape:
            problems.append(f"{field}: shape {tuple(a.shape)} vs {tuple(b.shape)}")
            continue
        diff = max_abs_diff(a, b)
        diffs.append(diff)
        data[f"{field}_max_abs_diff"] = diff
        if field != "scores":
            data[f"{field}_min_cosine"] = min_row_cosine(a, b)
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


def registry_golden(model_dir: Path, values: tuple[GoldenValue, ...]) -> Check:
    """The FLMR releases publish no example outputs; the registry records none to recompute."""
    return Check(
        "golden",
        ok=True,
        ran=False,
        value="not run",
        detail=f"{len(values)} registry golden value(s), but FLMR has no card examples to recompute",
    )
