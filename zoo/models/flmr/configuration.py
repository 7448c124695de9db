"""FLMR / PreFLMR configuration: the hub config.json as written by the authors' code, typed.

The hub files were written by transformers 4.x (`model_type: "flmr"`, nested `text_config`
"flmr_text_model" and `vision_config` "flmr_vision_model"). Fields the model uses are typed
dataclass fields with the authors' defaults; other keys (transformers bookkeeping such as
`transformers_version`) are kept verbatim so a load/save round trip loses nothing. The mapping
network's BERT config is derived from the text config (`transformer_mapping_config_base` is
always "bert-base-uncased", whose fields equal the text config's), so loading never needs the network.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from transformers import BertConfig, CLIPVisionConfig

from ...errors import FormatError

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"

# Keys every transformers-4 PretrainedConfig may write; they do not change FLMR's computation.
_GENERIC_KEYS = frozenset({
    "_name_or_path", "_attn_implementation_autoset", "_commit_hash", "add_cross_attention", "architectures",
    "auto_map", "bad_words_ids", "begin_suppress_tokens", "bos_token_id", "chunk_size_feed_forward",
    "cross_attention_hidden_size", "decoder_start_token_id", "diversity_penalty", "do_sample", "dropout", "dtype",
    "early_stopping", "encoder_no_repeat_ngram_size", "eos_token_id", "exponential_decay_length_penalty",
    "finetuning_task", "forced_bos_token_id", "forced_eos_token_id", "id2label", "is_decoder",
    "is_encoder_decoder", "label2id", "length_penalty", "max_length", "min_length", "no_repeat_ngram_size",
    "num_beam_groups", "num_beams", "num_return_sequences", "output_attentions", "output_hidden_states",
    "output_scores", "prefix", "problem_type", "pruned_heads", "remove_invalid_values",
    "repetition_penalty", "return_dict", "return_dict_in_generate", "sep_token_id", "suppress_tokens",
    "task_specific_params", "temperature", "tf_legacy_loss", "tie_encoder_decoder", "tie_word_embeddings",
    "tokenizer_class", "top_k", "top_p", "torch_dtype", "torchscript", "transformers_version",
    "typical_p", "use_bfloat16", "use_cache", "classifier_dropout",
})

_MAPPING_BASES = ("bert-base-uncased", "google-bert/bert-base-uncased")


def _split(cls: type, data: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate typed fields from bookkeeping keys; unknown keys are kept but reported."""
    names = {f.name for f in fields(cls)} - {"extra"}
    known = {k: v for k, v in data.items() if k in names}
    extra = {k: v for k, v in data.items() if k not in names and k != "model_type"}
    unknown = sorted(k for k in extra if k not in _GENERIC_KEYS)
    if unknown:
        logger.warning("%s: keeping unrecognised config keys %s", where, ", ".join(unknown))
    model_type = data.get("model_type", cls.model_type)
    if model_type != cls.model_type:
        raise FormatError(f"{where}: model_type is {model_type!r}, expected {cls.model_type!r}")
    return known, extra


@dataclass
class FLMRTextConfig:
    """The BERT text encoder (query and context)."""

    model_type: ClassVar[str] = "flmr_text_model"

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    position_embedding_type: str = "absolute"
    projection_dim: int = 0
    text_encoder_base_model: str = "bert-base-uncased"
    query_maxlen: int = 32
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FLMRTextConfig:
        known, extra = _split(cls, data, "text_config")
        cfg = cls(**known, extra=extra)
        # transformers 5 BERT has absolute positions only, and FLMR never used encode_proj.
        if cfg.position_embedding_type != "absolute":
            raise FormatError(f"text_config: position_embedding_type {cfg.position_embedding_type!r} is not supported")
        if cfg.projection_dim:
            raise FormatError("text_config: projection_dim > 0 (an encode_proj head) is not supported")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    def bert_config(self, attn_implementation: str) -> BertConfig:
        return BertConfig(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads, intermediate_size=self.intermediate_size,
            hidden_act=self.hidden_act, hidden_dropout_prob=self.hidden_dropout_prob,
            attention_probs_dropout_prob=self.attention_probs_dropout_prob,
            max_position_embeddings=self.max_position_embeddings, type_vocab_size=self.type_vocab_size,
            initializer_range=self.initializer_range, layer_norm_eps=self.layer_norm_eps,
            pad_token_id=self.pad_token_id, attn_implementation=attn_implementation,
        )


@dataclass
class FLMRVisionConfig:
    """The CLIP vision tower."""

    model_type: ClassVar[str] = "flmr_vision_model"

    hidden_size: int = 768
    intermediate_size: int = 3072
    projection_dim: int = 512
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    num_channels: int = 3
    image_size: int = 224
    patch_size: int = 32
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    attention_dropout: float = 0.0
    initializer_range: float = 0.02
    initializer_factor: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FLMRVisionConfig:
        known, extra = _split(cls, data, "vision_config")
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    def clip_config(self, attn_implementation: str) -> CLIPVisionConfig:
        return CLIPVisionConfig(
            hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            projection_dim=self.projection_dim, num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads, num_channels=self.num_channels,
            image_size=self.image_size, patch_size=self.patch_size, hidden_act=self.hidden_act,
            layer_norm_eps=self.layer_norm_eps, attention_dropout=self.attention_dropout,
            initializer_range=self.initializer_range, initializer_factor=self.initializer_factor,
            attn_implementation=attn_implementation,
        )

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@dataclass
class FLMRConfig:
    """The whole retriever: text + vision towers, vision MLP, optional PreFLMR mapping network."""

    model_type: ClassVar[str] = "flmr"

    text_config: FLMRTextConfig = field(default_factory=FLMRTextConfig)
    vision_config: FLMRVisionConfig = field(default_factory=FLMRVisionConfig)
    mask_punctuation: bool = True
    mapping_network_prefix_length: int = 32
    dim: int = 128
    use_vision_encoder: bool = True
    initializer_range: float = 0.02
    separate_query_and_context_text_encoder: bool = False
    separate_query_and_context_vision_encoder: bool = False
    query_concat_output_from_vision_encoder: bool = True
    query_concat_output_from_text_encoder: bool = True
    context_concat_output_from_vision_encoder: bool = False
    context_concat_output_from_text_encoder: bool = True
    use_transformer_mapping_network: bool = False
    transformer_mapping_config_base: str | None = None
    transformer_mapping_num_hidden_layers: int | None = None
    load_cpu_extension: bool = False
    mask_instruction_token: str | None = None
    transformer_mapping_cross_attention_length: int = 32
    vision_model_version: str = "openai/clip-vit-base-patch32"
    query_mask_input_ids_skip_list: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FLMRConfig:
        known, extra = _split(cls, data, "config.json")
        known["text_config"] = FLMRTextConfig.from_dict(dict(known.get("text_config") or {}))
        known["vision_config"] = FLMRVisionConfig.from_dict(dict(known.get("vision_config") or {}))
        cfg = cls(**known, extra=extra)
        cfg._validate()
        return cfg

    @classmethod
    def from_pretrained(cls, path: str | Path) -> FLMRConfig:
        """Read `path/config.json` (or `path` itself when it is the file)."""
        file = Path(path)
        if file.is_dir():
            file = file / CONFIG_NAME
        try:
            data = json.loads(file.read_text())
        except FileNotFoundError:
            raise FormatError(f"{file}: no FLMR config.json") from None
        except json.JSONDecodeError as exc:
            raise FormatError(f"{file}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise FormatError(f"{file}: expected a JSON object")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        out = _to_dict(self)
        out["text_config"] = self.text_config.to_dict()
        out["vision_config"] = self.vision_config.to_dict()
        return dict(sorted(out.items()))

    def save_pretrained(self, directory: str | Path) -> None:
        Path(directory, CONFIG_NAME).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @property
    def kind(self) -> str:
        """"preflmr" when the cross-attention mapping network is on, else "flmr"."""
        return "preflmr" if self.use_transformer_mapping_network else "flmr"

    def mapping_bert_config(self, attn_implementation: str) -> BertConfig:
        """The mapping network's BertConfig, derived from the text config (never fetched)."""
        cfg = self.text_config.bert_config(attn_implementation)
        cfg.num_hidden_layers = int(self.transformer_mapping_num_hidden_layers or 0)
        cfg.is_decoder = True
        cfg.add_cross_attention = True
        return cfg

    def _validate(self) -> None:
        if self.separate_query_and_context_vision_encoder:
            raise FormatError("config.json: separate_query_and_context_vision_encoder=true is not supported "
                              "(no published FLMR checkpoint uses it)")
        if self.use_transformer_mapping_network:
            if not self.use_vision_encoder:
                raise FormatError("config.json: the mapping network needs use_vision_encoder=true")
            if self.transformer_mapping_config_base not in _MAPPING_BASES:
                raise FormatError(
                    f"config.json: transformer_mapping_config_base {self.transformer_mapping_config_base!r} "
                    f"cannot be derived offline; expected one of {', '.join(_MAPPING_BASES)}")
            if not self.transformer_mapping_num_hidden_layers:
                raise FormatError("config.json: transformer_mapping_num_hidden_layers must be >= 1")
        if (self.dim * self.mapping_network_prefix_length) % 2:
            raise FormatError("config.json: dim * mapping_network_prefix_length must be even")


def _to_dict(cfg: Any) -> dict[str, Any]:
    out = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in ("extra",)}
    out.update(cfg.extra)
    out["model_type"] = cfg.model_type
    return out
