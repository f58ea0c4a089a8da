"""`citystream feed --camera ID --source FILE|rtsp://…`: publish a video as frame envelopes."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--camera", required=True, help="camera id (as in the site config)")
    p.add_argument("--source", required=True, help="a video file, or rtsp:// / http:// stream")
    p.add_argument("--broker", default=None, help="kafka://host:port (default: $CITYSTREAM_BROKER)")
    p.add_argument(
        "--fps", type=float, default=None, help="target analysis rate (default: the source's)"
    )
    p.add_argument(
        "--speed", type=float, default=1.0, help="pacing for files: 1 = real time, 0 = max"
    )
    p.add_argument("--loop", action="store_true", help="loop a file forever")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--codec", choices=["jpeg", "raw"], default="jpeg")
    p.add_argument(
        "--partitions", type=int, default=None, help="partitions when creating the topics"
    )


def main(args: argparse.Namespace) -> int:
    import time

    from streams.broker import configured_broker
    from streams.feed import FrameProducer, feed_video
    from streams.settings import StreamSettings

    url = args.broker or configured_broker()
    if not url:
        print(
            "citystream feed: no broker — pass --broker or set CITYSTREAM_BROKER "
            "(`citystream broker` starts a local one)"
        )
        return 2
    settings = StreamSettings(**({"partitions": args.partitions} if args.partitions else {}))
    t0 = time.perf_counter()
    with FrameProducer(url, settings=settings) as fp:
        st = feed_video(
            fp,
            args.camera,
            args.source,
            target_fps=args.fps,
            speed=args.speed,
            loop=args.loop,
            max_frames=args.max_frames,
            codec=args.codec,
        )
    dt = time.perf_counter() - t0
    print(
        f"citystream feed: {st.published} frames of {args.camera} in {dt:.1f}s "
        f"({st.reconnects} reconnects, {st.skipped_for_rate} skipped for rate)"
    )
    return 0
