"""`citystream bench pipeline`: the full per-frame pipeline with YOLOv3-tiny on real video.

The question it answers: how much of a frame's time is spent outside model inference
(letterbox, decode + NMS, tracking, counting, record building, Python glue)? Goal < 10%.
Baseline in the same run: the bare onnxruntime `session.run` on the same preprocessed
batches, i.e. the floor any pipeline around this model pays."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench.report import SuiteResult
from engine.config import shared_data_dir

REPO = Path(__file__).resolve().parent.parent
VIDEO = shared_data_dir() / "video" / "vtest.avi"
SITE = REPO / "engine" / "sites" / "vtest.toml"


def load_frames(n: int) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(VIDEO))
    frames = []
    while len(frames) < n:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    return frames


def run(quick: bool = False) -> SuiteResult:
    from engine import _core
    from engine.config import SiteConfig
    from engine.pipeline import Pipeline

    n = 64 if quick else 400
    frames = load_frames(n)
    cfg = SiteConfig.from_toml(SITE)
    res = SuiteResult("pipeline")
    res.meta.update({"video": str(VIDEO), "frames": len(frames), "model": cfg.detector.model})
    t = res.table(
        "Full pipeline per frame (vtest.avi 768×576, YOLOv3-tiny 416×416, CPU)",
        [
            "batch",
            "total ms/frame",
            "model-only ms/frame",
            "outside model ms/frame",
            "outside share %",
            "fps",
        ],
    )
    stages = res.table(
        "Stage times inside the pipeline (ms per frame)",
        ["batch", "letterbox", "inference", "decode+NMS", "track+count+records", "glue"],
    )
    shares = {}
    for batch in (1, 4):
        pipe = Pipeline(cfg)
        det = pipe.detector
        # warm-up (session init, first-call allocations)
        pipe.process_batch([(frames[0], "vtest", 0.0, 0)])
        pipe.reset()
        acc = {"preprocess": 0.0, "inference": 0.0, "decode": 0.0, "track": 0.0}
        t0 = time.perf_counter()
        for i in range(0, len(frames), batch):
            chunk = frames[i : i + batch]
            out = pipe.process_batch(
                [(f, "vtest", (i + k) / 10.0, i + k) for k, f in enumerate(chunk)]
            )
            for k in ("preprocess", "inference", "decode"):
                acc[k] += det.last_timings_ms.get(k, 0.0)
            acc["track"] += sum(r.timings_ms.get("track_count", 0.0) for r in out)
        total_ms = (time.perf_counter() - t0) * 1e3 / len(frames)
        # baseline: bare session.run on the same preprocessed batches
        tb = 0.0
        for i in range(0, len(frames), batch):
            x, _, _ = _core.letterbox_batch(frames[i : i + batch], det.input_size)
            s = time.perf_counter()
            det.session.run([det.output_name], {det.input_name: x})
            tb += time.perf_counter() - s
        model_ms = tb * 1e3 / len(frames)
        inf_ms = acc["inference"] / len(frames)
        outside = total_ms - inf_ms
        share = 100.0 * outside / total_ms
        shares[batch] = share
        t.add(batch, total_ms, model_ms, outside, share, 1e3 / total_ms)
        per = {k: v / len(frames) for k, v in acc.items()}
        glue = total_ms - sum(per.values())
        stages.add(batch, per["preprocess"], per["inference"], per["decode"], per["track"], glue)
    t.notes.append(
        "outside = total − inference timed inside the pipeline; model-only = bare session.run "
        "on the same batches in the same run (the floor)."
    )
    res.goals["share of time outside model inference < 10% (batch 4)"] = shares[4] < 10.0
    return res
