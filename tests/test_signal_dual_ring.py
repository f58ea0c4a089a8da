"""engine.signal.DualRingController (NEMA dual ring) through the Python API: its phases,
ring gap-out, lagging lefts, barrier crossing, skipping, and clear errors for bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import InputError, SignalConstraintError
from engine.signal import DetectorState, DualRingController, Intersection, SignalController

PHASES = ["NS_L", "N_TL", "S_TL", "NS_T", "EW_L", "E_TL", "W_TL", "EW_T"]


@pytest.fixture
def ix() -> Intersection:
    return Intersection.standard_four_arm("dr1", dual_ring=True, min_green=6.0, yellow=3.4)


def test_dual_ring_phases_are_compatible_movement_sets(ix):
    assert ix.phase_names == PHASES
    cm = ix.conflict_matrix()
    mov = ix.movement_ids
    ctl = DualRingController(ix)
    # ring 0 of N/S: N_L then S_T(+S_R); ring 1: S_L then N_T(+N_R)
    assert ctl.groups[:4] == [["N_L"], ["S_T", "S_R"], ["S_L"], ["N_T", "N_R"]]
    # the two groups of one ring conflict; groups of the two rings in one barrier do not
    i = {m: k for k, m in enumerate(mov)}
    assert cm[i["N_L"], i["S_T"]] and cm[i["S_L"], i["N_T"]]
    assert not cm[i["N_L"], i["N_T"]] and not cm[i["N_L"], i["S_L"]]


def test_defaults_are_the_rust_cores_in_every_signature(ix):
    """The defaults are written three times (Rust `DualRingParams::default()`, the PyO3
    signature, this module's signature); they must agree, or a Python user would run a
    different controller from the one the Rust tests and the bench figures describe."""
    import inspect

    from engine import _core

    rust = _core.DualRingController.default_params()
    sig = inspect.signature(DualRingController.__init__).parameters
    py = {k: p.default for k, p in sig.items() if k not in ("self", "ix")}
    assert py == rust
    assert DualRingController(ix).params == rust  # the PyO3 signature's defaults
    assert DualRingController(ix, early_left_queue_veh=3.0).params["early_left_queue_veh"] == 3.0


def test_rings_gap_out_separately_lefts_lag_and_barrier_crossed(ix):
    ctl = SignalController(ix, DualRingController(ix, early_left_veh=0.0), initial_phase="NS_T")
    # both throughs discharge; N_L waits: NS_T holds
    busy = DetectorState.from_mappings(
        ix,
        queue={"N_T": 6, "S_T": 6, "N_L": 4, "E_T": 3},
        expected={"N_T": 4, "S_T": 4, "N_L": 2},
    )
    for _ in range(20):
        st = ctl.step(1.0, busy)
        assert (st.interval, st.phase_name) == ("green", "NS_T")
    # S_T (ring 0) gaps out: ring 0 moves to the lagging N_L while N_T keeps green
    s_done = DetectorState.from_mappings(
        ix,
        queue={"N_T": 6, "N_L": 4, "E_T": 3},
        expected={"N_T": 4, "S_T": 0, "N_L": 2},
    )
    seen, n_t = [], []
    for _ in range(12):
        seen.append(ctl.step(1.0, s_done))
        n_t.append(int(ctl.lights()[ix.movement_ids.index("N_T")]))
    assert n_t == [2] * 12  # N_T stays green through S_T's yellow and all-red
    lights = ctl.lights()
    assert seen[0].interval == "yellow"
    assert seen[-1].phase_name == "N_TL" and seen[-1].interval == "green"
    k = {m: n for n, m in enumerate(ix.movement_ids)}
    assert lights[k["N_T"]] == 2 and lights[k["N_L"]] == 2 and lights[k["S_T"]] == 0
    # the change was NS_T → N_TL directly (S_T cleared, N_T never left green)
    assert all(s.phase_name in ("NS_T", "N_TL") for s in seen)
    # both rings done, only E/W called (no left there): barrier crossed to EW_T
    done = DetectorState.from_mappings(ix, queue={"E_T": 3, "W_T": 2}, expected={"E_T": 2})
    seen = [ctl.step(1.0, done) for _ in range(15)]
    greens = {s.phase_name for s in seen if s.interval == "green"}
    assert "EW_T" in greens and not greens & {"EW_L", "E_TL", "W_TL"}
    # a left phase ends at max_green_left_s while it still discharges
    ctl2 = SignalController(ix, DualRingController(ix, max_green_left_s=12.0), "NS_L")
    left = DetectorState.from_mappings(
        ix, queue={"N_L": 9, "S_L": 9, "E_T": 2}, expected={"N_L": 3, "S_L": 3}
    )
    run = 0
    for _ in range(30):
        st = ctl2.step(1.0, left)
        if st.interval != "green" or st.phase_name != "NS_L":
            break
        run += 1
    assert 11 <= run <= 13


def test_done_ring_keeps_its_through_unless_its_left_queue_is_long(ix):
    # S_T has gapped out while N_T still discharges; N_L has 2 vehicles
    st = DetectorState.from_mappings(
        ix, queue={"N_T": 6, "N_L": 2, "E_T": 3}, expected={"N_T": 4, "N_L": 2}
    )
    hold = DualRingController(ix, early_left_veh=3.0).decide(st, "NS_T", 20.0, now=20.0)
    assert hold.target is None  # S_T stays green (free: ring 1 holds the barrier anyway)
    go = DualRingController(ix, early_left_veh=2.0).decide(st, "NS_T", 20.0, now=20.0)
    assert go.target_name == "N_TL"  # 2 lefts waiting are enough: ring 0 leaves alone
    # both rings done: they move to the lefts together whatever early_left_veh says
    both = DetectorState.from_mappings(
        ix, queue={"N_L": 2, "S_L": 1, "E_T": 3}, expected={"N_L": 2, "S_L": 1}
    )
    d = DualRingController(ix, early_left_veh=3.0).decide(both, "NS_T", 20.0, now=20.0)
    assert d.target_name == "NS_L"


def test_done_ring_serves_its_left_early_when_its_bay_queue_is_long(ix):
    # S_T has gapped out while N_T still discharges; N_L: 3 halted, 6 more approaching
    st = DetectorState.from_mappings(
        ix,
        queue={"N_T": 6, "N_L": 3, "E_T": 3},
        approaching={"N_L": 6},
        expected={"N_T": 4, "N_L": 2},
    )
    # 9 in range but only 3 halted: the lagging left will clear them, S_T stays green
    hold = DualRingController(ix, early_left_queue_veh=4.0).decide(st, "NS_T", 20.0, now=20.0)
    assert hold.target is None
    go = DualRingController(ix, early_left_queue_veh=3.0).decide(st, "NS_T", 20.0, now=20.0)
    assert go.target_name == "N_TL"  # 3 halted reach the bay threshold: the left goes now
    either = DualRingController(ix, early_left_veh=9.0, early_left_queue_veh=4.0)
    assert either.decide(st, "NS_T", 20.0, now=20.0).target_name == "N_TL"


def test_through_maximum_is_cut_while_the_cross_street_queues_long(ix):
    # NS_T at 50 s (past the busy cut of 45 s, short of the 60 s maximum), both throughs
    # still discharging; E/W holds 20 + 19 halted vehicles
    def state(w_t: float) -> DetectorState:
        return DetectorState.from_mappings(
            ix,
            queue={"N_T": 6, "S_T": 6, "E_T": 20, "W_T": w_t},
            expected={"N_T": 4, "S_T": 4},
        )

    ctl = DualRingController(ix, busy_cross_queue_veh=40.0, busy_max_green_through_s=45.0)
    assert ctl.decide(state(19), "NS_T", 50.0, now=50.0).target is None  # 39 halted: hold
    assert ctl.decide(state(20), "NS_T", 50.0, now=50.0).target_name == "EW_T"  # 40: cut
    off = DualRingController(ix, busy_cross_queue_veh=math.inf)
    assert off.decide(state(20), "NS_T", 50.0, now=50.0).target is None
    assert off.decide(state(20), "NS_T", 60.0, now=60.0).target_name == "EW_T"  # 60 s max


def test_decide_and_bad_input(ix):
    ctl = DualRingController(ix)
    d = ctl.decide(
        DetectorState.from_mappings(ix, queue={"E_L": 2}, expected={}), "NS_T", 10.0, now=10.0
    )
    # nothing left on N/S: the barrier is crossed; ring 0 starts with its called E_L, the
    # uncalled ring 1 rests on its through (E_T)
    assert d.target_name == "E_TL"
    assert len(d.pressures) == 8 and d.calls[ix.phase_index("E_TL")]
    assert not d.calls[ix.phase_index("NS_T")]
    with pytest.raises(InputError, match="expected"):
        ctl.decide(DetectorState.from_mappings(ix, queue={"E_L": 2}), "NS_T", 10.0)
    with pytest.raises(SignalConstraintError, match=r"'x4'.*dual ring needs a phase serving"):
        DualRingController(Intersection.standard_four_arm("x4"))
    with pytest.raises(SignalConstraintError, match=r"'x5'.*protected_left=false"):
        Intersection.standard_four_arm("x5", dual_ring=True, protected_left=False)
    for bad in (
        {"efficiency": -0.1},
        {"max_green_left_s": math.nan},
        {"horizon_s": math.inf},
        {"lead_left_veh": math.nan},
        {"lead_left_veh": -1.0},
        {"early_left_veh": math.nan},
        {"early_left_queue_veh": -2.0},
        {"busy_cross_queue_veh": math.nan},
        {"busy_max_green_through_s": 0.0},
        {"busy_max_green_through_s": math.inf},
    ):
        name = next(iter(bad))
        with pytest.raises(SignalConstraintError, match=rf"'dr1'.*{name}"):
            DualRingController(ix, **bad)
    # lead_left_veh = inf (lagging lefts) is the default and valid
    assert DualRingController(ix, lead_left_veh=float("inf")).groups[4] == ["E_L"]
    with pytest.raises(InputError, match="dr1"):
        ctl.decide(
            DetectorState(np.zeros(12), np.full(12, -1.0), None, None, None, np.zeros(12)),
            "NS_T",
            10.0,
        )
