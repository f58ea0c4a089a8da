"""Where the camera loop's queue error comes from, in one SUMO run (the figures behind the
README's flow-estimation notes).

    python -m bench.queue_diag --kind surging --seed 9 --end 1800

Runs the headline controller (Rust dual ring) through the cameras and, every camera frame:
- matches each SUMO vehicle within a lane's 150 m to the nearest held track of that lane
  (within 4 m) and tallies whether both call it halted (< 5 km/h): how often the camera's
  halted/moving decision agrees with SUMO's, vehicle by vehicle;
- for the halted cars in the shared inner lane upstream of each left-turn bay (where the
  camera cannot see the turn), sums the left share the controller gave them minus their
  true turns per approach and frame: the error the left/through split adds to a stage's
  queue. The same with the in-sample left share of each queue state (the best any
  per-state share could do on this run) bounds what a better-calibrated share could gain.
Prints one JSON object (with the run's flow errors per lane, approach and stage).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np

STOP_MPS = 5.0 / 3.6
MATCH_M = 4.0


def _diag_measurer():
    from engine.sim.camera import QUEUE_HOLD_S, CameraMeasurer
    from engine.sim.runner import VIEW_M

    class Diag(CameraMeasurer):
        def __init__(self, tc, sc) -> None:
            super().__init__(tc, sc)
            self.agree = dict.fromkeys(
                ("halted_halted", "halted_moving", "moving_halted", "halted_missed"), 0
            )
            self.split: list[tuple[int, str, int, float, bool]] = []
            self.frame = 0

        def step(self, t):
            before = self.next_frame
            out = super().step(t)
            if self.next_frame != before:  # a camera frame was analysed at t
                self.frame += 1
                self._record()
            return out

        def _truth_lanes(self, j) -> dict[str, list[tuple[float, float, bool]]]:
            tc, per = self.tc, defaultdict(list)
            for vid in tc.vehicle.getIDList():
                nxt = tc.vehicle.getNextTLS(vid)
                if not nxt or nxt[0][0] != j.tls or nxt[0][2] > VIEW_M:
                    continue
                lane = self.truth._approach_lane(tc.vehicle.getLaneID(vid))
                if lane is not None:
                    left = j.link_movement[nxt[0][1]][1] == "l"
                    per[lane].append((nxt[0][2], tc.vehicle.getSpeed(vid), left))
            return per

        def _record(self) -> None:
            held = self.flow.current_tracks(hold_s=QUEUE_HOLD_S)
            e = (np.zeros(0), np.zeros(0))
            for j in self.sc.junctions:
                truth = self._truth_lanes(j)
                for a in j.approaches:
                    for ln in a.lanes:
                        d, s = held.get(ln, e)
                        keep = ~((d < 0) & ~(s < STOP_MPS))  # moving past the line: gone
                        self._match(truth.get(ln, []), d[keep], s[keep])
                    if len(a.lanes) < 3:
                        continue
                    inner = np.array(truth.get(a.lanes[1], [])).reshape(-1, 3)
                    bay = np.array(truth.get(a.lanes[2], [])).reshape(-1, 3)
                    st = self.bay_share.state(
                        a.length, inner[:, 0], inner[:, 1], bay[:, 0], bay[:, 1]
                    )
                    n_l = self.truth.counts[j.tls].get(a.lanes[2], 0.0)
                    n_t = self.truth.counts[j.tls].get(a.lanes[1], 0.0)
                    p = self.bay_share.share(a, st, (n_l + 1.0) / (n_l + n_t + 2.0))
                    for dd, ss, left in inner.tolist():
                        if dd > a.length and ss < STOP_MPS:
                            self.split.append((self.frame, a.name, st, p, bool(left)))

        def _match(self, truth, d, s) -> None:
            used = np.zeros(len(d), bool)
            for dd, ss, _ in truth:
                gap = np.where(used, np.inf, np.abs(d - dd))
                k = int(gap.argmin()) if len(gap) else -1
                if k < 0 or gap[k] > MATCH_M:
                    if ss < STOP_MPS:
                        self.agree["halted_missed"] += 1
                    continue
                used[k] = True
                est_halted = s[k] < STOP_MPS
                if ss < STOP_MPS:
                    self.agree["halted_halted" if est_halted else "halted_moving"] += 1
                elif est_halted:
                    self.agree["moving_halted"] += 1

    return Diag


def _split_error(rows, share) -> tuple[float, float]:
    """Mean |Σ share − Σ left| and its mean per (frame, approach) with shared-lane cars."""
    g: dict[tuple[int, str], float] = defaultdict(float)
    for fr, ap, st, p, left in rows:
        g[(fr, ap)] += share(ap, st, p) - left
    v = np.array(list(g.values()))
    return (float(np.abs(v).mean()), float(v.mean())) if len(v) else (np.nan, np.nan)


def diagnose(kind: str, seed: int, end_s: float, work: str) -> dict:
    from engine.sim.evaluate import RunSpec, _factory
    from engine.sim.runner import run
    from engine.sim.scenarios import build

    spec = RunSpec(kind, "signal:dual-ring", "dual ring · cameras", measure="cameras")
    sc = build(kind, work, end_s=end_s, horizon_s=end_s + 900.0, seed=seed)
    made = []
    diag = _diag_measurer()

    def measurer(tc, s):
        made.append(diag(tc, s))
        return made[-1]

    res = run(sc, _factory(spec, sc), measure=measurer, step=0.2, work_dir=work, seed=seed)
    m = made[0]
    tot = sum(m.agree[k] for k in ("halted_halted", "halted_moving", "halted_missed"))
    by_state: dict[tuple[str, int], list[bool]] = defaultdict(list)
    learnt: dict[tuple[str, int], list[float]] = defaultdict(list)
    for _, apn, st, p, left in m.split:
        by_state[(apn, st)].append(left)
        learnt[(apn, st)].append(p)
    best = {k: float(np.mean(v)) for k, v in by_state.items()}
    online = _split_error(m.split, lambda ap_, st, p: p)
    insample = _split_error(m.split, lambda ap_, st, p: best[(ap_, st)])
    return {
        "kind": kind,
        "seed": seed,
        "end_s": end_s,
        "mean_delay_s": res.row()["mean_delay_s"],
        "halted_vehicle_frames": tot,
        "halted_judged_halted_pct": 100.0 * m.agree["halted_halted"] / max(tot, 1),
        "halted_judged_moving_pct": 100.0 * m.agree["halted_moving"] / max(tot, 1),
        "halted_missed_pct": 100.0 * m.agree["halted_missed"] / max(tot, 1),
        "moving_judged_halted_per_halted_pct": 100.0 * m.agree["moving_halted"] / max(tot, 1),
        "split_mae_online_veh": online[0],
        "split_bias_online_veh": online[1],
        "split_mae_insample_state_share_veh": insample[0],
        "shared_lane_left_share_by_approach_state": {
            f"{k[0]}{k[1]}": round(v, 3) for k, v in sorted(best.items())
        },
        "learnt_left_share_mean_by_approach_state": {
            f"{k[0]}{k[1]}": round(float(np.mean(v)), 3) for k, v in sorted(learnt.items())
        },
        "shared_lane_samples_resolved_by_approach": m.bay_share.resolved,
        "shared_lane_samples_lost_by_approach": m.bay_share.forgotten,
        "halted_samples_by_approach_state": {
            f"{k[0]}{k[1]}": len(v) for k, v in sorted(by_state.items())
        },
        **{k: v for k, v in (res.flow_errors or {}).items() if k.startswith("queue")},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.queue_diag", description=__doc__)
    ap.add_argument("--kind", default="surging")
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--end", type=float, default=1800.0, help="seconds of demand")
    ap.add_argument("--work", default="out/sim")
    a = ap.parse_args(argv)
    print(json.dumps(diagnose(a.kind, a.seed, a.end, a.work), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
