"""FLMR / PreFLMR on M2KR: Recall@K and Pseudo-Recall@K, with exact late-interaction search.

As the authors' examples/example_use_preflmr.py computes them: the query string is
"<instruction>: <question>", the image goes through the CLIP image processor (a black
336x336 image where img_path is empty); Recall@K = a positive passage id among the first K,
Pseudo-Recall@K = an answer (stripped, lower-cased) inside one of the first K passages.
Where the authors searched a PLAID index (8-bit residual compression), this search is exact
MaxSim over every kept document token (zoo.benchmarks.search.MaxSimScorer), in float32 (the
authors indexed in fp16 on GPU). Documents are encoded with padding cut to the batch's longest
passage: attention masks padding out, so only float rounding differs from padding to doc_maxlen.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FormatError
from ..extras import require
from . import m2kr
from .metrics import evaluate, judged, pseudo_relevant
from .runner import BenchContext, Outcome, Section
from .store import Arrays

CUTOFFS = (1, 5, 10, 20, 50, 100)
DISPLAY = {"EVQA": "E-VQA"}  # registry benchmark names ("M2KR E-VQA") where they differ from the folder
BLANK_IMAGE_SIZE = 336  # the authors' stand-in for queries without an image


def image_processor(path: Path, image_size: int):
    """The model dir's preprocessor_config.json, else CLIP's processor at the vision tower's size.

    The authors loaded openai/clip-vit-base-patch32, clip-vit-large-patch14 or the LAION bigG
    processor: all resize the short side and center-crop to 224 with OpenAI's mean and std,
    which is CLIPImageProcessor's default at the tower's image size.
    """
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    if (path / "preprocessor_config.json").is_file():
        return CLIPImageProcessorPil.from_pretrained(str(path))
    return CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )


def _image(images_root: Path, img_path: str | None) -> Any:
    Image = require("PIL.Image", "reading M2KR query images")

    if img_path is None:
        return Image.new("RGB", (BLANK_IMAGE_SIZE, BLANK_IMAGE_SIZE), color="black")
    path = Path(img_path) if Path(img_path).is_absolute() else images_root / img_path
    if not path.is_file():
        raise FormatError(f"image {img_path!r} not found under {images_root} (pass --images DIR)")
    with Image.open(path) as image:
        return image.convert("RGB")


def _documents(model, texts: Sequence[str], batch_size: int, device) -> Arrays:
    """Kept token vectors of each passage (padding and punctuation dropped), concatenated."""
    import torch

    tokens, lengths = [], []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = model.context_tokenizer(list(texts[start : start + batch_size]))
            width = int(enc["attention_mask"].sum(1).max())
            out = model.doc(enc["input_ids"][:, :width].to(device), enc["attention_mask"][:, :width].to(device))
            keep = out.context_mask.squeeze(-1)
            for row, mask in zip(out.late_interaction_output, keep, strict=False):
                tokens.append(row[mask].float().cpu().numpy())
                lengths.append(int(mask.sum()))
    return {"embeddings": np.concatenate(tokens), "lengths": np.asarray(lengths, dtype=np.int64)}


def _passages(model: Any, batch_size: int, device: Any, texts: Sequence[str]) -> Arrays:
    return _documents(model, texts, batch_size, device)


@dataclass(frozen=True)
class PassageEncoder:
    """The context encoder as a recipe (runner.CorpusEncoder): Ray workers build it."""

    path: Path
    batch_size: int

    def load(self, device: Any) -> Callable[[Sequence[str]], Arrays]:
        return functools.partial(_passages, _load(self.path, device), self.batch_size, device)


def _load(path: Path, device: Any) -> Any:
    from zoo.models.flmr import FLMRModelForRetrieval

    model = FLMRModelForRetrieval.from_pretrained(path)
    return model.to(device).eval()


def _queries(
    model, queries: Sequence[m2kr.M2KRQuery], processor, images_root: Path, batch_size: int, device
) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(queries), batch_size):
            batch = queries[start : start + batch_size]
            enc = model.query_tokenizer([q.text for q in batch])
            pixels = processor([_image(images_root, q.img_path) for q in batch], return_tensors="pt").pixel_values
            result = model.query(enc["input_ids"].to(device), enc["attention_mask"].to(device), pixels.to(device))
            out.append(result.late_interaction_output.float().cpu().numpy())
    return np.concatenate(out)


def run(path: Path, data: Path, context: BenchContext) -> Outcome:
    model = _load(path, context.device)
    processor = image_processor(path, int(model.config.vision_config.image_size))
    images_root = Path(context.options.images or data)
    batch = context.options.batch_size
    notes, sections = [], []
    if model.config.mask_instruction_token is None:
        notes.append("this model does not mask the instruction: queries still read '<instruction>: <question>'")
    sets = []
    for name in m2kr.find_sets(data):
        dataset = m2kr.load(data, name, context.options.split)
        store = context.store(f"m2kr-{name}", len(dataset.passage_ids), dataset.passage_ids, dataset.passage_texts)
        sets.append((name, dataset, store))
    jobs = [(store, dataset.passage_texts) for _, dataset, store in sets]
    context.fill_all(jobs, PassageEncoder(path, batch), functools.partial(_passages, model, batch, context.device))
    for name, dataset, store in sets:  # every corpus is encoded, now search
        ids, texts = dataset.passage_ids, dataset.passage_texts
        queries = _queries(model, dataset.queries, processor, images_root, batch, context.device)
        query_ids = [q.id for q in dataset.queries]
        rankings = context.search(store, "multi", queries, query_ids, ids, max(CUTOFFS))
        qrels = {q.id: judged(dict.fromkeys(q.pos_item_ids, 1)) for q in dataset.queries}
        recall = evaluate(rankings, qrels, [f"accuracy@{k}" for k in CUTOFFS])
        metrics = {f"R@{k}": recall[f"accuracy@{k}"] for k in CUTOFFS}
        files = {"run": str(context.run_file(store)), "qrels": str(context.write_qrels(store, qrels))}
        if dataset.has_answers:
            text_of = dict(zip(ids, texts, strict=False))
            pseudo = {
                q.id: judged(pseudo_relevant({d: text_of[d] for d in rankings[q.id]}, q.answers or ()))
                for q in dataset.queries
            }
            found = evaluate(rankings, pseudo, [f"accuracy@{k}" for k in CUTOFFS])
            metrics.update({f"PR@{k}": found[f"accuracy@{k}"] for k in CUTOFFS})
            files["pseudo_qrels"] = str(context.write_qrels(store, pseudo, "pseudo.qrels"))
        sections.append(Section(f"M2KR {DISPLAY.get(name, name)}", metrics, len(query_ids), len(ids), files))
    return Outcome(sections, notes=notes)
