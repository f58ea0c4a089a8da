"""Record codec for the output topics: compact JSON (UTF-8), one record per message, keyed
idempotently by the record's `.key` (observations by camera:seq:track, crossings by
camera:track:line). Never pickle."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from engine.records import Alert, LineCrossing, Observation, ZoneOccupancy, from_dict

RECORD_TYPES: dict[str, type] = {
    "observation": Observation,
    "crossing": LineCrossing,
    "zone": ZoneOccupancy,
    "alert": Alert,
}


def dumps(obj: Any) -> bytes:
    if hasattr(obj, "__dataclass_fields__"):
        obj = asdict(obj)
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def loads(data: bytes | str) -> Any:
    return json.loads(data)


def record_from(kind: str, data: bytes | str | dict[str, Any]) -> Any:
    """Bytes/dict of a record of `kind` (observation, crossing, zone, alert) → the dataclass."""
    d = loads(data) if not isinstance(data, dict) else data
    return from_dict(RECORD_TYPES[kind], d)


def crossing_from(data: bytes | dict[str, Any]) -> LineCrossing:
    return record_from("crossing", data)
