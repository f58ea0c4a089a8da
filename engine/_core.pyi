"""Type stubs for the compiled Rust module `engine._core`. Each section mirrors one
`rust_core/src/python/<module>.rs`; keep them in step."""

from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str

# ---- errors -------------------------------------------------------------------------
class CitystreamError(ValueError): ...
class FrameError(CitystreamError): ...
class InputError(CitystreamError): ...
class TimeOrderError(CitystreamError): ...
class ModelOutputError(CitystreamError): ...
class SignalConstraintError(CitystreamError): ...
class PlateError(CitystreamError): ...

# ---- preprocess ---------------------------------------------------------------------
def letterbox(
    frame: npt.NDArray[np.uint8], size: tuple[int, int] = (416, 416), parallel: bool = True
) -> tuple[npt.NDArray[np.float32], float, tuple[float, float]]:
    """Letterbox a BGR uint8 HxWx3 frame to RGB float32 (3, h, w) in 0..1 (pad 114/255).
    size=(w, h). Returns (tensor, scale, (pad_x, pad_y)); x_orig = (x - pad_x) / scale.
    parallel=False keeps all rows on the calling thread (better when cores are busy).
    Raises FrameError for anything but a non-empty C-contiguous uint8 HxWx3 array."""

def letterbox_batch(
    frames: list[npt.NDArray[np.uint8]],
    size: tuple[int, int] = (416, 416),
    parallel: bool = True,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Letterbox frames of any sizes into one (N, 3, h, w) tensor (frames in parallel).
    Returns (batch, scales (N,), pads (N, 2) as (pad_x, pad_y))."""

def warp_perspective(
    frame: npt.NDArray[np.uint8],
    h_inv: npt.ArrayLike,
    size: tuple[int, int],
    out: str = "u8",
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
    std: tuple[float, float, float] = (255.0, 255.0, 255.0),
    rgb: bool = True,
) -> npt.NDArray[np.uint8] | npt.NDArray[np.float32]:
    """Bilinear perspective warp; h_inv (3x3) maps output pixel -> source pixel (like
    cv2.warpPerspective with WARP_INVERSE_MAP, black border). out="u8": (h, w, 3) BGR
    uint8; out="chw": (3, h, w) float32 (v - mean) / std, RGB planes unless rgb=False."""

def quad_to_rect_h_inv(
    quad: list[tuple[float, float]], size: tuple[int, int]
) -> npt.NDArray[np.float64]:
    """h_inv for warp_perspective that rectifies quad (TL, TR, BR, BL) to size=(w, h)."""

# ---- detect -------------------------------------------------------------------------
def decode_yolo(
    output: npt.NDArray[np.float32],
    kind: str,
    conf: float,
    iou: float,
    scales: list[float],
    pads: list[tuple[float, float]],
    orig_sizes: list[tuple[float, float]],
    max_det: int = 300,
    class_map: list[int] | None = None,
    input_size: tuple[int, int] = (416, 416),
) -> list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int32]]]:
    """Decode a YOLO output batch and run class-aware NMS. kind: yolov3 | yolov5 | yolox
    ([N, A, 5+C] decoded rows), yolox_raw (grid-relative, strides 8/16/32 over input_size),
    yolov8 ([N, 4+C, A]). class_map: model class -> output id or -1 (None: COCO-80 -> road
    classes; [] keeps model ids). Per item: (xyxy (K,4) in original pixels, scores, class_ids).
    Rows with NaN/inf are skipped; a wrong shape raises ModelOutputError."""

def nms(
    xyxy: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    class_ids: npt.NDArray[np.int32],
    iou: float = 0.45,
    max_det: int = 300,
) -> npt.NDArray[np.int64]:
    """Class-aware greedy NMS; kept indices, highest score first."""

# ---- track --------------------------------------------------------------------------
class Tracker:
    """ByteTrack-style tracker (real-dt Kalman filter, two-stage association, optimal sparse
    assignment). `update` returns the confirmed tracks matched this frame."""

    def __init__(
        self,
        high_threshold: float = 0.5,
        low_threshold: float = 0.1,
        new_track_threshold: float = 0.6,
        match_iou: float = 0.2,
        min_hits: int = 3,
        max_lost_s: float = 1.5,
        speed_window_s: float = 1.0,
        class_mismatch_cost: float = 0.3,
    ) -> None: ...
    def update(
        self,
        xyxy: npt.NDArray[np.float32],
        scores: npt.NDArray[np.float32],
        class_ids: npt.NDArray[np.int32],
        ts: float,
    ) -> dict[str, np.ndarray]:
        """keys: ids (uint64), xyxy (float32 (M,4)), class_ids, scores, det_index (uint32)."""
    def __len__(self) -> int: ...
    @property
    def confirmed_total(self) -> int: ...
    @property
    def last_ts(self) -> float | None: ...

# ---- geometry -----------------------------------------------------------------------
class Homography:
    """Image pixels ↔ road-plane metres."""

    @staticmethod
    def from_points(
        image: npt.NDArray[np.float64], world: npt.NDArray[np.float64]
    ) -> Homography: ...
    @staticmethod
    def from_matrix(m: npt.NDArray[np.float64]) -> Homography: ...
    @property
    def matrix(self) -> npt.NDArray[np.float64]: ...
    def to_world(self, pts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...
    def to_image(self, pts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...

class Polygon:
    """A simple polygon; raises InputError("zone polygon self-intersects at edges i and j")."""

    def __init__(self, points: npt.NDArray[np.float64]) -> None: ...
    @property
    def area(self) -> float: ...
    def contains(self, pts: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]: ...

def side_of_line(
    a: tuple[float, float], b: tuple[float, float], pts: npt.NDArray[np.float64]
) -> npt.NDArray[np.int8]:
    """+1 left of a→b (image coords, y down), −1 right, 0 on the line."""

def segment_intersection(
    p1: tuple[float, float],
    p2: tuple[float, float],
    q1: tuple[float, float],
    q2: tuple[float, float],
) -> tuple[float, float] | None: ...

# ---- count --------------------------------------------------------------------------
class CameraAnalyticsCore:
    """Tracker + line crossings + zones + road-plane speed: one call per frame."""

    def __init__(
        self,
        lines: list[
            tuple[tuple[float, float], tuple[float, float], list[int] | None, float | None]
        ] = ...,
        zones: list[npt.NDArray[np.float64]] = ...,
        homography: Homography | None = None,
        *,
        high_threshold: float = 0.5,
        low_threshold: float = 0.1,
        new_track_threshold: float = 0.6,
        match_iou: float = 0.2,
        min_hits: int = 3,
        max_lost_s: float = 1.5,
        speed_window_s: float = 1.0,
        class_mismatch_cost: float = 0.3,
    ) -> None: ...
    def update(
        self,
        xyxy: npt.NDArray[np.float32],
        scores: npt.NDArray[np.float32],
        class_ids: npt.NDArray[np.int32],
        ts: float,
    ) -> dict[str, np.ndarray]:
        """keys: ids, xyxy, class_ids, scores, det_index, world_xy, speed_kmh, stopped_s;
        cross_track_id, cross_line, cross_direction (+1 in/-1 out), cross_class_id,
        cross_speed_kmh; zone_count, zone_max_dwell_s, zone_member_zone,
        zone_member_track_id, zone_member_dwell_s."""
    def counts(self) -> list[tuple[int, int, int, int]]:
        """(line index, direction, class id, count) totals."""
    @property
    def n_alive(self) -> int: ...
    @property
    def confirmed_total(self) -> int: ...
    @property
    def last_ts(self) -> float | None: ...

# ---- flow ---------------------------------------------------------------------------
# Rows are (group, window), group-major: row = group * n_windows + window.
FLOW_TPI_TTI_BREAKS: list[float]

def flow_aggregate_crossings(
    ts: npt.NDArray[np.float64],
    lane: npt.NDArray[np.uint32],
    speed_kmh: npt.NDArray[np.float64],  # NaN = not measured; never negative
    pcu: npt.NDArray[np.float64],  # > 0
    group_of_lane: npt.NDArray[np.uint32],
    edges: npt.NDArray[np.float64],  # strictly increasing window edges (s)
) -> dict[str, object]: ...
def flow_aggregate_presence(
    frame_ts: npt.NDArray[np.float64],
    frame: npt.NDArray[np.uint32],
    lane: npt.NDArray[np.uint32],
    dist_m: npt.NDArray[np.float64],
    speed_mps: npt.NDArray[np.float64],
    length_m: npt.NDArray[np.float64],
    segment_m: npt.NDArray[np.float64],
    group_of_lane: npt.NDArray[np.uint32],
    edges: npt.NDArray[np.float64],
    detector_from_m: float = 0.0,
    detector_to_m: float = 10.0,
    stopped_mps: float = ...,
    queue_gap_m: float = 25.0,
    advance_m: npt.NDArray[np.float64] | None = None,  # metres towards the line since
    dt_s: npt.NDArray[np.float64] | None = None,  # the track's previous sample, seconds
) -> dict[str, object]: ...
def flow_signal_performance(
    volume_vph: npt.NDArray[np.float64],
    sat_flow_vph: npt.NDArray[np.float64],
    green_s: npt.NDArray[np.float64],
    cycle_s: npt.NDArray[np.float64],
) -> dict[str, object]: ...
def flow_tpi(
    tti: npt.NDArray[np.float64], breaks: list[float] | None = None
) -> npt.NDArray[np.float64]: ...

# ---- signal -------------------------------------------------------------------------
class Intersection:
    def __init__(
        self,
        id: str,
        movements: list[
            tuple[str, str, str, int, float, float]
        ],  # id, approach, turn, lanes, sat_flow, crossing_m
        phases: list[
            tuple[str, list[str], float | None, float | None, float | None, float | None]
        ],  # name, movements, min, max, yellow, all_red
        order: list[str] | None = None,
        conflicts: list[tuple[str, str]] | None = None,
        permissive: list[tuple[str, str]] | None = None,
        clearance: dict[str, float] | None = None,
        min_green: float = 10.0,
        max_green: float = 60.0,
        cycle_min: float = 40.0,
        cycle_max: float = 180.0,
    ) -> None: ...
    @staticmethod
    def standard_four_arm(
        id: str,
        lanes_left: int = 1,
        lanes_through: int = 2,
        lanes_right: int = 1,
        sat_flow_per_lane: float = 1800.0,
        protected_left: bool = True,
        pedestrians: bool = False,
        crossing_m: float = 14.0,
        min_green: float = 10.0,
        max_green: float = 60.0,
        yellow: float | None = None,
        all_red: float | None = None,
        cycle_min: float = 40.0,
        cycle_max: float = 180.0,
        clearance: dict[str, float] | None = None,
        dual_ring: bool = False,
    ) -> Intersection: ...
    id: str
    movement_ids: list[str]
    approaches: list[str]
    turns: list[str]
    lanes: list[int]
    sat_flows: list[float]
    phase_names: list[str]
    phase_movements: list[list[str]]
    min_green: list[float]
    max_green: list[float]
    yellow: list[float]
    all_red: list[float]
    preempt_min_green: list[float]
    order: list[str]
    cycle_bounds: tuple[float, float]
    kinematic_clearance: tuple[float, float]
    def phase_lost_time(self, phase: int | str) -> float: ...
    def phases_serving(self, movement: str) -> list[str]: ...
    def conflict_matrix(self) -> np.ndarray: ...

def webster_plan(ix: Intersection, flows: np.ndarray) -> dict[str, Any]: ...
def critical_lane_plan(
    ix: Intersection, flows: np.ndarray, target_vc: float = 0.9, phf: float = 1.0
) -> dict[str, Any]: ...
def ite_yellow(reaction_s: float, speed_kmh: float, decel: float, grade: float) -> float: ...
def all_red_time(width_m: float, vehicle_length_m: float, speed_kmh: float) -> float: ...
def ped_min_green(walk_s: float, crossing_m: float, ped_speed: float) -> float: ...

class AdaptivePlanner:
    def __init__(
        self,
        ix: Intersection,
        alpha: float = 0.4,
        max_cycle_change: float = 10.0,
        max_green_change: float = 8.0,
    ) -> None: ...
    def update(self, flows: np.ndarray) -> dict[str, Any]: ...
    updates: int

class MaxPressureController:
    def __init__(
        self,
        ix: Intersection,
        approach_weight: float = 0.0,
        switch_margin: float = 0.0,
        cyclic: bool = False,
    ) -> None: ...
    def decide(
        self,
        phase: int,
        elapsed: float,
        queue: np.ndarray,
        approaching: np.ndarray,
        gap: np.ndarray | None = None,
        downstream: np.ndarray | None = None,
        interval: str = "green",
        now: float = 0.0,
    ) -> tuple[int | None, np.ndarray, list[bool]]: ...

class PressureActuatedController:
    def __init__(
        self,
        ix: Intersection,
        approach_weight: float = 0.5,
        gap_out_s: float = 3.0,
        switch_ratio: float = 2.0,
        switch_margin: float = 4.0,
        max_wait_s: float = 180.0,
        cyclic: bool = False,
        fair_green_s: float = 25.0,
    ) -> None: ...
    def decide(
        self,
        phase: int,
        elapsed: float,
        queue: np.ndarray,
        approaching: np.ndarray,
        gap: np.ndarray | None = None,
        downstream: np.ndarray | None = None,
        interval: str = "green",
        now: float = 0.0,
    ) -> tuple[int | None, np.ndarray, list[bool]]: ...

class _DischargeController:
    # typing only: the decide() the discharge controllers share (discharge_pymethods! in
    # rust_core/src/python/signal.rs); not a runtime base class
    def decide(
        self,
        phase: int,
        elapsed: float,
        queue: np.ndarray,
        approaching: np.ndarray,
        expected: np.ndarray,
        interval: str = "green",
        now: float = 0.0,
    ) -> tuple[int | None, np.ndarray, list[bool]]: ...

class CyclicGapController(_DischargeController):
    def __init__(
        self,
        ix: Intersection,
        max_green_through_s: float = 60.0,
        max_green_left_s: float = 30.0,
        horizon_s: float = 6.0,
        efficiency: float = 0.2,
        lane_sat_vps: float = 0.5,
        min_call_veh: float = 0.5,
        phase_lanes: list[float] | None = None,
    ) -> None: ...

class CoordActuatedController(_DischargeController):
    def __init__(
        self,
        ix: Intersection,
        greens: list[float],
        offset: float = 0.0,
        order: list[int] | None = None,
        cycle: float | None = None,
        coord_hold: float = 0.75,
        horizon_s: float = 6.0,
        efficiency: float = 0.2,
        lane_sat_vps: float = 0.5,
        min_call_veh: float = 0.5,
        phase_lanes: list[float] | None = None,
        start_tolerance_s: float = 1.0,
    ) -> None: ...
    cycle: float
    greens: list[float]
    starts: list[float]
    force_offs: list[float]
    order: list[int]
    offset: float

class DualRingController(_DischargeController):
    def __init__(
        self,
        ix: Intersection,
        max_green_through_s: float = 60.0,
        max_green_left_s: float = 30.0,
        horizon_s: float = 6.0,
        efficiency: float = 0.35,
        lane_sat_vps: float = 0.5,
        min_call_veh: float = 0.5,
        lead_left_veh: float = ...,
        early_left_veh: float = ...,
        count_right_lanes: bool = False,
        early_left_queue_veh: float = 9.0,
        busy_cross_queue_veh: float = 40.0,
        busy_max_green_through_s: float = 45.0,
    ) -> None: ...
    @property
    def params(self) -> dict[str, float | bool]: ...
    @staticmethod
    def default_params() -> dict[str, float | bool]: ...
    @property
    def groups(self) -> list[list[str]]: ...

class FixedTimeController:
    def __init__(self, ix: Intersection, greens: list[float], offset: float = 0.0) -> None: ...
    cycle: float

class AdaptiveController:
    def __init__(
        self,
        ix: Intersection,
        initial_flows: list[float],
        alpha: float = 0.4,
        max_cycle_change: float = 10.0,
        max_green_change: float = 8.0,
    ) -> None: ...

class SignalController:
    def __init__(
        self, ix: Intersection, controller: Any = None, initial_phase: int = 0
    ) -> None: ...
    def step(
        self,
        dt: float,
        queue: np.ndarray | None = None,
        approaching: np.ndarray | None = None,
        gap: np.ndarray | None = None,
        downstream: np.ndarray | None = None,
        arrivals: np.ndarray | None = None,
        request: int | str | None = None,
        expected: np.ndarray | None = None,
    ) -> dict[str, Any]: ...
    def status(self) -> dict[str, Any]: ...
    def lights(self) -> np.ndarray: ...
    def sumo_state(self, links: list[str | int | None], minor: list[bool] | None = None) -> str: ...
    def preempt(self, phase: int | str) -> None: ...
    def clear_preempt(self) -> None: ...
    preempting: int | None
    switches: int
    plan_greens: list[float] | None
    pressures: list[float] | None

def green_wave_optimize(
    distances_m: list[float],
    speed_out: list[float],
    speed_in: list[float],
    green_split: list[float],
    cycle_min: float,
    cycle_max: float,
    cycle_step: float = 1.0,
) -> dict[str, Any]: ...
def green_wave_exhaustive(
    distances_m: list[float],
    speed_out: list[float],
    speed_in: list[float],
    green_split: list[float],
    cycle: float,
    step: float,
) -> dict[str, Any]: ...
def green_wave_bandwidths(
    distances_m: list[float],
    speed_out: list[float],
    speed_in: list[float],
    green_split: list[float],
    cycle: float,
    offsets: list[float],
) -> tuple[float, float]: ...
def bench_decisions(ix: Intersection, n: int, hybrid: bool = False, seed: int = 1) -> float: ...
def bench_replans(ix: Intersection, n: int, seed: int = 1) -> float: ...

# ---- plate --------------------------------------------------------------------------
def plate_decode_detections(
    loc: npt.NDArray[np.float32],
    conf: npt.NDArray[np.float32],
    landms: npt.NDArray[np.float32],
    input_hw: tuple[int, int],
    scale: tuple[float, float] = (1.0, 1.0),
    conf_threshold: float = 0.5,
    nms_iou: float = 0.4,
    keep_top_k: int = 50,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
def plate_rec_batch(
    frame: npt.NDArray[np.uint8],
    quads: npt.NDArray[np.float32],
    height: int = 32,
    margin: float = ...,
    max_width: int = 480,
    min_size: tuple[float, float] = (24.0, 8.0),
    aspect: float = 0.0,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
def plate_sub_quad(
    quad: npt.NDArray[np.float32], u0: float, v0: float, u1: float, v1: float
) -> npt.NDArray[np.float32]: ...
def plate_colours(frame: npt.NDArray[np.uint8], quads: npt.NDArray[np.float32]) -> list[str]: ...
def plate_check(text: str) -> tuple[str, bool, bool, str | None, str]: ...
def plate_vote(texts: list[str], confs: list[list[float]]) -> tuple[str, list[float]] | None: ...
def plate_token(key: bytes, text: str, hex_len: int = 16) -> str: ...
def plate_tokens(key: bytes, texts: list[str], hex_len: int = 16) -> list[str]: ...

class PlateDecoder:
    def __init__(self, chars: list[str], blank: int = 0) -> None: ...
    @property
    def num_classes(self) -> int: ...
    def decode(
        self, probs: npt.NDArray[np.float32]
    ) -> list[tuple[str, list[float], bool, bool, str | None, str]]: ...

# ---- crowd --------------------------------------------------------------------------
def check_zone_polygon(polygon: list[tuple[float, float]]) -> None: ...

class CrowdZones:
    def __init__(
        self, polygons: list[list[tuple[float, float]]], frame_size: tuple[float, float]
    ) -> None: ...
    @property
    def areas(self) -> npt.NDArray[np.float64]: ...
    def counts(self, density: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]: ...
    def mask(self, i: int, grid_w: int, grid_h: int) -> npt.NDArray[np.uint8]: ...

class GatheringMonitor:
    def __init__(
        self,
        threshold: float,
        dwell_s: float,
        growth_per_min: float = 0.0,
        window_s: float = 60.0,
        cooldown_s: float = 300.0,
    ) -> None: ...
    def update(self, ts: float, count: float) -> list[tuple[str, float, float, float]]: ...

def crowd_tile_grid(
    width: int, height: int, tile: int = 416, overlap: int = 96
) -> list[tuple[int, int, int, int]]:
    """Overlapping tiles (x, y, tile_w, tile_h) covering a width x height image."""

def crowd_merge_people(
    xyxy: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    iou: float = 0.45,
    ios: float = 0.8,
    top_tol: float = ...,
) -> npt.NDArray[np.int64]:
    """Greedy merge of person boxes pooled from tiles: drop a box with IoU >= iou or
    intersection-over-smaller >= ios with a kept one (the latter only when their top
    edges are within top_tol x the smaller box's height; default infinity = always).
    Kept indices, best first."""
