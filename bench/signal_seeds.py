"""One signal controller over many demand seeds in SUMO (the runs behind the README's
per-seed signal figures and the DualRingController defaults).

    python -m bench.signal_seeds --controller signal:dual-ring --kinds unbalanced,surging \
        --seeds 7,8,9,10,11 --params '{"early_left_queue_veh": 9}'
    python -m bench.signal_seeds --controller actuated --measure sumo --seeds 7,8,9

Each run is `engine.sim.evaluate.RunSpec(kind, controller, ..., end_s=3600,
horizon_s=4500, seed=s)` as `citystream bench signals` builds them; one JSON line per run
(mean delay, queue MAE through the cameras), then the mean per demand kind.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def params_arg(ap: argparse.ArgumentParser, text: str) -> dict:
    """--params as a JSON object, or the parser's error naming the option."""
    try:
        params = json.loads(text)
    except json.JSONDecodeError as e:
        ap.error(f"--params is not JSON: {e}")
    if not isinstance(params, dict):
        ap.error("--params must be a JSON object")
    return params


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.signal_seeds", description=__doc__)
    ap.add_argument("--controller", default="signal:dual-ring")
    ap.add_argument("--kinds", default="steady,unbalanced,surging")
    ap.add_argument("--seeds", default="7,8,9")
    ap.add_argument("--measure", default="cameras", choices=["cameras", "sumo"])
    ap.add_argument("--params", default="{}", help="controller parameters (JSON object)")
    ap.add_argument("--end", type=float, default=3600.0, help="seconds of demand")
    ap.add_argument("--work", default="out/sim")
    ap.add_argument("--workers", type=int, default=None)
    a = ap.parse_args(argv)
    params = params_arg(ap, a.params)
    from engine.sim.evaluate import RunSpec, run_many

    kinds = [k for k in a.kinds.split(",") if k]
    seeds = [int(s) for s in a.seeds.split(",") if s]
    specs = [
        RunSpec(
            k,
            a.controller,
            a.controller,
            measure=a.measure,
            params=dict(params),
            end_s=a.end,
            horizon_s=a.end + 900.0,
            seed=s,
            work_dir=a.work,
        )
        for k in kinds
        for s in seeds
    ]
    t0 = time.perf_counter()
    rows = run_many(specs, workers=a.workers)
    by_kind: dict[str, list[float]] = {}
    for sp, r in zip(specs, rows, strict=True):
        fe = r.get("flow_errors") or {}
        print(
            json.dumps(
                {
                    "kind": sp.scenario,
                    "seed": sp.seed,
                    "controller": a.controller,
                    "params": params,
                    "measure": a.measure,
                    "mean_delay_s": round(r["mean_delay_s"], 2),
                    "teleports": r["teleports"],
                    **{
                        k: fe.get(k)
                        for k in (
                            "queue_lane_mae_veh",
                            "queue_approach_mae_veh",
                            "queue_stage_mae_veh",
                            "segment_speed_pct",
                        )
                    },
                }
            ),
            flush=True,
        )
        by_kind.setdefault(sp.scenario, []).append(r["mean_delay_s"])
    for k, v in by_kind.items():
        print(f"{k}: mean delay {statistics.fmean(v):.1f} s over seeds {a.seeds}")
    print(f"{len(specs)} runs in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
