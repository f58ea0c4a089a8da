"""Signal controllers for the SUMO loops, all on one interface.

A controller sees, once per decision step, a `JunctionMeasurement` (vehicles per stage
with distance to the stop line and speed, and cumulative stop-line counts per lane) built
either from the camera pipeline or from SUMO's lanes, and answers with the stage it
wants green. The `StageExecutor` in `engine.sim.runner` owns safety: it only changes
stage after the minimum green, always inserts yellow and all-red, and never gives two
stages green at once. Controllers therefore cannot shorten clearance intervals.

Controllers here:
- `FixedTime`: a cyclic plan (greens per stage, cycle, offset): the Webster plan and the
  green-wave plans.
- `WebsterAdaptive`: cycle-by-cycle Webster re-planning from measured lane flows
  (exponentially smoothed, cycle change bounded per cycle).
- `MaxPressure`: the stage with the largest queue pressure after a minimum green.
- `CoordinatedActuated`: a common-cycle plan with offsets whose coordinated stage is
  anchored to its offset and whose other stages gap out / are skipped (arterials).
- `QueueGap`: our hybrid — gap-out when the green stage has no vehicle within a short
  headway of the stop line, then serve the stage with the largest waiting-weighted queue
  (empty stages skipped), with a maximum green and a starvation guard.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SAT_FLOW_VPH = 1800.0  # per lane, PCU/h of green (HCM base 1900 less heavy vehicles/turns)
LOST_PER_STAGE_S = 5.0  # yellow + all-red clearance counted as lost time


@dataclass
class StageTraffic:
    dist: np.ndarray  # m upstream of the stop line
    speed: np.ndarray  # m/s
    weight: np.ndarray  # share of the vehicle attributed to this stage (1 when known)


@dataclass
class JunctionMeasurement:
    t: float
    stages: list[StageTraffic]
    lane_counts: dict[str, float] = field(default_factory=dict)  # cumulative crossings per lane
    stage_lanes: list[list[str]] = field(default_factory=list)
    # per movement ("N_T", "N_L", ...; right turns share their lane with through)
    movements: dict[str, StageTraffic] = field(default_factory=dict)
    movement_counts: dict[str, float] = field(default_factory=dict)  # cumulative crossings
    # per approach lane (its SUMO id; the shared lane upstream of a bay is its lane 1)
    lanes: dict[str, StageTraffic] = field(default_factory=dict)

    def queue(self, k: int, stopped_mps: float = 1.5) -> float:
        s = self.stages[k]
        return float(s.weight[s.speed < stopped_mps].sum())

    def lane_queue(self, lane: str, stopped_mps: float = 1.5) -> float:
        s = self.lanes.get(lane)
        return 0.0 if s is None else float(s.weight[s.speed < stopped_mps].sum())


class Controller:
    name = "controller"
    min_green_s = 5.0

    def decide(self, m: JunctionMeasurement, stage: int, green_s: float) -> int:
        raise NotImplementedError


def webster(
    y: list[float], lost_s: float, c_min: float = 40.0, c_max: float = 150.0, g_min: float = 5.0
) -> tuple[float, list[float]]:
    """Webster's optimal cycle C0 = (1.5 L + 5) / (1 − Y), bounded, greens ∝ y."""
    y = [max(v, 0.01) for v in y]
    Y = min(sum(y), 0.95)
    c = (1.5 * lost_s + 5.0) / (1.0 - Y)
    c = min(max(c, c_min, lost_s + g_min * len(y)), c_max)
    eff = c - lost_s
    g = [max(g_min, eff * v / sum(y)) for v in y]
    scale = eff / sum(g)
    if scale < 1.0:  # minimum greens pushed past the cycle: shrink the others
        extra = [max(0.0, x - g_min) for x in g]
        over = sum(g) - eff
        tot = sum(extra) or 1.0
        g = [x - over * e / tot for x, e in zip(g, extra, strict=True)]
    return c, g


class FixedTime(Controller):
    """A cyclic fixed-time plan; stage k is green for greens[k] then 5 s of clearance."""

    def __init__(
        self,
        greens: list[float],
        offset_s: float = 0.0,
        name: str = "fixed",
        order: list[int] | None = None,
    ) -> None:
        self.name = name
        self.order = order if order is not None else list(range(len(greens)))
        self.greens = greens
        self.offset = offset_s
        self.min_green_s = 1.0
        self.cycle = sum(greens[k] + LOST_PER_STAGE_S for k in self.order)

    def scheduled(self, t: float) -> int:
        p = (t - self.offset) % self.cycle
        acc = 0.0
        for i, k in enumerate(self.order):
            if p < acc + self.greens[k]:
                return k
            acc += self.greens[k] + LOST_PER_STAGE_S
            if p < acc:
                return self.order[(i + 1) % len(self.order)]  # in the clearance: go to next
        return self.order[0]

    def decide(self, m: JunctionMeasurement, stage: int, green_s: float) -> int:
        return self.scheduled(m.t)


def lane_y(
    m: JunctionMeasurement, prev: dict[str, float], dt: float
) -> tuple[list[float], dict[str, float]]:
    """Flow ratio y (lane flow / saturation flow, the critical lane of each stage) from
    counts since `prev`."""
    ys = []
    for lanes in m.stage_lanes:
        best = 0.0
        for ln in lanes:
            q = (m.lane_counts.get(ln, 0.0) - prev.get(ln, 0.0)) * 3600.0 / max(dt, 1e-9)
            best = max(best, q / SAT_FLOW_VPH)
        ys.append(best)
    return ys, dict(m.lane_counts)


class WebsterAdaptive(Controller):
    """Cycle-by-cycle Webster re-planning from measured stop-line flows."""

    name = "adaptive (ours, Webster per cycle)"

    def __init__(
        self, initial_greens: list[float], smoothing: float = 0.35, max_cycle_change: float = 0.15
    ) -> None:
        self.plan = FixedTime(initial_greens, name="plan")
        self.alpha = smoothing
        self.max_change = max_cycle_change
        self.y_smooth: list[float] | None = None
        self.prev_counts: dict[str, float] = {}
        self.cycle_start = 0.0
        self.min_green_s = 1.0

    def decide(self, m: JunctionMeasurement, stage: int, green_s: float) -> int:
        if m.t - self.cycle_start >= self.plan.cycle:
            # demand served + still queued: counts only see served vehicles, so an
            # oversaturated stage would look light; add the queue left at cycle end
            dt = m.t - self.cycle_start
            ys, self.prev_counts = lane_y(m, self.prev_counts, dt)
            nl = [max(1, len(ls) // 2) for ls in m.stage_lanes]  # lanes per approach
            ys = [y + m.queue(k) / nl[k] * 3600.0 / dt / SAT_FLOW_VPH / 2 for k, y in enumerate(ys)]
            if self.y_smooth is None:
                self.y_smooth = ys
            else:
                self.y_smooth = [
                    (1 - self.alpha) * a + self.alpha * b
                    for a, b in zip(self.y_smooth, ys, strict=True)
                ]
            c, g = webster(self.y_smooth, LOST_PER_STAGE_S * len(ys))
            lo, hi = (
                self.plan.cycle * (1 - self.max_change),
                self.plan.cycle * (1 + self.max_change),
            )
            c2 = min(max(c, lo), hi)
            eff = c2 - LOST_PER_STAGE_S * len(ys)
            g = [x * eff / sum(g) for x in g]
            self.plan = FixedTime(g, offset_s=m.t, name="plan")
            self.cycle_start = m.t
        return self.plan.scheduled(m.t)


class MaxPressure(Controller):
    """Max-pressure on queue counts (outflow unobserved, assumed free)."""

    name = "max-pressure (ours)"

    def __init__(self, min_green_s: float = 15.0) -> None:
        self.min_green_s = min_green_s

    def decide(self, m: JunctionMeasurement, stage: int, green_s: float) -> int:
        p = [m.queue(k) for k in range(len(m.stages))]
        best = int(np.argmax(p))
        return best if p[best] > p[stage] else stage


class QueueGap(Controller):
    """Hybrid: actuated-style gap-out on the green stage, max-pressure-style choice of the
    next stage (waiting-weighted queues, empty stages skipped), bounded green."""

    name = "queue-gap hybrid (ours)"

    def __init__(
        self,
        min_green_s: float = 6.0,
        max_green_s: float = 55.0,
        gap_s: float = 2.5,
        stopped_mps: float = 1.5,
        starve_s: float = 90.0,
    ) -> None:
        self.min_green_s = min_green_s
        self.max_green_s = max_green_s
        self.gap_s = gap_s
        self.stopped = stopped_mps
        self.starve_s = starve_s
        self.last_served: dict[int, float] = {}

    def _weight(self, m: JunctionMeasurement, k: int) -> float:
        s = m.stages[k]
        if len(s.dist) == 0:
            return 0.0
        queued = float(s.weight[s.speed < self.stopped].sum())
        near = float(s.weight[(s.speed >= self.stopped) & (s.dist < 60.0)].sum())
        waited = m.t - self.last_served.get(k, 0.0)
        return (queued + 0.5 * near) * (1.0 + waited / 30.0)

    def decide(self, m: JunctionMeasurement, stage: int, green_s: float) -> int:
        self.last_served[stage] = m.t
        s = m.stages[stage]
        active = False
        if len(s.dist):
            eta = np.maximum(s.dist, 0.0) / np.maximum(s.speed, 1.0)
            active = bool(np.any((eta <= self.gap_s) & (s.weight > 0.3)))
        w = [self._weight(m, k) if k != stage else -1.0 for k in range(len(m.stages))]
        best = int(np.argmax(w))
        if w[best] <= 0.0:
            return stage  # nobody else waits: rest in green
        starving = (m.t - self.last_served.get(best, 0.0)) > self.starve_s and w[best] > 0
        if not active or green_s >= self.max_green_s or starving:
            return best
        return stage


class CyclicGap(Controller):
    """Our hybrid: the stages in their cyclic order, skipping stages nobody waits for;
    a green ends when its discharge falls below `efficiency` of saturation flow (counted
    from the vehicles that would reach the stop line within `horizon_s`) while another
    stage has demand, or at the stage's maximum green."""

    name = "cyclic-gap hybrid (ours)"

    def __init__(
        self,
        min_green_s: float = 6.0,
        max_green_t_s: float = 60.0,
        max_green_l_s: float = 30.0,
        horizon_s: float = 6.0,
        efficiency: float = 0.2,
        lane_sat_vps: float = 0.5,
        stopped_mps: float = 1.5,
        min_call_veh: float = 0.5,
        max_wait_s: float = 1e9,
    ) -> None:
        self.min_green_s = min_green_s
        self.min_call = min_call_veh
        self.max_wait = max_wait_s
        self.last_green: dict[int, float] = {}
        self.max_t = max_green_t_s
        self.max_l = max_green_l_s
        self.h = horizon_s
        self.eff = efficiency
        self.sat = lane_sat_vps
        self.stopped = stopped_mps

    def _called(self, m: JunctionMeasurement, k: int) -> bool:
        """A stage is called by `min_call_veh` vehicles, or by any vehicle once the stage
        has not been green for `max_wait_s`."""
        d = float(m.stages[k].weight.sum())
        if d >= self.min_call:
            return True
        return d >= 0.5 and m.t - self.last_green.get(k, 0.0) >= self.max_wait

    def decide(self, m: JunctionMeasurement, stage: int, green_s: float) -> int:
        n = len(m.stages)
        self.last_green[stage] = m.t
        nxt = None
        for i in range(1, n):
            k = (stage + i) % n
            if self._called(m, k):
                nxt = k
                break
        if nxt is None:
            return stage  # nobody else waits: rest in green
        s = m.stages[stage]
        lanes = max(1, len(m.stage_lanes[stage]) if m.stage_lanes else 1)
        served = expected_at_stop(s, self.h, self.stopped)
        max_g = self.max_l if m.stage_lanes and len(m.stage_lanes[stage]) <= 2 else self.max_t
        if green_s >= max_g or served < self.eff * self.sat * lanes * self.h:
            return nxt
        return stage


def expected_at_stop(s: StageTraffic, horizon_s: float, stopped_mps: float = 1.5) -> float:
    """Vehicles (weights) of `s` expected at the stop line within `horizon_s`: halted ones
    after a 1 s start-up at a 6 m/s discharge speed; moving ones at their speed, but never
    later than a halted one in their place would be. A queue that has just started to move
    crawls at barely above the halted threshold, so at its own speed each car would read as
    far away and a green discharging its queue would gap out the moment the queue starts
    moving (the cameras' along-lane speed, fitted over 1.5 s, also lags a car that
    accelerates). A track too new to have a speed (NaN) is expected as a halted one."""
    if len(s.dist) == 0:
        return 0.0
    d = np.maximum(s.dist, 0.0)
    startup = 1.0 + d / 6.0
    with np.errstate(invalid="ignore"):
        halted = s.speed < stopped_mps
        at_speed = d / np.maximum(s.speed, 0.1)
    eta = np.where(halted, startup, np.fmin(at_speed, startup))
    return float(s.weight[eta <= horizon_s].sum())


class CoordinatedActuated(Controller):
    """Coordinated-actuated control on a common cycle: the coordinated (arterial through)
    stage's green starts at its offset and is held until its planned end; the other
    stages follow in `order`, each skipped when nobody waits, ending early when its
    discharge becomes inefficient (as `CyclicGap`) and forced off at its planned end, so
    their unused time returns to the coordinated stage (early return to green) without
    moving its start. The coordinated green is held for `coord_hold` of its planned
    length (the band), then may gap out like the others. With an offset of 0 at every
    junction it is the same plan without coordination."""

    name = "coordinated-actuated (ours)"

    def __init__(
        self,
        greens: list[float],
        offset_s: float = 0.0,
        order: list[int] | None = None,
        min_green_s: float = 6.0,
        horizon_s: float = 6.0,
        efficiency: float = 0.2,
        lane_sat_vps: float = 0.5,
        min_call_veh: float = 0.5,
        coord_hold: float = 0.75,
        name: str | None = None,
    ) -> None:
        if name:
            self.name = name
        self.order = order if order is not None else list(range(len(greens)))
        self.coord = self.order[0]
        self.greens = greens
        self.offset = offset_s
        self.min_green_s = min_green_s
        self.h, self.eff, self.sat, self.min_call = (
            horizon_s,
            efficiency,
            lane_sat_vps,
            min_call_veh,
        )
        self.coord_hold = coord_hold
        self.cycle = sum(greens[k] + LOST_PER_STAGE_S for k in self.order)
        self.end: dict[int, float] = {}  # force-off point of each stage in the cycle
        acc = 0.0
        for k in self.order:
            acc += greens[k]
            self.end[k] = acc
            acc += LOST_PER_STAGE_S
        self.served: dict[int, int] = {}  # stage -> cycle index it was last served in

    def _pos(self, t: float) -> tuple[int, float]:
        u = t - self.offset
        n = int(np.floor(u / self.cycle))
        return n, u - n * self.cycle

    def _gap_out(self, m: JunctionMeasurement, stage: int) -> bool:
        lanes = max(1, len(m.stage_lanes[stage]) if m.stage_lanes else 1)
        return expected_at_stop(m.stages[stage], self.h) < self.eff * self.sat * lanes * self.h

    def _next_side(self, m: JunctionMeasurement, after: int, n: int, p: float) -> int:
        """The next side stage (in order, after position `after`) that is called, not yet
        served in cycle `n`, and can still show its minimum green before its force-off."""
        i = self.order.index(after)
        for k in self.order[i + 1 :]:
            called = float(m.stages[k].weight.sum()) >= self.min_call
            # decisions come once a second: a stage may start up to 1 s late
            fits = p + LOST_PER_STAGE_S + self.min_green_s <= self.end[k] + 1.0
            if called and fits and self.served.get(k) != n:
                return k
        return self.coord

    def decide(self, m: JunctionMeasurement, stage: int, green_s: float) -> int:
        n, p = self._pos(m.t)
        if stage == self.coord:
            if p < self.coord_hold * self.end[self.coord]:
                return stage  # the band: hold
            if p < self.end[self.coord] and not self._gap_out(m, stage):
                return stage
            return self._next_side(m, self.coord, n, p)
        self.served[stage] = n
        gap_out = self._gap_out(m, stage)
        if gap_out or p >= self.end[stage] or p < self.end[self.coord]:
            return self._next_side(m, stage, n, p)
        return stage


def design_webster(
    junction, demand: dict[str, tuple[float, float, float]]
) -> tuple[float, list[float]]:
    """A Webster plan from design volumes per approach (through, left, right veh/h)."""
    y = []
    for sn in junction.stage_names:
        axis, kind = sn.split("_")
        best = 0.0
        for a in junction.approaches:
            if a.axis != axis or a.name not in demand:
                continue
            th, lt, rt = demand[a.name]
            v = (th + rt) / 2.0 if kind == "T" else lt
            best = max(best, v / SAT_FLOW_VPH)
        y.append(best)
    return webster(y, LOST_PER_STAGE_S * len(y))
