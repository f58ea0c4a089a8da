"""The closed loop that sees only what cameras see.

Each signalised approach gets a virtual camera on the far side of the junction looking
upstream at the last `VIEW_M` metres. SUMO vehicle footprints are projected through a
perspective homography into 1280×720 image boxes (with height), then degraded like a
detector: box jitter, missed detections, score noise. The boxes go through the real
`engine.Pipeline.process_detections` (Rust tracker, line crossings at each lane's stop
line, road-plane positions and speeds from the homography) and `engine.flow.FlowEstimator`;
controllers decide from the estimator's lane state only.

Ground truth for the flow-estimation error is read from SUMO in the same steps: stop-line
counts per lane, speeds of vehicles in view, stopped vehicles in view.

Queue per stage (vehicles under 5 km/h): tracks held over missed detections, halted by
their along-lane speed (a 2-D speed reads box jitter as motion), and a car in the shared
lane upstream of a left-turn bay split between the left and through stages by the share
learnt from where such cars went (`TurnBayShare`, halted and moving cars apart), not by
the flow's turning share: left-turners dwell longer there, so they are a larger share of
the cars present than of the flow (surging, seed 7: ~0.47 of the moving cars on the
busiest approach against a flow share of ~0.33).

A moving track past its stop line has crossed it (its crossing is counted) and is no
longer traffic of the approach: the cameras see 20 m beyond the line and the flow lanes
reach 5 m past it, but SUMO's own per-lane loop (`SumoMeasurer`) drops a vehicle as it
enters the junction. Kept, such tracks were read as vehicles at the line (expected within
any horizon), ~+0.3 vehicles on every green's expected discharge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from engine.config import SiteConfig
from engine.detections import Detections, RoadClass
from engine.flow import FlowEstimator
from engine.pipeline import Pipeline
from engine.sim.controllers import JunctionMeasurement, StageTraffic
from engine.sim.runner import VIEW_M, SumoMeasurer, stage_lanes
from engine.sim.scenarios import Approach, Junction, Scenario

IMG_W, IMG_H = 1280, 720
# queue and controller measurement: a track missed by the detector for up to this long
# still counts (its speed is the along-lane fit over its recent positions,
# FlowEstimator._remember)
QUEUE_HOLD_S = 1.0
NEAR_M, FAR_M, HALF_LAT_M = -20.0, VIEW_M, 10.0
VEH_HEIGHT_M = {"car": 1.5, "bus": 3.0}
_IMG_PTS = np.float32([[40, 715], [1240, 715], [760, 120], [520, 120]])
_WORLD_PTS = np.float32(
    [[-HALF_LAT_M, NEAR_M], [HALF_LAT_M, NEAR_M], [HALF_LAT_M, FAR_M], [-HALF_LAT_M, FAR_M]]
)
# world (lateral m, distance upstream of the stop line m) -> image pixels
H_WORLD_TO_IMG = cv2.getPerspectiveTransform(_WORLD_PTS, _IMG_PTS).astype(np.float64)


def to_image(lat: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.stack([lat, dist, np.ones_like(lat)], -1) @ H_WORLD_TO_IMG.T
    return p[..., 0] / p[..., 2], p[..., 1] / p[..., 2]


class TurnBayShare:
    """The share of left-turners among the vehicles in the shared inner lane upstream of a
    left-turn bay, halted or moving, learnt from the camera's own tracks.

    Upstream of the bay the inner lane carries left-turners and through vehicles alike, and
    a camera cannot see where a halted car will go. The stop-line counts give the turning
    share of the *flow*, but the standing queue there is richer in left-turners: they wait
    longer (short protected lefts), and when the bay is full they stop at its entrance and
    hold the lane. So each track halted in that lane upstream of the bay is remembered with
    the queue state it was seen in — is the bay queued to its entrance? is the inner lane? —
    and once the vehicle is seen well inside the bay section its lane tells its movement and
    its halted samples go to that state's tally. Moving vehicles there are tallied the same
    way in four states of their own (index 4 + state): left-turners also dwell longer
    there while moving (slowed behind the bay's queue), so the flow's share undercounts
    them. The share per state is the tally, shrunk towards the stop-line share while it
    has few samples."""

    FATE_DEPTH_M = 10.0  # this far inside the bay section a vehicle has chosen its lane
    FULL_MARGIN_M = 15.0  # a lane's queue reaching this close to the bay entrance is full
    PRIOR_SAMPLES = 25.0
    MAX_SAMPLES = 20000.0  # per state; older tallies are scaled down (demand changes)
    FORGET_S = 5.0

    def __init__(self, stopped_mps: float) -> None:
        self.stopped = stopped_mps
        # approach -> (2 [left, through], 8 states: 4 halted, then the same 4 moving)
        self.tally: dict[str, np.ndarray] = {}
        # approach -> track id -> [samples per state (8), last seen ts]
        self.pending: dict[str, dict[int, list]] = {}
        # samples whose track reached the bay section / was lost first (diagnostics)
        self.resolved: dict[str, float] = {}
        self.forgotten: dict[str, float] = {}

    def state(self, bay_m: float, d1, s1, d2, s2) -> int:
        """0..3: 2·(bay queued to its entrance) + (inner lane queued to the bay entrance)."""
        edge = bay_m - self.FULL_MARGIN_M

        def full(d, s) -> bool:
            m = (s < self.stopped) & (d <= bay_m)
            return bool(m.any() and d[m].max() > edge)

        return 2 * full(d2, s2) + full(d1, s1)

    def observe(self, a: Approach, ts: float, ids, lanes: list[str], d, s) -> None:
        """One frame of the approach's camera (held tracks)."""
        if len(a.lanes) < 3:
            return
        inner, bay = a.lanes[1], a.lanes[2]
        ln = np.asarray(lanes, dtype=object)
        m1, m2 = ln == inner, ln == bay
        k = self.state(a.length, d[m1], s[m1], d[m2], s[m2])
        pend = self.pending.setdefault(a.name, {})
        tally = self.tally.setdefault(a.name, np.zeros((2, 8)))
        for tid, lane, dd, ss in zip(ids.tolist(), lanes, d.tolist(), s.tolist(), strict=True):
            if lane == inner and dd > a.length:
                p = pend.setdefault(tid, [np.zeros(8), ts])
                # NaN speed (a track too new to have one): not halted
                p[0][k if ss < self.stopped else 4 + k] += 1.0
                p[1] = ts
            elif tid in pend and dd < a.length - self.FATE_DEPTH_M:
                got = pend.pop(tid)[0]
                tally[0 if lane == bay else 1] += got
                self.resolved[a.name] = self.resolved.get(a.name, 0.0) + got.sum()
            elif tid in pend:
                pend[tid][1] = ts
        for tid in [t for t, p in pend.items() if ts - p[1] > self.FORGET_S]:
            lost = pend.pop(tid)[0].sum()
            self.forgotten[a.name] = self.forgotten.get(a.name, 0.0) + lost
        tot = tally.sum(0)
        over = tot > self.MAX_SAMPLES
        if over.any():
            tally[:, over] *= self.MAX_SAMPLES / tot[over]

    def share(self, a: Approach, state: int, prior: float, moving: bool = False) -> float:
        """Share of left-turners among the halted (or `moving`) vehicles there in `state`."""
        state = state + 4 if moving else state
        t = self.tally.get(a.name)
        n_l, n = (0.0, 0.0) if t is None else (t[0, state], t[0, state] + t[1, state])
        return (n_l + self.PRIOR_SAMPLES * prior) / (n + self.PRIOR_SAMPLES)


@dataclass
class DetectorNoise:
    """Detector-like degradation of perfect boxes."""

    miss_rate: float = 0.03
    jitter_frac: float = 0.03  # std of each box edge, fraction of box size
    min_px: float = 6.0  # boxes smaller than this (far away) are not detected
    seed: int = 3


@dataclass
class CameraView:
    cam_id: str
    junction: Junction
    approach: Approach
    right: tuple[float, float]  # unit lateral axis (driver's right)
    lane_lat: list[float]  # lateral centre of each lane of the approach edge
    lane_dirs: list[str]
    bay_m: float


def _camera_views(sc: Scenario) -> list[CameraView]:
    import sumolib

    net = sumolib.net.readNet(str(sc.net))
    views = []
    for j in sc.junctions:
        for a in j.approaches:
            hx, hy = a.heading
            right = (hy, -hx)
            lat = []
            for ln in a.lanes:
                x, y = net.getLane(ln).getShape()[-1]
                lat.append((x - a.stop_xy[0]) * right[0] + (y - a.stop_xy[1]) * right[1])
            views.append(
                CameraView(
                    f"{j.tls}_{a.name}",
                    j,
                    a,
                    right,
                    lat,
                    [a.lane_dirs.get(i, "s") for i in range(len(a.lanes))],
                    a.length,
                )
            )
    return views


def site_config(views: list[CameraView], fps: float) -> SiteConfig:
    """Cameras (homography, one stop line per lane) and the [flow] lanes."""
    img = _IMG_PTS.tolist()
    wld = _WORLD_PTS.tolist()
    cams: dict[str, dict] = {}
    lanes = []
    for v in views:
        lines = []
        for i, lat in enumerate(v.lane_lat):
            lane_id = v.approach.lanes[i]
            xa, ya = to_image(np.array([lat + 1.6]), np.array([0.0]))
            xb, yb = to_image(np.array([lat - 1.6]), np.array([0.0]))
            lines.append(
                {
                    "id": f"stop{i}",
                    "a": (float(xa[0]), float(ya[0])),
                    "b": (float(xb[0]), float(yb[0])),
                    "lane": lane_id,
                }
            )
            bay_only = i >= 2  # the left-turn bay exists only over the last edge
            lanes.append(
                {
                    "id": lane_id,
                    "approach": v.cam_id,
                    "camera": v.cam_id,
                    "lines": [f"stop{i}"],
                    "stop": (lat, 0.0),
                    "upstream": (lat, v.bay_m if bay_only else VIEW_M),
                    "width_m": 3.2,
                }
            )
        cams[v.cam_id] = {"fps": fps, "homography": {"image": img, "world": wld}, "lines": lines}
    return SiteConfig.from_dict(
        {
            "name": "sumo",
            "cameras": cams,
            "tracker": {"min_hits": 2, "max_lost_s": 1.5, "speed_window_s": 1.0, "match_iou": 0.1},
            "flow": {"window_s": 300, "lanes": lanes, "detector_to_m": 10.0},
        },
        source="<sumo>",
    )


@dataclass
class FlowTruth:
    """SUMO's own numbers, sampled like the cameras."""

    speed_sum: dict[str, float] = field(default_factory=dict)
    speed_n: dict[str, int] = field(default_factory=dict)
    queue_abs_err: list[float] = field(default_factory=list)  # per stage
    queue_true: list[float] = field(default_factory=list)
    lane_abs_err: list[float] = field(default_factory=list)
    lane_true: list[float] = field(default_factory=list)
    approach_abs_err: list[float] = field(default_factory=list)
    approach_true: list[float] = field(default_factory=list)


class CameraMeasurer:
    """Measures each junction through projected detections → Pipeline → FlowEstimator."""

    name = "cameras"

    def __init__(
        self,
        tc,
        sc: Scenario,
        fps: float = 5.0,
        noise: DetectorNoise | None = None,
        truth: bool = True,
    ) -> None:
        self.tc = tc
        self.sc = sc
        self.views = _camera_views(sc)
        self.site = site_config(self.views, fps)
        self.pipeline = Pipeline(self.site, load_detector=False)
        self.flow = FlowEstimator.from_site(self.site)
        self.noise = noise or DetectorNoise()
        self.rng = np.random.default_rng(self.noise.seed)
        self.frame_dt = 1.0 / fps
        self.next_frame = 0.0
        self.truth = SumoMeasurer(tc, sc) if truth else None
        self.ft = FlowTruth()
        self.stage_of_lane: dict[str, dict[str, int]] = {}
        for j in sc.junctions:
            m = {}
            for k, lanes in enumerate(stage_lanes(j)):
                for ln in lanes:
                    m[ln] = k
            self.stage_of_lane[j.tls] = m
        self._last: dict[str, JunctionMeasurement] = {}
        self.last_truth: dict[str, JunctionMeasurement] | None = None
        self.stopped_mps = self.flow.config.stopped_speed_kmh / 3.6
        self.bay_share = TurnBayShare(self.stopped_mps)
        self._lane_view = {ln: v for v in self.views for ln in v.approach.lanes}
        obs_m = {ln.id: ln.observed_m for ln in self.flow.lanes}
        # per camera: each of its lanes' observed segment (m), for the speed truth
        self._seg_m = {
            v.cam_id: np.array([obs_m[ln] for ln in v.approach.lanes]) for v in self.views
        }

    # ---- projection ---------------------------------------------------------------------
    def _vehicles(self):
        tc = self.tc
        ids = tc.vehicle.getIDList()
        n = len(ids)
        xy = np.zeros((n, 2))
        ang = np.zeros(n)
        length = np.zeros(n)
        width = np.zeros(n)
        speed = np.zeros(n)
        bus = np.zeros(n, bool)
        for i, vid in enumerate(ids):
            xy[i] = tc.vehicle.getPosition(vid)
            ang[i] = tc.vehicle.getAngle(vid)
            length[i] = tc.vehicle.getLength(vid)
            width[i] = tc.vehicle.getWidth(vid)
            speed[i] = tc.vehicle.getSpeed(vid)
            bus[i] = tc.vehicle.getTypeID(vid) == "bus"
        return ids, xy, ang, length, width, speed, bus

    def _detections(
        self, v: CameraView, xy, ang, length, width, bus
    ) -> tuple[Detections, np.ndarray]:
        a = v.approach
        rel = xy - np.asarray(a.stop_xy)
        hx, hy = a.heading
        dist = -(rel[:, 0] * hx + rel[:, 1] * hy)  # upstream distance of the front bumper
        lat = rel[:, 0] * v.right[0] + rel[:, 1] * v.right[1]
        # heading of each vehicle in the local frame (SUMO angle: 0 = north, clockwise)
        th = np.radians(ang)
        vx, vy = np.sin(th), np.cos(th)
        along = vx * hx + vy * hy  # +1 when driving towards the stop line
        inview = (dist > NEAR_M) & (dist < FAR_M) & (np.abs(lat) < HALF_LAT_M) & (along > 0.5)
        idx = np.nonzero(inview)[0]
        if len(idx) == 0:
            return Detections.empty(), idx
        d, la = dist[idx], lat[idx]
        ln, wd = length[idx], width[idx]
        # footprint: front edge at d, rear at d + length (upstream)
        corners_lat = np.stack([la - wd / 2, la + wd / 2, la - wd / 2, la + wd / 2], 1)
        corners_d = np.stack([d, d, d + ln, d + ln], 1)
        px, py = to_image(corners_lat, corners_d)
        x1, x2 = px.min(1), px.max(1)
        y2 = py.max(1)
        ppm_x, _ = to_image(np.stack([la - 0.5, la + 0.5], 1), np.stack([d, d], 1))
        ppm = np.abs(ppm_x[:, 1] - ppm_x[:, 0])
        h = np.where(bus[idx], VEH_HEIGHT_M["bus"], VEH_HEIGHT_M["car"])
        y1 = py.min(1) - h * ppm
        bw, bh = x2 - x1, y2 - y1
        nz = self.noise
        j = self.rng.normal(0.0, nz.jitter_frac, (len(idx), 4)) * np.stack([bw, bh, bw, bh], 1)
        box = np.stack([x1, y1, x2, y2], 1) + j
        keep = (self.rng.random(len(idx)) >= nz.miss_rate) & (bw >= nz.min_px) & (bh >= nz.min_px)
        box[:, [0, 2]] = np.clip(box[:, [0, 2]], 0, IMG_W - 1)
        box[:, [1, 3]] = np.clip(box[:, [1, 3]], 0, IMG_H - 1)
        score = np.clip(self.rng.normal(0.8, 0.08, len(idx)), 0.3, 0.99)
        cls = np.where(bus[idx], int(RoadClass.BUS), int(RoadClass.CAR))
        return Detections(box[keep], score[keep], cls[keep]), idx

    # ---- per step -----------------------------------------------------------------------
    def step(self, t: float) -> dict[str, JunctionMeasurement]:
        gt = self.truth.step(t) if self.truth is not None else None
        if t + 1e-9 < self.next_frame and self._last:
            return self._last
        self.next_frame = t + self.frame_dt - 1e-6
        _, xy, ang, length, width, speed, bus = self._vehicles()
        for v in self.views:
            dets, idx = self._detections(v, xy, ang, length, width, bus)
            res = self.pipeline.process_detections(dets, v.cam_id, t)
            self.flow.add_frame(res)
            self.bay_share.observe(v.approach, t, *self.flow.held_tracks(v.cam_id, QUEUE_HOLD_S))
            if gt is not None:
                self._truth_speed(v, idx, xy, speed)
        # the controller gets the tracks held over missed detections, with along-lane
        # speeds (FlowEstimator.current_tracks), as the queue estimate does: a camera's last
        # frame alone misses each vehicle the detector misses in it (3% here), and every
        # green's expected discharge read low by as much
        held = self.flow.current_tracks(hold_s=QUEUE_HOLD_S)
        counts = self.flow.counts()
        out = {}
        for j in self.sc.junctions:
            out[j.tls] = self._measurement(j, t, held, counts)
            if gt is not None:
                self._truth_queue(j, out[j.tls], gt[j.tls])
        self._last = out
        self.last_truth = gt  # SUMO's own measurement of the same step (None without truth)
        # no pruning: the run's error report aggregates the whole run (memory: ~1 GB / h)
        return out

    def _measurement(
        self,
        j: Junction,
        t: float,
        cur: dict[str, tuple[np.ndarray, np.ndarray]],
        counts: dict[str, int],
    ) -> JunctionMeasurement:
        """Per-stage and per-movement traffic of junction `j` from lane tracks `cur`."""
        rows: list[list[tuple[float, float, float]]] = [[] for _ in j.stage_states]
        mrows: dict[str, list[tuple[float, float, float]]] = {}
        lrows: dict[str, list[tuple[float, float, float]]] = {}
        mcounts: dict[str, float] = {}
        som = self.stage_of_lane[j.tls]
        for a in j.approaches:
            left_lane = a.lanes[2] if len(a.lanes) > 2 else None
            n_left = counts.get(left_lane, 0) if left_lane else 0
            n_thr1 = counts.get(a.lanes[1], 0) if len(a.lanes) > 1 else 0
            p_left = (n_left + 1.0) / (n_left + n_thr1 + 2.0)  # of the flow
            # of the halted / moving vehicles in the shared lane upstream of the bay
            p_left_halted = p_left_moving = p_left
            if left_lane:
                e = (np.zeros(0), np.zeros(0))
                d1, s1 = cur.get(a.lanes[1], e)
                d2, s2 = cur.get(left_lane, e)
                st = self.bay_share.state(a.length, d1, s1, d2, s2)
                p_left_halted = self.bay_share.share(a, st, p_left)
                p_left_moving = self.bay_share.share(a, st, p_left, moving=True)
            for i, ln in enumerate(a.lanes):
                mv = f"{a.name}_{'L' if a.lane_dirs.get(i, 's') == 'l' else 'T'}"
                mcounts[mv] = mcounts.get(mv, 0.0) + counts.get(ln, 0)
                if ln not in cur:
                    continue
                d, s = cur[ln]
                k = som.get(ln, 0)
                for dd, ss in zip(d.tolist(), s.tolist(), strict=True):
                    if dd < 0.0 and not ss < self.stopped_mps:
                        continue  # moving past the stop line: crossed, gone from the approach
                    lrows.setdefault(ln, []).append((dd, ss, 1.0))
                    if i == 1 and left_lane and dd > a.length and left_lane in som:
                        # upstream of the bay, lane 1 carries both left-turners and through
                        p = p_left_halted if ss < self.stopped_mps else p_left_moving
                        rows[som[left_lane]].append((dd, ss, p))
                        rows[k].append((dd, ss, 1.0 - p))
                        mrows.setdefault(f"{a.name}_L", []).append((dd, ss, p))
                        mrows.setdefault(mv, []).append((dd, ss, 1.0 - p))
                    else:
                        rows[k].append((dd, ss, 1.0))
                        mrows.setdefault(mv, []).append((dd, ss, 1.0))

        def traffic(r: list[tuple[float, float, float]]) -> StageTraffic:
            arr = np.asarray(r, np.float64).reshape(-1, 3)
            return StageTraffic(arr[:, 0], arr[:, 1], arr[:, 2])

        return JunctionMeasurement(
            t,
            [traffic(r) for r in rows],
            {k: float(v) for k, v in counts.items()},
            stage_lanes(j),
            {mv: traffic(r) for mv, r in mrows.items()},
            mcounts,
            {ln: traffic(r) for ln, r in lrows.items()},
        )

    def _truth_speed(self, v: CameraView, idx: np.ndarray, xy, speed) -> None:
        """SUMO's speeds of the vehicles in each lane's observed segment this frame (the
        flow estimate's segment speed is checked against their mean, see `errors`)."""
        a = v.approach
        rel = xy[idx] - np.asarray(a.stop_xy)
        dist = -(rel[:, 0] * a.heading[0] + rel[:, 1] * a.heading[1])
        lat = rel[:, 0] * v.right[0] + rel[:, 1] * v.right[1]
        lane = np.abs(lat[:, None] - np.asarray(v.lane_lat)[None]).argmin(1)
        seg = self._seg_m[v.cam_id][lane]
        m = (dist >= 0) & (dist <= seg)
        ft = self.ft
        ft.speed_sum[v.cam_id] = ft.speed_sum.get(v.cam_id, 0.0) + float(speed[idx][m].sum())
        ft.speed_n[v.cam_id] = ft.speed_n.get(v.cam_id, 0) + int(m.sum())

    def _truth_queue(
        self, j: Junction, est: JunctionMeasurement, truth: JunctionMeasurement
    ) -> None:
        """Halted (< 5 km/h) vehicles within the view, cameras vs SUMO, at three levels:
        per lane and per approach (what the flow estimate measures), and per stage (what
        the controller weighs, which also needs each car's turn: a halted car in the
        shared lane upstream of a bay is split by the learnt share)."""
        ft, stop = self.ft, 5.0 / 3.6
        for k in range(len(j.stage_states)):
            q_true = truth.queue(k, stop)
            ft.queue_abs_err.append(abs(est.queue(k, stop) - q_true))
            ft.queue_true.append(q_true)
        for a in j.approaches:
            a_true = a_est = 0.0
            for ln in a.lanes:
                q_true, q_est = truth.lane_queue(ln, stop), est.lane_queue(ln, stop)
                ft.lane_abs_err.append(abs(q_est - q_true))
                ft.lane_true.append(q_true)
                a_true += q_true
                a_est += q_est
            ft.approach_abs_err.append(abs(a_est - a_true))
            ft.approach_true.append(a_true)

    def errors(self) -> dict[str, float]:
        """Flow-estimation error against SUMO: volume (stop-line counts), mean speed of
        vehicles in view, queue per stage (vehicles)."""
        if self.truth is None:
            return {}
        est = self.flow.counts()
        tot_true = tot_est = 0.0
        worst = 0.0
        for j in self.sc.junctions:
            truth = self.truth.counts[j.tls]
            for a in j.approaches:
                ct = sum(truth.get(ln, 0.0) for ln in a.lanes)
                ce = sum(est.get(ln, 0) for ln in a.lanes)
                tot_true += ct
                tot_est += ce
                if ct >= 20:
                    worst = max(worst, abs(ce - ct) / ct)
        ft = self.ft
        sp_t = sum(ft.speed_sum.values()) / max(1, sum(ft.speed_n.values()))
        # the flow estimate's segment (Edie) speed per lane over the whole run, weighted by
        # the vehicles observed in each lane's segment
        df = self.flow.lane_flows(window_s=1e7, start=0.0, end=1e7)
        obs_m = {ln.id: ln.observed_m for ln in self.flow.lanes}
        obs = np.array([obs_m[x] for x in df["lane"].to_list()])
        w = np.nan_to_num(df["density_veh_km"].to_numpy()) * obs
        v_seg = df["segment_speed_kmh"].to_numpy() / 3.6
        ok = np.isfinite(v_seg) & (w > 0)
        sp_e = float((v_seg[ok] * w[ok]).sum() / max(w[ok].sum(), 1e-9))
        # spot speed at the stop lines (the detector-station mean speed)
        line_t = self.truth.cross_speed_sum / max(1, self.truth.cross_speed_n) * 3.6
        n = df["count"].to_numpy().astype(float)
        tms = df["time_mean_speed_kmh"].to_numpy()
        ok = n > 0
        line_e = float((tms[ok] * n[ok]).sum() / max(n[ok].sum(), 1.0)) if ok.any() else math.nan
        return {
            "line_speed_pct": 100.0 * abs(line_e - line_t) / max(line_t, 1e-9),
            "line_speed_true_kmh": line_t,
            "line_speed_est_kmh": line_e,
            "segment_speed_true_kmh": sp_t * 3.6,
            "segment_speed_est_kmh": sp_e * 3.6,
            "volume_pct": 100.0 * abs(tot_est - tot_true) / max(tot_true, 1.0),
            "volume_worst_approach_pct": 100.0 * worst,
            "segment_speed_pct": 100.0 * abs(sp_e - sp_t) / max(sp_t, 1e-9),
            "queue_lane_mae_veh": _mean(ft.lane_abs_err),
            "queue_lane_true_mean_veh": _mean(ft.lane_true),
            "queue_approach_mae_veh": _mean(ft.approach_abs_err),
            "queue_approach_true_mean_veh": _mean(ft.approach_true),
            "queue_stage_mae_veh": _mean(ft.queue_abs_err),
            "queue_stage_true_mean_veh": _mean(ft.queue_true),
            "true_count": tot_true,
            "est_count": tot_est,
        }


def _mean(x: list[float]) -> float:
    return float(np.mean(x)) if x else math.nan
