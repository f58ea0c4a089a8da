"""Synthetic traffic scenes with exact ground truth, for tracker/counter tests and benches.

Road users move on a road plane (metres) along straight lanes, lane changes and turns, at
varying speeds, some stopping with their ground point right on a counting line; their
footprints are projected through a homography into image boxes, and a detector-like noise
model turns those into per-frame `Detections`: box jitter, missed detections, occlusion
(static occluder and nearer objects covering farther ones), low-score detections, class
flips and false positives. Frame times follow the configured fps (optionally irregular).

Ground truth is exact and independent of the tracker: which object each detection came
from, every visible object's noise-free box, its road-plane position and true speed, and
every true line crossing (the noise-free ground point's path through the line segment).

    >>> seq = street_scene(SynthConfig(duration_s=5.0, seed=1))
    >>> len(seq.frames) >= int(5.0 * seq.fps)
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine import _core
from engine.config import CameraConfig
from engine.detections import Detections, RoadClass

# (length, width, height) metres per class
DIMS: dict[RoadClass, tuple[float, float, float]] = {
    RoadClass.PERSON: (0.5, 0.5, 1.7),
    RoadClass.BICYCLE: (1.8, 0.6, 1.6),
    RoadClass.CAR: (4.5, 1.8, 1.5),
    RoadClass.MOTORCYCLE: (2.0, 0.8, 1.4),
    RoadClass.BUS: (12.0, 2.5, 3.2),
    RoadClass.TRUCK: (9.0, 2.5, 3.4),
}


@dataclass
class SynthConfig:
    fps: float = 10.0
    duration_s: float = 30.0
    seed: int = 0
    # detector noise
    jitter: float = 0.03  # box-edge noise std, as a fraction of box width/height
    miss_rate: float = 0.05  # independent missed detections
    low_score_rate: float = 0.1  # detections reported with a low score (0.15-0.5)
    fp_per_frame: float = 0.3  # mean false positives per frame
    class_flip_rate: float = 0.03  # car <-> truck confusion
    occlusion: bool = True  # nearer objects hide farther ones; static occluder on a line
    irregular: float = 0.0  # frame interval jitter as a fraction of 1/fps
    # traffic
    vehicles_per_min: float = 40.0  # arrivals per direction
    pedestrians_per_min: float = 6.0
    stop_on_line_rate: float = 0.15  # share of inbound vehicles that stop ON the line
    turn_rate: float = 0.15  # share of inbound vehicles that turn in from the side street
    lane_change_rate: float = 0.15


@dataclass
class SynthFrame:
    seq: int
    ts: float
    dets: Detections
    det_gt_ids: np.ndarray  # int64 (N,): object id per detection, -1 = false positive
    gt_ids: np.ndarray  # int64 (M,): objects visible in this frame
    gt_xyxy: np.ndarray  # float32 (M, 4): noise-free boxes
    gt_world: np.ndarray  # float64 (M, 2): ground point (metres)
    gt_speed_kmh: np.ndarray  # float64 (M,)


@dataclass(frozen=True)
class GtCrossing:
    object_id: int
    line_id: str
    direction: str  # "in" | "out"
    cls: str
    ts: float


@dataclass
class SynthSequence:
    camera: CameraConfig
    fps: float
    frames: list[SynthFrame]
    crossings: list[GtCrossing]
    object_class: dict[int, RoadClass]
    constant_speed: set[int] = field(default_factory=set)  # objects never changing speed
    image_size: tuple[int, int] = (1280, 720)

    def true_counts(self, by_class: bool = True) -> dict[tuple[str, ...], int]:
        out: dict[tuple[str, ...], int] = {}
        for c in self.crossings:
            k = (c.line_id, c.direction, c.cls) if by_class else (c.line_id, c.direction)
            out[k] = out.get(k, 0) + 1
        return out


# ---- trajectories ----------------------------------------------------------------------


@dataclass
class _Obj:
    oid: int
    cls: RoadClass
    path: np.ndarray  # (P, 2) polyline, metres
    t0: float
    speed: float  # cruise speed m/s
    stop_s: float | None = None  # arc length where it stops (None = never)
    stop_for: float = 0.0
    accel: float = 2.5
    dims: tuple[float, float, float] = (4.5, 1.8, 1.5)
    _cum: np.ndarray | None = None

    def cum(self) -> np.ndarray:
        if self._cum is None:
            seg = np.linalg.norm(np.diff(self.path, axis=0), axis=1)
            self._cum = np.concatenate([[0.0], np.cumsum(seg)])
        return self._cum

    @property
    def length(self) -> float:
        return float(self.cum()[-1])

    def s_at(self, t: np.ndarray) -> np.ndarray:
        """Arc length travelled at times t (NaN before start / after the path's end)."""
        tau = np.asarray(t, np.float64) - self.t0
        v, a = self.speed, self.accel
        if self.stop_s is None:
            s = v * tau
        else:
            sb = max(self.stop_s - v * v / (2 * a), 0.0)
            tb = sb / v
            td = v / a  # decel duration
            t_stop = tb + td
            t_go = t_stop + self.stop_for
            s = np.where(
                tau < tb,
                v * tau,
                np.where(
                    tau < t_stop,
                    sb + v * (tau - tb) - 0.5 * a * (tau - tb) ** 2,
                    np.where(
                        tau < t_go,
                        self.stop_s,
                        np.where(
                            tau < t_go + td,
                            self.stop_s + 0.5 * a * (tau - t_go) ** 2,
                            self.stop_s + v * td / 2 + v * (tau - t_go - td),
                        ),
                    ),
                ),
            )
        s = np.where((tau < 0) | (s > self.length), np.nan, s)
        return s

    def speed_at(self, t: np.ndarray) -> np.ndarray:
        dt = 1e-3
        return (self.s_at(t + dt) - self.s_at(t - dt)) / (2 * dt)

    def pose(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        cum = self.cum()
        x = np.interp(s, cum, self.path[:, 0])
        y = np.interp(s, cum, self.path[:, 1])
        seg = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(cum) - 2)
        d = self.path[seg + 1] - self.path[seg]
        n = np.linalg.norm(d, axis=1, keepdims=True)
        d = d / np.where(n == 0, 1, n)
        return x, y, d[:, 0], d[:, 1]

    @property
    def end_t(self) -> float:
        # Time at which s reaches the path end (numerically, coarse then fine).
        ts = self.t0 + np.arange(0, 600, 0.05)
        s = self.s_at(ts)
        idx = np.flatnonzero(np.isnan(s) & (ts > self.t0))
        return float(ts[idx[0]]) if len(idx) else float(ts[-1])


def _apply_h(m: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = m[2, 0] * x + m[2, 1] * y + m[2, 2]
    return (m[0, 0] * x + m[0, 1] * y + m[0, 2]) / w, (m[1, 0] * x + m[1, 1] * y + m[1, 2]) / w


def _boxes(
    w2i: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    hx: np.ndarray,
    hy: np.ndarray,
    dims: np.ndarray,
) -> np.ndarray:
    """Noise-free image boxes (K, 4) from footprints (centre, heading, L/W/H)."""
    L, W, H = dims[:, 0], dims[:, 1], dims[:, 2]
    nx, ny = -hy, hx
    us, vs = [], []
    for a, b in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        cx = x + a * L / 2 * hx + b * W / 2 * nx
        cy = y + a * L / 2 * hy + b * W / 2 * ny
        u, v = _apply_h(w2i, cx, cy)
        us.append(u)
        vs.append(v)
    U, V = np.stack(us), np.stack(vs)
    x1, x2 = U.min(0), U.max(0)
    y2 = V.max(0)
    # Height: metres × lateral pixels-per-metre at the nearest footprint point.
    k = V.argmax(0)
    idx = np.arange(len(x))
    corners_x = np.stack(
        [x + a * L / 2 * hx + b * W / 2 * nx for a, b in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
    )
    corners_y = np.stack(
        [y + a * L / 2 * hy + b * W / 2 * ny for a, b in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
    )
    gx, gy = corners_x[k, idx], corners_y[k, idx]
    pa = _apply_h(w2i, gx - 0.5, gy)
    pb = _apply_h(w2i, gx + 0.5, gy)
    ppm = np.hypot(pb[0] - pa[0], pb[1] - pa[1])
    y1 = V.min(0) - H * ppm * 0.9
    return np.stack([x1, y1, x2, y2], axis=1)


# ---- scenes ----------------------------------------------------------------------------


@dataclass
class _Scene:
    camera: CameraConfig
    w2i: np.ndarray
    image_size: tuple[int, int]
    objects: list[_Obj]
    occluders: list[tuple[float, float, float, float]]  # image rectangles
    drain: bool = True  # render until every object has left


def _street(cfg: SynthConfig, rng: np.random.Generator) -> _Scene:
    img_w, img_h = 1280, 720
    # Image trapezoid ↔ road rectangle x ∈ [-15, 15] m, y ∈ [8, 90] m from the camera.
    image = [(0.0, 720.0), (1280.0, 720.0), (790.0, 140.0), (490.0, 140.0)]
    world = [(-15.0, 8.0), (15.0, 8.0), (15.0, 90.0), (-15.0, 90.0)]
    h = _core.Homography.from_points(np.array(image), np.array(world))
    w2i = np.linalg.inv(h.matrix)

    def img(p: tuple[float, float]) -> tuple[float, float]:
        u, v = _apply_h(w2i, np.array([p[0]]), np.array([p[1]]))
        return float(u[0]), float(v[0])

    lines = [
        {"id": "inbound", "a": img((-8.0, 30.0)), "b": img((0.0, 30.0)), "lane": "inbound"},
        {"id": "outbound", "a": img((0.0, 45.0)), "b": img((8.0, 45.0)), "lane": "outbound"},
    ]
    crosswalk = [img((-9.0, 14.0)), img((9.0, 14.0)), img((9.0, 17.0)), img((-9.0, 17.0))]
    zones = [
        {"id": "crosswalk", "polygon": crosswalk, "kind": "crowd"},
        {
            "id": "inbound_queue",
            "polygon": [img((-7.0, 22.0)), img((0.0, 22.0)), img((0.0, 40.0)), img((-7.0, 40.0))],
            "kind": "stop_line_queue",
            "lane": "inbound",
        },
    ]
    camera = CameraConfig.model_validate(
        {
            "fps": cfg.fps,
            "homography": {"image": image, "world": world},
            "lines": lines,
            "zones": zones,
        }
    )
    objs: list[_Obj] = []
    oid = 0
    lanes_in = [-5.25, -1.75]
    lanes_out = [1.75, 5.25]

    def arrivals(rate_per_min: float) -> list[float]:
        ts: list[float] = []
        # The scene starts empty and every object enters at an image edge, far from the
        # lines, so no true crossing is cut by the start of the sequence.
        t = 0.0
        if rate_per_min <= 0:
            return ts
        while True:
            t += rng.exponential(60.0 / rate_per_min)
            if t > cfg.duration_s:
                return ts
            ts.append(t)

    def vehicle_class() -> RoadClass:
        r = rng.random()
        if r < 0.75:
            return RoadClass.CAR
        if r < 0.85:
            return RoadClass.TRUCK
        if r < 0.92:
            return RoadClass.BUS
        return RoadClass.MOTORCYCLE

    # Per lane: (start time, end time, free-after time) of the last vehicle, so vehicles
    # never drive through each other (no overtaking within a lane, none through a stopper).
    last: dict[float, tuple[float, float, float]] = {}
    for direction, lanes in (("in", lanes_in), ("out", lanes_out)):
        for t0 in arrivals(cfg.vehicles_per_min):
            lane = float(rng.choice(lanes))
            cls = vehicle_class()
            dims = DIMS[cls]
            speed = rng.uniform(8.0, 16.0)
            stop_s = None
            stop_for = 0.0
            used = [lane]
            if direction == "in":
                r = rng.random()
                if r < cfg.turn_rate:
                    # From the side street: heading +x, arc onto the lane, then straight.
                    th = np.linspace(0, math.pi / 2, 20)
                    rad = 8.0
                    cx, cy = lane - rad, 60.0
                    arc = np.stack([cx + rad * np.sin(th), cy + rad * np.cos(th)], 1)
                    path = np.vstack([[[-30.0, 68.0]], arc, [[lane, 2.0]]])
                    speed = rng.uniform(6.0, 10.0)
                elif r < cfg.turn_rate + cfg.lane_change_rate:
                    other = lanes_in[1] if lane == lanes_in[0] else lanes_in[0]
                    ys = np.linspace(95, 2, 60)
                    frac = 1 / (1 + np.exp(-(ys - 55) / 4))  # S-curve near y = 55
                    xs = other + (lane - other) * frac
                    path = np.stack([xs, ys], 1)
                    used.append(other)
                else:
                    path = np.array([[lane, 95.0], [lane, 2.0]])
                straight_right = r >= cfg.turn_rate + cfg.lane_change_rate and lane == lanes_in[1]
                if straight_right and rng.random() < cfg.stop_on_line_rate * 2:
                    # Stop with the near footprint edge (the box's ground point) on the line.
                    cum = np.concatenate(
                        [[0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))]
                    )
                    s_line = float(np.interp(-(30.0 + dims[0] / 2), -path[:, 1], cum))
                    stop_s = s_line
                    stop_for = rng.uniform(1.5, 4.0)
            else:
                path = np.array([[lane, 2.0], [lane, 95.0]])
            plen = float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())
            ok = True
            for ln in used:
                t0l, endl, free = last.get(ln, (-1e9, -1e9, -1e9))
                if t0 - t0l < 2.5 or t0 < free:
                    ok = False
                    break
                delay = (stop_for + speed / 2.5) if stop_s is not None else 0.0
                room = endl + 2.0 - t0 - delay
                if room > 0:
                    speed = min(speed, plen / room)
            if not ok or speed < 5.0:
                continue
            delay = (stop_for + speed / 2.5) if stop_s is not None else 0.0
            free_after = t0 + (stop_s / speed + speed / 2.5 + stop_for + 1.0 if stop_s else 0.0)
            for ln in used:
                last[ln] = (t0, t0 + plen / speed + delay, free_after)
            objs.append(_Obj(oid, cls, path, t0, speed, stop_s, stop_for, dims=dims))
            oid += 1
    for t0 in arrivals(cfg.pedestrians_per_min):
        y = rng.uniform(14.5, 16.5)
        xs = (-12.0, 12.0) if rng.random() < 0.5 else (12.0, -12.0)
        path = np.array([[xs[0], y], [xs[1], y]])
        objs.append(
            _Obj(
                oid, RoadClass.PERSON, path, t0, rng.uniform(1.1, 1.7), dims=DIMS[RoadClass.PERSON]
            )
        )
        oid += 1
    # A static occluder (a tree) over the inbound line in the left lane.
    occ = []
    if cfg.occlusion:
        a = img((-7.0, 28.5))
        b = img((-3.6, 31.5))
        occ.append((min(a[0], b[0]), min(a[1], b[1]) - 10, max(a[0], b[0]), max(a[1], b[1]) + 2))
    return _Scene(camera, w2i, (img_w, img_h), objs, occ)


def _dense(n_objects: int, cfg: SynthConfig, rng: np.random.Generator) -> _Scene:
    """A near-top-down view of a wide multi-lane road holding about `n_objects` vehicles."""
    spacing = 22.0  # mean metres between vehicles in a lane
    road_len = 200.0
    per_lane = road_len / spacing
    n_lanes = max(2, int(math.ceil(n_objects / per_lane)))
    spacing = max(spacing, road_len * n_lanes / max(n_objects, 1))
    width = n_lanes * 3.5
    ppm = 8.0
    img_w, img_h = int(width * ppm) + 40, int(road_len * ppm * 0.8) + 40
    image = [(20.0, img_h - 20.0), (img_w - 20.0, img_h - 20.0), (img_w - 40.0, 20.0), (40.0, 20.0)]
    world = [(0.0, 0.0), (width, 0.0), (width, road_len), (0.0, road_len)]
    h = _core.Homography.from_points(np.array(image), np.array(world))
    w2i = np.linalg.inv(h.matrix)

    def img(p: tuple[float, float]) -> tuple[float, float]:
        u, v = _apply_h(w2i, np.array([p[0]]), np.array([p[1]]))
        return float(u[0]), float(v[0])

    # Split at the lane boundary between the two directions (never through a lane).
    mid = 3.5 * (n_lanes // 2)
    lines = [
        {"id": "up", "a": img((0.0, road_len / 2)), "b": img((mid, road_len / 2))},
        {"id": "down", "a": img((mid, road_len / 2)), "b": img((width, road_len / 2))},
    ]
    camera = CameraConfig.model_validate(
        {"fps": cfg.fps, "homography": {"image": image, "world": world}, "lines": lines}
    )
    objs: list[_Obj] = []
    oid = 0
    for li in range(n_lanes):
        x = 1.75 + 3.5 * li
        up = li < n_lanes // 2
        speed = rng.uniform(8.0, 14.0)
        path = (
            np.array([[x, -10.0], [x, road_len + 10]])
            if up
            else np.array([[x, road_len + 10], [x, -10.0]])
        )
        # Vehicles already spread along the lane at t = 0, plus arrivals later.
        t_span = (road_len + 20) / speed + cfg.duration_s
        t = -(road_len + 20) / speed
        while t < cfg.duration_s:
            cls = RoadClass.CAR if rng.random() < 0.85 else RoadClass.TRUCK
            objs.append(_Obj(oid, cls, path, t, speed, dims=DIMS[cls]))
            oid += 1
            t += spacing / speed * rng.uniform(0.7, 1.3)
        del t_span
    return _Scene(camera, w2i, (img_w, img_h), objs, [], drain=False)


def _render(scene: _Scene, cfg: SynthConfig, rng: np.random.Generator) -> SynthSequence:
    img_w, img_h = scene.image_size
    # Frames continue after the last arrival until everyone has left (capped), so no true
    # crossing is cut by the end of the sequence either.
    drain = 0.0
    if scene.drain:
        drain = min(max((o.end_t for o in scene.objects), default=0.0) - cfg.duration_s, 30.0)
    n_frames = int(round((cfg.duration_s + max(drain, 0.0)) * cfg.fps))
    base = np.arange(n_frames) / cfg.fps
    if cfg.irregular > 0:
        base = base + rng.uniform(-cfg.irregular, cfg.irregular, n_frames) / cfg.fps / 2
        base = np.maximum.accumulate(base)
    objs = scene.objects
    n_obj = len(objs)
    dims = np.array([o.dims for o in objs], np.float64).reshape(-1, 3)
    cls_arr = np.array([int(o.cls) for o in objs], np.int32)
    # Positions for every (object, frame): (O, F) arrays.
    S = np.full((n_obj, n_frames), np.nan)
    V = np.zeros((n_obj, n_frames))
    for i, o in enumerate(objs):
        S[i] = o.s_at(base)
        V[i] = o.speed_at(base)
    X = np.full_like(S, np.nan)
    Y = np.full_like(S, np.nan)
    HX = np.zeros_like(S)
    HY = np.zeros_like(S)
    for i, o in enumerate(objs):
        ok = ~np.isnan(S[i])
        if ok.any():
            x, y, hx, hy = o.pose(S[i, ok])
            X[i, ok], Y[i, ok], HX[i, ok], HY[i, ok] = x, y, hx, hy

    frames: list[SynthFrame] = []
    for f in range(n_frames):
        act = np.flatnonzero(~np.isnan(S[:, f]))
        if len(act):
            boxes = _boxes(scene.w2i, X[act, f], Y[act, f], HX[act, f], HY[act, f], dims[act])
        else:
            boxes = np.zeros((0, 4))
        # Visible: the clipped box keeps at least 60% of its area.
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        cl = boxes.copy()
        cl[:, [0, 2]] = cl[:, [0, 2]].clip(0, img_w)
        cl[:, [1, 3]] = cl[:, [1, 3]].clip(0, img_h)
        carea = (cl[:, 2] - cl[:, 0]).clip(0) * (cl[:, 3] - cl[:, 1]).clip(0)
        vis = carea >= 0.6 * np.maximum(area, 1e-9)
        act, boxes, cl = act[vis], boxes[vis], cl[vis]
        gt_ids = np.array([objs[i].oid for i in act], np.int64)
        # Detection noise.
        detected = rng.random(len(act)) >= cfg.miss_rate
        low = rng.random(len(act)) < cfg.low_score_rate
        if cfg.occlusion and len(act):
            gp = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]], 1)
            for x1, y1, x2, y2 in scene.occluders:
                inside = (gp[:, 0] >= x1) & (gp[:, 0] <= x2) & (gp[:, 1] >= y1) & (gp[:, 1] <= y2)
                detected &= ~inside
            # Nearer objects (larger y2) hide most of farther ones.
            if len(act) < 400:
                order = np.argsort(-boxes[:, 3])
                for a_i, a in enumerate(order):
                    for b in order[a_i + 1 :]:
                        iw = min(boxes[a, 2], boxes[b, 2]) - max(boxes[a, 0], boxes[b, 0])
                        ih = min(boxes[a, 3], boxes[b, 3]) - max(boxes[a, 1], boxes[b, 1])
                        if iw <= 0 or ih <= 0:
                            continue
                        cover = iw * ih / max(area[vis][b], 1e-9)
                        if cover > 0.7:
                            detected[b] = False
                        elif cover > 0.4:
                            low[b] = True
        wh = np.stack([cl[:, 2] - cl[:, 0], cl[:, 3] - cl[:, 1]], 1)
        noise = rng.normal(0, cfg.jitter, (len(act), 4)) * np.concatenate([wh, wh], 1)
        nb = cl + noise
        nb[:, 2] = np.maximum(nb[:, 2], nb[:, 0] + 1)
        nb[:, 3] = np.maximum(nb[:, 3], nb[:, 1] + 1)
        scores = np.where(low, rng.uniform(0.15, 0.5, len(act)), rng.uniform(0.62, 0.95, len(act)))
        cls = cls_arr[act].copy()
        flip = rng.random(len(act)) < cfg.class_flip_rate
        cls[flip & (cls == RoadClass.CAR)] = RoadClass.TRUCK
        cls[flip & (cls == RoadClass.TRUCK)] = RoadClass.CAR
        d_boxes, d_scores, d_cls, d_ids = (
            nb[detected],
            scores[detected],
            cls[detected],
            gt_ids[detected],
        )
        n_fp = rng.poisson(cfg.fp_per_frame)
        if n_fp:
            fw = rng.uniform(20, 90, n_fp)
            fh = rng.uniform(20, 70, n_fp)
            fx = rng.uniform(0, img_w - fw)
            fy = rng.uniform(img_h * 0.2, img_h - fh)
            fp = np.stack([fx, fy, fx + fw, fy + fh], 1)
            d_boxes = np.vstack([d_boxes, fp])
            d_scores = np.concatenate([d_scores, rng.uniform(0.3, 0.75, n_fp)])
            d_cls = np.concatenate([d_cls, rng.choice([0, 2, 5], n_fp).astype(np.int32)])
            d_ids = np.concatenate([d_ids, -np.ones(n_fp, np.int64)])
        # Shuffle detection order (a detector has no idea of identity).
        perm = rng.permutation(len(d_boxes))
        dets = Detections(
            d_boxes[perm].astype(np.float32), d_scores[perm].astype(np.float32), d_cls[perm]
        )
        gt_world = np.stack([X[act, f], Y[act, f]], 1) if len(act) else np.zeros((0, 2))
        frames.append(
            SynthFrame(
                seq=f,
                ts=float(base[f]),
                dets=dets,
                det_gt_ids=d_ids[perm].astype(np.int64),
                gt_ids=gt_ids,
                gt_xyxy=cl.astype(np.float32),
                gt_world=gt_world,
                gt_speed_kmh=np.abs(V[act, f]) * 3.6,
            )
        )

    crossings = _true_crossings(scene, cfg, float(base[-1]) if n_frames else 0.0)
    const = {o.oid for o in objs if o.stop_s is None}
    return SynthSequence(
        camera=scene.camera,
        fps=cfg.fps,
        frames=frames,
        crossings=crossings,
        object_class={o.oid: o.cls for o in objs},
        constant_speed=const,
        image_size=scene.image_size,
    )


def _true_crossings(scene: _Scene, cfg: SynthConfig, t_end: float) -> list[GtCrossing]:
    """Exact crossings of the noise-free ground point (box bottom-centre) through each line
    segment while the object is visible, sampled finely (100 Hz) along its path."""
    img_w, img_h = scene.image_size
    out: list[GtCrossing] = []
    for o in scene.objects:
        t = np.arange(max(o.t0, 0.0), t_end + 1e-9, 0.01)
        if len(t) < 2:
            continue
        s = o.s_at(t)
        ok = ~np.isnan(s)
        if ok.sum() < 2:
            continue
        t, s = t[ok], s[ok]
        x, y, hx, hy = o.pose(s)
        b = _boxes(scene.w2i, x, y, hx, hy, np.tile(o.dims, (len(t), 1)))
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        cl = b.copy()
        cl[:, [0, 2]] = cl[:, [0, 2]].clip(0, img_w)
        cl[:, [1, 3]] = cl[:, [1, 3]].clip(0, img_h)
        carea = (cl[:, 2] - cl[:, 0]).clip(0) * (cl[:, 3] - cl[:, 1]).clip(0)
        vis = carea >= 0.6 * np.maximum(area, 1e-9)
        gx, gy = (cl[:, 0] + cl[:, 2]) / 2, cl[:, 3]
        for ln in scene.camera.lines:
            if ln.classes is not None and o.cls.label not in ln.classes:
                continue
            (ax, ay), (bx, by) = ln.a, ln.b
            cross = (bx - ax) * (gy - ay) - (by - ay) * (gx - ax)
            side = np.where(cross < 0, 1, -1)  # +1 = left of a→b on screen
            idx = np.flatnonzero((side[1:] != side[:-1]) & vis[1:] & vis[:-1])
            # Net crossings through the segment (a stop on the line can wobble: net it).
            net: list[tuple[int, float]] = []
            for k in idx:
                p0, p1 = (gx[k], gy[k]), (gx[k + 1], gy[k + 1])
                if _core.segment_intersection(p0, p1, ln.a, ln.b) is None:
                    continue
                net.append((int(side[k + 1]), float(t[k + 1])))
            if not net:
                continue
            first_side = -net[0][0]
            last_side = net[-1][0]
            if first_side != last_side:
                out.append(
                    GtCrossing(
                        o.oid, ln.id, "in" if last_side == 1 else "out", o.cls.label, net[-1][1]
                    )
                )
    return out


def street_scene(cfg: SynthConfig | None = None) -> SynthSequence:
    """A 4-lane street seen by a pole camera (perspective), two counting lines, a crosswalk
    with pedestrians, turns, lane changes and vehicles stopping on the inbound line."""
    cfg = cfg or SynthConfig()
    rng = np.random.default_rng(cfg.seed)
    scene = _street(cfg, rng)
    return _render(scene, cfg, rng)


def dense_scene(n_objects: int, cfg: SynthConfig | None = None) -> SynthSequence:
    """About `n_objects` vehicles in view at once (a wide multi-lane road, near top-down)."""
    cfg = cfg or SynthConfig(occlusion=False)
    rng = np.random.default_rng(cfg.seed)
    scene = _dense(n_objects, cfg, rng)
    return _render(scene, cfg, rng)


# ---- metrics ---------------------------------------------------------------------------


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = iw.clip(0) * ih.clip(0)
    aa = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    ab = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(aa[:, None] + ab[None, :] - inter, 1e-9)


@dataclass(frozen=True)
class IdMetrics:
    idf1: float
    idp: float
    idr: float
    idtp: int
    n_gt: int
    n_pred: int
    n_gt_ids: int
    n_pred_ids: int


def idf1(
    gt: Iterable[tuple[np.ndarray, np.ndarray]],
    pred: Iterable[tuple[np.ndarray, np.ndarray]],
    iou_threshold: float = 0.5,
) -> IdMetrics:
    """Identity F1 (Ristani et al. 2016), as in py-motmetrics: per frame, a (gt, pred) pair
    can match when IoU ≥ threshold; the global one-to-one id mapping maximising matched
    frames is found with scipy's linear_sum_assignment. `gt` and `pred` yield per-frame
    (ids, xyxy) pairs, frame-aligned."""
    from scipy.optimize import linear_sum_assignment

    pair_g: list[np.ndarray] = []
    pair_p: list[np.ndarray] = []
    n_gt = n_pred = 0
    gid_all: set[int] = set()
    pid_all: set[int] = set()
    for (gi, gb), (pi, pb) in zip(gt, pred, strict=True):
        gi = np.asarray(gi, np.int64)
        pi = np.asarray(pi, np.int64)
        n_gt += len(gi)
        n_pred += len(pi)
        gid_all.update(gi.tolist())
        pid_all.update(pi.tolist())
        if len(gi) == 0 or len(pi) == 0:
            continue
        m = _iou_matrix(np.asarray(gb), np.asarray(pb)) >= iou_threshold
        r, c = np.nonzero(m)
        pair_g.append(gi[r])
        pair_p.append(pi[c])
    if not gid_all or not pid_all:
        return IdMetrics(0.0, 0.0, 0.0, 0, n_gt, n_pred, len(gid_all), len(pid_all))
    gmap = {g: k for k, g in enumerate(sorted(gid_all))}
    pmap = {p: k for k, p in enumerate(sorted(pid_all))}
    counts = np.zeros((len(gmap), len(pmap)), np.int64)
    if pair_g:
        g = np.concatenate(pair_g)
        p = np.concatenate(pair_p)
        gk = np.fromiter((gmap[x] for x in g.tolist()), np.int64, len(g))
        pk = np.fromiter((pmap[x] for x in p.tolist()), np.int64, len(p))
        np.add.at(counts, (gk, pk), 1)
    r, c = linear_sum_assignment(-counts)
    idtp = int(counts[r, c].sum())
    idp = idtp / n_pred if n_pred else 0.0
    idr = idtp / n_gt if n_gt else 0.0
    f1 = 2 * idtp / (n_gt + n_pred) if n_gt + n_pred else 0.0
    return IdMetrics(f1, idp, idr, idtp, n_gt, n_pred, len(gmap), len(pmap))


def count_errors(
    truth: dict[tuple[str, ...], int], got: dict[tuple[str, ...], int]
) -> dict[tuple[str, ...], tuple[int, int]]:
    """Keys where counts differ: {key: (true, got)}. Empty = exact."""
    keys: Sequence[tuple[str, ...]] = sorted(set(truth) | set(got))
    return {k: (truth.get(k, 0), got.get(k, 0)) for k in keys if truth.get(k, 0) != got.get(k, 0)}


__all__ = [
    "GtCrossing",
    "IdMetrics",
    "SynthConfig",
    "SynthFrame",
    "SynthSequence",
    "count_errors",
    "dense_scene",
    "idf1",
    "street_scene",
]
