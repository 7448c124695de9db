#!/usr/bin/env python
"""Write tiny (or large) TF1 TAPAS checkpoints in exactly the original layout, for tests and demos.

The variable names, shapes and files are those of the google-research/tapas releases: a folder
with bert_config.json (type_vocab_size as a list), vocab.txt (BERT-like, [EMPTY] at id 1),
model.ckpt.{index,data-00000-of-00001,meta} written by TensorFlow, no `checkpoint` file, and
optionally zipped as `<name>/...` inside `<name>.zip` like the GCS zips. The .meta graph holds
an UnsortedSegmentMin op under bert/embeddings/ exactly when the checkpoint "used" per-cell
position reset. Defects on demand: an extra variable, a missing one, a wrong shape, optimizer
slots and gradient-accumulation variables, no bert_config.json, no .meta.

Everything goes through tf.compat.v1 variables (random truncated-normal initializers, seeded,
LayerNorm gammas around 1) and a Saver, as the original training code wrote them: one data
shard, and TensorFlow holds the model once while the Saver writes it tensor by tensor.

    python scripts/make_tapas_checkpoint.py OUT_DIR --kind reader --reset --zip
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PREFIX_NAME = "model.ckpt"
SPECIAL_TOKENS = ["[PAD]", "[EMPTY]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "the",
    "of",
    "and",
    "in",
    "to",
    "a",
    "is",
    "was",
    "for",
    "on",
    "as",
    "by",
    "with",
    "city",
    "year",
    "name",
    "population",
    "country",
    "team",
    "player",
    "club",
    "season",
    "game",
    "film",
    "song",
    "album",
    "river",
    "state",
    "county",
    "town",
    "capital",
    "school",
    "what",
    "who",
    "when",
    "where",
    "which",
    "how",
    "many",
    "most",
    "first",
    "last",
    "largest",
    "paris",
    "london",
    "berlin",
    "rome",
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    "10",
    "100",
    "1990",
    "2000",
    "2010",
    ",",
    ".",
    "?",
    "-",
    "(",
    ")",
    ":",
    "##s",
    "##ed",
    "##ing",
    "##er",
    "##ly",
]
TOKEN_TYPE_SIZES = (3, 256, 256, 2, 256, 256, 10)


@dataclass(frozen=True)
class CheckpointSpec:
    kind: str = "retriever"  # "retriever" (dual encoder) or "reader" (NQ reader)
    vocab_size: int = 99
    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 37
    max_position_embeddings: int = 64
    type_vocab_sizes: tuple[int, ...] = TOKEN_TYPE_SIZES
    initializer_range: float = 0.3  # wide on purpose, like the golden fixtures
    down_projection_dim: int = 8  # retriever: 0 means no projection variables
    single_tower: bool = False  # retriever: only bert/ (a single-encoder checkpoint)
    reset: bool | None = None  # segment-min op under bert/embeddings/; None: reader yes, retriever no
    write_meta: bool = True
    with_config: bool = True
    with_vocab: bool = True
    optimizer_slots: bool = False  # */adam_m, */adam_v and global_step
    accumulation: bool = False  # counter and */accum
    extra_variable: str | None = None  # e.g. "bert/extra/kernel"
    missing_variable: str | None = None  # a variable to leave out
    wrong_shape: str | None = None  # a variable whose last dimension gets one more
    seed: int = 0
    bert_config_extra: dict = field(default_factory=dict)

    @property
    def uses_reset(self) -> bool:
        return self.kind == "reader" if self.reset is None else self.reset


def tower_shapes(scope: str, spec: CheckpointSpec) -> dict[str, tuple[int, ...]]:
    h, inter = spec.hidden_size, spec.intermediate_size
    shapes = {
        f"{scope}/embeddings/word_embeddings": (spec.vocab_size, h),
        f"{scope}/embeddings/position_embeddings": (spec.max_position_embeddings, h),
        **{f"{scope}/embeddings/token_type_embeddings_{i}": (n, h) for i, n in enumerate(spec.type_vocab_sizes)},
        f"{scope}/embeddings/LayerNorm/gamma": (h,),
        f"{scope}/embeddings/LayerNorm/beta": (h,),
        f"{scope}/pooler/dense/kernel": (h, h),
        f"{scope}/pooler/dense/bias": (h,),
    }
    for layer in range(spec.num_hidden_layers):
        p = f"{scope}/encoder/layer_{layer}"
        for name in ("query", "key", "value"):
            shapes[f"{p}/attention/self/{name}/kernel"] = (h, h)
            shapes[f"{p}/attention/self/{name}/bias"] = (h,)
        shapes.update(
            {
                f"{p}/attention/output/dense/kernel": (h, h),
                f"{p}/attention/output/dense/bias": (h,),
                f"{p}/attention/output/LayerNorm/gamma": (h,),
                f"{p}/attention/output/LayerNorm/beta": (h,),
                f"{p}/intermediate/dense/kernel": (h, inter),
                f"{p}/intermediate/dense/bias": (inter,),
                f"{p}/output/dense/kernel": (inter, h),
                f"{p}/output/dense/bias": (h,),
                f"{p}/output/LayerNorm/gamma": (h,),
                f"{p}/output/LayerNorm/beta": (h,),
            }
        )
    return shapes


def variable_shapes(spec: CheckpointSpec) -> dict[str, tuple[int, ...]]:
    """Every weight variable of the original model for `spec` (before defects and slots)."""
    h = spec.hidden_size
    shapes = tower_shapes("bert", spec)
    if spec.kind == "retriever":
        if not spec.single_tower:
            shapes.update(tower_shapes("bert_1", spec))
        if spec.down_projection_dim:
            shapes["table_projection"] = (spec.down_projection_dim, h)
            shapes["text_projection"] = (spec.down_projection_dim, h)
    elif spec.kind == "reader":
        shapes.update(
            {
                "output_weights": (h,),
                "output_bias": (),
                "output_weights_cls": (2, h),
                "output_bias_cls": (2,),
                "loss/span_output_weights": (2 * h,),
                "loss/span_output_bias": (),
            }
        )
    else:
        raise ValueError(f"unknown kind {spec.kind!r}")
    return shapes


def checkpoint_shapes(spec: CheckpointSpec) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, dtype) of everything the checkpoint will hold, defects included."""
    weights = variable_shapes(spec)
    if spec.missing_variable:
        del weights[spec.missing_variable]
    if spec.wrong_shape:
        shape = weights[spec.wrong_shape]
        weights[spec.wrong_shape] = (*shape[:-1], shape[-1] + 1) if shape else (2,)
    if spec.extra_variable:
        weights[spec.extra_variable] = (spec.hidden_size,)
    out = {name: (shape, "float32") for name, shape in weights.items()}
    if spec.optimizer_slots:
        for name, shape in weights.items():
            out[f"{name}/adam_m"] = (shape, "float32")
            out[f"{name}/adam_v"] = (shape, "float32")
        out["global_step"] = ((), "int64")
    if spec.accumulation:
        for name, shape in weights.items():
            out[f"{name}/accum"] = (shape, "float32")
        out["counter"] = ((), "int64")
    return out


def bert_config(spec: CheckpointSpec) -> dict:
    return {
        "vocab_size": spec.vocab_size,
        "hidden_size": spec.hidden_size,
        "num_hidden_layers": spec.num_hidden_layers,
        "num_attention_heads": spec.num_attention_heads,
        "intermediate_size": spec.intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": spec.max_position_embeddings,
        "type_vocab_size": list(spec.type_vocab_sizes),
        "initializer_range": spec.initializer_range,
        "softmax_temperature": 1.0,
        **spec.bert_config_extra,
    }


def vocab(spec: CheckpointSpec) -> list[str]:
    """BERT-like vocabulary of exactly vocab_size entries, [EMPTY] at id 1."""
    tokens = SPECIAL_TOKENS + WORDS
    tokens += [f"w{i}" for i in range(max(0, spec.vocab_size - len(tokens)))]
    return tokens[: spec.vocab_size]


def _graph(spec: CheckpointSpec, shapes):
    """The TF1 graph: seeded variables named as in the checkpoint, plus the reset op when asked."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(spec.seed)
        variables = {}
        for name, (shape, dtype) in shapes.items():
            if dtype == "float32":
                mean = 1.0 if name.endswith("LayerNorm/gamma") else 0.0
                init = tf.compat.v1.truncated_normal_initializer(mean=mean, stddev=spec.initializer_range)
            else:
                init = tf.compat.v1.constant_initializer(7)
            variables[name] = tf.compat.v1.get_variable(name, shape=shape, dtype=dtype, initializer=init)
        if spec.uses_reset:  # what modeling._get_relative_position_embeddings leaves in the graph
            with tf.compat.v1.name_scope("bert/embeddings/segmented_reduce_min"):
                tf.math.unsorted_segment_min(tf.zeros([4]), tf.zeros([4], tf.int32), num_segments=2)
        # Readers also hold segment sums outside the encoder; they must not count as a reset.
        with tf.compat.v1.name_scope("segmented_reduce_mean"):
            tf.math.unsorted_segment_sum(tf.zeros([4]), tf.zeros([4], tf.int32), num_segments=2)
        saver = tf.compat.v1.train.Saver(var_list=variables)
        init_all = tf.compat.v1.global_variables_initializer()
    return graph, init_all, saver


def write_checkpoint(spec: CheckpointSpec, folder: Path) -> Path:
    """Write the checkpoint folder; returns the checkpoint prefix (folder/model.ckpt)."""
    import tensorflow as tf

    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / PREFIX_NAME
    graph, init_all, saver = _graph(spec, checkpoint_shapes(spec))
    with tf.compat.v1.Session(graph=graph) as sess:
        sess.run(init_all)
        saver.save(sess, str(prefix), write_meta_graph=spec.write_meta, write_state=False)
    if spec.with_config:
        (folder / "bert_config.json").write_text(json.dumps(bert_config(spec), indent=2) + "\n")
    if spec.with_vocab:
        (folder / "vocab.txt").write_text("\n".join(vocab(spec)) + "\n")
    return prefix


def write_zip(folder: Path, zip_path: Path, inner: str | None = None) -> Path:
    """Zip `folder` as `<inner>/<file>` members, like the GCS release zips."""
    inner = inner or folder.name
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, f"{inner}/{path.name}")
    return zip_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to write (created)")
    parser.add_argument("--kind", choices=["retriever", "reader"], default="retriever")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--intermediate", type=int, default=37)
    parser.add_argument("--vocab-size", type=int, default=99)
    parser.add_argument("--max-position", type=int, default=64)
    parser.add_argument("--proj", type=int, default=8, help="retriever down_projection_dim (0: none)")
    parser.add_argument("--single-tower", action="store_true")
    parser.add_argument("--reset", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--no-meta", action="store_true")
    parser.add_argument("--no-config", action="store_true")
    parser.add_argument("--optimizer-slots", action="store_true")
    parser.add_argument("--accumulation", action="store_true")
    parser.add_argument("--extra-variable")
    parser.add_argument("--missing-variable")
    parser.add_argument("--wrong-shape")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--zip", action="store_true", help="also write OUT.zip holding OUT/ as a folder")
    args = parser.parse_args(argv)
    spec = CheckpointSpec(
        kind=args.kind,
        vocab_size=args.vocab_size,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=args.intermediate,
        max_position_embeddings=args.max_position,
        down_projection_dim=args.proj,
        single_tower=args.single_tower,
        reset=args.reset,
        write_meta=not args.no_meta,
        with_config=not args.no_config,
        optimizer_slots=args.optimizer_slots,
        accumulation=args.accumulation,
        extra_variable=args.extra_variable,
        missing_variable=args.missing_variable,
        wrong_shape=args.wrong_shape,
        seed=args.seed,
    )
    prefix = write_checkpoint(spec, args.out)
    print(prefix)
    if args.zip:
        print(write_zip(args.out, args.out.with_suffix(".zip")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
