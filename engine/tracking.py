"""Per-camera tracking and counting: one Rust call per frame does the tracker update,
line crossings, zone occupancy/dwell and road-plane speeds (`engine._core.CameraAnalyticsCore`).

    >>> import numpy as np
    >>> from engine.config import CameraConfig, TrackerConfig
    >>> from engine.detections import Detections
    >>> cam = CameraConfig(fps=10, lines=[{"id": "stop", "a": (0, 300), "b": (1000, 300)}])
    >>> ca = CameraAnalytics("cam1", cam, TrackerConfig(min_hits=2))
    >>> for k, y in enumerate([380.0, 340.0, 310.0, 280.0, 250.0]):
    ...     box = np.array([[480, y - 40, 520, y]], np.float32)
    ...     r = ca.update(Detections(box, np.array([0.9], np.float32), np.array([2], np.int32)), k * 0.1, k)
    >>> ca.counts()
    {('stop', 'in', 'car'): 1}
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine import _core
from engine.config import CameraConfig, TrackerConfig
from engine.detections import Detections, RoadClass
from engine.errors import InputError, TimeOrderError
from engine.records import FrameResult, LineCrossing, Observation, ZoneOccupancy

_LABELS: dict[int, str] = {int(c): c.label for c in RoadClass}


def class_label(class_id: int) -> str:
    return _LABELS.get(int(class_id), f"class{int(class_id)}")


def class_id_of(label: str) -> int:
    try:
        return int(RoadClass[label.upper()])
    except KeyError:
        raise InputError(
            f"unknown road class {label!r}; expected one of {[c.label for c in RoadClass]}"
        ) from None


@dataclass(frozen=True, slots=True)
class ConfirmedTracks:
    """Columnar view of the confirmed tracks matched in the latest frame (M rows)."""

    ids: np.ndarray  # uint64 (M,)
    xyxy: np.ndarray  # float32 (M, 4), filtered boxes
    class_ids: np.ndarray  # int32 (M,)
    scores: np.ndarray  # float32 (M,)
    det_index: np.ndarray  # uint32 (M,): row of the matched detection
    world_xy: np.ndarray  # float64 (M, 2), road-plane metres (NaN without homography)
    speed_kmh: np.ndarray  # float64 (M,), NaN until measurable / without homography
    stopped_s: np.ndarray  # float64 (M,), seconds stopped (0 while moving)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls) -> ConfirmedTracks:
        return cls(
            np.zeros(0, np.uint64),
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.int32),
            np.zeros(0, np.float32),
            np.zeros(0, np.uint32),
            np.zeros((0, 2), np.float64),
            np.zeros(0, np.float64),
            np.zeros(0, np.float64),
        )


def tracker_kwargs(t: TrackerConfig) -> dict[str, Any]:
    return {
        "high_threshold": t.high_threshold,
        "low_threshold": t.low_threshold,
        "new_track_threshold": t.new_track_threshold,
        "match_iou": t.match_iou,
        "min_hits": t.min_hits,
        "max_lost_s": t.max_lost_s,
        "speed_window_s": t.speed_window_s,
    }


class CameraAnalytics:
    """Tracker + lines + zones + speed for one camera.

    `update(dets, ts, seq)` returns a FrameResult with observations (confirmed tracks only),
    crossings (once per track and line) and zone occupancy. `tracks()` gives the same
    confirmed tracks columnar, `counts()` the crossing totals so far.
    """

    def __init__(
        self, camera_id: str, camera: CameraConfig, tracker: TrackerConfig | None = None
    ) -> None:
        self.camera_id = camera_id
        self.camera = camera
        self.tracker_config = tracker or TrackerConfig()
        h = None
        if camera.homography is not None:
            try:
                h = _core.Homography.from_points(
                    np.asarray(camera.homography.image, np.float64),
                    np.asarray(camera.homography.world, np.float64),
                )
            except InputError as e:
                raise InputError(f"camera {camera_id!r}: {e}") from None
        self.homography = h
        lines = []
        for ln in camera.lines:
            classes = None if ln.classes is None else [class_id_of(c) for c in ln.classes]
            lines.append((tuple(ln.a), tuple(ln.b), classes, None))
        zones = [np.asarray(z.polygon, np.float64) for z in camera.zones]
        try:
            self._core = _core.CameraAnalyticsCore(
                lines, zones, h, **tracker_kwargs(self.tracker_config)
            )
        except InputError as e:
            raise InputError(f"camera {camera_id!r}: {e}") from None
        self._line_ids = [ln.id for ln in camera.lines]
        self._line_lanes = [ln.lane for ln in camera.lines]
        self._zone_ids = [z.id for z in camera.zones]
        self._last: dict[str, np.ndarray] | None = None
        self._last_ts: float | None = None

    # ---- the per-frame call ----------------------------------------------------------
    def update_columnar(self, dets: Detections, ts: float) -> dict[str, np.ndarray]:
        """The Rust call alone: a dict of numpy arrays (see `CameraAnalyticsCore.update`)."""
        try:
            out = self._core.update(dets.xyxy, dets.scores, dets.class_ids, float(ts))
        except TimeOrderError:
            raise TimeOrderError(
                f"camera {self.camera_id!r}: timestamp {ts} is earlier than the previous "
                f"frame's {self._last_ts}"
            ) from None
        except InputError as e:
            raise InputError(f"camera {self.camera_id!r}: {e}") from None
        self._last = out
        self._last_ts = float(ts)
        return out

    def update(self, dets: Detections, ts: float, seq: int) -> FrameResult:
        t0 = time.perf_counter()
        out = self.update_columnar(dets, ts)
        t1 = time.perf_counter()
        cam = self.camera_id
        ts = float(ts)
        res = FrameResult(camera_id=cam, seq=seq, ts=ts)

        ids = out["ids"].tolist()
        if ids:
            boxes = out["xyxy"].tolist()
            cls = out["class_ids"].tolist()
            sc = out["scores"].tolist()
            wxy = out["world_xy"].tolist()
            spd = out["speed_kmh"].tolist()
            res.observations = [
                Observation(
                    cam,
                    seq,
                    ts,
                    i,
                    _LABELS.get(c) or class_label(c),
                    b[0],
                    b[1],
                    b[2],
                    b[3],
                    s,
                    None if w[0] != w[0] else w[0],
                    None if w[1] != w[1] else w[1],
                    None if v != v else v,
                )
                for i, b, c, s, w, v in zip(ids, boxes, cls, sc, wxy, spd, strict=True)
            ]
        if len(out["cross_track_id"]):
            for tid, li, d, c, v in zip(
                out["cross_track_id"].tolist(),
                out["cross_line"].tolist(),
                out["cross_direction"].tolist(),
                out["cross_class_id"].tolist(),
                out["cross_speed_kmh"].tolist(),
                strict=True,
            ):
                res.crossings.append(
                    LineCrossing(
                        cam,
                        seq,
                        ts,
                        tid,
                        self._line_ids[li],
                        "in" if d > 0 else "out",
                        class_label(c),
                        None if v != v else v,
                        self._line_lanes[li],
                    )
                )
        if self._zone_ids:
            members: list[list[int]] = [[] for _ in self._zone_ids]
            for z, tid in zip(
                out["zone_member_zone"].tolist(), out["zone_member_track_id"].tolist(), strict=True
            ):
                members[z].append(tid)
            counts = out["zone_count"].tolist()
            dwell = out["zone_max_dwell_s"].tolist()
            res.zones = [
                ZoneOccupancy(cam, seq, ts, zid, counts[k], members[k], dwell[k])
                for k, zid in enumerate(self._zone_ids)
            ]
        t2 = time.perf_counter()
        res.timings_ms["track"] = (t1 - t0) * 1e3
        res.timings_ms["records"] = (t2 - t1) * 1e3
        return res

    # ---- accessors for later stages ---------------------------------------------------
    def tracks(self) -> ConfirmedTracks:
        """Confirmed tracks matched in the latest frame, columnar."""
        o = self._last
        if o is None:
            return ConfirmedTracks.empty()
        return ConfirmedTracks(
            o["ids"],
            o["xyxy"],
            o["class_ids"],
            o["scores"],
            o["det_index"],
            o["world_xy"],
            o["speed_kmh"],
            o["stopped_s"],
        )

    def counts(self) -> dict[tuple[str, str, str], int]:
        """Crossing totals so far: {(line_id, "in"|"out", class label): count}."""
        return {
            (self._line_ids[li], "in" if d > 0 else "out", class_label(c)): n
            for li, d, c, n in self._core.counts()
        }

    @property
    def line_ids(self) -> list[str]:
        return list(self._line_ids)

    @property
    def zone_ids(self) -> list[str]:
        return list(self._zone_ids)

    @property
    def last_ts(self) -> float | None:
        return self._last_ts

    @property
    def confirmed_total(self) -> int:
        """Public track ids handed out so far (ids are 1..confirmed_total)."""
        return self._core.confirmed_total

    def to_world(self, pts: np.ndarray) -> np.ndarray | None:
        """Image pixels (N, 2) → road metres, or None without a homography."""
        if self.homography is None:
            return None
        return self.homography.to_world(np.asarray(pts, np.float64).reshape(-1, 2))


__all__ = ["CameraAnalytics", "ConfirmedTracks", "class_id_of", "class_label"]
