"""Coordinated-actuated control (engine.sim.controllers.CoordinatedActuated) on a
stand-in for the runner's stage executor: the coordinated green is anchored to its
offset, side stages are skipped without demand and forced off at their planned end."""

from __future__ import annotations

import numpy as np

from engine.sim.controllers import (
    LOST_PER_STAGE_S,
    CoordinatedActuated,
    JunctionMeasurement,
    StageTraffic,
)

GREENS = [10.0, 6.0, 25.0, 6.0]  # NS_T, NS_L, EW_T (coordinated), EW_L
ORDER = [2, 3, 0, 1]


def traffic(n_queued: int) -> StageTraffic:
    d = np.arange(n_queued, dtype=float) * 7.0
    return StageTraffic(d, np.zeros(n_queued), np.ones(n_queued))


def simulate(ctrl: CoordinatedActuated, demand: list[int], horizon: float = 600.0):
    """Decide once a second; a switch shows LOST_PER_STAGE_S of clearance. Returns the
    green intervals [(stage, start, end)]."""
    stage, start, t = ORDER[0], 0.0, 0.0
    clearing_until, target = None, None
    out = []
    lanes = [["a", "b"], ["c"], ["d", "e"], ["f"]]
    while t < horizon:
        if clearing_until is not None and t >= clearing_until - 1e-9:
            stage, start, clearing_until = target, t, None
        if clearing_until is None:
            m = JunctionMeasurement(t, [traffic(n) for n in demand], stage_lanes=lanes)
            req = ctrl.decide(m, stage, t - start)
            if req != stage and t - start >= ctrl.min_green_s:
                out.append((stage, start, t))
                target, clearing_until = req, t + LOST_PER_STAGE_S
        t += 1.0
    return out


def test_rests_in_the_coordinated_stage_without_side_demand():
    c = CoordinatedActuated(GREENS, offset_s=7.0, order=ORDER)
    assert simulate(c, [0, 0, 5, 0]) == []  # never left the coordinated green


def test_coordinated_green_is_anchored_and_sides_are_forced_off():
    off = 7.0
    c = CoordinatedActuated(GREENS, offset_s=off, order=ORDER, coord_hold=0.75)
    cyc = c.cycle
    greens = simulate(c, [20, 20, 20, 0], horizon=1200.0)  # sides never gap out; EW_L empty
    assert all(s != 3 for s, _, _ in greens)  # the uncalled stage is skipped
    coord_starts = [a for s, a, _ in greens[1:] if s == 2]
    assert len(coord_starts) > 5
    for a in coord_starts:  # the arterial green starts at its offset (± 1 s decisions)
        phase = (a - off) % cyc
        assert min(phase, cyc - phase) <= 2.0, (a, phase)
    for s, a, b in greens:
        p_end = (b - off) % cyc
        if s == 2:  # held at least coord_hold of its planned green
            assert b - a >= 0.75 * GREENS[2] - 1.0
        else:  # side stages end by their force-off (+ one decision step)
            assert p_end <= c.end[s] + 1.0 + 1e-9, (s, a, b, p_end)


def test_side_stage_gaps_out_early_and_returns_time_to_the_arterial():
    c = CoordinatedActuated(GREENS, offset_s=0.0, order=ORDER)
    greens = simulate(c, [1, 0, 20, 0], horizon=600.0)  # one queued side vehicle
    side = [(a, b) for s, a, b in greens if s == 0]
    assert side and all(b - a <= c.min_green_s + 1.0 for a, b in side)  # gapped out
    coord = [(a, b) for s, a, b in greens if s == 2]
    # early return: the arterial gets more than its planned green
    assert max(b - a for a, b in coord[1:]) > GREENS[2] + 5.0
