"""Type stubs for the compiled Rust module `engine._core`. Each section mirrors one
`rust_core/src/python/<module>.rs`; keep them in step."""

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

# ---- detect -------------------------------------------------------------------------

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

# ---- signal -------------------------------------------------------------------------

# ---- plate --------------------------------------------------------------------------

# ---- crowd --------------------------------------------------------------------------
