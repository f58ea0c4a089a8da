"""Simulated cameras for tests and benchmarks of the stream layer: deterministic
detections of vehicles driving across a counting line, and a site config for N cameras.

Each camera sees `lanes` lanes; in each lane a vehicle enters at the left every
`period_s` seconds (phase-shifted per lane and camera) and drives right at `speed_px_s`,
so every vehicle crosses the vertical line x = width/2 exactly once, going "in" or "out"
depending on the lane direction. With the model stage replaced by these detections, the
stream layer's own cost can be measured and counts have a known truth."""

from __future__ import annotations

import math

import numpy as np

from engine.config import SiteConfig
from engine.detections import Detections, RoadClass

WIDTH, HEIGHT = 640, 360
BOX_W, BOX_H = 40.0, 24.0


def traffic_detections(
    t: float,
    *,
    camera_index: int = 0,
    lanes: int = 3,
    period_s: float = 2.0,
    speed_px_s: float = 160.0,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Detections:
    """Detections at time `t` (seconds) for one simulated camera."""
    boxes, classes = [], []
    travel = (width + BOX_W) / speed_px_s  # seconds a vehicle is in view
    for lane in range(lanes):
        yc = (lane + 1) * height / (lanes + 1)
        phase = (camera_index * 0.37 + lane * 0.61) % period_s
        leftward = lane % 2 == 1
        k_max = math.floor((t - phase) / period_s)
        k = k_max
        while k >= 0 and t - (phase + k * period_s) <= travel:
            age = t - (phase + k * period_s)
            x = -BOX_W / 2 + age * speed_px_s
            if leftward:
                x = width - x
            boxes.append((x - BOX_W / 2, yc - BOX_H / 2, x + BOX_W / 2, yc + BOX_H / 2))
            classes.append(int(RoadClass.BUS if (k + lane) % 7 == 0 else RoadClass.CAR))
            k -= 1
    if not boxes:
        return Detections.empty()
    xyxy = np.asarray(boxes, np.float32)
    return Detections(xyxy, np.full(len(boxes), 0.9, np.float32), np.asarray(classes, np.int32))


def expected_crossings(
    duration_s: float,
    *,
    camera_index: int = 0,
    lanes: int = 3,
    period_s: float = 2.0,
    speed_px_s: float = 160.0,
    width: int = WIDTH,
) -> int:
    """Vehicles whose centre passes x = width/2 within [0, duration_s) (ground truth)."""
    n = 0
    to_line = (width / 2 + BOX_W / 2) / speed_px_s
    for lane in range(lanes):
        phase = (camera_index * 0.37 + lane * 0.61) % period_s
        k = 0
        while phase + k * period_s + to_line < duration_s:
            n += 1
            k += 1
    return n


def synthetic_site(
    n_cameras: int,
    *,
    fps: float = 10.0,
    prefix: str = "sim",
    intersection: str | None = "X1",
    streams: dict | None = None,
) -> SiteConfig:
    """A site with `n_cameras` cameras, each with one vertical counting line and a lane zone."""
    cams = {}
    for i in range(n_cameras):
        cams[f"{prefix}{i:03d}"] = {
            "fps": fps,
            "lines": [
                {"id": "stop", "a": [WIDTH / 2, 0], "b": [WIDTH / 2, HEIGHT], "lane": f"L{i}"}
            ],
            "zones": [
                {
                    "id": "lane",
                    "kind": "lane",
                    "polygon": [[WIDTH / 2, 0], [WIDTH, 0], [WIDTH, HEIGHT], [WIDTH / 2, HEIGHT]],
                }
            ],
            **({"intersection": intersection} if intersection else {}),
        }
    data: dict = {"name": "synthetic", "cameras": cams, "tracker": {"min_hits": 2}}
    if streams:
        data["streams"] = streams
    return SiteConfig.from_dict(data, source="<synthetic>")


def site_toml(
    n_cameras: int,
    *,
    fps: float = 10.0,
    prefix: str = "sim",
    intersection: str | None = "X1",
    streams: dict | None = None,
) -> str:
    """The same site as TOML text (for `citystream worker --config`)."""
    lines = ['name = "synthetic"', "", "[tracker]", "min_hits = 2", ""]
    for i in range(n_cameras):
        c = f"{prefix}{i:03d}"
        lines += [f"[cameras.{c}]", f"fps = {fps}"]
        if intersection:
            lines.append(f'intersection = "{intersection}"')
        lines += [
            f"[[cameras.{c}.lines]]",
            'id = "stop"',
            f"a = [{WIDTH / 2}, 0]",
            f"b = [{WIDTH / 2}, {HEIGHT}]",
            f'lane = "L{i}"',
            f"[[cameras.{c}.zones]]",
            'id = "lane"',
            'kind = "lane"',
            f"polygon = [[{WIDTH / 2}, 0], [{WIDTH}, 0], [{WIDTH}, {HEIGHT}], [{WIDTH / 2}, {HEIGHT}]]",
            "",
        ]
    if streams:
        lines.append("[streams]")
        for k, v in streams.items():
            if isinstance(v, dict) or v is None:
                continue
            lines.append(f"{k} = {_toml(v)}")
        for k, v in streams.items():
            if isinstance(v, dict):
                lines.append(f"[streams.{k}]")
                lines += [f"{kk} = {_toml(vv)}" for kk, vv in v.items() if vv is not None]
    return "\n".join(lines) + "\n"


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + "}"
    return '"' + str(v).replace('"', '\\"') + '"'
