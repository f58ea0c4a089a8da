"""Drive SUMO junctions with `engine.signal` (the Rust signal core): its Intersection
model, controllers and its safety state machine (`SignalController`), which produces the
SUMO link states itself. Measurements per movement come from the same camera or lane
loops as our other controllers.

engine.signal refuses a 3 s yellow at 50 km/h (ITE kinematic minimum 3.28 s), so its
controllers run with yellow 3.4 s (a whole number of 0.2 s steps) and all-red 2 s.

Kinds: cyclic-gap, dual-ring, pressure-actuated, max-pressure, adaptive, webster and
coord-actuated (params: `greens` per stage, `offsets` {tls: s} or `offset`, `order`,
`cycle`, `coord_hold`, … — see `coord_plan`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.sim.controllers import JunctionMeasurement, expected_at_stop
from engine.sim.runner import movement_id, stage_lanes
from engine.sim.scenarios import Junction

YELLOW_S = 3.4
ALL_RED_S = 2.0
GAP_ZONE_M = 30.0
STOPPED_MPS = 1.5


def intersection(j: Junction, **options: Any):
    from engine.signal import Intersection

    opts = {
        "yellow": YELLOW_S,
        "all_red": ALL_RED_S,
        "min_green": 6.0,
        "max_green": 60.0,
        "cycle_min": 40.0,
        "cycle_max": 150.0,
    }
    opts.update(options)
    return Intersection.standard_four_arm(j.tls, **opts)


def demand_flows(design: dict[str, tuple[float, float, float]]) -> dict[str, float]:
    out = {}
    for a, (th, lt, rt) in design.items():
        out[f"{a}_T"] = th
        out[f"{a}_L"] = lt
        out[f"{a}_R"] = rt
    return out


class SignalDriver:
    """Feeds a `SignalController` with a DetectorState built from our measurements and
    applies its SUMO state."""

    drives_lights = True
    min_green_s = 0.0

    def __init__(
        self,
        j: Junction,
        kind: str,
        design: dict[str, tuple[float, float, float]],
        params: dict[str, Any],
    ) -> None:
        from engine import signal as S

        self.j = j
        opts = dict(params.get("intersection", {}))
        if kind == "dual-ring":
            opts.setdefault("dual_ring", True)
        ix = intersection(j, **opts)
        self.ix = ix
        ctl_params = {k: v for k, v in params.items() if k != "intersection"}
        self.horizon_s = float(ctl_params.get("horizon_s", 6.0))
        if kind in ("cyclic-gap", "coord-actuated") and "phase_lanes" not in ctl_params:
            # lanes per phase as SUMO builds them (right turns share the outer through lane)
            by_stage = dict(zip(j.stage_names, stage_lanes(j), strict=True))
            ctl_params["phase_lanes"] = [len(by_stage[p]) for p in ix.phase_names]
        if kind == "cyclic-gap":
            ctl = S.CyclicGapController(ix, **ctl_params)
        elif kind == "coord-actuated":
            ctl = S.CoordActuatedController(ix, **coord_plan(j, ctl_params))
        elif kind == "dual-ring":
            # SUMO's right turns share the outer through lane: not counted as extra lanes
            ctl = S.DualRingController(ix, **ctl_params)
        elif kind == "pressure-actuated":
            ctl = S.PressureActuatedController(ix, **ctl_params)
        elif kind == "max-pressure":
            ctl = S.MaxPressureController(ix, **ctl_params)
        elif kind == "adaptive":
            ctl = S.AdaptiveController(ix, demand_flows(design), **ctl_params)
        elif kind == "webster":
            plan = S.WebsterPlan.compute(ix, demand_flows(design))
            ctl = S.FixedTimeController(ix, plan)
        else:
            raise ValueError(f"unknown engine.signal controller {kind!r}")
        self.name = f"engine.signal {kind}"
        links = [movement_id(m) for m in j.link_movement]
        self.sc = S.SignalController(ix, ctl, sumo_links=links)
        self.S = S
        self.mov = ix.movement_ids
        self.last_seen = {m: -np.inf for m in self.mov}
        self.prev_counts: dict[str, float] = {}
        self.t = 0.0
        self._state = ""

    def detector_state(self, m: JunctionMeasurement):
        n = len(self.mov)
        queue = np.zeros(n)
        appr = np.zeros(n)
        gap = np.full(n, np.inf)
        arrivals = np.zeros(n)
        expected = np.zeros(n)
        for i, mv in enumerate(self.mov):
            tr = m.movements.get(mv)
            if tr is not None and len(tr.dist):
                stopped = tr.speed < STOPPED_MPS
                queue[i] = float(tr.weight[stopped].sum())
                appr[i] = float(tr.weight[~stopped].sum())
                expected[i] = expected_at_stop(tr, self.horizon_s, STOPPED_MPS)
                if np.any((~stopped) & (tr.dist <= GAP_ZONE_M) & (tr.weight > 0.3)):
                    self.last_seen[mv] = m.t
            gap[i] = m.t - self.last_seen[mv]
            c = m.movement_counts.get(mv, 0.0)
            arrivals[i] = max(0.0, c - self.prev_counts.get(mv, 0.0))
            self.prev_counts[mv] = c
        return self.S.DetectorState(queue, appr, gap, None, arrivals, expected)

    def drive(self, tc, m: JunctionMeasurement, dt: float) -> None:
        st = self.sc.step(dt, self.detector_state(m))
        if st.sumo_state != self._state:
            tc.trafficlight.setRedYellowGreenState(self.j.tls, st.sumo_state)
            self._state = st.sumo_state


def coord_plan(j: Junction, params: dict[str, Any]) -> dict[str, Any]:
    """`CoordActuatedController` arguments from the plan of the Python
    `CoordinatedActuated` (`engine.sim.evaluate`): `greens` per stage of `j.stage_names`,
    `offsets` per tls (or one `offset`), `order` as stage indices or names (default the
    intersection's order). That plan's cycle is Σ greens + 5 s per stage (SUMO's yellow 3 s
    + all-red 2 s); engine.signal clears with yellow 3.4 s + all-red 2 s, so the plan keeps
    its common cycle (`cycle`, default the plan's) and the extra clearance comes out of
    the greens above their minimum."""
    from engine.sim.controllers import LOST_PER_STAGE_S

    p = dict(params)
    greens = [float(g) for g in p.pop("greens")]
    offsets = p.pop("offsets", {})
    offset = float(offsets.get(j.tls, p.pop("offset", 0.0)))
    p.pop("offset", None)
    order = p.pop("order", None)
    p.setdefault("cycle", sum(greens) + LOST_PER_STAGE_S * len(greens))
    return {
        "greens": dict(zip(j.stage_names, greens, strict=True)),
        "offset": offset,
        "order": None
        if order is None
        else [j.stage_names[k] if isinstance(k, int) else k for k in order],
        **p,
    }


def factory(kind: str, design: dict[str, tuple[float, float, float]], params: dict[str, Any]):
    return lambda j: SignalDriver(j, kind, design, params)


def green_wave_offsets(
    greens: list[float], positions_m: list[float], speed_mps: float, cycle: float
) -> tuple[list[float], str]:
    """Offsets from engine.signal.GreenWave.optimize at the plan's fixed cycle."""
    from engine.signal import GreenWave

    dists = [b - a for a, b in zip(positions_m, positions_m[1:], strict=False)]
    split = [g / cycle for g in greens]
    r = GreenWave.optimize(
        dists,
        speed_kmh=speed_mps * 3.6,
        green_split=split,
        cycle_min=cycle,
        cycle_max=cycle,
        cycle_step=1.0,
    )
    return [
        float(o) for o in r.offsets
    ], f"engine.signal.GreenWave (b_out {r.bandwidth_out:.1f} s, b_in {r.bandwidth_in:.1f} s)"
