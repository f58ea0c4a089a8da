"""Crowd-gathering statistics (人群聚集统计分析): CSRNet density maps fused with the person
detector, per-zone counts and gathering alerts.

CSRNet (registry id ``csrnet``) was trained on dense crowds: it is good when heads are
small and many, and over-counts sparse scenes of large, separate people (on the
``set_b`` photos of 7–28 people it reports 54–94). The person detector is the opposite.
So each zone's count comes from whichever fits the zone's measured density — the density
model's estimate in people per megapixel of zone area: at or above ``dense_per_mpx`` the
density model, below it the detector's confirmed person tracks — and the record says
which (``method``).

    >>> from engine.crowd import fuse_count
    >>> fuse_count(density_count=900.0, detector_count=40, zone_area_px=786_432, dense_per_mpx=400)
    (900.0, 'density')
    >>> fuse_count(density_count=70.0, detector_count=12, zone_area_px=786_432, dense_per_mpx=400)
    (12.0, 'detector')
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine import _core
from engine.config import SiteConfig
from engine.errors import ConfigError, FrameError, ModelError
from engine.records import Alert, FrameResult

if TYPE_CHECKING:
    from engine.tracking import CameraAnalytics


@dataclass(slots=True)
class CrowdEstimate:
    """A density map (people per cell; the grid covers the whole frame) and its sum."""

    density: np.ndarray  # float32 (gh, gw)
    count: float
    frame_size: tuple[int, int]  # (w, h) of the original frame
    input_size: tuple[int, int]  # (w, h) fed to the model
    ms: float


def fuse_count(
    density_count: float, detector_count: int, zone_area_px: float, dense_per_mpx: float
) -> tuple[float, str]:
    """Pick the count for one zone: the density model when its estimate is at least
    ``dense_per_mpx`` people per megapixel of zone area, else the detector's."""
    per_mpx = density_count / max(zone_area_px / 1e6, 1e-9)
    if per_mpx >= dense_per_mpx:
        return float(density_count), "density"
    return float(detector_count), "detector"


class CrowdEstimator:
    """CSRNet in onnxruntime. ``estimate(image)`` scales the frame down so its long side
    is ``long_side`` (never up), runs the model and returns the density map and count."""

    def __init__(self, model: str = "csrnet", *, long_side: int = 448, threads: int = 0) -> None:
        from engine.plates import _resolve, _session

        self.path = _resolve(model)
        self.session = _session(self.path, threads)
        self.input_name = self.session.get_inputs()[0].name
        if long_side < 64:
            raise ModelError(f"crowd long_side must be ≥ 64 px, got {long_side}")
        self.long_side = int(long_side)

    def estimate(self, image: np.ndarray) -> CrowdEstimate:
        import cv2

        if (
            not isinstance(image, np.ndarray)
            or image.dtype != np.uint8
            or image.ndim != 3
            or image.shape[2] != 3
            or image.shape[0] < 8
            or image.shape[1] < 8
        ):
            raise FrameError(
                f"crowd: image must be uint8 HxWx3 BGR (at least 8x8), got {getattr(image, 'shape', type(image))}"
            )
        t0 = time.perf_counter()
        h, w = image.shape[:2]
        s = min(1.0, self.long_side / max(h, w))
        nw, nh = max(8, round(w * s)), max(8, round(h * s))
        blob = cv2.dnn.blobFromImage(image, 1.0, (nw, nh), swapRB=False, crop=False)
        den = self.session.run(None, {self.input_name: blob})[0][0, 0]
        den = np.ascontiguousarray(den, np.float32)
        return CrowdEstimate(
            den, float(den.sum()), (w, h), (nw, nh), (time.perf_counter() - t0) * 1e3
        )


class AlertRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(default=50, ge=0)  # people
    dwell_s: float = Field(default=30, ge=0)
    growth_per_min: float = Field(default=0, ge=0)  # 0 = off
    window_s: float = Field(default=60, gt=0)
    cooldown_s: float = Field(default=300, ge=0)


class CrowdConfig(BaseModel):
    """``[crowd]`` in the site config. Zones are the cameras' zones of kind "crowd";
    a camera without any is counted as one zone, "frame"."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    model: str = "csrnet"
    long_side: int = Field(default=448, ge=64, le=4096)
    interval_s: float = Field(default=5.0, ge=0)
    dense_per_mpx: float = Field(default=400, ge=0)
    person_class: str = "person"
    alerts: AlertRule = Field(default_factory=AlertRule)
    zone_alerts: dict[str, AlertRule] = Field(default_factory=dict)  # per zone id
    threads: int = Field(default=0, ge=0)


def _inside(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon for a few points (track foot points)."""
    x, y = points[:, 0:1], points[:, 1:2]
    a, b = poly, np.roll(poly, -1, axis=0)
    cond = (a[:, 1] > y) != (b[:, 1] > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    return (np.sum(cond & (x < xi), axis=1) % 2) == 1


class CrowdStage:
    """Pipeline stage: a crowd update every ``interval_s`` per camera.

    Appends ``result.extras["crowd"]`` = list of per-zone dicts (zone_id, count,
    method, density_count, detector_count, people_per_mpx) and gathering ``Alert``s
    (kind "gathering" or "crowd_growth") to ``result.alerts``."""

    name = "crowd"

    def __init__(
        self, cfg: CrowdConfig, site: SiteConfig, estimator: CrowdEstimator | None = None
    ) -> None:
        self.cfg = cfg
        self.site = site
        self.estimator = estimator or CrowdEstimator(
            cfg.model, long_side=cfg.long_side, threads=cfg.threads
        )
        self._last: dict[str, float] = {}
        self._zones: dict[str, tuple[tuple[int, int], list[str], list[np.ndarray], Any]] = {}
        self._monitors: dict[tuple[str, str], Any] = {}
        # Validate zone polygons now: a self-intersecting zone is a config error.
        for cam_id, cam in site.cameras.items():
            for i, z in enumerate(cam.zones):
                if z.kind != "crowd":
                    continue
                try:
                    _core.check_zone_polygon([tuple(p) for p in z.polygon])
                except Exception as e:
                    raise ConfigError(
                        site.source, f"cameras.{cam_id}.zones.{i}.polygon", str(e)
                    ) from None

    @classmethod
    def from_config(
        cls, site: SiteConfig, detector: Any = None, estimator: CrowdEstimator | None = None
    ) -> CrowdStage:
        try:
            cfg = CrowdConfig.model_validate(site.crowd)
        except ValidationError as e:
            err = e.errors()[0]
            key = "crowd." + ".".join(str(x) for x in err["loc"])
            raise ConfigError(site.source, key, err["msg"], err.get("input")) from None
        return cls(cfg, site, estimator)

    def _zones_for(self, cam: str, w: int, h: int) -> tuple[list[str], list[np.ndarray], Any]:
        z = self._zones.get(cam)
        if z is None or z[0] != (w, h):
            cc = self.site.cameras.get(cam)
            zs = [zc for zc in (cc.zones if cc else []) if zc.kind == "crowd"]
            if zs:
                ids = [zc.id for zc in zs]
                polys = [np.asarray(zc.polygon, np.float64) for zc in zs]
            else:
                ids = ["frame"]
                polys = [np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)]
            zones = _core.CrowdZones([[tuple(p) for p in pl] for pl in polys], (float(w), float(h)))
            z = ((w, h), ids, polys, zones)
            self._zones[cam] = z
        return z[1], z[2], z[3]

    def _monitor(self, cam: str, zone_id: str) -> Any:
        m = self._monitors.get((cam, zone_id))
        if m is None:
            r = self.cfg.zone_alerts.get(zone_id, self.cfg.alerts)
            m = _core.GatheringMonitor(
                r.threshold, r.dwell_s, r.growth_per_min, r.window_s, r.cooldown_s
            )
            self._monitors[(cam, zone_id)] = m
        return m

    def __call__(
        self, frame: np.ndarray | None, result: FrameResult, analytics: CameraAnalytics | None
    ) -> None:
        cam, ts = result.camera_id, result.ts
        if frame is None:
            return
        last = self._last.get(cam)
        if last is not None and ts - last < self.cfg.interval_s:
            return
        self._last[cam] = ts
        h, w = frame.shape[:2]
        est = self.estimator.estimate(frame)
        ids, polys, zones = self._zones_for(cam, w, h)
        den_counts = zones.counts(est.density)
        areas = zones.areas
        # detector side: confirmed person tracks, by foot point
        feet = np.zeros((0, 2))
        for o in result.observations:
            if o.cls == self.cfg.person_class:
                feet = np.vstack([feet, [[(o.x1 + o.x2) / 2, o.y2]]])
        out = []
        for zid, poly, dc, area in zip(
            ids, polys, den_counts.tolist(), areas.tolist(), strict=True
        ):
            n_det = int(_inside(feet, poly).sum()) if len(feet) else 0
            count, method = fuse_count(dc, n_det, area, self.cfg.dense_per_mpx)
            out.append(
                {
                    "zone_id": zid,
                    "count": count,
                    "method": method,
                    "density_count": dc,
                    "detector_count": n_det,
                    "people_per_mpx": dc / max(area / 1e6, 1e-9),
                }
            )
            for kind, t, c, value in self._monitor(cam, zid).update(ts, count):
                msg = (
                    f"{c:.0f} people in zone {zid} for {value:.0f} s"
                    if kind == "gathering"
                    else f"crowd in zone {zid} growing at {value:.1f} people/min ({c:.0f} now)"
                )
                result.alerts.append(
                    Alert(cam, t, kind, zid, msg, "warning", [], {"count": c, "value": value})
                )
        result.extras["crowd"] = out
        result.timings_ms["crowd_model"] = est.ms


__all__ = ["CrowdConfig", "CrowdEstimate", "CrowdEstimator", "CrowdStage", "fuse_count"]
