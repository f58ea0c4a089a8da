"""The Faust application: topics, agents, tables.

    frames ──structure──▶ observations (one record per frame, key camera:seq)
                      ├─▶ crossings (key camera:track:line), alerts, dead-letters
    observations (frame records with their crossings) ──flow──▶ flows (per lane / camera / window) + congestion alerts
    flows ──signal──▶ signal-plans (per intersection and window)

Every record topic is written with an explicit partition derived from the camera (flows
and plans: the intersection), so a camera's frames, records and table state share one
partition number and a worker owns whole cameras.

Delivery: at-least-once with idempotent outputs, exact across a kill by construction:
- Each agent processes every partition's records once and contiguously, whatever Faust
  delivers (`_in_order`): re-delivered offsets are dropped, skipped ones are read again from
  the partition. Faust 0.15.3 drops records fetched while it resumes after an assignment;
  `_patch_faust_resume` narrows that, the gap filling makes it harmless.
- The structure agent acks a batch of frames only after its records are acknowledged by the
  broker, then checkpoints per camera the last sequence emitted (changelog table; Faust
  flushes table writes before it commits offsets). A camera's tracker is rebuilt after a
  restart by replaying the camera's frames from its first offset in the partition (up to
  `replay_max_frames`), the same frames in the same order as before, so track ids and
  crossings are the same; records above the checkpoint are emitted (again), keyed alike.
- The flow agent counts a crossing once per window (crossings kept by key in the window's
  accumulator, one changelog record) and closes a window once: records acknowledged, then the clock that
  says "closed" durable, then the accumulator deleted. An unexpected error in an agent exits
  the process without committing (`_fatal`).
Exactness bounds: frames skipped by backpressure (wall-clock lag) and trackers older than
`replay_max_frames` frames are not reproduced by the replay.

    >>> sa = create_app(SiteConfig.from_toml("site.toml"), StreamSettings(), broker="kafka://h:9092")  # doctest: +SKIP
    >>> sa.app.main()  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
import weakref
import zlib
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from engine.config import SiteConfig
from engine.errors import CitystreamError, EnvelopeError, UnknownCameraError
from engine.records import FrameResult
from streams.broker import bootstrap_of
from streams.envelope import Codec, FrameEnvelope
from streams.incidents import IncidentStage, congestion_alert
from streams.metrics import Metrics
from streams.settings import EMBEDDED_FETCH_MAX_WAIT_MS, StreamSettings, partition_for

log = logging.getLogger("citystream.streams")

# Debugging aid: CITYSTREAM_TRACE=<file> appends one JSON line per frame structured, frame
# replayed, checkpoint, crossing counted and window closed (the restart test sets it).
_TRACE = os.environ.get("CITYSTREAM_TRACE")


def _trace(**kw: Any) -> None:
    if _TRACE:
        with open(_TRACE, "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "t": time.time(), **kw}) + "\n")


def _json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_default).encode(
        "utf-8"
    )


def _default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    return str(o)


@contextmanager
def _event_context(event: Any):
    """Make `event` Faust's current event, so table writes go to its partition's changelog
    (inside a cross-partition batch the stream's current event is another one)."""
    from faust.streams import _current_event

    token = _current_event.set(weakref.ref(getattr(event, "ctx", event)))
    try:
        yield
    finally:
        _current_event.reset(token)


def fresh_frames(
    items: list[tuple[Any, FrameEnvelope, float]],
    now: float,
    max_wall_lag_s: float | None,
    max_stream_lag_s: float | None,
) -> tuple[
    list[tuple[Any, FrameEnvelope, float]], dict[str, list[tuple[Any, FrameEnvelope, float]]]
]:
    """Backpressure: keep the frames worth analysing, skip the stale ones.

    `items` are (event, envelope, produced_wall_s). A frame is skipped when it was produced
    more than `max_wall_lag_s` ago, or when it is more than `max_stream_lag_s` older (stream
    time) than the newest frame of its camera in the batch. The newest frame of each camera
    in a batch is always kept, so a lagging worker jumps forward instead of starving.
    Returns (kept in input order, skipped per camera)."""
    newest: dict[str, tuple[float, int]] = {}
    for i, (_, env, _) in enumerate(items):
        cur = newest.get(env.camera_id)
        if cur is None or env.ts >= cur[0]:
            newest[env.camera_id] = (env.ts, i)
    kept: list[tuple[Any, FrameEnvelope, float]] = []
    skipped: dict[str, list[tuple[Any, FrameEnvelope, float]]] = defaultdict(list)
    for i, it in enumerate(items):
        _, env, produced = it
        ts_new, i_new = newest[env.camera_id]
        stale = False
        if i != i_new:
            if max_wall_lag_s and produced > 0 and now - produced > max_wall_lag_s:
                stale = True
            if max_stream_lag_s and ts_new - env.ts > max_stream_lag_s:
                stale = True
        (skipped[env.camera_id].append(it) if stale else kept.append(it))
    return kept, dict(skipped)


_FIELDS: dict[type, tuple[str, ...]] = {}


def _record(o: Any) -> dict[str, Any]:
    """A record dataclass as a dict, shallow (dataclasses.asdict deep-copies: ~5× slower)."""
    names = _FIELDS.get(type(o))
    if names is None:
        names = _FIELDS[type(o)] = tuple(f.name for f in fields(o))
    return {n: getattr(o, n) for n in names}


def frame_record(r: FrameResult) -> dict[str, Any]:
    return {
        "kind": "frame",
        "camera_id": r.camera_id,
        "seq": r.seq,
        "ts": r.ts,
        "observations": [_record(o) for o in r.observations],
        "zones": [_record(z) for z in r.zones],
        # crossings ride along (also published on `crossings`) so that the flow agent sees
        # them in frame order with the watermark: windows close after their crossings
        "crossings": [_record(c) for c in r.crossings],
        "n_alerts": len(r.alerts),
        "extras": r.extras,
        "timings_ms": {k: round(v, 3) for k, v in r.timings_ms.items()},
    }


def _tune_worker_consumer(fetch_max_wait_ms: int | None, prefetch_backoff_s: float) -> None:
    """Faust hard-codes the worker consumer's fetch_max_wait_ms (1,500 ms); set ours. And
    shorten aiokafka's prefetch backoff (100 ms, not configurable): aiokafka sends no new
    fetch to a broker while any partition it fetched from that broker holds records not yet
    consumed, for up to that backoff. The worker's consumer is also assigned the tables'
    changelog partitions, which Faust fetches but does not consume after recovery, so each
    table write (a checkpoint, a flow window update) stalled the frames behind it for up to
    100 ms: the ~100 ms p99 of the streamed path."""
    from faust.transport.drivers import aiokafka as drv

    cls = drv.AIOKafkaConsumerThread
    orig = getattr(cls, "_cs_orig_create", None) or cls._create_worker_consumer
    cls._cs_orig_create = orig  # type: ignore[attr-defined]

    def create(self: Any, transport: Any) -> Any:
        consumer = orig(self, transport)
        if fetch_max_wait_ms:
            consumer._fetch_max_wait_ms = fetch_max_wait_ms  # read by start() for its Fetcher
        orig_start = consumer.start

        async def start() -> None:
            await orig_start()
            consumer._fetcher._prefetch_backoff = prefetch_backoff_s

        consumer.start = start
        return consumer

    cls._create_worker_consumer = create  # type: ignore[method-assign]


def _patch_faust_resume() -> None:
    """Seek to the committed offsets BEFORE resuming the partitions after a rebalance.

    faust-streaming 0.15.3 (`Recovery._resume_streams`) resumes the stream partitions, then
    seeks them to their committed offsets, then resumes flow control, which clears the
    agents' queues. Records fetched in between are put in a queue, dropped by that clear,
    yet counted as read, so the stream silently skips them (seen after a restart under CPU
    load: a worker resumed at offset 497, processed 497-498, then continued at 533). Here
    the seek comes first, while the partitions are still paused, and the app is told the
    offsets it resumes from (`app._cs_on_seek`) so that its agents can detect any gap.

    Only the path without tables is patched: with tables (ours) Faust resumes through
    `Recovery.on_recovery_completed`, where the same reordering made a restarted worker stop
    receiving frames in 4 of 16 kill/restart runs (the partition seeked back yet never
    fetched again); there the agents' gap filling (`_in_order`) is what keeps a restart
    exact."""
    from faust.tables.recovery import Recovery

    if getattr(Recovery, "_cs_patched", False):
        return

    async def _resume_streams(self: Any, generation_id: int = 0) -> None:
        app = self.app
        consumer = app.consumer
        await app.on_rebalance_complete.send()
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
            hook = getattr(app, "_cs_on_seek", None)
            if hook is not None:
                hook(dict(consumer._read_offset))
            consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        else:
            self.log.info("Resuming streams with empty assignment")
        self.completed.set()
        self.log.info("Resuming flow...")
        app.flow_control.resume()
        consumer.resume_flow()
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    Recovery._resume_streams = _resume_streams  # type: ignore[method-assign]
    Recovery._cs_patched = True  # type: ignore[attr-defined]


def _fatal(agent: str, exc: BaseException) -> None:
    """Crash-only: an unexpected error inside an agent stops the process at once. Faust would
    ack the failed events and commit them on a clean stop (losing them); a hard exit keeps
    the committed offsets where they are, and the restarted worker resumes from there."""
    log.critical("%s agent failed: %r; exiting without committing", agent, exc, exc_info=exc)
    logging.shutdown()
    os._exit(70)


class _Refetched:
    """A record read again from its partition to fill a gap in what Faust delivered; looks
    like a Faust event to the agents (`.value`, `.message`), `ctx` is the real event after
    the gap (same partition: table writes go to its changelog partition)."""

    __slots__ = ("ctx", "message", "value")

    def __init__(self, rec: Any, ctx: Any) -> None:
        self.message = rec
        self.value = rec.value
        self.ctx = ctx


def _trace_fetches() -> None:
    """Trace when the consumer thread hands records over (latency breakdown)."""
    from faust.transport.drivers import aiokafka as drv

    orig = drv.AIOKafkaConsumerThread._fetch_records

    async def _fetch_records(self: Any, *a: Any, **kw: Any) -> Any:
        out = await orig(self, *a, **kw)
        if out:
            t = time.time()
            _trace(
                ev="fetched",
                t1=t,
                offs=[(tp.topic, tp.partition, m.offset) for tp, ms in out.items() for m in ms],
            )
        return out

    drv.AIOKafkaConsumerThread._fetch_records = _fetch_records

    from aiokafka.consumer.fetcher import Fetcher

    orig_proc = Fetcher._proc_fetch_request

    async def _proc(self: Any, assignment: Any, node_id: Any, request: Any) -> Any:
        t = time.time()
        out = await orig_proc(self, assignment, node_id, request)
        _trace(
            ev="fetch_req",
            t0=t,
            dt=(time.time() - t) * 1e3,
            new=out,
            ntp=sum(len(p) for _, p in request.topics),
            topics=sorted({t for t, _ in request.topics}),
        )
        return out

    Fetcher._proc_fetch_request = _proc
    orig_commit = drv.AIOKafkaConsumerThread._commit

    async def _commit(self: Any, offsets: Any) -> Any:
        t = time.time()
        out = await orig_commit(self, offsets)
        _trace(ev="commit", t0=t, dt=(time.time() - t) * 1e3)
        return out

    drv.AIOKafkaConsumerThread._commit = _commit
    from faust.transport.consumer import Consumer as FC

    orig_co = FC._commit_offsets

    async def _commit_offsets(self: Any, *a: Any, **kw: Any) -> Any:
        t = time.time()
        out = await orig_co(self, *a, **kw)
        _trace(ev="commit_offsets", t0=t, dt=(time.time() - t) * 1e3)
        return out

    FC._commit_offsets = _commit_offsets


if os.environ.get("CITYSTREAM_TRACE_FETCH"):
    _trace_fetches()


class StreamApp:
    """The Faust app with its topics, tables and agents for one site."""

    def __init__(
        self,
        config: SiteConfig,
        settings: StreamSettings,
        broker: str,
        *,
        pipeline: Any = None,
        load_detector: bool | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        import faust

        self.config = config
        self.settings = settings
        self.broker = broker
        self.metrics = metrics or Metrics()
        s = settings
        wait = s.fetch_max_wait_ms or (EMBEDDED_FETCH_MAX_WAIT_MS if s.embedded_profile else None)
        _tune_worker_consumer(wait, max(0.001, (wait or 10) / 1000.0))
        _patch_faust_resume()
        self.app = faust.App(s.app_id, broker=broker, **s.faust_options())
        self._pipeline = pipeline
        self._load_detector = load_detector
        self.live: set[str] = set()
        self._zdelta: dict[str, dict[str, Any]] = {}
        self._wm: dict[str, float] = {}
        self._replayer: Any = None
        self._replay_lock = asyncio.Lock()
        # (topic, partition) -> next offset an agent must process: re-deliveries below it are
        # skipped, a jump above it is filled by reading the partition (see `_in_order`)
        self._pos: dict[tuple[str, int], int] = {}
        self._cam_partition: dict[str, int] = {}
        self._ckpt_phases: dict[str, int] = {}
        self._incidents = IncidentStage(config, s.incidents)
        self.planner = SignalPlanner(config)
        from engine.flow import FlowConfig

        self.flow_cfg = FlowConfig.from_site(config)  # PCU factors, lanes ([flow])

        def raw_topic(name: str, internal: bool = False) -> Any:
            return self.app.topic(
                s.topic(name),
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=s.partitions,
                internal=internal,
            )

        self.frames = raw_topic("frames")
        self.observations = raw_topic("observations")
        self.crossings = raw_topic("crossings")
        self.flows = raw_topic("flows")
        self.plans = raw_topic("signal-plans")
        self.alerts = raw_topic("alerts")
        self.dead = raw_topic("dead-letters")

        def table(name: str) -> Any:
            return self.app.Table(name, default=None, partitions=s.partitions)

        # camera -> {"p": partition, "first": first frame offset, "last_seq": last emitted seq}
        self.cameras = table("cs-cameras")
        # "camera|window_start" -> occupancy of one open flow window (frames, per-zone sums)
        self.flow_acc = table("cs-flow-acc")
        # "camera|window_start|crossing key" -> one counted crossing of an open window
        self.flow_x = table("cs-flow-x")
        self._xidx: dict[str, dict[float, dict[str, None]]] | None = None
        # camera -> {"wm": watermark, "closed": windows closed below, "open": [...], "congested": {...}}
        self.clock = table("cs-flow-clock")
        # "intersection|window_start" -> lane flows gathered for a plan
        self.plan_acc = table("cs-plan-acc")

        self.app.agent(self.frames, name="structure")(self._structure_agent)
        self.app.agent(self.observations, name="flow")(self._flow_agent)
        self.app.agent(self.flows, name="signal")(self._signal_agent)
        self.app._cs_on_seek = self._on_seek  # type: ignore[attr-defined]
        self._cameras_by_intersection: dict[str, list[str]] = defaultdict(list)
        for cam_id, cam in config.cameras.items():
            if cam.intersection:
                self._cameras_by_intersection[cam.intersection].append(cam_id)

        if s.metrics_port:
            metrics_ref = self.metrics

            @self.app.page("/metrics")
            async def metrics_page(web: Any, request: Any) -> Any:
                return web.text(metrics_ref.render(), content_type="text/plain; version=0.0.4")

        @self.app.on_partitions_assigned.connect
        async def _ready(app: Any, assigned: Any = (), **kw: Any) -> None:
            frames = sorted(
                tp.partition for tp in assigned if tp.topic == self.frames.get_topic_name()
            )
            self._xidx = None  # rebuilt from the recovered table on first use
            print(f"citystream worker: ready, frames partitions {frames}", flush=True)
            ready_file = os.environ.get("CITYSTREAM_READY_FILE")
            if ready_file:
                Path(ready_file).write_text(
                    json.dumps({"frames_partitions": frames, "ts": time.time()})
                )

        if _TRACE:

            @self.app.timer(0.005)
            async def _loop_lag() -> None:
                now = time.perf_counter()
                last = getattr(self, "_lag_t", None)
                self._lag_t = now
                if last is not None and now - last > 0.025:
                    _trace(ev="loop_stall", ms=(now - last) * 1e3)

        @self.app.on_partitions_revoked.connect
        async def _revoked(app: Any, revoked: Any = (), **kw: Any) -> None:
            self._forget({(tp.topic, tp.partition) for tp in revoked})

        @self.app.on_before_shutdown.connect
        async def _close_replayer(app: Any, **kw: Any) -> None:
            if self._replayer is not None:
                try:
                    await self._replayer.stop()
                except Exception:  # noqa: BLE001 - best effort on shutdown
                    pass

    # ---- the pipeline --------------------------------------------------------------------
    @property
    def pipeline(self) -> Any:
        if self._pipeline is None:
            from engine.pipeline import Pipeline

            load = self._load_detector
            if load is None:  # auto: a detector if the models are there, else detections only
                try:
                    p = Pipeline(self.config, load_detector=True)
                except CitystreamError as e:
                    log.warning("no detector (%s): image frames go to dead-letters", e)
                    p = Pipeline(self.config, load_detector=False)
            else:
                p = Pipeline(self.config, load_detector=load)
            p.add_stage(self._incidents)
            self._pipeline = p
        return self._pipeline

    # ---- sending -------------------------------------------------------------------------
    async def _send(self, topic: Any, key: str, value: Any, route: str) -> Any:
        """Produce one record (raw bytes, explicit partition) straight through the app's
        producer; returns the delivery future (resolved when the broker acknowledged)."""
        return await self.app.producer.send(
            topic.get_topic_name(),
            key.encode("utf-8"),
            value if isinstance(value, bytes) else _json(value),
            partition_for(route, self.settings.partitions),
            None,
            None,
        )

    async def dead_letter(self, event: Any, reason: str, camera_id: str | None = None) -> Any:
        msg = event.message
        value = event.value if isinstance(event.value, (bytes, bytearray)) else b""
        rec = {
            "reason": reason,
            "topic": msg.topic,
            "partition": msg.partition,
            "offset": msg.offset,
            "camera_id": camera_id,
            "key": (msg.key or b"").decode("utf-8", "replace")
            if isinstance(msg.key, bytes)
            else msg.key,
            "size": len(value),
            "head_hex": bytes(value[:48]).hex(),
            "ts": time.time(),
        }
        self.metrics.inc("citystream_dead_letters_total", reason=reason.split(":")[0][:60])
        return await self.app.producer.send(
            self.dead.get_topic_name(),
            f"{msg.topic}:{msg.partition}:{msg.offset}".encode(),
            _json(rec),
            msg.partition % self.settings.partitions,
            None,
            None,
        )

    # ---- delivery order --------------------------------------------------------------------
    def _on_seek(self, offsets: dict[Any, int | None]) -> None:
        """After a (re)assignment: the offsets the partitions resume from (committed, else
        the beginning). The agents expect exactly these next (see `_in_order`)."""
        for tp, off in offsets.items():
            self._pos.setdefault((tp.topic, tp.partition), int(off or 0))
        _trace(ev="seek", offs={f"{tp.topic}:{tp.partition}": o for tp, o in offsets.items()})

    def _forget(self, tps: set[tuple[str, int]]) -> None:
        """Partitions revoked: their positions and the trackers of their cameras go (another
        worker may process them meanwhile); a later assignment rebuilds them by replay."""
        self._xidx = None
        for k in tps:
            self._pos.pop(k, None)
        frames = self.frames.get_topic_name()
        gone = {p for t, p in tps if t == frames}
        for cam, p in list(self._cam_partition.items()):
            if p in gone:
                del self._cam_partition[cam]
                self.live.discard(cam)
                if self._pipeline is not None:
                    self._pipeline.reset(cam)

    async def _read_range(self, topic: str, partition: int, start: int, end: int) -> list[Any]:
        """Records [start, end) of one partition, read with a separate plain consumer."""
        if end <= start:
            return []
        from aiokafka import AIOKafkaConsumer, TopicPartition

        async with self._replay_lock:
            if self._replayer is None:
                self._replayer = AIOKafkaConsumer(
                    bootstrap_servers=bootstrap_of(self.broker),
                    enable_auto_commit=False,
                    group_id=None,
                    auto_offset_reset="earliest",
                    fetch_max_wait_ms=EMBEDDED_FETCH_MAX_WAIT_MS,
                )
                await self._replayer.start()
            c = self._replayer
            tp = TopicPartition(topic, partition)
            c.assign([tp])
            c.seek(tp, start)
            out: list[Any] = []
            pos = start
            t0 = time.perf_counter()
            try:
                while pos < end:
                    batch = await c.getmany(tp, timeout_ms=1000, max_records=1000)
                    msgs = batch.get(tp, [])
                    if not msgs:
                        if time.perf_counter() - t0 > 60:
                            raise CitystreamError(
                                f"reading {topic}[{partition}] {start}..{end} stopped at {pos}"
                            )
                        continue
                    for m in msgs:
                        if m.offset >= end:
                            pos = end
                            break
                        pos = m.offset + 1
                        out.append(m)
            finally:
                # unassigned, it stops fetching: assigned, it kept polling (and prefetching
                # the partition's new frames) for the rest of the worker's life
                c.unsubscribe()
            return out

    async def _in_order(self, events: list[Any]) -> list[Any]:
        """The events of each partition exactly once and contiguous, whatever Faust delivered:
        a re-delivered offset (a rebalance seeks back to the committed offset) is dropped, a
        jump forward is filled by reading the skipped records from the partition."""
        out: list[Any] = []
        for ev in events:
            m = ev.message
            key = (m.topic, m.partition)
            nxt = self._pos.get(key)
            if nxt is not None and m.offset < nxt:
                self.metrics.inc("citystream_redelivered_total", topic=m.topic)
                continue
            if nxt is not None and m.offset > nxt:
                missed = await self._read_range(m.topic, m.partition, nxt, m.offset)
                log.warning(
                    "%s[%d]: offsets %d..%d were not delivered; read %d of them again",
                    m.topic,
                    m.partition,
                    nxt,
                    m.offset - 1,
                    len(missed),
                )
                self.metrics.inc("citystream_refetched_total", len(missed), topic=m.topic)
                out.extend(_Refetched(r, ev) for r in missed)
            self._pos[key] = m.offset + 1
            out.append(ev)
        return out

    # ---- structure -----------------------------------------------------------------------
    async def _structure_agent(self, stream: Any) -> None:
        s = self.settings
        # Batches form from what is already waiting: take events while the agent's queue
        # holds more (up to batch_max), then process. Faust's take_events(within=...) woke
        # every `within` (1 ms) even when idle and cost a multi-future wait per batch (~7%
        # of a core idle, ~13% of the agent's time busy). With a detector a batch waits
        # `batch_within_s` once for more frames (one model call for many cameras).
        st = stream.noack()
        queue = stream.channel.queue
        wait = s.batch_within_s if getattr(self.pipeline, "_detector", None) is not None else 0.0
        batch: list[Any] = []
        async for ev in st.events():
            batch.append(ev)
            if len(batch) < s.batch_max:
                if queue.qsize() > 0:
                    continue
                if wait:
                    await asyncio.sleep(wait)
                    if queue.qsize() > 0:
                        continue
            try:
                await self.structure_batch(batch)
            except Exception as e:  # noqa: BLE001
                _fatal("structure", e)
            for done in batch:  # acked (committable) only once their records are
                await st.ack(done)
            batch = []

    def _process_one(self, env: FrameEnvelope) -> FrameResult:
        p = self.pipeline
        if env.codec is Codec.DETECTIONS:
            return p.process_detections(env.detections(), env.camera_id, env.ts, env.seq)
        return p.process(env.image(), env.camera_id, env.ts, env.seq)

    async def _emit(self, r: FrameResult, futs: list[Any]) -> None:
        """Send a frame's records (observations, crossings, alerts); delivery futures to `futs`."""
        cam = r.camera_id
        futs.append(await self._send(self.observations, f"{cam}:{r.seq}", frame_record(r), cam))
        for c in r.crossings:
            futs.append(await self._send(self.crossings, c.key, _record(c), cam))
        for a in r.alerts:
            futs.append(await self._send(self.alerts, a.key, _record(a), cam))
            self.metrics.inc("citystream_alerts_total", kind=a.kind)
        if r.crossings:
            self.metrics.inc("citystream_crossings_total", len(r.crossings), camera=cam)

    async def _ensure_live(self, cam: str, event: Any) -> None:
        """Before this process structures a frame of `cam` for the first time: rebuild the
        tracker from the camera's earlier frames in its partition (the same frames, in the
        same order, as the worker before saw), and emit the records of those frames that
        were never confirmed emitted (seq above the checkpoint)."""
        if cam in self.live:
            return
        msg = event.message
        st = self.cameras.get(cam)
        if st is None or st.get("p") != msg.partition:
            with _event_context(event):
                self.cameras[cam] = {"p": msg.partition, "first": msg.offset, "last_seq": -1}
            await self.app.producer.flush()  # the replay origin is durable before any output
        else:
            start = max(int(st["first"]), msg.offset - self.settings.replay_max_frames)
            last = int(st.get("last_seq", -1))
            recs = await self._read_range(msg.topic, msg.partition, start, msg.offset)
            key = cam.encode("utf-8")
            futs: list[Any] = []
            n = top = 0
            for m in recs:
                if m.key != key:
                    continue
                try:
                    env = FrameEnvelope.decode(m.value)
                    if env.camera_id != cam:
                        continue
                    r = self._process_one(env)
                except CitystreamError:
                    continue  # went to dead-letters the first time round
                n += 1
                _trace(ev="replay", cam=cam, seq=r.seq, off=m.offset)
                if r.seq > last:
                    await self._emit(r, futs)
                    top = r.seq
            if futs:
                await asyncio.gather(*futs)
                with _event_context(event):
                    self.cameras[cam] = {**st, "last_seq": top}
            log.info(
                "camera %s: tracker rebuilt from %d frames (offsets %d..%d), %d re-emitted",
                cam,
                n,
                start,
                msg.offset,
                len(futs),
            )
        self._cam_partition[cam] = msg.partition
        self.live.add(cam)

    async def structure_batch(self, events: list[Any]) -> None:
        """Decode, backpressure, structure and emit one batch of frame events."""
        m = self.metrics
        s = self.settings
        events = await self._in_order(events)
        if not events:
            return
        now = time.time()
        t_batch = time.perf_counter()
        items: list[tuple[Any, FrameEnvelope, float]] = []
        futs: list[Any] = []
        for ev in events:
            try:
                env = FrameEnvelope.decode(ev.value)
                self.config.camera(env.camera_id)
            except (EnvelopeError, UnknownCameraError) as e:
                kind = "envelope" if isinstance(e, EnvelopeError) else "unknown_camera"
                futs.append(await self.dead_letter(ev, f"{kind}: {e}"))
                continue
            m.inc("citystream_frames_in_total", camera=env.camera_id)
            ts_ms = ev.message.timestamp
            produced = ts_ms / 1000.0 if ts_ms and ts_ms > 1e11 else (ts_ms or 0.0)
            items.append((ev, env, produced))
        kept, skipped = fresh_frames(items, now, s.max_wall_lag_s, s.max_stream_lag_s)
        for cam, its in skipped.items():
            m.inc("citystream_frames_skipped_total", len(its), camera=cam)
            seqs = [e.seq for _, e, _ in its]
            rec = {
                "kind": "skip",
                "camera_id": cam,
                "from_seq": min(seqs),
                "to_seq": max(seqs),
                "count": len(its),
                "ts": max(e.ts for _, e, _ in its),
                "lag_s": round(now - min(p for _, _, p in its), 3),
                "reason": "backpressure: worker behind, skipped to the newest frames",
            }
            futs.append(await self._send(self.observations, f"{cam}:skip:{min(seqs)}", rec, cam))
        # Tracker state lives in this process: rebuild it first after a (re)start.
        for ev, env, _ in kept:
            await self._ensure_live(env.camera_id, ev)
        t_dec = time.perf_counter()
        results: list[tuple[Any, FrameEnvelope, float, FrameResult]] = []
        images: list[tuple[Any, FrameEnvelope, float, Any]] = []
        for ev, env, produced in kept:
            try:
                if env.codec is Codec.DETECTIONS:
                    r = self.pipeline.process_detections(
                        env.detections(), env.camera_id, env.ts, env.seq
                    )
                    results.append((ev, env, produced, r))
                else:
                    images.append((ev, env, produced, env.image()))
            except EnvelopeError as e:
                futs.append(await self.dead_letter(ev, f"envelope: {e}", env.camera_id))
            except CitystreamError as e:
                futs.append(await self.dead_letter(ev, f"{type(e).__name__}: {e}", env.camera_id))
        if images:
            m.observe(
                "citystream_stage_latency_ms",
                (time.perf_counter() - t_dec) * 1e3 / len(kept),
                stage="decode",
            )
            batch = [(img, env.camera_id, env.ts, env.seq) for _, env, _, img in images]
            try:
                # the model call releases the GIL: run it off the event loop so the worker
                # keeps fetching, heartbeating and sending while it infers
                outs = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: self.pipeline.process_batch(batch, errors="return")
                )
            except CitystreamError as e:  # e.g. no detector in this worker
                outs = [e] * len(images)
            m.set("citystream_batch_size", len(images))
            for (ev, env, produced, _), out in zip(images, outs, strict=True):
                if isinstance(out, Exception):
                    futs.append(
                        await self.dead_letter(ev, f"{type(out).__name__}: {out}", env.camera_id)
                    )
                else:
                    results.append((ev, env, produced, out))
        t_proc = time.perf_counter()
        last_ev: dict[str, tuple[Any, int]] = {}
        for ev, env, produced, r in results:
            cam = env.camera_id
            st = self.cameras.get(cam) or {}
            if r.seq > int(st.get("last_seq", -1)):  # not emitted before a restart
                await self._emit(r, futs)
            if _TRACE:
                _trace(
                    ev="frame",
                    cam=cam,
                    seq=r.seq,
                    off=ev.message.offset,
                    x=[c.key for c in r.crossings],
                )
            last_ev[cam] = (ev, r.seq)
            m.inc("citystream_frames_out_total", camera=cam)
            if produced:
                m.set("citystream_lag_seconds", max(0.0, now - produced), camera=cam)
            for k, v in r.timings_ms.items():
                m.observe("citystream_stage_latency_ms", v, stage=k)
        t_sent = time.time()
        if s.confirm_delivery and futs:
            await asyncio.gather(*futs)
        if _TRACE:
            _trace(
                ev="batch",
                t0=now,
                sent=t_sent,
                frames=[(env.camera_id, env.seq) for _, env, _, _ in results],
                offs=[ev.message.offset for ev, _, _, _ in results],
                tp=[ev.message.partition for ev, _, _, _ in results],
                prod=[produced for _, _, produced, _ in results],
                n=len(events),
            )
        for cam, (ev, seq) in last_ev.items():
            st = dict(
                self.cameras.get(cam) or {"p": ev.message.partition, "first": ev.message.offset}
            )
            # Checkpoint every few frames: after a restart the frames since the checkpoint
            # are emitted again, identical (the tracker replay is exact) and keyed alike.
            # Each camera on its own phase of the grid (cameras paced together would all
            # write their checkpoints in the same batch).
            k, ph = s.checkpoint_every, self._ckpt_phase(cam)
            if (seq + ph) // k > (int(st.get("last_seq", -1)) + ph) // k:
                st["last_seq"] = seq
                _trace(ev="ckpt", cam=cam, seq=seq)
                with _event_context(ev):
                    self.cameras[cam] = st
        if results:
            m.observe(
                "citystream_stage_latency_ms",
                (time.perf_counter() - t_proc) * 1e3 / len(results),
                stage="emit",
            )
            m.observe(
                "citystream_stage_latency_ms",
                (time.perf_counter() - t_batch) * 1e3 / len(results),
                stage="batch_total",
            )
        try:
            for ev in events[-1:]:
                tp = ev.message.tp
                hw = self.app.consumer.highwater(tp)
                if hw is not None:
                    m.set(
                        "citystream_offset_lag",
                        max(0, hw - ev.message.offset - 1),
                        partition=str(tp.partition),
                    )
        except Exception:  # noqa: BLE001 - the metric is best effort
            pass

    def _ckpt_phase(self, cam: str) -> int:
        ph = self._ckpt_phases.get(cam)
        if ph is None:
            ph = self._ckpt_phases[cam] = (
                zlib.crc32(cam.encode("utf-8")) % self.settings.checkpoint_every
            )
        return ph

    # ---- flow ----------------------------------------------------------------------------
    def _window(self, ts: float) -> float:
        w = self.settings.flow_window_s
        return math.floor(ts / w) * w

    async def _flow_agent(self, stream: Any) -> None:
        async for ev in stream.events():
            try:
                for e in await self._in_order([ev]):
                    try:
                        data = json.loads(e.value)
                    except (ValueError, TypeError):
                        continue
                    for c in data.get("crossings") or ():
                        self.flow_crossing(c)
                    await self.flow_frame(data)
            except Exception as e:  # noqa: BLE001
                _fatal("flow", e)

    def _clock(self, cam: str) -> dict[str, Any]:
        return dict(
            self.clock.get(cam)
            or {"wm": -math.inf, "closed": -math.inf, "open": [], "congested": {}}
        )

    def _xindex(self) -> dict[str, dict[float, dict[str, None]]]:
        """camera -> window start -> the keys of its counted crossings (insertion order), an
        in-memory index over the `cs-flow-x` table; rebuilt from the table (recovered from
        its changelog) after a start or a reassignment."""
        if self._xidx is None:
            idx: dict[str, dict[float, dict[str, None]]] = defaultdict(dict)
            for k in list(self.flow_x.keys()):
                cam, ws, xkey = str(k).split("|", 2)
                idx[cam].setdefault(float(ws), {})[xkey] = None
            self._xidx = idx
        return self._xidx

    def flow_crossing(self, c: dict[str, Any]) -> None:
        """Count a crossing once in its window. One small changelog record per crossing (its
        own `cs-flow-x` entry, key camera|window|crossing key), so a counted crossing is
        persisted exactly when it is counted, and the state written per crossing does not
        grow with the window (the window's totals are summed from its entries at close)."""
        cam = c["camera_id"]
        key = f"{cam}:{c['track_id']}:{c['line_id']}"
        ws = self._window(float(c["ts"]))
        clk = self._clock(cam)
        if ws < clk["closed"]:
            _trace(ev="late", key=key, ws=ws, closed=clk["closed"])
            self.metrics.inc("citystream_late_crossings_total", camera=cam)
            return
        akey = f"{cam}|{ws}"
        xk = f"{akey}|{key}"
        dup = self.flow_x.get(xk) is not None
        if _TRACE:
            _trace(ev="count", key=key, ws=ws, dup=dup)
        if dup:
            self.metrics.inc("citystream_duplicates_total", camera=cam)
            return
        self.flow_x[xk] = [
            float(c["ts"]),
            c["line_id"],
            c["direction"],
            c["cls"],
            c.get("speed_kmh"),
            c.get("lane"),
            int(c["track_id"]),
            int(c.get("seq", 0)),
        ]
        self._xindex()[cam].setdefault(ws, {})[key] = None
        # occupancy since the last write rides along (a few numbers per zone)
        if akey in self._zdelta or self.flow_acc.get(akey) is None:
            prev = self.flow_acc.get(akey) or {"frames": 0, "zones": {}}
            self.flow_acc[akey] = self._fold(akey, prev)
        if ws not in clk["open"]:
            clk["open"] = sorted([*clk["open"], ws])
            self.clock[cam] = clk

    def _window_crossings(self, cam: str, ws: float) -> dict[str, list[Any]]:
        """The counted crossings of a window: crossing key -> [ts, line, direction, class,
        speed, lane, track, seq], in the order they were counted."""
        akey = f"{cam}|{ws}"
        out: dict[str, list[Any]] = {}
        for key in self._xindex().get(cam, {}).get(ws, ()):
            v = self.flow_x.get(f"{akey}|{key}")
            if v is not None:
                out[key] = v
        return out

    def _line_totals(self, xs: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
        lines: dict[str, dict[str, Any]] = {}
        for _ts, line, d, cls, speed, lane, _track, _seq in xs.values():
            ln = lines.get(line)
            if ln is None:
                ln = lines[line] = {
                    "in": 0,
                    "out": 0,
                    "pcu": 0.0,
                    "speed_sum": 0.0,
                    "speed_n": 0,
                    "by_class": {},
                    "lane": lane,
                }
            ln[d] = ln.get(d, 0) + 1
            ln["pcu"] += 0.0 if cls == "person" else self.flow_cfg.pcu.of(cls)
            ln["by_class"][cls] = ln["by_class"].get(cls, 0) + 1
            if speed is not None:
                ln["speed_sum"] += float(speed)
                ln["speed_n"] += 1
        return lines

    def _drop_window_state(self, cam: str, closed: float) -> None:
        """After a window's closing is durable: its crossing entries and accumulator go, and
        any left over from windows closed before a kill (same camera: same partition)."""
        per_cam = self._xindex().get(cam, {})
        for ws in [x for x in per_cam if x < closed]:
            akey = f"{cam}|{ws}"
            for key in per_cam.pop(ws):
                if self.flow_x.get(f"{akey}|{key}") is not None:
                    del self.flow_x[f"{akey}|{key}"]
            if self.flow_acc.get(akey) is not None:
                del self.flow_acc[akey]

    def _fold(self, akey: str, acc: dict[str, Any]) -> dict[str, Any]:
        """Add the in-memory per-frame occupancy counts of a window into its accumulator.
        (Occupancy is a ratio of frames, so the few frames counted since the last table
        write that a crash loses barely move it; crossings are written one by one.)"""
        d = self._zdelta.pop(akey, None)
        if d:
            acc["frames"] += d["frames"]
            for zid, zz in d["zones"].items():
                t = acc["zones"].setdefault(zid, {"busy": 0, "sum": 0})
                t["busy"] += zz["busy"]
                t["sum"] += zz["sum"]
        return acc

    async def flow_frame(self, f: dict[str, Any]) -> None:
        cam = f.get("camera_id")
        if cam is None:
            return
        ts = float(f.get("ts", 0.0))
        ws = self._window(ts)
        clk = self._clock(cam)
        changed = False
        if ws >= clk["closed"] and f.get("kind") == "frame":
            d = self._zdelta.setdefault(f"{cam}|{ws}", {"frames": 0, "zones": {}})
            d["frames"] += 1
            for z in f.get("zones") or ():
                zz = d["zones"].setdefault(z["zone_id"], {"busy": 0, "sum": 0})
                zz["busy"] += 1 if z["count"] > 0 else 0
                zz["sum"] += z["count"]
            if ws not in clk["open"]:
                clk["open"] = sorted([*clk["open"], ws])
                changed = True
        wm = max(self._wm.get(cam, -math.inf), clk["wm"], ts)
        self._wm[cam] = wm  # the watermark is kept in memory; rebuilt from the stream
        w, g = self.settings.flow_window_s, self.settings.flow_grace_s
        due = [x for x in clk["open"] if x + w + g <= wm]
        for x in due:
            # A window closes once, with all its crossings (they precede the watermark in
            # the camera's partition), in an order that survives a kill at any point: its
            # records are acknowledged, then the clock that says "closed" is durable, and
            # only then its accumulator goes. A kill before the clock is durable closes it
            # again after the restart with the same accumulator: the same records, same keys.
            t = time.perf_counter()
            futs = await self._close_window(cam, x, clk)
            if _TRACE:
                _trace(ev="close_dt", dt=(time.perf_counter() - t) * 1e3)
            if self.settings.confirm_delivery and futs:
                await asyncio.gather(*futs)
            clk["open"] = [o for o in clk["open"] if o != x]
            clk["closed"] = max(clk["closed"], x + w)
            clk["wm"] = wm
            self.clock[cam] = clk
            await self.app.producer.flush()
            self._drop_window_state(cam, clk["closed"])
            akey = f"{cam}|{x}"
            if self.flow_acc.get(akey) is not None:
                del self.flow_acc[akey]
            changed = False
        if changed:
            clk["wm"] = wm
            self.clock[cam] = clk

    def _engine_lane_flows(
        self, cam: str, ws: float, xs: dict[str, list[Any]]
    ) -> list[dict[str, Any]] | None:
        """The window's crossings through `engine.flow.FlowEstimator` when the site's `[flow]`
        has lanes for this camera: per lane volume, PCU flow, speeds, headways, capacity and
        degree of saturation (NaN → null). None when no lane is configured."""
        from engine.flow import FlowConfig, FlowEstimator
        from engine.records import LineCrossing

        lanes = [ln for ln in self.flow_cfg.lanes if ln.camera in (None, cam)]
        if not lanes:
            return None
        w = self.settings.flow_window_s
        cfg = FlowConfig.model_validate(
            {
                **self.flow_cfg.model_dump(),
                "window_s": w,
                "lanes": [ln.model_dump() for ln in lanes],
            }
        )
        fe = FlowEstimator(cfg)
        fe.add_crossings(
            LineCrossing(cam, seq, ts, track, line, d, cls, sp, lane)
            for ts, line, d, cls, sp, lane, track, seq in xs.values()
        )
        rows = fe.lane_flows(w, start=ws, end=ws + w).to_dicts()
        return [
            {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in r.items()
            }
            for r in rows
        ]

    async def _close_window(self, cam: str, ws: float, clk: dict[str, Any]) -> list[Any]:
        """Send the flow records (and congestion alerts) of one window; their futures."""
        w = self.settings.flow_window_s
        futs: list[Any] = []
        akey = f"{cam}|{ws}"
        acc = self._fold(akey, dict(self.flow_acc.get(akey) or {"zones": {}, "frames": 0}))
        xs = self._window_crossings(cam, ws)
        acc["lines"] = self._line_totals(xs)
        cam_cfg = self.config.cameras.get(cam)
        inter = cam_cfg.intersection if cam_cfg else None
        route = inter or cam
        lane_flows = []
        for line_id, ln in sorted(acc["lines"].items()):
            vol = ln["in"] + ln["out"]
            rec = {
                "kind": "lane_flow",
                "camera_id": cam,
                "intersection": inter,
                "line_id": line_id,
                "lane": ln.get("lane"),
                "window_start": ws,
                "window_s": w,
                "in": ln["in"],
                "out": ln["out"],
                "volume": vol,
                "flow_vph": vol * 3600.0 / w,
                "pcu_vph": ln["pcu"] * 3600.0 / w,
                "mean_speed_kmh": (ln["speed_sum"] / ln["speed_n"]) if ln["speed_n"] else None,
                "by_class": ln["by_class"],
            }
            lane_flows.append(rec)
        if cam_cfg is not None:  # a zero-volume line is a measurement too
            for line in cam_cfg.lines:
                if line.id not in acc["lines"]:
                    lane_flows.append(
                        {
                            "kind": "lane_flow",
                            "camera_id": cam,
                            "intersection": inter,
                            "line_id": line.id,
                            "lane": line.lane,
                            "window_start": ws,
                            "window_s": w,
                            "in": 0,
                            "out": 0,
                            "volume": 0,
                            "flow_vph": 0.0,
                            "pcu_vph": 0.0,
                            "mean_speed_kmh": None,
                            "by_class": {},
                        }
                    )
        zones = {}
        congested = dict(clk.get("congested") or {})
        for zid, zz in acc["zones"].items():
            n = max(1, acc["frames"])
            occ, mean = zz["busy"] / n, zz["sum"] / n
            zones[zid] = {"occupancy": occ, "mean_count": mean}
            now, alert = congestion_alert(
                cam, zid, ws + w, occ, mean, bool(congested.get(zid)), self.settings.incidents
            )
            congested[zid] = now
            if alert is not None:
                alert.values["window_start"] = ws
                futs.append(await self._send(self.alerts, alert.key, asdict(alert), cam))
                self.metrics.inc("citystream_alerts_total", kind=alert.kind)
        clk["congested"] = congested
        summary = {
            "kind": "camera_flow",
            "camera_id": cam,
            "intersection": inter,
            "window_start": ws,
            "window_s": w,
            "frames": acc["frames"],
            "lanes": lane_flows,
            "zones": zones,
            "volume": sum(x["volume"] for x in lane_flows),
        }
        engine_lanes = self._engine_lane_flows(cam, ws, xs)
        if engine_lanes is not None:
            summary["lane_flows"] = engine_lanes
        _trace(ev="close", cam=cam, ws=ws, volume=summary["volume"])
        futs.append(await self._send(self.flows, f"{cam}:{ws}", summary, route))
        self.metrics.inc("citystream_flows_total")
        return futs

    # ---- signal --------------------------------------------------------------------------
    async def _signal_agent(self, stream: Any) -> None:
        async for ev in stream.events():
            try:
                f = json.loads(ev.value)
            except (ValueError, TypeError):
                continue
            t = time.perf_counter()
            await self.signal_flow(f)
            if _TRACE:
                _trace(ev="signal", dt=(time.perf_counter() - t) * 1e3)

    async def signal_flow(self, f: dict[str, Any]) -> None:
        inter = f.get("intersection")
        if not inter or f.get("kind") != "camera_flow":
            return
        ws = f["window_start"]
        pkey = f"{inter}|{ws}"
        acc = self.plan_acc.get(pkey) or {"cams": {}, "ws": ws}
        acc["cams"][f["camera_id"]] = f["lanes"]
        expected = set(self._cameras_by_intersection.get(inter, []))
        if expected and not expected <= set(acc["cams"]):
            self.plan_acc[pkey] = acc
            return
        if self.plan_acc.get(pkey) is not None:
            del self.plan_acc[pkey]
        lanes = [ln for cam_lanes in acc["cams"].values() for ln in cam_lanes]
        plan = self.planner.plan(inter, lanes, ws, f["window_s"])
        await self._send(self.plans, f"{inter}:{ws}", plan, inter)
        self.metrics.inc("citystream_plans_total")
        for rec in self.planner.corridor_offsets(inter, ws, plan.get("cycle_s")):
            await self._send(self.plans, f"{rec['corridor']}:{ws}", rec, rec["corridor"])
            self.metrics.inc("citystream_corridor_offsets_total")


class SignalPlanner:
    """Plans per intersection and flow window. With an `[intersections.<id>]` table the
    Rust signal core plans (`engine.signal.AdaptivePlanner`: smoothed flows, Webster cycle,
    bounded cycle-to-cycle changes, every safety constraint enforced); counting lines feed
    the movement named by their `lane` (e.g. lane = "N_T"). Otherwise a plain Webster plan
    over one phase per counting line."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self._ix: dict[str, Any] | None = None
        self._planners: dict[str, Any] = {}
        self._corridors: dict[str, Any] | None = None
        self._cycles: dict[float, dict[str, float]] = {}  # window start -> intersection -> cycle

    def corridor_offsets(self, inter: str, ws: float, cycle: float | None) -> list[dict[str, Any]]:
        """After the plan of `inter` for window `ws`: for every `[corridors.<id>]` holding
        `inter` whose intersections all have a plan for `ws`, the green-wave offsets
        (`engine.signal.GreenWave`, two-way bandwidth) at their common cycle, the longest
        planned cycle clamped to the corridor's [cycle_min, cycle_max]."""
        if self._corridors is None:
            self._corridors = {}
            if self.config.corridors:
                from engine.signal import load_corridors

                self._corridors = load_corridors(self.config)
        if not self._corridors or cycle is None:
            return []
        cycles = self._cycles.setdefault(ws, {})
        cycles[inter] = float(cycle)
        for old in sorted(self._cycles)[:-8]:  # plans arrive window by window
            del self._cycles[old]
        out = []
        for cid, c in self._corridors.items():
            if inter not in c.intersections or not all(i in cycles for i in c.intersections):
                continue
            from engine.signal import GreenWave

            common = min(c.cycle_max, max(c.cycle_min, *(cycles[i] for i in c.intersections)))
            gw = GreenWave.optimize(
                c.distances_m,
                c.speed_kmh,
                c.green_split,
                common,
                common,
                c.cycle_step,
                c.speed_in_kmh,
                c.intersections,
            )
            out.append(
                {
                    "kind": "corridor_offsets",
                    "corridor": cid,
                    "window_start": ws,
                    "cycle_s": round(gw.cycle, 1),
                    "offsets_s": {
                        i: round(o, 1) for i, o in zip(c.intersections, gw.offsets, strict=True)
                    },
                    "bandwidth_out_s": round(gw.bandwidth_out, 1),
                    "bandwidth_in_s": round(gw.bandwidth_in, 1),
                    "efficiency": round(gw.efficiency, 3),
                    "planned_cycles_s": {i: cycles[i] for i in c.intersections},
                }
            )
        return out

    def _intersections(self) -> dict[str, Any]:
        if self._ix is None:
            self._ix = {}
            if self.config.intersections:
                from engine.signal import load_intersections

                self._ix = load_intersections(self.config)
        return self._ix

    def plan(
        self, inter: str, lanes: list[dict[str, Any]], ws: float, window_s: float
    ) -> dict[str, Any]:
        base = {
            "kind": "signal_plan",
            "intersection": inter,
            "window_start": ws,
            "window_s": window_s,
            "lane_pcu_vph": {f"{ln['camera_id']}:{ln['line_id']}": ln["pcu_vph"] for ln in lanes},
        }
        ix = self._intersections().get(inter)
        if ix is not None:
            flows: dict[str, float] = {}
            for ln in lanes:
                if ln.get("lane") in ix.movement_ids:
                    flows[ln["lane"]] = flows.get(ln["lane"], 0.0) + float(ln["pcu_vph"])
            if flows:
                from engine.signal import AdaptivePlanner

                planner = self._planners.get(inter)
                if planner is None:
                    planner = self._planners[inter] = AdaptivePlanner(ix)
                p = planner.update(flows)
                return {
                    **base,
                    "method": p.method,
                    "cycle_s": round(p.cycle, 1),
                    "flow_ratio_sum": round(p.y_total, 4),
                    "movement_pcu_vph": flows,
                    "greens_s": {
                        r["phase"]: round(r["green"], 1) for r in p.phases.iter_rows(named=True)
                    },
                    "phases": p.phases.to_dicts(),
                }
        return {**base, **webster(lanes)}


def webster(
    lanes: list[dict[str, Any]],
    sat_pcu_h: float = 1800.0,
    lost_per_phase_s: float = 3.0,
    min_green_s: float = 7.0,
    min_cycle_s: float = 30.0,
    max_cycle_s: float = 150.0,
) -> dict[str, Any]:
    """Webster's optimum cycle C = (1.5 L + 5) / (1 − Y), greens ∝ critical flow ratios."""
    phases = [
        (f"{ln['camera_id']}:{ln['line_id']}", ln["pcu_vph"] / sat_pcu_h) for ln in lanes
    ] or [("all", 0.0)]
    n = len(phases)
    lost = lost_per_phase_s * n
    y = sum(r for _, r in phases)
    if y >= 0.95:
        cycle, saturated = max_cycle_s, True
    else:
        cycle, saturated = (1.5 * lost + 5.0) / (1.0 - y), False
    cycle = min(max_cycle_s, max(min_cycle_s, cycle, n * min_green_s + lost))
    eff = cycle - lost
    greens = {}
    for pid, r in phases:
        share = (r / y) if y > 0 else 1.0 / n
        greens[pid] = max(min_green_s, share * eff)
    scale = (
        (eff - n * min_green_s) / max(1e-9, sum(g - min_green_s for g in greens.values()))
        if sum(greens.values()) > eff
        else 1.0
    )
    if scale != 1.0:
        greens = {k: min_green_s + (g - min_green_s) * scale for k, g in greens.items()}
    return {
        "method": "webster",
        "cycle_s": round(cycle, 1),
        "flow_ratio_sum": round(y, 4),
        "oversaturated": saturated,
        "greens_s": {k: round(v, 1) for k, v in greens.items()},
    }


def create_app(
    config: SiteConfig,
    settings: StreamSettings | None = None,
    *,
    broker: str,
    pipeline: Any = None,
    load_detector: bool | None = None,
    metrics: Metrics | None = None,
) -> StreamApp:
    """Build the Faust app for a site (topics, tables, agents)."""
    return StreamApp(
        config,
        settings or StreamSettings.from_site(config),
        broker,
        pipeline=pipeline,
        load_detector=load_detector,
        metrics=metrics,
    )


async def ensure_topics(broker: str, settings: StreamSettings, timeout: float = 20.0) -> None:
    """Create the citystream topics (idempotent) with the configured partitions."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    from streams.settings import TOPICS

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_of(broker), request_timeout_ms=int(timeout * 1000)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        have = [settings.topic(t) for t in TOPICS if settings.topic(t) in existing]
        if have:
            for d in await admin.describe_topics(have):
                n = len(d.get("partitions") or [])
                if n and n != settings.partitions:
                    from streams.broker import BrokerError

                    raise BrokerError(
                        f"topic {d.get('topic')!r} has {n} partitions but [streams] partitions = "
                        f"{settings.partitions}: Faust tables need every source topic co-partitioned "
                        "(recreate the topic or set partitions to match)"
                    )
        new = [
            NewTopic(
                settings.topic(t),
                num_partitions=settings.partitions,
                replication_factor=settings.replication,
            )
            for t in TOPICS
            if settings.topic(t) not in existing
        ]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()
