"""citystream: stream analytics for city traffic video.

Python orchestrates; the compiled Rust core (`engine._core`) does the per-frame work.
"""

from engine import _core
from engine.config import CameraConfig, DetectorConfig, SiteConfig, TrackerConfig
from engine.crowd import CrowdEstimator, CrowdStage
from engine.detections import COCO_TO_ROAD, Detections, RoadClass
from engine.detector import Detector
from engine.errors import (
    CitystreamError,
    ConfigError,
    EnvelopeError,
    FrameError,
    InputError,
    ModelError,
    ModelIntegrityError,
    ModelOutputError,
    PlateError,
    SignalConstraintError,
    TimeOrderError,
    UnknownCameraError,
)
from engine.flow import FlowConfig, FlowEstimator
from engine.pipeline import Pipeline, Stage
from engine.plates import PlateReader, PlateReading, PlateStage
from engine.records import Alert, FrameResult, LineCrossing, Observation, ZoneOccupancy
from engine.signal import (
    CoordActuatedController,
    CyclicGapController,
    DualRingController,
    GreenWave,
    Intersection,
    MaxPressureController,
    PressureActuatedController,
    SignalController,
    WebsterPlan,
)
from engine.tracking import CameraAnalytics, ConfirmedTracks

__version__ = _core.__version__

__all__ = [
    "COCO_TO_ROAD",
    "Alert",
    "CameraAnalytics",
    "CameraConfig",
    "CitystreamError",
    "ConfigError",
    "ConfirmedTracks",
    "CrowdEstimator",
    "CrowdStage",
    "Detections",
    "Detector",
    "DetectorConfig",
    "EnvelopeError",
    "FrameError",
    "FlowConfig",
    "FlowEstimator",
    "FrameResult",
    "InputError",
    "LineCrossing",
    "ModelError",
    "ModelIntegrityError",
    "ModelOutputError",
    "Observation",
    "Pipeline",
    "PlateReader",
    "PlateReading",
    "PlateStage",
    "PlateError",
    "RoadClass",
    "SignalConstraintError",
    "SiteConfig",
    "Stage",
    "TimeOrderError",
    "TrackerConfig",
    "UnknownCameraError",
    "ZoneOccupancy",
    "CoordActuatedController",
    "CyclicGapController",
    "DualRingController",
    "GreenWave",
    "Intersection",
    "MaxPressureController",
    "PressureActuatedController",
    "SignalController",
    "WebsterPlan",
]
