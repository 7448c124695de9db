"""FLMR / PreFLMR late-interaction retriever on transformers 5 classes.

Same public surface as the authors' `FLMRModelForRetrieval` (`query`, `doc`, `score`, outputs
named `late_interaction_output` / `context_mask`) so user code ports unchanged, computed with
transformers 5's BertModel, CLIPVisionModel and BertEncoder. It is a `PreTrainedModel`, so
`from_pretrained` / `save_pretrained` / `push_to_hub` and dtype casts behave as usual; loading
is strict (a missing, unexpected or misshapen tensor raises FLMRInputError). Attribute names
echo the hub checkpoint; transformers 4's extra `vision_model.` level in CLIP keys is undone on
load and restored on save by transformers' own CLIPVisionModel key mapping, so a saved
directory has the hub layout. Aliases (a tied context text encoder, the shared context vision
tower) are properties, never stored. This package imports only torch and transformers, so its
files ship unchanged as remote code beside a converted model.
"""

from __future__ import annotations

import logging
import os
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn
from transformers import BertModel, CLIPVisionModel, PreTrainedModel
from transformers.models.bert.modeling_bert import BertEncoder
from transformers.utils import ModelOutput

from .configuration_flmr import FLMRConfig, FLMRInputError
from .tokenization_flmr import FLMRContextEncoderTokenizer, FLMRQueryEncoderTokenizer

logger = logging.getLogger(__name__)

QUERY_TOKENIZER_DIR = "query_tokenizer"
CONTEXT_TOKENIZER_DIR = "context_tokenizer"
ATTN_IMPLEMENTATIONS = ("eager", "sdpa")
# hub (transformers-4) key prefix -> this module's key prefix; transformers applies it on load and save
HUB_VISION_PREFIX, MODULE_VISION_PREFIX = (
    "query_vision_encoder.vision_model.vision_model.",
    "query_vision_encoder.vision_model.",
)


def module_to_hub_key(key: str) -> str:
    """The name a module tensor has in the hub's safetensors files."""
    return HUB_VISION_PREFIX + key[len(MODULE_VISION_PREFIX) :] if key.startswith(MODULE_VISION_PREFIX) else key


@dataclass
class FLMRQueryEncoderOutput(ModelOutput):
    pooler_output: torch.Tensor | None = None
    late_interaction_output: torch.Tensor | None = None


@dataclass
class FLMRContextEncoderOutput(ModelOutput):
    pooler_output: torch.Tensor | None = None
    late_interaction_output: torch.Tensor | list[torch.Tensor] | None = None
    context_mask: torch.Tensor | None = None


class FLMRMultiLayerPerceptron(nn.Module):
    """Linear, Tanh, Linear: the vision CLS -> P prefix tokens MLP (keys `model.0`, `model.2`)."""

    def __init__(self, sizes: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(nn.Tanh())
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class FLMRTextModel(nn.Module):
    """BERT with pooler, under the hub's `bert_model.` prefix."""

    def __init__(self, config: FLMRConfig, attn_implementation: str) -> None:
        super().__init__()
        self.bert_model = BertModel(config.text.bert_config(attn_implementation), add_pooling_layer=True)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.bert_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class FLMRVisionModel(nn.Module):
    """CLIP vision tower under `vision_model.` (the hub adds one more `vision_model.` level)."""

    def __init__(self, config: FLMRConfig, attn_implementation: str) -> None:
        super().__init__()
        self.vision_model = CLIPVisionModel(config.vision.clip_config(attn_implementation))

    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool = False) -> Any:
        return self.vision_model(pixel_values=pixel_values, output_hidden_states=output_hidden_states)


def non_causal_mapping_encoder(config: FLMRConfig, attn_implementation: str) -> BertEncoder:
    """The PreFLMR mapping network: a BertEncoder with cross-attention whose self-attention is full.

    `is_decoder=True` (needed for cross-attention) makes transformers 5 mark self-attention causal,
    and SDPA applies that silently when no mask is passed. The authors ran it without a causal
    mask, so the flag is cleared here and `FLMRModelForRetrieval` also passes an explicit full mask.
    """
    encoder = BertEncoder(config.mapping_bert_config(attn_implementation))
    for layer in encoder.layer:
        cast(Any, layer).attention.self.is_causal = False
    return encoder


class FLMRPreTrainedModel(PreTrainedModel):
    config_class = FLMRConfig
    base_model_prefix = "flmr"
    main_input_name = "input_ids"
    _supports_sdpa = True


class FLMRModelForRetrieval(FLMRPreTrainedModel):
    """Late-interaction retriever; build with `from_pretrained(hub_dir)` (tokenizers load from its subfolders)."""

    def __init__(
        self,
        config: FLMRConfig,
        query_tokenizer: FLMRQueryEncoderTokenizer | None = None,
        context_tokenizer: FLMRContextEncoderTokenizer | None = None,
    ) -> None:
        super().__init__(config)
        attn_implementation = config._attn_implementation or "sdpa"
        if attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise FLMRInputError(
                f"attn_implementation must be one of {ATTN_IMPLEMENTATIONS}, not {attn_implementation!r}"
            )
        self.query_tokenizer = query_tokenizer
        self.context_tokenizer = context_tokenizer
        dim, prefix = config.dim, config.mapping_network_prefix_length
        text_h, vision_h = config.text.hidden_size, config.vision.hidden_size

        self.query_text_encoder = FLMRTextModel(config, attn_implementation)
        self.query_text_encoder_linear = nn.Linear(text_h, dim, bias=False)
        if config.separate_query_and_context_text_encoder:  # registered; the properties below read them
            # registered directly: the names are also the alias properties below, which add_module refuses
            self._modules["context_text_encoder"] = FLMRTextModel(config, attn_implementation)
            self._modules["context_text_encoder_linear"] = nn.Linear(text_h, dim, bias=False)
        self.query_vision_projection = FLMRMultiLayerPerceptron((vision_h, dim * prefix // 2, dim * prefix))
        if config.use_vision_encoder:
            self.query_vision_encoder = FLMRVisionModel(config, attn_implementation)
        if config.use_transformer_mapping_network:
            self.transformer_mapping_input_linear = nn.Linear(vision_h, text_h)
            self.transformer_mapping_network = non_causal_mapping_encoder(config, attn_implementation)
            self.transformer_mapping_output_linear = nn.Linear(text_h, dim)
        self.skiplist_ids = self._punctuation_ids(context_tokenizer) if config.mask_punctuation else []
        self.instruction_token_id = self._instruction_id(query_tokenizer)
        self.post_init()

    # --- aliases the hub does not store -----------------------------------------------------

    @property
    def context_text_encoder(self) -> FLMRTextModel:
        separate = self._modules.get("context_text_encoder")
        return self.query_text_encoder if separate is None else cast(FLMRTextModel, separate)

    @property
    def context_text_encoder_linear(self) -> nn.Linear:
        separate = self._modules.get("context_text_encoder_linear")
        return self.query_text_encoder_linear if separate is None else cast(nn.Linear, separate)

    @property
    def context_vision_encoder(self) -> FLMRVisionModel:
        return self.query_vision_encoder

    @property
    def context_vision_projection(self) -> FLMRMultiLayerPerceptron:
        return self.query_vision_projection

    # --- token ids derived from the tokenizers ---------------------------------------------------

    @staticmethod
    def _punctuation_ids(tokenizer: FLMRContextEncoderTokenizer | None) -> list[int]:
        if tokenizer is None:
            return []
        return sorted({tokenizer.encode(s, add_special_tokens=False)[0] for s in string.punctuation})

    def _instruction_id(self, tokenizer: FLMRQueryEncoderTokenizer | None) -> int | None:
        token = self.config.mask_instruction_token
        if token is None or tokenizer is None:
            return None
        return tokenizer.encode(token, add_special_tokens=False)[0]

    def _require_tokenizers(self) -> tuple[FLMRQueryEncoderTokenizer, FLMRContextEncoderTokenizer]:
        if self.query_tokenizer is None or self.context_tokenizer is None:
            raise FLMRInputError(
                "FLMRModelForRetrieval needs its query and context tokenizers "
                "(from_pretrained loads them from query_tokenizer/ and context_tokenizer/)"
            )
        return self.query_tokenizer, self.context_tokenizer

    # --- masks ----------------------------------------------------------------------------------

    def query_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[B, L] bool: drop pad id 0 and skip-list ids; PreFLMR also drops the instruction.

        With `mask_instruction_token` the first occurrence s of its id splits instruction from
        question: positions 0, 1 and those after s are kept. A row without it gets s = 1 and an
        error is logged, as in the original.
        """
        skip = torch.tensor(self.config.query_mask_input_ids_skip_list, dtype=input_ids.dtype, device=input_ids.device)
        keep = (input_ids != 0) & ~torch.isin(input_ids, skip)
        if self.config.mask_instruction_token is None:
            return keep
        self._require_tokenizers()
        if self.instruction_token_id is None:
            raise FLMRInputError("the instruction token id is unknown: build the model with its query tokenizer")
        sep = torch.argmax(torch.eq(input_ids, self.instruction_token_id).int(), dim=1)
        for row in torch.nonzero(sep < 1).flatten().tolist():
            logger.error("can not find the separator in the input_ids: %s", input_ids[row].tolist())
        sep = sep.clamp(min=1)
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        return keep & ((pos[None, :] > sep[:, None]) | (pos[None, :] < 2))

    def doc_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[B, L] bool: drop pad id 0 and punctuation ids."""
        if self.config.mask_punctuation:
            self._require_tokenizers()
        skip = torch.tensor(self.skiplist_ids, dtype=input_ids.dtype, device=input_ids.device)
        return (input_ids != 0) & ~torch.isin(input_ids, skip)

    # --- encoders -------------------------------------------------------------------------------

    def query(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        concat_output_from_vision_encoder: bool | None = None,
        concat_output_from_text_encoder: bool | None = None,
    ) -> FLMRQueryEncoderOutput:
        """Q = normalise(concat[text tokens, P vision MLP tokens, PreFLMR mapping tokens])."""
        cfg = self.config
        use_vision = (
            cfg.query_concat_output_from_vision_encoder
            if concat_output_from_vision_encoder is None
            else concat_output_from_vision_encoder
        )
        use_text = (
            cfg.query_concat_output_from_text_encoder
            if concat_output_from_text_encoder is None
            else concat_output_from_text_encoder
        )
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        text_hidden = self.query_text_encoder(input_ids, attention_mask)
        text = self.query_text_encoder_linear(text_hidden) * self.query_mask(input_ids).unsqueeze(2).float()
        parts = [text] if use_text else []
        if use_vision:
            if (pixel_values is None) == (image_features is None):
                raise FLMRInputError("query(): pass exactly one of pixel_values and image_features")
            parts.extend(self._query_vision(input_ids, text_hidden, pixel_values, image_features))
        if not parts:
            raise FLMRInputError("query(): nothing to concatenate (both text and vision outputs are off)")
        q = torch.cat(parts, dim=1)
        return FLMRQueryEncoderOutput(
            pooler_output=q[:, 0, :], late_interaction_output=nn.functional.normalize(q, p=2, dim=2)
        )

    def _query_vision(
        self,
        input_ids: torch.Tensor,
        text_hidden: torch.Tensor,
        pixel_values: torch.Tensor | None,
        image_features: torch.Tensor | None,
    ) -> list[torch.Tensor]:
        cfg = self.config
        vision_out = None
        if pixel_values is not None:
            if not cfg.use_vision_encoder:
                raise FLMRInputError("this model has no vision encoder (use_vision_encoder=false): pass image_features")
            batch = pixel_values.shape[0]
            pixel_values = pixel_values.to(self.device)
            if pixel_values.dim() == 5:  # several regions of interest per query
                pixel_values = pixel_values.reshape(-1, *pixel_values.shape[2:])
            vision_out = self.query_vision_encoder(
                pixel_values, output_hidden_states=cfg.use_transformer_mapping_network
            )
            cls = vision_out.last_hidden_state[:, 0]  # before post_layernorm, as the authors did
        elif image_features is not None:
            batch = image_features.shape[0]
            cls = image_features.to(self.device)
        else:
            raise FLMRInputError("query(): vision output requested but no pixel_values / image_features given")
        prefix = self.query_vision_projection(cls).view(batch, -1, cfg.dim)
        if not cfg.use_transformer_mapping_network:
            return [prefix]
        if vision_out is None:
            raise FLMRInputError("PreFLMR's mapping network needs pixel_values, not image_features")
        return [prefix, self._mapping_tokens(input_ids, text_hidden, vision_out.hidden_states[-2][:, 1:])]

    def _mapping_tokens(
        self, input_ids: torch.Tensor, text_hidden: torch.Tensor, patches: torch.Tensor
    ) -> torch.Tensor:
        """Patch tokens cross-attend to the raw text hidden states cut to cross_attention_length."""
        cfg = self.config
        length = cfg.transformer_mapping_cross_attention_length
        features = self.transformer_mapping_input_linear(patches)
        skip = torch.tensor(cfg.query_mask_input_ids_skip_list, dtype=input_ids.dtype, device=input_ids.device)
        visible = (~torch.isin(input_ids, skip))[:, :length].to(features.dtype)
        cross_mask = (1.0 - visible)[:, None, None, :] * torch.finfo(features.dtype).min
        batch, patches_len = features.shape[:2]
        full_self_mask = torch.zeros(batch, 1, patches_len, patches_len, dtype=features.dtype, device=features.device)
        hidden = self.transformer_mapping_network(
            features,
            attention_mask=full_self_mask,
            encoder_hidden_states=text_hidden[:, :length],
            encoder_attention_mask=cross_mask,
        ).last_hidden_state
        return self.transformer_mapping_output_linear(hidden)

    def doc(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        concat_output_from_vision_encoder: bool | None = None,
        concat_output_from_text_encoder: bool | None = None,
        keep_dims: bool = True,
        return_mask: bool = True,
    ) -> FLMRContextEncoderOutput:
        """D = normalise(text tokens * punctuation mask); context_mask is [B, L, 1] bool."""
        cfg = self.config
        use_vision = (
            cfg.context_concat_output_from_vision_encoder
            if concat_output_from_vision_encoder is None
            else concat_output_from_vision_encoder
        )
        use_text = (
            cfg.context_concat_output_from_text_encoder
            if concat_output_from_text_encoder is None
            else concat_output_from_text_encoder
        )
        parts: list[torch.Tensor] = []
        masks: list[torch.Tensor] = []
        if use_vision:  # vision first: the authors' index reads the leading unmasked rows
            if pixel_values is not None:
                cls = self.context_vision_encoder(pixel_values.to(self.device)).last_hidden_state[:, 0]
            elif image_features is not None:
                cls = image_features.to(self.device)
            else:
                raise FLMRInputError("doc(): vision output requested but no pixel_values / image_features given")
            prefix = self.context_vision_projection(cls).view(-1, cfg.mapping_network_prefix_length, cfg.dim)
            parts.append(prefix)
            masks.append(torch.ones(prefix.shape[:2] + (1,), device=self.device))
        if use_text:
            input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
            mask = self.doc_mask(input_ids).unsqueeze(2).float()
            parts.append(self.context_text_encoder_linear(self.context_text_encoder(input_ids, attention_mask)) * mask)
            masks.append(mask)
        if not parts:
            raise FLMRInputError("doc(): nothing to concatenate (both text and vision outputs are off)")
        d = nn.functional.normalize(torch.cat(parts, dim=1), p=2, dim=2)
        mask = torch.cat(masks, dim=1).bool()
        out: torch.Tensor | list[torch.Tensor] = d
        if not keep_dims:
            out = [row[m.squeeze(-1)] for row, m in zip(d, mask, strict=True)]
        return FLMRContextEncoderOutput(
            pooler_output=d[:, 0, :], late_interaction_output=out, context_mask=mask if return_mask else None
        )

    @staticmethod
    def score(Q: torch.Tensor, D_padded: torch.Tensor, D_mask: torch.Tensor) -> torch.Tensor:
        """ColBERT late interaction: Q [1|N, Lq, d] vs aligned D [N, Ld, d] -> [N].

        For each query row the max over unmasked document rows, summed over query rows.
        """
        if Q.dim() != 3 or D_padded.dim() != 3 or Q.shape[0] not in (1, D_padded.shape[0]):
            raise FLMRInputError(f"score(): Q {tuple(Q.shape)} and D {tuple(D_padded.shape)} do not align")
        sim = D_padded @ Q.to(D_padded.dtype).permute(0, 2, 1)
        padding = ~D_mask.reshape(sim.shape[0], sim.shape[1]).bool()
        sim = sim.masked_fill(padding.unsqueeze(-1), -9999)
        return sim.max(1).values.sum(-1)

    def score_matrix(self, Q: torch.Tensor, D_padded: torch.Tensor, D_mask: torch.Tensor) -> torch.Tensor:
        """Every query against every document: [Bq, Bd]."""
        return torch.stack([self.score(Q[i : i + 1], D_padded, D_mask) for i in range(Q.shape[0])])

    # --- batched helpers ------------------------------------------------------------------------

    @torch.no_grad()
    def encode_queries(
        self, texts: Sequence[str], pixel_values: torch.Tensor | None = None, batch_size: int = 32
    ) -> FLMRQueryEncoderOutput:
        """Tokenize (padded to query_maxlen) and encode queries with their images, in batches."""
        tokenizer = self._require_tokenizers()[0]
        if pixel_values is not None and len(pixel_values) != len(texts):
            raise FLMRInputError(f"{len(texts)} query texts but {len(pixel_values)} images")
        outs = []
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(list(texts[start : start + batch_size]))
            pix = None if pixel_values is None else pixel_values[start : start + batch_size]
            text_only = False if pix is None else None  # None: the config decides
            outs.append(
                self.query(
                    enc["input_ids"],
                    enc["attention_mask"],
                    pixel_values=pix,
                    concat_output_from_vision_encoder=text_only,
                )
            )
        return FLMRQueryEncoderOutput(
            pooler_output=torch.cat([cast(torch.Tensor, o.pooler_output) for o in outs]),
            late_interaction_output=torch.cat([cast(torch.Tensor, o.late_interaction_output) for o in outs]),
        )

    @torch.no_grad()
    def encode_documents(self, texts: Sequence[str], batch_size: int = 32) -> FLMRContextEncoderOutput:
        """Tokenize (padded to doc_maxlen) and encode documents in batches."""
        tokenizer = self._require_tokenizers()[1]
        outs = []
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(list(texts[start : start + batch_size]))
            outs.append(self.doc(enc["input_ids"], enc["attention_mask"]))
        return FLMRContextEncoderOutput(
            pooler_output=torch.cat([cast(torch.Tensor, o.pooler_output) for o in outs]),
            late_interaction_output=torch.cat([cast(torch.Tensor, o.late_interaction_output) for o in outs]),
            context_mask=torch.cat([cast(torch.Tensor, o.context_mask) for o in outs]),
        )

    # --- hub layout I/O -------------------------------------------------------------------------

    @classmethod
    def hub_state_shapes(cls, config: FLMRConfig) -> dict[str, tuple[int, ...]]:
        """Tensor name -> shape of the hub layout for `config`, without allocating weights."""
        with torch.device("meta"):
            skeleton = cls(config)
        return {module_to_hub_key(k): tuple(v.shape) for k, v in skeleton.state_dict().items()}

    @classmethod
    def from_pretrained(  # type: ignore[override]  # adds the two tokenizers
        cls,
        pretrained_model_name_or_path: str | os.PathLike[str],
        *model_args: Any,
        query_tokenizer: FLMRQueryEncoderTokenizer | None = None,
        context_tokenizer: FLMRContextEncoderTokenizer | None = None,
        **kwargs: Any,
    ) -> FLMRModelForRetrieval:
        """Load a hub-layout directory or repo; the tokenizers come from its two subfolders unless given.

        Strict: a missing, unexpected or misshapen tensor is an FLMRInputError, never a
        randomly initialised weight.
        """
        hub = {k: kwargs[k] for k in ("cache_dir", "revision", "token", "local_files_only") if k in kwargs}
        if query_tokenizer is None:
            query_tokenizer = FLMRQueryEncoderTokenizer.from_pretrained(
                pretrained_model_name_or_path, subfolder=QUERY_TOKENIZER_DIR, **hub
            )
        if context_tokenizer is None:
            context_tokenizer = FLMRContextEncoderTokenizer.from_pretrained(
                pretrained_model_name_or_path, subfolder=CONTEXT_TOKENIZER_DIR, **hub
            )
        want_info = kwargs.pop("output_loading_info", False)
        kwargs.setdefault("ignore_mismatched_sizes", True)  # reported in the loading info, refused below
        model, info = cast(
            "tuple[FLMRModelForRetrieval, dict[str, Any]]",
            super().from_pretrained(
                pretrained_model_name_or_path,
                *model_args,
                query_tokenizer=query_tokenizer,
                context_tokenizer=context_tokenizer,
                output_loading_info=True,
                **kwargs,
            ),
        )
        problems = [
            f"{what}: {', '.join(sorted(map(str, keys))[:8])}"
            for what, keys in (
                ("missing tensors", info.get("missing_keys")),
                ("unexpected tensors", info.get("unexpected_keys")),
                ("misshapen tensors", info.get("mismatched_keys")),
            )
            if keys
        ]
        if problems:
            raise FLMRInputError(
                f"{pretrained_model_name_or_path}: weights do not fit config.json: " + "; ".join(problems)
            )
        if want_info:  # transformers' convention: (model, loading info)
            return cast(Any, (model, info))
        return model

    def _adjust_missing_and_unexpected_keys(self, loading_info: Any) -> None:
        """Strict loading: transformers would forgive stored `position_ids`; the hub layout never has them."""

    def save_pretrained(self, save_directory: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        """config.json, safetensors in the hub layout, and both tokenizer folders."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if self.query_tokenizer is not None:
            self.query_tokenizer.save_pretrained(os.path.join(save_directory, QUERY_TOKENIZER_DIR))
        if self.context_tokenizer is not None:
            self.context_tokenizer.save_pretrained(os.path.join(save_directory, CONTEXT_TOKENIZER_DIR))
