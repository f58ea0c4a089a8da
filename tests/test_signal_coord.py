"""engine.signal.CoordActuatedController (Rust) through the Python API: the cycle laid out
with the intersection's real clearances, the band, skipping uncalled phases, early return
to the coordinated phase, force-offs, the coordination it keeps when stepped with the
safety machine, clear errors — and a short SUMO run of the arterial."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import InputError, SignalConstraintError
from engine.signal import CoordActuatedController, DetectorState, Intersection, SignalController

ORDER = ["EW_T", "EW_L", "NS_T", "NS_L"]
GREENS = {"NS_T": 14.0, "NS_L": 6.0, "EW_T": 20.0, "EW_L": 6.0}
# yellow 3.4 + all-red 2: EW_T 0-20, EW_L 25.4-31.4, NS_T 36.8-50.8, NS_L 56.2-62.2
CYCLE = 67.6
OFFSET = 7.0
THROUGH = {"NS_T": "N_T", "NS_L": "N_L", "EW_T": "E_T", "EW_L": "E_L"}


@pytest.fixture
def ix() -> Intersection:
    return Intersection.standard_four_arm("c1", yellow=3.4, all_red=2.0, min_green=6.0)


def ctl(ix: Intersection, **kw) -> CoordActuatedController:
    kw.setdefault("start_tolerance_s", 0.0)
    return CoordActuatedController(ix, GREENS, offset=OFFSET, order=ORDER, **kw)


def state(ix: Intersection, queue: dict[str, float], expected: dict[str, float]) -> DetectorState:
    """Queues and expected discharge on each phase's main movement."""
    return DetectorState.from_mappings(
        ix,
        queue={THROUGH[k]: v for k, v in queue.items()},
        expected={THROUGH[k]: v for k, v in expected.items()},
    )


def decide(c: CoordActuatedController, st: DetectorState, phase: str, pos: float, cycle: int = 3):
    """Decision for `phase` green at position `pos` of cycle `cycle` (green long enough)."""
    now = OFFSET + cycle * c.cycle + pos
    return c.decide(st, phase, elapsed=max(6.0, pos % 20.0), now=now).target_name


def test_cycle_uses_the_real_clearances_and_fits_a_common_cycle(ix):
    c = ctl(ix)
    assert c.cycle == pytest.approx(CYCLE)
    assert [ix.phase_names[k] for k in c.order] == ORDER
    assert c.starts == pytest.approx([36.8, 56.2, 0.0, 25.4])
    assert c.force_offs == pytest.approx([50.8, 62.2, 20.0, 31.4])
    # the same plan in a 56 s common cycle: greens above the minimum give up the difference
    c56 = ctl(ix, cycle=56.0)
    assert c56.cycle == pytest.approx(56.0)
    assert sum(c56.greens) == pytest.approx(56.0 - 4 * 5.4)
    g = dict(zip(ix.phase_names, c56.greens, strict=True))
    assert g["NS_L"] == pytest.approx(6.0) and g["EW_L"] == pytest.approx(6.0)
    assert (g["NS_T"] - 6.0) / (g["EW_T"] - 6.0) == pytest.approx(8.0 / 14.0)
    sc = SignalController(ix, c56)
    assert sc.plan_greens == pytest.approx(c56.greens)


def test_band_is_held_then_the_coordinated_green_gaps_out(ix):
    c = ctl(ix)
    waiting = {"NS_T": 5, "NS_L": 5, "EW_L": 5, "EW_T": 0}
    idle = state(ix, waiting, {})
    assert decide(c, idle, "EW_T", 10.0) is None  # in the band (75% of 20 s)
    assert decide(c, idle, "EW_T", 14.9) is None
    assert decide(c, idle, "EW_T", 15.1) == "EW_L"  # after the band: gaps out
    busy = state(ix, {**waiting, "EW_T": 9}, {"EW_T": 9})
    assert decide(c, busy, "EW_T", 19.9) is None  # still discharging: held to its end
    assert decide(c, busy, "EW_T", 20.0) == "EW_L"
    whole = ctl(ix, coord_hold=1.0)
    assert decide(whole, idle, "EW_T", 19.9) is None


def test_uncalled_and_unfitting_phases_are_skipped(ix):
    c = ctl(ix)
    no_left = state(ix, {"NS_T": 5, "NS_L": 5}, {})
    assert decide(c, no_left, "EW_T", 16.0) == "NS_T"
    # at 27 s EW_L (force-off 31.4) cannot show 6 s after a 5.4 s clearance
    late = state(ix, {"NS_T": 5, "EW_L": 5}, {})
    assert decide(c, late, "EW_T", 27.0) == "NS_T"
    only_left = state(ix, {"EW_L": 5}, {})
    assert decide(c, only_left, "EW_T", 20.9) is None  # 0.9 s too late: rests
    tolerant = ctl(ix, start_tolerance_s=1.0)
    assert decide(tolerant, only_left, "EW_T", 20.9) == "EW_L"
    assert decide(c, state(ix, {}, {}), "EW_T", 40.0) is None  # nobody waits: rest in green


def test_force_off_at_planned_end_and_early_return(ix):
    c = ctl(ix)
    busy = state(ix, {"NS_T": 9, "NS_L": 5, "EW_T": 5}, {"NS_T": 9})
    assert decide(c, busy, "NS_T", 46.8) is None
    assert decide(c, busy, "NS_T", 50.8) == "NS_L"  # forced off at its planned end
    no_left = state(ix, {"NS_T": 9, "EW_T": 5}, {"NS_T": 9})
    assert decide(c, no_left, "NS_T", 50.8) == "EW_T"  # unused time goes to EW_T
    empty = state(ix, {"NS_T": 1, "EW_T": 5}, {"NS_T": 0})
    assert decide(c, empty, "NS_T", 44.8) == "EW_T"  # gapped out early
    # NS_T was served in this cycle: the coordinated green does not hand it back ...
    again = state(ix, {"NS_T": 9}, {})
    assert decide(c, again, "EW_T", 53.0) is None
    # ... until the next cycle
    assert decide(c, again, "EW_T", 25.0, cycle=4) == "NS_T"
    # a side green still showing when the coordinated window begins returns at once
    assert decide(c, busy, "NS_L", 1.0, cycle=4) == "EW_T"


def test_stepped_with_the_machine_the_band_starts_on_the_offset(ix):
    """Full demand on every phase, 0.2 s steps: EW_T's green starts at the offset every
    cycle and covers its band; every phase is served; clearances are the machine's."""
    c = ctl(ix, start_tolerance_s=1.0)
    sc = SignalController(ix, c, initial_phase="NS_T")
    n = ix.n_movements
    full = DetectorState(np.full(n, 3.0), np.ones(n), expected=np.full(n, 50.0))
    dt = 0.2
    onsets, served, prev = [], set(), None
    for _ in range(int(6 * CYCLE / dt)):
        st = sc.step(dt, full)
        if st.interval == "green":
            served.add(st.phase_name)
        if st.phase_name == "EW_T" and st.interval == "green" and prev != ("EW_T", "green"):
            onsets.append(st.now)
        prev = (st.phase_name, st.interval)
        pos = (st.now - OFFSET) % CYCLE
        if st.now > 2 * CYCLE and 0.5 < pos < 0.75 * 20.0:
            assert (st.phase_name, st.interval) == ("EW_T", "green"), (st.now, pos)
    assert served == set(ORDER)
    late = [((t - OFFSET) % CYCLE) for t in onsets if t > CYCLE]
    assert len(late) >= 4 and all(p < 0.5 for p in late), late
    # no side demand: EW_T rests in green
    quiet = DetectorState.from_mappings(ix, queue={"E_T": 2}, expected={"E_T": 0})
    for _ in range(int(CYCLE / dt)):
        st = sc.step(dt, quiet)
    assert (st.phase_name, st.interval) == ("EW_T", "green")


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"greens": [14.0, 6.0, 20.0]}, "greens has 3 entries, expected 4"),
        ({"offset": -1.0}, "offset_s must be finite and ≥ 0"),
        ({"offset": math.nan}, "offset_s must be finite and ≥ 0"),
        ({"cycle": -56.0}, "cycle_s must be finite and > 0"),
        ({"cycle": math.nan}, "cycle_s must be finite and > 0"),
        ({"cycle": 40.0}, "cannot hold the minimum greens"),
        ({"coord_hold": 1.5}, "coord_hold must be in [0, 1]"),
        ({"coord_hold": -0.1}, "coord_hold must be in [0, 1]"),
        ({"order": ["EW_T", "EW_L", "NS_T"]}, "must be a permutation"),
        ({"order": ["EW_T", "EW_T", "NS_T", "NS_L"]}, "must be a permutation"),
        ({"order": [2, 3, 0, -1]}, "must be a permutation"),
        ({"greens": {**GREENS, "NS_L": 5.0}}, "phase 'NS_L' cannot hold its minimum green 6"),
        ({"greens": {**GREENS, "EW_T": 80.0}}, "exceeds its maximum green"),
        ({"efficiency": -1.0}, "parameter efficiency"),
        ({"start_tolerance_s": math.inf}, "parameter start_tolerance_s"),
    ],
)
def test_bad_plans_are_rejected_naming_intersection_and_parameter(ix, kw, msg):
    args = {"greens": GREENS, "offset": OFFSET, "order": ORDER, **kw}
    with pytest.raises(SignalConstraintError, match="c1") as e:
        CoordActuatedController(ix, **args)
    assert msg in str(e.value)


def test_expected_is_required(ix):
    c = ctl(ix)
    with pytest.raises(InputError, match="expected"):
        c.decide(DetectorState(np.zeros(12), np.zeros(12)), "EW_T", 10.0)
    sc = SignalController(ix, c)
    with pytest.raises(InputError, match="coordinated-actuated controller needs detector"):
        sc.step(1.0, DetectorState(np.zeros(12), np.zeros(12)))


def test_arterial_in_sumo_keeps_the_band(tmp_path):
    """300 s of the 5-intersection arterial with the Rust controller on the Python
    coordinated plan (cycle 56 s, green-wave offsets): the W→E through green covers its
    band at every junction once started up."""
    pytest.importorskip("sumolib")
    from engine.sim.evaluate import (
        ARTERIAL_ORDER,
        COORD_CYCLE_S,
        RunSpec,
        arterial_plan,
        run_spec,
    )

    work = str(tmp_path)
    plan = arterial_plan(work, 300.0, cycles=[COORD_CYCLE_S])
    params = {"greens": plan["greens"], "offsets": plan["offsets"], "order": ARTERIAL_ORDER}
    spec = RunSpec(
        "arterial",
        "signal:coord-actuated",
        "rust coord",
        end_s=300.0,
        horizon_s=400.0,
        work_dir=work,
        params=params,
        record_through=True,
    )
    r = run_spec(spec)
    assert r["teleports"] == 0 and r["finished"] > 0.8 * r["n_vehicles"]
    # the Rust plan keeps the 56 s cycle: its EW_T green is 0.75 of the shrunk green
    ix = Intersection.standard_four_arm("A0", yellow=3.4, all_red=2.0, min_green=6.0)
    greens = dict(zip(["NS_T", "NS_L", "EW_T", "EW_L"], plan["greens"], strict=True))
    c = CoordActuatedController(
        ix, greens, order=[["NS_T", "NS_L", "EW_T", "EW_L"][k] for k in ARTERIAL_ORDER], cycle=56
    )
    band = 0.75 * c.greens[ix.phase_index("EW_T")]
    for tls, samples in r["signals"].items():
        off = plan["offsets"][tls]
        inside = [g for t, g in samples if t > 120 and 1.5 < (t - off) % 56.0 < band - 0.5]
        assert len(inside) > 20 and all(inside), (tls, sum(inside), len(inside))
