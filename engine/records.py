"""Typed output records of the per-frame pipeline. JSON- and Arrow-serialisable.

Every record is keyed so that re-processing the same frame yields the same key (idempotent
outputs downstream): observations by (camera_id, seq, track_id), crossings by
(camera_id, track_id, line_id)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import polars as pl


@dataclass(slots=True)
class Observation:
    """One confirmed track in one frame."""

    camera_id: str
    seq: int
    ts: float
    track_id: int
    cls: str
    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    world_x: float | None = None  # road-plane metres (when the camera has a homography)
    world_y: float | None = None
    speed_kmh: float | None = None
    plate_token: str | None = None  # keyed token (privacy by default)
    plate_text: str | None = None  # only when clear text is configured

    @property
    def key(self) -> str:
        return f"{self.camera_id}:{self.seq}:{self.track_id}"


@dataclass(slots=True)
class LineCrossing:
    """A confirmed track crossed a counting line (counted once per track and line)."""

    camera_id: str
    seq: int
    ts: float
    track_id: int
    line_id: str
    direction: str  # "in" | "out" (in = left-to-right of the line's a→b, see config)
    cls: str
    speed_kmh: float | None = None
    lane: str | None = None

    @property
    def key(self) -> str:
        return f"{self.camera_id}:{self.track_id}:{self.line_id}"


@dataclass(slots=True)
class ZoneOccupancy:
    """Occupancy of a zone at one frame: confirmed tracks inside and their dwell times."""

    camera_id: str
    seq: int
    ts: float
    zone_id: str
    count: int
    track_ids: list[int] = field(default_factory=list)
    max_dwell_s: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.camera_id}:{self.seq}:{self.zone_id}"


@dataclass(slots=True)
class Alert:
    """An incident or gathering alert with its evidence."""

    camera_id: str
    ts: float
    kind: str
    place: str
    message: str
    severity: str = "warning"
    track_ids: list[int] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.camera_id}:{self.kind}:{self.place}:{self.ts:.3f}"


@dataclass(slots=True)
class FrameResult:
    """Everything the pipeline produced for one frame."""

    camera_id: str
    seq: int
    ts: float
    observations: list[Observation] = field(default_factory=list)
    crossings: list[LineCrossing] = field(default_factory=list)
    zones: list[ZoneOccupancy] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)  # plates, crowd, ... (later stages)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def records(self) -> Iterable[tuple[str, Any]]:
        """(kind, record) pairs, in a stable order."""
        for o in self.observations:
            yield "observation", o
        for c in self.crossings:
            yield "crossing", c
        for z in self.zones:
            yield "zone", z
        for a in self.alerts:
            yield "alert", a


def to_dict(record: Any) -> dict[str, Any]:
    return asdict(record)


def to_json(record: Any) -> str:
    return json.dumps(asdict(record), ensure_ascii=False, separators=(",", ":"))


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    return cls(**data)


def to_polars(records: Sequence[Any], cls: type | None = None) -> pl.DataFrame:
    """Records of one type → a polars DataFrame (Arrow-backed)."""
    if not records:
        if cls is None:
            return pl.DataFrame()
        return pl.DataFrame(schema=[f.name for f in fields(cls)])
    return pl.from_dicts([asdict(r) for r in records], infer_schema_length=None)


def write_jsonl(path: str | Path, records: Iterable[tuple[str, Any]]) -> int:
    """Write (kind, record) pairs as JSON Lines with a `kind` field. Returns lines written."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for kind, rec in records:
            d = asdict(rec)
            d["kind"] = kind
            f.write(json.dumps(d, ensure_ascii=False, separators=(",", ":")))
            f.write("\n")
            n += 1
    return n
