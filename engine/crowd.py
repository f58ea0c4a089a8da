"""Crowd-gathering statistics (人群聚集统计分析): CSRNet density maps fused with the person
detector, per-zone counts and gathering alerts.

CSRNet (registry id ``csrnet``) was trained on dense crowds: it is good when heads are
small and many, and over-counts sparse scenes of large, separate people (on the
``set_b`` photos of 7–28 people it reports 54–94). The person detector is the opposite.
So each zone's count comes from whichever fits the zone's measured density — the density
model's estimate in people per megapixel of zone area: at or above ``dense_per_mpx`` the
density model, below it the detector's confirmed person tracks — and the record says
which (``method``).

The density model is the int8 build of CSRNet (registry ``csrnet-int8``: onnxruntime
static quantisation, calibrated at fetch time on the sparse set_b photos; ``csrnet`` is
the float graph) at long side 1024, run coarse to fine: a long-side-384 pass finds
where the crowd is, and only that region (plus a margin) is run at full scale — see
``CrowdEstimator``.

The detector side has two sources. In the video pipeline it is the tracker's confirmed
person tracks. On stills (no tracker state, or ``person_source = "tiled"``) it is a tiled
person pass (``PersonCounter``): YOLOv3-tiny's input is 416 px, so on a whole 1024×768
photo a person 40 px tall shrinks to 16 px and is missed; the counter runs the detector
on overlapping tiles at two scales (native 416 px tiles, and 288 px tiles upscaled to
416) plus the whole image, drops tile boxes cut by an interior tile edge (a neighbouring
tile or a coarser pass sees that person whole), and merges the rest in Rust
(``_core.crowd_merge_people``: IoU, plus intersection-over-smaller for fragments that
share the person's top edge). The tile sizes, the merge rule (ios 0.7, top edges within
0.6 box heights) and the person score threshold (0.15) were chosen on the odd-numbered
``set_b`` photos; ``citystream bench models`` reports the error on the even-numbered ones
(held out) and on all of them.

    >>> from engine.crowd import fuse_count
    >>> fuse_count(density_count=900.0, detector_count=40, zone_area_px=786_432, dense_per_mpx=400)
    (900.0, 'density')
    >>> fuse_count(density_count=70.0, detector_count=12, zone_area_px=786_432, dense_per_mpx=400)
    (12.0, 'detector')
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from engine import _core
from engine.config import SiteConfig, validate_section
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
    # coarse to fine: the frame region (x0, y0, x1, y1) run at full scale; None = the
    # whole frame was; (0, 0, 0, 0) = none was (the coarse pass found under one person)
    fine_region: tuple[int, int, int, int] | None = None


def fuse_count(
    density_count: float, detector_count: int, zone_area_px: float, dense_per_mpx: float
) -> tuple[float, str]:
    """Pick the count for one zone: the density model when its estimate is at least
    ``dense_per_mpx`` people per megapixel of zone area, else the detector's."""
    per_mpx = density_count / max(zone_area_px / 1e6, 1e-9)
    if per_mpx >= dense_per_mpx:
        return float(density_count), "density"
    return float(detector_count), "detector"


# Person score threshold for the tiled pass, chosen on the odd-numbered set_b photos
# (bench/models.py repeats the choice and reports the held-out error).
PERSON_CONF = 0.15

# Tile sizes of the tiled pass for a 416 px detector: native-resolution tiles plus
# 288 px tiles (upscaled ×1.44 to the detector's input, for people ~40-80 px tall at the
# back of a scene). Chosen with PERSON_CONF on the odd-numbered set_b photos.
TILE_SIZES = (416, 288)


class PersonCounter:
    """Tiled person detection for sparse scenes on stills.

    One pass per tile size (``tile_sizes``; a tile smaller than the detector input is
    upscaled to it, so small far-away people are seen at a higher effective resolution)
    plus the whole image. ``detections(image)`` returns the pooled boxes before the
    merge with the pass each came from; ``boxes(image)`` merges them and returns person
    boxes (xyxy float32 (K,4), scores (K,)) with scores ≥ ``min_conf``; ``count(image,
    conf)`` counts those ≥ ``conf``. Thresholding after the greedy merge equals
    thresholding before it (a box is only ever suppressed by a higher-scored kept box),
    so one pass serves any threshold ≥ ``min_conf``."""

    def __init__(
        self,
        detector: Any = None,
        *,
        model: str = "yolov3-tiny",
        overlap: int = 96,
        tile_sizes: tuple[int, ...] | None = None,
        whole: bool = True,
        min_conf: float = 0.05,
        iou: float = 0.45,
        ios: float = 0.7,
        top_tol: float = 0.6,
        threads: int = 0,
        batch: int = 8,
    ) -> None:
        from engine.config import DetectorConfig
        from engine.detector import Detector

        if detector is None:
            detector = Detector(
                DetectorConfig(
                    model=model, conf_threshold=min_conf, classes=["person"], threads=threads
                )
            )
        self.detector = detector
        self.tile = int(min(detector.input_size))
        if tile_sizes is None:
            tile_sizes = tuple(round(t * self.tile / 416) for t in TILE_SIZES)
        if not tile_sizes or any(not 32 <= t <= self.tile for t in tile_sizes):
            raise ModelError(f"tile sizes must be in [32, {self.tile}], got {tile_sizes}")
        if not 0 <= overlap < self.tile:
            raise ModelError(f"tile overlap must be in [0, {self.tile}), got {overlap}")
        self.tile_sizes = tuple(int(t) for t in tile_sizes)
        self.overlap, self.whole = int(overlap), bool(whole)
        self.min_conf, self.iou, self.ios = float(min_conf), float(iou), float(ios)
        self.top_tol = float(top_tol)
        self.batch = max(1, int(batch))
        self.person_id = 0  # RoadClass.PERSON
        self.last_tiles = 0

    def detections(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pooled person boxes of every pass, in image pixels, before the merge: (xyxy
        float32 (N,4), scores (N,), pass (N,) int32 — index into ``tile_sizes``, or
        ``len(tile_sizes)`` for the whole-image pass). Boxes cut by an interior tile edge
        are dropped (a neighbouring tile or a coarser pass sees that person whole)."""
        img = _check_frame(image)
        h, w = img.shape[:2]
        tiles: list[tuple[int, int, int, int, int]] = []  # x, y, tw, th, pass
        for k, t in enumerate(self.tile_sizes):
            ov = min(t - 1, round(self.overlap * t / self.tile))
            grid = _core.crowd_tile_grid(w, h, t, ov)
            if len(grid) == 1 and (k > 0 or self.whole):
                continue  # the image fits in one tile: the whole-image pass covers it
            tiles += [(x, y, tw, th, k) for x, y, tw, th in grid]
        crops = [np.ascontiguousarray(img[y : y + th, x : x + tw]) for x, y, tw, th, _ in tiles]
        whole = self.whole or not tiles
        if whole:
            crops.append(img)
        dets: list[Any] = []
        for i in range(0, len(crops), self.batch):
            dets += self.detector.detect_batch(crops[i : i + self.batch])
        self.last_tiles = len(crops)
        xy, sc, ps = [], [], []
        e = 2.0  # px: a box this close to an interior tile edge is cut by it
        for (x, y, tw, th, k), d in zip(tiles, dets, strict=False):
            m = (d.class_ids == self.person_id) & (d.scores >= self.min_conf)
            b, s = d.xyxy[m], d.scores[m]
            cut = (
                ((b[:, 0] <= e) & (x > 0))
                | ((b[:, 1] <= e) & (y > 0))
                | ((b[:, 2] >= tw - e) & (x + tw < w))
                | ((b[:, 3] >= th - e) & (y + th < h))
            )
            xy.append(b[~cut] + np.array([x, y, x, y], np.float32))
            sc.append(s[~cut])
            ps.append(np.full(int((~cut).sum()), k, np.int32))
        if whole:
            d = dets[-1]
            m = (d.class_ids == self.person_id) & (d.scores >= self.min_conf)
            xy.append(d.xyxy[m])
            sc.append(d.scores[m])
            ps.append(np.full(int(m.sum()), len(self.tile_sizes), np.int32))
        b = np.ascontiguousarray(np.concatenate(xy), np.float32).reshape(-1, 4)
        s = np.ascontiguousarray(np.concatenate(sc), np.float32)
        return b, s, np.concatenate(ps).astype(np.int32)

    def merge(
        self,
        b: np.ndarray,
        s: np.ndarray,
        *,
        ios: float | None = None,
        top_tol: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Greedy merge of pooled boxes in Rust: IoU ≥ ``iou``, or a fragment —
        intersection-over-smaller ≥ ``ios`` with the top edges within ``top_tol`` × the
        smaller box's height (an upper-body box shares the person's head; a person
        standing behind another does not). Kept boxes, highest score first."""
        b = np.ascontiguousarray(b, np.float32).reshape(-1, 4)
        s = np.ascontiguousarray(s, np.float32)
        keep = _core.crowd_merge_people(
            b,
            s,
            self.iou,
            self.ios if ios is None else ios,
            self.top_tol if top_tol is None else top_tol,
        )
        return b[keep], s[keep]

    def boxes(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b, s, _ = self.detections(image)
        return self.merge(b, s)

    def count(self, image: np.ndarray, conf: float = PERSON_CONF) -> int:
        _, s = self.boxes(image)
        return int((s >= conf).sum())


def _trim(mass: np.ndarray, cut: float) -> tuple[int, int]:
    """[lo, hi) of the bins left after dropping leading and trailing bins whose running
    sum stays within ``cut`` (non-negative masses)."""
    c = np.cumsum(mass)
    lo = int(np.searchsorted(c, cut, side="right"))
    r = np.cumsum(mass[::-1])
    hi = len(mass) - int(np.searchsorted(r, cut, side="right"))
    return min(lo, len(mass) - 1), max(hi, min(lo, len(mass) - 1) + 1)


def _feet(xyxy: np.ndarray, w: int, h: int) -> np.ndarray:
    """Foot points (bottom centre) of boxes, kept half a pixel inside the frame so a
    person cut by the frame's bottom edge still falls inside a zone drawn to that edge."""
    x = np.clip((xyxy[:, 0] + xyxy[:, 2]) / 2, 0.5, w - 0.5)
    y = np.clip(xyxy[:, 3], 0.5, h - 0.5)
    return np.stack([x, y], axis=1).astype(np.float64)


def _check_frame(image: Any) -> np.ndarray:
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
    return np.ascontiguousarray(image)


class CrowdEstimator:
    """CSRNet in onnxruntime (registry ``csrnet-int8`` by default: int8 convolutions,
    built at fetch time; ``csrnet`` is the float32 graph). ``estimate(image)`` scales
    the frame so its long side is ``long_side`` (never up), runs the model and returns
    the density map and count. ``count_zones(image, polygons)`` is the full still-image
    count: density per zone, the tiled person pass (``people``, built on first use) for
    sparse zones, fused by ``fuse_count``.

    Coarse to fine (``coarse_side`` > 0): a first pass at long side ``coarse_side``
    finds where the people are; rows and columns at the frame's edges holding less than
    ``edge_mass`` of the coarse count (sky, facades, empty road) are cut off, the rest
    plus a margin of ``margin`` input pixels (context for the network's receptive field)
    is run at ``long_side``, and the cut-off border keeps the coarse density. When the
    crop would cover most of the frame the whole frame is run at ``long_side``; when the
    coarse pass finds under one person, its map is the answer (a scene that sparse is
    counted by the detector anyway)."""

    def __init__(
        self,
        model: str = "csrnet-int8",
        *,
        long_side: int = 1024,
        threads: int = 0,
        people: PersonCounter | None = None,
        coarse_side: int = 384,
        edge_mass: float = 0.05,
        margin: int = 32,
    ) -> None:
        from engine.plates import _resolve, _session

        self.path = _resolve(model)
        self.session = _session(self.path, threads, spin=False)
        self.input_name = self.session.get_inputs()[0].name
        if long_side < 64:
            raise ModelError(f"crowd long_side must be ≥ 64 px, got {long_side}")
        if coarse_side and not 64 <= coarse_side:
            raise ModelError(f"crowd coarse_side must be 0 (off) or ≥ 64 px, got {coarse_side}")
        if not 0 <= edge_mass < 0.5 or margin < 0:
            raise ModelError(
                f"crowd edge_mass must be in [0, 0.5) and margin ≥ 0, got {edge_mass}, {margin}"
            )
        self.long_side = int(long_side)
        self.coarse_side = int(coarse_side)
        self.edge_mass, self.margin = float(edge_mass), int(margin)
        self.threads = threads
        self._people = people

    @property
    def people(self) -> PersonCounter:
        if self._people is None:
            self._people = PersonCounter(threads=self.threads)
        return self._people

    def _run(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        import cv2

        blob = cv2.dnn.blobFromImage(image, 1.0, size, swapRB=False, crop=False)
        den = self.session.run(None, {self.input_name: blob})[0][0, 0]
        return np.ascontiguousarray(den, np.float32)

    def estimate(self, image: np.ndarray) -> CrowdEstimate:
        image = _check_frame(image)
        t0 = time.perf_counter()
        h, w = image.shape[:2]
        s = min(1.0, self.long_side / max(h, w))
        nw, nh = max(8, round(w * s)), max(8, round(h * s))
        cs = min(1.0, self.coarse_side / max(h, w)) if self.coarse_side else s
        den, region = (
            self._coarse_to_fine(image, s, cs, nw, nh)
            if cs < s and nw >= 32 and nh >= 32
            else (None, None)
        )
        if den is None:
            den = self._run(image, (nw, nh))
        ms = (time.perf_counter() - t0) * 1e3
        return CrowdEstimate(den, float(den.sum()), (w, h), (nw, nh), ms, region)

    def _coarse_to_fine(
        self, image: np.ndarray, s: float, cs: float, nw: int, nh: int
    ) -> tuple[np.ndarray | None, tuple[int, int, int, int] | None]:
        """(density on the full fine grid, frame region run at full scale), or (None,
        None) when the whole frame should run at full scale."""
        import cv2

        h, w = image.shape[:2]
        d0 = self._run(image, (max(8, round(w * cs)), max(8, round(h * cs))))
        gh, gw = nh // 8, nw // 8  # the full fine grid (three 2x2 floor pools)
        up = cv2.resize(d0, (gw, gh), interpolation=cv2.INTER_LINEAR)
        up *= float(d0.sum()) / float(up.sum()) if abs(float(up.sum())) > 1e-9 else 0.0
        pos = np.maximum(d0, 0)
        total = float(pos.sum())
        if total < 1.0:
            return up, (0, 0, 0, 0)
        r0, r1 = _trim(pos.sum(1), self.edge_mass * total)
        c0, c1 = _trim(pos.sum(0), self.edge_mass * total)
        # coarse cells -> fine cells (fine cell = 8/s frame px, coarse = 8/cs), + margin
        k, m = s / cs, self.margin / 8
        y0, y1 = max(0, int(r0 * k - m)), min(gh, int(np.ceil(r1 * k + m)))
        x0, x1 = max(0, int(c0 * k - m)), min(gw, int(np.ceil(c1 * k + m)))
        if (y1 - y0) * (x1 - x0) >= 0.85 * gh * gw or y1 - y0 < 4 or x1 - x0 < 4:
            return None, None
        # the frame region of fine cells [y0, y1) x [x0, x1), resized to 8 px per cell
        fy0, fy1 = round(y0 * 8 / s), min(h, round(y1 * 8 / s))
        fx0, fx1 = round(x0 * 8 / s), min(w, round(x1 * 8 / s))
        crop = np.ascontiguousarray(image[fy0:fy1, fx0:fx1])
        dc = self._run(crop, ((x1 - x0) * 8, (y1 - y0) * 8))[: y1 - y0, : x1 - x0]
        # The coarse pass under-counts small heads; scale the border it keeps by the
        # fine/coarse ratio measured inside the crop (same frame, same scene).
        inside = float(np.maximum(up[y0:y1, x0:x1], 0).sum())
        ratio = float(np.clip(np.maximum(dc, 0).sum() / inside, 0.25, 4.0)) if inside > 1 else 1.0
        den = up * ratio
        den[y0:y1, x0:x1] = dc
        return den, (fx0, fy0, fx1, fy1)

    def count_zones(
        self,
        image: np.ndarray,
        polygons: list[np.ndarray] | None = None,
        zone_ids: list[str] | None = None,
        *,
        dense_per_mpx: float = 400,
        person_conf: float = PERSON_CONF,
        people: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[dict[str, Any]]:
        """Per-zone fused counts for a still image (no tracker): see ``fuse_zones``.
        ``people``: (xyxy, scores) from ``self.people.boxes(image)`` if already run."""
        img = _check_frame(image)
        h, w = img.shape[:2]
        if polygons is None:
            polygons = [np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)]
            zone_ids = ["frame"]
        ids = zone_ids or [str(i) for i in range(len(polygons))]
        zones = _core.CrowdZones(
            [[(float(x), float(y)) for x, y in p] for p in polygons], (float(w), float(h))
        )
        est = self.estimate(img)

        def feet() -> np.ndarray:
            b, sc = people if people is not None else self.people.boxes(img)
            b = b[sc >= person_conf]
            return _feet(b, w, h)

        return fuse_zones(
            ids,
            [np.asarray(p, np.float64) for p in polygons],
            zones.counts(est.density).tolist(),
            zones.areas.tolist(),
            feet,
            dense_per_mpx,
        )


def fuse_zones(
    ids: list[str],
    polys: list[np.ndarray],
    density_counts: list[float],
    areas: list[float],
    feet: Any,
    dense_per_mpx: float,
) -> list[dict[str, Any]]:
    """Per-zone dicts (zone_id, count, method, density_count, detector_count,
    people_per_mpx). ``feet()`` returns the person foot points (K,2); it is only called
    when some zone is sparse (the person pass is the expensive part on stills)."""
    sparse = [
        fuse_count(dc, 0, a, dense_per_mpx)[1] == "detector"
        for dc, a in zip(density_counts, areas, strict=True)
    ]
    pts = feet() if any(sparse) else np.zeros((0, 2))
    out = []
    for zid, poly, dc, area in zip(ids, polys, density_counts, areas, strict=True):
        n_det = int(_inside(pts, poly).sum()) if len(pts) else 0
        count, method = fuse_count(dc, n_det, area, dense_per_mpx)
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
    return out


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
    model: str = "csrnet-int8"
    long_side: int = Field(default=1024, ge=64, le=4096)
    coarse_side: int = Field(default=384, ge=0, le=4096)  # 0 = no coarse-to-fine crop
    edge_mass: float = Field(default=0.05, ge=0, lt=0.5)
    margin: int = Field(default=32, ge=0)
    interval_s: float = Field(default=5.0, ge=0)
    dense_per_mpx: float = Field(default=400, ge=0)
    person_class: str = "person"
    # Sparse zones: "tracks" = the tracker's confirmed person tracks; "tiled" = the
    # tiled person pass on the frame (stills); "auto" = tracks when the stage gets
    # tracker state, tiled when it does not.
    person_source: Literal["auto", "tracks", "tiled"] = "auto"
    person_conf: float = Field(default=PERSON_CONF, ge=0, le=1)  # tiled pass
    tile_overlap: int = Field(default=96, ge=0)
    tile_sizes: tuple[int, ...] = TILE_SIZES  # for a 416 px detector; scaled for others
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


def _person_detector(pipeline_detector: Any) -> Any:
    """A person-only, low-threshold detector on the pipeline's model (None: registry
    YOLOv3-tiny, built by PersonCounter)."""
    if pipeline_detector is None or not hasattr(pipeline_detector, "cfg"):
        return None
    from engine.detector import Detector

    cfg = pipeline_detector.cfg.model_copy(update={"conf_threshold": 0.05, "classes": ["person"]})
    return Detector(cfg)


class CrowdStage:
    """Pipeline stage: a crowd update every ``interval_s`` per camera.

    Appends ``result.extras["crowd"]`` = list of per-zone dicts (zone_id, count,
    method, density_count, detector_count, people_per_mpx) and gathering ``Alert``s
    (kind "gathering" or "crowd_growth") to ``result.alerts``."""

    name = "crowd"

    def __init__(
        self,
        cfg: CrowdConfig,
        site: SiteConfig,
        estimator: CrowdEstimator | None = None,
        detector: Any = None,
    ) -> None:
        self.cfg = cfg
        self._pipeline_detector = detector
        self.site = site
        self.estimator = estimator or CrowdEstimator(
            cfg.model,
            long_side=cfg.long_side,
            threads=cfg.threads,
            coarse_side=cfg.coarse_side,
            edge_mass=cfg.edge_mass,
            margin=cfg.margin,
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
        cfg = validate_section(CrowdConfig, site.crowd, site.source, "crowd")
        return cls(cfg, site, estimator, detector)

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
        src = self.cfg.person_source
        tiled = src == "tiled" or (src == "auto" and analytics is None)

        def feet() -> np.ndarray:
            if tiled:
                b, sc = self._people().boxes(frame)
                b = b[sc >= self.cfg.person_conf]
                return _feet(b, w, h)
            p = [
                (o.x1, o.y1, o.x2, o.y2)
                for o in result.observations
                if o.cls == self.cfg.person_class
            ]
            return _feet(np.asarray(p, np.float64).reshape(-1, 4), w, h)

        out = fuse_zones(
            ids,
            polys,
            zones.counts(est.density).tolist(),
            zones.areas.tolist(),
            feet,
            self.cfg.dense_per_mpx,
        )
        for z in out:
            zid, count = z["zone_id"], z["count"]
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

    def _people(self) -> PersonCounter:
        if self.estimator._people is None:
            self.estimator._people = PersonCounter(
                _person_detector(self._pipeline_detector),
                overlap=self.cfg.tile_overlap,
                tile_sizes=self.cfg.tile_sizes if self.cfg.tile_sizes != TILE_SIZES else None,
                threads=self.cfg.threads,
            )
        return self.estimator.people


__all__ = [
    "PERSON_CONF",
    "TILE_SIZES",
    "CrowdConfig",
    "CrowdEstimate",
    "CrowdEstimator",
    "CrowdStage",
    "PersonCounter",
    "fuse_count",
    "fuse_zones",
]
