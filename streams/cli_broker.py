"""`citystream broker`: run the embedded Kafka-protocol broker (tansu, memory storage) in
the foreground until Ctrl-C."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=9092, help="listen port (0 = a free one; default 9092)"
    )
    p.add_argument("--log", default=None, help="append the broker's output to this file")


def main(args: argparse.Namespace) -> int:
    import signal
    import time

    from streams.broker import EmbeddedBroker

    def _term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # stop tansu in `finally` on SIGTERM too

    signal.signal(signal.SIGTERM, _term)

    b = EmbeddedBroker(args.host, args.port, log_path=args.log)
    b.start()
    print(f"citystream broker: tansu listening on {b.url}")
    print(f"  use it with: export CITYSTREAM_BROKER={b.url}   (Ctrl-C stops it)", flush=True)
    try:
        while b.running:
            time.sleep(0.5)
        print("citystream broker: tansu exited")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        b.stop()
