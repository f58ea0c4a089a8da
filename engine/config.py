"""Site configuration: one TOML file per site, validated on load.

Every error names the file, the key (dotted path) and what was expected::

    >>> from engine.config import SiteConfig
    >>> cfg = SiteConfig.from_toml_str('[cameras.cam1]\\nfps = 10\\n', source="site.toml")
    >>> cfg.cameras["cam1"].fps
    10.0
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.errors import ConfigError

Point = tuple[float, float]


def shared_data_dir() -> Path:
    """The shared data with ground truth (plates, crowds, the sample video):
    ``CITYSTREAM_DATA``, default ``<repo>/../shared/data`` (beside the checkout, as in CI)."""
    env = os.environ.get("CITYSTREAM_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def validate_section(model: type[BaseModel], data: Any, source: str, prefix: str = "") -> Any:
    """Validate `data` (a TOML table) with `model`; a failure raises ConfigError naming the
    file, the dotted key (under `prefix`, e.g. "crowd") and what was expected. Every
    section owner (plates, crowd, flow, signals, streams) validates through this."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(p for p in [prefix, *(str(x) for x in err["loc"])] if p) or "<root>"
        raise ConfigError(source, key, err["msg"], err.get("input")) from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class HomographyConfig(_Strict):
    """≥4 image↔road point pairs; road coordinates in metres."""

    image: list[Point] = Field(min_length=4)
    world: list[Point] = Field(min_length=4)

    @model_validator(mode="after")
    def _same_len(self) -> HomographyConfig:
        if len(self.image) != len(self.world):
            raise ValueError(
                f"'image' has {len(self.image)} points but 'world' has {len(self.world)}; "
                "they must pair up one to one"
            )
        return self


class LineConfig(_Strict):
    """A directed counting line a→b in image pixels. A track moving from the right of
    a→b to its left counts as `in`; the opposite as `out`."""

    id: str
    a: Point
    b: Point
    lane: str | None = None
    classes: list[str] | None = None  # None = every class

    @model_validator(mode="after")
    def _non_degenerate(self) -> LineConfig:
        if self.a == self.b:
            raise ValueError("line end points 'a' and 'b' are identical")
        return self


class ZoneConfig(_Strict):
    """A polygon zone (image pixels): occupancy, dwell, stopped-vehicle and crowd stats."""

    id: str
    polygon: list[Point] = Field(min_length=3)
    kind: Literal["generic", "lane", "crowd", "no_stopping", "stop_line_queue"] = "generic"
    lane: str | None = None


class CameraConfig(_Strict):
    fps: float = Field(default=25.0, gt=0)
    homography: HomographyConfig | None = None
    lines: list[LineConfig] = Field(default_factory=list)
    zones: list[ZoneConfig] = Field(default_factory=list)
    intersection: str | None = None

    @field_validator("lines", "zones")
    @classmethod
    def _unique_ids(cls, v: list[Any]) -> list[Any]:
        ids = [x.id for x in v]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"duplicate ids {sorted(dup)}")
        return v


class DetectorConfig(_Strict):
    """Any YOLO-family ONNX plugs in here (v3/v5 anchor-based, v8 anchor-free, YOLOX)."""

    model: str = "yolov3-tiny"  # a registry id, or a path to an .onnx file
    kind: Literal["auto", "yolov3", "yolov5", "yolov8", "yolox"] = "auto"
    input_size: tuple[int, int] = (416, 416)  # (width, height)
    conf_threshold: float = Field(default=0.25, ge=0, le=1)
    iou_threshold: float = Field(default=0.45, ge=0, le=1)
    providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"])
    threads: int = Field(default=0, ge=0)  # 0 = onnxruntime's default
    classes: list[str] = Field(
        default_factory=lambda: ["person", "bicycle", "car", "motorcycle", "bus", "truck"]
    )


class TrackerConfig(_Strict):
    high_threshold: float = Field(default=0.5, ge=0, le=1)
    low_threshold: float = Field(default=0.1, ge=0, le=1)
    new_track_threshold: float = Field(default=0.6, ge=0, le=1)
    match_iou: float = Field(default=0.2, ge=0, le=1)  # minimum IoU for association
    min_hits: int = Field(default=3, ge=1)  # frames before a tentative track is confirmed
    max_lost_s: float = Field(default=1.5, gt=0)  # seconds a lost track is kept
    speed_window_s: float = Field(default=1.0, gt=0)


class PrivacyConfig(_Strict):
    """Plate text is personal data: records carry an HMAC token unless clear_text = true."""

    secret_env: str = "CITYSTREAM_PLATE_SECRET"
    secret: str | None = None  # prefer secret_env in production
    clear_text: bool = False

    def key(self) -> bytes:
        s = self.secret or os.environ.get(self.secret_env)
        if not s:
            # A per-process random key still protects the text; tokens then only join
            # within one process run. Configure a secret for stable tokens.
            s = _process_secret()
        return s.encode("utf-8")


_PROC_SECRET: str | None = None


def _process_secret() -> str:
    global _PROC_SECRET
    if _PROC_SECRET is None:
        _PROC_SECRET = os.urandom(32).hex()
    return _PROC_SECRET


class SiteConfig(_Strict):
    name: str = "site"
    cameras: dict[str, CameraConfig] = Field(default_factory=dict)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    # Sections owned by later stages (plates, crowd, flow/signals, streams). Validated
    # by their own modules; kept as raw tables here so one TOML file holds a whole site.
    plates: dict[str, Any] = Field(default_factory=dict)
    crowd: dict[str, Any] = Field(default_factory=dict)
    flow: dict[str, Any] = Field(default_factory=dict)
    intersections: dict[str, Any] = Field(default_factory=dict)
    corridors: dict[str, Any] = Field(default_factory=dict)
    streams: dict[str, Any] = Field(default_factory=dict)

    source: str = Field(default="<memory>", exclude=True)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> SiteConfig:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(str(p), "<file>", "an existing TOML file") from None
        return cls.from_toml_str(text, source=str(p))

    @classmethod
    def from_toml_str(cls, text: str, source: str = "<memory>") -> SiteConfig:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(source, "<syntax>", f"valid TOML ({e})") from None
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<memory>") -> SiteConfig:
        cfg = validate_section(cls, data, source)
        cfg.source = source
        return cfg

    def camera(self, camera_id: str) -> CameraConfig:
        from engine.errors import UnknownCameraError

        try:
            return self.cameras[camera_id]
        except KeyError:
            raise UnknownCameraError(
                f"unknown camera {camera_id!r}: {self.source} defines "
                f"{sorted(self.cameras) or 'no cameras'}"
            ) from None
