"""SUMO scenarios built by the project with fixed seeds.

- `single`: a 4-arm intersection (netgenerate grid of one node, 2 lanes per arm plus an
  80 m left-turn bay), four stages with protected lefts (NS through+right, NS left,
  EW through+right, EW left), yellow 3 s and all-red 2 s on every change.
- `arterial`: 5 such intersections 300 m apart along an east–west arterial.

Demand (`steady`, `unbalanced`, `surging`, `arterial`) is written as explicit vehicles
drawn from Poisson processes per movement with a seeded numpy generator, so every
controller sees exactly the same vehicles.

The traffic-light programs are written to an additional file: `static` (netconvert's
default split for a 90 s cycle: 29 s through, 6 s left) and `actuated` (SUMO's
gap-based actuated control on the same stages, netconvert's default minDur 5 s /
maxDur 50 s). Our controllers drive the lights through TraCI.
"""

from __future__ import annotations

import math
import os
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

YELLOW_S = 3.0
ALL_RED_S = 2.0
SPEED_MPS = 13.89
DEMAND_KINDS = ("steady", "unbalanced", "surging")


def _tmp_beside(path: Path) -> Path:
    """A private file name next to `path`: scenario files are shared by the processes of
    `run_many`, so each is written under its own name and moved into place atomically
    (another process never reads a half-written net, program or route file)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _write_xml(root: ET.Element, path: Path) -> None:
    ET.indent(root)
    tmp = _tmp_beside(path)
    ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
    os.replace(tmp, path)


def sumo_binary(name: str) -> str:
    import sumolib

    return sumolib.checkBinary(name)


@dataclass
class Approach:
    """One incoming arm of a signalised junction."""

    name: str  # N, E, S, W (where traffic comes from)
    edge: str  # the last edge before the stop line (with the turn bay)
    upstream: str | None  # the edge feeding it
    lanes: list[str]  # lane ids of `edge`, index order (0 = rightmost)
    axis: str  # "NS" | "EW"
    stop_xy: tuple[float, float]  # centre of the stop line (net coordinates)
    heading: tuple[float, float]  # unit vector of travel at the stop line
    length: float  # length of `edge`
    upstream_length: float
    # lane index -> turn directions served ("r", "s", "l")
    lane_dirs: dict[int, str] = field(default_factory=dict)


@dataclass
class Junction:
    """A signalised junction: its approaches and its 4 stages as link-state strings."""

    tls: str
    n_links: int
    approaches: list[Approach]
    stage_names: list[str]  # ["NS_T", "NS_L", "EW_T", "EW_L"]
    stage_states: list[str]  # green state per stage
    # movements served by each stage: (approach name, dir) pairs
    stage_movements: list[list[tuple[str, str]]]
    link_movement: list[tuple[str, str, str]]  # per link: (approach, dir, from lane id)


@dataclass
class Scenario:
    name: str
    net: Path
    routes: Path
    programs: Path
    junctions: list[Junction]
    end_s: float  # last departure
    horizon_s: float  # simulation stops here (unfinished vehicles still count)
    n_vehicles: int
    through_routes: list[str] = field(default_factory=list)  # arterial through route ids
    departures: dict[str, float] = field(default_factory=dict)  # vehicle id -> planned depart


def _netgenerate(out: Path, arterial: bool) -> None:
    tmp = _tmp_beside(out)
    args = [
        sumo_binary("netgenerate"),
        "--grid",
        "--default.lanenumber",
        "2",
        "--turn-lanes",
        "1",
        "--turn-lanes.length",
        "80",
        "--default-junction-type",
        "traffic_light",
        "--tls.yellow.time",
        str(int(YELLOW_S)),
        "--tls.allred.time",
        str(int(ALL_RED_S)),
        "--default.speed",
        str(SPEED_MPS),
        "--no-turnarounds",
        "true",
        "--seed",
        "42",
        "--no-warnings",
        "true",
        "-o",
        str(tmp),
    ]
    if arterial:
        args += [
            "--grid.x-number",
            "5",
            "--grid.y-number",
            "1",
            "--grid.x-length",
            "300",
            "--grid.attach-length",
            "250",
        ]
    else:
        args += ["--grid.number", "1", "--grid.attach-length", "300"]
    subprocess.run(args, check=True, capture_output=True)
    os.replace(tmp, out)


def _junctions(net_path: Path) -> list[Junction]:
    import sumolib

    net = sumolib.net.readNet(str(net_path))
    out = []
    for tl in sorted(net.getTrafficLights(), key=lambda t: t.getID()):
        conns = tl.getConnections()  # (inLane, outLane, linkIndex)
        if not conns:
            continue
        n_links = max(c[2] for c in conns) + 1
        node = net.getNode(tl.getID())
        apps: dict[str, Approach] = {}
        link_mov: list[tuple[str, str, str]] = [("", "", "")] * n_links
        for in_lane, out_lane, idx in conns:
            e = in_lane.getEdge()
            if e.getID() not in {a.edge for a in apps.values()}:
                shape = in_lane.getShape()
                (x0, y0), (x1, y1) = shape[-2], shape[-1]
                dx, dy = x1 - x0, y1 - y0
                n = math.hypot(dx, dy)
                dx, dy = dx / n, dy / n
                if abs(dy) > abs(dx):
                    name, axis = ("N" if dy < 0 else "S"), "NS"
                else:
                    name, axis = ("W" if dx > 0 else "E"), "EW"
                ups = [u for u in e.getIncoming() if u.getFromNode().getID() != node.getID()]
                up = ups[0] if ups else None
                # stop line centre: mean of lane end points
                ends = [ln.getShape()[-1] for ln in e.getLanes()]
                apps[name] = Approach(
                    name=name,
                    edge=e.getID(),
                    upstream=up.getID() if up else None,
                    lanes=[ln.getID() for ln in e.getLanes()],
                    axis=axis,
                    stop_xy=(
                        float(np.mean([p[0] for p in ends])),
                        float(np.mean([p[1] for p in ends])),
                    ),
                    heading=(dx, dy),
                    length=e.getLength(),
                    upstream_length=up.getLength() if up else 0.0,
                )
            app = next(a for a in apps.values() if a.edge == e.getID())
            conn = in_lane.getEdge().getConnections(out_lane.getEdge())
            d = "s"
            for c in conn:
                if c.getFromLane() == in_lane and c.getToLane() == out_lane:
                    d = c.getDirection().lower()
            d = {"t": "l", "r": "r", "l": "l", "s": "s"}.get(d, "s")
            link_mov[idx] = (app.name, d, in_lane.getID())
            li = in_lane.getIndex()
            app.lane_dirs[li] = "".join(sorted(set(app.lane_dirs.get(li, "") + d)))
        stage_names = ["NS_T", "NS_L", "EW_T", "EW_L"]
        stage_movs: list[list[tuple[str, str]]] = []
        states = []
        for sn in stage_names:
            axis, kind = sn.split("_")
            dirs = ("r", "s") if kind == "T" else ("l",)
            st = []
            movs = set()
            for a_name, d, _ in link_mov:
                a = apps[a_name]
                g = a.axis == axis and d in dirs
                st.append("G" if g else "r")
                if g:
                    movs.add((a_name, d))
            states.append("".join(st))
            stage_movs.append(sorted(movs))
        order = sorted(apps.values(), key=lambda a: "NESW".index(a.name))
        out.append(
            Junction(
                tls=tl.getID(),
                n_links=n_links,
                approaches=order,
                stage_names=stage_names,
                stage_states=states,
                stage_movements=stage_movs,
                link_movement=link_mov,
            )
        )
    return out


def transition_states(cur: str, nxt: str) -> tuple[str, str]:
    """(yellow, all-red) states between two green states: links green in both stay green,
    links losing green turn yellow then red."""
    y = "".join(
        "G" if c == "G" and n == "G" else ("y" if c == "G" else "r")
        for c, n in zip(cur, nxt, strict=True)
    )
    r = "".join("G" if c == "G" and n == "G" else "r" for c, n in zip(cur, nxt, strict=True))
    return y, r


def write_programs(path: Path, junctions: list[Junction]) -> None:
    """`static` (netconvert's default 90 s split) and `actuated` programs per junction."""
    root = ET.Element("additional")
    for j in junctions:
        for prog in ("static", "actuated"):
            tl = ET.SubElement(
                root,
                "tlLogic",
                id=j.tls,
                type=prog if prog == "actuated" else "static",
                programID=prog,
                offset="0",
            )
            for k, st in enumerate(j.stage_states):
                nxt = j.stage_states[(k + 1) % len(j.stage_states)]
                green = 29 if j.stage_names[k].endswith("_T") else 6
                attrs = {"duration": str(green), "state": st}
                if prog == "actuated":
                    attrs.update(minDur="5", maxDur="50")
                ET.SubElement(tl, "phase", **attrs)
                y, r = transition_states(st, nxt)
                ET.SubElement(tl, "phase", duration=str(YELLOW_S), state=y)
                ET.SubElement(tl, "phase", duration=str(ALL_RED_S), state=r)
    _write_xml(root, path)


# Demand per approach and movement, veh/h: (through, left, right).
_BASE = {
    "steady": {a: (650, 160, 110) for a in "NESW"},
    "unbalanced": {
        "N": (1150, 280, 150),
        "S": (1050, 260, 130),
        "E": (320, 70, 70),
        "W": (300, 60, 60),
    },
    "surging": {a: (560, 140, 90) for a in "NESW"},
}
BUS_SHARE = 0.05
# Demand multipliers (calibration of congestion against the probe of SUMO actuated)
DEMAND_SCALE = {"steady": 1.1, "unbalanced": 1.15, "surging": 1.15, "arterial": 1.0}


def _rate_factor(kind: str, t: float, end: float) -> dict[str, float]:
    """Time profile multiplier per approach (surging: a peak on N and E in the middle)."""
    if kind != "surging":
        return dict.fromkeys("NESW", 1.0)
    u = t / end
    peak = 1.0 + 1.0 * math.exp(-(((u - 0.5) / 0.18) ** 2))
    return {"N": peak, "E": peak, "S": 1.0 + 0.3 * (peak - 1.0), "W": 1.0 + 0.3 * (peak - 1.0)}


def _poisson_times(rng: np.random.Generator, rate_fn, end: float, rmax: float) -> list[float]:
    """Non-homogeneous Poisson arrivals by thinning."""
    out = []
    t = 0.0
    while True:
        t += rng.exponential(1.0 / rmax)
        if t >= end:
            return out
        if rng.random() < rate_fn(t) / rmax:
            out.append(t)


def _write_routes(
    path: Path,
    net_path: Path,
    junctions: list[Junction],
    kind: str,
    end: float,
    seed: int,
) -> tuple[int, list[str], dict[str, float]]:
    import sumolib

    net = sumolib.net.readNet(str(net_path))
    rng = np.random.default_rng(seed)
    fringe_in = [
        e
        for e in net.getEdges()
        if e.getFromNode().getID().rstrip("0123456789") in ("top", "bottom", "left", "right")
    ]
    fringe_out = [
        e
        for e in net.getEdges()
        if e.getToNode().getID().rstrip("0123456789") in ("top", "bottom", "left", "right")
    ]
    routes: dict[str, list[str]] = {}
    flows: list[tuple[str, float, str]] = []  # (route id, base veh/h, profile approach)
    through_ids: list[str] = []
    if kind == "arterial":
        # main street W<->E through traffic, plus side-street crossings and turns
        w_in = next(e for e in fringe_in if e.getFromNode().getID() == "left0")
        e_in = next(e for e in fringe_in if e.getFromNode().getID() == "right0")
        w_out = next(e for e in fringe_out if e.getToNode().getID() == "left0")
        e_out = next(e for e in fringe_out if e.getToNode().getID() == "right0")
        pairs = [(w_in, e_out, 650.0, "W", True), (e_in, w_out, 600.0, "E", True)]
        for e in fringe_in:
            nid = e.getFromNode().getID()
            if nid.startswith(("top", "bottom")):
                opp = ("bottom" if nid.startswith("top") else "top") + nid[-1]
                o = next(x for x in fringe_out if x.getToNode().getID() == opp)
                pairs.append((e, o, 160.0, "N", False))
                pairs.append((e, e_out, 50.0, "N", False))
                pairs.append((e, w_out, 50.0, "N", False))
                # main street turning into side streets
                for src in (w_in, e_in):
                    side = next(x for x in fringe_out if x.getToNode().getID() == nid)
                    pairs.append((src, side, 25.0, "W", False))
        for k, (a, b, r, prof, thru) in enumerate(pairs):
            p, _ = net.getShortestPath(a, b)
            rid = f"r{k}_{a.getID()}_{b.getID()}"
            routes[rid] = [e.getID() for e in p]
            flows.append((rid, r, prof))
            if thru:
                through_ids.append(rid)
    else:
        j = junctions[0]
        by_name = {a.name: a for a in j.approaches}
        # destination of each turn from each approach
        left_of = {"N": "E", "E": "S", "S": "W", "W": "N"}
        right_of = {v: k for k, v in left_of.items()}
        straight = {"N": "S", "S": "N", "E": "W", "W": "E"}
        side_node = {"N": "top0", "S": "bottom0", "E": "right0", "W": "left0"}
        for a_name, (th, lt, rt) in _BASE[kind].items():
            src = next(e for e in fringe_in if e.getFromNode().getID() == side_node[a_name])
            assert by_name[a_name]
            for turn, r, dest in (
                ("s", th, straight[a_name]),
                ("l", lt, left_of[a_name]),
                ("r", rt, right_of[a_name]),
            ):
                dst = next(e for e in fringe_out if e.getToNode().getID() == side_node[dest])
                p, _ = net.getShortestPath(src, dst)
                rid = f"{a_name}_{turn}"
                routes[rid] = [e.getID() for e in p]
                flows.append((rid, float(r), a_name))
    vehicles: list[tuple[float, str, str]] = []
    prof_kind = "surging" if kind == "surging" else "flat"
    scale = float(
        os.environ.get(f"CITYSTREAM_SIM_SCALE_{kind.upper()}", DEMAND_SCALE.get(kind, 1.0))
    )
    for rid, vph0, prof in flows:
        vph = vph0 * scale
        rmax = vph / 3600.0 * (2.0 if prof_kind == "surging" else 1.0)

        def rate(t: float, vph=vph, prof=prof) -> float:
            return (
                vph
                / 3600.0
                * _rate_factor(prof_kind if prof_kind == "surging" else "x", t, end)[prof]
            )

        for t in _poisson_times(rng, rate, end, rmax):
            vt = "bus" if rng.random() < BUS_SHARE else "car"
            vehicles.append((round(t, 1), rid, vt))
    vehicles.sort()
    root = ET.Element("routes")
    ET.SubElement(
        root,
        "vType",
        id="car",
        vClass="passenger",
        length="5",
        minGap="2.5",
        accel="2.6",
        decel="4.5",
        sigma="0.5",
        maxSpeed="16.7",
    )
    ET.SubElement(
        root,
        "vType",
        id="bus",
        vClass="bus",
        length="12",
        minGap="3",
        accel="1.2",
        decel="4",
        sigma="0.5",
        maxSpeed="16.7",
    )
    for rid, edges in routes.items():
        ET.SubElement(root, "route", id=rid, edges=" ".join(edges))
    departures = {}
    for k, (t, rid, vt) in enumerate(vehicles):
        vid = f"v{k}"
        departures[vid] = t
        ET.SubElement(
            root,
            "vehicle",
            id=vid,
            type=vt,
            route=rid,
            depart=f"{t:.1f}",
            departLane="best",
            departSpeed="max",
        )
    _write_xml(root, path)
    return len(vehicles), through_ids, departures


def build(
    kind: str,
    out_dir: str | Path,
    *,
    end_s: float = 3600.0,
    horizon_s: float | None = None,
    seed: int = 7,
) -> Scenario:
    """Build (or rebuild) a scenario: `steady`, `unbalanced`, `surging` on the single
    intersection, or `arterial` (5 intersections). Deterministic for a given seed."""
    if kind not in (*DEMAND_KINDS, "arterial"):
        raise ValueError(
            f"unknown scenario {kind!r}: expected one of {(*DEMAND_KINDS, 'arterial')}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arterial = kind == "arterial"
    net = out / ("arterial.net.xml" if arterial else "single.net.xml")
    if not net.exists():
        _netgenerate(net, arterial)
    junctions = _junctions(net)
    programs = out / ("arterial.programs.xml" if arterial else "single.programs.xml")
    write_programs(programs, junctions)
    scale = os.environ.get(f"CITYSTREAM_SIM_SCALE_{kind.upper()}", DEMAND_SCALE.get(kind, 1.0))
    routes = out / f"{kind}_{int(end_s)}_{seed}_{scale}.rou.xml"
    n, thru, deps = _write_routes(routes, net, junctions, kind, end_s, seed)
    return Scenario(
        name=kind,
        net=net,
        routes=routes,
        programs=programs,
        junctions=junctions,
        end_s=end_s,
        horizon_s=horizon_s if horizon_s is not None else end_s + 900.0,
        n_vehicles=n,
        through_routes=thru,
        departures=deps,
    )
