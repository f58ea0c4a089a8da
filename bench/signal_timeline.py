"""What a controller did over one SUMO run: per time bin, the share of time each
approach's through and left movement showed green, and the mean number of halted
vehicles per approach (its own lanes and the edge upstream). Two runs side by side show
where a controller's time went when one run's delay is worse than another's.

    python -m bench.signal_timeline --kind unbalanced --seed 17 --measure cameras
    python -m bench.signal_timeline --kind unbalanced --seed 17 --measure sumo

One JSON object: the run's mean delay, then one row per bin.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from typing import Any


def timeline(
    kind: str,
    seed: int,
    measure: str = "cameras",
    controller: str = "signal:dual-ring",
    params: dict[str, Any] | None = None,
    end_s: float = 3600.0,
    bin_s: float = 600.0,
    work: str = "out/sim",
) -> dict[str, Any]:
    from engine.sim.camera import CameraMeasurer
    from engine.sim.evaluate import RunSpec, _factory
    from engine.sim.runner import run
    from engine.sim.scenarios import build

    spec = RunSpec(kind, controller, controller, measure=measure, params=dict(params or {}))
    sc = build(kind, work, end_s=end_s, horizon_s=end_s + 900.0, seed=seed)
    j = sc.junctions[0]
    # links per (approach, turn): a movement is green when all its links are
    links: dict[str, list[int]] = defaultdict(list)
    for i, (ap, turn, _) in enumerate(j.link_movement):
        if turn in ("s", "l"):
            links[f"{ap}_{'T' if turn == 's' else 'L'}"].append(i)
    lanes: dict[str, list[str]] = {}
    green: dict[tuple[int, str], float] = defaultdict(float)
    halted: dict[tuple[int, str], float] = defaultdict(float)
    samples: dict[int, int] = defaultdict(int)

    def on_step(tc, t: float) -> None:
        if abs(t - round(t)) > 1e-6:  # once per simulated second
            return
        if not lanes:
            for a in j.approaches:
                up = []
                if a.upstream:
                    up = [f"{a.upstream}_{i}" for i in range(tc.edge.getLaneNumber(a.upstream))]
                lanes[a.name] = list(a.lanes) + up
        b = int(t // bin_s)
        samples[b] += 1
        state = tc.trafficlight.getRedYellowGreenState(j.tls)
        for mv, idx in links.items():
            if all(state[i] in "Gg" for i in idx):
                green[(b, mv)] += 1.0
        for ap, lns in lanes.items():
            halted[(b, ap)] += sum(tc.lane.getLastStepHaltingNumber(ln) for ln in lns)

    meas: Any = "sumo"
    if measure == "cameras":
        meas = lambda tc, s: CameraMeasurer(tc, s, fps=spec.fps)  # noqa: E731
    res = run(
        sc,
        _factory(spec, sc),
        label=controller,
        measure=meas,
        step=spec.step,
        work_dir=work,
        seed=seed,
        on_step=on_step,
    )
    bins = []
    for b in sorted(samples):
        n = samples[b]
        bins.append(
            {
                "from_s": b * bin_s,
                "green_share": {mv: round(green[(b, mv)] / n, 3) for mv in sorted(links)},
                "halted_veh": {ap: round(halted[(b, ap)] / n, 2) for ap in sorted(lanes)},
            }
        )
    return {
        "kind": kind,
        "seed": seed,
        "controller": controller,
        "measure": measure,
        "params": params or {},
        "mean_delay_s": round(res.mean_delay_s, 2),
        "bins": bins,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.signal_timeline", description=__doc__)
    ap.add_argument("--kind", default="unbalanced")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--measure", default="cameras", choices=["cameras", "sumo"])
    ap.add_argument("--controller", default="signal:dual-ring")
    ap.add_argument("--params", default="{}", help="controller parameters (JSON object)")
    ap.add_argument("--end", type=float, default=3600.0, help="seconds of demand")
    ap.add_argument("--bin", type=float, default=600.0, help="seconds per row")
    ap.add_argument("--work", default="out/sim")
    a = ap.parse_args(argv)
    from bench.signal_seeds import params_arg

    params = params_arg(ap, a.params)
    out = timeline(a.kind, a.seed, a.measure, a.controller, params, a.end, a.bin, a.work)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
