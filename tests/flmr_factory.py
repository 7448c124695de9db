"""Tiny plain-FLMR checkpoints in the original layouts, plus a malicious .ckpt, for tests and demos.

Written file for file as the authors' stack wrote them, without going through zoo's model class:
- `hf/`: the hub layout (config.json as transformers 4.37 wrote it, model.safetensors with the
  text encoder stored once as `query_text_encoder.*` and CLIP keys with the transformers-4 extra
  `vision_model.` level, query_tokenizer/ and context_tokenizer/ with FLMR's 9 added special
  tokens in `added_tokens_decoder`);
- `legacy.ckpt`: the same weights as a Lightning checkpoint (`model.` prefixes, no vision tower,
  `position_ids` buffers, optimizer state, and a hyper-parameter object that weights_only refuses);
- `clip_vision/`: the vision tower as transformers' CLIPVisionModel.save_pretrained writes it.
Weights come from numpy's PCG64 generator, wide enough that any mix-up changes the outputs.
"""

from __future__ import annotations

import json
import os
import string
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ADDED_TOKENS = ("<BOV>", "<SOV>", "<EOV>", "<BOQ>", "<EOQ>", "<BOC>", "<EOC>", "<BOK>", "<EOK>")
SPECIALS = ["[PAD]"] + [f"[unused{i}]" for i in range(10)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "the",
    "a",
    "an",
    "of",
    "to",
    "and",
    "in",
    "is",
    "what",
    "which",
    "who",
    "where",
    "capital",
    "city",
    "river",
    "car",
    "red",
    "road",
    "picture",
    "image",
    "question",
    "documents",
    "obtain",
    "using",
    "provided",
    "address",
    "subsequent",
    "extract",
    "linked",
    "paris",
    "france",
    "beijing",
    "china",
    "seine",
    "sea",
    "flows",
    "through",
    "this",
    "test",
    "query",
    "has",
    "no",
    "instruction",
    "name",
    "colour",
    "built",
]
VOCAB = SPECIALS + list(string.punctuation) + WORDS

TEXT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "query_maxlen": 16,
    "vocab_size": len(VOCAB) + len(ADDED_TOKENS),
}
VISION = {
    "hidden_size": 24,
    "image_size": 32,
    "intermediate_size": 48,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "patch_size": 8,
    "projection_dim": 16,
}
DIM, PREFIX, DOC_MAXLEN = 8, 4, 24

HUB_TEXT, HUB_VISION = "query_text_encoder.bert_model.", "query_vision_encoder.vision_model.vision_model."
LEGACY_TEXT = "model.model.bert."


@dataclass(frozen=True)
class TinyFLMR:
    hf: Path
    legacy: Path
    vision: Path


class HParams(dict):
    """Stands for Lightning's AttributeDict: a custom class, so weights_only refuses the file."""


class _Payload:
    """Unpickling this runs code (exec, or os.system) that creates `marker`."""

    def __init__(self, marker: Path, via: str) -> None:
        self.marker, self.via = marker, via

    def __reduce__(self):
        if self.via == "system":
            return os.system, (f"touch {self.marker}",)
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


def make_flmr(root: Path, seed: int = 0) -> TinyFLMR:
    """Write hf/, legacy.ckpt and clip_vision/ under `root`."""
    from transformers import BertConfig, BertModel, CLIPVisionConfig, CLIPVisionModel

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    text_cfg = {k: v for k, v in TEXT.items() if k != "query_maxlen"}
    bert_shapes = {
        k: tuple(v.shape)
        for k, v in BertModel(BertConfig(**text_cfg)).state_dict().items()
        if not k.endswith(("position_ids", "token_type_ids"))
    }
    clip = CLIPVisionModel(CLIPVisionConfig(**VISION))
    clip.load_state_dict({k: _random(rng, k, v.shape) for k, v in clip.state_dict().items()})
    clip.save_pretrained(root / "clip_vision")
    text = {k: _random(rng, k, s) for k, s in bert_shapes.items()}
    linear = _random(rng, "linear.weight", (DIM, TEXT["hidden_size"]))
    mlp = {
        "model.0.weight": _random(rng, "w", (DIM * PREFIX // 2, VISION["hidden_size"])),
        "model.0.bias": _random(rng, "bias", (DIM * PREFIX // 2,)),
        "model.2.weight": _random(rng, "w", (DIM * PREFIX, DIM * PREFIX // 2)),
        "model.2.bias": _random(rng, "bias", (DIM * PREFIX,)),
    }

    hub = {HUB_TEXT + k: v for k, v in text.items()}
    hub["query_text_encoder_linear.weight"] = linear
    hub.update({"query_vision_projection." + k: v for k, v in mlp.items()})
    hub.update(
        {HUB_VISION + k: v.detach().clone() for k, v in clip.state_dict().items() if not k.endswith("position_ids")}
    )
    _write_hub(root / "hf", hub)

    state = OrderedDict((LEGACY_TEXT + k, v) for k, v in text.items())
    state[LEGACY_TEXT + "embeddings.position_ids"] = torch.arange(TEXT["max_position_embeddings"])[None]
    state["model.model.linear.weight"] = linear
    state.update(("model.vision_projection." + k, v) for k, v in mlp.items())
    legacy = root / "legacy.ckpt"
    torch.save(
        {
            "epoch": 7,
            "global_step": 4242,
            "pytorch-lightning_version": "1.8.2",
            "state_dict": state,
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-5, "params": [0]}]}],
            "lr_schedulers": [],
            "hyper_parameters": HParams(lr=1e-5, model_version="FLMR"),
        },
        legacy,
    )
    return TinyFLMR(root / "hf", legacy, root / "clip_vision")


def encode_golden(model, inputs: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Query and doc embeddings, doc mask and score matrix for an inputs.pt-style batch."""
    with torch.no_grad():
        q = model.query(inputs["query_input_ids"], inputs["query_attention_mask"], pixel_values=inputs["pixel_values"])
        d = model.doc(inputs["doc_input_ids"], inputs["doc_attention_mask"])
        s = model.score_matrix(q.late_interaction_output, d.late_interaction_output, d.context_mask)
    return q.late_interaction_output, d.late_interaction_output, d.context_mask, s


def make_malicious_ckpt(path: Path, marker: Path, via: str = "exec") -> Path:
    """A .ckpt whose unpickling would create `marker` (via `exec` or `system`)."""
    torch.save(
        {"state_dict": {"model.query_linear.weight": torch.zeros(2, 2)}, "callbacks": _Payload(marker, via)}, path
    )
    return path


def _random(rng: np.random.Generator, name: str, shape) -> torch.Tensor:
    shape = tuple(shape)
    if name.endswith("weight") and "norm" in name.lower():
        values = 1.0 + 0.1 * rng.standard_normal(shape)
    elif name.endswith("bias"):
        values = 0.1 * rng.standard_normal(shape)
    else:
        values = 0.3 * rng.standard_normal(shape)
    return torch.from_numpy(values.astype(np.float32))


def _write_hub(directory: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in tensors.items()}, str(directory / "model.safetensors"), metadata={"format": "pt"}
    )
    config = {
        "architectures": ["FLMRModelForRetrieval"],
        "context_concat_output_from_text_encoder": True,
        "context_concat_output_from_vision_encoder": False,
        "dim": DIM,
        "initializer_range": 0.02,
        "load_cpu_extension": False,
        "mapping_network_prefix_length": PREFIX,
        "mask_instruction_token": None,
        "mask_punctuation": True,
        "model_type": "flmr",
        "query_concat_output_from_text_encoder": True,
        "query_concat_output_from_vision_encoder": True,
        "query_mask_input_ids_skip_list": [],
        "separate_query_and_context_text_encoder": False,
        "separate_query_and_context_vision_encoder": False,
        "text_config": {**TEXT, "model_type": "flmr_text_model"},
        "torch_dtype": "float32",
        "transformer_mapping_config_base": None,
        "transformer_mapping_cross_attention_length": 32,
        "transformer_mapping_num_hidden_layers": None,
        "transformers_version": "4.37.2",
        "use_transformer_mapping_network": False,
        "use_vision_encoder": True,
        "vision_config": {**VISION, "model_type": "flmr_vision_model"},
        "vision_model_version": "openai/clip-vit-base-patch32",
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for sub, cls, extra in (
        ("query_tokenizer", "FLMRQueryEncoderTokenizer", {"query_maxlen": TEXT["query_maxlen"]}),
        ("context_tokenizer", "FLMRContextEncoderTokenizer", {"doc_maxlen": DOC_MAXLEN}),
    ):
        _write_tokenizer(directory / sub, cls, extra)


def _write_tokenizer(folder: Path, tokenizer_class: str, extra: dict) -> None:
    """The transformers-4 slow-tokenizer files: added tokens only in added_tokens_decoder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("".join(t + "\n" for t in VOCAB), encoding="utf-8")
    specials = {
        "[PAD]": 0,
        "[UNK]": VOCAB.index("[UNK]"),
        "[CLS]": VOCAB.index("[CLS]"),
        "[SEP]": VOCAB.index("[SEP]"),
        "[MASK]": VOCAB.index("[MASK]"),
    }
    specials.update({t: len(VOCAB) + i for i, t in enumerate(ADDED_TOKENS)})
    decoder = {
        str(i): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for t, i in specials.items()
    }
    config = {
        "added_tokens_decoder": decoder,
        "additional_special_tokens": list(ADDED_TOKENS),
        "clean_up_tokenization_spaces": True,
        "cls_token": "[CLS]",
        "do_basic_tokenize": True,
        "do_lower_case": True,
        "mask_token": "[MASK]",
        "model_max_length": 512,
        "never_split": None,
        "pad_token": "[PAD]",
        "sep_token": "[SEP]",
        "strip_accents": None,
        "tokenize_chinese_chars": True,
        "tokenizer_class": tokenizer_class,
        "unk_token": "[UNK]",
        **extra,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    special_map = {
        "additional_special_tokens": list(ADDED_TOKENS),
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
        "pad_token": "[PAD]",
        "sep_token": "[SEP]",
        "unk_token": "[UNK]",
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2, sort_keys=True) + "\n")
