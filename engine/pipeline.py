"""`engine.Pipeline`: frames in, structured records out.

The same pipeline runs with or without a broker: `process(frame, camera_id, ts)` returns
the records directly; the Faust layer (`streams/`) only adds partitioning, batching and
persistence around it. All per-pixel and per-object work is in the Rust core.

    >>> import numpy as np
    >>> from engine import Pipeline, SiteConfig, Detections
    >>> cfg = SiteConfig.from_dict({"cameras": {"cam1": {"fps": 10}}})
    >>> p = Pipeline(cfg, load_detector=False)
    >>> r = p.process_detections(Detections.empty(), "cam1", ts=0.0)
    >>> (r.camera_id, r.seq, len(r.observations))
    ('cam1', 0, 0)
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from engine.config import SiteConfig
from engine.detections import Detections
from engine.errors import CitystreamError, FrameError, TimeOrderError
from engine.records import FrameResult

if TYPE_CHECKING:
    from engine.detector import Detector
    from engine.tracking import CameraAnalytics


class Stage(Protocol):
    """A post-tracking stage (plates, crowd, ...): reads the frame and the tracked result,
    appends to `result.extras` / `result.alerts` / observation fields."""

    name: str

    def __call__(
        self, frame: np.ndarray | None, result: FrameResult, analytics: CameraAnalytics
    ) -> None: ...


FrameItem = tuple[np.ndarray, str, float, int | None]


def check_frame(frame: Any, camera_id: str) -> np.ndarray:
    """Validate a frame against the interface (uint8 H×W×3 BGR, C-contiguous, non-empty).
    Raises FrameError naming the camera and what was wrong."""
    if not isinstance(frame, np.ndarray):
        raise FrameError(
            f"camera {camera_id!r}: frame must be a numpy.ndarray, got {type(frame).__name__}"
        )
    if frame.dtype != np.uint8:
        raise FrameError(f"camera {camera_id!r}: frame must be uint8, got {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise FrameError(
            f"camera {camera_id!r}: frame must be H×W×3 (BGR), got shape {frame.shape}"
        )
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise FrameError(f"camera {camera_id!r}: frame is empty, shape {frame.shape}")
    if not frame.flags.c_contiguous:
        raise FrameError(
            f"camera {camera_id!r}: frame must be C-contiguous (use np.ascontiguousarray), "
            f"got strides {frame.strides}"
        )
    return frame


class Pipeline:
    """Per-frame video structuring for a site: detector → tracker → lines/zones/speed →
    optional stages (plates, crowd).

    Parameters
    ----------
    config: a SiteConfig or the path of a site TOML file.
    load_detector: load the ONNX detector now (False for detection-only use:
        `process_detections` with recorded or simulated detections).
    detector: an already-built detector to share between pipelines.
    """

    def __init__(
        self,
        config: SiteConfig | str | os.PathLike[str],
        *,
        load_detector: bool = True,
        detector: Detector | None = None,
        stages: Sequence[Stage] | None = None,
    ) -> None:
        if not isinstance(config, SiteConfig):
            config = SiteConfig.from_toml(Path(config))
        self.config = config
        self._detector = detector
        if self._detector is None and load_detector:
            from engine.detector import Detector

            self._detector = Detector(config.detector)
        self._analytics: dict[str, CameraAnalytics] = {}
        self._next_seq: dict[str, int] = {}
        self._last_ts: dict[str, float] = {}
        self.stages: list[Stage] = list(stages) if stages is not None else self._configured_stages()

    # ---- configuration -----------------------------------------------------------------
    def _configured_stages(self) -> list[Stage]:
        """Stages switched on in the site config (`[plates] enabled = true`, `[crowd] ...`)."""
        out: list[Stage] = []
        if self.config.plates.get("enabled", False):
            from engine.plates import PlateStage

            out.append(PlateStage.from_config(self.config))
        if self.config.crowd.get("enabled", False):
            from engine.crowd import CrowdStage

            out.append(CrowdStage.from_config(self.config, detector=self._detector))
        return out

    def add_stage(self, stage: Stage) -> None:
        self.stages.append(stage)

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            raise CitystreamError(
                "this Pipeline was built with load_detector=False: use process_detections(), "
                "or build it with a detector"
            )
        return self._detector

    def analytics(self, camera_id: str) -> CameraAnalytics:
        """The per-camera tracker and counters (created on first use)."""
        a = self._analytics.get(camera_id)
        if a is None:
            from engine.tracking import CameraAnalytics

            cam = self.config.camera(camera_id)  # UnknownCameraError if not configured
            a = CameraAnalytics(camera_id, cam, self.config.tracker)
            self._analytics[camera_id] = a
        return a

    @property
    def cameras(self) -> list[str]:
        return list(self.config.cameras)

    # ---- per-frame API -----------------------------------------------------------------
    def _admit(self, camera_id: str, ts: float, seq: int | None) -> int:
        """Check camera and time order before any work; returns the sequence number."""
        self.config.camera(camera_id)
        if not np.isfinite(ts):
            raise TimeOrderError(f"camera {camera_id!r}: timestamp must be finite, got {ts!r}")
        last = self._last_ts.get(camera_id)
        if last is not None and ts < last:
            raise TimeOrderError(
                f"camera {camera_id!r}: timestamp went backwards ({ts:.6f} < previous {last:.6f})"
            )
        if seq is None:
            seq = self._next_seq.get(camera_id, 0)
        return int(seq)

    def _finish(
        self,
        camera_id: str,
        ts: float,
        seq: int,
        dets: Detections,
        frame: np.ndarray | None,
        timings: dict[str, float],
    ) -> FrameResult:
        an = self.analytics(camera_id)
        t0 = time.perf_counter()
        result = an.update(dets, ts, seq)
        timings["track_count"] = (time.perf_counter() - t0) * 1e3
        self._last_ts[camera_id] = ts
        self._next_seq[camera_id] = seq + 1
        for stage in self.stages:
            t0 = time.perf_counter()
            stage(frame, result, an)
            timings[stage.name] = (time.perf_counter() - t0) * 1e3
        result.timings_ms.update(timings)
        return result

    def process(
        self, frame: np.ndarray, camera_id: str, ts: float, seq: int | None = None
    ) -> FrameResult:
        """Structure one frame of `camera_id` taken at `ts` seconds."""
        return self.process_batch([(frame, camera_id, ts, seq)])[0]  # type: ignore[return-value]

    def process_batch(
        self,
        items: Sequence[FrameItem],
        *,
        errors: Literal["raise", "return"] = "raise",
    ) -> list[FrameResult | CitystreamError]:
        """Structure frames of many cameras with ONE detector call.

        `items` are (frame, camera_id, ts, seq) tuples. With errors="return", a bad item
        yields its typed exception in its slot and the others are processed; with "raise"
        (default) the first bad item raises before any work is done.
        """
        admitted: list[tuple[int, np.ndarray, str, float, int]] = []
        out: list[FrameResult | CitystreamError | None] = [None] * len(items)
        seen_ts: dict[str, float] = {}
        for i, (frame, camera_id, ts, seq) in enumerate(items):
            try:
                check_frame(frame, camera_id)
                s = self._admit(camera_id, ts, seq)
                if camera_id in seen_ts and ts < seen_ts[camera_id]:
                    raise TimeOrderError(
                        f"camera {camera_id!r}: timestamps go backwards within the batch"
                    )
                seen_ts[camera_id] = ts
                admitted.append((i, frame, camera_id, float(ts), s))
            except CitystreamError as e:
                if errors == "raise":
                    raise
                out[i] = e
        if admitted:
            t0 = time.perf_counter()
            dets = self.detector.detect_batch([a[1] for a in admitted])
            det_ms = (time.perf_counter() - t0) * 1e3 / len(admitted)
            stage_ms = dict(getattr(self.detector, "last_timings_ms", {}) or {})
            per_frame = {k: v / len(admitted) for k, v in stage_ms.items()}
            for (i, frame, camera_id, ts, s), d in zip(admitted, dets, strict=True):
                timings = {"detect": det_ms, **{f"detect_{k}": v for k, v in per_frame.items()}}
                try:
                    out[i] = self._finish(camera_id, ts, s, d, frame, timings)
                except CitystreamError as e:
                    if errors == "raise":
                        raise
                    out[i] = e
        return out  # type: ignore[return-value]

    def process_detections(
        self,
        detections: Detections,
        camera_id: str,
        ts: float,
        seq: int | None = None,
        frame: np.ndarray | None = None,
    ) -> FrameResult:
        """Structure one frame from detections made elsewhere (recorded, simulated, or an
        external detector). `frame` is optional; stages that need pixels skip without it."""
        s = self._admit(camera_id, ts, seq)
        if frame is not None:
            check_frame(frame, camera_id)
        return self._finish(camera_id, float(ts), s, detections, frame, {})

    def reset(self, camera_id: str | None = None) -> None:
        """Forget tracker state (all cameras, or one)."""
        ids = [camera_id] if camera_id else list(self._analytics)
        for c in ids:
            self._analytics.pop(c, None)
            self._last_ts.pop(c, None)
            self._next_seq.pop(c, None)
