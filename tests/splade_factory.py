"""Tiny SPLADE repos with the exact on-disk layout of real ones, for tests and demos.

The v5 layout is written by hand, file for file as sentence-transformers v5 wrote
tomaarsen/splade-distilbert-base-uncased-msmarco-mnrl (module types
`sentence_transformers.sparse_encoder.models.MLMTransformer` / `.SpladePooling`, pooling key
`word_embedding_dimension`), so no installed version can "fix" it on the way. The v6 layout is
whatever the installed sentence-transformers saves for the same model. Weights come from
numpy's PCG64 generator (stable across numpy and torch versions), so the stored golden values
in tests/data stay valid.

`reference_similarities` is the independent path that produced those golden values: plain
transformers plus the SPLADE formula, no sentence-transformers and no zoo code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

LAYOUTS = ("v5", "v6")
WEIGHTS = ("safetensors", "bin")

SPECIALS = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "the",
    "a",
    "an",
    "of",
    "to",
    "and",
    "in",
    "is",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "at",
    "from",
    "or",
    "be",
    "it",
    "are",
    "was",
    "this",
    "which",
    "any",
    "type",
    "what",
    "how",
    "many",
    "much",
    "does",
    "do",
    "can",
    "cost",
    "costs",
    "price",
    "dog",
    "dogs",
    "canine",
    "cat",
    "ultrasound",
    "vet",
    "veterinarian",
    "technician",
    "procedure",
    "region",
    "country",
    "live",
    "whether",
    "not",
    "depending",
    "anywhere",
    "$",
    "300",
    "500",
    "1",
    "2",
    "3",
    ",",
    ".",
    "?",
    "!",
    "-",
    "search",
    "sparse",
    "retrieval",
    "model",
    "query",
    "document",
    "lexical",
    "expansion",
    "vocabulary",
    "term",
    "terms",
    "weight",
    "weights",
    "neural",
    "network",
    "transformer",
    "bert",
    "token",
    "tokens",
    "water",
    "boil",
    "boils",
    "temperature",
    "degrees",
    "sea",
    "level",
    "paris",
    "capital",
    "france",
    "city",
    "river",
    "train",
    "trains",
    "run",
    "running",
    "fast",
    "slow",
    "long",
    "short",
    "text",
    "words",
]
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
MAX_SEQ_LENGTH = 24  # below max_position_embeddings, so long probe texts are truncated

V5_MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.sparse_encoder.models.MLMTransformer"},
    {
        "idx": 1,
        "name": "1",
        "path": "1_SpladePooling",
        "type": "sentence_transformers.sparse_encoder.models.SpladePooling",
    },
]
V5_ST_CONFIG = {
    "model_type": "SparseEncoder",
    "__version__": {"sentence_transformers": "5.0.0", "transformers": "4.50.3", "pytorch": "2.6.0+cu124"},
    "prompts": {"query": "", "document": ""},
    "default_prompt_name": None,
    "similarity_fn_name": "dot",
}


def vocabulary() -> dict[str, int]:
    """Specials, whole words, then single characters and their ## continuations (no word maps to [UNK])."""
    tokens = SPECIALS + list(dict.fromkeys(WORDS + LETTERS)) + [f"##{c}" for c in LETTERS]
    return {t: i for i, t in enumerate(tokens)}


def build_tokenizer(vocab: dict[str, int]):
    """A DistilBERT WordPiece tokenizer. `vocab=` is the transformers 5 argument; `vocab_file=` is silently ignored."""
    from transformers import DistilBertTokenizerFast

    return DistilBertTokenizerFast(vocab=vocab, do_lower_case=True, model_max_length=512)


def build_model(vocab_size: int, seed: int):
    """A 2-layer DistilBertForMaskedLM whose every parameter is drawn from numpy's PCG64."""
    import torch
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    config = DistilBertConfig(
        vocab_size=vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64, pad_token_id=0
    )
    model = DistilBertForMaskedLM(config).eval()
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            values = rng.standard_normal(tuple(param.shape)).astype(np.float32)
            if "layer_norm" in name and name.endswith("weight"):
                values = 1.0 + 0.1 * values
            elif name == "vocab_projector.bias":  # negative: most logits stay below 0, the output is sparse
                values = 0.3 * values - 1.5
            else:
                values = (0.1 if name.endswith("bias") else 0.3) * values
            param.copy_(torch.from_numpy(values))
    return model


def write_repo(out: Path, *, layout: str = "v5", weights: str = "safetensors", seed: int = 0) -> Path:
    """Write a tiny SPLADE repo into `out` (created, must not exist or be empty); returns `out`."""
    if layout not in LAYOUTS or weights not in WEIGHTS:
        raise ValueError(f"layout must be one of {LAYOUTS} and weights one of {WEIGHTS}")
    out = Path(out)
    if layout == "v6":
        return _write_v6(out, weights=weights, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    vocab = vocabulary()
    tokenizer = build_tokenizer(vocab)
    tokenizer.save_pretrained(out)
    (out / "vocab.txt").write_text("".join(f"{t}\n" for t in vocab))
    build_model(len(vocab), seed).save_pretrained(out)
    if weights == "bin":
        _safetensors_to_bin(out)
    _write_json(out / "modules.json", V5_MODULES)
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False})
    _write_json(out / "config_sentence_transformers.json", V5_ST_CONFIG)
    _write_json(
        out / "1_SpladePooling" / "config.json",
        {"pooling_strategy": "max", "activation_function": "relu", "word_embedding_dimension": len(vocab)},
    )
    (out / "README.md").write_text(
        "---\nlibrary_name: sentence-transformers\ntags: [sparse-encoder, splade]\n---\n"
        "# tiny SPLADE\nGenerated by tests/splade_factory.py (random weights).\n"
    )
    return out


def _write_v6(out: Path, *, weights: str, seed: int) -> Path:
    """Assemble the model the v6 way (Transformer with transformer_task="fill-mask" + SpladePooling) and
    let the installed sentence-transformers save it in its own layout."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    staging = out.with_name(out.name + ".v5-staging")
    write_repo(staging, layout="v5", seed=seed)
    try:
        modules = [
            Transformer(
                str(staging),
                transformer_task="fill-mask",
                max_seq_length=MAX_SEQ_LENGTH,
                model_kwargs={"local_files_only": True},
            ),
            SpladePooling("max", "relu", embedding_dimension=len(vocabulary())),
        ]
        model = SparseEncoder(
            modules=modules, similarity_fn_name="dot", prompts={"query": "", "document": ""}, device="cpu"
        )
        model.save_pretrained(str(out))
        if weights == "bin":
            _safetensors_to_bin(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _safetensors_to_bin(repo: Path) -> None:
    """Replace model.safetensors with the pytorch_model.bin an older library would have written:
    the full state dict, where the tied output projection shares storage with the word embeddings."""
    import torch
    from transformers import AutoModelForMaskedLM

    state = AutoModelForMaskedLM.from_pretrained(repo, local_files_only=True).state_dict()
    (repo / "model.safetensors").unlink()
    torch.save(state, repo / "pytorch_model.bin")


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def reference_similarities(repo: Path, query: str, documents: list[str]) -> list[float]:
    """Dot products of SPLADE vectors computed with plain transformers (the v5 repo's settings: max, relu)."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(repo)
    model = AutoModelForMaskedLM.from_pretrained(repo).eval()

    def encode(texts: list[str]) -> torch.Tensor:
        batch = tokenizer(texts, padding=True, truncation=True, max_length=MAX_SEQ_LENGTH, return_tensors="pt")
        with torch.no_grad():
            logits = model(**batch).logits
        weights = torch.log1p(torch.relu(logits * batch["attention_mask"].unsqueeze(-1)))
        return weights.max(dim=1).values

    return (encode([query]) @ encode(documents).T)[0].tolist()
