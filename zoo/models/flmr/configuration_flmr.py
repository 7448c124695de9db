"""FLMR / PreFLMR configuration: the hub config.json as the authors' code wrote it, typed.

The hub files were written by transformers 4.x (`model_type: "flmr"`, nested `text_config`
"flmr_text_model" and `vision_config` "flmr_vision_model"). These are transformers 5
`PreTrainedConfig`s with the authors' field names and defaults; bookkeeping keys a
transformers-4 config carries are kept as attributes, so nothing is lost on a round trip.
The mapping network's BERT config is derived from the text config
(`transformer_mapping_config_base` is always "bert-base-uncased", whose fields equal the text
config's), so loading never needs the network.
"""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import BertConfig, CLIPVisionConfig, PreTrainedConfig

_MAPPING_BASES = ("bert-base-uncased", "google-bert/bert-base-uncased")


class FLMRInputError(ValueError):
    """A config, directory or call that FLMR cannot take (a caller's mistake, not a bug)."""

    exit_code = 2  # what a command line should exit with: bad input


class FLMRTextConfig(PreTrainedConfig):
    """The BERT text encoder (query and context)."""

    model_type = "flmr_text_model"
    base_config_key = "text_config"

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
    pad_token_id: int | None = 0
    position_embedding_type: str = "absolute"
    projection_dim: int = 0
    text_encoder_base_model: str = "bert-base-uncased"
    query_maxlen: int = 32

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        # transformers 5 BERT has absolute positions only, and FLMR never used encode_proj.
        if self.position_embedding_type != "absolute":
            raise FLMRInputError(
                f"text_config: position_embedding_type {self.position_embedding_type!r} is not supported"
            )
        if self.projection_dim:
            raise FLMRInputError("text_config: projection_dim > 0 (an encode_proj head) is not supported")

    def bert_config(self, attn_implementation: str) -> BertConfig:
        return BertConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            hidden_act=self.hidden_act,
            hidden_dropout_prob=self.hidden_dropout_prob,
            attention_probs_dropout_prob=self.attention_probs_dropout_prob,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size,
            initializer_range=self.initializer_range,
            layer_norm_eps=self.layer_norm_eps,
            pad_token_id=self.pad_token_id,
            attn_implementation=attn_implementation,  # type: ignore[call-arg]  # a PreTrainedConfig kwarg
        )


class FLMRVisionConfig(PreTrainedConfig):
    """The CLIP vision tower."""

    model_type = "flmr_vision_model"
    base_config_key = "vision_config"

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

    def clip_config(self, attn_implementation: str) -> CLIPVisionConfig:
        return CLIPVisionConfig(
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            projection_dim=self.projection_dim,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            num_channels=self.num_channels,
            image_size=self.image_size,
            patch_size=self.patch_size,
            hidden_act=self.hidden_act,
            layer_norm_eps=self.layer_norm_eps,
            attention_dropout=self.attention_dropout,
            initializer_range=self.initializer_range,
            initializer_factor=self.initializer_factor,
            attn_implementation=attn_implementation,  # type: ignore[call-arg]  # a PreTrainedConfig kwarg
        )

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class FLMRConfig(PreTrainedConfig):
    """The whole retriever: text + vision towers, vision MLP, optional PreFLMR mapping network."""

    model_type = "flmr"
    sub_configs_defaults: ClassVar[dict[str, Any]] = {"text_config": FLMRTextConfig, "vision_config": FLMRVisionConfig}

    text_config: dict | FLMRTextConfig | None = None
    vision_config: dict | FLMRVisionConfig | None = None
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
    query_mask_input_ids_skip_list: list[int] | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if self.query_mask_input_ids_skip_list is None:
            self.query_mask_input_ids_skip_list = []
        self._validate()

    @property
    def text(self) -> FLMRTextConfig:
        assert isinstance(self.text_config, FLMRTextConfig)  # __post_init__ builds it
        return self.text_config

    @property
    def vision(self) -> FLMRVisionConfig:
        assert isinstance(self.vision_config, FLMRVisionConfig)
        return self.vision_config

    @property
    def kind(self) -> str:
        """ "preflmr" when the cross-attention mapping network is on, else "flmr"."""
        return "preflmr" if self.use_transformer_mapping_network else "flmr"

    def mapping_bert_config(self, attn_implementation: str) -> BertConfig:
        """The mapping network's BertConfig, derived from the text config (never fetched)."""
        cfg = self.text.bert_config(attn_implementation)
        cfg.num_hidden_layers = int(self.transformer_mapping_num_hidden_layers or 0)
        cfg.is_decoder = True
        cfg.add_cross_attention = True
        return cfg

    def _validate(self) -> None:
        if self.separate_query_and_context_vision_encoder:
            raise FLMRInputError(
                "config.json: separate_query_and_context_vision_encoder=true is not supported "
                "(no published FLMR checkpoint uses it)"
            )
        if self.use_transformer_mapping_network:
            if not self.use_vision_encoder:
                raise FLMRInputError("config.json: the mapping network needs use_vision_encoder=true")
            if self.transformer_mapping_config_base not in _MAPPING_BASES:
                raise FLMRInputError(
                    f"config.json: transformer_mapping_config_base {self.transformer_mapping_config_base!r} "
                    f"cannot be derived offline; expected one of {', '.join(_MAPPING_BASES)}"
                )
            if not self.transformer_mapping_num_hidden_layers:
                raise FLMRInputError("config.json: transformer_mapping_num_hidden_layers must be >= 1")
        if (self.dim * self.mapping_network_prefix_length) % 2:
            raise FLMRInputError("config.json: dim * mapping_network_prefix_length must be even")
