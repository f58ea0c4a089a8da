"""The Rust dual-ring controller in SUMO through the camera loop, and the clearance
intervals SUMO actually shows (per link, every 0.2 s step) for it and for the Python
controllers' StageExecutor."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sumolib")

from engine.sim.runner import movement_id, run  # noqa: E402
from engine.sim.scenarios import _BASE, build  # noqa: E402

STEP = 0.2


class LinkWatch:
    """Records the SUMO state of one junction every step and checks it as it goes."""

    def __init__(self, tls: str, conflicts: np.ndarray | None, link_mov: list[int]):
        self.tls, self.conflicts, self.link_mov = tls, conflicts, link_mov
        self.prev: str | None = None
        self.since: list[float] = []
        self.last_lit: list[float] = []
        self.yellow: list[float] = []  # completed yellow durations (s)
        self.red_gap: list[float] = []  # red time of conflicting links before a green
        self.conflicting: list[tuple[float, int, int]] = []
        self.states: set[str] = set()

    def __call__(self, tc, t: float) -> None:
        s = tc.trafficlight.getRedYellowGreenState(self.tls)
        n = len(s)
        if self.prev is None:
            self.prev, self.since = s, [t] * n
            self.last_lit = [t if c != "r" else -1e9 for c in s]
            return
        self.states.add(s)
        lit = [i for i, c in enumerate(s) if c in "Gg"]
        if self.conflicts is not None:
            for a in lit:
                for b in lit:
                    if a < b and self.conflicts[self.link_mov[a], self.link_mov[b]]:
                        self.conflicting.append((t, a, b))
        for i, (p, c) in enumerate(zip(self.prev, s, strict=True)):
            if p == c:
                continue
            # state s is shown from the previous step's end: durations in whole steps
            if p == "y":
                self.yellow.append(t - self.since[i])
            if p == "r" and c in "Gg" and self.conflicts is not None:
                for b in range(n):
                    if b != i and self.conflicts[self.link_mov[i], self.link_mov[b]]:
                        self.red_gap.append(t - self.last_lit[b])
            self.since[i] = t
        for i, c in enumerate(s):
            if c != "r":
                self.last_lit[i] = t
        self.prev = s


def test_dual_ring_through_cameras_is_safe_and_beats_static(tmp_path):
    from engine.sim import signal_adapter
    from engine.sim.camera import CameraMeasurer

    sc = build("surging", tmp_path, end_s=360.0, horizon_s=720.0)
    j = sc.junctions[0]
    ix = signal_adapter.intersection(j, dual_ring=True)
    mov = ix.movement_ids
    watch = LinkWatch(
        j.tls, ix.conflict_matrix(), [mov.index(movement_id(m)) for m in j.link_movement]
    )
    res = run(
        sc,
        signal_adapter.factory("dual-ring", _BASE["surging"], {}),
        label="dual ring · cameras",
        measure=lambda tc, s: CameraMeasurer(tc, s, fps=5.0),
        step=STEP,
        work_dir=tmp_path,
        on_step=watch,
    )
    static = run(sc, "static", step=STEP, work_dir=tmp_path)
    assert res.measured_by != "sumo-lanes"  # decisions came from the camera loop
    assert res.teleports == 0
    assert res.finished == res.n_vehicles > 200  # everybody served, nobody starved
    assert res.mean_delay_s < static.mean_delay_s, (res.mean_delay_s, static.mean_delay_s)
    assert not watch.conflicting, watch.conflicting[:5]
    # yellow 3.4 s and all-red 2 s (engine.signal's ITE-safe values), never shorter
    assert watch.yellow and min(watch.yellow) >= 3.4 - 1e-6, min(watch.yellow)
    assert watch.red_gap and min(watch.red_gap) >= 2.0 - 1e-6, min(watch.red_gap)
    # every state shown is (a subset of) one of the 8 dual-ring phases, and both barrier
    # groups' through and left phases were served
    phases = [set(p) for p in ix.core.phase_movements]
    shown = set()
    for st in watch.states:
        green = {movement_id(j.link_movement[i]) for i, c in enumerate(st) if c in "Gg"}
        assert any(green <= p for p in phases), st
        shown |= {k for k, p in enumerate(phases) if green and green == p}
    names = {ix.phase_names[k] for k in shown}
    assert {"NS_T", "EW_T"} <= names and names & {"NS_L", "N_TL", "S_TL"}, names


def test_stage_executor_shows_full_clearances(tmp_path):
    """Python controllers (StageExecutor): SUMO shows yellow 3 s and all-red 2 s in full."""
    from engine.sim.evaluate import hybrid

    sc = build("steady", tmp_path, end_s=240.0, horizon_s=400.0)
    j = sc.junctions[0]
    watch = LinkWatch(j.tls, None, [])
    all_red: list[float] = []
    state = {"t_red": None}

    def on_step(tc, t):
        watch(tc, t)
        s = tc.trafficlight.getRedYellowGreenState(j.tls)
        if "y" not in s and "G" not in s and "g" not in s:
            state["t_red"] = state["t_red"] if state["t_red"] is not None else t - STEP
        elif state["t_red"] is not None:
            all_red.append(t - STEP - state["t_red"])
            state["t_red"] = None

    res = run(sc, lambda _j: hybrid(), step=STEP, work_dir=tmp_path, on_step=on_step)
    assert res.finished == res.n_vehicles
    assert len(watch.yellow) > 5 and min(watch.yellow) >= 3.0 - 1e-6, sorted(watch.yellow)[:3]
    assert all_red and min(all_red) >= 2.0 - 1e-6, sorted(all_red)[:3]


def test_signal_timeline_shares_green_between_conflicting_movements(tmp_path):
    """bench.signal_timeline (the README's where-the-time-went rows) on a short run with
    SUMO's lane detectors: every movement gets some green, conflicting movements' shares
    never add up to more than the bin, and queues are counted."""
    pytest.importorskip("sumolib")
    from bench.signal_timeline import timeline

    r = timeline("unbalanced", 7, "sumo", end_s=300.0, bin_s=150.0, work=str(tmp_path))
    assert r["mean_delay_s"] > 0 and len(r["bins"]) >= 2, r
    for b in r["bins"]:
        g = b["green_share"]
        assert set(g) == {f"{a}_{t}" for a in "NESW" for t in "TL"}, g
        assert all(0.0 <= v <= 1.0 for v in g.values()), g
        # a through conflicts with the cross street's throughs and its opposing left
        assert g["N_T"] + g["E_T"] <= 1.0 and g["N_T"] + g["S_L"] <= 1.0, g
        assert g["S_T"] + g["W_T"] <= 1.0 and g["S_T"] + g["N_L"] <= 1.0, g
    first = r["bins"][0]
    assert first["green_share"]["N_T"] > 0.1, first  # the heavy main street is served
    assert sum(first["halted_veh"].values()) > 0, first
