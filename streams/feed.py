"""Feeding frames into the `frames` topic.

- `FrameProducer`: the Python producer API for video platforms that push frames
  themselves (thread-safe, synchronous; an asyncio twin is `AsyncFrameProducer`)::

      with FrameProducer("kafka://127.0.0.1:9092") as fp:
          fp.send("cam1", frame_bgr, ts=time.time())          # JPEG envelope, seq auto
          fp.send_detections("cam2", dets, ts=12.5, seq=125)  # an edge detector's output

- `feed_video()`: read a file or an RTSP/HTTP stream with OpenCV, pace it to the source's
  frame rate (or a lower analysis rate), reconnect with exponential backoff when a live
  source drops, and publish envelopes. `citystream feed` is its command line.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.detections import Detections
from streams.broker import bootstrap_of
from streams.envelope import Codec, FrameEnvelope
from streams.settings import StreamSettings, partition_for

log = logging.getLogger("citystream.feed")


class AsyncFrameProducer:
    """asyncio producer of frame envelopes (aiokafka). Key = camera id; the partition is
    `partition_for(camera, partitions)`, the same everywhere in citystream."""

    def __init__(
        self,
        broker: str,
        *,
        topic: str = "frames",
        settings: StreamSettings | None = None,
        linger_ms: int = 0,  # a frame goes out at once (batches form while a send is in flight)
        jpeg_quality: int = 85,
    ) -> None:
        self.broker = broker
        self.settings = settings or StreamSettings()
        self.topic = self.settings.topic(topic)
        self.linger_ms = linger_ms
        self.jpeg_quality = jpeg_quality
        self._producer: Any = None
        self._partitions = self.settings.partitions
        self._seq: dict[str, int] = {}
        self._lock: asyncio.Lock | None = None

    async def start(self) -> AsyncFrameProducer:
        from aiokafka import AIOKafkaProducer

        from streams.app import ensure_topics

        await ensure_topics(self.broker, self.settings)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_of(self.broker),
            linger_ms=self.linger_ms,
            max_request_size=32 * 1024 * 1024,
            acks=1,
        )
        await self._producer.start()
        parts = await self._producer.partitions_for(self.topic)
        if parts:
            self._partitions = len(parts)
        return self

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def _next_seq(self, camera_id: str, seq: int | None) -> int:
        s = self._seq.get(camera_id, 0) if seq is None else int(seq)
        self._seq[camera_id] = s + 1
        return s

    async def send_envelope(self, env: FrameEnvelope) -> asyncio.Future[Any]:
        """Publish; returns a future resolved when the broker acknowledged it."""
        return await self.send_raw(env.camera_id, env.encode())

    async def send_raw(self, camera_id: str, data: bytes) -> asyncio.Future[Any]:
        """Publish bytes (an encoded envelope) as a frame message of `camera_id`. Sends are
        serialised so that a camera's frames keep their order in its partition."""
        if self._producer is None:
            raise RuntimeError("producer not started")
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            return await self._producer.send(
                self.topic,
                data,
                key=camera_id.encode("utf-8"),
                partition=partition_for(camera_id, self._partitions),
            )

    async def send(
        self,
        camera_id: str,
        frame: np.ndarray,
        ts: float,
        seq: int | None = None,
        *,
        codec: Codec | str = Codec.JPEG,
    ) -> asyncio.Future[Any]:
        env = FrameEnvelope.from_frame(
            camera_id,
            frame,
            ts,
            self._next_seq(camera_id, seq),
            codec=codec,
            jpeg_quality=self.jpeg_quality,
        )
        return await self.send_envelope(env)

    async def send_detections(
        self,
        camera_id: str,
        dets: Detections,
        ts: float,
        seq: int | None = None,
    ) -> asyncio.Future[Any]:
        env = FrameEnvelope.from_detections(camera_id, dets, ts, self._next_seq(camera_id, seq))
        return await self.send_envelope(env)

    async def flush(self) -> None:
        if self._producer is not None:
            await self._producer.flush()

    async def __aenter__(self) -> AsyncFrameProducer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class FrameProducer:
    """Synchronous, thread-safe frame producer for video platforms that push frames.
    Runs an asyncio loop in a daemon thread; `send*` return a `concurrent.futures.Future`
    of the broker's acknowledgement (call `.result()` to wait, or `flush()`)."""

    def __init__(self, broker: str | None = None, **kwargs: Any) -> None:
        from streams.broker import configured_broker

        url = broker or configured_broker()
        if not url:
            raise ValueError("no broker: pass broker='kafka://host:port' or set CITYSTREAM_BROKER")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="citystream-producer", daemon=True
        )
        self._thread.start()
        self._ap = AsyncFrameProducer(url, **kwargs)
        self._seq: dict[str, int] = {}
        self._seq_lock = threading.Lock()
        self._order = threading.Lock()
        self._pending: set[Future[Any]] = set()
        self._pending_lock = threading.Lock()
        self._call(self._ap.start()).result(60)

    def _call(self, coro: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _acked(self, coro: Any) -> Future[Any]:
        async def go() -> Any:
            return await (await coro)

        fut = self._call(go())
        with self._pending_lock:
            self._pending.add(fut)
        fut.add_done_callback(self._done)
        return fut

    def _done(self, fut: Future[Any]) -> None:
        with self._pending_lock:
            self._pending.discard(fut)

    def _next_seq(self, camera_id: str, seq: int | None) -> int:
        with self._seq_lock:
            s = self._seq.get(camera_id, 0) if seq is None else int(seq)
            self._seq[camera_id] = s + 1
            return s

    def send(
        self,
        camera_id: str,
        frame: np.ndarray,
        ts: float,
        seq: int | None = None,
        *,
        codec: Codec | str = Codec.JPEG,
    ) -> Future[Any]:
        """Encode (in the caller's thread) and publish one frame; `seq` defaults to the
        camera's next number."""
        env = FrameEnvelope.from_frame(
            camera_id,
            frame,
            ts,
            self._next_seq(camera_id, seq),
            codec=codec,
            jpeg_quality=self._ap.jpeg_quality,
        )
        return self.send_envelope(env)

    def send_detections(
        self, camera_id: str, dets: Detections, ts: float, seq: int | None = None
    ) -> Future[Any]:
        env = FrameEnvelope.from_detections(camera_id, dets, ts, self._next_seq(camera_id, seq))
        return self.send_envelope(env)

    def send_envelope(self, env: FrameEnvelope) -> Future[Any]:
        return self.send_raw(env.camera_id, env.encode())

    def send_raw(self, camera_id: str, data: bytes) -> Future[Any]:
        with self._order:  # schedule in call order (the loop runs tasks FIFO)
            return self._acked(self._ap.send_raw(camera_id, data))

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every frame sent so far is acknowledged by the broker. Raises the
        first delivery error."""
        with self._pending_lock:
            pending = list(self._pending)
        for f in pending:
            f.result(timeout)
        self._call(self._ap.flush()).result(timeout)

    def close(self) -> None:
        if self._loop.is_running():
            try:
                self.flush()
            finally:
                self._call(self._ap.stop()).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def __enter__(self) -> FrameProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- video feeder -------------------------------------------------------------------------


def _is_live(source: str) -> bool:
    return "://" in source and not source.startswith("file://")


def _open_cv(source: str) -> Any:
    import cv2

    return cv2.VideoCapture(source)


@dataclass
class FeedStats:
    published: int = 0
    read_failures: int = 0
    reconnects: int = 0
    skipped_for_rate: int = 0
    errors: list[str] = field(default_factory=list)


def feed_video(
    producer: FrameProducer,
    camera_id: str,
    source: str,
    *,
    target_fps: float | None = None,
    speed: float = 1.0,
    max_frames: int | None = None,
    loop: bool = False,
    live: bool | None = None,
    codec: Codec | str = Codec.JPEG,
    backoff_s: tuple[float, float] = (0.5, 30.0),
    max_reconnects: int | None = None,
    open_capture: Callable[[str], Any] = _open_cv,
    stop: threading.Event | None = None,
    on_frame: Callable[[int, float], None] | None = None,
    ts_origin: float | None = None,
) -> FeedStats:
    """Publish a video source as frame envelopes of `camera_id`.

    - pacing: `speed` × the source's frame rate (1.0 = real time, 0 = as fast as possible);
      `target_fps` below the source rate publishes only every n-th frame (analysis rate);
    - timestamps: media time for files (continuing across reconnects and loops), wall
      clock for live sources; sequence numbers never restart;
    - a source that fails to open or stops delivering frames is reopened with exponential
      backoff (`backoff_s` = first, max delay); a file resumes at the frame it reached.
    """
    import cv2

    live = _is_live(source) if live is None else live
    st = FeedStats()
    stop = stop or threading.Event()
    seq = 0
    pos = 0  # next frame index within the file
    ts_base = 0.0  # media-time offset added after each loop of a file
    delay = backoff_s[0]
    cap: Any = None
    fps = 25.0
    wall0: float | None = None
    media0: float | None = None
    last_pub_ts = -1e18
    origin = time.time() if ts_origin is None else ts_origin
    futs: list[Future[Any]] = []
    while not stop.is_set():
        if max_frames is not None and st.published >= max_frames:
            break
        if cap is None:
            try:
                cap = open_capture(source)
                ok = cap is not None and cap.isOpened()
            except Exception as e:  # noqa: BLE001 - a source may fail in any way
                ok = False
                st.errors.append(f"open: {e}")
            if not ok:
                if max_reconnects is not None and st.reconnects >= max_reconnects:
                    st.errors.append(f"gave up after {st.reconnects} reconnects")
                    break
                st.reconnects += 1
                log.warning(
                    "camera %s: cannot open %s, retrying in %.1fs", camera_id, source, delay
                )
                stop.wait(delay)
                delay = min(backoff_s[1], delay * 2)
                cap = None
                continue
            f = cap.get(cv2.CAP_PROP_FPS)
            fps = float(f) if f and f > 0 and np.isfinite(f) else 25.0
            if not live and pos:
                cap.set(cv2.CAP_PROP_POS_FRAMES, pos)
        try:
            ok, frame = cap.read()
        except Exception as e:  # noqa: BLE001
            ok, frame = False, None
            st.errors.append(f"read: {e}")
        if not ok or frame is None:
            n_total = 0 if live else int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            at_end = not live and n_total > 0 and pos >= n_total
            if at_end and not loop:
                break
            if at_end and loop:
                ts_base += n_total / fps
                pos = 0
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            st.read_failures += 1
            try:
                cap.release()
            except Exception:  # noqa: BLE001
                pass
            cap = None
            if max_reconnects is not None and st.reconnects >= max_reconnects:
                st.errors.append(f"gave up after {st.reconnects} reconnects")
                break
            st.reconnects += 1
            log.warning("camera %s: source dropped, reconnecting in %.1fs", camera_id, delay)
            stop.wait(delay)
            delay = min(backoff_s[1], delay * 2)
            wall0 = None  # re-anchor pacing after the gap
            continue
        delay = backoff_s[0]
        media_ts = time.time() if live else ts_base + pos / fps
        pos += 1
        if target_fps and target_fps < fps and media_ts - last_pub_ts < 1.0 / target_fps - 1e-6:
            st.skipped_for_rate += 1
            continue
        if speed > 0 and not live:
            if wall0 is None or media0 is None:
                wall0, media0 = time.monotonic(), media_ts
            wait = wall0 + (media_ts - media0) / speed - time.monotonic()
            if wait > 0:
                stop.wait(wait)
        ts = media_ts if live else origin + media_ts
        futs.append(producer.send(camera_id, np.ascontiguousarray(frame), ts, seq, codec=codec))
        last_pub_ts = media_ts
        seq += 1
        st.published += 1
        if on_frame is not None:
            on_frame(seq, ts)
        if len(futs) > 64:
            futs.pop(0).result(60)
    for f in futs:
        f.result(60)
    if cap is not None:
        cap.release()
    return st
