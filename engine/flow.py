"""Traffic-flow estimation per lane, per approach and per signal cycle.

Inputs are what the video pipeline produces: line crossings (`LineCrossing`) at the stop
lines and tracked road-plane positions (`Observation.world_x/world_y`, or columnar
confirmed tracks). The Rust core (`engine._core.flow_*`) does the windowed aggregation;
this module maps records to lanes and returns polars DataFrames.

    >>> from engine.flow import FlowConfig, FlowEstimator
    >>> from engine.records import LineCrossing
    >>> cfg = FlowConfig.model_validate({"window_s": 60, "lanes": [
    ...     {"id": "N1", "approach": "N", "lines": ["stopN1"], "stop": [0, 0], "upstream": [0, 100]}]})
    >>> fe = FlowEstimator(cfg)
    >>> n = fe.add_crossings([LineCrossing("cam", 0, float(t), t, "stopN1", "in", "car", 36.0)
    ...                       for t in range(0, 60, 6)])
    >>> int(fe.lane_flows(start=0, end=60)["volume_vph"][0])
    600

PCU (car-equivalent) factors default to JTG B01-2014 《公路工程技术标准》 Table 3.3.2
(小客车 1.0, 中型车 1.5, 大型车 2.5, 汽车列车 4.0): car 1.0, bus and truck 2.5 (大型车;
a camera cannot tell a medium from a large vehicle reliably). Motorcycles are not in that
table; 0.5 is our assumption. All factors are configurable in `[flow.pcu]`.

Level of service uses HCM 6th ed. Exhibit 19-8 (signalised intersections), control delay
from HCM's uniform + incremental delay; the traffic performance index (0–10) uses the five
bands of Beijing's DB11/T 785-2011 over the travel-time index (see rust_core/src/flow.rs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine import _core
from engine.config import validate_section
from engine.errors import InputError
from engine.records import FrameResult, LineCrossing, Observation

Point = tuple[float, float]

# Typical vehicle lengths (m) per class, for queue metres and virtual-detector occupancy.
VEHICLE_LENGTH_M = {"car": 4.7, "motorcycle": 2.0, "bus": 12.0, "truck": 10.0, "bicycle": 1.8}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PcuFactors(_Strict):
    """Car-equivalent factors (JTG B01-2014 Table 3.3.2; motorcycle is our assumption)."""

    car: float = Field(default=1.0, gt=0)
    bus: float = Field(default=2.5, gt=0)
    truck: float = Field(default=2.5, gt=0)
    motorcycle: float = Field(default=0.5, gt=0)
    bicycle: float = Field(default=0.2, gt=0)

    def of(self, cls: str) -> float:
        return float(getattr(self, cls, 1.0)) if cls in type(self).model_fields else 1.0


class LaneSpec(_Strict):
    """One lane on the road plane: its stop-line point, a point upstream on its axis, its
    width; crossings of `lines` (optionally only in `direction`) count for it."""

    id: str
    approach: str
    camera: str | None = None
    lines: list[str] = Field(default_factory=list)
    direction: str | None = None  # "in" | "out" | None = both
    stop: Point
    upstream: Point
    width_m: float = Field(default=3.5, gt=0)
    length_m: float | None = Field(default=None, gt=0)  # observed length; default |upstream-stop|
    saturation_flow_pcu_h: float = Field(default=1800.0, gt=0)

    @model_validator(mode="after")
    def _axis(self) -> LaneSpec:
        if self.stop == self.upstream:
            raise ValueError("'stop' and 'upstream' are the same point: the lane has no axis")
        return self

    @property
    def observed_m(self) -> float:
        return self.length_m or math.dist(self.stop, self.upstream)


class FlowConfig(_Strict):
    """The `[flow]` section of a site configuration."""

    window_s: float = Field(default=300.0, gt=0)
    stopped_speed_kmh: float = Field(default=5.0, ge=0)
    detector_from_m: float = Field(default=0.0, ge=0)  # virtual detector, m upstream
    detector_to_m: float = Field(default=10.0, gt=0)
    queue_gap_m: float = Field(default=25.0, gt=0)
    free_flow_speed_kmh: float = Field(default=50.0, gt=0)
    pcu: PcuFactors = Field(default_factory=PcuFactors)
    tpi_breaks: tuple[float, float, float, float, float, float] = tuple(_core.FLOW_TPI_TTI_BREAKS)  # type: ignore[assignment]
    lanes: list[LaneSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> FlowConfig:
        ids = [ln.id for ln in self.lanes]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate lane ids {dup}")
        if self.detector_to_m <= self.detector_from_m:
            raise ValueError("detector_to_m must be greater than detector_from_m")
        return self

    @classmethod
    def from_site(cls, site: Any) -> FlowConfig:
        """Validate `site.flow` (a SiteConfig's raw `[flow]` table); errors name the file."""
        return validate_section(cls, site.flow, getattr(site, "source", "<memory>"), "flow")


class FlowEstimator:
    """Accumulates crossings and tracked positions; aggregates them on demand."""

    def __init__(self, config: FlowConfig | Mapping[str, Any] | None = None) -> None:
        if config is None:
            config = FlowConfig()
        elif not isinstance(config, FlowConfig):
            config = FlowConfig.model_validate(config)
        self.config = config
        self.lanes = list(config.lanes)
        self._lane_idx = {ln.id: i for i, ln in enumerate(self.lanes)}
        self._approaches = sorted({ln.approach for ln in self.lanes})
        self._app_of_lane = np.array(
            [self._approaches.index(ln.approach) for ln in self.lanes], np.uint32
        )
        self._line_lane: dict[tuple[str | None, str], list[int]] = {}
        for i, ln in enumerate(self.lanes):
            for line in ln.lines:
                self._line_lane.setdefault((ln.camera, line), []).append(i)
        stop = np.array([ln.stop for ln in self.lanes], np.float64).reshape(-1, 2)
        up = np.array([ln.upstream for ln in self.lanes], np.float64).reshape(-1, 2)
        axis = up - stop
        self._stop = stop
        self._axis = axis / np.maximum(np.linalg.norm(axis, axis=1, keepdims=True), 1e-12)
        self._half_w = np.array([ln.width_m / 2 for ln in self.lanes])
        self._obs_m = np.array([ln.observed_m for ln in self.lanes])
        self._lane_cam = [ln.camera for ln in self.lanes]
        self._cum = np.zeros(len(self.lanes), np.int64)  # crossings per lane, never pruned
        # crossings, columnar
        self._c_ts: list[float] = []
        self._c_lane: list[int] = []
        self._c_speed: list[float] = []
        self._c_pcu: list[float] = []
        # presence samples per camera: frames and samples
        self._frames: dict[str, list[float]] = {}
        # per camera: frame index, lane index, distance to the stop line m, speed m/s,
        # length m, and for Edie's space-mean speed the metres advanced towards the line
        # since the track's previous observation and the seconds since (0 when none)
        self._s: dict[str, tuple[list, list, list, list, list, list, list]] = {}
        self._last: dict[str, tuple[float, np.ndarray, np.ndarray, np.ndarray]] = {}
        # per camera: track id -> (last seen ts, lane index, distance m, smoothed speed m/s)
        self._mem: dict[str, dict[int, tuple[float, int, float, float, list]]] = {}

    @classmethod
    def from_site(cls, site: Any) -> FlowEstimator:
        return cls(FlowConfig.from_site(site))

    # ---- input ---------------------------------------------------------------------------
    def _lanes_of_crossing(self, c: LineCrossing) -> list[int]:
        if c.lane is not None and c.lane in self._lane_idx:
            return [self._lane_idx[c.lane]]
        out = self._line_lane.get((c.camera_id, c.line_id)) or self._line_lane.get(
            (None, c.line_id), []
        )
        return [i for i in out if self.lanes[i].direction in (None, c.direction)]

    def add_crossings(self, crossings: Iterable[LineCrossing]) -> int:
        """Add stop-line crossings; returns how many matched a configured lane."""
        n = 0
        for c in crossings:
            if not math.isfinite(c.ts):
                raise InputError(f"crossing {c.key}: timestamp {c.ts!r} is not finite")
            sp = c.speed_kmh
            if sp is not None and (not math.isfinite(sp) or sp < 0):
                raise InputError(f"crossing {c.key}: speed_kmh {sp!r} must be finite and >= 0")
            for i in self._lanes_of_crossing(c):
                self._c_ts.append(c.ts)
                self._c_lane.append(i)
                self._c_speed.append(float("nan") if sp is None else float(sp))
                self._c_pcu.append(self.config.pcu.of(c.cls))
                self._cum[i] += 1
                n += 1
        return n

    def add_tracks(
        self,
        camera_id: str,
        ts: float,
        world_xy: np.ndarray,
        speed_mps: np.ndarray,
        classes: Sequence[str] | None = None,
        track_ids: Sequence[int] | None = None,
    ) -> None:
        """One analysed frame of `camera_id`: confirmed tracks' road-plane positions (m,
        (N,2)) and speeds (m/s; NaN for a track too new to have one, read as 0 by the
        aggregates and `current()`). Frames with no vehicle must still be added (occupancy).
        With `track_ids`, each track's last lane position and along-lane speed are kept for
        `current_tracks` (which bridges missed detections)."""
        if not math.isfinite(ts):
            raise InputError(f"camera {camera_id!r}: frame timestamp {ts!r} is not finite")
        xy = np.asarray(world_xy, np.float64).reshape(-1, 2)
        sp = np.asarray(speed_mps, np.float64).reshape(-1)
        if len(sp) != len(xy):
            raise InputError(f"camera {camera_id!r}: {len(xy)} positions but {len(sp)} speeds")
        if not np.isfinite(xy).all() or np.isinf(sp).any() or (sp < 0).any():
            raise InputError(
                f"camera {camera_id!r}: positions must be finite, speeds >= 0 or NaN (unknown)"
            )
        ids = None if track_ids is None else np.asarray(track_ids, np.int64).reshape(-1)
        if ids is not None and len(ids) != len(xy):
            raise InputError(f"camera {camera_id!r}: {len(xy)} positions but {len(ids)} ids")
        sp_raw, sp = sp, np.nan_to_num(sp, nan=0.0)
        frames = self._frames.setdefault(camera_id, [])
        if frames and ts < frames[-1]:
            from engine.errors import TimeOrderError

            raise TimeOrderError(f"camera {camera_id!r}: frame at {ts} after {frames[-1]}")
        f = len(frames)
        frames.append(float(ts))
        lens = np.array(
            [VEHICLE_LENGTH_M.get(c, 4.7) for c in classes]
            if classes is not None
            else [4.7] * len(xy)
        )
        cams = [i for i, c in enumerate(self._lane_cam) if c in (None, camera_id)]
        if not cams or len(xy) == 0:
            self._last[camera_id] = (ts, np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
            if track_ids is not None:
                self._remember(camera_id, ts, [], np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
            return
        ci = np.array(cams)
        rel = xy[:, None, :] - self._stop[None, ci, :]  # (N, L, 2)
        ax = self._axis[ci]
        dist = (rel * ax[None]).sum(-1)
        lat = np.abs(rel[..., 0] * ax[None, :, 1] - rel[..., 1] * ax[None, :, 0])
        ok = (
            (lat <= self._half_w[ci][None]) & (dist >= -5.0) & (dist <= self._obs_m[ci][None] + 5.0)
        )
        # a vehicle belongs to the lane whose axis it is closest to
        lat = np.where(ok, lat, np.inf)
        best = lat.argmin(1)
        has = np.isfinite(lat[np.arange(len(xy)), best])
        vi = np.nonzero(has)[0]
        lanes = ci[best[vi]]
        d = dist[vi, best[vi]]
        spv = sp[vi]
        adv = dt = [0.0] * len(vi)
        if ids is not None:
            v_along, adv, dt = self._remember(camera_id, ts, ids[vi].tolist(), lanes, d, sp_raw[vi])
            # queues judge "halted" on the along-lane speed, as the controllers' view does
            spv = np.where(np.isfinite(v_along), v_along, spv)
        s = self._s.setdefault(camera_id, ([], [], [], [], [], [], []))
        s[0].extend([f] * len(vi))
        s[1].extend(lanes.tolist())
        s[2].extend(d.tolist())
        s[3].extend(spv.tolist())
        s[4].extend(lens[vi].tolist())
        s[5].extend(adv)
        s[6].extend(dt)
        self._last[camera_id] = (ts, lanes, d, sp[vi])

    _MEM_KEEP_S = 5.0
    # Queue speeds: the along-lane velocity fitted to a track's distances to the stop line
    # over this window. The tracker's speed is the magnitude of a 2-D fit, so the box jitter
    # of a halted far-away vehicle (lateral as well as along the lane) always reads as some
    # km/h; along the lane it averages out, and a vehicle never moves away from the line.
    QUEUE_SPEED_WINDOW_S = 1.5

    def _remember(
        self,
        camera_id: str,
        ts: float,
        ids: list[int],
        lanes: np.ndarray,
        d: np.ndarray,
        sp: np.ndarray,
    ) -> tuple[np.ndarray, list[float], list[float]]:
        """Updates each track's memory; per row: its along-lane speed (m/s, NaN while
        unknown), the metres it advanced towards the stop line since its previous
        observation and the seconds since (both 0 for a new track)."""
        mem = self._mem.setdefault(camera_id, {})
        v_out: list[float] = []
        adv: list[float] = []
        dts: list[float] = []
        for tid, ln, dd, v in zip(ids, lanes.tolist(), d.tolist(), sp.tolist(), strict=True):
            w = self.QUEUE_SPEED_WINDOW_S
            old = mem.get(tid)
            fresh = old is not None and ts - old[0] < 1.0
            hist = [h for h in old[4] if ts - h[0] <= w + 1e-9] if fresh else []
            hist.append((ts, dd))
            slope = _slope(hist) if hist[-1][0] - hist[0][0] >= 0.4 * w else None
            if slope is not None:
                v = max(0.0, -slope)  # towards the stop line
            elif fresh and math.isfinite(old[3]) and math.isfinite(v):
                # too short a history: the tracker's speed, smoothed over frames (box jitter
                # of a halted far-away vehicle reads as a few km/h on a single frame pair)
                v = 0.7 * old[3] + 0.3 * v
            mem[tid] = (ts, ln, dd, v, hist)
            v_out.append(v)
            if fresh and ts > old[0]:
                adv.append(old[2] - dd)
                dts.append(ts - old[0])
            else:
                adv.append(0.0)
                dts.append(0.0)
        for tid in [k for k, x in mem.items() if ts - x[0] > self._MEM_KEEP_S]:
            del mem[tid]
        return np.asarray(v_out, np.float64), adv, dts

    def current_tracks(self, hold_s: float = 0.6) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """lane id -> (distances m, along-lane speeds m/s, NaN while a track is too new to
        have one) of the tracks each camera saw in its last frame or within `hold_s` before
        it (a vehicle missed by the detector for a frame or two is still there). Needs `track_ids` in `add_tracks` /
        `add_observations`; cameras without them fall back to `current()`."""
        rows: dict[int, tuple[list[float], list[float]]] = {}
        for cam, (ts, lanes, d, sp) in self._last.items():
            mem = self._mem.get(cam)
            if mem is None:
                for i, dd, v in zip(lanes.tolist(), d.tolist(), sp.tolist(), strict=True):
                    r = rows.setdefault(i, ([], []))
                    r[0].append(dd)
                    r[1].append(v)
                continue
            for t_seen, i, dd, v, _ in mem.values():
                if ts - t_seen <= hold_s + 1e-9:
                    r = rows.setdefault(i, ([], []))
                    r[0].append(dd)
                    r[1].append(v)
        return {
            self.lanes[i].id: (np.asarray(a, np.float64), np.asarray(b, np.float64))
            for i, (a, b) in rows.items()
        }

    def held_tracks(
        self, camera_id: str, hold_s: float = 0.6
    ) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
        """One camera's tracks as `current_tracks` holds them: (track ids, lane ids,
        distances to the stop line m, along-lane speeds m/s or NaN). Empty without
        `track_ids`."""
        mem = self._mem.get(camera_id)
        last = self._last.get(camera_id)
        if not mem or last is None:
            return np.zeros(0, np.int64), [], np.zeros(0), np.zeros(0)
        ts = last[0]
        rows = [(k, x) for k, x in mem.items() if ts - x[0] <= hold_s + 1e-9]
        return (
            np.array([k for k, _ in rows], np.int64),
            [self.lanes[x[1]].id for _, x in rows],
            np.array([x[2] for _, x in rows], np.float64),
            np.array([x[3] for _, x in rows], np.float64),
        )

    def add_observations(
        self, camera_id: str, ts: float, observations: Sequence[Observation]
    ) -> None:
        """One frame's observations (those with road-plane positions and speeds)."""
        obs = [o for o in observations if o.world_x is not None and o.world_y is not None]
        xy = np.array([[o.world_x, o.world_y] for o in obs], np.float64).reshape(-1, 2)
        sp = np.array(
            [math.nan if o.speed_kmh is None else o.speed_kmh / 3.6 for o in obs], np.float64
        )
        self.add_tracks(camera_id, ts, xy, sp, [o.cls for o in obs], [o.track_id for o in obs])

    def add_frame(self, result: FrameResult) -> None:
        """A pipeline FrameResult: its crossings and its observations."""
        self.add_crossings(result.crossings)
        self.add_observations(result.camera_id, result.ts, result.observations)

    # ---- current state (for controllers) -------------------------------------------------
    def current(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """lane id -> (distances to the stop line m, speeds m/s) in each camera's last frame."""
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for _, lanes, d, sp in self._last.values():
            for i in np.unique(lanes):
                m = lanes == i
                out[self.lanes[int(i)].id] = (d[m], sp[m])
        return out

    def counts(self) -> dict[str, int]:
        """Cumulative stop-line crossings per lane since the start (`prune` keeps them)."""
        return {ln.id: int(self._cum[i]) for i, ln in enumerate(self.lanes)}

    def prune(self, before_ts: float) -> None:
        """Forget crossings and frames older than `before_ts` (bounded memory); `counts()`
        totals are kept."""
        keep = [i for i, t in enumerate(self._c_ts) if t >= before_ts]
        self._c_ts = [self._c_ts[i] for i in keep]
        self._c_lane = [self._c_lane[i] for i in keep]
        self._c_speed = [self._c_speed[i] for i in keep]
        self._c_pcu = [self._c_pcu[i] for i in keep]
        for cam, frames in self._frames.items():
            k = int(np.searchsorted(frames, before_ts))
            if k == 0:
                continue
            self._frames[cam] = frames[k:]
            s = self._s.get(cam)
            if s:
                j = int(np.searchsorted(s[0], k))
                self._s[cam] = ([f - k for f in s[0][j:]], *(c[j:] for c in s[1:]))

    # ---- aggregation ---------------------------------------------------------------------
    def _edges(self, window_s: float | None, start: float | None, end: float | None) -> np.ndarray:
        w = float(window_s or self.config.window_s)
        if not (math.isfinite(w) and w > 0):
            raise InputError(f"window_s must be > 0, got {window_s!r}")
        times = self._c_ts + [t for f in self._frames.values() for t in (f[:1] + f[-1:])]
        if start is None:
            start = math.floor(min(times) / w) * w if times else 0.0
        if end is None:
            end = (max(times) if times else start) + 1e-9
        n = max(1, math.ceil((end - start) / w - 1e-9))
        return start + w * np.arange(n + 1, dtype=np.float64)

    def _aggregate(
        self,
        edges: np.ndarray,
        group_of_lane: np.ndarray,
        names: list[str],
        signal: Mapping[str, tuple[float, float]] | None,
        kind: str,
    ) -> pl.DataFrame:
        edges = np.ascontiguousarray(edges, np.float64)
        cr = _core.flow_aggregate_crossings(
            np.asarray(self._c_ts, np.float64),
            np.asarray(self._c_lane, np.uint32),
            np.asarray(self._c_speed, np.float64),
            np.asarray(self._c_pcu, np.float64),
            group_of_lane,
            edges,
        )
        ng, nw = len(names), len(edges) - 1
        cols: dict[str, Any] = {
            kind: np.repeat(np.array(names, dtype=object), nw).tolist(),
            "window_start": np.tile(edges[:-1], ng),
            "window_end": np.tile(edges[1:], ng),
        }
        for k in (
            "count",
            "volume_vph",
            "pcu_vph",
            "time_mean_speed_kmh",
            "space_mean_speed_kmh",
            "headway_mean_s",
            "headway_min_s",
        ):
            a = np.asarray(cr[k])
            cols[k] = np.pad(
                a, (0, ng * nw - len(a)), constant_values=np.nan if a.dtype.kind == "f" else 0
            )
        pres = self._presence(edges, group_of_lane, ng)
        cols.update(pres)
        # degree of saturation, delay, LOS
        sat = np.zeros(ng)
        for i, ln in enumerate(self.lanes):
            sat[group_of_lane[i]] += ln.saturation_flow_pcu_h
        sat_r = np.repeat(sat, nw)
        green = np.full(ng * nw, np.nan)
        cycle = np.full(ng * nw, np.nan)
        for gi, name in enumerate(names):
            if signal and name in signal:
                g, c = signal[name]
                if not (math.isfinite(g) and math.isfinite(c) and 0 < g <= c):
                    raise InputError(
                        f"{kind} {name!r}: signal timing green={g}, cycle={c} must satisfy 0 < green <= cycle"
                    )
                green[gi * nw : (gi + 1) * nw] = g
                cycle[gi * nw : (gi + 1) * nw] = c
        pcu_vph = cols["pcu_vph"]
        gc = np.where(np.isfinite(green), green / cycle, 1.0)
        cols["capacity_pcu_h"] = sat_r * gc
        cols["degree_of_saturation"] = pcu_vph / np.maximum(sat_r * gc, 1e-9)
        delay = np.full(ng * nw, np.nan)
        los: list[str | None] = [None] * (ng * nw)
        m = np.isfinite(green)
        if m.any():
            perf = _core.flow_signal_performance(
                np.ascontiguousarray(pcu_vph[m]),
                np.ascontiguousarray(sat_r[m]),
                np.ascontiguousarray(green[m]),
                np.ascontiguousarray(cycle[m]),
            )
            delay[m] = perf["control_delay_s"]
            for j, r in enumerate(np.nonzero(m)[0]):
                los[r] = perf["los"][j]
        cols["control_delay_s"] = delay
        cols["los"] = los
        # travel-time index from the segment space-mean speed, TPI 0-10
        v = np.asarray(cols["segment_speed_kmh"], np.float64)
        tti = np.where(np.isfinite(v), self.config.free_flow_speed_kmh / np.maximum(v, 1.0), np.nan)
        tpi = np.full_like(tti, np.nan)
        mm = np.isfinite(tti)
        if mm.any():
            tpi[mm] = _core.flow_tpi(np.ascontiguousarray(tti[mm]), list(self.config.tpi_breaks))
        cols["travel_time_index"] = tti
        cols["tpi"] = tpi
        return pl.DataFrame(cols).with_columns(pl.col("count").cast(pl.UInt32))

    def _presence(
        self, edges: np.ndarray, group_of_lane: np.ndarray, ng: int
    ) -> dict[str, np.ndarray]:
        nw = len(edges) - 1
        keys = (
            "occupancy",
            "density_veh_km",
            "segment_speed_kmh",
            "queue_mean_veh",
            "queue_max_veh",
            "queue_mean_m",
            "queue_max_m",
        )
        acc: dict[str, np.ndarray] = {k: np.full(ng * nw, np.nan) for k in keys}
        wsum = np.zeros(ng * nw)
        # Edie's space-mean speed (total distance travelled / total time spent in the
        # segment) where tracks are known: unbiased, unlike a mean of per-vehicle speeds,
        # each of which reads a halted car's box jitter as some motion. The core sums it
        # per camera; the sums add up over cameras.
        e_adv = np.zeros(ng * nw)
        e_dt = np.zeros(ng * nw)
        for cam, frames in self._frames.items():
            lane_ids = [i for i, c in enumerate(self._lane_cam) if c in (None, cam)]
            if not lane_ids or not frames:
                continue
            s = self._s.get(cam, ([], [], [], [], [], [], []))
            remap = {li: k for k, li in enumerate(lane_ids)}
            lanes = np.array([remap[x] for x in s[1]], np.uint32)
            cfg = self.config
            p = _core.flow_aggregate_presence(
                np.asarray(frames, np.float64),
                np.asarray(s[0], np.uint32),
                lanes,
                np.asarray(s[2], np.float64),
                np.asarray(s[3], np.float64),
                np.asarray(s[4], np.float64),
                np.ascontiguousarray(self._obs_m[lane_ids]),
                np.ascontiguousarray(group_of_lane[lane_ids], np.uint32),
                edges,
                detector_from_m=cfg.detector_from_m,
                detector_to_m=cfg.detector_to_m,
                stopped_mps=cfg.stopped_speed_kmh / 3.6,
                queue_gap_m=cfg.queue_gap_m,
                advance_m=np.asarray(s[5], np.float64),
                dt_s=np.asarray(s[6], np.float64),
            )
            n = len(p["occupancy"])
            e_adv[:n] += np.asarray(p["edie_advance_m"], np.float64)
            e_dt[:n] += np.asarray(p["edie_time_s"], np.float64)
            nl = np.bincount(group_of_lane[lane_ids], minlength=ng).astype(float)[: n // nw]
            w = np.repeat(nl, nw)  # lanes of this camera in each group
            for k in keys:
                a = np.asarray(p[k], np.float64)
                cur = acc[k][:n]
                if k.startswith("queue"):  # queues add up over cameras (different lanes)
                    acc[k][:n] = np.where(
                        np.isnan(cur),
                        a,
                        np.nansum([cur, a], axis=0)
                        if k in ("queue_mean_veh", "queue_max_veh")
                        else np.fmax(cur, a),
                    )
                else:  # lane-weighted means
                    acc[k][:n] = np.where(
                        np.isnan(cur),
                        a * (w > 0),
                        cur * wsum[:n] / np.maximum(wsum[:n] + w, 1e-9)
                        + np.nan_to_num(a) * w / np.maximum(wsum[:n] + w, 1e-9),
                    )
            wsum[:n] += w
        ok = e_dt > 0
        acc["segment_speed_kmh"][ok] = np.maximum(e_adv[ok] / e_dt[ok], 0.0) * 3.6
        return acc

    def lane_flows(
        self,
        window_s: float | None = None,
        *,
        start: float | None = None,
        end: float | None = None,
        signal: Mapping[str, tuple[float, float]] | None = None,
    ) -> pl.DataFrame:
        """One row per (lane, window). `signal` maps lane id -> (effective green s, cycle s)
        to get capacity-based degree of saturation, control delay and LOS."""
        edges = self._edges(window_s, start, end)
        gol = np.arange(len(self.lanes), dtype=np.uint32)
        return self._aggregate(edges, gol, [ln.id for ln in self.lanes], signal, "lane")

    def approach_flows(
        self,
        window_s: float | None = None,
        *,
        start: float | None = None,
        end: float | None = None,
        signal: Mapping[str, tuple[float, float]] | None = None,
    ) -> pl.DataFrame:
        """One row per (approach, window); volumes add up over the approach's lanes."""
        edges = self._edges(window_s, start, end)
        return self._aggregate(edges, self._app_of_lane, self._approaches, signal, "approach")

    def cycle_flows(
        self,
        cycle_starts: Sequence[float],
        *,
        by: str = "lane",
        signal: Mapping[str, tuple[float, float]] | None = None,
    ) -> pl.DataFrame:
        """One row per (lane or approach, signal cycle); `cycle_starts` are the start times
        of successive cycles (the last value closes the last cycle)."""
        edges = np.asarray(cycle_starts, np.float64)
        if by == "lane":
            return self._aggregate(
                edges,
                np.arange(len(self.lanes), dtype=np.uint32),
                [ln.id for ln in self.lanes],
                signal,
                "lane",
            )
        if by == "approach":
            return self._aggregate(edges, self._app_of_lane, self._approaches, signal, "approach")
        raise InputError(f"cycle_flows: by must be 'lane' or 'approach', got {by!r}")


def _slope(hist: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (t, x) samples; None with fewer than 3."""
    if len(hist) < 3:
        return None
    t = np.array([h[0] for h in hist])
    x = np.array([h[1] for h in hist])
    t = t - t.mean()
    den = float((t * t).sum())
    return float((t * (x - x.mean())).sum() / den) if den > 0 else None
