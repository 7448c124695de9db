"""Corpus encoding on Ray Data: `zoo bench --engine ray`.

The chunks a store still misses become a Ray Dataset, one row per chunk (its index and its items,
pickled). `map_batches` runs `ChunkEncoder`, a callable class, on an actor pool: each worker
builds the family's encoder once from its picklable recipe (runner.CorpusEncoder: the same
loading code the single-process engine runs) on its own device, and turns each chunk into the
bytes of a chunk file (store.chunk_bytes). This process writes them into the store as they
stream back, so the files are the ones the single-process engine writes, an interrupted run
resumes from them with either engine, and only this process needs to see the work directory.

Without an address (--ray-address, or Ray's RAY_ADDRESS variable) zoo starts a local Ray instance
sized to this machine and shuts it down at the end, its processes with it (also on Ctrl-C or
SIGTERM); with one (`auto`, `host:6379`, `ray://host:10001`) it joins that cluster and leaves it
running; in a process already connected to Ray it uses that connection and leaves it open.
Workers load the model from the path this process resolved: on a cluster of several machines it
must be at that path on every node.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import FormatError, InputError, ZooError
from ..extras import require
from .store import EmbeddingStore, chunk_bytes

if TYPE_CHECKING:
    from .runner import BenchOptions, CorpusEncoder

log = logging.getLogger(__name__)

CPUS_PER_CPU_WORKER = 4  # without GPUs: one worker (one model copy) per 4 CPUs unless --workers says otherwise


class ChunkEncoder:
    """The Ray Data callable class: built once per worker, it encodes one chunk per row.

    Bad input (a zoo error, or a model package's input error) comes back as an `error` row, not
    as an exception: Ray would deliver that only as text, and zoo would lose its type and exit code.
    """

    def __init__(self, encoder: CorpusEncoder, device: str, threads: int | None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.error = b""
        try:
            if not Path(encoder.path).exists():
                raise FormatError(
                    f"{encoder.path}: no such model directory on Ray node {socket.gethostname()}; with --engine ray "
                    "the model must be at the same path on every node (a shared filesystem, or the same ZOO_HOME)"
                )
            self.encode = encoder.load(torch.device(device))
        except Exception as exc:
            self.error = _bad_input(exc)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        data, errors = [], []
        for blob in batch["items"]:
            error, encoded = self.error, b""
            if not error:
                items = pickle.loads(blob)
                try:
                    encoded = chunk_bytes(self.encode(items), len(items))
                except Exception as exc:
                    error = _bad_input(exc)
            data.append(encoded)
            errors.append(error)
        return {
            "job": batch["job"],
            "chunk": batch["chunk"],
            "data": np.array(data, dtype=object),
            "error": np.array(errors, dtype=object),
        }


def _bad_input(exc: Exception) -> bytes:
    """A zoo error (or a model package's input error, as zoo's FormatError) pickled for the driver; else re-raise."""
    from ..families import translate

    error = translate(exc)
    if error is None:
        raise exc
    try:
        blob = pickle.dumps(error)
        pickle.loads(blob)  # an error whose constructor takes other arguments than its message does not round-trip
    except Exception:
        plain = next(c for c in (FormatError, InputError, ZooError) if isinstance(error, c))  # same exit code
        blob = pickle.dumps(plain(str(error)))
    return blob


class RayEngine:
    """A connection to Ray (a local instance it started, or a cluster it joined) and the worker sizing."""

    def __init__(self, options: BenchOptions) -> None:
        self.ray = require("ray", "zoo bench --engine ray")
        import ray.data  # ray[data]: pyarrow and friends

        self.options = options
        self.verbose = logging.getLogger("zoo").isEnabledFor(logging.INFO)
        self.connected = False  # this engine called ray.init, so it calls ray.shutdown
        self._sigterm: Any = None  # the SIGTERM handler to put back
        self._restore: tuple[bool, int] | None = None
        if self.ray.is_initialized():
            self.where = "the Ray instance this process was connected to"
        else:
            self._connect(options.ray_address or os.environ.get("RAY_ADDRESS") or None)
        # zoo draws its own bar (on a terminal) and keeps Ray Data's INFO lines for -v; put back in close()
        self._data_context = ray.data.DataContext.get_current()
        self._restore = (self._data_context.enable_progress_bars, logging.getLogger("ray.data").level)
        self._data_context.enable_progress_bars = False
        if not self.verbose:
            logging.getLogger("ray.data").setLevel(logging.ERROR)
        try:
            self._size(options)
        except BaseException:
            self.close()
            raise

    def _connect(self, address: str | None) -> None:
        quiet = {"log_to_driver": self.verbose, "logging_level": logging.INFO if self.verbose else logging.WARNING}
        try:
            if address is None:
                # "local": always a new instance, sized to this machine, even where RAY_ADDRESS is set
                self.ray.init(address="local", include_dashboard=False, **quiet)
                self.where = "a local Ray instance"
            else:
                _token_like_ray_start()
                self.ray.init(address=address, **quiet)
                self.where = f"the Ray cluster at {address}"
        except (ConnectionError, ValueError) as exc:
            self.ray.shutdown()
            hint = "" if os.environ.get("RAY_AUTH_MODE") == "token" else " (token authentication: RAY_AUTH_MODE=token)"
            raise InputError(f"--ray-address {address}: {exc}{hint}") from None
        except BaseException:
            self.ray.shutdown()  # Ctrl-C while starting: take down what was started
            raise
        self.connected = True
        if threading.current_thread() is threading.main_thread():
            # Ray's driver aborts on SIGTERM; exit through close() instead, as Ctrl-C does
            self._sigterm = signal.signal(signal.SIGTERM, _terminate)

    def _size(self, options: BenchOptions) -> None:
        resources = self.ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        per_worker = options.gpus_per_worker
        if per_worker is None:
            per_worker = 1.0 if gpus >= 1 and not (options.device or "").startswith("cpu") else 0.0
        if per_worker > 0:
            workers = options.workers or max(1, int(gpus // per_worker))
            if workers * per_worker > gpus:
                raise InputError(
                    f"{workers} workers x {per_worker:g} GPUs need {workers * per_worker:g} GPUs; "
                    f"{self.where} has {gpus:g} (set --workers or --gpus-per-worker)"
                )
            self.device = options.device or "cuda"  # Ray sets CUDA_VISIBLE_DEVICES to the worker's own GPUs
            self.threads = None
            self.cpus_per_worker = min(1.0, cpus / workers) if cpus else 0.0
        else:
            if cpus <= 0:
                raise InputError(f"{self.where} has no CPUs to run encoder workers on")
            workers = options.workers or max(1, int(cpus // CPUS_PER_CPU_WORKER))
            self.device = options.device or "cpu"
            self.cpus_per_worker = cpus / workers  # the workers share the CPUs, each with its torch threads
            self.threads = max(1, int(self.cpus_per_worker))
        self.workers, self.gpus_per_worker = workers, per_worker
        log.info(
            "ray: %d workers on %s, %g CPUs and %g GPUs each, device %s",
            workers,
            self.where,
            self.cpus_per_worker,
            per_worker,
            self.device,
        )

    def describe(self, written: int) -> str:
        return (
            f"{written} chunks encoded by {self.workers} Ray workers ({self.gpus_per_worker:g} GPUs each) "
            f"on {self.where}"
        )

    def fill(self, jobs: Sequence[tuple[EmbeddingStore, Sequence[Any]]], encoder: CorpusEncoder) -> dict[Path, int]:
        """Encode the chunks the stores miss as one Dataset; write each chunk into its store as it arrives.

        Returns the number of chunks written per store root.
        """
        rows = []
        for job, (store, items) in enumerate(jobs):
            if len(items) != store.meta.size:
                raise InputError(f"{store.root}: {len(items)} items for a store of {store.meta.size}")
            for chunk in store.missing():
                span = store.items(chunk)
                blob = pickle.dumps(list(items[span.start : span.stop]), protocol=5)
                rows.append({"job": job, "chunk": chunk, "items": blob})
        written = {store.root: 0 for store, _ in jobs}
        if not rows:
            return written
        dataset = self.ray.data.from_items(rows, override_num_blocks=len(rows))
        encoded = dataset.map_batches(
            ChunkEncoder,
            fn_constructor_args=(encoder, self.device, self.threads),
            batch_size=1,
            batch_format="numpy",
            compute=self.ray.data.ActorPoolStrategy(size=self.workers),
            num_cpus=self.cpus_per_worker,
            num_gpus=self.gpus_per_worker or None,
        )
        bar = None
        if self.options.progress:
            from tqdm.auto import tqdm

            names = ", ".join(store.meta.description for store, _ in jobs if not store.complete)
            bar = tqdm(total=len(rows), desc=f"encode {names} (ray, {self.workers} workers)", unit="chunk")
        try:
            for row in encoded.iter_rows():
                if row["error"]:
                    raise pickle.loads(row["error"])
                store = jobs[int(row["job"])][0]
                store.write_bytes(int(row["chunk"]), bytes(row["data"]))
                written[store.root] += 1
                if bar is not None:
                    bar.update()
        finally:
            if bar is not None:
                bar.close()
        if lost := [(store.root, store.missing()[0]) for store, _ in jobs if not store.complete]:
            raise ZooError(f"Ray returned no encoding for some chunks (first: {lost[0][0]} chunk {lost[0][1]})")
        return written

    def close(self) -> None:
        if self.connected:
            self.connected = False
            self.ray.shutdown()  # a local instance stops with all its processes; a joined cluster keeps running
        if self._sigterm is not None:
            signal.signal(signal.SIGTERM, self._sigterm)
            self._sigterm = None
        if self._restore is not None:
            self._data_context.enable_progress_bars, level = self._restore
            logging.getLogger("ray.data").setLevel(level)
            self._restore = None


def _token_like_ray_start() -> None:
    """Joining a cluster: use Ray's token (~/.ray/auth_token, RAY_AUTH_TOKEN[_PATH]) where RAY_AUTH_MODE is
    unset, as `ray start` does on every node. A Ray 2.60 cluster started where a token exists requires
    it, and a cluster without authentication accepts a client that sends one."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # another Ray version: its own defaults apply
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)
