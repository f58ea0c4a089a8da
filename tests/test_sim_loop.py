"""The SUMO closed loop: projected detections → engine.Pipeline → engine.flow → our
controller → TraCI. One short run; flow estimation checked against SUMO's own numbers."""

from __future__ import annotations

import pytest

pytest.importorskip("sumolib")

from engine.sim.evaluate import RunSpec, run_spec  # noqa: E402
from engine.sim.scenarios import build, transition_states  # noqa: E402


def test_scenarios_are_deterministic_and_safe(tmp_path):
    a = build("steady", tmp_path / "a", end_s=300)
    b = build("steady", tmp_path / "b", end_s=300)
    assert a.routes.read_text() == b.routes.read_text()
    c = build("steady", tmp_path / "c", end_s=300, seed=8)  # another demand draw
    assert c.routes.read_text() != a.routes.read_text()
    assert a.n_vehicles > 100
    j = a.junctions[0]
    assert [ap.name for ap in j.approaches] == ["N", "E", "S", "W"]
    # protected lefts: no stage gives green to a left and the opposing through together
    for state in j.stage_states:
        greens = {j.link_movement[i][:2] for i, c in enumerate(state) if c == "G"}
        for ap, d in greens:
            if d == "l":
                opp = {"N": "S", "S": "N", "E": "W", "W": "E"}[ap]
                assert (opp, "s") not in greens
    y, r = transition_states(j.stage_states[0], j.stage_states[2])
    assert "G" not in r and set(y) <= {"y", "r"}


def _build_in(args):
    kind, out = args
    sc = build(kind, out, end_s=300)
    return sc.n_vehicles, len(sc.junctions)


def test_parallel_builds_share_one_directory(tmp_path):
    """run_many's processes build the same scenario files in one directory at once: each
    must read whole files (CI once read a net another process was still writing)."""
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(k, str(tmp_path)) for k in ("steady", "surging", "arterial", "unbalanced") * 3]
    with ProcessPoolExecutor(max_workers=4) as ex:
        got = list(ex.map(_build_in, jobs))
    alone = {k: _build_in((k, str(tmp_path / "alone"))) for k in ("steady", "arterial")}
    assert got[0] == got[4] == got[8] == alone["steady"]
    assert got[2] == got[6] == got[10] == alone["arterial"]
    assert got[2][1] == 5 and got[0][1] == 1
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_scenario_files_appear_only_when_whole(tmp_path, monkeypatch):
    """netgenerate writes its net under a private name; the shared name appears only
    after it has finished (what another process checks before reading it)."""
    import engine.sim.scenarios as S

    real_run = S.subprocess.run
    seen = []

    def run(args, **kw):
        out = real_run(args, **kw)
        seen.append((tmp_path / "single.net.xml").exists())
        return out

    monkeypatch.setattr(S.subprocess, "run", run)
    build("steady", tmp_path, end_s=60)
    assert seen == [False]
    assert (tmp_path / "single.net.xml").exists()


def test_camera_closed_loop_against_sumo(tmp_path):
    spec = RunSpec(
        "steady",
        "hybrid",
        "hybrid · cameras",
        measure="cameras",
        end_s=420.0,
        horizon_s=600.0,
        fps=5.0,
        work_dir=str(tmp_path),
    )
    r = run_spec(spec)
    assert r["teleports"] == 0
    assert r["finished"] > 0.8 * r["n_vehicles"]  # the controller keeps traffic moving
    assert r["throughput_vph"] > 0
    assert r["mean_delay_s"] < 120.0
    e = r["flow_errors"]
    assert e["true_count"] > 300
    assert e["volume_pct"] <= 3.0, e
    assert e["line_speed_pct"] <= 5.0, e  # mean spot speed at the stop lines
    assert e["segment_speed_pct"] <= 5.0, e  # Edie speed over the lanes' segments
    assert e["queue_lane_mae_veh"] <= 1.0 and e["queue_approach_mae_veh"] <= 1.0, e
    assert e["queue_stage_mae_veh"] <= 1.0, e


def test_corridor_bandwidth_known_answers():
    from engine.sim.corridor import bandwidth, best_offsets

    # two signals 300 m apart at 15 m/s (20 s), cycle 60 s, 30 s greens
    g, x, v, c = [30.0, 30.0], [0.0, 300.0], 15.0, 60.0
    out, inb = bandwidth([0.0, 20.0], g, x, v, c)  # offset = travel time: full outbound band
    assert out == 30.0 and inb == 10.0  # inbound: green at 0 seen 20 s late → 30 - 20
    out, inb = bandwidth([0.0, 0.0], g, x, v, c)
    assert out == inb == 10.0
    offs, _ = best_offsets(g, x, v, c)
    b = bandwidth(offs, g, x, v, c)
    # the balanced optimum equals the exhaustive one over 1 s offsets
    grid = [min(bandwidth([0.0, float(o)], g, x, v, c)) for o in range(60)]
    assert min(b) == max(grid)


def test_signal_seeds_cli_runs_each_seed(tmp_path, capsys):
    import json

    from bench.signal_seeds import main

    args = ["--controller", "actuated", "--measure", "sumo", "--kinds", "steady"]
    args += ["--seeds", "7,8", "--end", "90", "--work", str(tmp_path), "--workers", "1"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    runs = [json.loads(x) for x in lines if x.startswith("{")]
    assert [r["seed"] for r in runs] == [7, 8]
    assert all(r["teleports"] == 0 and r["mean_delay_s"] > 0 for r in runs)
    assert runs[0]["mean_delay_s"] != runs[1]["mean_delay_s"]  # two demand draws
    with pytest.raises(SystemExit):
        main(["--params", "[1]"])
