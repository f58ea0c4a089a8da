"""The main job, streamed: `citystream run --streamed`.

Starts the embedded broker (unless ``$CITYSTREAM_BROKER`` names one), a `citystream worker`
for the site, and a feeder per sample video; shows a live summary (frames, counts per line,
flows, signal plans, alerts, dead letters) and stops everything cleanly on Ctrl-C or when
the videos end and their records are in.

    >>> run_streamed(["vtest.avi"], config="engine/sites/vtest.toml")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from pathlib import Path
from typing import Any

from engine.config import SiteConfig
from streams.cli_worker import worker_command
from streams.reader import TopicReader

REPO = Path(__file__).resolve().parent.parent


class Summary:
    """Reads the output topics in a thread and keeps what the live display shows."""

    def __init__(self, bootstrap: str, settings: Any) -> None:
        self.bootstrap = bootstrap
        self.settings = settings
        self.frames: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.crossing_keys: set[str] = set()
        self.line_counts: Counter[str] = Counter()
        self.flows: dict[str, dict[str, Any]] = {}
        self.plans: dict[str, dict[str, Any]] = {}
        self.alerts: deque[dict[str, Any]] = deque(maxlen=6)
        self.alert_count: Counter[str] = Counter()
        self.dead: Counter[str] = Counter()
        self.first_record: float | None = None
        t = settings.topic
        names = {
            t(n): n
            for n in (
                "observations",
                "crossings",
                "flows",
                "signal-plans",
                "alerts",
                "dead-letters",
            )
        }
        self._reader = TopicReader(
            bootstrap,
            list(names),
            lambda topic, key, value, _at: self._on(
                names[topic], key.decode("utf-8", "replace") if key else "", value
            ),
        )

    def _on(self, kind: str, key: str, value: bytes) -> None:
        try:
            d = json.loads(value)
        except ValueError:
            return
        if self.first_record is None:
            self.first_record = time.time()
        if kind == "observations":
            if d.get("kind") == "frame":
                self.frames[d["camera_id"]] += 1
            elif d.get("kind") == "skip":
                self.skipped[d["camera_id"]] += int(d.get("count", 0))
        elif kind == "crossings":
            if key not in self.crossing_keys:  # idempotent: count each crossing key once
                self.crossing_keys.add(key)
                self.line_counts[f"{d['camera_id']}/{d['line_id']} {d['direction']}"] += 1
        elif kind == "flows":
            self.flows[d["camera_id"]] = d
        elif kind == "signal-plans":
            self.plans[d["intersection"]] = d
        elif kind == "alerts":
            self.alerts.appendleft(d)
            self.alert_count[d["kind"]] += 1
        elif kind == "dead-letters":
            self.dead[d.get("reason", "?").split(":")[0]] += 1

    def stop(self) -> None:
        self._reader.stop(5)

    def render(self, fed: Counter[str], started: float, status: str) -> Any:
        from rich.console import Group
        from rich.table import Table

        el = max(1e-9, time.time() - started)
        head = Table(title=f"citystream — streamed ({status}, {el:.0f} s)", expand=True)
        for col in ("camera", "fed", "structured", "skipped", "frames/s"):
            head.add_column(col)
        for cam in sorted(set(fed) | set(self.frames)):
            head.add_row(
                cam,
                str(fed[cam]),
                str(self.frames[cam]),
                str(self.skipped[cam]),
                f"{self.frames[cam] / el:.1f}",
            )
        counts = Table(title="line crossings (distinct keys)", expand=True)
        counts.add_column("line / direction")
        counts.add_column("count")
        for k, v in sorted(self.line_counts.items()):
            counts.add_row(k, str(v))
        flows = Table(title="latest flow window per camera", expand=True)
        for col in ("camera", "window start", "volume", "lanes (veh/h)", "occupancy"):
            flows.add_column(col)
        for cam, f in sorted(self.flows.items()):
            lanes = ", ".join(f"{ln['line_id']}: {ln['flow_vph']:.0f}" for ln in f.get("lanes", []))
            occ = ", ".join(f"{z}: {v['occupancy']:.0%}" for z, v in (f.get("zones") or {}).items())
            flows.add_row(cam, f"{f['window_start']:.0f}", str(f.get("volume", 0)), lanes, occ)
        plans = Table(title="signal plans", expand=True)
        for col in ("intersection", "window", "cycle s", "greens s"):
            plans.add_column(col)
        for inter, p in sorted(self.plans.items()):
            greens = ", ".join(f"{k}: {v}" for k, v in (p.get("greens_s") or {}).items())
            plans.add_row(inter, f"{p['window_start']:.0f}", str(p.get("cycle_s", "")), greens)
        alerts = Table(
            title=f"alerts ({sum(self.alert_count.values())}: "
            + ", ".join(f"{k} {v}" for k, v in self.alert_count.items())
            + ")",
            expand=True,
        )
        for col in ("camera", "kind", "place", "message"):
            alerts.add_column(col)
        for a in self.alerts:
            alerts.add_row(a["camera_id"], a["kind"], a["place"], a["message"])
        parts = [head, counts, flows]
        if self.plans:
            parts.append(plans)
        parts.append(alerts)
        if self.dead:
            dl = Table(title="dead letters", expand=True)
            dl.add_column("reason")
            dl.add_column("count")
            for k, v in self.dead.items():
                dl.add_row(k, str(v))
            parts.append(dl)
        return Group(*parts)


def _camera_ids(cfg: SiteConfig, n: int, cameras: list[str] | None) -> list[str]:
    ids = list(cameras) if cameras else list(cfg.cameras)
    if len(ids) < n:
        raise ValueError(f"{cfg.source}: {len(ids)} camera(s) for {n} video(s); pass cameras=[...]")
    return ids[:n]


def run_streamed(
    video_paths: list[str | os.PathLike[str]],
    config: str | os.PathLike[str] | SiteConfig,
    *,
    cameras: list[str] | None = None,
    speed: float = 1.0,
    target_fps: float | None = None,
    max_frames: int | None = None,
    live: bool = True,
    settle_timeout_s: float = 120.0,
    result: dict[str, Any] | None = None,
) -> int:
    """Run the site through broker + Faust worker + feeders until the videos end (or
    Ctrl-C); returns 0 when every fed frame was structured, skipped or dead-lettered, 1
    otherwise, 130 on Ctrl-C. `speed` paces the files (1 = real time, 0 = as fast as
    possible); `result`, if given, receives the final counts."""
    from rich.console import Console
    from rich.live import Live

    from streams.app import ensure_topics
    from streams.broker import EmbeddedBroker, configured_broker
    from streams.feed import FrameProducer, feed_video
    from streams.settings import StreamSettings

    if isinstance(config, SiteConfig):
        cfg = config
        cfg_path = Path(cfg.source)
        if not cfg_path.is_file():
            raise ValueError(
                "run_streamed needs a site config loaded from a TOML file (the worker reads it)"
            )
    else:
        cfg_path = Path(config)
        cfg = SiteConfig.from_toml(cfg_path)
    cams = _camera_ids(cfg, len(video_paths), cameras)
    tag = uuid.uuid4().hex[:6]
    settings = StreamSettings.from_site(cfg, app_id=f"citystream-run-{tag}")
    console = Console()
    broker = None
    url = configured_broker()
    worker = None
    stop = threading.Event()
    fed: Counter[str] = Counter()
    feeders: list[threading.Thread] = []
    status = "starting"
    rc = 0
    with tempfile.TemporaryDirectory(prefix="citystream-run-") as td:
        log = Path(td) / "worker.log"
        try:
            if not url:
                broker = EmbeddedBroker(log_path=Path(td) / "tansu.log").start()
                url = broker.url
            asyncio.run(ensure_topics(url, settings))
            ready = Path(td) / "ready.json"
            worker = subprocess.Popen(
                worker_command(cfg_path, url, "--app-id", settings.app_id),
                cwd=REPO,
                stdout=open(log, "wb"),
                stderr=subprocess.STDOUT,
                env={**os.environ, "CITYSTREAM_READY_FILE": str(ready)},
            )
            with console.status("starting the worker (model, consumer group, tables)…"):
                t_wait = time.time() + 120
                while not ready.exists() and worker.poll() is None and time.time() < t_wait:
                    time.sleep(0.1)
            summary = Summary(url.replace("kafka://", ""), settings)
            producer = FrameProducer(url, settings=settings)
            started = time.time()

            def feed_one(cam: str, path: str) -> None:
                feed_video(
                    producer,
                    cam,
                    path,
                    speed=speed,
                    target_fps=target_fps,
                    max_frames=max_frames,
                    stop=stop,
                    on_frame=lambda seq, ts: fed.update([cam]),
                    max_reconnects=3,
                )

            for cam, path in zip(cams, video_paths, strict=True):
                th = threading.Thread(target=feed_one, args=(cam, str(path)), daemon=True)
                th.start()
                feeders.append(th)
            status = "streaming"
            dead_at_end = None
            with Live(
                summary.render(fed, started, status),
                console=console,
                refresh_per_second=4,
                transient=not live,
            ) as lv:
                while True:
                    if worker.poll() is not None:
                        status = f"worker exited ({worker.returncode})"
                        rc = 1
                        break
                    if all(not th.is_alive() for th in feeders):
                        if dead_at_end is None:
                            producer.flush()
                            dead_at_end = time.time()
                            status = "videos fed, finishing"
                        done = (
                            sum(summary.frames.values())
                            + sum(summary.skipped.values())
                            + sum(summary.dead.values())
                        )
                        if done >= sum(fed.values()):
                            status = "done"
                            break
                        if time.time() - dead_at_end > settle_timeout_s:
                            status = "timed out waiting for records"
                            rc = 1
                            break
                    lv.update(summary.render(fed, started, status))
                    time.sleep(0.25)
                time.sleep(0.5)
                lv.update(summary.render(fed, started, status))
            if not live:
                console.print(summary.render(fed, started, status))
        except KeyboardInterrupt:
            status = "interrupted"
            rc = 130
        finally:
            stop.set()
            for th in feeders:
                th.join(10)
            try:
                producer.close()  # type: ignore[possibly-undefined]
            except Exception:  # noqa: BLE001 - shutting down
                pass
            try:
                summary.stop()  # type: ignore[possibly-undefined]
            except Exception:  # noqa: BLE001
                pass
            if worker is not None and worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(20)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait(5)
            if broker is not None:
                broker.stop()
            if rc == 1 and log.exists():
                console.print(
                    f"[red]worker log tail:[/red]\n{log.read_text(errors='replace')[-2000:]}"
                )
    console.print(f"citystream run --streamed: {status}")
    if result is not None:
        try:
            result.update(
                status=status,
                fed=dict(fed),
                structured=dict(summary.frames),  # type: ignore[possibly-undefined]
                skipped=dict(summary.skipped),  # type: ignore[possibly-undefined]
                dead_letters=dict(summary.dead),  # type: ignore[possibly-undefined]
                line_counts=dict(summary.line_counts),  # type: ignore[possibly-undefined]
                alerts=dict(summary.alert_count),  # type: ignore[possibly-undefined]
            )
        except NameError:
            result.update(status=status)
    return rc
