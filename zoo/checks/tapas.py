"""TAPAS checks: `encodings` (converted torch model vs the independent TF reference on the
source checkpoint) and `golden` (converted model vs outputs recorded from the original code).

The probe batch is fixed and built from the config alone: three sequences of different lengths
with padding, cells of several tokens, and token-type ids up to twice each table's size (row and
column ids up to 511 against tables of 256), so the zero-contribution rule, the per-cell reset
and the masking are all exercised. With per-cell reset on, column * rows + row stays inside the
cell table: there TF itself has no defined result (it raises on CPU).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import FormatError, MissingDependencyError, ZooError
from ..models.tapas import TOKEN_TYPES, TapasInputError
from ..safetensors_io import TensorReader
from . import replay
from .gate import gate
from .reference import Probe, on_source, run_encodings
from .report import Check
from .similarity import max_abs_diff, min_row_cosine
from .streaming import streamed

if TYPE_CHECKING:
    from ..registry import GoldenValue

TOLERANCE = 1e-5
PROBE_SEED = 20210427
PROBE_LENGTHS = (1.0, 0.7, 0.25)  # fractions of the probe width: mixed lengths with padding
CELL_TOKENS = 3
QUESTION_TOKENS = 4
# widths: every feature above is exercised at these, and each token costs float64 compute on both sides
# (docs/parity.md has the evidence at these widths, tiny to LARGE)
TABLE_WIDTH = 16
QUESTION_WIDTH = 20


# --- probe --------------------------------------------------------------------------------


def probe_batch(config: Mapping[str, Any], width: int = TABLE_WIDTH) -> dict[str, np.ndarray]:
    """Fixed [3, L] ids / mask / [3, L, 7] token types for a model config (L <= max positions)."""
    rng = np.random.default_rng(PROBE_SEED)
    length = min(width, int(config["max_position_embeddings"]))
    sizes = [int(s) for s in config["type_vocab_sizes"]]
    reset = bool(config.get("reset_position_index_per_cell", False))
    batch = len(PROBE_LENGTHS)
    input_ids = rng.integers(1, int(config["vocab_size"]), size=(batch, length))
    mask = np.zeros((batch, length), np.int64)
    types = np.zeros((batch, length, len(sizes)), np.int64)
    for b, fraction in enumerate(PROBE_LENGTHS):
        n = max(2, round(fraction * length))
        mask[b, :n] = 1
        cells = range(QUESTION_TOKENS, n, CELL_TOKENS)
        for c, start in enumerate(cells):
            cell = slice(start, min(start + CELL_TOKENS, n))
            types[b, cell] = [rng.integers(0, 2 * size) for size in sizes]  # up to 2x each table
            types[b, cell, 0] = 1  # segment: table tokens
            if reset:  # keep column * rows + row inside the columns x rows cell table
                types[b, cell, 1] = rng.integers(0, sizes[1] - 1)
            if c == 0:
                types[b, cell, 2] = 0  # a header cell
        input_ids[b, n:] = 0
    return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": types}


def question_probe(config: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Question ids longer than max_query_length when positions allow, so the cut is exercised."""
    width = min(int(config["max_position_embeddings"]), int(config.get("max_query_length", 128)) + 4, QUESTION_WIDTH)
    rng = np.random.default_rng(PROBE_SEED + 1)
    ids = rng.integers(1, int(config["vocab_size"]), size=(len(PROBE_LENGTHS), width))
    mask = np.zeros_like(ids)
    for b, fraction in enumerate(PROBE_LENGTHS):
        n = max(2, round(fraction * width))
        mask[b, :n] = 1
        ids[b, n:] = 0
    return {"input_ids": ids, "attention_mask": mask}


# --- comparing ------------------------------------------------------------------------------


def compare(name: str, got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray], detail: str) -> Check:
    diffs, cosines, problems = {}, {}, []
    for key, expected in want.items():
        actual = np.asarray(got[key])
        if actual.shape != expected.shape:
            problems.append(f"{key}: shape {actual.shape} != {expected.shape}")
            continue
        if np.issubdtype(expected.dtype, np.integer):
            if not np.array_equal(actual, expected):
                problems.append(f"{key}: differs")
            continue
        diffs[key] = max_abs_diff(actual, expected)
        cosines[key] = min_row_cosine(actual, expected)
    worst = max(diffs.values(), default=0.0)
    ok = not problems and worst <= TOLERANCE
    text = f"{detail}; max |diff| {worst:.3g} over {', '.join(diffs)}"
    if problems:
        text += "; " + "; ".join(problems)
    return Check(
        name=name, ok=ok, value=worst, tolerance=TOLERANCE, detail=text, data={"max_abs_diff": diffs, "cosine": cosines}
    )


def _torch(array: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.int64))


@torch.no_grad()
def _retriever_outputs(model, questions, tables) -> dict[str, np.ndarray]:
    """Both towers once each: the pooled outputs, then their projections."""
    question_pooled = model.pool_questions(_torch(questions["input_ids"]), _torch(questions["attention_mask"]))
    table_pooled = model.pool_tables(*[_torch(tables[k]) for k in ("input_ids", "attention_mask", "token_type_ids")])
    return {
        "query_rep": model.project_questions(question_pooled).numpy(),
        "table_rep": model.project_tables(table_pooled).numpy(),
        "question_pooled": question_pooled.numpy(),
        "table_pooled": table_pooled.numpy(),
    }


@torch.no_grad()
def _reader_outputs(model, tables) -> dict[str, np.ndarray]:
    out = model(*[_torch(tables[k]) for k in ("input_ids", "attention_mask", "token_type_ids")])
    return {
        "logits_cls": out.logits_cls.numpy(),
        "span_logits": out.span_logits.numpy(),
        "span_indexes": out.span_indexes.numpy(),
        "token_probabilities": out.token_probabilities.numpy(),
    }


# --- checks --------------------------------------------------------------------------------

RETRIEVER_TYPE = "zoo_tapas_dual_encoder"


def reference_probe(model_dir: Path, manifest: Mapping[str, Any]) -> Probe | str:
    """The TF reference (zoo.reference.tapas_tf) on the source checkpoint the manifest names, on the
    probe batch built from the model's config."""
    found = replay.inputs(manifest)
    if isinstance(found, str):
        return found
    src, options = found
    config = json.loads((model_dir / "config.json").read_text())
    return on_source(source_probe(src, options, config), manifest)


def source_probe(src: Path, options: Mapping[str, Any], config: Mapping[str, Any]) -> Probe | str:
    """The TF reference on the checkpoint at `src`, run on the probe batch for `config`: what a conversion
    starts as soon as its converter knows the config (Family.source_reference), beside the weight writing."""
    try:
        from converters.tapas_checkpoint import resolve
        from zoo.reference.tapas_tf import TapasTFReference
    except MissingDependencyError as exc:
        return str(exc)
    located = resolve(src)
    try:
        reference = TapasTFReference(
            located.files.prefix,
            located.files.config,
            reset_position_index_per_cell=bool(options.get("reset_position_index_per_cell", False)),
            dtype=np.float64,  # the gate compares in float64 (zoo.checks.gate)
        )
        tables = probe_batch(config)
        inputs = {f"tables.{k}": v for k, v in tables.items()}
        if config.get("model_type") == RETRIEVER_TYPE:
            questions = question_probe(config)
            inputs.update({f"questions.{k}": v for k, v in questions.items()})
            want = reference.dual_encoder(
                questions["input_ids"],
                questions["attention_mask"],
                tables["input_ids"],
                tables["attention_mask"],
                tables["token_type_ids"],
                max_query_length=int(options.get("max_query_length", config["max_query_length"])),
            )
        else:
            want = reference.reader(
                tables["input_ids"],
                tables["attention_mask"],
                tables["token_type_ids"],
                temperature=float(options.get("temperature", 1.0)),
            )
            want["span_indexes"] = want["span_indexes"][0]
    finally:
        located.close()
    return Probe(inputs, want, "the TensorFlow reference (float64)")


def check_probe(model_dir: Path, probe: Probe, name: str) -> Check:
    """The converted model on the probe's inputs, in float64 and float32, vs the reference (zoo.checks.gate).

    The model's weights are streamed block by block from its safetensors files, so the check
    never holds the whole model (zoo.checks.streaming).
    """
    tables = {k.removeprefix("tables."): v for k, v in probe.inputs.items() if k.startswith("tables.")}
    questions = {k.removeprefix("questions."): v for k, v in probe.inputs.items() if k.startswith("questions.")}
    try:
        ours64, ours32 = (streamed_outputs(model_dir, questions, tables, d) for d in (torch.float64, torch.float32))
    except (ZooError, TapasInputError, RuntimeError) as exc:  # misshapen or missing weights, a config that lies
        return Check(name, ok=False, value="does not run", detail=f"the model does not run on the probe: {exc}")
    lengths = ", ".join(str(int(n)) for n in tables["attention_mask"].sum(-1))
    return gate(name, ours64, ours32, probe.outputs, f"torch vs {probe.reference}, probe batch of lengths {lengths}")


def streamed_outputs(
    model_dir: Path, questions: Mapping[str, np.ndarray], tables: Mapping[str, np.ndarray], dtype: torch.dtype
) -> dict[str, np.ndarray]:
    """The model's own forward in `dtype`, one block's weights in memory at a time."""
    from zoo.models.tapas import TapasDualEncoder, model_class

    cls = model_class(model_dir)
    config: Any = cls.config_class.from_pretrained(model_dir)
    with torch.device("meta"):
        model = cls(config).eval()
    towers = [model.bert, model.bert_1] if isinstance(model, TapasDualEncoder) else [model.bert]
    blocks = [block for tower in towers for block in (tower.embeddings, *tower.encoder.layer, tower.pooler)]
    with TensorReader(model_dir) as reader, streamed(model, reader, blocks, dtype):
        if isinstance(model, TapasDualEncoder):
            return _retriever_outputs(model, questions, tables)
        return _reader_outputs(model, tables)


def encodings(model_dir: Path, manifest: Mapping[str, Any]) -> Check:
    """Converted model vs zoo.reference.tapas_tf on the source checkpoint, on the probe batch."""
    return run_encodings(reference_probe(model_dir, manifest), lambda probe: check_probe(model_dir, probe, "encodings"))


def golden(model_dir: Path, golden_dir: Path) -> Check:
    """Converted model vs a golden fixture dir (inputs.npz / outputs.npz from the original code)."""
    from zoo.models.tapas import TapasDualEncoder, load_pretrained

    golden_dir = Path(golden_dir)
    try:
        inputs, outputs = np.load(golden_dir / "inputs.npz"), np.load(golden_dir / "outputs.npz")
    except (OSError, ValueError) as exc:
        raise FormatError(f"{golden_dir}: not a golden fixture dir (inputs.npz / outputs.npz): {exc}") from exc
    model = load_pretrained(model_dir)
    is_retriever = "query_rep" in outputs
    if is_retriever != isinstance(model, TapasDualEncoder):
        kind = "retriever" if is_retriever else "reader"
        raise FormatError(f"{golden_dir} holds {kind} outputs but {model_dir} is a {type(model).__name__}")
    tables = {
        "input_ids": inputs["input_ids"],
        "attention_mask": inputs["input_mask"],
        "token_type_ids": np.stack([inputs[k] for k in TOKEN_TYPES], axis=-1),
    }
    if is_retriever:
        questions = {"input_ids": inputs["question_input_ids"], "attention_mask": inputs["question_input_mask"]}
        got = _retriever_outputs(model, questions, tables)
        want = {
            "query_rep": outputs["query_rep"],
            "table_rep": outputs["table_rep"],
            "question_pooled": outputs["bert_1_pooler_dense_Tanh_0"],
            "table_pooled": outputs["bert_pooler_dense_Tanh_0"],
        }
    else:
        got = _reader_outputs(model, tables)
        batch = inputs["input_ids"].shape[0]
        got["span_indexes"] = np.broadcast_to(got["span_indexes"], (batch, *got["span_indexes"].shape))
        want = {
            "logits_cls": outputs["logits_cls"],
            "span_logits": outputs["span_logits"],
            "span_indexes": outputs["span_indexes"].astype(np.int64),
            "token_probabilities": outputs["probabilities"],
        }
    return compare("golden", got, want, f"converted model vs {golden_dir.name} recorded from the original code")


def registry_golden(model_dir: Path, values: tuple[GoldenValue, ...]) -> Check:
    """TAPAS releases publish no example outputs; the registry records none to recompute."""
    return Check(
        "golden",
        ok=True,
        ran=False,
        value="not run",
        detail=f"{len(values)} registry golden value(s), but TAPAS has no card examples to recompute",
    )
