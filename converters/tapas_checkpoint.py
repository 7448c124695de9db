"""The TF side of TAPAS conversion: find a checkpoint, read it tensor by tensor, read its facts.

Shared by converters/tapas_retriever.py and converters/tapas_reader.py (and by the TF
reference in zoo/reference). A source is a GCS-style zip (one folder inside), an unzipped
folder, or a checkpoint prefix (`.../model.ckpt`); the folder holding `*.index` must also hold
`bert_config.json`. Facts that are not tensors come from the files beside them: the encoder
sizes from bert_config.json, the per-cell position reset from the `.meta` graph.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import weakref
import zipfile
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from converters import shared
from converters.rules import Rule
from zoo import extras
from zoo.cache import sha256_file
from zoo.errors import FormatError
from zoo.sources.extract import safe_extract

if TYPE_CHECKING:
    from typing_extensions import Self

CONFIG_NAME = "bert_config.json"
VOCAB_NAME = "vocab.txt"
INDEX_SUFFIX = ".index"
META_SUFFIX = ".meta"
RESET_OP = "UnsortedSegmentMin"  # TF TAPAS's per-cell position reset is a segment min
RESET_SCOPE = "bert/embeddings/"

# TF optimizer and bookkeeping variables: skipped, and nothing else is.
SKIP: tuple[str, ...] = (r".*/adam_m", r".*/adam_v", r"global_step", r"counter", r".*/accum")

# One encoder tower; group 1 is the TF scope, which is also the model attribute (bert, bert_1).
_TOWER_TABLE: tuple[tuple[str, str, str], ...] = (
    (r"embeddings/word_embeddings", r"embeddings.word_embeddings.weight", "identity"),
    (r"embeddings/position_embeddings", r"embeddings.position_embeddings.weight", "identity"),
    (r"embeddings/token_type_embeddings_(\d+)", r"embeddings.token_type_embeddings_\2.weight", "identity"),
    (r"embeddings/LayerNorm/gamma", r"embeddings.LayerNorm.weight", "identity"),
    (r"embeddings/LayerNorm/beta", r"embeddings.LayerNorm.bias", "identity"),
    (
        r"encoder/layer_(\d+)/attention/self/(query|key|value)/kernel",
        r"encoder.layer.\2.attention.self.\3.weight",
        "transpose",
    ),
    (
        r"encoder/layer_(\d+)/attention/self/(query|key|value)/bias",
        r"encoder.layer.\2.attention.self.\3.bias",
        "identity",
    ),
    (
        r"encoder/layer_(\d+)/attention/output/dense/kernel",
        r"encoder.layer.\2.attention.output.dense.weight",
        "transpose",
    ),
    (r"encoder/layer_(\d+)/attention/output/dense/bias", r"encoder.layer.\2.attention.output.dense.bias", "identity"),
    (
        r"encoder/layer_(\d+)/attention/output/LayerNorm/gamma",
        r"encoder.layer.\2.attention.output.LayerNorm.weight",
        "identity",
    ),
    (
        r"encoder/layer_(\d+)/attention/output/LayerNorm/beta",
        r"encoder.layer.\2.attention.output.LayerNorm.bias",
        "identity",
    ),
    (r"encoder/layer_(\d+)/intermediate/dense/kernel", r"encoder.layer.\2.intermediate.dense.weight", "transpose"),
    (r"encoder/layer_(\d+)/intermediate/dense/bias", r"encoder.layer.\2.intermediate.dense.bias", "identity"),
    (r"encoder/layer_(\d+)/output/dense/kernel", r"encoder.layer.\2.output.dense.weight", "transpose"),
    (r"encoder/layer_(\d+)/output/dense/bias", r"encoder.layer.\2.output.dense.bias", "identity"),
    (r"encoder/layer_(\d+)/output/LayerNorm/gamma", r"encoder.layer.\2.output.LayerNorm.weight", "identity"),
    (r"encoder/layer_(\d+)/output/LayerNorm/beta", r"encoder.layer.\2.output.LayerNorm.bias", "identity"),
    (r"pooler/dense/kernel", r"pooler.dense.weight", "transpose"),
    (r"pooler/dense/bias", r"pooler.dense.bias", "identity"),
)

# bert_config hidden_act -> transformers ACT2FN name; TF TAPAS "gelu" is the tanh form.
_ACTIVATIONS = {"gelu": "gelu_new", "relu": "relu", "tanh": "tanh"}
_REQUIRED = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "max_position_embeddings",
    "type_vocab_size",
)
NUM_TOKEN_TYPES = 7


def tower_rules(scopes: str) -> tuple[Rule, ...]:
    """Rules for the encoder towers whose TF scope matches `scopes` (e.g. "bert|bert_1")."""
    return tuple(Rule(rf"({scopes})/{p}", rf"\1.{t}", tr) for p, t, tr in _TOWER_TABLE)


# --- locating ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointFiles:
    """Where one checkpoint's files are on disk."""

    prefix: Path  # e.g. .../model.ckpt (model.ckpt.index and data shards beside it)
    config: Path
    vocab: Path | None
    meta: Path | None

    def all(self) -> list[Path]:
        """Every file the conversion reads, for hashing."""
        shards = sorted(self.prefix.parent.glob(self.prefix.name + ".data-*"))
        files = [Path(str(self.prefix) + INDEX_SUFFIX), *shards, self.config]
        return files + [p for p in (self.meta, self.vocab) if p is not None]


def locate(folder: Path) -> CheckpointFiles:
    """Find the single `*.index` under `folder` and bert_config.json beside it."""
    indexes = sorted(p for p in folder.rglob("*" + INDEX_SUFFIX) if p.is_file())
    if not indexes:
        raise FormatError(f"{folder}: no TF checkpoint found (no *{INDEX_SUFFIX} file)")
    if len(indexes) > 1:
        raise FormatError(
            f"{folder}: several checkpoints found ({', '.join(p.name for p in indexes)}); "
            "pass the checkpoint prefix you mean"
        )
    return _files_for(Path(str(indexes[0])[: -len(INDEX_SUFFIX)]))


def _files_for(prefix: Path) -> CheckpointFiles:
    config = prefix.parent / CONFIG_NAME
    if not config.is_file():
        raise FormatError(f"{prefix.parent}: {CONFIG_NAME} is missing beside the checkpoint {prefix.name}")
    vocab = prefix.parent / VOCAB_NAME
    meta = Path(str(prefix) + META_SUFFIX)
    return CheckpointFiles(prefix, config, vocab if vocab.is_file() else None, meta if meta.is_file() else None)


@dataclass
class Located:
    """A resolved source: its files, what kind of artifact it came from, and any temp dir to drop."""

    files: CheckpointFiles
    kind: str  # "zip" | "dir" | "prefix"
    path: Path  # the artifact as given, absolute
    member: str  # the prefix relative to the artifact root (POSIX), "" for a prefix
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def resolve(src: Path) -> Located:
    """Zip, folder or prefix -> Located. Zips are extracted into a temp dir that `close` removes.

    Inside `converters.sharing()` an artifact is extracted once; later callers get a view whose
    `close` leaves the extraction to the session.
    """
    src = Path(src).expanduser().absolute()
    located, owned = shared(("tapas", str(src)), lambda: _resolve(src))
    return located if owned else replace(located, _tmp=None)


def _resolve(src: Path) -> Located:
    if src.is_file() and zipfile.is_zipfile(src):
        tmp = tempfile.TemporaryDirectory(prefix="zoo-tapas-")
        root = Path(tmp.name) / "x"
        try:
            safe_extract(src, root)
            files = locate(root)
        except FormatError as exc:  # name the archive, not the temp dir it was unpacked into
            tmp.cleanup()
            raise type(exc)(str(exc).replace(str(root), src.name)) from None
        except BaseException:
            tmp.cleanup()
            raise
        member = files.prefix.relative_to(root).as_posix()
        return Located(files, "zip", src, member, tmp)
    if src.is_dir():
        files = locate(src)
        return Located(files, "dir", src, files.prefix.relative_to(src).as_posix())
    if Path(str(src) + INDEX_SUFFIX).is_file():
        return Located(_files_for(src), "prefix", src, "")
    if src.suffix == INDEX_SUFFIX and src.is_file():
        return _resolve(src.with_suffix(""))
    raise FormatError(f"{src}: not a zip, a folder or a checkpoint prefix (no {src.name}{INDEX_SUFFIX})")


def sha256_of(paths: list[Path]) -> dict[str, str]:
    """sha256 of each file, keyed by file name."""
    return {path.name: sha256_file(path) for path in paths}


# --- reading tensors ----------------------------------------------------------------------


def _tf() -> Any:
    return extras.tensorflow("reading a TAPAS TF checkpoint")


class TFCheckpointReader:
    """SourceReader over a TF checkpoint: names and shapes from the index, one tensor per `get`."""

    def __init__(self, prefix: Path) -> None:
        tf = _tf()
        self.prefix = prefix
        try:
            self._reader = tf.train.load_checkpoint(str(prefix))
            shapes = self._reader.get_variable_to_shape_map()
            dtypes = self._reader.get_variable_to_dtype_map()
        except (tf.errors.OpError, ValueError) as exc:
            raise FormatError(f"{prefix}: not a readable TF checkpoint ({_first_line(exc)})") from exc
        self._shapes = {name: tuple(int(d) for d in shape) for name, shape in shapes.items()}
        self._dtypes = {name: np.dtype(dt.as_numpy_dtype) for name, dt in dtypes.items()}

    def names(self) -> list[str]:
        return sorted(self._shapes)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]

    def dtype(self, name: str) -> np.dtype:
        return self._dtypes[name]

    def get(self, name: str) -> np.ndarray:
        tf = _tf()
        try:
            return np.asarray(self._reader.get_tensor(name))
        except tf.errors.OpError as exc:
            raise FormatError(f"{self.prefix}: cannot read {name!r} ({_first_line(exc)})") from exc


class AliasView:
    """A reader in which some names are second names for others (a pure, named pre-pass)."""

    def __init__(self, base, aliases: Mapping[str, str]) -> None:
        self.base, self.aliases = base, dict(aliases)

    def names(self) -> list[str]:
        return sorted([*self.base.names(), *self.aliases])

    def shape(self, name: str) -> tuple[int, ...]:
        return self.base.shape(self.aliases.get(name, name))

    def dtype(self, name: str) -> np.dtype:
        return self.base.dtype(self.aliases.get(name, name))

    def get(self, name: str) -> np.ndarray:
        return self.base.get(self.aliases.get(name, name))


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


# --- facts beside the tensors --------------------------------------------------------------


def detect_reset(meta: Path) -> bool:
    """True iff the graph has a segment-min op under bert/embeddings/ (the per-cell reset)."""
    _tf()
    from tensorflow.core.protobuf import meta_graph_pb2

    graph = meta_graph_pb2.MetaGraphDef()
    try:
        graph.ParseFromString(meta.read_bytes())
    except Exception as exc:  # protobuf raises its own DecodeError type
        raise FormatError(f"{meta}: not a readable MetaGraphDef ({exc})") from exc
    nodes = [*graph.graph_def.node, *(n for f in graph.graph_def.library.function for n in f.node_def)]
    return any(n.op == RESET_OP and n.name.startswith(RESET_SCOPE) for n in nodes)


def resolve_reset(files: CheckpointFiles, options: Mapping[str, Any], *, default: bool | None) -> bool:
    """The reset flag: read from the .meta graph; else the caller's option; else `default` or FormatError."""
    given = options.get("reset_position_index_per_cell")
    if files.meta is not None:
        found = detect_reset(files.meta)
        if given is not None and bool(given) != found:
            raise FormatError(
                f"{files.meta.name} says reset_position_index_per_cell={found}, but the option says {bool(given)}"
            )
        return found
    if given is not None:
        return bool(given)
    if default is not None:
        return default
    raise FormatError(
        f"{files.prefix.parent}: no {files.prefix.name}{META_SUFFIX} graph to tell whether the "
        "checkpoint used per-cell position reset; pass --reset-position-index-per-cell yes|no "
        "(option reset_position_index_per_cell)"
    )


def read_bert_config(path: Path) -> dict[str, Any]:
    """bert_config.json -> keyword arguments for the zoo TAPAS configs (type_vocab_sizes list)."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise FormatError(f"{path}: expected a JSON object")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise FormatError(f"{path}: missing field(s) {', '.join(missing)}")
    sizes = raw["type_vocab_size"]
    if not (isinstance(sizes, list) and len(sizes) == NUM_TOKEN_TYPES and all(isinstance(s, int) for s in sizes)):
        raise FormatError(f"{path}: type_vocab_size must be a list of {NUM_TOKEN_TYPES} ints (TAPAS), got {sizes!r}")
    act = raw["hidden_act"]
    if act not in _ACTIVATIONS:
        raise FormatError(f"{path}: unsupported hidden_act {act!r} (known: {', '.join(_ACTIVATIONS)})")
    if float(raw.get("softmax_temperature", 1.0)) != 1.0:
        raise FormatError(f"{path}: softmax_temperature {raw['softmax_temperature']} is not supported (only 1.0)")
    for key in (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
    ):
        if not isinstance(raw[key], int) or raw[key] <= 0:
            raise FormatError(f"{path}: {key} must be a positive int, got {raw[key]!r}")
    if raw["hidden_size"] % raw["num_attention_heads"]:
        raise FormatError(
            f"{path}: hidden_size {raw['hidden_size']} is not a multiple of "
            f"num_attention_heads {raw['num_attention_heads']}"
        )
    return {
        "vocab_size": raw["vocab_size"],
        "hidden_size": raw["hidden_size"],
        "num_hidden_layers": raw["num_hidden_layers"],
        "num_attention_heads": raw["num_attention_heads"],
        "intermediate_size": raw["intermediate_size"],
        "hidden_act": _ACTIVATIONS[act],
        "hidden_dropout_prob": float(raw.get("hidden_dropout_prob", 0.1)),
        "attention_probs_dropout_prob": float(raw.get("attention_probs_dropout_prob", 0.1)),
        "max_position_embeddings": raw["max_position_embeddings"],
        "type_vocab_sizes": list(sizes),
        "initializer_range": float(raw.get("initializer_range", 0.02)),
        "layer_norm_eps": 1e-12,  # tf_slim.layer_norm's epsilon
    }


# --- a resolved source with its facts ----------------------------------------------------------


class TapasSource:
    """SourceReader plus the facts a TAPAS converter needs; close() drops a zip's temp dir."""

    def __init__(self, located: Located, reader, hashes: Future[dict[str, Any]] | None = None) -> None:
        self.located = located
        self.reader = reader
        self._hashes = hashes
        self._finalizer = weakref.finalize(self, located.close)

    @property
    def files(self) -> CheckpointFiles:
        return self.located.files

    def names(self) -> list[str]:
        return self.reader.names()

    def shape(self, name: str) -> tuple[int, ...]:
        return self.reader.shape(name)

    def dtype(self, name: str) -> np.dtype:
        return self.reader.dtype(name)

    def get(self, name: str) -> np.ndarray:
        return self.reader.get(name)

    def identity(self, fmt: str) -> dict[str, Any]:
        """What the manifest records about the source: format, path, resolved prefix, hashes."""
        loc = self.located
        return {
            "format": fmt,
            "path": str(loc.path),
            "kind": loc.kind,
            "checkpoint": loc.member or loc.files.prefix.name,  # relative to the artifact, never a local path
            **(self._hashes.result() if self._hashes is not None else _hashes(loc)),
        }

    def close(self) -> None:
        _settled(self._hashes)
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _hashes(located: Located) -> dict[str, Any]:
    """The identity record's hashes: every file the conversion reads, and the zip they came from."""
    hashes: dict[str, Any] = {"files": sha256_of(located.files.all())}
    if located.kind == "zip":
        hashes["archive_sha256"] = sha256_of([located.path])[located.path.name]
    return hashes


def _hashes_started(located: Located) -> Future[dict[str, Any]]:
    """_hashes on a worker thread: hashing releases the GIL, so it runs beside TensorFlow's
    import and the tensor reads instead of after them."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tapas-hash")
    try:
        return pool.submit(_hashes, located)
    finally:
        pool.shutdown(wait=False)


def _settled(future: Future | None) -> None:
    """Wait until a background hash is done (it reads files a close may delete)."""
    if future is not None:
        future.exception()


def open_checkpoint(src: Path, *, hash_files: bool = False) -> TapasSource:
    """The checkpoint at `src` (zip, folder or prefix); `hash_files` starts hashing its files at
    once, for a conversion's identity record."""
    located = resolve(src)
    hashes = _hashes_started(located) if hash_files else None
    try:
        return TapasSource(located, TFCheckpointReader(located.files.prefix), hashes)
    except BaseException:
        _settled(hashes)
        located.close()
        raise


def copy_tokenizer_files(files: CheckpointFiles, out: Path, model_max_length: int) -> list[str]:
    """vocab.txt byte for byte plus a tokenizer_config.json for transformers' TapasTokenizer."""
    if files.vocab is None:
        return []
    shutil.copyfile(files.vocab, out / VOCAB_NAME)
    config = {
        "tokenizer_class": "TapasTokenizer",
        "do_lower_case": True,
        "model_max_length": model_max_length,
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
        "empty_token": "[EMPTY]",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return [VOCAB_NAME, "tokenizer_config.json"]
