"""The model card (README.md) of a converted model, as a Hub user expects it.

Metadata goes through huggingface_hub's ModelCardData / EvalResult (license, library_name,
pipeline_tag, tags, base_model only when it is a Hub repo id, datasets when known, model-index
with the registry's published numbers and any `zoo bench` result recorded for the model). The
body says what the model is, how to use it with zoo and without zoo (plain transformers or
sentence-transformers), where it came from (registry id or source file name, URL, sha256,
converter version) and what verify found. No path of the converting machine appears in it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from . import cache, constants
from ._version import __version__
from .families import Family
from .registry import Entry

REPO_PLACEHOLDER = "ORG/NAME"  # usage snippets name the Hub repo; `zoo push` writes the real one
# registry `fine_tuned_on` -> Hub dataset id, where the data is on the Hub (families.md)
KNOWN_DATASETS = {"M2KR": "BByrneLab/multi_task_multi_modal_knowledge_retrieval_benchmark_M2KR"}


@dataclass(frozen=True)
class CardFacts:
    """What a card says about one converted model."""

    family: Family
    task: str
    title: str
    entry: Entry | None = None
    source: Mapping[str, Any] | None = None  # the manifest's portable source record
    checks: Sequence[Mapping[str, Any]] = ()
    notes: Sequence[str] = ()
    license: str | None = None  # for conversions without a registry entry: what the source says
    repo: str = REPO_PLACEHOLDER
    unverified: str | None = None  # why `zoo push --force` uploaded a model that did not pass verify
    has_tokenizer: bool = True


def write(directory: Path, facts: CardFacts) -> None:
    cache.atomic_write_bytes(directory / constants.MODEL_CARD_FILENAME, render(facts).encode())


def render(facts: CardFacts) -> str:
    entry, fam = facts.entry, facts.family
    license_, license_note = _license(facts)
    data = ModelCardData(
        license=license_,
        license_name="unknown" if license_ == "other" else None,
        library_name=fam.card.library_name,
        pipeline_tag=fam.card.pipeline_tags[facts.task],
        tags=["zoo", fam.name, facts.task, *fam.card.tags],
        base_model=entry.source.repo if entry is not None and entry.source.kind == "hf" else None,
        datasets=[KNOWN_DATASETS[t]] if entry and (t := entry.attributes.fine_tuned_on) in KNOWN_DATASETS else None,
        model_name=facts.title,
        eval_results=_eval_results(facts) or None,
    )
    body = [
        f"# {facts.title}",
        "",
        *_about(facts, license_note),
        *_usage(facts),
        *_provenance(facts),
        *_verification(facts),
    ]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n"))


# --- metadata -----------------------------------------------------------------------------------


def _license(facts: CardFacts) -> tuple[str, str | None]:
    """(license id, note): the registry's; else what the source says; else an explicit "other"."""
    if facts.entry is not None:
        return facts.entry.license.lower(), None
    if facts.license:
        return facts.license.lower(), None
    return "other", (
        "The source checkpoint states no license; this conversion is marked `other`. Check the "
        "terms under which you obtained the original before redistributing it."
    )


def source_license(folders: Sequence[Path | None]) -> str | None:
    """The license a source folder states in its own model card's metadata, if any."""
    for folder in folders:
        readme = folder / constants.MODEL_CARD_FILENAME if folder is not None and folder.is_dir() else None
        if readme is not None and readme.is_file():
            try:
                found = ModelCard.load(readme).data.license
            except (ValueError, OSError):
                continue
            if isinstance(found, str) and found:
                return found
    return None


def _task_type(facts: CardFacts) -> str:
    return "table-question-answering" if facts.task == "reader" else "retrieval"


def _eval_results(facts: CardFacts) -> list[EvalResult]:
    entry = facts.entry
    results = []
    if entry is not None:
        url = entry.paper.url or (f"https://arxiv.org/abs/{entry.paper.arxiv}" if entry.paper.arxiv else None)
        for m in entry.metrics:
            results.append(
                EvalResult(
                    task_type=_task_type(facts),
                    dataset_type=_slug(m.benchmark),
                    dataset_name=m.benchmark,
                    metric_type=_slug(m.metric),
                    metric_name=f"{m.metric} ({m.set})",
                    metric_value=m.value,
                    source_name=f"{m.set}: {m.provenance}",
                    source_url=url,
                )
            )
    for benchmark, metric, value in recorded_bench(entry.id if entry else facts.title):
        results.append(
            EvalResult(
                task_type=_task_type(facts),
                dataset_type=_slug(benchmark),
                dataset_name=benchmark,
                metric_type=_slug(metric),
                metric_name=f"{metric} (zoo bench)",
                metric_value=value,
                source_name="zoo bench on the converted model",
            )
        )
    return results


def recorded_bench(label: str) -> list[tuple[str, str, float]]:
    """(benchmark, metric, value) that `zoo bench` recorded for this model on this machine."""
    out = []
    for path in sorted((constants.zoo_home() / "bench" / label).glob("result-*.json")):
        data = cache.read_json(path)
        for judgement in (data or {}).get("judgements", []) if isinstance(data, dict) else []:
            try:
                out.append((str(judgement["benchmark"]), str(judgement["metric"]), float(judgement["measured"])))
            except (KeyError, TypeError, ValueError):
                continue
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# --- body ---------------------------------------------------------------------------------------


def _about(facts: CardFacts, license_note: str | None) -> list[str]:
    entry = facts.entry
    lines = [
        f"{facts.family.description}; task `{facts.task}`. Converted by "
        "[zoo](https://github.com/) to safetensors for PyTorch + transformers 5, and checked against "
        "an independent reference (see *Verification*)."
    ]
    if entry is not None:
        lines += [
            "",
            f"Registry id `{entry.id}`, size {entry.size}. Paper: {entry.paper.title}"
            + (f" (arXiv {entry.paper.arxiv})" if entry.paper.arxiv else "")
            + ".",
        ]
        if entry.notes:
            lines += ["", entry.notes]
    if facts.unverified:
        lines += [
            "",
            f"> **Unverified upload.** `zoo verify` did not pass when this model was pushed "
            f"(`zoo push --force`): {facts.unverified}",
        ]
    if license_note:
        lines += ["", license_note]
    return [*lines, ""]


def _usage(facts: CardFacts) -> list[str]:
    repo = facts.repo
    zoo_lines = [
        "```python",
        "from huggingface_hub import snapshot_download",
        "import zoo",
        "",
        f'path = snapshot_download("{repo}")',
        "model = zoo.load(path)  # the model class below, loaded with its checks' files",
        "report = zoo.verify(path)  # files and the stored reference outputs, offline",
        "print(report.ok, [(c.name, c.verdict) for c in report.checks])",
        "```",
    ]
    return [
        "## Usage",
        "",
        "With zoo (`pip install zoo`):",
        "",
        *zoo_lines,
        "",
        "Without zoo:",
        "",
        "```python",
        *USAGE[facts.task](repo, facts.has_tokenizer),
        "```",
        "",
        *_usage_note(facts),
        "",
    ]


def _usage_note(facts: CardFacts) -> list[str]:
    if facts.family.remote_code is None:
        return []
    return [
        "The model classes ship in this repository (`trust_remote_code=True`): they import only torch and "
        "transformers. Load it through the Auto classes as above. Do not load it with a stock class such "
        "as `TapasModel.from_pretrained` or `BertModel.from_pretrained`: those ignore this layout and "
        "silently start from random weights."
    ]


def _tapas_retriever(repo: str, tokenizer: bool) -> list[str]:
    lines = [
        "import torch",
        "from transformers import AutoModel",
        "",
        f'model = AutoModel.from_pretrained("{repo}", trust_remote_code=True).eval()',
    ]
    if tokenizer:
        lines += [
            "from transformers import AutoTokenizer",
            f'tokenizer = AutoTokenizer.from_pretrained("{repo}")',
            'ids = tokenizer.convert_tokens_to_ids(["[CLS]", *tokenizer.tokenize("which city"), "[SEP]"])',
            "input_ids = torch.tensor([ids])",
        ]
    else:
        lines += ["input_ids = torch.tensor([[1, 2, 3]])  # [CLS] question [SEP] ids of the model's vocabulary"]
    return lines + [
        "mask = torch.ones_like(input_ids)",
        "types = torch.zeros(*input_ids.shape, 7, dtype=torch.long)  # the 7 TAPAS token types",
        "with torch.no_grad():",
        "    query = model.encode_questions(input_ids, mask)  # [B, D]",
        "    table = model.encode_tables(input_ids, mask, types)  # [B, D]",
        "print((query @ table.T).shape)",
    ]


def _tapas_reader(repo: str, tokenizer: bool) -> list[str]:
    return [
        "import torch",
        "from transformers import AutoModel",
        "",
        f'model = AutoModel.from_pretrained("{repo}", trust_remote_code=True).eval()',
        "input_ids = torch.tensor([[1, 2, 3, 4, 5]])  # [CLS] question [SEP] table tokens",
        "mask = torch.ones_like(input_ids)",
        "types = torch.zeros(*input_ids.shape, 7, dtype=torch.long)  # the 7 TAPAS token types",
        "with torch.no_grad():",
        "    out = model(input_ids, mask, types)",
        "print(out.logits_cls, out.span_logits.shape, out.span_indexes.shape, out.token_probabilities.shape)",
    ]


def _flmr(repo: str, tokenizer: bool) -> list[str]:
    return [
        "import torch",
        "from transformers import AutoModel, AutoTokenizer",
        "",
        f'model = AutoModel.from_pretrained("{repo}", trust_remote_code=True).eval()',
        f'query_tokenizer = AutoTokenizer.from_pretrained("{repo}", subfolder="query_tokenizer", '
        "trust_remote_code=True)",
        f'context_tokenizer = AutoTokenizer.from_pretrained("{repo}", subfolder="context_tokenizer", '
        "trust_remote_code=True)",
        'q = query_tokenizer(["Answer the question: what is shown?"])',
        'd = context_tokenizer(["a passage about it"])',
        "size = model.config.vision_config.image_size",
        "pixels = torch.zeros(1, 3, size, size)",
        "with torch.no_grad():",
        '    Q = model.query(q["input_ids"], q["attention_mask"], pixel_values=pixels).late_interaction_output',
        '    D = model.doc(d["input_ids"], d["attention_mask"])',
        "    print(model.score(Q, D.late_interaction_output, D.context_mask))",
    ]


def _splade(repo: str, tokenizer: bool) -> list[str]:
    return [
        "from sentence_transformers import SparseEncoder",
        "",
        f'model = SparseEncoder("{repo}")',
        'scores = model.similarity(model.encode_query(["a query"]), model.encode_document(["a document"]))',
        "print(scores)",
    ]


USAGE = {
    "dense-retriever": _tapas_retriever,
    "reader": _tapas_reader,
    "late-interaction": _flmr,
    "sparse-encoder": _splade,
}


def _provenance(facts: CardFacts) -> list[str]:
    source, entry = dict(facts.source or {}), facts.entry
    origin = source.get("origin") or {}
    lines = ["## Provenance", ""]
    if entry is not None:
        lines.append(f"- registry id: `{entry.id}`")
    where = origin.get("url") or source.get("repo") or (entry.source.url if entry else None) or "a local file"
    named = f" (file `{source['name']}`)" if source.get("name") and not source.get("repo") else ""
    lines.append(f"- source: {where}{named}")
    if source.get("commit"):
        lines.append(f"- source commit: `{source['commit']}`")
    for label, digest in (
        ("source sha256", origin.get("sha256") or source.get("archive_sha256")),
        ("checkpoint sha256", source.get("sha256")),
    ):
        if digest:
            lines.append(f"- {label}: `{digest}`")
    lines += [
        f"- source file `{name}` sha256 `{digest}`" for name, digest in sorted((source.get("files") or {}).items())
    ]
    lines.append(f"- converted by zoo {__version__} (format `{source.get('format') or 'none'}`)")
    lines += [f"- note: {n}" for n in facts.notes]
    return [*lines, ""]


def _verification(facts: CardFacts) -> list[str]:
    lines = ["## Verification", ""]
    if not facts.checks:
        return [*lines, "No checks ran at conversion time; run `zoo verify` on this directory."]
    lines += ["| check | verdict | value | tolerance |", "|---|---|---|---|"]
    lines += [f"| {c['name']} | {c['verdict']} | {c.get('value')} | {c.get('tolerance')} |" for c in facts.checks]
    return lines
