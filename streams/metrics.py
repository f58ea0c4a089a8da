"""Prometheus text-format metrics (exposition format 0.0.4), no dependency.

>>> m = Metrics()
>>> m.inc("citystream_frames_in_total", camera="c1")
>>> "citystream_frames_in_total{camera=\\"c1\\"} 1" in m.render()
True
"""

from __future__ import annotations

import threading
from collections import deque

_HELP = {
    "citystream_frames_in_total": ("counter", "frames received per camera"),
    "citystream_frames_out_total": ("counter", "frames structured (records emitted) per camera"),
    "citystream_frames_skipped_total": ("counter", "frames skipped by backpressure per camera"),
    "citystream_dead_letters_total": ("counter", "messages sent to dead-letters, by reason"),
    "citystream_crossings_total": ("counter", "line crossings emitted per camera"),
    "citystream_alerts_total": ("counter", "alerts emitted, by kind"),
    "citystream_flows_total": ("counter", "flow records emitted"),
    "citystream_plans_total": ("counter", "signal plans emitted"),
    "citystream_duplicates_total": ("counter", "duplicate crossings ignored by the flow table"),
    "citystream_late_crossings_total": (
        "counter",
        "crossings that arrived after their window closed",
    ),
    "citystream_lag_seconds": ("gauge", "wall-clock age of the newest frame processed per camera"),
    "citystream_offset_lag": ("gauge", "messages behind the partition's high-water mark"),
    "citystream_batch_size": ("gauge", "frames in the last model batch"),
    "citystream_stage_latency_ms": ("summary", "stage latency per frame (ms)"),
}


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(
        f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34)).replace(chr(10), " ")}"'
        for k, v in sorted(labels.items())
    )
    return "{" + inner + "}"


class Metrics:
    def __init__(self, window: int = 2048) -> None:
        self._lock = threading.Lock()
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.samples: dict[tuple[str, tuple[tuple[str, str], ...]], deque[float]] = {}
        self.sums: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, int]] = {}
        self.window = window

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        k = (name, tuple(sorted(labels.items())))
        with self._lock:
            self.counters[k] = self.counters.get(k, 0.0) + value

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self.gauges[(name, tuple(sorted(labels.items())))] = float(value)

    def observe(self, name: str, value: float, **labels: str) -> None:
        k = (name, tuple(sorted(labels.items())))
        with self._lock:
            d = self.samples.get(k)
            if d is None:
                d = self.samples[k] = deque(maxlen=self.window)
            d.append(float(value))
            s, n = self.sums.get(k, (0.0, 0))
            self.sums[k] = (s + value, n + 1)

    def get(self, name: str, **labels: str) -> float:
        k = (name, tuple(sorted(labels.items())))
        return self.counters.get(k, self.gauges.get(k, 0.0))

    def total(self, name: str) -> float:
        return sum(v for (n, _), v in self.counters.items() if n == name)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            names = sorted({k[0] for k in (*self.counters, *self.gauges, *self.samples)})
            for name in names:
                kind, help_ = _HELP.get(name, ("untyped", name))
                lines.append(f"# HELP {name} {help_}")
                lines.append(f"# TYPE {name} {kind}")
                for (n, lab), v in sorted(self.counters.items()):
                    if n == name:
                        lines.append(f"{name}{_labels(dict(lab))} {v:g}")
                for (n, lab), v in sorted(self.gauges.items()):
                    if n == name:
                        lines.append(f"{name}{_labels(dict(lab))} {v:g}")
                for (n, lab), d in sorted(self.samples.items()):
                    if n != name or not d:
                        continue
                    xs = sorted(d)
                    for q in (0.5, 0.9, 0.99):
                        v = xs[min(len(xs) - 1, int(q * len(xs)))]
                        lines.append(f"{name}{_labels({**dict(lab), 'quantile': str(q)})} {v:g}")
                    s, c = self.sums[(n, lab)]
                    lines.append(f"{name}_sum{_labels(dict(lab))} {s:g}")
                    lines.append(f"{name}_count{_labels(dict(lab))} {c}")
        return "\n".join(lines) + "\n"
