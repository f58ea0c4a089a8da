"""engine.Pipeline end to end: real YOLOv3-tiny detector + Rust tracker on vtest.avi, the
`citystream run` main job, and bad input through the public API."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine import (
    Detections,
    FrameError,
    Pipeline,
    SiteConfig,
    TimeOrderError,
    UnknownCameraError,
)
from engine.cli import main as cli_main

SITES = Path(__file__).resolve().parent.parent / "engine" / "sites"
N_FRAMES = 150  # 15 s of vtest at 10 fps


@pytest.fixture(scope="module")
def vtest_frames(data_dir: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(data_dir / "video" / "vtest.avi"))
    frames = []
    while len(frames) < N_FRAMES:
        ok, f = cap.read()
        assert ok, "vtest.avi ended early"
        frames.append(f)
    return frames


@pytest.fixture(scope="module")
def vtest_results(vtest_frames: list[np.ndarray]) -> list:
    pipe = Pipeline(SiteConfig.from_toml(SITES / "vtest.toml"))
    out = []
    for i in range(0, len(vtest_frames), 4):
        chunk = vtest_frames[i : i + 4]
        out += pipe.process_batch(
            [(f, "vtest", (i + k) / 10.0, i + k) for k, f in enumerate(chunk)]
        )
    return out


def test_people_detected_and_tracked_with_stable_ids(vtest_results: list) -> None:
    # vtest shows 3-8 people walking for tens of seconds each. A tracker that keeps ids
    # stable yields long tracks; one that fragments yields many short ones. Thresholds:
    # ≥2 confirmed people per frame on average; ≥3 tracks that live ≥ 8 s (80 frames)
    # inside these 15 s; and ≥75% of all confirmed observations belong to tracks that
    # live ≥ 4 s (fragmented ids would spread observations over many short tracks).
    per_frame = [sum(o.cls == "person" for o in r.observations) for r in vtest_results]
    lengths = Counter(o.track_id for r in vtest_results for o in r.observations)
    assert np.mean(per_frame) >= 2.0, per_frame
    long_tracks = [t for t, n in lengths.items() if n >= 80]
    assert len(long_tracks) >= 3, lengths
    in_long = sum(n for n in lengths.values() if n >= 40) / sum(lengths.values())
    assert in_long >= 0.75, (in_long, lengths)
    # ids are never reused for two boxes in one frame
    for r in vtest_results:
        ids = [o.track_id for o in r.observations]
        assert len(ids) == len(set(ids))


def test_walking_speeds_are_plausible(vtest_results: list) -> None:
    speeds = [o.speed_kmh for r in vtest_results for o in r.observations if o.speed_kmh is not None]
    assert len(speeds) > 100
    # Some people in vtest stand and talk; most walk. Walking pace is 3-6 km/h; allow for
    # the approximate calibration of vtest.toml (scale from people's heights).
    p75 = float(np.percentile(speeds, 75))
    assert 2.5 < p75 < 9.0, p75


def test_timings_reported(vtest_results: list) -> None:
    t = vtest_results[-1].timings_ms
    assert t["detect"] > 0 and "track_count" in t


def test_bad_frames_raise_typed_errors() -> None:
    cfg = SiteConfig.from_dict({"cameras": {"c": {"fps": 10}}})
    pipe = Pipeline(cfg, load_detector=False)
    good = np.zeros((48, 64, 3), np.uint8)
    bad = {
        "dtype": good.astype(np.float32),
        "shape": np.zeros((48, 64), np.uint8),
        "channels": np.zeros((48, 64, 4), np.uint8),
        "empty": np.zeros((0, 64, 3), np.uint8),
        "non-contiguous": good[:, ::2],
        "not an array": b"\x00" * 10,
    }
    for name, frame in bad.items():
        with pytest.raises(FrameError) as ei:
            pipe.process(frame, "c", 0.0)  # type: ignore[arg-type]
        assert "'c'" in str(ei.value), name
    with pytest.raises(UnknownCameraError, match="'zz'"):
        pipe.process_detections(Detections.empty(), "zz", 0.0)


def test_time_going_backwards_and_nan_boxes() -> None:
    cfg = SiteConfig.from_dict({"cameras": {"c": {"fps": 10}}})
    pipe = Pipeline(cfg, load_detector=False)
    pipe.process_detections(Detections.empty(), "c", 1.0)
    with pytest.raises(TimeOrderError, match="backwards"):
        pipe.process_detections(Detections.empty(), "c", 0.5)
    with pytest.raises(TimeOrderError):
        pipe.process_detections(Detections.empty(), "c", float("nan"))
    nan_box = Detections(
        np.array([[np.nan, 0, 10, 10]], np.float32), np.array([0.9]), np.array([2])
    )
    with pytest.raises(Exception) as ei:
        pipe.process_detections(nan_box, "c", 2.0)
    assert type(ei.value).__name__ in {"InputError", "FrameError"}
    # the pipeline is still usable after every error
    r = pipe.process_detections(Detections.empty(), "c", 3.0)
    assert r.camera_id == "c"


def test_batch_with_errors_returned_per_item(vtest_frames: list[np.ndarray]) -> None:
    pipe = Pipeline(SiteConfig.from_toml(SITES / "vtest.toml"))
    items = [
        (vtest_frames[0], "vtest", 0.0, 0),
        (vtest_frames[1].astype(np.float32), "vtest", 0.1, 1),
        (vtest_frames[2], "nope", 0.2, 2),
        (vtest_frames[3], "vtest", 0.3, 3),
    ]
    out = pipe.process_batch(items, errors="return")
    assert out[0].seq == 0 and out[3].seq == 3
    assert isinstance(out[1], FrameError) and isinstance(out[2], UnknownCameraError)


def test_main_job_writes_records_summary_and_keyframes(tmp_path: Path, data_dir: Path) -> None:
    rc = cli_main(
        [
            "run",
            "--direct",
            "--video",
            str(data_dir / "video" / "vtest.avi"),
            "--out",
            str(tmp_path),
            "--max-frames",
            "60",
            "--annotate",
            "keyframes",
        ]
    )
    assert rc == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames"] == 60
    assert summary["confirmed_tracks"] >= 3
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    kinds = Counter(json.loads(x)["kind"] for x in lines)
    assert kinds["observation"] == summary["observations"] > 0
    assert (tmp_path / "observations.parquet").exists()
    assert list(tmp_path.glob("frame_*.png"))


def test_main_job_default_is_streamed_and_writes_summary(tmp_path: Path, data_dir: Path) -> None:
    """`citystream run` with no broker configured: embedded broker, worker and feeder."""
    rc = cli_main(
        ["run", "--video", str(data_dir / "video" / "vtest.avi"), "--out", str(tmp_path)]
        + ["--max-frames", "20"]
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert rc == 0, summary
    assert summary["fed"] == {"vtest": 20}
    done = summary["structured"].get("vtest", 0) + summary["skipped"].get("vtest", 0)
    assert done + sum(summary["dead_letters"].values()) == 20
    assert summary["structured"].get("vtest", 0) >= 1
