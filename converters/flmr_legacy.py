"""Legacy FLMR / PreFLMR Lightning checkpoints (pre-HF training code) -> the hub safetensors layout.

The .ckpt holds `state_dict` with the Lightning `model.` prefix. What `model.vision_projection.`
means depends on the model kind, so there is one rule table per kind ("flmr": the vision MLP,
text encoder tied and stored once as `query_text_encoder`; "preflmr": the mapping BertEncoder,
separate query / context text encoders), chosen from the target config.json. Plain FLMR trained
on pre-extracted CLIP features, so its checkpoint has no vision tower: the CLIP model named by
`vision_model_version` is passed as `vision` (a directory) and its tensors enter the plan as
`vision:<name>` sources, so every output tensor has a recorded source.

Options: `config` (dir with config.json + query_tokenizer/ + context_tokenizer/, e.g. the pulled
hub repo; the output's non-weight files are copied from it), `vision` (FLMR only: a CLIP vision or
CLIP model dir, or a hub-layout FLMR dir whose vision tower is used).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from converters import ConfigReady, ConversionResult, SourceReader, shared
from converters.rules import Plan, Rule, check_shapes, plan
from converters.safe_pickle import load_torch_pickle
from zoo.cache import sha256_file
from zoo.errors import FormatError, InputError, MappingError
from zoo.models.flmr import FLMRConfig, FLMRModelForRetrieval
from zoo.models.flmr.modeling_flmr import CONTEXT_TOKENIZER_DIR, QUERY_TOKENIZER_DIR
from zoo.safetensors_io import INDEX_NAME, WEIGHTS_NAME, TensorSpec, weight_files, write_safetensors

FORMAT = "flmr-legacy"
FAMILY = "flmr"
OPTIONS = ("config", "vision")  # what `zoo convert` accepts for this format
VISION_PREFIX = "vision:"

_CLIP_TOWER = r"vision:(?:vision_model\.)?((?:embeddings|pre_layrnorm|encoder|post_layernorm)\..+)"

# kind -> ordered rules (longer legacy prefixes first); targets are hub-layout names
RULES: Mapping[str, tuple[Rule, ...]] = {
    "flmr": (
        Rule(r"model\.model\.bert\.(.+)", r"query_text_encoder.bert_model.\1"),  # tied: stored once
        Rule(r"model\.model\.linear\.(.+)", r"query_text_encoder_linear.\1"),
        Rule(r"model\.vision_projection\.(.+)", r"query_vision_projection.\1"),  # FLMR: the MLP
        Rule(_CLIP_TOWER, r"query_vision_encoder.vision_model.vision_model.\1"),
    ),
    "preflmr": (
        Rule(r"model\.vision_projection_input_linear2\.(.+)", r"transformer_mapping_input_linear.\1"),
        Rule(r"model\.vision_projection_input_linear\.(.+)", r"query_vision_projection.\1"),
        Rule(r"model\.vision_projection_linear\.(.+)", r"transformer_mapping_output_linear.\1"),
        Rule(r"model\.vision_projection\.(.+)", r"transformer_mapping_network.\1"),  # PreFLMR: BertEncoder
        Rule(r"model\.vision_model\.(.+)", r"query_vision_encoder.vision_model.\1"),
        Rule(r"model\.model\.bert\.(.+)", r"context_text_encoder.bert_model.\1"),
        Rule(r"model\.model\.linear\.(.+)", r"context_text_encoder_linear.\1"),
        Rule(r"model\.query_encoder\.(.+)", r"query_text_encoder.bert_model.\1"),
        Rule(r"model\.query_linear\.(.+)", r"query_text_encoder_linear.\1"),
    ),
}
# kind -> the text-encoder tying the rule table assumes (separate_query_and_context_text_encoder)
SEPARATE_TEXT_ENCODERS: Mapping[str, bool] = {"flmr": False, "preflmr": True}

SKIP: tuple[str, ...] = (
    r".*\.position_ids",  # non-persistent index buffers, rebuilt by the model
    r"vision:text_model\..+",  # a full CLIPModel directory: its text tower and heads are not FLMR's
    r"vision:(?:text_projection|visual_projection)\.weight",
    r"vision:logit_scale",
)
_CLIP_FIELDS = ("hidden_act", "layer_norm_eps", "hidden_size", "num_hidden_layers", "image_size", "patch_size")


class LegacyReader:
    """Tensors of the checkpoint's state_dict, plus `vision:`-prefixed CLIP tensors when given."""

    def __init__(self, tensors: Mapping[str, torch.Tensor], placeholders: tuple[str, ...] = ()) -> None:
        self._tensors = dict(tensors)
        self.placeholders = placeholders

    def names(self) -> list[str]:
        return sorted(self._tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._tensors[name].shape)

    def get(self, name: str) -> np.ndarray:
        """float16 / bfloat16 become float32 (exact); the hub layout is float32."""
        t = self._tensors[name].detach()
        if t.is_floating_point() and t.dtype != torch.float32:
            t = t.float()
        return np.ascontiguousarray(t.cpu().numpy())


def open_source(src: Path, options: dict[str, Any]) -> LegacyReader:
    """Read the .ckpt without running code from it, and the `vision` CLIP directory if given.

    Inside `converters.sharing()` the checkpoint is unpickled once for the converter and the checks.
    """
    vision = str(options.get("vision") or "")
    reader, _ = shared(("flmr-legacy", str(Path(src).resolve()), vision), lambda: _open(Path(src), vision))
    return reader


def _open(src: Path, vision: str) -> LegacyReader:
    if not src.is_file():
        raise FormatError(f"{src}: not a file; flmr-legacy expects a Lightning .ckpt")
    loaded = load_torch_pickle(src)
    ckpt = loaded.obj
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, Mapping):
        raise FormatError(f"{src}: no state_dict; not a Lightning checkpoint")
    bad = [str(k) for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise FormatError(f"{src}: state_dict entries that are not tensors: {', '.join(bad[:8])}")
    tensors: dict[str, torch.Tensor] = dict(state)
    if vision:
        tensors.update({VISION_PREFIX + k: v for k, v in _read_vision_dir(Path(vision)).items()})
    return LegacyReader(tensors, loaded.placeholders)


def plan_for(reader: SourceReader, options: dict[str, Any]) -> Plan:
    """Apply the rule table of the config's kind; every tensor used once, shapes as the model expects."""
    config = _load_config(options)
    kind = _kind(config)
    names = reader.names()
    has_vision = any(n.startswith(VISION_PREFIX) for n in names)
    if kind == "preflmr" and has_vision:
        raise MappingError("PreFLMR legacy checkpoints carry their own vision tower; do not pass `vision`")
    if kind == "flmr" and config.use_vision_encoder and not has_vision:
        raise MappingError(
            "FLMR legacy checkpoints have no vision tower: pass `vision` (--vision DIR), the CLIP model "
            f"named by vision_model_version ({config.vision_model_version})"
        )
    the_plan = plan(names, RULES[kind], SKIP)
    check_shapes(the_plan, {n: reader.shape(n) for n in names}, FLMRModelForRetrieval.hub_state_shapes(config))
    return the_plan


def convert(
    src: Path, out: Path, options: dict[str, Any], progress: bool, on_config: ConfigReady | None = None
) -> ConversionResult:
    """Write config.json, the hub-layout safetensors and both tokenizer folders into `out`."""
    src, out = Path(src), Path(out)
    config_dir = _config_dir(options)
    vision_dir = Path(options["vision"]).resolve() if options.get("vision") else None
    replay = {"config": str(config_dir), "vision": str(vision_dir) if vision_dir else None}
    reader = open_source(src, replay)
    config = FLMRConfig.from_pretrained(config_dir)
    the_plan = plan_for(reader, replay)
    if vision_dir is not None:
        _check_vision_config(vision_dir, config)
    shapes = FLMRModelForRetrieval.hub_state_shapes(config)
    by_target = the_plan.by_target()
    specs = [TensorSpec(t, shapes[t], np.dtype("float32")) for t in sorted(by_target)]
    resolved = {**replay, "kind": config.kind}
    config_dict = json.loads((config_dir / "config.json").read_text())
    if on_config is not None:
        on_config(config_dict, resolved)
    bar = _progress_bar(len(specs)) if progress else None
    try:
        files = write_safetensors(
            out,
            specs,
            lambda s: by_target[s.name].apply(reader.get(by_target[s.name].source)),
            on_tensor=(lambda _s: bar.update(1)) if bar else None,
        )
    finally:
        if bar is not None:
            bar.close()
    shutil.copyfile(config_dir / "config.json", out / "config.json")
    for sub in (QUERY_TOKENIZER_DIR, CONTEXT_TOKENIZER_DIR):
        _copy_files(config_dir / sub, out / sub)
    notes = [f"{len(files)} safetensors file(s) in the hub layout; {len(the_plan.skipped)} non-weight tensors skipped"]
    if vision_dir is not None:
        notes.append(f"vision tower from {vision_dir.name} (the legacy checkpoint has none)")
    if reader.placeholders:
        notes.append("checkpoint objects not reconstructed (restricted unpickler): " + ", ".join(reader.placeholders))
    return ConversionResult(
        plan=the_plan,
        config=config_dict,
        source={
            "format": FORMAT,
            "path": str(src.resolve()),
            "sha256": sha256_file(src),
            "size": src.stat().st_size,
            "vision": _tree_identity(vision_dir) if vision_dir else None,
            "config": _tree_identity(config_dir),
        },
        options=resolved,
        notes=tuple(notes),
        written=files,
    )


# --- helpers ------------------------------------------------------------------------------------


def _config_dir(options: dict[str, Any]) -> Path:
    if not options.get("config"):
        raise InputError(
            "flmr-legacy needs `config` (--config DIR): a directory with config.json, "
            "query_tokenizer/ and context_tokenizer/, e.g. the pulled hub repo"
        )
    directory = Path(options["config"]).resolve()
    missing = [n for n in ("config.json", QUERY_TOKENIZER_DIR, CONTEXT_TOKENIZER_DIR) if not (directory / n).exists()]
    if missing:
        raise FormatError(f"{directory}: missing {', '.join(missing)}")
    return directory


def _load_config(options: dict[str, Any]) -> FLMRConfig:
    cfg = options.get("config")
    if isinstance(cfg, Mapping):
        return FLMRConfig.from_dict(dict(cfg))
    if not cfg:
        raise InputError("flmr-legacy needs `config` to choose the rule table")
    return FLMRConfig.from_pretrained(Path(cfg))


def _kind(config: FLMRConfig) -> str:
    kind = config.kind
    if config.separate_query_and_context_text_encoder != SEPARATE_TEXT_ENCODERS[kind]:
        raise FormatError(
            f"config.json: a {kind} model with separate_query_and_context_text_encoder="
            f"{config.separate_query_and_context_text_encoder} has no legacy rule table"
        )
    return kind


# A hub-layout FLMR folder holds the same CLIP tower under this prefix (transformers-4 naming).
_HUB_VISION_PREFIX = "query_vision_encoder.vision_model."


def _read_vision_dir(directory: Path) -> dict[str, torch.Tensor]:
    """CLIP weights (CLIPVisionModel or CLIPModel dir), or the vision tower of a hub-layout FLMR dir."""
    tensors = _read_weights(directory)
    if _model_type(directory) == "flmr":
        return {k[len(_HUB_VISION_PREFIX) :]: v for k, v in tensors.items() if k.startswith(_HUB_VISION_PREFIX)}
    return tensors


def _model_type(directory: Path) -> str | None:
    try:
        return json.loads((directory / "config.json").read_text()).get("model_type")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def _read_weights(directory: Path) -> dict[str, torch.Tensor]:
    """safetensors (single or sharded) or pytorch_model.bin (loaded without code)."""
    from safetensors.torch import load_file

    files = weight_files(directory)
    if files:
        return {k: v for name in files for k, v in load_file(str(directory / name)).items()}
    if (directory / "pytorch_model.bin").exists():
        obj = load_torch_pickle(directory / "pytorch_model.bin").obj
        if isinstance(obj, Mapping) and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        raise FormatError(f"{directory}/pytorch_model.bin: not a state dict")
    raise FormatError(f"{directory}: no {WEIGHTS_NAME}, {INDEX_NAME} or pytorch_model.bin (vision model)")


def _check_vision_config(directory: Path, config: FLMRConfig) -> None:
    """Fields that shapes cannot reveal (activation, eps) must agree with config.json's vision_config."""
    try:
        data = json.loads((directory / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FormatError(f"{directory}: unreadable config.json ({exc})") from None
    if data.get("model_type") in ("clip", "flmr"):
        data = data.get("vision_config", {})
    ours = config.vision_config
    wrong = [
        f"{f}: {data[f]!r} vs {getattr(ours, f)!r}" for f in _CLIP_FIELDS if f in data and data[f] != getattr(ours, f)
    ]
    if wrong:
        raise FormatError(f"{directory}: vision model differs from config.json's vision_config ({'; '.join(wrong)})")


def _copy_files(src: Path, dst: Path) -> None:
    """Copy contents only (a read-only cache must not make the output read-only)."""
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def _tree_identity(directory: Path) -> dict[str, Any]:
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    return {"path": str(directory), "files": {p.relative_to(directory).as_posix(): sha256_file(p) for p in files}}


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="flmr-legacy", unit="tensor")
