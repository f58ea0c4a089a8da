"""Incident detection on the tracked stream: a pipeline stage (runs where the tracks are)
plus the congestion-onset rule the flow agent applies per window.

- stopped vehicle: a confirmed vehicle track inside a running-lane zone (`kind = "lane"` or
  `"no_stopping"`) that has not moved (speed below `stopped_speed_kmh`, or without a road
  calibration its box centre moved less than `stopped_motion_px`) for `stopped_dwell_s`;
- wrong-way: a crossing of a line listed in `[streams.incidents] wrong_way_lines` against its
  allowed direction;
- crowd gathering: people in a `kind = "crowd"` zone reach `crowd_gathering_count` (onset;
  re-armed when the count falls below 80 % of it);
- congestion onset: `congestion_alert()` — a window's zone occupancy crosses the threshold
  from below.

Every alert names the camera, the place (zone or line id), the time, and its evidence
(track ids and measured values). Deterministic in the frame sequence, so a replay after a
restart produces the same alerts with the same keys."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.config import SiteConfig
from engine.records import Alert, FrameResult
from streams.settings import IncidentSettings

_VEHICLES = {"car", "motorcycle", "bus", "truck"}


def _inside(poly: tuple[tuple[float, float], ...], x: float, y: float) -> bool:
    """Even-odd point-in-polygon test (vertices as Python floats: numpy scalar indexing
    made this the stream worker's costliest per-vehicle step)."""
    inside = False
    xj, yj = poly[-1]
    for xi, yi in poly:
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / ((yj - yi) or 1e-12) + xi:
            inside = not inside
        xj, yj = xi, yi
    return inside


class _Zone:
    """A running-lane zone: id, vertices and bounding box (a cheap reject first)."""

    __slots__ = ("id", "poly", "x0", "x1", "y0", "y1")

    def __init__(self, zid: str, polygon: Any) -> None:
        self.id = zid
        self.poly = tuple((float(px), float(py)) for px, py in polygon)
        xs = [p[0] for p in self.poly]
        ys = [p[1] for p in self.poly]
        self.x0, self.x1, self.y0, self.y1 = min(xs), max(xs), min(ys), max(ys)

    def contains(self, x: float, y: float) -> bool:
        if x < self.x0 or x > self.x1 or y < self.y0 or y > self.y1:
            return False
        return _inside(self.poly, x, y)


@dataclass
class _Still:
    since_ts: float
    x: float
    y: float
    alerted: bool = False


@dataclass
class _CamState:
    still: dict[tuple[int, str], _Still] = field(default_factory=dict)
    gathering: dict[str, bool] = field(default_factory=dict)


class IncidentStage:
    """A post-tracking `engine.Stage`: appends `Alert`s to `result.alerts`."""

    name = "incidents"

    def __init__(self, config: SiteConfig, settings: IncidentSettings) -> None:
        self.settings = settings
        self.lane_zones: dict[str, list[_Zone]] = {}
        self.crowd_zones: dict[str, list[str]] = {}
        for cam_id, cam in config.cameras.items():
            self.lane_zones[cam_id] = [
                _Zone(z.id, z.polygon) for z in cam.zones if z.kind in ("lane", "no_stopping")
            ]
            self.crowd_zones[cam_id] = [z.id for z in cam.zones if z.kind == "crowd"]
        self._state: dict[str, _CamState] = {}

    def __call__(self, frame: np.ndarray | None, result: FrameResult, analytics: Any) -> None:
        st = self._state.setdefault(result.camera_id, _CamState())
        self._stopped(st, result)
        self._wrong_way(result)
        self._crowd(st, result)

    def _stopped(self, st: _CamState, r: FrameResult) -> None:
        zones = self.lane_zones.get(r.camera_id)
        if not zones:
            return
        s = self.settings
        present: set[tuple[int, str]] = set()
        for o in r.observations:
            if o.cls not in _VEHICLES:
                continue
            cx, cy = (o.x1 + o.x2) / 2, (o.y1 + o.y2) / 2
            for zone in zones:
                if not zone.contains(cx, cy):
                    continue
                zid = zone.id
                k = (o.track_id, zid)
                present.add(k)
                cur = st.still.get(k)
                if o.speed_kmh is not None:
                    moving = o.speed_kmh > s.stopped_speed_kmh
                else:
                    moving = (
                        cur is not None and math.hypot(cx - cur.x, cy - cur.y) > s.stopped_motion_px
                    )
                if cur is None or moving:
                    st.still[k] = _Still(r.ts, cx, cy)
                    continue
                dwell = r.ts - cur.since_ts
                if dwell >= s.stopped_dwell_s and not cur.alerted:
                    cur.alerted = True
                    r.alerts.append(
                        Alert(
                            camera_id=r.camera_id,
                            ts=r.ts,
                            kind="stopped_vehicle",
                            place=zid,
                            message=f"{o.cls} #{o.track_id} stopped in lane zone {zid} for {dwell:.0f} s",
                            severity="warning",
                            track_ids=[o.track_id],
                            values={
                                "dwell_s": round(dwell, 2),
                                "x": round(cx, 1),
                                "y": round(cy, 1),
                                **({"speed_kmh": o.speed_kmh} if o.speed_kmh is not None else {}),
                            },
                        )
                    )
        for k in list(st.still):
            if k not in present:
                del st.still[k]

    def _wrong_way(self, r: FrameResult) -> None:
        allowed = self.settings.wrong_way_lines
        if not allowed:
            return
        for c in r.crossings:
            want = allowed.get(c.line_id)
            if want is not None and c.direction != want:
                r.alerts.append(
                    Alert(
                        camera_id=r.camera_id,
                        ts=c.ts,
                        kind="wrong_way",
                        place=c.line_id,
                        message=f"{c.cls} #{c.track_id} crossed {c.line_id} going {c.direction} (allowed: {want})",
                        severity="critical",
                        track_ids=[c.track_id],
                        values={**({"speed_kmh": c.speed_kmh} if c.speed_kmh is not None else {})},
                    )
                )

    def _crowd(self, st: _CamState, r: FrameResult) -> None:
        zones = self.crowd_zones.get(r.camera_id)
        if not zones:
            return
        thr = self.settings.crowd_gathering_count
        counts = {z.zone_id: (z.count, z.track_ids) for z in r.zones if z.zone_id in zones}
        crowd = r.extras.get("crowd")
        if isinstance(crowd, dict):  # density-map counts from the crowd stage, when enabled
            for zid in zones:
                v = (
                    crowd.get("zones", {}).get(zid)
                    if isinstance(crowd.get("zones"), dict)
                    else None
                )
                if isinstance(v, (int, float)) and v > counts.get(zid, (0, []))[0]:
                    counts[zid] = (int(round(v)), counts.get(zid, (0, []))[1])
        for zid, (n, tids) in counts.items():
            on = st.gathering.get(zid, False)
            if not on and n >= thr:
                st.gathering[zid] = True
                r.alerts.append(
                    Alert(
                        camera_id=r.camera_id,
                        ts=r.ts,
                        kind="crowd_gathering",
                        place=zid,
                        message=f"{n} people gathered in {zid} (threshold {thr})",
                        severity="warning",
                        track_ids=list(tids)[:50],
                        values={"count": float(n), "threshold": float(thr)},
                    )
                )
            elif on and n < 0.8 * thr:
                st.gathering[zid] = False


def congestion_alert(
    camera_id: str,
    zone_id: str,
    window_end: float,
    occupancy: float,
    mean_count: float,
    was_congested: bool,
    settings: IncidentSettings,
) -> tuple[bool, Alert | None]:
    """Congestion onset for one lane zone and window: (congested now?, alert on onset)."""
    now = (
        occupancy >= settings.congestion_occupancy
        and mean_count >= settings.congestion_min_mean_count
    )
    if now and not was_congested:
        return True, Alert(
            camera_id=camera_id,
            ts=window_end,
            kind="congestion",
            place=zone_id,
            message=f"congestion onset in {zone_id}: occupancy {occupancy:.0%} (threshold {settings.congestion_occupancy:.0%})",
            severity="warning",
            values={
                "occupancy": round(occupancy, 4),
                "mean_count": round(mean_count, 3),
                "threshold": settings.congestion_occupancy,
            },
        )
    return now, None
