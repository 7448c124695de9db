"""`zoo bench`: resolve the model, run its family's benchmark, judge the numbers against the registry.

Family modules (zoo.benchmarks.tapas / splade / flmr) load their data, encode the corpus into an
embedding store, search it exactly and return `Section`s (one per dataset, metrics on their
native scale: rates as fractions, active dims as counts). This module owns what is shared:
where stores live, filling them with an engine (this process, or Ray Data workers:
zoo.benchmarks.ray_engine), search plus the TREC run/qrels files written beside each store (so
any peer tool can recompute the numbers), and judging with zoo.judging's policy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .. import cache, constants, conversion, families, manifest
from ..checks.report import Check
from ..errors import FormatError, InputError
from ..extras import require
from ..judging import Judgement, judge
from ..registry import Entry, load_registry
from .search import ExactIndex
from .store import Arrays, EmbeddingStore, StoreMeta, fill, fingerprint

log = logging.getLogger(__name__)

BACKENDS = ("zoo", "tf")
ENGINES = ("single", "ray")  # single: this process encodes the corpus; ray: Ray Data workers (ray_engine.py)


@dataclass(frozen=True)
class BenchOptions:
    split: str = "test"
    work: Path | None = None  # embedding stores, runs and qrels; default ZOO_HOME/bench/<model>
    batch_size: int = 32
    chunk_size: int = 1024
    device: str | None = None  # default: cuda when available
    images: Path | None = None  # M2KR images root; default: the data directory
    backend: str = "zoo"  # TAPAS only: "tf" runs the independent TF reference on the original checkpoint
    tables_tsv: Path | None = None  # TAPAS: shipped table embeddings to reproduce (default: beside the checkpoint)
    tables_sample: int = 64
    progress: bool = False
    engine: str = "single"
    ray_address: str | None = None  # ray engine: join this cluster ("auto", "ray://host:10001"); default: a local one
    workers: int | None = None  # ray engine: encoder workers (default: one per GPU, else one per 4 CPUs)
    gpus_per_worker: float | None = None  # ray engine: default 1 when the cluster has GPUs, else 0


@dataclass(frozen=True)
class Section:
    """One dataset's numbers, with the files a peer tool can recompute them from."""

    benchmark: str  # registry naming: "NQ-tables", "NanoBEIR MSMARCO", "M2KR WIT"
    metrics: dict[str, float]
    queries: int
    documents: int
    files: dict[str, str] = field(default_factory=dict)  # run / qrels paths


@dataclass(frozen=True)
class Outcome:
    sections: list[Section]
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    path: Path
    family: str
    entry: Entry | None
    label: str


@dataclass(frozen=True)
class BenchResult:
    model: str
    family: str
    entry_id: str | None
    data: str
    split: str
    complete: bool  # every corpus was encoded and searched (always, now that runs are never partial)
    sections: tuple[Section, ...]
    judgements: tuple[Judgement, ...]
    checks: tuple[Check, ...]
    notes: tuple[str, ...]
    work: str

    @property
    def ok(self) -> bool:
        return all(j.ok for j in self.judgements) and all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "family": self.family,
            "entry": self.entry_id,
            "data": self.data,
            "split": self.split,
            "complete": self.complete,
            "ok": self.ok,
            "work": self.work,
            "sections": [asdict(s) for s in self.sections],
            "judgements": [j.to_dict() for j in self.judgements],
            "checks": [c.to_dict() for c in self.checks],
            "notes": list(self.notes),
        }


# --- what each family runner gets ---------------------------------------------------------


class CorpusEncoder(Protocol):
    """A family's corpus encoder as a picklable recipe: `load` builds it where it runs.

    The single-process engine builds it here (or uses the one the family already built); the
    Ray engine ships the recipe to its workers, which build it once each. `load(device)` returns
    a function from a slice of corpus items to the arrays stored for them.
    """

    @property
    def path(self) -> Path:
        """The model directory it loads (Ray workers read it at the same path)."""
        ...

    def load(self, device: Any) -> Callable[[Sequence[Any]], Arrays]: ...


class BenchContext:
    """Options plus the shared mechanics: stores, encoding engines, exact search, run files."""

    def __init__(self, options: BenchOptions, work: Path, model_fingerprint: str) -> None:
        import torch

        self.options = options
        self.work = work
        self.model_fingerprint = model_fingerprint
        self.device = torch.device(options.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.notes: list[str] = []  # what the engine did, added to the result's notes
        self._ray: Any = None  # ray_engine.RayEngine, started when a store first needs encoding

    def __enter__(self) -> BenchContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Leave Ray (a local instance this run started is shut down with all its processes)."""
        if self._ray is not None:
            engine, self._ray = self._ray, None
            engine.close()

    def store(self, name: str, size: int, *data_identity: Any) -> EmbeddingStore:
        """The store for `name`, keyed by model, data and settings (another origin: another folder)."""
        fp = fingerprint(self.model_fingerprint, data_identity, self.options.chunk_size)
        return EmbeddingStore(
            self.work / f"{name}-{fp[:12]}", StoreMeta(fp, size, self.options.chunk_size, description=name)
        )

    def fill(
        self,
        store: EmbeddingStore,
        items: Sequence[Any],
        encoder: CorpusEncoder | None,
        encode: Callable[[Sequence[Any]], Arrays] | None = None,
    ) -> None:
        """Encode the chunks `store` misses from `items`; stored chunks are never encoded again.

        `encode` is the encoder the family already built in this process (the single-process
        engine uses it rather than building `encoder` again); Ray workers build `encoder`.
        """
        self.fill_all([(store, items)], encoder, encode)

    def fill_all(
        self,
        jobs: Sequence[tuple[EmbeddingStore, Sequence[Any]]],
        encoder: CorpusEncoder | None,
        encode: Callable[[Sequence[Any]], Arrays] | None = None,
    ) -> None:
        """`fill` for several (store, items) of one model: the Ray engine encodes them as one Dataset,
        so each worker loads the model once for all of them."""
        found = {store.root: store.num_chunks - len(store.missing()) for store, _ in jobs}
        written = dict.fromkeys(found, 0)
        if all(store.complete for store, _ in jobs):
            pass
        elif self.options.engine == "ray":
            if encoder is None:
                raise InputError("this encoder runs in the single-process engine only (no --engine ray)")
            if self._ray is None:
                from .ray_engine import RayEngine

                self._ray = RayEngine(self.options)
            written = self._ray.fill(jobs, encoder)
            names = ", ".join(store.meta.description for store, _ in jobs if written[store.root])
            self.notes.append(f"{names}: {self._ray.describe(sum(written.values()))}")
        else:
            for store, items in jobs:
                if store.complete:
                    continue
                if encode is None:
                    if encoder is None:
                        raise InputError(f"{store.meta.description}: no encoder")
                    encode = encoder.load(self.device)
                label = f"encode {store.meta.description}"
                written[store.root] = fill(store, items, encode, self._progress(label))
        for root, done in found.items():
            log.info("%s: %d chunks encoded now, %d found done", root, written[root], done)

    def _progress(self, label: str) -> Callable[[Iterable[int]], Iterable[int]]:
        if not self.options.progress:
            return iter
        from tqdm.auto import tqdm

        return lambda items: tqdm(list(items), desc=label, unit="chunk")

    def search(
        self,
        store: EmbeddingStore,
        kind: str,
        queries: object,
        query_ids: Sequence[str],
        doc_ids: Sequence[str],
        k: int,
    ) -> dict[str, list[str]]:
        """Exact top-k per query as doc-id rankings; also writes `<store>/<split>.run` (TREC format)."""
        if len(set(query_ids)) != len(query_ids):
            raise FormatError(f"{store.meta.description}: query ids are not unique")
        order = np.argsort(np.asarray(doc_ids, dtype=object), kind="stable")
        priority = np.empty(len(doc_ids), dtype=np.int64)
        priority[order] = np.arange(len(doc_ids))  # larger doc id wins a tie, as in trec_eval
        top = ExactIndex(store, kind, priority, self.device).search(queries, k)
        rankings: dict[str, list[str]] = {}
        lines = []
        for row, qid in enumerate(query_ids):
            valid = top.positions[row] >= 0
            docs = [doc_ids[p] for p in top.positions[row][valid]]
            rankings[qid] = docs
            lines += [
                f"{qid} Q0 {doc} {rank} {float(score)!r} zoo"
                for rank, (doc, score) in enumerate(zip(docs, top.scores[row][valid], strict=False), start=1)
            ]
        cache.atomic_write_bytes(self.run_file(store), ("\n".join(lines) + "\n").encode())
        return rankings

    def run_file(self, store: EmbeddingStore) -> Path:
        return store.root / f"{self.options.split}.run"

    def write_qrels(self, store: EmbeddingStore, qrels: Mapping[str, Mapping[str, int]], kind: str = "qrels") -> Path:
        path = store.root / f"{self.options.split}.{kind}"
        lines = [f"{q} 0 {d} {g}" for q, grades in qrels.items() for d, g in grades.items()]
        cache.atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
        return path


# --- resolving the model ----------------------------------------------------------------------


def detect_family(path: Path) -> str:
    """Family of a model directory: its manifest, else its files (HF repo layouts, raw TF checkpoint)."""
    if manifest.exists(path):
        return str(manifest.read(path)["family"])
    return families.recognize(path).name


def resolve_target(model: str, judge_as: str | None = None, progress: bool = False) -> Target:
    path = Path(model).expanduser()
    if path.is_dir():
        family = detect_family(path)
        data = manifest.read(path) if manifest.exists(path) else {}
        entry_id = judge_as or data.get("model_id")
        entry = load_registry().get(entry_id) if entry_id else None
        return Target(path.resolve(), family, entry, entry.id if entry else path.resolve().name)
    registry = load_registry()
    entry = registry.get(model)
    judged = registry.get(judge_as) if judge_as else entry
    return Target(conversion.resolve(entry, progress=progress), entry.family, judged, entry.id)


def model_fingerprint(path: Path, backend: str) -> str:
    """Content identity of a model directory: its manifest's file hashes, else every file's sha256."""
    if manifest.exists(path):
        data = manifest.read(path)
        return fingerprint(backend, data["files"], data.get("source", {}).get("files"))
    return fingerprint(backend, cache.hash_tree(path))


def default_work(label: str) -> Path:
    return constants.zoo_home() / "bench" / label


# --- judging ----------------------------------------------------------------------------------


def registry_cells(entry: Entry, sections: Sequence[Section]) -> dict[tuple[str, str], float]:
    """Measured values of the cells the registry has, converted to the registry's scale."""
    scales = {(m.benchmark, m.metric): m.scale for m in entry.metrics}
    cells = {}
    for section in sections:
        for metric, value in section.metrics.items():
            scale = scales.get((section.benchmark, metric))
            if scale is not None:
                cells[(section.benchmark, metric)] = value * 100 if scale == "percent" else value
    return cells


def check_options(options: BenchOptions) -> None:
    if options.backend not in BACKENDS:
        raise InputError(f"backend must be one of {BACKENDS}")
    if options.engine not in ENGINES:
        raise InputError(f"engine must be one of {ENGINES}")
    ray_only = {
        "--ray-address": options.ray_address,
        "--workers": options.workers,
        "--gpus-per-worker": options.gpus_per_worker,
    }
    if options.engine != "ray" and (given := [flag for flag, value in ray_only.items() if value is not None]):
        raise InputError(f"{', '.join(given)}: only with --engine ray")
    if options.workers is not None and options.workers < 1:
        raise InputError(f"--workers {options.workers}: need at least one worker")
    if options.gpus_per_worker is not None and options.gpus_per_worker < 0:
        raise InputError(f"--gpus-per-worker {options.gpus_per_worker}: must be >= 0")
    if options.engine == "ray" and options.backend != "zoo":
        raise InputError(f"--backend {options.backend} runs in the single-process engine only (drop --engine ray)")
    if options.engine == "ray":
        require("ray", "zoo bench --engine ray")  # before any model is loaded


def run(model: str, data: Path, options: BenchOptions = BenchOptions(), judge_as: str | None = None) -> BenchResult:
    """Benchmark `model` (registry id or directory) on the local data at `data`."""
    check_options(options)
    data = Path(data).expanduser()
    if not data.exists():
        raise InputError(f"--data {data}: no such file or directory")
    target = resolve_target(model, judge_as, options.progress)
    if options.backend != "zoo" and target.family != "tapas":
        raise InputError(f"--backend {options.backend} exists for TAPAS only (the TF reference)")
    work = Path(options.work).expanduser() if options.work else default_work(target.label)
    with BenchContext(options, work, model_fingerprint(target.path, options.backend)) as context:
        outcome: Outcome = families.family(target.family).bench_module().run(target.path, data, context)
    notes = list(outcome.notes) + context.notes
    judgements: list[Judgement] = []
    if target.entry is not None:
        cells = registry_cells(target.entry, outcome.sections)
        judgements = judge(target.entry, cells)
        if not cells:
            notes.append(f"the registry has no numbers for these benchmarks under {target.entry.id}; nothing judged")
    else:
        notes.append("no registry entry to judge against (give a registry id, or --judge-as ID for a directory)")
    result = BenchResult(
        model=str(model),
        family=target.family,
        entry_id=target.entry.id if target.entry else None,
        data=str(data),
        split=options.split,
        complete=True,
        sections=tuple(outcome.sections),
        judgements=tuple(judgements),
        checks=tuple(outcome.checks),
        notes=tuple(notes),
        work=str(work),
    )
    cache.atomic_write_bytes(
        work / f"result-{options.split}.json", json.dumps(result.to_dict(), indent=2, default=str).encode()
    )
    return result
