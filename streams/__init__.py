"""citystream streams: the Faust application over Kafka (topics, codecs, agents, tables), the
embedded broker launcher and the video feeder.

    from streams import FrameProducer          # push frames from a video platform
    with FrameProducer("kafka://127.0.0.1:9092") as fp:
        fp.send("cam1", frame_bgr, ts=time.time())

Names are imported lazily so `import streams` stays cheap (no Faust/aiokafka until used).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FrameProducer": "streams.feed",
    "AsyncFrameProducer": "streams.feed",
    "feed_video": "streams.feed",
    "FrameEnvelope": "streams.envelope",
    "Codec": "streams.envelope",
    "EmbeddedBroker": "streams.broker",
    "ensure_broker": "streams.broker",
    "StreamSettings": "streams.settings",
    "create_app": "streams.app",
    "ensure_topics": "streams.app",
    "StreamApp": "streams.app",
    "run_streamed": "streams.demo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'streams' has no attribute {name!r}")
    return getattr(importlib.import_module(mod), name)
