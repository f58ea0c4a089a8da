"""Run a SUMO scenario under one controller and measure it honestly.

Delay per vehicle is SUMO's `timeLoss + departDelay` from tripinfo, written for finished,
unfinished (`--tripinfo-output.write-unfinished`) AND not-yet-inserted vehicles
(`--tripinfo-output.write-undeparted`): a vehicle starved by a controller shows its
delay. Teleporting is off (`--time-to-teleport -1`).
"""

from __future__ import annotations

import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.sim.controllers import Controller, JunctionMeasurement, StageTraffic
from engine.sim.scenarios import (
    ALL_RED_S,
    YELLOW_S,
    Junction,
    Scenario,
    sumo_binary,
    transition_states,
)

VIEW_M = 150.0  # how far upstream of the stop line a junction's cameras see


def traci_module():
    """libsumo (in-process, fast) when installed, else TraCI over a socket."""
    try:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # libsumo prints a pyarrow notice
            import libsumo

        return libsumo
    except ImportError:  # pragma: no cover - depends on the environment
        import traci

        return traci


class StageExecutor:
    """Applies stage requests safely: minimum green, then yellow and all-red, then the
    new stage. A request during a transition or before the minimum green is held."""

    def __init__(self, tc, junction: Junction, min_green_s: float, start_stage: int = 0) -> None:
        self.tc = tc
        self.j = junction
        self.min_green = min_green_s
        self.stage = start_stage
        self.phase = "green"  # green | yellow | allred
        self.t_phase = 0.0
        self.target = start_stage
        self.switches = 0
        tc.trafficlight.setRedYellowGreenState(junction.tls, junction.stage_states[start_stage])

    @property
    def green_s(self) -> float:
        return self.t_phase if self.phase == "green" else 0.0

    def request(self, stage: int) -> None:
        if self.phase == "green" and stage != self.stage and self.t_phase >= self.min_green:
            self.target = stage
            y, _ = transition_states(self.j.stage_states[self.stage], self.j.stage_states[stage])
            self.tc.trafficlight.setRedYellowGreenState(self.j.tls, y)
            self.phase, self.t_phase = "yellow", 0.0
            self.switches += 1

    def advance(self, dt: float) -> None:
        self.t_phase += dt
        cur, nxt = self.j.stage_states[self.stage], self.j.stage_states[self.target]
        if self.phase == "yellow" and self.t_phase >= YELLOW_S - 1e-9:
            _, r = transition_states(cur, nxt)
            self.tc.trafficlight.setRedYellowGreenState(self.j.tls, r)
            self.phase, self.t_phase = "allred", 0.0
        elif self.phase == "allred" and self.t_phase >= ALL_RED_S - 1e-9:
            self.stage = self.target
            self.tc.trafficlight.setRedYellowGreenState(self.j.tls, nxt)
            self.phase, self.t_phase = "green", 0.0


@dataclass
class RunResult:
    scenario: str
    controller: str
    measured_by: str
    n_vehicles: int
    finished: int
    mean_delay_s: float
    p95_delay_s: float
    mean_stops: float
    mean_queue_veh: float
    max_queue_veh: float
    throughput_vph: float
    teleports: int
    through_stops: float = float("nan")
    through_vehicles: int = 0
    wall_s: float = 0.0
    flow_errors: dict[str, float] = field(default_factory=dict)
    trajectories: dict[str, Any] = field(default_factory=dict)
    signals: dict[str, list[tuple[float, bool]]] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        d = {
            k: v
            for k, v in self.__dict__.items()
            if k not in ("trajectories", "flow_errors", "signals")
        }
        d.update({f"err_{k}": v for k, v in self.flow_errors.items()})
        return d


class SumoMeasurer:
    """The simpler loop: per-stage vehicles from SUMO itself (next signal, link, distance),
    like lane-area detectors covering the last VIEW_M metres, and stop-line counts."""

    name = "sumo-lanes"
    every_step = False  # counts survive sparse sampling; sample at decision times only

    def __init__(self, tc, scenario: Scenario) -> None:
        self.tc = tc
        self.js = {j.tls: j for j in scenario.junctions}
        self.link_stage: dict[str, list[int]] = {}
        self.link_lane: dict[str, list[str]] = {}
        for j in scenario.junctions:
            st = []
            for idx in range(j.n_links):
                ks = [k for k, s in enumerate(j.stage_states) if s[idx] == "G"]
                st.append(ks[0] if ks else -1)
            self.link_stage[j.tls] = st
            self.link_lane[j.tls] = [m[2] for m in j.link_movement]
        self.counts: dict[str, dict[str, float]] = {j.tls: {} for j in scenario.junctions}
        self.mcounts: dict[str, dict[str, float]] = {j.tls: {} for j in scenario.junctions}
        self.cross_speed_sum = 0.0  # speeds of vehicles as they pass a stop line (m/s)
        self.cross_speed_n = 0
        self._speed: dict[str, float] = {}
        self.last: dict[str, tuple[str, str, str]] = {}
        # SUMO lane -> approach lane: the approach edge's own, and the upstream edge's
        # lanes continuing into them (lane i into lane i; the left bay opens on the left)
        self.lane_of: dict[str, str | None] = {}
        for j in scenario.junctions:
            for a in j.approaches:
                for ln in a.lanes:
                    self.lane_of[ln] = ln
                if a.upstream:
                    for i in range(min(tc.edge.getLaneNumber(a.upstream), len(a.lanes))):
                        self.lane_of[f"{a.upstream}_{i}"] = a.lanes[i]

    def _approach_lane(self, lane: str) -> str | None:
        """The approach lane a SUMO lane belongs to; a lane inside the node where the bay
        opens (an internal ":..." lane) belongs to the lane it leads into."""
        if lane not in self.lane_of and lane.startswith(":"):
            links = self.tc.lane.getLinks(lane)
            self.lane_of[lane] = self.lane_of.get(links[0][0]) if links else None
        return self.lane_of.get(lane)

    def step(self, t: float) -> dict[str, JunctionMeasurement]:
        tc = self.tc
        buf: dict[str, list[list[tuple[float, float]]]] = {
            tls: [[] for _ in j.stage_states] for tls, j in self.js.items()
        }
        mbuf: dict[str, dict[str, list[tuple[float, float]]]] = {tls: {} for tls in self.js}
        lbuf: dict[str, dict[str, list[tuple[float, float]]]] = {tls: {} for tls in self.js}
        seen: dict[str, tuple[str, str, str]] = {}
        ids = tc.vehicle.getIDList()
        idset = set(ids)
        for vid in ids:
            nxt = tc.vehicle.getNextTLS(vid)
            if not nxt:
                continue
            tls, link, dist, _ = nxt[0]
            if tls not in self.js:
                continue
            mv = movement_id(self.js[tls].link_movement[link])
            seen[vid] = (tls, self.link_lane[tls][link], mv)
            if dist > VIEW_M:
                continue
            k = self.link_stage[tls][link]
            if k >= 0:
                sp = tc.vehicle.getSpeed(vid)
                self._speed[vid] = sp
                buf[tls][k].append((dist, sp))
                mbuf[tls].setdefault(mv, []).append((dist, sp))
                lane = self._approach_lane(tc.vehicle.getLaneID(vid))
                if lane is not None:
                    lbuf[tls].setdefault(lane, []).append((dist, sp))
        for vid, (tls, lane, mv) in self.last.items():
            if seen.get(vid, (None,))[0] != tls:
                c = self.counts[tls]
                c[lane] = c.get(lane, 0.0) + 1.0
                mc = self.mcounts[tls]
                mc[mv] = mc.get(mv, 0.0) + 1.0
                sp = tc.vehicle.getSpeed(vid) if vid in idset else self._speed.get(vid)
                if sp is not None:
                    self.cross_speed_sum += sp
                    self.cross_speed_n += 1
                self._speed.pop(vid, None)
        self.last = seen
        out = {}
        for tls, j in self.js.items():
            out[tls] = JunctionMeasurement(
                t,
                [_traffic(rows) for rows in buf[tls]],
                dict(self.counts[tls]),
                stage_lanes(j),
                {mv: _traffic(rows) for mv, rows in mbuf[tls].items()},
                dict(self.mcounts[tls]),
                {ln: _traffic(rows) for ln, rows in lbuf[tls].items()},
            )
        return out


def _traffic(rows: list[tuple[float, float]]) -> StageTraffic:
    a = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
    return StageTraffic(a[:, 0], a[:, 1], np.ones(len(a)))


def movement_id(m: tuple[str, str, str]) -> str:
    """(approach, dir, lane) -> "N_T" / "N_L" / "N_R" (engine.signal's movement ids)."""
    return f"{m[0]}_{ {'l': 'L', 's': 'T', 'r': 'R'}[m[1]] }"


def stage_lanes(j: Junction) -> list[list[str]]:
    out = []
    for s in j.stage_states:
        out.append(sorted({j.link_movement[i][2] for i, c in enumerate(s) if c == "G"}))
    return out


def _sumo_cmd(sc: Scenario, program: str, step: float, tripinfo: Path, seed: int) -> list[str]:
    return [
        sumo_binary("sumo"),
        "-n",
        str(sc.net),
        "-r",
        str(sc.routes),
        "-a",
        str(sc.programs),
        "--step-length",
        str(step),
        "--time-to-teleport",
        "-1",
        "--seed",
        str(seed),
        "--no-step-log",
        "true",
        "--no-warnings",
        "true",
        "--tripinfo-output",
        str(tripinfo),
        "--tripinfo-output.write-unfinished",
        "true",
        "--tripinfo-output.write-undeparted",
        "true",
        "--end",
        str(sc.horizon_s),
    ]


def run(
    sc: Scenario,
    controller: str | Callable[[Junction], Controller],
    *,
    label: str | None = None,
    measure: str | Callable[[Any, Scenario], Any] = "sumo",
    step: float = 1.0,
    decide_every_s: float = 1.0,
    seed: int = 1,
    work_dir: str | Path = "out/sim",
    record_through: bool = False,
    on_step: Callable[[Any, float], None] | None = None,
) -> RunResult:
    """Run `sc` under `controller`: "static" / "actuated" (SUMO's programs), or a factory
    building one of our controllers per junction. `measure` is "sumo" (lane truth) or a
    factory of a measurer (e.g. the camera loop) with `.step(t) -> {tls: measurement}`."""
    tc = traci_module()
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    name = label or (controller if isinstance(controller, str) else "ours")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    tripinfo = work / f"tripinfo_{sc.name}_{safe}_{os.getpid()}.xml"
    program = controller if isinstance(controller, str) else "static"
    t0 = time.perf_counter()
    tc.start(_sumo_cmd(sc, program, step, tripinfo, seed))
    try:
        for j in sc.junctions:
            tc.trafficlight.setProgram(j.tls, program)
        ctrls: dict[str, Controller] = {}
        execs: dict[str, StageExecutor] = {}
        measurer = None
        measured_by = "sumo-program"
        if not isinstance(controller, str):
            for j in sc.junctions:
                ctrls[j.tls] = controller(j)
                if not getattr(ctrls[j.tls], "drives_lights", False):
                    execs[j.tls] = StageExecutor(tc, j, ctrls[j.tls].min_green_s)
            measurer = SumoMeasurer(tc, sc) if measure == "sumo" else measure(tc, sc)
            measured_by = getattr(measurer, "name", "custom")
        in_lanes = [ln for j in sc.junctions for a in j.approaches for ln in a.lanes]
        up_lanes = []
        for j in sc.junctions:
            for a in j.approaches:
                if a.upstream:
                    up_lanes += [
                        f"{a.upstream}_{i}" for i in range(tc.edge.getLaneNumber(a.upstream))
                    ]
        q_lanes = in_lanes + up_lanes
        queues = []
        traj: dict[str, list[tuple[float, str, float]]] = {}
        thru = set(sc.through_routes)
        sig: dict[str, list[tuple[float, bool]]] = {j.tls: [] for j in sc.junctions}
        w_thru = {
            j.tls: next(
                (i for i, m in enumerate(j.link_movement) if m[0] == "W" and m[1] == "s"), 0
            )
            for j in sc.junctions
        }
        t = 0.0
        next_decide = 0.0
        next_queue = 0.0
        teleports = 0
        while t < sc.horizon_s - 1e-9:
            tc.simulationStep()
            t = tc.simulation.getTime()
            teleports += tc.simulation.getStartingTeleportNumber()
            if measurer is not None:
                # the step just simulated counts toward the interval it showed, before any
                # request (requesting first cut every yellow / all-red / min green by a step)
                for ex in execs.values():
                    ex.advance(step)
                decide = t >= next_decide - 1e-9
                if decide or getattr(measurer, "every_step", True):
                    meas = measurer.step(t)
                if decide:
                    next_decide += decide_every_s
                    for tls, ex in execs.items():
                        if ex.phase == "green":
                            ex.request(ctrls[tls].decide(meas[tls], ex.stage, ex.green_s))
                for tls, c in ctrls.items():
                    if tls not in execs:
                        c.drive(tc, meas[tls], step)  # owns its safety state machine
            if t >= next_queue - 1e-9:
                next_queue += 1.0
                queues.append(sum(tc.lane.getLastStepHaltingNumber(ln) for ln in q_lanes))
                if record_through:
                    for j in sc.junctions:
                        st = tc.trafficlight.getRedYellowGreenState(j.tls)
                        sig[j.tls].append((t, st[w_thru[j.tls]] in "Gg"))
                    for vid in tc.vehicle.getIDList():
                        if tc.vehicle.getRouteID(vid) in thru:
                            traj.setdefault(vid, []).append(
                                (t, tc.vehicle.getRoadID(vid), tc.vehicle.getPosition(vid)[0])
                            )
            if on_step is not None:
                on_step(tc, t)
            if t >= sc.end_s and tc.simulation.getMinExpectedNumber() == 0:
                break
        sim_end = t
    except BaseException:
        measurer = None
        raise
    finally:
        tc.close()
    wall = time.perf_counter() - t0
    res = _tripinfo_metrics(tripinfo, sc, name, measured_by, queues, sim_end, teleports, wall)
    if record_through:
        res.trajectories = traj
        res.signals = sig
    if measurer is not None and hasattr(measurer, "errors"):
        res.flow_errors = measurer.errors()
    return res


def _tripinfo_metrics(
    path: Path,
    sc: Scenario,
    name: str,
    measured_by: str,
    queues: list[float],
    sim_end: float,
    teleports: int,
    wall: float,
) -> RunResult:
    delays, stops, thru_stops = [], [], []
    finished = 0
    thru = set(sc.through_routes)
    vroute = {}
    if thru:
        for v in ET.parse(sc.routes).getroot().iter("vehicle"):
            vroute[v.get("id")] = v.get("route")
    for ti in ET.parse(path).getroot().iter("tripinfo"):
        vid = ti.get("id")
        delay = float(ti.get("timeLoss", 0.0)) + max(0.0, float(ti.get("departDelay", 0.0)))
        if float(ti.get("depart", -1)) < 0:  # never inserted: waited from its planned depart
            delay = max(delay, sim_end - sc.departures.get(vid, sim_end))
        delays.append(delay)
        stops.append(int(ti.get("waitingCount", 0)))
        if float(ti.get("arrival", -1)) >= 0:
            finished += 1
        if vroute.get(vid) in thru:
            thru_stops.append(int(ti.get("waitingCount", 0)))
    d = np.asarray(delays) if delays else np.zeros(1)
    q = np.asarray(queues) if queues else np.zeros(1)
    return RunResult(
        scenario=sc.name,
        controller=name,
        measured_by=measured_by,
        n_vehicles=len(delays),
        finished=finished,
        mean_delay_s=float(d.mean()),
        p95_delay_s=float(np.percentile(d, 95)),
        mean_stops=float(np.mean(stops)) if stops else 0.0,
        mean_queue_veh=float(q.mean()),
        max_queue_veh=float(q.max()),
        throughput_vph=finished / max(sim_end, 1.0) * 3600.0,
        teleports=teleports,
        through_stops=float(np.mean(thru_stops)) if thru_stops else float("nan"),
        through_vehicles=len(thru_stops),
        wall_s=wall,
    )
