"""Exact search over an embedding store: inner product, sparse dot product, late-interaction MaxSim.

Every index answers `search(queries, k) -> TopK` (the `Index` protocol), so an approximate
index (PLAID for late interaction, say) can replace `ExactIndex` without touching the runners.
`ExactIndex` scores every stored chunk against every query and keeps a running top k; equal
scores are ordered by a per-document priority (the runners pass trec_eval's rule: larger doc
id first), so the ranking never depends on chunking, sharding or hardware.

Stored arrays per representation:
- dense:  embeddings [n, D]
- sparse: indptr [n + 1], indices [nnz], values [nnz], shape [2] (CSR rows)
- multi:  embeddings [tokens, d] (every document's kept token vectors, concatenated), lengths [n]
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from .store import Arrays, EmbeddingStore

PAD_SCORE = -9999.0  # what FLMR's score() gives a padded document row
MAXSIM_BLOCK_ELEMENTS = 1 << 26  # similarity entries held at once (256 MB in float32)
MAXSIM_BLOCK_TOKENS = 1 << 14  # document tokens scored at once


@dataclass(frozen=True)
class TopK:
    scores: np.ndarray  # [Q, k] float32, best first
    positions: np.ndarray  # [Q, k] int64 corpus positions; -1 where the corpus has fewer than k items


class Index(Protocol):
    def search(self, queries: object, k: int) -> TopK: ...


# --- scorers: queries held on the device, one chunk in, [Q, n] scores out ---------------


class DenseScorer:
    """Inner product (the TAPAS retriever's score)."""

    def __init__(self, queries: np.ndarray, device: torch.device) -> None:
        self.device = device
        self.queries = torch.as_tensor(queries, dtype=torch.float32, device=device)

    def __len__(self) -> int:
        return self.queries.shape[0]

    def __call__(self, arrays: Arrays) -> np.ndarray:
        docs = torch.from_numpy(arrays["embeddings"]).to(self.device, torch.float32)
        return (self.queries @ docs.T).cpu().numpy()


def csr_tensor(arrays: Arrays, device: torch.device) -> torch.Tensor:
    rows, cols = (int(x) for x in arrays["shape"])
    with warnings.catch_warnings():  # "sparse CSR support is in beta": matmul with a dense matrix is stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(arrays["indptr"]).long(),
            torch.from_numpy(arrays["indices"]).long(),
            torch.from_numpy(arrays["values"]).float(),
            size=(rows, cols),
            check_invariants=True,
        ).to(device)


class SparseScorer:
    """Sparse dot product (SPLADE's similarity): queries densified, documents kept CSR."""

    def __init__(self, queries: Arrays, device: torch.device) -> None:
        self.device = device
        self.queries = csr_tensor(queries, device).to_dense().T.contiguous()  # [V, Q]

    def __len__(self) -> int:
        return self.queries.shape[1]

    def __call__(self, arrays: Arrays) -> np.ndarray:
        return (csr_tensor(arrays, self.device) @ self.queries).T.cpu().numpy()


class MaxSimScorer:
    """Late interaction: for each query vector the best document vector, summed (full, exact)."""

    def __init__(self, queries: np.ndarray, device: torch.device) -> None:
        self.device = device
        self.queries = torch.as_tensor(queries, dtype=torch.float32, device=device)  # [Q, Lq, d]

    def __len__(self) -> int:
        return self.queries.shape[0]

    def __call__(self, arrays: Arrays) -> np.ndarray:
        tokens, lengths = arrays["embeddings"], arrays["lengths"].astype(np.int64)
        num_queries, query_len, dim = self.queries.shape
        out = np.empty((num_queries, len(lengths)), dtype=np.float32)
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        for first, last in _blocks(lengths, MAXSIM_BLOCK_TOKENS):
            block = torch.from_numpy(tokens[bounds[first] : bounds[last]]).to(self.device, torch.float32)
            owner = torch.repeat_interleave(
                torch.arange(last - first, device=self.device), torch.from_numpy(lengths[first:last]).to(self.device)
            )
            step = max(1, MAXSIM_BLOCK_ELEMENTS // (query_len * max(len(block), 1)))
            for start in range(0, num_queries, step):
                q = self.queries[start : start + step].reshape(-1, dim)
                best = torch.full((q.shape[0], last - first), PAD_SCORE, device=self.device)
                best.scatter_reduce_(1, owner.expand(q.shape[0], -1), q @ block.T, "amax", include_self=True)
                out[start : start + step, first:last] = best.view(-1, query_len, last - first).sum(1).cpu().numpy()
        return out


def _blocks(lengths: np.ndarray, max_tokens: int) -> list[tuple[int, int]]:
    """Consecutive document ranges holding at most max_tokens tokens (at least one document each)."""
    blocks, first, total = [], 0, 0
    for i, length in enumerate(lengths):
        if i > first and total + length > max_tokens:
            blocks.append((first, i))
            first, total = i, 0
        total += int(length)
    if first < len(lengths):
        blocks.append((first, len(lengths)))
    return blocks


class Scorer(Protocol):
    """Queries held on the device: one chunk in, [Q, n] scores out."""

    def __len__(self) -> int: ...

    def __call__(self, arrays: Arrays) -> np.ndarray: ...


SCORERS: dict[str, Callable[..., Scorer]] = {"dense": DenseScorer, "sparse": SparseScorer, "multi": MaxSimScorer}


# --- exact index ------------------------------------------------------------------------


class ExactIndex:
    """Scores the whole store; `priority[i]` orders equal scores (higher first)."""

    def __init__(self, store: EmbeddingStore, kind: str, priority: np.ndarray, device: torch.device) -> None:
        if len(priority) != store.meta.size:
            raise ValueError(f"{len(priority)} priorities for a store of {store.meta.size} items")
        self.store, self.kind, self.device = store, kind, device
        self.priority = np.asarray(priority, dtype=np.int64)

    def search(self, queries: object, k: int) -> TopK:
        scorer = SCORERS[self.kind](queries, self.device)
        num_queries = len(scorer)
        scores = np.full((num_queries, 0), -np.inf, dtype=np.float32)
        positions = np.full((num_queries, 0), -1, dtype=np.int64)
        for items, arrays in self.store:
            chunk_positions = np.broadcast_to(np.arange(items.start, items.stop), (num_queries, len(items)))
            scores, positions = _top(
                np.concatenate([scores, scorer(arrays)], axis=1),
                np.concatenate([positions, chunk_positions], axis=1),
                self.priority,
                k,
            )
        if positions.shape[1] < k:
            pad = k - positions.shape[1]
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
            positions = np.pad(positions, ((0, 0), (0, pad)), constant_values=-1)
        return TopK(scores, positions)


def _top(scores: np.ndarray, positions: np.ndarray, priority: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k best by (score, priority), both descending."""
    order = np.lexsort((-priority[positions], -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(positions, order, axis=1)
