"""Hypothesis through the Python API: the safety state machine under random intersections,
requests, detector states and time steps, and plans under random demands. (The bulk of the
property testing — 101,500 cases — is in rust_core/tests/signal_props.rs.)"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import SignalConstraintError
from engine.signal import (
    DetectorState,
    Intersection,
    MaxPressureController,
    PressureActuatedController,
    SignalController,
    WebsterPlan,
)

options = st.fixed_dictionaries(
    {
        "protected_left": st.booleans(),
        "pedestrians": st.booleans(),
        "min_green": st.floats(3.0, 20.0),
        "max_green": st.floats(25.0, 90.0),
        "clearance": st.fixed_dictionaries(
            {
                "speed_kmh": st.floats(25.0, 80.0),
                "width_m": st.floats(8.0, 40.0),
                "preempt_min_green_s": st.floats(1.0, 8.0),
            }
        ),
    }
)

steps = st.lists(
    st.tuples(
        st.sampled_from([0.5, 1.0, 1.0, 2.0, 0.1]),
        st.one_of(st.none(), st.integers(0, 7)),
        st.integers(0, 2**16 - 1),
        st.sampled_from(["", "", "", "", "preempt", "clear"]),
    ),
    min_size=1,
    max_size=150,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(options, st.sampled_from(["manual", "max_pressure", "pressure_actuated"]), steps)
def test_state_machine_safe_under_random_requests(opts, kind, seq):
    ix = Intersection.standard_four_arm("h", **opts)
    ctl = {
        "manual": None,
        "max_pressure": MaxPressureController(ix, approach_weight=0.5),
        "pressure_actuated": PressureActuatedController(ix),
    }[kind]
    sc = SignalController(ix, ctl)
    cm = ix.conflict_matrix()
    n, np_ = ix.n_movements, ix.n_phases
    min_green = ix.core.min_green
    pre_min = ix.core.preempt_min_green
    yellow, all_red = ix.core.yellow, ix.core.all_red
    last = (sc.status().phase, sc.status().interval)
    start = 0.0
    for dt, req, bits, op in seq:
        if op == "preempt":
            sc.preempt((req or 0) % np_)
        elif op == "clear":
            sc.clear_preempt()
        preempting = sc.core.preempting is not None
        q = np.array([(bits >> (i % 16)) & 1 for i in range(n)], dtype=float) * 3
        a = np.array([(bits >> ((i + 5) % 16)) & 1 for i in range(n)], dtype=float)
        state = DetectorState(q, a, np.where(a > 0, 1.0, np.inf))
        s = sc.step(dt, state, request=None if req is None else req % np_)
        lit = sc.lights() > 0
        assert not (cm & np.outer(lit, lit)).any()
        cur = (s.phase, s.interval)
        if cur != last:
            dur = s.now - start
            p, iv = last
            need = {
                "green": pre_min[p] if preempting else min_green[p],
                "yellow": yellow[p],
                "all_red": all_red[p],
            }[iv]
            assert dur >= need - 1e-9, (iv, dur, need)
            last, start = cur, s.now


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(0.0, 2500.0), st.just(math.nan), st.floats(-100.0, -0.1)),
        min_size=12,
        max_size=12,
    )
)
def test_webster_bounds_or_clear_error(flows):
    ix = Intersection.standard_four_arm("h", cycle_max=200.0)
    bad = any(not math.isfinite(f) or f < 0 for f in flows)
    try:
        plan = WebsterPlan.compute(ix, np.array(flows))
    except SignalConstraintError as e:
        assert bad and "'h'" in str(e)
        return
    assert not bad
    g = plan.phases["green"].to_numpy()
    assert (g >= np.array(ix.core.min_green) - 1e-9).all()
    assert (g <= np.array(ix.core.max_green) + 1e-9).all()
    assert plan.cycle <= 200.0 + 1e-6
    clear = sum(ix.core.yellow) + sum(ix.core.all_red)
    assert abs(g.sum() + clear - plan.cycle) < 1e-6
