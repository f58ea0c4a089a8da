"""Stream layer without a broker: the frame envelope (round trips and every malformed case),
the backpressure policy, incident rules, Webster fallback, metrics text, settings errors."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from engine import ConfigError, Detections, EnvelopeError
from engine.records import FrameResult, LineCrossing, Observation, ZoneOccupancy
from streams.app import fresh_frames, webster
from streams.envelope import (
    HEADER_SIZE,
    Codec,
    FrameEnvelope,
    decode,
    encode_detections,
    encode_frame,
)
from streams.incidents import IncidentStage, congestion_alert
from streams.metrics import Metrics
from streams.settings import IncidentSettings, StreamSettings, partition_for
from streams.synthetic import expected_crossings, synthetic_site, traffic_detections


@pytest.fixture(scope="module")
def frame(data_dir: Path) -> np.ndarray:
    cap = cv2.VideoCapture(str(data_dir / "video" / "vtest.avi"))
    ok, f = cap.read()
    assert ok
    return f


# ---- envelope ---------------------------------------------------------------------------------


def test_raw_round_trip_is_exact(frame: np.ndarray) -> None:
    data = encode_frame("cam-é", frame, ts=12.25, seq=99, codec="raw")
    env = decode(data)
    assert (env.camera_id, env.ts, env.seq, env.width, env.height, env.codec) == (
        "cam-é",
        12.25,
        99,
        frame.shape[1],
        frame.shape[0],
        Codec.RAW_BGR,
    )
    assert np.array_equal(env.image(), frame)
    assert len(data) == HEADER_SIZE + len("cam-é".encode()) + frame.size


def test_jpeg_round_trip_is_close_and_compact(frame: np.ndarray) -> None:
    data = encode_frame("c1", frame, ts=1.0, seq=0, codec="jpeg")
    assert len(data) < frame.size / 5
    img = decode(data).image()
    assert img.shape == frame.shape
    assert np.abs(img.astype(int) - frame.astype(int)).mean() < 4.0


def test_detections_round_trip() -> None:
    d = traffic_detections(3.3, camera_index=2)
    assert len(d) > 0
    back = decode(encode_detections("c1", d, 3.3, 33)).detections()
    assert np.array_equal(back.xyxy, d.xyxy)
    assert np.array_equal(back.scores, d.scores)
    assert np.array_equal(back.class_ids, d.class_ids)
    empty = decode(encode_detections("c1", Detections.empty(), 0.0, 0)).detections()
    assert len(empty) == 0


def _good(frame: np.ndarray) -> bytes:
    return encode_frame("c1", frame[:32, :48].copy(), ts=5.0, seq=3, codec="raw")


def _patch(data: bytes, offset: int, fmt: str, value: object) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: b"", "truncated header"),
        (lambda d: d[:20], "truncated header"),
        (lambda d: b"XXXX" + d[4:], "bad magic"),
        (lambda d: _patch(d, 4, "<B", 9), "unsupported envelope version"),
        (lambda d: _patch(d, 5, "<B", 77), "unknown codec"),
        (lambda d: _patch(d, 6, "<H", 0), "camera id length"),
        (lambda d: d[:-10], "truncated envelope"),
        (lambda d: d + b"\0\0", "trailing bytes"),
        (lambda d: _patch(d, 8, "<d", float("nan")), "not finite"),
        (lambda d: _patch(d, 16, "<q", -1), "negative sequence"),
        (lambda d: _patch(d, 24, "<I", 0), "out of range"),
        (lambda d: _patch(d, 24, "<I", 47), "raw BGR payload"),
        (lambda d: d[:36] + b"\xff\xfe" + d[38:], "UTF-8"),
    ],
)
def test_malformed_envelopes_name_the_reason(frame: np.ndarray, mutate, reason: str) -> None:
    with pytest.raises(EnvelopeError, match=reason):
        decode(mutate(_good(frame)))


def test_truncated_and_corrupt_jpeg_payloads(frame: np.ndarray) -> None:
    env = FrameEnvelope.from_frame("c1", frame, 1.0, 1, codec="jpeg")
    cut = FrameEnvelope(
        "c1", 1.0, 1, env.width, env.height, Codec.JPEG, env.payload[: len(env.payload) // 2]
    )
    with pytest.raises(EnvelopeError, match="truncated JPEG"):
        decode(cut.encode()).image()
    notjpeg = FrameEnvelope("c1", 1.0, 1, env.width, env.height, Codec.JPEG, b"hello world")
    with pytest.raises(EnvelopeError, match="not a JPEG"):
        decode(notjpeg.encode()).image()
    wrong_size = FrameEnvelope("c1", 1.0, 1, env.width + 1, env.height, Codec.JPEG, env.payload)
    with pytest.raises(EnvelopeError, match="header says"):
        decode(wrong_size.encode()).image()
    with pytest.raises(EnvelopeError, match="no detections"):
        decode(env.encode()).detections()


def test_detections_payload_checked() -> None:
    env = FrameEnvelope.from_detections("c1", traffic_detections(3.0), 3.0, 30)
    bad = FrameEnvelope("c1", 3.0, 30, 0, 0, Codec.DETECTIONS, env.payload[:-4])
    with pytest.raises(EnvelopeError, match="expected for"):
        decode(bad.encode()).detections()


def test_encode_rejects_bad_fields(frame: np.ndarray) -> None:
    with pytest.raises(EnvelopeError):
        encode_frame("", frame, 0.0, 0)
    with pytest.raises(EnvelopeError):
        encode_frame("c", frame, float("inf"), 0)
    with pytest.raises(EnvelopeError):
        encode_frame("c", frame.astype(np.float32), 0.0, 0)  # type: ignore[arg-type]


# ---- backpressure -----------------------------------------------------------------------------


def _items(spec: list[tuple[str, float, float]]) -> list:
    return [
        (None, FrameEnvelope(c, ts, i, 1, 1, Codec.DETECTIONS, b""), prod)
        for i, (c, ts, prod) in enumerate(spec)
    ]


def test_backpressure_skips_stale_frames_but_keeps_newest_per_camera() -> None:
    now = 1000.0
    items = _items(
        [
            ("a", 1.0, now - 30),
            ("a", 2.0, now - 29),
            ("b", 1.0, now - 30),  # old
            ("a", 9.0, now - 0.1),
            ("b", 1.5, now - 29),  # a fresh; b's newest is still old
        ]
    )
    kept, skipped = fresh_frames(items, now, max_wall_lag_s=5.0, max_stream_lag_s=None)
    assert [(e.camera_id, e.ts) for _, e, _ in kept] == [("a", 9.0), ("b", 1.5)]
    assert sorted(e.ts for _, e, _ in skipped["a"]) == [1.0, 2.0]
    assert [e.ts for _, e, _ in skipped["b"]] == [1.0]
    kept, skipped = fresh_frames(items, now, max_wall_lag_s=None, max_stream_lag_s=2.0)
    assert [(e.camera_id, e.ts) for _, e, _ in kept] == [("b", 1.0), ("a", 9.0), ("b", 1.5)]
    kept, skipped = fresh_frames(items, now, max_wall_lag_s=None, max_stream_lag_s=None)
    assert len(kept) == len(items) and not skipped


# ---- incidents and plans ----------------------------------------------------------------------


def _obs(
    cam: str, seq: int, ts: float, tid: int, x: float, cls: str = "car", speed: float | None = None
) -> Observation:
    return Observation(cam, seq, ts, tid, cls, x - 20, 170, x + 20, 190, 0.9, speed_kmh=speed)


def test_stopped_vehicle_alert_once_after_dwell() -> None:
    cfg = synthetic_site(1)
    stage = IncidentStage(cfg, IncidentSettings(stopped_dwell_s=5.0))
    alerts = []
    for seq in range(100):  # 10 s at 10 fps; track 7 parked in the lane zone, track 8 driving
        ts = seq / 10
        r = FrameResult(
            "sim000",
            seq,
            ts,
            observations=[
                _obs("sim000", seq, ts, 7, 500.0),
                _obs("sim000", seq, ts, 8, 330 + seq * 3.0),
            ],
        )
        stage(None, r, None)
        alerts += r.alerts
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.kind, a.place, a.track_ids) == ("stopped_vehicle", "lane", [7])
    assert 5.0 <= a.values["dwell_s"] < 5.2
    # with speeds from a calibrated camera, the speed decides
    stage = IncidentStage(cfg, IncidentSettings(stopped_dwell_s=2.0))
    n = 0
    for seq in range(50):
        r = FrameResult(
            "sim000",
            seq,
            seq / 10,
            observations=[_obs("sim000", seq, seq / 10, 1, 500.0, speed=30.0)],
        )
        stage(None, r, None)
        n += len(r.alerts)
    assert n == 0


def test_wrong_way_and_crowd_gathering() -> None:
    cfg = synthetic_site(1)
    cfg.cameras["sim000"].zones[0].kind = "crowd"
    stage = IncidentStage(
        cfg, IncidentSettings(wrong_way_lines={"stop": "in"}, crowd_gathering_count=5)
    )
    r = FrameResult(
        "sim000",
        1,
        0.1,
        crossings=[
            LineCrossing("sim000", 1, 0.1, 3, "stop", "out", "car"),
            LineCrossing("sim000", 1, 0.1, 4, "stop", "in", "car"),
        ],
    )
    r.zones = [ZoneOccupancy("sim000", 1, 0.1, "lane", 6, [1, 2, 3, 4, 5, 6])]
    stage(None, r, None)
    kinds = sorted((a.kind, tuple(a.track_ids)) for a in r.alerts)
    assert kinds == [("crowd_gathering", (1, 2, 3, 4, 5, 6)), ("wrong_way", (3,))]
    r2 = FrameResult("sim000", 2, 0.2, zones=[ZoneOccupancy("sim000", 2, 0.2, "lane", 7, [])])
    stage(None, r2, None)
    assert r2.alerts == []  # still gathering: no repeat


def test_congestion_onset_only_on_rising_edge() -> None:
    s = IncidentSettings(congestion_occupancy=0.5)
    on, a = congestion_alert("c", "z", 60.0, 0.7, 2.0, False, s)
    assert on and a is not None and a.values["occupancy"] == 0.7
    on, a = congestion_alert("c", "z", 120.0, 0.8, 2.0, True, s)
    assert on and a is None
    on, a = congestion_alert("c", "z", 180.0, 0.2, 0.3, True, s)
    assert not on and a is None


def test_webster_plan() -> None:
    lanes = [
        {"camera_id": "c", "line_id": "n", "pcu_vph": 900.0},
        {"camera_id": "c", "line_id": "e", "pcu_vph": 450.0},
    ]
    p = webster(lanes)
    y = 900 / 1800 + 450 / 1800
    assert p["cycle_s"] == pytest.approx((1.5 * 6 + 5) / (1 - y), abs=0.1)
    g = p["greens_s"]
    assert g["c:n"] == pytest.approx(2 * g["c:e"], rel=0.02)
    assert sum(g.values()) == pytest.approx(p["cycle_s"] - 6, abs=0.2)
    assert webster([{"camera_id": "c", "line_id": "n", "pcu_vph": 5000.0}])["oversaturated"]


# ---- metrics, settings, synthetic truth -------------------------------------------------------


def test_metrics_text_format() -> None:
    m = Metrics()
    m.inc("citystream_frames_in_total", camera="c1")
    m.inc("citystream_frames_in_total", 2, camera="c1")
    m.set("citystream_lag_seconds", 0.25, camera='we"ird')
    for v in range(100):
        m.observe("citystream_stage_latency_ms", float(v), stage="track")
    txt = m.render()
    assert 'citystream_frames_in_total{camera="c1"} 3' in txt
    assert "# TYPE citystream_frames_in_total counter" in txt
    assert 'citystream_lag_seconds{camera="we\\"ird"} 0.25' in txt
    assert 'citystream_stage_latency_ms{quantile="0.99",stage="track"} 99' in txt
    assert 'citystream_stage_latency_ms_count{stage="track"} 100' in txt


def test_settings_errors_name_the_key() -> None:
    cfg = synthetic_site(1, streams={"partitions": 0})
    with pytest.raises(ConfigError, match="streams.partitions"):
        StreamSettings.from_site(cfg)
    s = StreamSettings.from_site(synthetic_site(1, streams={"partitions": 3}), metrics_port=9999)
    assert s.partitions == 3 and s.faust_options()["web_port"] == 9999
    assert s.faust_options()["broker_rebalance_timeout"] == 3.0
    assert {partition_for(f"cam{i}", 4) for i in range(50)} == {0, 1, 2, 3}


def test_synthetic_ground_truth_matches_boxes() -> None:
    # count centre passages over x=320 from the generated boxes, linking each box to the
    # nearest box of the previous frame in the same lane
    fps, dur, speed = 20.0, 30.0, 160.0
    prev: dict[float, list[float]] = {}
    n = 0
    for k in range(int(dur * fps)):
        d = traffic_detections(k / fps, camera_index=1, speed_px_s=speed)
        cur: dict[float, list[float]] = {}
        for x1, y1, x2, _ in d.xyxy:
            cur.setdefault(float(y1), []).append(float(x1 + x2) / 2)
        for y, xs in cur.items():
            for x in xs:
                cands = [p for p in prev.get(y, []) if abs(p - x) <= 1.5 * speed / fps]
                if cands:
                    p = min(cands, key=lambda q: abs(q - x))
                    if (p - 320) * (x - 320) < 0 or (x == 320 and p != 320):
                        n += 1
        prev = cur
    truth = expected_crossings(dur, camera_index=1, speed_px_s=speed)
    assert truth > 30
    assert abs(n - truth) <= 3  # vehicles exactly at the line on the last frames


def test_signal_planner_uses_engine_signal_for_configured_intersections() -> None:
    from engine.config import SiteConfig
    from streams.app import SignalPlanner

    cfg = SiteConfig.from_dict(
        {
            "cameras": {
                "c1": {
                    "intersection": "x1",
                    "lines": [
                        {"id": "n", "a": [0, 0], "b": [1, 1], "lane": "N_T"},
                        {"id": "e", "a": [0, 0], "b": [1, 2], "lane": "E_T"},
                    ],
                }
            },
            "intersections": {"x1": {"layout": "standard_four_arm", "min_green": 5.0}},
        }
    )
    sp = SignalPlanner(cfg)
    heavy_ns = [
        {"camera_id": "c1", "line_id": "n", "lane": "N_T", "pcu_vph": 2400.0},
        {"camera_id": "c1", "line_id": "e", "lane": "E_T", "pcu_vph": 300.0},
    ]
    p = sp.plan("x1", heavy_ns, 0.0, 60.0)
    assert p["movement_pcu_vph"] == {"N_T": 2400.0, "E_T": 300.0}
    assert set(p["greens_s"]) == {"NS_T", "NS_L", "EW_T", "EW_L"}
    assert p["greens_s"]["NS_T"] > p["greens_s"]["EW_T"]  # the busier movement gets more green
    assert p["cycle_s"] > 0
    # an intersection without a table falls back to one Webster phase per line
    assert sp.plan("elsewhere", heavy_ns, 0.0, 60.0)["method"] == "webster"


def test_signal_planner_emits_corridor_green_wave_offsets() -> None:
    from engine.config import SiteConfig
    from engine.signal import GreenWave
    from streams.app import SignalPlanner

    cams = {
        f"c{i}": {
            "intersection": f"x{i}",
            "lines": [
                {"id": "n", "a": [0, 0], "b": [1, 1], "lane": "N_T"},
                {"id": "e", "a": [0, 0], "b": [1, 2], "lane": "E_T"},
            ],
        }
        for i in (1, 2, 3)
    }
    ix = {f"x{i}": {"layout": "standard_four_arm", "min_green": 5.0} for i in (1, 2, 3)}
    corridor = {"intersections": ["x1", "x2", "x3"], "distances_m": [400.0, 650.0]}
    cfg = SiteConfig.from_dict(
        {"cameras": cams, "intersections": ix, "corridors": {"main": corridor}}
    )
    sp = SignalPlanner(cfg)
    cycles = {}
    out = []
    for i, vph in ((1, 2400.0), (2, 900.0), (3, 600.0)):
        lanes = [
            {"camera_id": f"c{i}", "line_id": "n", "lane": "N_T", "pcu_vph": vph},
            {"camera_id": f"c{i}", "line_id": "e", "lane": "E_T", "pcu_vph": 300.0},
        ]
        p = sp.plan(f"x{i}", lanes, 0.0, 60.0)
        cycles[f"x{i}"] = p["cycle_s"]
        out.append(sp.corridor_offsets(f"x{i}", 0.0, p["cycle_s"]))
    assert out[0] == [] and out[1] == []  # not before every intersection has its plan
    (rec,) = out[2]
    common = min(120.0, max(60.0, *cycles.values()))
    want = GreenWave.optimize(
        [400.0, 650.0], 50.0, 0.5, common, common, 1.0, None, ["x1", "x2", "x3"]
    )
    assert rec["kind"] == "corridor_offsets" and rec["corridor"] == "main"
    assert rec["cycle_s"] == round(common, 1)
    assert rec["offsets_s"] == {
        i: round(o, 1) for i, o in zip(["x1", "x2", "x3"], want.offsets, strict=True)
    }
    assert rec["bandwidth_out_s"] > 0
    # another window: nothing until all three have planned it
    assert sp.corridor_offsets("x1", 60.0, cycles["x1"]) == []


def test_flow_windows_use_engine_flow_for_configured_lanes() -> None:
    """A closed window's crossings go through engine.flow.FlowEstimator when `[flow]` has
    lanes for the camera (PCU factors from `[flow.pcu]` too)."""
    from engine.config import SiteConfig
    from streams.app import create_app

    lane = {"id": "N1", "approach": "N", "camera": "c1", "lines": ["n"]}
    cfg = SiteConfig.from_dict(
        {
            "cameras": {"c1": {"lines": [{"id": "n", "a": [0, 0], "b": [1, 1], "lane": "N1"}]}},
            "flow": {"lanes": [{**lane, "stop": [0, 0], "upstream": [0, 80]}], "pcu": {"bus": 3.0}},
        }
    )
    sa = create_app(cfg, StreamSettings(flow_window_s=60), broker="kafka://127.0.0.1:9")
    xs = {
        f"c1:{i}:n": [float(t), "n", "in", "bus" if i % 3 == 0 else "car", 30.0, "N1", i, t]
        for i, t in enumerate(range(0, 60, 5))
    }
    (row,) = sa._engine_lane_flows("c1", 0.0, xs)
    assert (row["lane"], row["window_start"], row["window_end"]) == ("N1", 0.0, 60.0)
    assert row["count"] == 12 and row["volume_vph"] == 12 * 60
    assert row["pcu_vph"] == (8 * 1.0 + 4 * 3.0) * 60  # [flow.pcu] bus = 3.0
    assert row["headway_mean_s"] == 5.0
    assert row["occupancy"] is None  # no presence samples: null, not NaN, in JSON
    assert sa._engine_lane_flows("c2", 0.0, xs) is None  # no lane configured there
    assert sa.flow_cfg.pcu.of("bus") == 3.0


def test_flow_state_written_per_crossing_does_not_grow_with_the_window() -> None:
    """Each counted crossing writes O(1) state (its own changelog entry), not the whole
    window; duplicates are not counted; a window's totals come from its entries."""
    from types import SimpleNamespace

    from engine.config import SiteConfig
    from streams.app import _event_context, create_app

    lines = [{"id": f"l{k}", "a": [0, 0], "b": [1, k + 1], "lane": f"L{k}"} for k in range(2)]
    cfg = SiteConfig.from_dict({"cameras": {"c1": {"lines": lines}}})
    sa = create_app(cfg, StreamSettings(flow_window_s=3600), broker="kafka://127.0.0.1:9")
    written: list[int] = []

    def send_changelog(p: int, k: Any, v: Any, *a: Any, **kw: Any) -> Any:
        written.append(len(json.dumps([k, v])))  # the changelog record's size
        return SimpleNamespace(message=SimpleNamespace(partition=p))

    for table in (sa.flow_x, sa.flow_acc, sa.clock):
        table.send_changelog = send_changelog

    class Ev:  # Faust's current event is held by weak reference
        message = SimpleNamespace(partition=0, topic="t", offset=0)

    ev = Ev()
    n = 600
    with _event_context(ev):
        for i in range(n):
            c = {
                "camera_id": "c1",
                "track_id": i,
                "line_id": f"l{i % 2}",
                "direction": "in" if i % 3 else "out",
                "cls": "bus" if i % 5 == 0 else "car",
                "ts": 1.0 + i,
                "speed_kmh": 20.0,
                "lane": f"L{i % 2}",
                "seq": 10 * i,
            }
            sa.flow_crossing(c)
            sa.flow_crossing(dict(c))  # re-delivered: counted once
    assert len(sa._window_crossings("c1", 0.0)) == n
    # the last crossings write as little as the first ones (the old accumulator grew to
    # the whole window: ~n × 60 bytes per write at the end)
    first, last = max(written[:20]), max(written[-20:])
    assert last <= first + 16, (first, last)
    tot = sa._line_totals(sa._window_crossings("c1", 0.0))
    assert tot["l0"]["in"] + tot["l0"]["out"] == n // 2
    assert sum(t["by_class"]["bus"] for t in tot.values()) == n // 5
    buses_l1 = len([i for i in range(1, n, 2) if i % 5 == 0])
    assert tot["l1"]["pcu"] == pytest.approx(
        (n // 2 - buses_l1) * sa.flow_cfg.pcu.of("car") + buses_l1 * sa.flow_cfg.pcu.of("bus")
    )


def test_faust_data_dir_is_never_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    """A worker started anywhere must not leave `<app_id>-data` where it was started."""
    from streams.app import create_app

    monkeypatch.chdir(tmp_path)
    cfg = synthetic_site(1)
    sa = create_app(cfg, StreamSettings(app_id="dd-test"), broker="kafka://127.0.0.1:1")
    datadir = Path(sa.app.conf.datadir)
    assert not datadir.is_relative_to(tmp_path)
    assert list(tmp_path.iterdir()) == []
    kept = tmp_path / "state"
    sa2 = create_app(
        cfg, StreamSettings(app_id="dd-test2", state_dir=str(kept)), broker="kafka://127.0.0.1:1"
    )
    assert Path(sa2.app.conf.datadir) == kept / "dd-test2-data"
