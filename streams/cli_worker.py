"""`citystream worker`: a Faust worker running the structure, flow, signal and incident
agents for a site. Starts an embedded broker when `--broker`/`$CITYSTREAM_BROKER` is unset."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="site TOML (cameras, lines, zones, [streams])")
    p.add_argument(
        "--broker",
        default=None,
        help="kafka://host:port (default: $CITYSTREAM_BROKER, else embedded)",
    )
    p.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port"
    )
    p.add_argument("--metrics-host", default=None, help="bind address for the metrics endpoint")
    p.add_argument(
        "--partitions", type=int, default=None, help="partitions per topic (overrides [streams])"
    )
    p.add_argument(
        "--app-id", default=None, help="Faust app id / consumer group (overrides [streams])"
    )
    det = p.add_mutually_exclusive_group()
    det.add_argument(
        "--no-detector", action="store_true", help="detections-only worker (no ONNX model)"
    )
    det.add_argument(
        "--detector", action="store_true", help="require the detector (fail if models are missing)"
    )
    p.add_argument("--loglevel", default="warning")


def worker_command(config: object, broker: str, *args: str) -> list[str]:
    """The argv of a `citystream worker` subprocess for `config` (a site TOML path) on
    `broker`, plus `args` (e.g. "--no-detector"), as `citystream run`, the tests and the
    streams benchmark start it."""
    import sys

    return [
        sys.executable,
        "-m",
        "engine.cli",
        "worker",
        "--config",
        str(config),
        "--broker",
        broker,
        *args,
    ]


def run_worker(
    config: str,
    broker: str,
    *,
    load_detector: bool | None = None,
    loglevel: str = "warning",
    **overrides: object,
) -> int:
    import asyncio

    from faust.worker import Worker

    from engine.config import SiteConfig
    from streams.app import create_app, ensure_topics
    from streams.settings import StreamSettings

    cfg = SiteConfig.from_toml(config)
    settings = StreamSettings.from_site(cfg, **overrides)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(ensure_topics(broker, settings))
    sa = create_app(cfg, settings, broker=broker, load_detector=load_detector)
    _ = sa.pipeline  # build (and load the detector) before joining the group
    worker = Worker(sa.app, loglevel=loglevel, quiet=True, loop=loop)
    # Faust's startup spinner sets the root logger to DEBUG (its handler spins on every
    # record): every aiokafka debug call then built a LogRecord per send and fetch, ~5-10%
    # of the worker's CPU. Without it the root logger stays at `loglevel`.
    worker.spinner = None
    worker.execute_from_commandline()
    return 0


def main(args: argparse.Namespace) -> int:
    from streams.broker import ensure_broker

    load = False if args.no_detector else (True if args.detector else None)
    with ensure_broker(args.broker) as url:
        print(f"citystream worker: broker {url}", flush=True)
        return run_worker(
            args.config,
            url,
            load_detector=load,
            loglevel=args.loglevel,
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
            partitions=args.partitions,
            app_id=args.app_id,
        )
