"""The stream layer against a real broker (the embedded tansu) and real Faust workers
(`citystream worker` subprocesses): dead letters, kill-and-restart exactness, metrics, and a
feed source that drops and returns.

Frames carry recorded (simulated) detections through `Pipeline.process_detections`, so the
tests exercise the stream layer, the real tracker and counters without the model's cost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from engine import Pipeline
from streams.app import ensure_topics
from streams.broker import EmbeddedBroker, free_port, kafka_ping
from streams.cli_worker import worker_command
from streams.envelope import Codec, FrameEnvelope, decode
from streams.feed import FrameProducer, feed_video
from streams.settings import StreamSettings
from streams.synthetic import site_toml, synthetic_site, traffic_detections

pytestmark = pytest.mark.broker

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def broker():
    with EmbeddedBroker() as b:
        yield b


def _settings(broker: EmbeddedBroker, tag: str, **kw: Any) -> dict[str, Any]:
    """Per-test topics and consumer group on the shared broker, created up front (a reader
    subscribing first would let the broker auto-create them with its default partitions)."""
    st = {
        "app_id": f"cs-{tag}",
        "topic_prefix": f"{tag}.",
        "partitions": 2,
        "max_wall_lag_s": 0,
        "max_stream_lag_s": 0,
        **kw,
    }
    asyncio.run(ensure_topics(broker.url, StreamSettings(**st)))
    return st


class Worker:
    def __init__(
        self, tmp: Path, toml: str, broker_url: str, metrics_port: int | None = None
    ) -> None:
        cfg = tmp / "site.toml"
        cfg.write_text(toml)
        cmd = worker_command(
            cfg,
            broker_url,
            "--no-detector",
            "--loglevel",
            os.environ.get("CS_TEST_LOGLEVEL", "warning"),
        )
        if metrics_port:
            cmd += ["--metrics-port", str(metrics_port)]
        self.log = tmp / f"worker-{uuid.uuid4().hex[:6]}.log"
        # per-frame trace of the structure/flow agents (streams.app._trace): a failure can
        # be compared frame by frame with the uninterrupted run
        env = {**os.environ, "CITYSTREAM_TRACE": str(tmp / "trace.jsonl")}
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def read_topics(
    bootstrap: str, topics: list[str], until, timeout: float = 60.0
) -> dict[str, list[tuple[bytes, Any]]]:
    """Read `topics` from the beginning until `until(got)` is true (or timeout)."""
    from aiokafka import AIOKafkaConsumer

    async def go() -> dict[str, list[tuple[bytes, Any]]]:
        c = AIOKafkaConsumer(
            *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
        )
        await c.start()
        got: dict[str, list[tuple[bytes, Any]]] = {t: [] for t in topics}
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end and not until(got):
                batch = await c.getmany(timeout_ms=500)
                for tp, msgs in batch.items():
                    for m in msgs:
                        got[tp.topic].append((m.key, m.value))
        finally:
            await c.stop()
        return got

    return asyncio.run(go())


def _json_values(items: list[tuple[bytes, Any]]) -> list[dict[str, Any]]:
    return [json.loads(v) for _, v in items]


def test_embedded_broker_lifecycle() -> None:
    b = EmbeddedBroker()
    with b:
        assert b.running and kafka_ping(b.host, b.port)
        assert b.url == f"kafka://127.0.0.1:{b.port}"
    assert not b.running
    assert not kafka_ping("127.0.0.1", b.port, timeout=0.3)


def test_bad_input_goes_to_dead_letters_while_the_rest_flows(
    broker: EmbeddedBroker, tmp_path: Path, data_dir: Path
) -> None:
    tag = f"dl{uuid.uuid4().hex[:6]}"
    st = _settings(broker, tag, flow_window_s=2.0, flow_grace_s=0.5)
    port = free_port()
    w = Worker(tmp_path, site_toml(1, streams=st), broker.url, metrics_port=port)
    try:
        cap = cv2.VideoCapture(str(data_dir / "video" / "vtest.avi"))
        ok, img = cap.read()
        assert ok
        jpeg = FrameEnvelope.from_frame("sim000", img, 0.0, 0, codec="jpeg")
        good_det = FrameEnvelope.from_detections("sim000", traffic_detections(0.0), 0.0, 0).encode()
        bad = {
            "bad_magic": b"NOPE" + good_det[4:],
            "truncated_envelope": good_det[:-7],
            "truncated_jpeg": FrameEnvelope(
                "sim000",
                2.05,
                1000,
                jpeg.width,
                jpeg.height,
                Codec.JPEG,
                jpeg.payload[: len(jpeg.payload) // 3],
            ).encode(),
            "unknown_camera": FrameEnvelope.from_detections(
                "ghost", traffic_detections(1.0), 1.0, 10
            ).encode(),
            "garbage": b"\x00\x01\x02",
        }
        n_good = 60
        with FrameProducer(
            broker.url, settings=StreamSettings(**{k: v for k, v in st.items() if k != "app_id"})
        ) as fp:
            for seq in range(n_good):
                ts = seq / 10
                fp.send_detections("sim000", traffic_detections(ts), ts, seq)
                if seq == 20:
                    for data in bad.values():
                        fp.send_raw("sim000", data)
            fp.flush()
        p = f"{tag}."

        def done(got: dict[str, list]) -> bool:
            frames = [json.loads(v) for _, v in got[p + "observations"]]
            return (
                len(got[p + "dead-letters"]) >= len(bad)
                and sum(f.get("kind") == "frame" for f in frames) >= n_good
            )

        got = read_topics(
            broker.bootstrap,
            [p + "observations", p + "dead-letters", p + "crossings", p + "flows"],
            done,
            timeout=60,
        )
        txt = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        dead = _json_values(got[p + "dead-letters"])
        frames = [f for f in _json_values(got[p + "observations"]) if f["kind"] == "frame"]
        assert sorted(f["seq"] for f in frames) == list(range(n_good)), txt
        reasons = sorted(d["reason"] for d in dead)
        assert len(dead) == len(bad), reasons
        expect = [
            "bad magic",
            "truncated envelope",
            "truncated JPEG",
            "unknown camera 'ghost'",
            "truncated header",
        ]
        for e in expect:
            assert sum(e in r for r in reasons) == 1, (e, reasons)
        assert all(d["topic"] == p + "frames" and d["size"] > 0 for d in dead)
        assert got[p + "crossings"], "the good frames must still produce crossings"
        assert f'citystream_frames_out_total{{camera="sim000"}} {n_good}' in txt
        n_dead = sum(
            float(line.rsplit(" ", 1)[1])
            for line in txt.splitlines()
            if line.startswith("citystream_dead_letters_total{")
        )
        assert n_dead == len(bad)
        assert 'citystream_stage_latency_ms{quantile="0.99",stage="track_count"}' in txt
    finally:
        w.stop()


def _reference(cfg, n_frames: int, fps: float) -> dict[str, Any]:
    """The uninterrupted run: the same detections straight through engine.Pipeline."""
    p = Pipeline(cfg, load_detector=False)
    keys = set()
    for seq in range(n_frames):
        for i, cam in enumerate(cfg.cameras):
            r = p.process_detections(
                traffic_detections(seq / fps, camera_index=i), cam, seq / fps, seq
            )
            keys.update(c.key for c in r.crossings)
    crossings: dict[str, Any] = {}
    p2 = Pipeline(cfg, load_detector=False)
    for seq in range(n_frames):
        for i, cam in enumerate(cfg.cameras):
            r = p2.process_detections(
                traffic_detections(seq / fps, camera_index=i), cam, seq / fps, seq
            )
            for c in r.crossings:
                crossings[c.key] = c
    assert set(crossings) == keys  # the pipeline itself is deterministic
    return crossings


def test_killed_worker_restarts_with_equal_counts(broker: EmbeddedBroker, tmp_path: Path) -> None:
    n_cams, fps, n_frames, window = 3, 10.0, 400, 10.0
    tag = f"rs{uuid.uuid4().hex[:6]}"
    st = _settings(broker, tag, flow_window_s=window, flow_grace_s=1.0, batch_max=8)
    toml = site_toml(n_cams, fps=fps, streams=st)
    cfg = synthetic_site(n_cams, fps=fps, streams=st)
    ref = _reference(cfg, n_frames, fps)
    closed = [ws * window for ws in range(int(((n_frames - 1) / fps - 1.0) // window))]
    ref_counts = Counter()
    for c in ref.values():
        ws = (c.ts // window) * window
        if ws in closed:
            ref_counts[(c.camera_id, c.line_id, ws)] += 1
    assert sum(ref_counts.values()) > 50
    p = f"{tag}."
    sent = threading.Event()
    live = threading.Event()

    def produce() -> None:
        with FrameProducer(
            broker.url, settings=StreamSettings(**{k: v for k, v in st.items() if k != "app_id"})
        ) as fp:
            for seq in range(n_frames):
                for i, cam in enumerate(cfg.cameras):
                    fp.send_detections(
                        cam, traffic_detections(seq / fps, camera_index=i), seq / fps, seq
                    )
                if seq == 40:  # hold the rest until worker A is up and emitting
                    fp.flush()
                    live.wait(60)
                if seq > 40:
                    time.sleep(0.012)  # ~250 frames/s: the kill lands mid-stream
            fp.flush()
        sent.set()

    a = Worker(tmp_path, toml, broker.url)
    prod = threading.Thread(target=produce)
    prod.start()
    try:
        read_topics(
            broker.bootstrap, [p + "observations"], lambda g: len(g[p + "observations"]) >= 100
        )
        live.set()
        # let worker A emit part of the stream, then kill it without warning
        got = read_topics(
            broker.bootstrap,
            [p + "observations"],
            lambda g: len(g[p + "observations"]) >= 500,
            timeout=60,
        )
        a.kill()
        assert not sent.is_set(), "the producer finished before the kill: not mid-stream"
        emitted_by_a = len(got[p + "observations"])
        assert 300 <= emitted_by_a < n_cams * n_frames, a.tail()
        b = Worker(tmp_path, toml, broker.url)
        try:
            prod.join(60)
            assert sent.is_set()
            n_flows = n_cams * len(closed)

            def done(g: dict[str, list]) -> bool:
                # every window closed, every crossing of the reference run and every frame's
                # record seen (a lost one makes this time out and fail below)
                return (
                    len({k for k, _ in g[p + "flows"]}) >= n_flows
                    and {k.decode() for k, _ in g[p + "crossings"]} >= set(ref)
                    and len({k for k, _ in g[p + "observations"]}) >= n_cams * n_frames
                )

            got = read_topics(
                broker.bootstrap,
                [p + "flows", p + "crossings", p + "observations"],
                done,
                timeout=90,
            )
        finally:
            b.stop()
    finally:
        prod.join(5)
        if a.proc.poll() is None:
            a.stop()
    # what was read, for a post-mortem with the workers' traces (trace.jsonl) and logs
    dump = {t: [[k.decode(), v.decode()] for k, v in got[t]] for t in got}
    (tmp_path / "got.json").write_text(json.dumps({"ref": sorted(ref), "got": dump}))
    crossing_keys = [k.decode() for k, _ in got[p + "crossings"]]
    assert set(crossing_keys) == set(ref), "crossings lost or re-keyed across the restart"
    flows: dict[str, dict] = {}
    for k, v in got[p + "flows"]:
        flows[k.decode()] = json.loads(v)  # last write wins per key (idempotent)
    counts = Counter()
    for f in flows.values():
        for ln in f["lanes"]:
            counts[(ln["camera_id"], ln["line_id"], ln["window_start"])] += ln["volume"]
    assert len(flows) == n_cams * len(closed), (sorted(flows), b.tail())
    assert counts == ref_counts
    frame_seqs = defaultdict(set)
    for _, v in got[p + "observations"]:
        f = json.loads(v)
        if f["kind"] == "frame":
            frame_seqs[f["camera_id"]].add(f["seq"])
    assert all(frame_seqs[c] == set(range(n_frames)) for c in cfg.cameras)


class FlakyCapture:
    """Test double for the SOURCE only: a real cv2.VideoCapture of vtest.avi that drops
    (read fails) at frame `drop_at`, then refuses to open `refuse` times, then works again."""

    opened = 0

    def __init__(self, path: str, drop_at: int, refuse: int, state: dict[str, int]) -> None:
        self.state = state
        state["opens"] = state.get("opens", 0) + 1
        self.ok = not (state.get("dropped") and state.get("refused", 0) < refuse)
        if not self.ok:
            state["refused"] = state.get("refused", 0) + 1
        self.cap = cv2.VideoCapture(path)
        self.drop_at = drop_at

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's API
        return self.ok and self.cap.isOpened()

    def get(self, prop: int) -> float:
        return self.cap.get(prop)

    def set(self, prop: int, v: float) -> bool:
        return self.cap.set(prop, v)

    def read(self):
        pos = int(self.cap.get(cv2.CAP_PROP_POS_FRAMES))
        if pos == self.drop_at and not self.state.get("dropped"):
            self.state["dropped"] = 1
            return False, None
        return self.cap.read()

    def release(self) -> None:
        self.cap.release()


def test_feed_source_that_disappears_resumes(broker: EmbeddedBroker, data_dir: Path) -> None:
    tag = f"fd{uuid.uuid4().hex[:6]}"
    video = str(data_dir / "video" / "vtest.avi")
    state: dict[str, int] = {}
    n = 40
    settings = StreamSettings(topic_prefix=f"{tag}.", partitions=2)
    with FrameProducer(broker.url, settings=settings) as fp:
        stats = feed_video(
            fp,
            "vtest",
            video,
            speed=0,
            max_frames=n,
            backoff_s=(0.05, 0.2),
            ts_origin=0.0,
            open_capture=lambda src: FlakyCapture(src, drop_at=15, refuse=2, state=state),
        )
    assert stats.published == n
    assert stats.read_failures == 1 and stats.reconnects == 3  # the drop + 2 refused opens
    assert state["opens"] == 4
    got = read_topics(
        broker.bootstrap, [f"{tag}.frames"], lambda g: len(g[f"{tag}.frames"]) >= n, timeout=30
    )
    envs = [decode(v) for _, v in got[f"{tag}.frames"]]
    assert [e.seq for e in envs] == list(range(n))
    assert np.allclose([e.ts for e in envs], np.arange(n) / 10.0)  # media time continues
    cap = cv2.VideoCapture(video)
    truth = [cap.read()[1] for _ in range(n)]
    for e in envs:  # the frame after the gap is the frame the source was at, not a restart
        err = np.abs(e.image().astype(int) - truth[e.seq].astype(int)).mean()
        assert err < 4.0, (e.seq, err)
    assert os.path.exists(video)


def test_run_streamed_main_job(data_dir: Path) -> None:
    """`citystream run --streamed` end to end: embedded broker, worker, feeder, summary."""
    from streams.demo import run_streamed

    out: dict[str, Any] = {}
    rc = run_streamed(
        [data_dir / "video" / "vtest.avi"],
        config=REPO / "engine" / "sites" / "vtest.toml",
        speed=0,
        max_frames=24,
        live=False,
        result=out,
    )
    assert rc == 0, out
    assert out["fed"] == {"vtest": 24}
    accounted = (
        out["structured"].get("vtest", 0)
        + out["skipped"].get("vtest", 0)
        + sum(out["dead_letters"].values())
    )
    assert accounted == 24
    assert out["structured"].get("vtest", 0) >= 1
