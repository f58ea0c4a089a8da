"""Arterial plans for the SUMO corridor: a common-cycle fixed-time plan with and without
green-wave offsets, and the time–space diagram.

`bandwidth` evaluates two-way through bandwidth for given offsets; `best_offsets` is a
fallback optimiser (coordinate search with restarts) used only when `engine.signal`'s
GreenWave is not available.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _band(starts: np.ndarray, greens: np.ndarray, cycle: float) -> float:
    best = 0.0
    for t in starts:
        rel = np.mod(t - starts, cycle)
        rem = np.where(rel < greens, greens - rel, -np.inf)
        best = max(best, float(rem.min()))
    return best


def bandwidth(
    offsets: Sequence[float],
    greens: Sequence[float],
    positions_m: Sequence[float],
    speed_mps: float,
    cycle: float,
) -> tuple[float, float]:
    """(outbound, inbound) bandwidth in seconds; offsets are the start of the through
    green at each intersection; outbound travels towards increasing position."""
    o = np.asarray(offsets, float)
    g = np.asarray(greens, float)
    x = np.asarray(positions_m, float)
    out = _band(np.mod(o - x / speed_mps, cycle), g, cycle)
    inb = _band(np.mod(o + x / speed_mps, cycle), g, cycle)
    return out, inb


def two_way_score(b: tuple[float, float]) -> float:
    """Balanced two-way objective: the smaller band counts double (demand on this
    arterial is nearly equal both ways, so a one-way wave is not wanted)."""
    return 2.0 * min(b) + 0.1 * (b[0] + b[1])


def best_offsets(
    greens: Sequence[float],
    positions_m: Sequence[float],
    speed_mps: float,
    cycle: float,
    seed: int = 0,
) -> tuple[list[float], float]:
    """Offsets (integer seconds, first = 0) maximising the balanced two-way objective
    `two_way_score` by coordinate search with restarts."""
    rng = np.random.default_rng(seed)
    n = len(greens)
    best_o, best_b = [0.0] * n, -1.0
    grid = np.arange(0.0, cycle, 1.0)
    for restart in range(4):
        o = [0.0] + (
            [float(rng.integers(0, int(cycle))) for _ in range(n - 1)]
            if restart
            else [float(x / speed_mps % cycle) for x in positions_m[1:]]
        )
        cur = two_way_score(bandwidth(o, greens, positions_m, speed_mps, cycle))
        improved = True
        while improved:
            improved = False
            for i in range(1, n):
                for v in grid:
                    trial = list(o)
                    trial[i] = float(v)
                    b = two_way_score(bandwidth(trial, greens, positions_m, speed_mps, cycle))
                    if b > cur + 1e-9:
                        o, cur, improved = trial, b, True
        if cur > best_b:
            best_o, best_b = o, cur
    return best_o, best_b


def time_space_png(
    path: str | Path,
    trajectories: dict,
    signals: dict[str, list[tuple[float, bool]]],
    junction_x: dict[str, float],
    title: str,
    t_range: tuple[float, float] | None = None,
) -> Path:
    """Through-vehicle trajectories (x along the arterial vs time) over the signal
    states of the arterial through movement (green / red bars at each junction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 6), dpi=110)
    t0, t1 = t_range or (0.0, float("inf"))
    for pts in trajectories.values():
        a = np.array([(t, x) for t, _, x in pts if t0 <= t <= t1])
        if len(a) > 1:
            ax.plot(a[:, 0], a[:, 1], lw=0.6, color="#1f4e9e", alpha=0.6)
    for tls, states in signals.items():
        x = junction_x[tls]
        st = [(t, g) for t, g in states if t0 <= t <= t1]
        for (ta, g), (tb, _) in zip(st, st[1:], strict=False):
            ax.plot(
                [ta, tb], [x, x], color="#2ca02c" if g else "#d62728", lw=4, solid_capstyle="butt"
            )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("position along the arterial (m)")
    ax.set_title(title)
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p)
    plt.close(fig)
    return p
