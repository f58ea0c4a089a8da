"""Columnar detections: the unit that moves between detector, tracker and counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np


class RoadClass(IntEnum):
    """Road-user classes. COCO classes map onto these (others are dropped)."""

    PERSON = 0
    BICYCLE = 1
    CAR = 2
    MOTORCYCLE = 3
    BUS = 4
    TRUCK = 5

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def is_vehicle(self) -> bool:
        return self in (RoadClass.CAR, RoadClass.MOTORCYCLE, RoadClass.BUS, RoadClass.TRUCK)


# COCO-80 index -> RoadClass (person, bicycle, car, motorcycle, bus, truck)
COCO_TO_ROAD: dict[int, RoadClass] = {
    0: RoadClass.PERSON,
    1: RoadClass.BICYCLE,
    2: RoadClass.CAR,
    3: RoadClass.MOTORCYCLE,
    5: RoadClass.BUS,
    7: RoadClass.TRUCK,
}


@dataclass(slots=True)
class Detections:
    """N detections of one frame, columnar. `xyxy` in image pixels, float32 (N,4)."""

    xyxy: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))

    def __post_init__(self) -> None:
        self.xyxy = np.ascontiguousarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        self.scores = np.ascontiguousarray(self.scores, dtype=np.float32).reshape(-1)
        self.class_ids = np.ascontiguousarray(self.class_ids, dtype=np.int32).reshape(-1)
        n = len(self.xyxy)
        if len(self.scores) != n or len(self.class_ids) != n:
            from engine.errors import InputError

            raise InputError(
                f"Detections: xyxy has {n} rows but scores has {len(self.scores)} and "
                f"class_ids has {len(self.class_ids)}"
            )

    def __len__(self) -> int:
        return len(self.xyxy)

    @classmethod
    def empty(cls) -> Detections:
        return cls()
