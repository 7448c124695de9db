"""Exact search: dense, sparse and late-interaction scores against brute force, ties by priority."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from zoo.benchmarks import search
from zoo.benchmarks.store import EmbeddingStore, StoreMeta, fill

CPU = torch.device("cpu")


def _store(tmp_path: Path, n: int, chunk: int, arrays_of) -> EmbeddingStore:
    store = EmbeddingStore(tmp_path, StoreMeta("f" * 64, n, chunk))
    fill(store, range(n), arrays_of)  # item i is its index: each call gets the range of its chunk
    return store


def test_dense_top_k_matches_brute_force_with_priority_ties(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    docs = rng.integers(-2, 3, size=(23, 4)).astype(np.float32)  # small integers: many exact ties
    queries = rng.integers(-2, 3, size=(5, 4)).astype(np.float32)
    priority = rng.permutation(23)
    store = _store(tmp_path, 23, 4, lambda r: {"embeddings": docs[r.start : r.stop]})
    top = search.ExactIndex(store, "dense", priority, CPU).search(queries, 30)
    scores = queries @ docs.T
    for q in range(5):
        expected = sorted(range(23), key=lambda d: (-scores[q, d], -priority[d]))
        assert top.positions[q, :23].tolist() == expected
        assert (top.positions[q, 23:] == -1).all()


def test_sparse_scores_are_dot_products(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    dense = rng.random((9, 50)).astype(np.float32) * (rng.random((9, 50)) < 0.2)
    queries = rng.random((3, 50)).astype(np.float32) * (rng.random((3, 50)) < 0.3)

    def csr(m: np.ndarray) -> dict[str, np.ndarray]:
        t = torch.from_numpy(m).to_sparse_csr()
        return {
            "indptr": t.crow_indices().numpy(),
            "indices": t.col_indices().numpy(),
            "values": t.values().numpy(),
            "shape": np.array(m.shape),
        }

    store = _store(tmp_path, 9, 4, lambda r: csr(dense[r.start : r.stop]))
    top = search.ExactIndex(store, "sparse", np.arange(9), CPU).search(csr(queries), 9)
    np.testing.assert_allclose(top.scores, -np.sort(-(queries @ dense.T), axis=1), rtol=1e-6)


def test_maxsim_equals_flmr_padded_score(tmp_path: Path, monkeypatch) -> None:
    """The flat, blocked MaxSim equals the padded max-then-sum of FLMR's score(), in tiny blocks too."""
    monkeypatch.setattr(search, "MAXSIM_BLOCK_TOKENS", 7)
    monkeypatch.setattr(search, "MAXSIM_BLOCK_ELEMENTS", 50)
    rng = np.random.default_rng(2)
    lengths = rng.integers(1, 6, size=11)
    docs = [rng.standard_normal((n, 8)).astype(np.float32) for n in lengths]
    queries = rng.standard_normal((4, 5, 8)).astype(np.float32)
    queries[:, 3:] = 0  # masked query rows contribute 0
    store = _store(
        tmp_path,
        11,
        3,
        lambda r: {"embeddings": np.concatenate(docs[r.start : r.stop]), "lengths": lengths[r.start : r.stop]},
    )
    top = search.ExactIndex(store, "multi", np.arange(11), CPU).search(queries, 11)
    padded = np.zeros((11, lengths.max(), 8), np.float32)
    mask = np.zeros((11, lengths.max()), bool)
    for i, d in enumerate(docs):
        padded[i, : len(d)], mask[i, : len(d)] = d, True
    sim = np.einsum("qid,njd->qnij", queries, padded)
    sim = np.where(mask[None, :, None, :], sim, search.PAD_SCORE)
    expected = sim.max(-1).sum(-1)
    for q in range(4):
        np.testing.assert_allclose(top.scores[q], np.sort(expected[q])[::-1], rtol=1e-5, atol=1e-5)
