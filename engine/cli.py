"""The `citystream` command. Each sub-command lives with the package that owns it and is
imported lazily, so `citystream models fetch` does not pay for Faust or SUMO imports."""

from __future__ import annotations

import argparse
import importlib
import sys

# sub-command -> (module, help). Each module exposes `add_arguments(parser)` and `main(args)`.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("engine.runjob", "the main job: structure a video (or the streamed demo) end to end"),
    "models": ("models.cli", "obtain, build and verify the pretrained models (registry)"),
    "bench": ("bench.cli", "benchmark suites: this engine and named peers in one run"),
    "broker": ("streams.cli_broker", "start the embedded Kafka-protocol broker (tansu)"),
    "worker": ("streams.cli_worker", "run a Faust worker (structure/flow/signal/incident agents)"),
    "feed": ("streams.cli_feed", "publish a video file or RTSP stream as frame envelopes"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="citystream", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name, (mod, help_) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_)
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name and (e.name == mod or mod.startswith(e.name + ".")):
                sp.set_defaults(_missing=mod)
                continue
            raise
        module.add_arguments(sp)
        sp.set_defaults(_main=module.main)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "_missing", None):
        print(f"citystream {args.command}: not available in this build ({args._missing})")
        return 2
    from engine.errors import CitystreamError

    try:
        rc = args._main(args)
    except CitystreamError as e:
        print(f"citystream {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
