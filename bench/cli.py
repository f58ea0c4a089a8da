"""`citystream bench SUITE`: time this engine and named peers side by side in one run.

Each suite is a module `bench/<suite>.py` exposing `run(quick: bool) -> SuiteResult`."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

SUITES = {
    "core": "tracker + line counter vs trackers ByteTrack + supervision LineZone; numba baseline",
    "preprocess": "fused letterbox/normalise vs cv2.resize + numpy; numba baseline",
    "pipeline": "full per-frame pipeline with YOLOv3-tiny: share of time outside inference",
    "models": "plates (vs agentclpr CLPSystem) and crowd (CSRNet) accuracy and speed",
    "signals": "controllers in SUMO (static, Webster, actuated, adaptive, max-pressure), green wave",
    "streams": "through the real broker vs direct Pipeline calls; 1/10/50 cameras",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "suite", choices=[*SUITES, "all"], help="; ".join(f"{k}: {v}" for k, v in SUITES.items())
    )
    p.add_argument("--quick", action="store_true", help="short version (as in CI)")
    p.add_argument("--out", type=Path, default=Path("out/bench"), help="where JSON results go")


def main(args: argparse.Namespace) -> int:
    from bench.report import print_result, write_json

    names = list(SUITES) if args.suite == "all" else [args.suite]
    rc = 0
    for name in names:
        try:
            mod = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"bench.{name}":
                print(f"bench {name}: suite not available yet")
                rc = 2
                continue
            raise
        res = mod.run(quick=args.quick)
        print_result(res)
        print(f"wrote {write_json(res, args.out)}")
    return rc
