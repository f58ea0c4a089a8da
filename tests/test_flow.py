"""engine.flow: flow metrics on synthetic crossings and tracks with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import _core
from engine.config import SiteConfig
from engine.errors import ConfigError, InputError
from engine.flow import FlowConfig, FlowEstimator
from engine.records import FrameResult, LineCrossing, Observation

LANES = [
    {
        "id": "N1",
        "approach": "N",
        "camera": "cam",
        "lines": ["s1"],
        "stop": [0, 0],
        "upstream": [0, 100],
    },
    {
        "id": "N2",
        "approach": "N",
        "camera": "cam",
        "lines": ["s2"],
        "stop": [3.5, 0],
        "upstream": [3.5, 100],
    },
    {
        "id": "E1",
        "approach": "E",
        "camera": "cam",
        "lines": ["e1"],
        "stop": [20, 20],
        "upstream": [120, 20],
    },
]


def est(**kw) -> FlowEstimator:
    return FlowEstimator({"window_s": 60, "lanes": LANES, **kw})


def crossing(
    t: float, line: str = "s1", cls: str = "car", v: float | None = 36.0, tid: int = 0
) -> LineCrossing:
    return LineCrossing("cam", 0, t, tid, line, "in", cls, v)


def test_volume_pcu_speeds_headways():
    fe = est()
    # lane N1: 10 crossings, 6 s apart, one bus; speeds alternate 36 / 72 km/h
    xs = [
        crossing(
            float(t), cls="bus" if t == 12 else "car", v=36.0 if (t // 6) % 2 == 0 else 72.0, tid=t
        )
        for t in range(0, 60, 6)
    ]
    assert fe.add_crossings(xs) == 10
    df = fe.lane_flows(start=0, end=60)
    n1 = df.filter(df["lane"] == "N1").row(0, named=True)
    assert n1["count"] == 10
    assert n1["volume_vph"] == pytest.approx(600.0)
    assert n1["pcu_vph"] == pytest.approx((9 + 2.5) * 60)  # JTG B01-2014: bus = 2.5 pcu
    assert n1["time_mean_speed_kmh"] == pytest.approx(54.0)
    assert n1["space_mean_speed_kmh"] == pytest.approx(2 / (1 / 36 + 1 / 72))  # harmonic: 48
    assert n1["headway_mean_s"] == pytest.approx(6.0)
    assert n1["headway_min_s"] == pytest.approx(6.0)
    n2 = df.filter(df["lane"] == "N2").row(0, named=True)
    assert n2["count"] == 0 and math.isnan(n2["space_mean_speed_kmh"])


def test_windows_and_approaches_add_up():
    fe = est()
    fe.add_crossings([crossing(float(t), "s1", tid=t) for t in range(0, 120, 4)])
    fe.add_crossings([crossing(float(t), "s2", tid=1000 + t) for t in range(0, 120, 10)])
    fe.add_crossings([crossing(float(t), "e1", tid=2000 + t) for t in range(0, 120, 20)])
    lanes = fe.lane_flows(60, start=0, end=120)
    assert lanes.height == 3 * 2
    app = fe.approach_flows(60, start=0, end=120)
    n = app.filter(app["approach"] == "N")
    assert n["count"].to_list() == [15 + 6, 15 + 6]
    assert n["volume_vph"].to_list() == pytest.approx([21 * 60.0, 21 * 60.0])
    # per signal cycle: cycles of 40, 50 and 30 s
    cyc = fe.cycle_flows([0, 40, 90, 120], by="lane")
    n1 = cyc.filter(cyc["lane"] == "N1")
    assert n1["count"].to_list() == [10, 13, 7]
    assert n1["volume_vph"].to_list() == pytest.approx([900.0, 13 * 72.0, 840.0])


def test_queue_occupancy_density_from_tracks():
    fe = est()
    # 10 frames at 1 s: three stopped cars at 2, 9, 16 m and one moving car at 80 m in
    # lane N1; the first car sits in the virtual detector (0..10 m) in the first 5 frames
    for k in range(10):
        xy = [[0.1, 9.0], [-0.2, 16.0], [0.0, 80.0 - 10 * k]]
        sp = [0.0, 0.0, 10.0]
        if k < 5:
            xy.append([0.0, 2.0])
            sp.append(0.0)
        fe.add_tracks("cam", float(k), np.array(xy), np.array(sp))
    row = fe.lane_flows(start=0, end=10).row(0, named=True)
    assert row["occupancy"] == pytest.approx(1.0)  # car at 9 m (4.7 m long) overlaps 0..10 m
    # queue: first 5 frames 3 stopped (2, 9, 16 m), then 2 (9, 16 m)
    assert row["queue_mean_veh"] == pytest.approx((5 * 3 + 5 * 2) / 10)
    assert row["queue_max_veh"] == 3
    assert row["queue_max_m"] == pytest.approx(16 + 4.7)
    # density: stopped 5×3 + 5×2, the moving car in 9 frames (past the stop line in the
    # 10th) = 34 vehicle-frames / 10 frames / 0.1 km
    assert row["density_veh_km"] == pytest.approx(34.0)
    # the latest frame: the moving car is 10 m past the stop line, out of the lane
    cur = fe.current()
    assert sorted(cur["N1"][0].tolist()) == pytest.approx([9.0, 16.0])


def test_saturation_delay_los_tpi():
    fe = est(free_flow_speed_kmh=50.0)
    fe.add_crossings([crossing(float(t) * 8.0, tid=t) for t in range(450)])  # 450 in 3600 s
    df = fe.lane_flows(3600, start=0, end=3600, signal={"N1": (45.0, 90.0)})
    r = df.filter(df["lane"] == "N1").row(0, named=True)
    v = r["pcu_vph"]
    assert r["capacity_pcu_h"] == pytest.approx(900.0)
    assert r["degree_of_saturation"] == pytest.approx(v / 900.0)
    # HCM uniform delay for x < 1: 0.5 C (1 - g/C)^2 / (1 - x g/C)
    x = v / 900.0
    d1 = 0.5 * 90 * 0.25 / (1 - x * 0.5)
    assert r["control_delay_s"] > d1
    perf = _core.flow_signal_performance(
        np.array([450.0]), np.array([1800.0]), np.array([45.0]), np.array([90.0])
    )
    assert perf["uniform_delay_s"][0] == pytest.approx(15.0)
    assert perf["los"] == ["B"]
    over = _core.flow_signal_performance(
        np.array([2000.0]), np.array([1800.0]), np.array([45.0]), np.array([90.0])
    )
    assert over["los"] == ["F"] and over["degree_of_saturation"][0] > 1
    # TPI: free flow → 0, twice the free-flow travel time (TTI 2.0) → between 6 and 8
    tpi = _core.flow_tpi(np.array([1.0, 1.45, 2.0, 3.0]))
    assert tpi[0] == 0.0 and tpi[1] == pytest.approx(3.0) and 6.0 < tpi[2] < 8.0 and tpi[3] == 10.0
    assert r["los"] in "ABCDEF"


@pytest.mark.parametrize(
    "bad",
    [
        lambda fe: fe.add_crossings([crossing(float("nan"))]),
        lambda fe: fe.add_crossings([crossing(1.0, v=-5.0)]),
        lambda fe: fe.add_crossings([crossing(1.0, v=float("nan"))]),
        lambda fe: fe.add_tracks("cam", 0.0, np.array([[0.0, float("nan")]]), np.array([1.0])),
        lambda fe: fe.add_tracks("cam", 0.0, np.array([[0.0, 5.0]]), np.array([-1.0])),
        lambda fe: fe.lane_flows(-5),
        lambda fe: fe.lane_flows(start=0, end=60, signal={"N1": (100.0, 90.0)}),
        lambda fe: fe.lane_flows(start=0, end=60, signal={"N1": (float("nan"), 90.0)}),
        lambda fe: fe.cycle_flows([0, 50, 40]),
    ],
)
def test_bad_input_is_an_error(bad):
    fe = est()
    fe.add_crossings([crossing(1.0)])
    with pytest.raises(InputError):
        bad(fe)


def test_core_rejects_negative_and_nan_flows():
    one = np.ones(1)
    with pytest.raises(InputError, match="volume_vph"):
        _core.flow_signal_performance(
            np.array([-10.0]), np.array([1800.0]), np.array([30.0]), np.array([90.0])
        )
    with pytest.raises(InputError):
        _core.flow_signal_performance(
            np.array([np.nan]), np.array([1800.0]), np.array([30.0]), np.array([90.0])
        )
    with pytest.raises(InputError, match="pcu"):
        _core.flow_aggregate_crossings(
            np.array([1.0]),
            np.zeros(1, np.uint32),
            one,
            -one,
            np.zeros(1, np.uint32),
            np.array([0.0, 10.0]),
        )
    with pytest.raises(InputError):
        _core.flow_tpi(np.array([np.nan]))


def test_core_presence_edie_speed_and_its_bad_input():
    """The core's presence aggregate: Edie's speed from track advances (a halted car's
    jitter adds nothing), the plain mean without them, and bad advances named."""
    u = lambda *v: np.array(v, np.uint32)  # noqa: E731
    f = lambda *v: np.array(v, np.float64)  # noqa: E731
    cols = (f(0, 1, 2), u(0, 1, 2), u(0, 0, 0), f(60, 52, 52), f(8, 8, 0.5), f(4.5, 4.5, 4.5))
    geo = (f(100.0), u(0), f(0.0, 3.0))
    plain = _core.flow_aggregate_presence(*cols, *geo)
    assert plain["segment_speed_kmh"][0] == pytest.approx((8 + 8 + 0.5) / 3 * 3.6)
    edie = _core.flow_aggregate_presence(*cols, *geo, advance_m=f(0, 8, 0), dt_s=f(0, 1, 1))
    assert edie["segment_speed_kmh"][0] == pytest.approx(4.0 * 3.6)  # 8 m in 2 s
    assert (edie["edie_advance_m"][0], edie["edie_time_s"][0]) == (8.0, 2.0)
    with pytest.raises(InputError, match="give both or neither"):
        _core.flow_aggregate_presence(*cols, *geo, advance_m=f(0, 8, 0))
    with pytest.raises(InputError, match=r"dt_s\[2\]"):
        _core.flow_aggregate_presence(*cols, *geo, advance_m=f(0, 8, 0), dt_s=f(0, 1, -1))
    with pytest.raises(InputError, match="advance_m"):
        _core.flow_aggregate_presence(*cols, *geo, advance_m=f(0, np.nan, 0), dt_s=f(0, 1, 1))


def test_config_errors_name_the_key():
    site = SiteConfig.from_dict(
        {"flow": {"lanes": [{"id": "a", "approach": "N", "stop": [0, 0], "upstream": [0, 0]}]}},
        source="site.toml",
    )
    with pytest.raises(ConfigError, match=r"site.toml: key 'flow.lanes.0'"):
        FlowConfig.from_site(site)
    site = SiteConfig.from_dict({"flow": {"window_s": -1}}, source="site.toml")
    with pytest.raises(ConfigError, match="flow.window_s"):
        FlowEstimator.from_site(site)


def test_frame_results_feed_the_estimator():
    fe = est()
    obs = [Observation("cam", 0, 5.0, 1, "car", 0, 0, 1, 1, 0.9, 0.2, 3.0, 0.0)]
    fe.add_frame(FrameResult("cam", 0, 5.0, observations=obs, crossings=[crossing(5.0)]))
    assert fe.counts()["N1"] == 1
    assert fe.lane_flows(start=0, end=60).row(0, named=True)["queue_max_veh"] == 1


def test_prune_keeps_totals():
    fe = est()
    fe.add_crossings([crossing(float(t), tid=t) for t in range(100)])
    fe.prune(50.0)
    assert fe.counts()["N1"] == 100
    df = fe.lane_flows(100, start=0, end=100)
    assert df.filter(df["lane"] == "N1")["count"][0] == 50  # the window holds only t >= 50


def test_current_tracks_bridge_missed_frames_and_smooth_speeds():
    fe = est()
    xy = np.array([[0.0, 10.0], [0.0, 40.0]])
    fe.add_tracks("cam", 0.0, xy, np.array([0.0, 2.0]), track_ids=[1, 2])
    fe.add_tracks("cam", 0.2, xy, np.array([1.0, 2.0]), track_ids=[1, 2])
    # track 2 is missed by the detector in the next frame
    fe.add_tracks("cam", 0.4, xy[:1], np.array([1.0]), track_ids=[1])
    d, s = fe.current_tracks(hold_s=0.3)["N1"]
    assert sorted(d.tolist()) == [10.0, 40.0]  # the missed vehicle still counts
    assert s[d.tolist().index(10.0)] == pytest.approx(0.51)  # 0.7·(0.7·0+0.3·1)+0.3·1
    assert len(fe.current()["N1"][0]) == 1  # the raw last frame does not
    fe.add_tracks("cam", 1.0, xy[:1], np.array([1.0]), track_ids=[1])
    assert len(fe.current_tracks(hold_s=0.3)["N1"][0]) == 1  # held no longer than hold_s
    with pytest.raises(InputError):
        fe.add_tracks("cam", 1.2, xy, np.array([1.0, 1.0]), track_ids=[1])


def test_queue_speed_is_along_the_lane_so_jitter_does_not_move_a_halted_car():
    """A halted car's boxes jitter: the tracker's 2-D speed reads a few km/h (here 2 m/s,
    above the 5 km/h queue threshold); the queue speed is the along-lane fit, ~0. A car
    driving at 8 m/s reads 8 m/s. Speeds too new to be measured (NaN) stay unknown."""
    rng = np.random.default_rng(1)
    fe = est()
    for f in range(12):
        t = 0.2 * f
        halted = [rng.normal(0.0, 0.3), 30.0 + rng.normal(0.0, 0.3)]
        moving = [0.0, 90.0 - 8.0 * t]
        fe.add_tracks("cam", t, np.array([halted, moving]), np.array([2.0, 8.0]), track_ids=[1, 2])
    ids, lanes, d, s = fe.held_tracks("cam", hold_s=0.5)
    v = dict(zip(ids.tolist(), s.tolist(), strict=True))
    assert lanes == ["N1", "N1"]
    assert v[1] < 0.5 < 5.0 / 3.6  # in the queue
    assert v[2] == pytest.approx(8.0, abs=0.05)
    d_, s_ = fe.current_tracks(hold_s=0.5)["N1"]
    assert sorted(s_.tolist()) == sorted(v.values())
    fe.add_tracks("cam", 2.6, np.array([[0.0, 50.0]]), np.array([np.nan]), track_ids=[3])
    ids, _, _, s = fe.held_tracks("cam", hold_s=0.0)
    assert ids.tolist() == [3] and math.isnan(s[0])  # unknown: neither halted nor moving
    assert fe.current()["N1"][1].tolist() == [0.0]  # the raw frame keeps its 0 for unknown
    with pytest.raises(InputError):
        fe.add_tracks("cam", 2.8, np.array([[0.0, 50.0]]), np.array([np.inf]), track_ids=[3])


def test_lane_flows_read_tracks_along_the_lane_queue_and_edie_speed():
    """With track ids, the aggregates read tracks as the controllers do: three halted cars
    whose boxes jitter (the tracker says 2 m/s, above the 5 km/h queue threshold) queue,
    and the segment speed is Edie's (distance travelled / time spent), so the jitter does
    not add up to motion. Without ids, the tracker's speeds are all there is."""
    rng = np.random.default_rng(3)
    with_ids, without = est(), est()
    n = 20
    for f in range(n):
        t = 0.2 * f
        xy = [[rng.normal(0.0, 0.3), d + rng.normal(0.0, 0.4)] for d in (5.0, 12.0, 19.0)]
        xy.append([0.0, 95.0 - 8.0 * t])  # one car driving at 8 m/s
        sp = np.array([2.0, 2.0, 2.0, 8.0])
        with_ids.add_tracks("cam", t, np.array(xy), sp, track_ids=[1, 2, 3, 4])
        without.add_tracks("cam", t, np.array(xy), sp)
    a = with_ids.lane_flows(start=0, end=10).row(0, named=True)
    b = without.lane_flows(start=0, end=10).row(0, named=True)
    # queue: the along-lane fit needs 0.6 s of a track (40% of its 1.5 s window), so the
    # first three frames have only the tracker's 2 m/s
    assert a["queue_mean_veh"] == pytest.approx(3 * (n - 3) / n)
    assert b["queue_mean_veh"] == 0.0
    # Edie: 8 m/s · 3.8 s over 4 cars · 3.8 s = 2 m/s, plus the halted cars' net jitter
    # (their first minus last positions, ~0.4·√2 m each, over 15.2 vehicle-seconds)
    assert a["segment_speed_kmh"] == pytest.approx(7.2, abs=0.5)
    assert b["segment_speed_kmh"] == pytest.approx((3 * 2.0 + 8.0) / 4 * 3.6)
