"""Typed errors for bad tracker input, and the CameraAnalytics API contract."""

from __future__ import annotations

import numpy as np
import pytest

from engine import _core
from engine.config import CameraConfig, TrackerConfig
from engine.detections import Detections
from engine.errors import InputError, TimeOrderError
from engine.tracking import CameraAnalytics


def _dets(boxes, scores=None, cls=None):
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    s = np.full(len(b), 0.9, np.float32) if scores is None else scores
    c = np.full(len(b), 2, np.int32) if cls is None else cls
    return Detections(b, s, c)


def test_time_going_backwards_names_camera_and_both_timestamps():
    ca = CameraAnalytics("north-3", CameraConfig())
    ca.update(_dets([[0, 0, 10, 10]]), 5.0, 0)
    with pytest.raises(TimeOrderError, match=r"'north-3'.*4\.5.*5\.0"):
        ca.update(_dets([[0, 0, 10, 10]]), 4.5, 1)
    # The failed call changed nothing; the same timestamp again is fine.
    ca.update(_dets([[0, 0, 10, 10]]), 5.0, 2)


@pytest.mark.parametrize(
    "boxes",
    [[[np.nan, 0, 10, 10]], [[0, 0, np.inf, 10]], [[10, 0, 5, 10]], [[0, 10, 10, 5]]],
)
def test_bad_boxes_are_input_errors(boxes):
    ca = CameraAnalytics("c", CameraConfig())
    with pytest.raises(InputError):
        ca.update(_dets(boxes), 0.0, 0)


def test_mismatched_lengths_are_input_errors():
    t = _core.Tracker()
    with pytest.raises(InputError):
        t.update(np.zeros((2, 4), np.float32), np.zeros(3, np.float32), np.zeros(2, np.int32), 0.0)
    with pytest.raises(InputError):
        t.update(np.zeros((2, 3), np.float32), np.zeros(2, np.float32), np.zeros(2, np.int32), 0.0)
    with pytest.raises(InputError):
        Detections(np.zeros((2, 4)), np.zeros(3), np.zeros(2))
    with pytest.raises(InputError):
        t.update(
            np.zeros((1, 4), np.float32), np.array([np.nan], np.float32), np.zeros(1, np.int32), 0.0
        )


def test_bad_config_is_input_error():
    with pytest.raises(InputError):
        _core.Tracker(low_threshold=0.9, high_threshold=0.5)
    with pytest.raises(TypeError, match="min_hitz"):
        _core.Tracker(min_hitz=2)
    with pytest.raises(TypeError, match="min_hitz"):
        _core.CameraAnalyticsCore([], [], None, min_hitz=2)
    cam = CameraConfig(zones=[{"id": "z", "polygon": [(0, 0), (4, 4), (4, 0), (0, 4)]}])
    with pytest.raises(InputError, match="self-intersects"):
        CameraAnalytics("c", cam)
    cam = CameraConfig(lines=[{"id": "l", "a": (0, 0), "b": (1, 1), "classes": ["spaceship"]}])
    with pytest.raises(InputError, match="spaceship"):
        CameraAnalytics("c", cam)


def test_frame_result_and_columnar_tracks():
    cam = CameraConfig(
        lines=[{"id": "stop", "a": (0, 300), "b": (1000, 300), "lane": "L1", "classes": ["car"]}],
        zones=[{"id": "box", "polygon": [(0, 0), (1000, 0), (1000, 600), (0, 600)]}],
        homography={
            "image": [(0, 600), (1000, 600), (700, 100), (300, 100)],
            "world": [(-5, 5), (5, 5), (5, 60), (-5, 60)],
        },
    )
    ca = CameraAnalytics("c", cam, TrackerConfig(min_hits=2))
    ys = [400 - 30 * k for k in range(10)]
    res = []
    for k, y in enumerate(ys):
        d = _dets(
            [[480, y - 40, 520, y], [100, 500 - 40, 140, 500]], cls=np.array([2, 0], np.int32)
        )
        res.append(ca.update(d, k * 0.1, k))
    assert [len(r.observations) for r in res] == [0] + [2] * 9
    crossings = [c for r in res for c in r.crossings]
    assert len(crossings) == 1
    c = crossings[0]
    assert (c.line_id, c.direction, c.cls, c.lane) == ("stop", "in", "car", "L1")
    assert ca.counts() == {("stop", "in", "car"): 1}
    z = res[-1].zones[0]
    assert z.zone_id == "box" and z.count == 2 and z.max_dwell_s == pytest.approx(0.9)
    tr = ca.tracks()
    assert sorted(tr.ids.tolist()) == [1, 2]
    assert tr.xyxy.shape == (2, 4) and tr.world_xy.shape == (2, 2)
    assert np.isfinite(tr.world_xy).all()
    person = int(np.flatnonzero(tr.class_ids == 0)[0])
    assert tr.stopped_s[person] > 0  # the person stands still
    o = next(o for o in res[-1].observations if o.cls == "car")
    assert o.world_x is not None and o.speed_kmh is not None and o.speed_kmh > 10
