"""A topic reader for synchronous code: an aiokafka consumer in a daemon thread (its own
event loop) that hands every record to a callback with its arrival time. The live summary of
`citystream run` and the streams benchmark's collector read the output topics with it.

    reader = TopicReader("127.0.0.1:9092", ["observations"], lambda t, k, v, at: print(t, k))
    ...
    reader.stop()
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

OnRecord = Callable[[str, bytes | None, bytes, float], None]


class TopicReader:
    """Reads `topics` from their beginning (no consumer group) until `stop()`; calls
    `on_record(topic, key, value, arrived_wall_s)` in the reader's thread. The constructor
    returns once the consumer is started (or after `ready_timeout`)."""

    def __init__(
        self,
        bootstrap: str,
        topics: list[str],
        on_record: OnRecord,
        *,
        fetch_max_wait_ms: int = 50,
        poll_ms: int = 200,
        ready_timeout: float = 30.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.on_record = on_record
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.poll_ms = poll_ms
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()
        self._ready.wait(ready_timeout)

    async def _run(self) -> None:
        from aiokafka import AIOKafkaConsumer

        c = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            group_id=None,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
        )
        await c.start()
        self._ready.set()
        try:
            while not self._stop.is_set():
                batch = await c.getmany(timeout_ms=self.poll_ms)
                now = time.time()
                for tp, msgs in batch.items():
                    for m in msgs:
                        self.on_record(tp.topic, m.key, m.value, now)
        finally:
            await c.stop()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.thread.join(timeout)
