"""How close two outputs are: the numbers every encodings and golden check reports."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_array(values: Any) -> np.ndarray:
    """A numpy float64 view of an array or a (CPU or device) torch tensor."""
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def max_abs_diff(a: Any, b: Any) -> float:
    a64, b64 = as_array(a), as_array(b)
    return float(np.max(np.abs(a64 - b64))) if a64.size else 0.0


def min_row_cosine(a: Any, b: Any) -> float:
    """Smallest cosine between matching rows (last axis); two all-zero rows count as identical.

    A zero row against a non-zero one counts as 0: a masked-out vector that should not be.
    """
    a2, b2 = _rows(as_array(a)), _rows(as_array(b))
    if not a2.size:
        return 1.0
    norms = np.linalg.norm(a2, axis=1) * np.linalg.norm(b2, axis=1)
    both_zero = (np.abs(a2).sum(axis=1) == 0) & (np.abs(b2).sum(axis=1) == 0)
    cosine = np.where(norms > 0, (a2 * b2).sum(axis=1) / np.where(norms > 0, norms, 1.0), both_zero.astype(float))
    return float(cosine.min())


def _rows(x: np.ndarray) -> np.ndarray:
    """[..., D] -> [N, D]; a 1-D output is one row, a scalar a 1 x 1 row."""
    return x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)
