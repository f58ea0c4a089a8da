"""Signal timing: intersections, fixed-time and adaptive plans, max-pressure and the
pressure-actuated hybrid, corridor green waves, emergency preemption — thin over the Rust
core (`engine._core`), which validates everything and owns the safety state machine.

Every indication goes through :class:`SignalController`: controllers only *request* a next
phase, and the state machine refuses anything that would give conflicting movements green
together, end a green before its minimum (preemption may truncate down to the phase's
preemption entry minimum, never below its pedestrian minimum), or shorten / skip a yellow
or an all-red.

    >>> from engine.signal import Intersection, WebsterPlan, SignalController, DetectorState
    >>> ix = Intersection.standard_four_arm("x1")
    >>> plan = WebsterPlan.compute(ix, {"N_T": 900, "S_T": 850, "E_T": 600, "W_T": 650})
    >>> round(plan.cycle) > 0
    True
    >>> ctl = SignalController(ix, PressureActuatedController(ix))
    >>> st = ctl.step(1.0, DetectorState.zeros(ix))
    >>> st.interval
    'green'

TOML schema (one table per intersection / corridor in the site file)::

    [intersections.x1]
    layout = "standard_four_arm"        # or "explicit" (give movements/phases)
    lanes_through = 2                   # standard layout options ...
    protected_left = true
    min_green = 10.0                    # defaults for phases without their own
    max_green = 60.0
    yellow = 3.5                        # optional; must be ≥ the ITE kinematic value
    all_red = 2.0                       # optional; must be ≥ (W + L) / v
    cycle_min = 40.0
    cycle_max = 150.0
    sumo_links = ["N_R", "N_T", "N_T", "N_L", ...]   # optional: movement per SUMO link ("" = red)
    [intersections.x1.clearance]
    speed_kmh = 50.0; reaction_s = 1.0; decel = 3.05; grade = 0.0
    width_m = 20.0; vehicle_length_m = 6.0; walk_s = 7.0; ped_speed = 1.2
    [[intersections.x2.movements]]      # explicit layout
    id = "N_T"; approach = "N"; turn = "through"; lanes = 2   # sat_flow, crossing_m optional
    [[intersections.x2.phases]]
    name = "NS"; movements = ["N_T", "S_T"]; min_green = 12.0  # max_green, yellow, all_red optional
    # x2 also: order = [...], conflicts = [["a","b"], ...] (else derived for N/E/S/W),
    #          permissive = [["N_L","S_T"], ...]

    [corridors.main]
    intersections = ["x1", "x2", "x3"]
    distances_m = [400.0, 350.0]
    speed_kmh = 50.0                    # or one per link; speed_in_kmh for the other direction
    green_split = 0.5                   # or one per intersection (arterial green / cycle)
    cycle_min = 60.0
    cycle_max = 120.0
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine import _core
from engine.config import validate_section
from engine.errors import ConfigError, InputError, SignalConstraintError

__all__ = [
    "AdaptiveController",
    "AdaptivePlanner",
    "CoordActuatedController",
    "CorridorConfig",
    "CriticalLanePlan",
    "CyclicGapController",
    "Decision",
    "DetectorState",
    "DualRingController",
    "FixedTimeController",
    "GreenWave",
    "GreenWaveResult",
    "Intersection",
    "IntersectionConfig",
    "MaxPressureController",
    "Plan",
    "Preemption",
    "PressureActuatedController",
    "SignalController",
    "SignalStatus",
    "WebsterPlan",
    "all_red_time",
    "bench_speed",
    "ite_yellow",
    "load_corridors",
    "load_intersections",
    "ped_min_green",
]

ite_yellow = _core.ite_yellow
all_red_time = _core.all_red_time
ped_min_green = _core.ped_min_green

# ---- configuration ------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClearanceConfig(_Strict):
    reaction_s: float = Field(default=1.0, ge=0)
    speed_kmh: float = Field(default=50.0, gt=0)
    decel: float = Field(default=3.05, gt=0)
    grade: float = Field(default=0.0, gt=-0.3, lt=0.3)
    width_m: float = Field(default=20.0, gt=0)
    vehicle_length_m: float = Field(default=6.0, ge=0)
    walk_s: float = Field(default=7.0, ge=0)
    ped_speed: float = Field(default=1.2, gt=0)
    startup_lost_s: float = Field(default=2.0, ge=0)
    extension_s: float = Field(default=2.0, ge=0)
    preempt_min_green_s: float = Field(default=5.0, gt=0)


class MovementConfig(_Strict):
    id: str = Field(min_length=1)
    approach: str = Field(min_length=1)
    turn: Literal["left", "through", "right", "pedestrian"]
    lanes: int = Field(default=1, ge=1)
    sat_flow: float | None = Field(default=None, gt=0)  # veh/h for the movement
    crossing_m: float | None = Field(default=None, gt=0)  # pedestrians

    @model_validator(mode="after")
    def _ped(self) -> MovementConfig:
        if self.turn == "pedestrian" and self.crossing_m is None:
            raise ValueError(f"pedestrian movement '{self.id}' needs crossing_m")
        return self


class PhaseConfig(_Strict):
    name: str = Field(min_length=1)
    movements: list[str] = Field(min_length=1)
    min_green: float | None = Field(default=None, gt=0)
    max_green: float | None = Field(default=None, gt=0)
    yellow: float | None = Field(default=None, gt=0)
    all_red: float | None = Field(default=None, gt=0)


class IntersectionConfig(_Strict):
    layout: Literal["standard_four_arm", "explicit"] | None = None
    # standard layout
    lanes_left: int = Field(default=1, ge=1)
    lanes_through: int = Field(default=2, ge=1)
    lanes_right: int = Field(default=1, ge=1)
    sat_flow_per_lane: float = Field(default=1800.0, gt=0)
    protected_left: bool = True
    pedestrians: bool = False
    crossing_m: float = Field(default=14.0, gt=0)
    # shared
    min_green: float = Field(default=10.0, gt=0)
    max_green: float = Field(default=60.0, gt=0)
    yellow: float | None = Field(default=None, gt=0)
    all_red: float | None = Field(default=None, gt=0)
    cycle_min: float = Field(default=40.0, gt=0)
    cycle_max: float = Field(default=180.0, gt=0)
    clearance: ClearanceConfig = Field(default_factory=ClearanceConfig)
    # explicit layout
    movements: list[MovementConfig] = Field(default_factory=list)
    phases: list[PhaseConfig] = Field(default_factory=list)
    order: list[str] | None = None
    conflicts: list[tuple[str, str]] | None = None
    permissive: list[tuple[str, str]] = Field(default_factory=list)
    # SUMO: movement id per signal link ("" or null = always red)
    sumo_links: list[str | None] | None = None

    @model_validator(mode="after")
    def _layout(self) -> IntersectionConfig:
        if self.layout is None:
            self.layout = "explicit" if self.movements else "standard_four_arm"
        if self.layout == "explicit" and (not self.movements or not self.phases):
            raise ValueError("an explicit intersection needs 'movements' and 'phases'")
        if self.layout == "standard_four_arm" and (self.movements or self.phases):
            raise ValueError("'movements'/'phases' only go with layout = \"explicit\"")
        return self


class CorridorConfig(_Strict):
    intersections: list[str] = Field(min_length=2)
    distances_m: list[float] = Field(min_length=1)
    speed_kmh: float | list[float] = 50.0
    speed_in_kmh: float | list[float] | None = None
    green_split: float | list[float] = 0.5
    cycle_min: float = Field(default=60.0, gt=0)
    cycle_max: float = Field(default=120.0, gt=0)
    cycle_step: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _lengths(self) -> CorridorConfig:
        n = len(self.intersections)
        if len(self.distances_m) != n - 1:
            raise ValueError(f"{n} intersections need {n - 1} distances_m")
        for name, v, k in (
            ("speed_kmh", self.speed_kmh, n - 1),
            ("speed_in_kmh", self.speed_in_kmh, n - 1),
            ("green_split", self.green_split, n),
        ):
            if isinstance(v, list) and len(v) != k:
                raise ValueError(f"'{name}' needs {k} values (or one number)")
        if self.cycle_max < self.cycle_min:
            raise ValueError("cycle_max must be ≥ cycle_min")
        return self


_validate = validate_section


def load_intersections(site: Any) -> dict[str, Intersection]:
    """Build every `[intersections.<id>]` of a SiteConfig (ConfigError names file and key;
    SignalConstraintError names the intersection and the violated constraint)."""
    out = {}
    for iid, raw in site.intersections.items():
        out[iid] = Intersection.from_config(raw, id=iid, source=site.source)
    return out


def load_corridors(site: Any) -> dict[str, CorridorConfig]:
    out = {}
    for cid, raw in site.corridors.items():
        cfg = _validate(CorridorConfig, raw, site.source, f"corridors.{cid}")
        missing = [
            i for i in cfg.intersections if site.intersections and i not in site.intersections
        ]
        if missing:
            raise ConfigError(
                site.source,
                f"corridors.{cid}.intersections",
                "ids of [intersections.*] tables",
                missing,
            )
        out[cid] = cfg
    return out


# ---- intersection -------------------------------------------------------------------


class Intersection:
    """A validated intersection (movements, phases, conflict matrix, constraints)."""

    def __init__(self, core: _core.Intersection, sumo_links: Sequence[str | None] | None = None):
        self.core = core
        self.sumo_links = list(sumo_links) if sumo_links is not None else None
        self._mov = {m: i for i, m in enumerate(core.movement_ids)}
        self._ph = {p: i for i, p in enumerate(core.phase_names)}

    @classmethod
    def standard_four_arm(cls, id: str = "x", **options: Any) -> Intersection:
        """4-arm intersection, approaches N/E/S/W, movements `<arm>_L/_T/_R` (and `<arm>_P`
        crosswalks with `pedestrians=True`); protected lefts give phases NS_T, NS_L, EW_T,
        EW_L. Options: lanes_left/through/right, sat_flow_per_lane, protected_left,
        pedestrians, crossing_m, min_green, max_green, yellow, all_red, cycle_min,
        cycle_max, clearance (dict), dual_ring (the 8 NEMA dual-ring phases NS_L, N_TL,
        S_TL, NS_T, EW_L, E_TL, W_TL, EW_T for `DualRingController`; needs protected
        lefts)."""
        return cls(_core.Intersection.standard_four_arm(id, **options))

    @classmethod
    def from_config(
        cls, cfg: Mapping[str, Any] | IntersectionConfig, id: str = "x", source: str = "<memory>"
    ) -> Intersection:
        c = (
            cfg
            if isinstance(cfg, IntersectionConfig)
            else _validate(IntersectionConfig, dict(cfg), source, f"intersections.{id}")
        )
        clearance = c.clearance.model_dump()
        if c.layout == "standard_four_arm":
            core = _core.Intersection.standard_four_arm(
                id,
                lanes_left=c.lanes_left,
                lanes_through=c.lanes_through,
                lanes_right=c.lanes_right,
                sat_flow_per_lane=c.sat_flow_per_lane,
                protected_left=c.protected_left,
                pedestrians=c.pedestrians,
                crossing_m=c.crossing_m,
                min_green=c.min_green,
                max_green=c.max_green,
                yellow=c.yellow,
                all_red=c.all_red,
                cycle_min=c.cycle_min,
                cycle_max=c.cycle_max,
                clearance=clearance,
            )
        else:
            factor = {"left": 0.95, "through": 1.0, "right": 0.85, "pedestrian": 0.0}
            movements = [
                (
                    m.id,
                    m.approach,
                    m.turn,
                    m.lanes,
                    m.sat_flow if m.sat_flow is not None else 1800.0 * m.lanes * factor[m.turn],
                    m.crossing_m or 0.0,
                )
                for m in c.movements
            ]
            phases = [
                (
                    p.name,
                    p.movements,
                    p.min_green,
                    p.max_green,
                    p.yellow if p.yellow is not None else c.yellow,
                    p.all_red if p.all_red is not None else c.all_red,
                )
                for p in c.phases
            ]
            core = _core.Intersection(
                id,
                movements,
                phases,
                order=c.order,
                conflicts=c.conflicts,
                permissive=c.permissive,
                clearance=clearance,
                min_green=c.min_green,
                max_green=c.max_green,
                cycle_min=c.cycle_min,
                cycle_max=c.cycle_max,
            )
        links = None
        if c.sumo_links is not None:
            links = [x or None for x in c.sumo_links]
            unknown = [x for x in links if x is not None and x not in core.movement_ids]
            if unknown:
                raise ConfigError(source, f"intersections.{id}.sumo_links", "movement ids", unknown)
        return cls(core, links)

    # names and indices
    @property
    def id(self) -> str:
        return self.core.id

    @property
    def movement_ids(self) -> list[str]:
        return self.core.movement_ids

    @property
    def phase_names(self) -> list[str]:
        return self.core.phase_names

    @property
    def n_movements(self) -> int:
        return len(self._mov)

    @property
    def n_phases(self) -> int:
        return len(self._ph)

    def movement_index(self, movement: str | int) -> int:
        if isinstance(movement, int):
            return movement
        try:
            return self._mov[movement]
        except KeyError:
            raise SignalConstraintError(
                f"intersection '{self.id}': unknown movement '{movement}'"
            ) from None

    def phase_index(self, phase: str | int) -> int:
        if isinstance(phase, int):
            return phase
        try:
            return self._ph[phase]
        except KeyError:
            raise SignalConstraintError(
                f"intersection '{self.id}': unknown phase '{phase}'"
            ) from None

    def conflict_matrix(self) -> np.ndarray:
        return self.core.conflict_matrix()

    def vector(
        self, values: Mapping[str, float] | Sequence[float] | np.ndarray | None
    ) -> np.ndarray:
        """Per-movement float64 vector from a {movement id: value} mapping (missing = 0) or
        a sequence in movement order."""
        if values is None:
            return np.zeros(self.n_movements)
        if isinstance(values, Mapping):
            v = np.zeros(self.n_movements)
            for k, x in values.items():
                v[self.movement_index(k)] = float(x)
            return v
        v = np.ascontiguousarray(values, dtype=np.float64)
        if v.shape != (self.n_movements,):
            raise _core.InputError(
                f"intersection '{self.id}': expected {self.n_movements} values (one per movement), got shape {v.shape}"
            )
        return v

    def phases_table(self) -> pl.DataFrame:
        c = self.core
        return pl.DataFrame(
            {
                "phase": c.phase_names,
                "movements": [",".join(m) for m in c.phase_movements],
                "min_green": c.min_green,
                "max_green": c.max_green,
                "yellow": c.yellow,
                "all_red": c.all_red,
                "preempt_min_green": c.preempt_min_green,
            }
        )

    def movements_table(self) -> pl.DataFrame:
        c = self.core
        return pl.DataFrame(
            {
                "movement": c.movement_ids,
                "approach": c.approaches,
                "turn": c.turns,
                "lanes": c.lanes,
                "sat_flow": c.sat_flows,
            }
        )

    def __repr__(self) -> str:
        return f"Intersection({self.id!r}, movements={self.n_movements}, phases={self.phase_names})"


# ---- plans --------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """A timing plan: cycle, per-phase table, per-movement and per-approach tables."""

    intersection: str
    method: str
    cycle: float
    cycle_unbounded: float
    lost_time: float
    y_total: float
    phases: pl.DataFrame
    movements: pl.DataFrame
    approaches: pl.DataFrame

    @property
    def greens(self) -> list[float]:
        return self.phases["green"].to_list()

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> Plan:
        return cls(
            intersection=d["intersection"],
            method=d["method"],
            cycle=d["cycle"],
            cycle_unbounded=d["cycle_unbounded"],
            lost_time=d["lost_time"],
            y_total=d["y_total"],
            phases=pl.DataFrame(
                {
                    k: d[k]
                    for k in (
                        "phase",
                        "green",
                        "effective_green",
                        "yellow",
                        "all_red",
                        "flow_ratio",
                        "vc",
                        "critical_movement",
                    )
                }
            ),
            movements=pl.DataFrame(
                {
                    "movement": d["movement"],
                    "flow": d["movement_flow"],
                    "vc": d["movement_vc"],
                    "delay_s": d["movement_delay"],
                }
            ),
            approaches=pl.DataFrame(
                {
                    "approach": d["approach"],
                    "flow": d["approach_flow"],
                    "delay_s": d["approach_delay"],
                }
            ),
        )


class WebsterPlan(Plan):
    """Webster optimum cycle C0 = (1.5 L + 5) / (1 − Y), bounded; greens by critical flow
    ratios (equal degree of saturation), inside each phase's [min, max] green.
    Delays: Webster's formula for v/c ≤ 0.95, HCM uniform + incremental delay above."""

    @classmethod
    def compute(
        cls, ix: Intersection, flows: Mapping[str, float] | Sequence[float] | np.ndarray
    ) -> WebsterPlan:
        d = _core.webster_plan(ix.core, ix.vector(flows))
        return cls(**Plan._from_dict(d).__dict__)


class CriticalLanePlan(Plan):
    """HCM critical-lane method: C = L / (1 − Σ y_crit / X_target), bounded."""

    @classmethod
    def compute(
        cls,
        ix: Intersection,
        flows: Mapping[str, float] | Sequence[float] | np.ndarray,
        target_vc: float = 0.9,
        phf: float = 1.0,
    ) -> CriticalLanePlan:
        d = _core.critical_lane_plan(ix.core, ix.vector(flows), target_vc, phf)
        return cls(**Plan._from_dict(d).__dict__)


class AdaptivePlanner:
    """Cycle-by-cycle re-planning from measured flows: exponentially smoothed flows
    (weight `alpha` on the newest), Webster cycle, cycle change ≤ `max_cycle_change` and
    green change ≤ `max_green_change` per cycle, greens balancing degree of saturation."""

    def __init__(
        self,
        ix: Intersection,
        alpha: float = 0.4,
        max_cycle_change: float = 10.0,
        max_green_change: float = 8.0,
    ):
        self.ix = ix
        self.core = _core.AdaptivePlanner(ix.core, alpha, max_cycle_change, max_green_change)

    def update(self, flows: Mapping[str, float] | Sequence[float] | np.ndarray) -> Plan:
        return Plan._from_dict(self.core.update(self.ix.vector(flows)))


# ---- controllers --------------------------------------------------------------------


@dataclass
class DetectorState:
    """What the controllers see, one value per movement (in `Intersection.movement_ids`
    order): `queue` halting vehicles (or waiting pedestrians); `approaching` moving
    vehicles within the detection range; `gap` seconds since the last arrival at the
    upstream detection point (inf = none yet); `downstream` queue on the exit link;
    `arrivals` vehicles that arrived during the step (the adaptive controller counts
    flows from it); `expected` vehicles expected to reach the stop line within the
    horizon h of `CyclicGapController` (moving: distance/speed ≤ h; halted: start-up +
    distance/discharge speed ≤ h) — that controller requires it."""

    queue: np.ndarray
    approaching: np.ndarray
    gap: np.ndarray | None = None
    downstream: np.ndarray | None = None
    arrivals: np.ndarray | None = None
    expected: np.ndarray | None = None

    @classmethod
    def zeros(cls, ix: Intersection) -> DetectorState:
        n = ix.n_movements
        return cls(np.zeros(n), np.zeros(n), np.full(n, np.inf), None, np.zeros(n), np.zeros(n))

    @classmethod
    def from_mappings(
        cls,
        ix: Intersection,
        queue: Mapping[str, float] | None = None,
        approaching: Mapping[str, float] | None = None,
        gap: Mapping[str, float] | None = None,
        downstream: Mapping[str, float] | None = None,
        arrivals: Mapping[str, float] | None = None,
        expected: Mapping[str, float] | None = None,
    ) -> DetectorState:
        g = None
        if gap is not None:
            g = np.full(ix.n_movements, np.inf)
            for k, v in gap.items():
                g[ix.movement_index(k)] = float(v)
        return cls(
            ix.vector(queue),
            ix.vector(approaching),
            g,
            None if downstream is None else ix.vector(downstream),
            None if arrivals is None else ix.vector(arrivals),
            None if expected is None else ix.vector(expected),
        )

    def arrays(self) -> dict[str, np.ndarray | None]:
        f = lambda a: None if a is None else np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
        return {
            "queue": f(self.queue),
            "approaching": f(self.approaching),
            "gap": f(self.gap),
            "downstream": f(self.downstream),
            "arrivals": f(self.arrivals),
            "expected": f(self.expected),
        }


@dataclass(frozen=True)
class Decision:
    target: int | None
    target_name: str | None
    pressures: np.ndarray
    calls: list[bool]


class _Decider:
    core: Any
    ix: Intersection

    def decide(
        self,
        state: DetectorState,
        phase: int | str,
        elapsed: float,
        interval: str = "green",
        now: float = 0.0,
    ) -> Decision:
        """One decision for an intersection showing `phase` (green for `elapsed` s)."""
        p = self.ix.phase_index(phase)
        t, pr, calls = self.core.decide(p, elapsed, *self._inputs(state), interval, now)
        return Decision(t, None if t is None else self.ix.phase_names[t], pr, calls)

    def _inputs(self, state: DetectorState) -> tuple[np.ndarray, ...]:
        """The per-lane arrays this controller's core decides on."""
        a = state.arrays()
        return a["queue"], a["approaching"], a["gap"], a["downstream"]


class MaxPressureController(_Decider):
    """Max-pressure: pressure = Σ (s/1800)·(queue + β·approaching − downstream) over a
    phase's movements; after the minimum green, switch to the highest-pressure phase when
    it beats the current one by `switch_margin`. `cyclic=True` only ever moves to the next
    phase of the order (skipping phases without demand)."""

    def __init__(
        self,
        ix: Intersection,
        approach_weight: float = 0.0,
        switch_margin: float = 0.0,
        cyclic: bool = False,
    ):
        self.ix = ix
        self.core = _core.MaxPressureController(ix.core, approach_weight, switch_margin, cyclic)


class PressureActuatedController(_Decider):
    """The hybrid: hold a green while its queue discharges or arrivals are dense (gap <
    `gap_out_s`), end it as soon as it is empty, skip phases without demand, choose the
    next phase by pressure (β = `approach_weight` for approaching vehicles), cut a busy
    green only after `fair_green_s` and only if the waiting pressure > `switch_ratio` × the
    work still in front of it + `switch_margin` (a switch costs yellow + all-red), and let
    no called phase wait > `max_wait_s` (once the busy green has had `fair_green_s`)."""

    def __init__(
        self,
        ix: Intersection,
        approach_weight: float = 0.5,
        gap_out_s: float = 3.0,
        switch_ratio: float = 2.0,
        switch_margin: float = 4.0,
        max_wait_s: float = 180.0,
        cyclic: bool = False,
        fair_green_s: float = 25.0,
    ):
        self.ix = ix
        self.core = _core.PressureActuatedController(
            ix.core,
            approach_weight,
            gap_out_s,
            switch_ratio,
            switch_margin,
            max_wait_s,
            cyclic,
            fair_green_s,
        )


class _DischargeDecider(_Decider):
    """A controller whose core decides on queue, approaching and `state.expected`
    (vehicles expected at the stop line within its `horizon_s`)."""

    def _inputs(self, state: DetectorState) -> tuple[np.ndarray, ...]:
        if state.expected is None:
            raise InputError(f"{type(self).__name__} needs DetectorState.expected")
        a = state.arrays()
        return a["queue"], a["approaching"], a["expected"]


class CyclicGapController(_DischargeDecider):
    """The phases in their cyclic order, skipping phases with fewer than `min_call_veh`
    vehicles (queue + approaching); after the minimum green, a green ends when another
    phase is called and either the vehicles expected at the stop line within `horizon_s`
    (`DetectorState.expected`, which the caller counts with the same horizon) fall below
    `efficiency` × `lane_sat_vps` × lanes × `horizon_s`, or it has lasted its maximum
    (`max_green_left_s` for left-only phases, else `max_green_through_s`). `phase_lanes`
    (one per phase) overrides the lane count Σ lanes of the phase's vehicle movements
    (give it when right turns share a through lane). `Decision.pressures` holds each
    phase's demand. The safety machine still enforces minimum green, clearances and its
    own maximum green."""

    def __init__(
        self,
        ix: Intersection,
        max_green_through_s: float = 60.0,
        max_green_left_s: float = 30.0,
        horizon_s: float = 6.0,
        efficiency: float = 0.2,
        lane_sat_vps: float = 0.5,
        min_call_veh: float = 0.5,
        phase_lanes: Sequence[float] | None = None,
    ):
        self.ix = ix
        self.core = _core.CyclicGapController(
            ix.core,
            max_green_through_s,
            max_green_left_s,
            horizon_s,
            efficiency,
            lane_sat_vps,
            min_call_veh,
            None if phase_lanes is None else [float(x) for x in phase_lanes],
        )


class DualRingController(_DischargeDecider):
    """NEMA dual ring on an intersection with the 8 dual-ring phases
    (`Intersection.standard_four_arm(..., dual_ring=True)`, or explicit phases with the
    same vehicle movements). Per barrier group (N/S, E/W) ring 0 serves a_L and b_T, ring
    1 b_L and a_T (a/b = N/S or E/W; through groups include the right turn). Each ring
    keeps its movement group green while the vehicles expected at the stop line within
    `horizon_s` stay ≥ `efficiency` × `lane_sat_vps` × lanes × `horizon_s` and it is below
    its maximum (`max_green_left_s` / `max_green_through_s`, counted over consecutive
    phases), then moves to its other group if that one is called (≥ `min_call_veh`
    vehicles) and not yet served in this barrier visit; when both rings are done and the
    other barrier group is called, the barrier is crossed. Lefts lag the throughs unless
    a left has ≥ `lead_left_veh` vehicles in range when its group starts. A ring whose
    through is done moves to its lagging left while the other ring still runs only if
    that left has ≥ `early_left_veh` vehicles (queue + approaching) or ≥
    `early_left_queue_veh` halted ones (its bay queued towards the shared lane); otherwise
    it keeps the through green (the barrier is held anyway) and both rings move together.
    A through group's maximum drops to `busy_max_green_through_s` while the other barrier
    group holds ≥ `busy_cross_queue_veh` halted vehicles.
    `count_right_lanes=False` when right turns share the outer through lane.
    `Decision.pressures` holds the 8 movement groups' demand (`groups` names them).
    The safety machine enforces minimum green, clearances and its own maximum green."""

    def __init__(
        self,
        ix: Intersection,
        max_green_through_s: float = 60.0,
        max_green_left_s: float = 30.0,
        horizon_s: float = 6.0,
        efficiency: float = 0.35,
        lane_sat_vps: float = 0.5,
        min_call_veh: float = 0.5,
        lead_left_veh: float = float("inf"),
        early_left_veh: float = float("inf"),
        count_right_lanes: bool = False,
        early_left_queue_veh: float = 9.0,
        busy_cross_queue_veh: float = 40.0,
        busy_max_green_through_s: float = 45.0,
    ):
        self.ix = ix
        self.core = _core.DualRingController(
            ix.core,
            max_green_through_s,
            max_green_left_s,
            horizon_s,
            efficiency,
            lane_sat_vps,
            min_call_veh,
            lead_left_veh,
            early_left_veh,
            count_right_lanes,
            early_left_queue_veh,
            busy_cross_queue_veh,
            busy_max_green_through_s,
        )

    @property
    def groups(self) -> list[list[str]]:
        """Movement ids per movement group g·4 + ring·2 + slot (slot 0 left, 1 through)."""
        return self.core.groups

    @property
    def params(self) -> dict[str, float | bool]:
        """The parameters in effect, keyed as this constructor's keywords."""
        return self.core.params


class CoordActuatedController(_DischargeDecider):
    """Coordinated-actuated control on a common cycle (arterials). The cycle is laid out
    along `order` (phase names or indices, a permutation of the phases; default the
    intersection's order): the coordinated phase `order[0]` from position 0, which is
    `offset` s on the clock (mod cycle), then every other phase after the clearance of
    that phase change (the intersection's own yellow + all-red, none when no movement
    loses green) with its planned green from `greens` (one per phase, indexed by phase, or
    a mapping phase name → green), ending at its force-off point. With `cycle` given, the
    greens' parts above the minimum greens are scaled so that greens + clearances fill
    exactly that cycle (a plan made for other clearance times keeps its common cycle);
    else cycle = Σ greens + clearances (`cycle`, `greens`, `starts`, `force_offs` report
    the result).

    The coordinated green is held for `coord_hold` of its planned length (the band), then
    while the vehicles expected at the stop line within `horizon_s` stay ≥ `efficiency` ×
    `lane_sat_vps` × lanes × `horizon_s`, until its planned end; then it hands over to the
    next phase of the order that is called (≥ `min_call_veh` vehicles), not yet served in
    this cycle and able to show its minimum green before its force-off (starting up to
    `start_tolerance_s` late, so overrunning it by as much); with none it rests in green.
    Other phases end when their discharge becomes inefficient or at their force-off,
    moving on the same way, so unused time returns early to the coordinated phase while
    its start stays on the offset (a non-coordinated green still running when the
    coordinated window begins returns to it at once). Needs `DetectorState.expected`
    counted with `horizon_s`; `phase_lanes` as in `CyclicGapController`.
    `Decision.pressures` holds each phase's demand. The safety machine enforces minimum
    greens, clearances and its own maximum green (the band is only guaranteed when the
    coordinated phase's maximum green covers a cycle plus its planned green). The port of
    `engine.sim.controllers.CoordinatedActuated`, with the real clearances instead of a
    constant 5 s."""

    def __init__(
        self,
        ix: Intersection,
        greens: Sequence[float] | Mapping[str, float],
        offset: float = 0.0,
        order: Sequence[int | str] | None = None,
        cycle: float | None = None,
        coord_hold: float = 0.75,
        horizon_s: float = 6.0,
        efficiency: float = 0.2,
        lane_sat_vps: float = 0.5,
        min_call_veh: float = 0.5,
        phase_lanes: Sequence[float] | None = None,
        start_tolerance_s: float = 1.0,
    ):
        self.ix = ix
        if isinstance(greens, Mapping):
            g = [0.0] * len(ix.phase_names)
            for name, v in greens.items():
                g[ix.phase_index(name)] = float(v)
        else:
            g = [float(x) for x in greens]
        idx = None if order is None else [ix.phase_index(p) for p in order]
        if idx is not None and any(i < 0 for i in idx):
            raise SignalConstraintError(
                f"intersection '{ix.id}': coordinated-actuated order {list(order or [])} "
                f"must be a permutation of the {len(ix.phase_names)} phases"
            )
        self.core = _core.CoordActuatedController(
            ix.core,
            g,
            float(offset),
            idx,
            None if cycle is None else float(cycle),
            coord_hold,
            horizon_s,
            efficiency,
            lane_sat_vps,
            min_call_veh,
            None if phase_lanes is None else [float(x) for x in phase_lanes],
            start_tolerance_s,
        )

    @property
    def cycle(self) -> float:
        return self.core.cycle

    @property
    def greens(self) -> list[float]:
        return self.core.greens

    @property
    def starts(self) -> list[float]:
        return self.core.starts

    @property
    def force_offs(self) -> list[float]:
        return self.core.force_offs

    @property
    def order(self) -> list[int]:
        return self.core.order

    @property
    def offset(self) -> float:
        return self.core.offset


class FixedTimeController:
    """Follows fixed greens (a Plan or a list) locked to the clock with an `offset` (s) —
    the green of the first phase of the order starts at `offset` mod cycle."""

    def __init__(self, ix: Intersection, plan: Plan | Sequence[float], offset: float = 0.0):
        self.ix = ix
        greens = plan.greens if isinstance(plan, Plan) else list(plan)
        self.core = _core.FixedTimeController(ix.core, [float(g) for g in greens], float(offset))

    @property
    def cycle(self) -> float:
        return self.core.cycle


class AdaptiveController:
    """Follows the AdaptivePlanner's plan, re-planning at each cycle start from the
    `arrivals` counted by DetectorState during the cycle."""

    def __init__(
        self,
        ix: Intersection,
        initial_flows: Mapping[str, float] | Sequence[float] | np.ndarray,
        alpha: float = 0.4,
        max_cycle_change: float = 10.0,
        max_green_change: float = 8.0,
    ):
        self.ix = ix
        self.core = _core.AdaptiveController(
            ix.core, ix.vector(initial_flows).tolist(), alpha, max_cycle_change, max_green_change
        )


@dataclass(frozen=True)
class SignalStatus:
    now: float
    phase: int
    phase_name: str
    interval: str  # "green" | "yellow" | "all_red"
    elapsed: float
    remaining: float  # clearance: time left; green: time until the minimum green is served
    next_phase: int | None
    preempting: bool
    changed: bool
    held_by_min_green: bool
    request: int | None
    sumo_state: str | None = None


class SignalController:
    """A controller driving the safety state machine. Step it every simulation step::

        ctl = SignalController(ix, PressureActuatedController(ix))
        st = ctl.step(1.0, DetectorState(queue, approaching, gap))
        traci.trafficlight.setRedYellowGreenState(tls, st.sumo_state)

    `controller=None` is manual: pass `request=` (phase name/index) to `step`. With
    `sumo_links` (movement id per SUMO link, None = always red) each status carries the
    SUMO state string."""

    def __init__(
        self,
        ix: Intersection,
        controller: MaxPressureController
        | PressureActuatedController
        | CyclicGapController
        | DualRingController
        | CoordActuatedController
        | FixedTimeController
        | AdaptiveController
        | None = None,
        initial_phase: int | str = 0,
        sumo_links: Sequence[str | int | None] | None = None,
        sumo_minor: Sequence[bool] | None = None,
    ):
        self.ix = ix
        self.controller = controller
        if (
            controller is not None
            and controller.ix.core is not ix.core
            and controller.ix.id != ix.id
        ):
            raise SignalConstraintError(
                f"controller was built for intersection '{controller.ix.id}', not '{ix.id}'"
            )
        self.core = _core.SignalController(
            ix.core, None if controller is None else controller.core, ix.phase_index(initial_phase)
        )
        links = sumo_links if sumo_links is not None else ix.sumo_links
        self.sumo_links = None if links is None else [x if x not in ("",) else None for x in links]
        self.sumo_minor = None if sumo_minor is None else list(sumo_minor)

    def step(
        self, dt: float, state: DetectorState | None = None, request: int | str | None = None
    ) -> SignalStatus:
        a = state.arrays() if state is not None else {}
        d = self.core.step(
            float(dt),
            a.get("queue"),
            a.get("approaching"),
            a.get("gap"),
            a.get("downstream"),
            a.get("arrivals"),
            request,
            a.get("expected"),
        )
        sumo = self.sumo_state() if self.sumo_links is not None else None
        return SignalStatus(**d, sumo_state=sumo)

    def status(self) -> SignalStatus:
        sumo = self.sumo_state() if self.sumo_links is not None else None
        return SignalStatus(**self.core.status(), sumo_state=sumo)

    def lights(self) -> np.ndarray:
        """Per-movement indication: 0 red, 1 yellow, 2 green."""
        return self.core.lights()

    def sumo_state(self, links: Sequence[str | int | None] | None = None) -> str:
        links = links if links is not None else self.sumo_links
        if links is None:
            raise SignalConstraintError(f"intersection '{self.ix.id}': no SUMO link mapping given")
        return self.core.sumo_state(list(links), self.sumo_minor)

    def preempt(self, phase: int | str) -> None:
        self.core.preempt(phase)

    def clear_preempt(self) -> None:
        self.core.clear_preempt()

    @property
    def switches(self) -> int:
        return self.core.switches

    @property
    def plan_greens(self) -> list[float] | None:
        return self.core.plan_greens


class Preemption:
    """Emergency-vehicle preemption (平急结合) over a SignalController: `call(movement)`
    requests green for the phase serving the emergency vehicle's movement (the current
    green if it already serves it); the machine truncates the running green no earlier
    than its preemption entry minimum, keeps the full yellow and all-red, then holds the
    preempted green until `clear()`, after which normal control resumes."""

    def __init__(self, controller: SignalController):
        self.ctl = controller
        self.active: str | None = None

    def call(self, movement: str) -> str:
        ix = self.ctl.ix
        phases = ix.core.phases_serving(movement)
        cur = ix.phase_names[self.ctl.status().phase]
        phase = cur if cur in phases else phases[0]
        self.ctl.preempt(phase)
        self.active = movement
        return phase

    def clear(self) -> None:
        self.ctl.clear_preempt()
        self.active = None


# ---- green wave ---------------------------------------------------------------------


@dataclass(frozen=True)
class GreenWaveResult:
    cycle: float
    offsets: list[float]  # arterial green start per intersection, relative to the first
    bandwidth_out: float
    bandwidth_in: float
    efficiency: float  # (b_out + b_in) / (2 C)
    cycles_examined: int
    intersections: list[str] = field(default_factory=list)

    def table(self) -> pl.DataFrame:
        ids = self.intersections or [str(i) for i in range(len(self.offsets))]
        return pl.DataFrame(
            {"intersection": ids, "offset_s": self.offsets, "cycle_s": [self.cycle] * len(ids)}
        )


def _per(v: float | Sequence[float], k: int) -> list[float]:
    return [float(v)] * k if isinstance(v, int | float) else [float(x) for x in v]


class GreenWave:
    """Two-way bandwidth maximisation on an arterial (exact continuous optimum per cycle,
    searched over the cycle range; see rust_core/src/signal/greenwave.rs)."""

    @staticmethod
    def optimize(
        distances_m: Sequence[float],
        speed_kmh: float | Sequence[float] = 50.0,
        green_split: float | Sequence[float] = 0.5,
        cycle_min: float = 60.0,
        cycle_max: float = 120.0,
        cycle_step: float = 1.0,
        speed_in_kmh: float | Sequence[float] | None = None,
        intersections: Sequence[str] | None = None,
    ) -> GreenWaveResult:
        k = len(distances_m)
        vo = [v / 3.6 for v in _per(speed_kmh, k)]
        vi = [v / 3.6 for v in _per(speed_in_kmh if speed_in_kmh is not None else speed_kmh, k)]
        d = _core.green_wave_optimize(
            [float(x) for x in distances_m],
            vo,
            vi,
            _per(green_split, k + 1),
            cycle_min,
            cycle_max,
            cycle_step,
        )
        return GreenWaveResult(**d, intersections=list(intersections or []))

    @staticmethod
    def from_config(
        cfg: CorridorConfig | Mapping[str, Any], source: str = "<memory>", id: str = "corridor"
    ) -> GreenWaveResult:
        c = (
            cfg
            if isinstance(cfg, CorridorConfig)
            else _validate(CorridorConfig, dict(cfg), source, f"corridors.{id}")
        )
        return GreenWave.optimize(
            c.distances_m,
            c.speed_kmh,
            c.green_split,
            c.cycle_min,
            c.cycle_max,
            c.cycle_step,
            c.speed_in_kmh,
            c.intersections,
        )

    @staticmethod
    def bandwidths(
        distances_m: Sequence[float],
        cycle: float,
        offsets: Sequence[float],
        speed_kmh: float | Sequence[float] = 50.0,
        green_split: float | Sequence[float] = 0.5,
        speed_in_kmh: float | Sequence[float] | None = None,
    ) -> tuple[float, float]:
        k = len(distances_m)
        vo = [v / 3.6 for v in _per(speed_kmh, k)]
        vi = [v / 3.6 for v in _per(speed_in_kmh if speed_in_kmh is not None else speed_kmh, k)]
        return _core.green_wave_bandwidths(
            [float(x) for x in distances_m],
            vo,
            vi,
            _per(green_split, k + 1),
            cycle,
            [float(o) for o in offsets],
        )

    @staticmethod
    def exhaustive(
        distances_m: Sequence[float],
        cycle: float,
        step: float,
        speed_kmh: float | Sequence[float] = 50.0,
        green_split: float | Sequence[float] = 0.5,
        speed_in_kmh: float | Sequence[float] | None = None,
    ) -> GreenWaveResult:
        k = len(distances_m)
        vo = [v / 3.6 for v in _per(speed_kmh, k)]
        vi = [v / 3.6 for v in _per(speed_in_kmh if speed_in_kmh is not None else speed_kmh, k)]
        d = _core.green_wave_exhaustive(
            [float(x) for x in distances_m], vo, vi, _per(green_split, k + 1), cycle, step
        )
        return GreenWaveResult(**d)


# ---- speed --------------------------------------------------------------------------


def bench_speed(quick: bool = True) -> dict[str, float]:
    """Decision / re-planning / green-wave timings (seconds and rates), measured now.
    Rust-internal loops and the per-call cost seen from Python, on a 4-arm intersection
    with protected lefts (12 movements, 4 phases)."""
    ix = Intersection.standard_four_arm("bench")
    n = 200_000 if quick else 2_000_000
    t_mp = _core.bench_decisions(ix.core, n, False, 1)
    t_pa = _core.bench_decisions(ix.core, n, True, 1)
    nr = 20_000 if quick else 200_000
    t_re = _core.bench_replans(ix.core, nr, 1)
    # per-call from Python (includes argument conversion)
    mp = MaxPressureController(ix, approach_weight=0.5)
    rng = np.random.default_rng(1)
    st = DetectorState(
        rng.integers(0, 20, 12).astype(float),
        rng.integers(0, 8, 12).astype(float),
        rng.random(12) * 10,
    )
    a = st.arrays()
    k = 20_000 if quick else 100_000
    t0 = time.perf_counter()
    for i in range(k):
        mp.core.decide(i % 4, 20.0, a["queue"], a["approaching"], a["gap"], None, "green", 0.0)
    t_py = time.perf_counter() - t0
    ctl = SignalController(ix, PressureActuatedController(ix))
    t0 = time.perf_counter()
    for _ in range(k):
        ctl.step(1.0, st)
    t_step = time.perf_counter() - t0
    rng2 = np.random.default_rng(2)
    dist = (rng2.random(9) * 500 + 200).tolist()
    split = (rng2.random(10) * 0.3 + 0.35).tolist()
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        gw = GreenWave.optimize(dist, 50.0, split, 60.0, 150.0, 1.0)
    t_gw = (time.perf_counter() - t0) / reps
    return {
        "max_pressure_decisions_per_s_rust": n / t_mp,
        "pressure_actuated_decisions_per_s_rust": n / t_pa,
        "adaptive_replans_per_s_rust": nr / t_re,
        "max_pressure_decisions_per_s_python": k / t_py,
        "controller_steps_per_s_python": k / t_step,
        "green_wave_10_intersections_s": t_gw,
        "green_wave_cycles_examined": float(gw.cycles_examined),
    }
