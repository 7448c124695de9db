"""SPLADE sparse encoders: load a local directory as a sentence-transformers `SparseEncoder`.

Two on-disk layouts exist. sentence-transformers v5 wrote module types
`sentence_transformers.sparse_encoder.models.MLMTransformer` / `.SpladePooling` and the pooling
key `word_embedding_dimension` (with max_seq_length in sentence_bert_config.json); v6 writes
`sentence_transformers.base.modules.transformer.Transformer` with `transformer_task: fill-mask`,
`embedding_dimension`, and keeps max_seq_length in the tokenizer config. sentence-transformers 6
loads both; `read_spec` reads either without it, so verify's reference can rebuild the model
from the files alone. Nothing here touches the network; loading the model itself is
sentence-transformers' job (zoo.families.splade.load_sparse_encoder).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

V5_PREFIX = "sentence_transformers.sparse_encoder.models."
TRANSFORMER_TYPES = (
    V5_PREFIX + "MLMTransformer",
    "sentence_transformers.sparse_encoder.modules.mlm_transformer.MLMTransformer",
    "sentence_transformers.sparse_encoder.modules.MLMTransformer",
    "sentence_transformers.base.modules.transformer.Transformer",
    "sentence_transformers.base.modules.Transformer",
    "sentence_transformers.models.Transformer",
)
POOLING_TYPES = (
    V5_PREFIX + "SpladePooling",
    "sentence_transformers.sparse_encoder.modules.splade_pooling.SpladePooling",
    "sentence_transformers.sparse_encoder.modules.SpladePooling",
)
POOLING_STRATEGIES = ("max", "sum")
ACTIVATIONS = ("relu", "log1p_relu")
DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")  # the order encode_document tries


class SpladeFormatError(ValueError):
    """A directory that is not a SPLADE sentence-transformers encoder (a caller's mistake, not a bug)."""

    exit_code = 2  # what a command line should exit with: bad input


@dataclass(frozen=True)
class SpladeSpec:
    """What a SPLADE directory says about itself, read from its JSON files only."""

    layout: str  # "v5" | "v6"
    transformer_dir: Path
    pooling_strategy: str = "max"
    activation: str = "relu"
    dimension: int | None = None
    max_seq_length: int | None = None  # explicit setting; None: tokenizer / position-embedding limit
    do_lower_case: bool = False
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    similarity: str = "dot"
    max_active_dims: int | None = None

    def prompt(self, kind: str) -> str:
        """The prompt encode_query ("query") / encode_document ("document") prepends."""
        names = ("query",) if kind == "query" else DOCUMENT_PROMPT_NAMES
        for name in names:
            if name in self.prompts:
                return self.prompts[name]
        return self.prompts.get(self.default_prompt_name or "", "")


def read_spec(path: str | Path) -> SpladeSpec:
    """Parse modules.json and the module configs; SpladeFormatError if this is not a SPLADE encoder."""
    root = Path(path)
    if not root.is_dir():
        raise SpladeFormatError(f"{root}: not a directory")
    if not (root / "modules.json").is_file():
        raise SpladeFormatError(f"{root}: no modules.json; not a sentence-transformers SPLADE directory")
    modules = _json(root / "modules.json")
    if not isinstance(modules, list) or not all(isinstance(m, dict) and "type" in m for m in modules):
        raise SpladeFormatError(f"{root / 'modules.json'}: expected a list of modules with a 'type'")
    types = [m["type"] for m in modules]
    if len(modules) != 2 or types[0] not in TRANSFORMER_TYPES or types[1] not in POOLING_TYPES:
        raise SpladeFormatError(
            f"{root}: modules {types} are not a SPLADE encoder (an MLM transformer followed by "
            "SpladePooling); other sparse architectures are not supported"
        )
    transformer_dir = root / modules[0].get("path", "")
    pooling_dir = root / modules[1].get("path", "")
    st_module = _json(transformer_dir / "sentence_bert_config.json", required=False) or {}
    if types[0].endswith(".Transformer") and st_module.get("transformer_task") != "fill-mask":
        raise SpladeFormatError(
            f"{transformer_dir}: a Transformer module needs transformer_task 'fill-mask' for SPLADE, "
            f"got {st_module.get('transformer_task')!r}"
        )
    pooling = _json(pooling_dir / "config.json")
    model = _json(root / "config_sentence_transformers.json", required=False) or {}
    spec = SpladeSpec(
        layout="v5" if types[1].startswith(V5_PREFIX) or "word_embedding_dimension" in pooling else "v6",
        transformer_dir=transformer_dir,
        pooling_strategy=pooling.get("pooling_strategy", "max"),
        activation=pooling.get("activation_function", "relu"),
        dimension=pooling.get("embedding_dimension", pooling.get("word_embedding_dimension")),
        max_seq_length=st_module.get("max_seq_length"),
        do_lower_case=bool(st_module.get("do_lower_case", False)),
        prompts=dict(model.get("prompts") or {}),
        default_prompt_name=model.get("default_prompt_name"),
        similarity=model.get("similarity_fn_name") or "dot",
        max_active_dims=model.get("max_active_dims"),
    )
    if spec.pooling_strategy not in POOLING_STRATEGIES or spec.activation not in ACTIVATIONS:
        raise SpladeFormatError(
            f"{pooling_dir / 'config.json'}: unsupported pooling {spec.pooling_strategy!r} / "
            f"activation {spec.activation!r}"
        )
    return spec


def _json(path: Path, *, required: bool = True) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if required:
            raise SpladeFormatError(f"{path}: missing") from None
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpladeFormatError(f"{path}: unreadable JSON: {exc}") from None
