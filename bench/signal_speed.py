"""Signal-timing speed: max-pressure / pressure-actuated decisions, controller steps,
adaptive re-planning and green-wave optimisation — each against a named baseline timed in
the same run.

Baselines: the same max-pressure formula in numpy (per decision, from Python); the same
green-wave objective by exhaustive search over offsets on a 1 s grid (Rust, one cycle).
`bench/signals.py` appends `run_speed(quick)`'s tables to its suite; `run(quick)` gives a
stand-alone SuiteResult."""

from __future__ import annotations

import time

import numpy as np

from bench.report import SuiteResult, Table, timeit
from engine import _core
from engine.signal import (
    AdaptivePlanner,
    DetectorState,
    GreenWave,
    Intersection,
    MaxPressureController,
    PressureActuatedController,
    SignalController,
    WebsterPlan,
)

DECISION_GOAL = 100_000.0  # decisions per second per core
GREEN_WAVE_GOAL_S = 0.100  # 10 intersections


def _numpy_max_pressure(member: np.ndarray, w: np.ndarray, beta: float):
    """Baseline: max-pressure in numpy (phase × movement membership matrix)."""

    def decide(q: np.ndarray, a: np.ndarray, cur: int, elapsed: float, min_green: float):
        p = member @ (w * (q + beta * a))
        if elapsed < min_green:
            return None
        calls = member @ ((q + a) > 0)
        p_masked = np.where((calls > 0) & (np.arange(len(p)) != cur), p, -np.inf)
        best = int(np.argmax(p_masked))
        return best if p_masked[best] > p[cur] else None

    return decide


def run_speed(quick: bool = True) -> list[Table]:
    ix = Intersection.standard_four_arm("bench")
    n_mov, n_ph = ix.n_movements, ix.n_phases
    tables: list[Table] = []

    # ---- decisions ----------------------------------------------------------------
    t = Table(
        "signal decisions (4-arm, 12 movements, 4 phases; one core)",
        ["what", "decisions/s", "vs numpy baseline", "goal ≥ 100k/s"],
    )
    n = 200_000 if quick else 2_000_000
    rate_mp = n / _core.bench_decisions(ix.core, n, False, 1)
    rate_pa = n / _core.bench_decisions(ix.core, n, True, 1)

    rng = np.random.default_rng(1)
    states = [
        DetectorState(
            rng.integers(0, 20, n_mov).astype(float),
            rng.integers(0, 8, n_mov).astype(float),
            rng.random(n_mov) * 10,
        )
        for _ in range(64)
    ]
    arrs = [s.arrays() for s in states]
    k = 20_000 if quick else 100_000

    member = np.zeros((n_ph, n_mov))
    for p, ms in enumerate(ix.core.phase_movements):
        for m in ms:
            member[p, ix.movement_index(m)] = 1.0
    w = np.asarray(ix.core.sat_flows) / 1800.0
    base = _numpy_max_pressure(member, w, 0.5)

    def run_base():
        for i in range(k):
            a = arrs[i & 63]
            base(a["queue"], a["approaching"], i % n_ph, 20.0, 10.0)

    rate_base = k / timeit(run_base, repeat=3)

    mp = MaxPressureController(ix, approach_weight=0.5)

    def run_py():
        core = mp.core
        for i in range(k):
            a = arrs[i & 63]
            core.decide(i % n_ph, 20.0, a["queue"], a["approaching"], a["gap"], None, "green", 0.0)

    rate_py = k / timeit(run_py, repeat=3)

    ctl = SignalController(ix, PressureActuatedController(ix))

    def run_steps():
        for i in range(k):
            ctl.step(1.0, states[i & 63])

    rate_step = k / timeit(run_steps, repeat=3)

    t.add("max-pressure, Rust loop", rate_mp, rate_mp / rate_base, rate_mp >= DECISION_GOAL)
    t.add("pressure-actuated, Rust loop", rate_pa, rate_pa / rate_base, rate_pa >= DECISION_GOAL)
    t.add(
        "max-pressure, one Python call each", rate_py, rate_py / rate_base, rate_py >= DECISION_GOAL
    )
    t.add(
        "SignalController.step (facade, state machine)",
        rate_step,
        rate_step / rate_base,
        "",
    )
    t.add("baseline: numpy max-pressure per call", rate_base, 1.0, "")
    t.notes.append(
        "Rust loop = engine._core.bench_decisions (random detector states, GIL released); "
        "Python rows include argument conversion per call."
    )
    tables.append(t)

    # ---- plans --------------------------------------------------------------------
    t = Table("signal plans", ["what", "per second", "µs per call"])
    nr = 20_000 if quick else 200_000
    rate_re = nr / _core.bench_replans(ix.core, nr, 1)
    t.add("adaptive re-plan, Rust loop", rate_re, 1e6 / rate_re)
    flows = {
        m: float(f) for m, f in zip(ix.movement_ids, rng.integers(50, 900, n_mov), strict=True)
    }
    ap = AdaptivePlanner(ix)
    s_ap = timeit(lambda: ap.update(flows), repeat=5, number=50)
    t.add("AdaptivePlanner.update from Python (plan → polars tables)", 1.0 / s_ap, s_ap * 1e6)
    s_w = timeit(lambda: WebsterPlan.compute(ix, flows), repeat=5, number=50)
    t.add("WebsterPlan.compute from Python (plan → polars tables)", 1.0 / s_w, s_w * 1e6)
    tables.append(t)

    # ---- green wave ---------------------------------------------------------------
    t = Table(
        "green wave",
        ["corridor", "method", "cycles", "time (ms)", "b_out + b_in (s)", "goal"],
    )
    rng2 = np.random.default_rng(2)
    dist = (rng2.random(9) * 500 + 200).tolist()
    split = (rng2.random(10) * 0.3 + 0.35).tolist()
    s_gw = timeit(lambda: GreenWave.optimize(dist, 50.0, split, 60.0, 150.0, 1.0), repeat=5)
    r = GreenWave.optimize(dist, 50.0, split, 60.0, 150.0, 1.0)
    t.add(
        "10 intersections",
        "engine.signal.GreenWave (exact per cycle)",
        r.cycles_examined,
        s_gw * 1e3,
        r.bandwidth_out + r.bandwidth_in,
        f"< 100 ms: {s_gw < GREEN_WAVE_GOAL_S}",
    )
    d4 = dist[:3]
    s4 = split[:4]
    s_opt4 = timeit(lambda: GreenWave.optimize(d4, 50.0, s4, 80.0, 80.0), repeat=5)
    r4 = GreenWave.optimize(d4, 50.0, s4, 80.0, 80.0)
    t0 = time.perf_counter()
    ex = GreenWave.exhaustive(d4, 80.0, 1.0, 50.0, s4)
    s_ex = time.perf_counter() - t0
    t.add(
        "4 intersections, C = 80 s",
        "engine.signal.GreenWave",
        1,
        s_opt4 * 1e3,
        r4.bandwidth_out + r4.bandwidth_in,
        "",
    )
    t.add(
        "4 intersections, C = 80 s",
        "baseline: exhaustive offsets, 1 s grid",
        1,
        s_ex * 1e3,
        ex.bandwidth_out + ex.bandwidth_in,
        f"optimiser ≥ exhaustive: {r4.bandwidth_out + r4.bandwidth_in >= ex.bandwidth_out + ex.bandwidth_in - 1e-6}",
    )
    t.notes.append(
        f"exhaustive / optimiser time on the 4-intersection corridor: {s_ex / s_opt4:,.0f}×"
    )
    tables.append(t)
    return tables


def run(quick: bool = True) -> SuiteResult:
    res = SuiteResult("signal_speed")
    res.tables.extend(run_speed(quick))
    dec = res.tables[0]
    for row in dec.rows[:2]:
        res.goals[f"{row[0]}: ≥ 100,000 decisions/s ({row[1]:,.0f})"] = bool(row[3])
    gw = res.tables[2].rows[0]
    res.goals[f"green wave, 10 intersections < 100 ms ({gw[3]:.1f} ms)"] = gw[3] < 100.0
    return res
