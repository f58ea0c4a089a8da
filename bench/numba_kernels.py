"""Numba baselines for the bench suites.

Association kernel (bench core): the per-frame core of an IoU tracker — the dense IoU
matrix between predicted track boxes and detections, then a greedy min-cost assignment
with an IoU gate — compiled with ``@njit``. It is what a JIT buys for the same work the
Rust tracker does (minus the Kalman filter, lifecycle and counting, which it leaves out,
so it is a lower bound on a numba tracker's frame time)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # pragma: no cover - jitted
    n, m = a.shape[0], b.shape[0]
    out = np.zeros((n, m), np.float32)
    for i in range(n):
        ax1, ay1, ax2, ay2 = a[i, 0], a[i, 1], a[i, 2], a[i, 3]
        aa = (ax2 - ax1) * (ay2 - ay1)
        for j in range(m):
            iw = min(ax2, b[j, 2]) - max(ax1, b[j, 0])
            if iw <= 0:
                continue
            ih = min(ay2, b[j, 3]) - max(ay1, b[j, 1])
            if ih <= 0:
                continue
            inter = iw * ih
            out[i, j] = inter / (aa + (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1]) - inter)
    return out


@njit(cache=True)
def greedy_assign(
    iou: np.ndarray, min_iou: float
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Pairs (row, col) by descending IoU, each row and column used once, IoU ≥ min_iou."""
    n, m = iou.shape
    rows = []
    cols = []
    vals = []
    for i in range(n):
        for j in range(m):
            if iou[i, j] >= min_iou:
                rows.append(i)
                cols.append(j)
                vals.append(iou[i, j])
    k = len(vals)
    v = np.empty(k, np.float32)
    for q in range(k):
        v[q] = vals[q]
    order = np.argsort(-v)
    row_used = np.zeros(n, np.bool_)
    col_used = np.zeros(m, np.bool_)
    out_r = np.empty(min(n, m), np.int64)
    out_c = np.empty(min(n, m), np.int64)
    c = 0
    for q in order:
        i, j = rows[q], cols[q]
        if not row_used[i] and not col_used[j]:
            row_used[i] = True
            col_used[j] = True
            out_r[c] = i
            out_c[c] = j
            c += 1
    return out_r[:c], out_c[:c]


def associate(
    tracks: np.ndarray, dets: np.ndarray, min_iou: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """IoU matrix + greedy assignment, both jitted."""
    return greedy_assign(iou_matrix(tracks, dets), min_iou)


def warmup() -> None:
    a = np.array([[0, 0, 10, 10], [5, 5, 20, 20]], np.float32)
    associate(a, a)


__all__ = ["associate", "greedy_assign", "iou_matrix", "warmup"]
