//! Property tests of the signal module's safety guarantees: 131,500 random intersections,
//! request/detector sequences, demands and corridors (case counts set in code below).
//!
//! Whatever a controller (or a random request stream) asks, the indications must never
//! show conflicting movements non-red together, a green may not end before its minimum
//! (before the preemption entry minimum while a preemption is active), every yellow and
//! all-red runs in full, and no movement gains green before every conflicting movement has
//! been red for a full all-red.

use std::sync::Arc;

use citystream_core::signal::control::{clearance_s, AdaptiveFollower, DetectorState};
use citystream_core::signal::machine::{Interval, LightState, SignalMachine};
use citystream_core::signal::model::{
    ClearanceParams, FourArmOptions, Intersection, IntersectionSpec, Movement, PhaseSpec, Turn,
};
use citystream_core::signal::plan::{self, AdaptiveParams, AdaptivePlanner};
use citystream_core::signal::{
    CoordActuatedController, CoordActuatedParams, CyclicGapController, CyclicGapParams,
    DischargeParams, DualRingController, DualRingParams, FixedTimeController, GreenWaveCorridor,
    MaxPressureController, MaxPressureParams, PressureActuatedController, PressureActuatedParams,
    SignalController, Strategy as Ctl,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Generators

fn clearance() -> impl Strategy<Value = ClearanceParams> {
    (
        0.5f64..2.0,
        20.0f64..80.0,
        2.0f64..4.5,
        -0.08f64..0.08,
        8.0f64..45.0,
        0.0f64..12.0,
        1.0f64..10.0,
    )
        .prop_map(
            |(reaction_s, speed_kmh, decel, grade, width_m, vehicle_length_m, preempt)| {
                ClearanceParams {
                    reaction_s,
                    speed_kmh,
                    decel,
                    grade,
                    width_m,
                    vehicle_length_m,
                    preempt_min_green_s: preempt,
                    ..ClearanceParams::default()
                }
            },
        )
}

fn four_arm() -> impl Strategy<Value = Intersection> {
    (
        any::<bool>(),
        any::<bool>(),
        1u32..3,
        1u32..4,
        2.0f64..20.0,
        0.0f64..60.0,
        proptest::option::of(0.0f64..3.0),
        proptest::option::of(0.0f64..3.0),
        clearance(),
        any::<bool>(),
    )
        .prop_map(|(prot, peds, ll, lt, ming, extra, ye, are, c, dual)| {
            let o = FourArmOptions {
                protected_left: prot,
                dual_ring: prot && dual,
                ..four_arm_options(peds, (ll, lt), (ming, extra), ye, are, c)
            };
            Intersection::standard_four_arm("p", &o).expect("valid by construction")
        })
}

/// Four-arm options from sampled values: lanes (left, through), greens (minimum, maximum
/// beyond the minimum and the pedestrian minimum), yellow / all-red as the kinematic ones
/// plus the sampled extra (None = the model's own), cycle up to 900 s.
fn four_arm_options(
    peds: bool,
    (lanes_left, lanes_through): (u32, u32),
    (min_green, extra): (f64, f64),
    yellow_extra: Option<f64>,
    all_red_extra: Option<f64>,
    c: ClearanceParams,
) -> FourArmOptions {
    let ped_min = c.walk_s + 14.0 / c.ped_speed;
    let v = c.speed_kmh / 3.6;
    let y = c.reaction_s + v / (2.0 * c.decel + 2.0 * 9.81 * c.grade);
    let ar = (c.width_m + c.vehicle_length_m) / v;
    FourArmOptions {
        pedestrians: peds,
        lanes_left,
        lanes_through,
        min_green,
        max_green: min_green.max(if peds { ped_min } else { 0.0 }) + extra,
        yellow: yellow_extra.map(|e| y + e),
        all_red: all_red_extra.map(|e| ar + e),
        cycle_max: 900.0,
        clearance: c,
        ..FourArmOptions::default()
    }
}

/// Random explicit intersections: a random subset of the 16 standard movements, grouped
/// greedily into compatible phases (so always valid), random order and timings.
fn explicit() -> impl Strategy<Value = Intersection> {
    (
        proptest::collection::vec(any::<bool>(), 16),
        proptest::collection::vec(any::<u32>(), 16),
        2.0f64..15.0,
        0.0f64..40.0,
        clearance(),
        any::<u64>(),
    )
        .prop_filter_map("needs a movement", |(keep, keys, ming, extra, c, seed)| {
            let arms = ["N", "E", "S", "W"];
            let turns = [Turn::Left, Turn::Through, Turn::Right, Turn::Pedestrian];
            let mut movements = Vec::new();
            let mut k: Vec<(u32, usize)> = Vec::new();
            for (i, &on) in keep.iter().enumerate() {
                if !on {
                    continue;
                }
                let (a, t) = (arms[i / 4], turns[i % 4]);
                k.push((keys[i], movements.len()));
                movements.push(Movement {
                    id: format!("{a}{i}"),
                    approach: a.into(),
                    turn: t,
                    lanes: 1 + (keys[i] % 3),
                    sat_flow: if t == Turn::Pedestrian {
                        0.0
                    } else {
                        1500.0 + (keys[i] % 700) as f64
                    },
                    crossing_m: if t == Turn::Pedestrian {
                        8.0 + (keys[i] % 20) as f64
                    } else {
                        0.0
                    },
                });
            }
            if movements.is_empty() {
                return None;
            }
            // Derive conflicts via a throwaway single-phase-per-movement intersection.
            let probe = IntersectionSpec {
                id: "probe".into(),
                movements: movements.clone(),
                phases: (0..movements.len())
                    .map(|m| PhaseSpec {
                        name: format!("p{m}"),
                        movements: vec![m],
                        ..Default::default()
                    })
                    .collect(),
                conflicts: None,
                permissive: vec![],
                order: vec![],
                clearance: c,
                min_green: 60.0,
                max_green: 60.0,
                cycle_min: 1.0,
                cycle_max: 1e9,
            };
            let probe = Intersection::new(probe).ok()?;
            k.sort_unstable();
            let mut groups: Vec<Vec<usize>> = Vec::new();
            for (_, m) in k {
                match groups
                    .iter_mut()
                    .find(|g| g.iter().all(|&o| !probe.conflicts(o, m)))
                {
                    Some(g) => g.push(m),
                    None => groups.push(vec![m]),
                }
            }
            let np = groups.len();
            let mut order: Vec<usize> = (0..np).collect();
            let mut s = seed | 1;
            for i in (1..np).rev() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                order.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let spec = IntersectionSpec {
                id: "e".into(),
                movements,
                phases: groups
                    .into_iter()
                    .enumerate()
                    .map(|(i, g)| PhaseSpec {
                        name: format!("P{i}"),
                        movements: g,
                        min_green: None,
                        max_green: None,
                        yellow: None,
                        all_red: None,
                    })
                    .collect(),
                conflicts: None,
                permissive: vec![],
                order,
                clearance: c,
                min_green: ming,
                max_green: ming + extra,
                cycle_min: 1.0,
                cycle_max: 2000.0,
            };
            Some(Intersection::new(spec).expect("valid by construction"))
        })
}

fn any_intersection() -> impl Strategy<Value = Intersection> {
    prop_oneof![four_arm(), explicit()]
}

#[derive(Debug, Clone)]
struct Op {
    dt_ms: u64,
    request: Option<u8>,
    calls: u16,
    preempt: u8, // 0: nothing, 1: call preempt(phase = request or 0), 2: clear
}

fn ops(n: usize) -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        (
            prop_oneof![Just(1000u64), Just(500u64), 0u64..3000],
            proptest::option::of(any::<u8>()),
            any::<u16>(),
            prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        )
            .prop_map(|(dt_ms, request, calls, preempt)| Op {
                dt_ms,
                request,
                calls,
                preempt,
            }),
        1..n,
    )
}

// ---------------------------------------------------------------------------------------
// The invariant checker: watches the displayed indications step by step.

struct Checker {
    ix: Arc<Intersection>,
    prev: Vec<LightState>,
    since: Vec<u64>, // time the movement entered its current indication
    ever_lit: Vec<bool>,
    min_all_red: u64,
    min_yellow: u64,
    green_start: u64,
    last_interval: Interval,
    last_phase: usize,
}

fn ms(s: f64) -> u64 {
    (s * 1000.0 - 1e-6).ceil().max(0.0) as u64
}

impl Checker {
    fn new(m: &SignalMachine) -> Self {
        let ix = m.intersection().clone();
        let min_all_red = ix.phases.iter().map(|p| ms(p.all_red)).min().unwrap();
        let min_yellow = ix.phases.iter().map(|p| ms(p.yellow)).min().unwrap();
        Checker {
            prev: m.lights().to_vec(),
            since: vec![0; ix.n_movements()],
            ever_lit: m.lights().iter().map(|l| *l != LightState::Red).collect(),
            ix,
            min_all_red,
            min_yellow,
            green_start: 0,
            last_interval: Interval::Green,
            last_phase: m.phase(),
        }
    }

    /// `preempt_active`: a preemption was active when this step's decision was taken.
    fn observe(&mut self, m: &SignalMachine, preempt_active: bool) -> Result<(), TestCaseError> {
        let now = (m.now_s() * 1000.0).round() as u64;
        let l = m.lights();
        let ix = &self.ix;
        let n = ix.n_movements();
        for a in 0..n {
            for b in a + 1..n {
                prop_assert!(
                    !(ix.conflicts(a, b) && l[a] != LightState::Red && l[b] != LightState::Red),
                    "conflicting movements {} and {} both non-red: {:?}",
                    ix.movements[a].id,
                    ix.movements[b].id,
                    l
                );
            }
        }
        for a in 0..n {
            let (p, c) = (self.prev[a], l[a]);
            if p == c {
                continue;
            }
            match (p, c) {
                (LightState::Green, LightState::Red) => {
                    prop_assert!(false, "green → red without yellow")
                }
                (LightState::Yellow, LightState::Green) => prop_assert!(false, "yellow → green"),
                (LightState::Red, LightState::Yellow) => prop_assert!(false, "red → yellow"),
                (LightState::Yellow, LightState::Red) => {
                    prop_assert!(now - self.since[a] >= self.min_yellow, "yellow cut short")
                }
                (LightState::Red, LightState::Green) =>
                {
                    #[allow(clippy::needless_range_loop)]
                    for b in 0..n {
                        if ix.conflicts(a, b) {
                            prop_assert!(l[b] == LightState::Red);
                            prop_assert!(
                                !self.ever_lit[b] || now - self.since[b] >= self.min_all_red,
                                "{} gained green {} ms after conflicting {} turned red",
                                ix.movements[a].id,
                                now - self.since[b],
                                ix.movements[b].id
                            );
                        }
                    }
                }
                _ => {}
            }
            self.since[a] = now;
            self.ever_lit[a] |= c != LightState::Red;
        }
        // Phase-level: green duration and clearance durations.
        let (iv, ph) = (m.interval(), m.phase());
        if (iv, ph) != (self.last_interval, self.last_phase) {
            let dur = now - self.green_start;
            let lp = &ix.phases[self.last_phase];
            match self.last_interval {
                Interval::Green => {
                    let need = if preempt_active {
                        ms(lp.preempt_min_green)
                    } else {
                        ms(lp.min_green)
                    };
                    prop_assert!(
                        dur >= need,
                        "green of '{}' lasted {dur} ms < {need} ms (preempt={preempt_active})",
                        lp.name
                    );
                }
                Interval::Yellow => {
                    prop_assert!(dur >= ms(lp.yellow), "yellow {dur} ms < {}", lp.yellow)
                }
                Interval::AllRed => {
                    prop_assert!(dur >= ms(lp.all_red), "all-red {dur} ms < {}", lp.all_red)
                }
            }
            self.green_start = now;
            self.last_interval = iv;
            self.last_phase = ph;
        }
        self.prev = l.to_vec();
        Ok(())
    }
}

fn run_machine(ix: Intersection, ops: &[Op]) -> Result<(), TestCaseError> {
    let ix = Arc::new(ix);
    let np = ix.n_phases();
    let mut m = SignalMachine::new(ix.clone(), 0).unwrap();
    let mut chk = Checker::new(&m);
    for op in ops {
        let req = op.request.map(|r| r as usize % np);
        match op.preempt {
            1 => m.preempt(req.unwrap_or(0)).unwrap(),
            2 => m.clear_preempt(),
            _ => {}
        }
        let calls: Vec<bool> = (0..np).map(|p| op.calls & (1 << (p % 16)) != 0).collect();
        let pre = m.preempting().is_some();
        m.step(op.dt_ms as f64 / 1000.0, req, Some(&calls)).unwrap();
        chk.observe(&m, pre)?;
    }
    // Out-of-range requests and bad time steps are errors, never panics or unsafe states.
    prop_assert!(m.step(1.0, Some(np), None).is_err());
    prop_assert!(m.step(f64::NAN, None, None).is_err());
    prop_assert!(m.step(-1.0, None, None).is_err());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 45_000, max_shrink_iters: 200, ..ProptestConfig::default() })]

    /// The state machine under arbitrary request / call / preemption streams.
    #[test]
    fn machine_never_unsafe(ix in any_intersection(), ops in ops(120)) {
        run_machine(ix, &ops)?;
    }
}

// ---------------------------------------------------------------------------------------
// Controllers driving the machine with random detector states.

/// One step's detector vectors for `n` movements, drawn from 16 random bytes.
struct StepDetectors {
    queue: Vec<f64>,
    approaching: Vec<f64>,
    gap_s: Vec<f64>,
    arrivals: Vec<f64>,
    expected: Vec<f64>,
}

impl StepDetectors {
    fn new(d: &[u8], n: usize) -> Self {
        StepDetectors {
            queue: (0..n).map(|m| (d[m % 16] % 7) as f64).collect(),
            approaching: (0..n).map(|m| (d[(m + 5) % 16] % 4) as f64).collect(),
            gap_s: (0..n)
                .map(|m| match d[(m + 9) % 16] {
                    0 => f64::INFINITY,
                    x => x as f64 * 0.7,
                })
                .collect(),
            arrivals: (0..n).map(|m| (d[(m + 3) % 16] % 2) as f64).collect(),
            expected: (0..n).map(|m| (d[(m + 7) % 16] % 5) as f64 * 0.5).collect(),
        }
    }

    /// Every detector but the downstream queues.
    fn state(&self) -> DetectorState<'_> {
        DetectorState {
            gap_s: Some(&self.gap_s),
            arrivals: Some(&self.arrivals),
            ..self.discharge()
        }
    }

    /// Only queue, approaching and expected (what the dual ring reads).
    fn discharge(&self) -> DetectorState<'_> {
        discharge_state(&self.queue, &self.approaching, &self.expected)
    }
}

/// Only what the discharge controllers read: queue, approaching and expected.
fn discharge_state<'a>(
    queue: &'a [f64],
    approaching: &'a [f64],
    expected: &'a [f64],
) -> DetectorState<'a> {
    DetectorState {
        queue,
        approaching,
        gap_s: None,
        downstream: None,
        arrivals: None,
        expected: Some(expected),
    }
}

/// `preempt_at` = (step to preempt at, step to clear at, phase seed): apply it at step `i`.
fn preempt_at_step(sc: &mut SignalController, i: usize, preempt_at: Option<(usize, usize, u8)>) {
    if let Some((a, b, p)) = preempt_at {
        if i == a {
            let np = sc.intersection().n_phases();
            sc.machine.preempt(p as usize % np).unwrap();
        }
        if i == b {
            sc.machine.clear_preempt();
        }
    }
}

/// Step `i` of a discharge controller (queue, approaching, expected from the step's
/// bytes; `dt` in ms) with the preemption schedule, checked; whether a preemption was
/// active when it decided.
fn discharge_step(
    sc: &mut SignalController,
    chk: &mut Checker,
    i: usize,
    (d, dt): &(Vec<u8>, u64),
    preempt_at: Option<(usize, usize, u8)>,
) -> Result<bool, TestCaseError> {
    preempt_at_step(sc, i, preempt_at);
    let det = StepDetectors::new(d, sc.intersection().n_movements());
    let pre = sc.machine.preempting().is_some();
    sc.step(*dt as f64 / 1000.0, Some(&det.discharge()), None)
        .unwrap();
    chk.observe(&sc.machine, pre)?;
    Ok(pre)
}

fn detector_seq(n_steps: usize) -> impl Strategy<Value = Vec<(Vec<u8>, u64)>> {
    proptest::collection::vec(
        (
            proptest::collection::vec(0u8..12, 16),
            prop_oneof![Just(1000u64), 100u64..2500],
        ),
        1..n_steps,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 30_000, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn controllers_never_unsafe(
        ix in any_intersection(),
        kind in 0u8..6,
        beta in 0.0f64..2.0,
        margin in 0.0f64..10.0,
        cyclic in any::<bool>(),
        seq in detector_seq(150),
        preempt_at in proptest::option::of((0usize..150, 0usize..150, any::<u8>())),
    ) {
        let ix = Arc::new(ix);
        let n = ix.n_movements();
        let np = ix.n_phases();
        let strategy = match kind {
            0 => Ctl::MaxPressure(MaxPressureController::new(ix.clone(), MaxPressureParams { approach_weight: beta, switch_margin: margin, cyclic }).unwrap()),
            1 => Ctl::PressureActuated(PressureActuatedController::new(ix.clone(), PressureActuatedParams { approach_weight: beta, switch_margin: margin, cyclic, max_wait_s: 30.0 + margin * 10.0, ..Default::default() }).unwrap()),
            2 => {
                let flows: Vec<f64> = (0..n).map(|m| 100.0 + 50.0 * (m as f64)).collect();
                let p = plan::webster(&ix, &flows).unwrap();
                Ctl::Fixed(FixedTimeController::from_plan(ix.clone(), &p, margin * 7.0).unwrap())
            }
            3 => Ctl::Adaptive(Box::new(AdaptiveFollower::new(ix.clone(), AdaptiveParams::default(), &vec![300.0; n]).unwrap())),
            5 => {
                let discharge = DischargeParams { max_green_through_s: 10.0 + margin * 5.0, max_green_left_s: margin * 3.0, efficiency: beta * 0.3, ..CyclicGapParams::default().discharge };
                Ctl::CyclicGap(CyclicGapController::new(ix.clone(), CyclicGapParams { discharge, ..Default::default() }).unwrap())
            }
            _ => Ctl::Manual,
        };
        let mut sc = SignalController::new(ix.clone(), strategy, 0).unwrap();
        let mut chk = Checker::new(&sc.machine);
        for (i, (d, dt)) in seq.iter().enumerate() {
            preempt_at_step(&mut sc, i, preempt_at);
            let det = StepDetectors::new(d, n);
            let pre = sc.machine.preempting().is_some();
            let manual = if kind == 4 { Some(d[0] as usize % np) } else { None };
            sc.step(*dt as f64 / 1000.0, Some(&det.state()), manual).unwrap();
            chk.observe(&sc.machine, pre)?;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The dual ring: 8 phases that overlap (a movement stays green across phase changes).

fn dual_ring_four_arm() -> impl Strategy<Value = Intersection> {
    (
        any::<bool>(),
        1u32..3,
        1u32..4,
        2.0f64..15.0,
        0.0f64..60.0,
        proptest::option::of(0.0f64..3.0),
        clearance(),
    )
        .prop_map(|(peds, ll, lt, ming, extra, ye, c)| {
            let o = FourArmOptions {
                dual_ring: true,
                ..four_arm_options(peds, (ll, lt), (ming, extra), ye, None, c)
            };
            Intersection::standard_four_arm("dr", &o).expect("valid by construction")
        })
}

/// A dual-ring controller driving the machine from phase 0.
fn dual_ring_controller(ix: &Arc<Intersection>, params: DualRingParams) -> SignalController {
    let ctl = DualRingController::new(ix.clone(), params).unwrap();
    SignalController::new(ix.clone(), Ctl::DualRing(Box::new(ctl)), 0).unwrap()
}

fn dual_ring_params() -> impl Strategy<Value = DualRingParams> {
    (
        0.0f64..90.0,
        0.0f64..45.0,
        0.0f64..10.0,
        0.0f64..0.6,
        0.0f64..3.0,
        prop_oneof![Just(f64::INFINITY), 0.0f64..10.0],
        any::<bool>(),
        (
            prop_oneof![Just(f64::INFINITY), 0.0f64..10.0],
            prop_oneof![Just(f64::INFINITY), 0.0f64..12.0],
            prop_oneof![Just(f64::INFINITY), 0.0f64..40.0],
            1.0f64..90.0,
        ),
    )
        .prop_map(
            |(mt, ml, h, eff, call, lead, right, (early, early_q, busy_q, busy_max))| {
                DualRingParams {
                    discharge: DischargeParams {
                        max_green_through_s: mt,
                        max_green_left_s: ml,
                        horizon_s: h,
                        efficiency: eff,
                        min_call_veh: call,
                        ..DualRingParams::default().discharge
                    },
                    lead_left_veh: lead,
                    early_left_veh: early,
                    early_left_queue_veh: early_q,
                    busy_cross_queue_veh: busy_q,
                    busy_max_green_through_s: busy_max,
                    count_right_lanes: right,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8_000, max_shrink_iters: 200, ..ProptestConfig::default() })]

    /// Random detector states over many steps: never conflicting greens, never a cut
    /// clearance or minimum green — also for the movements that stay green across the
    /// dual ring's overlapping phases (a movement's green lasts ≥ the shortest minimum
    /// green of the phases serving it, unless a preemption truncates it).
    #[test]
    fn dual_ring_never_unsafe(
        ix in dual_ring_four_arm(),
        params in dual_ring_params(),
        seq in detector_seq(200),
        preempt_at in proptest::option::of((0usize..200, 0usize..200, any::<u8>())),
    ) {
        let ix = Arc::new(ix);
        let n = ix.n_movements();
        let np = ix.n_phases();
        prop_assert_eq!(np, 8);
        let mut sc = dual_ring_controller(&ix, params);
        let mut chk = Checker::new(&sc.machine);
        let min_green_of: Vec<u64> = (0..n)
            .map(|m| ix.served_by[m].iter().map(|&p| ms(ix.phases[p].min_green)).min().unwrap())
            .collect();
        let mut green_since: Vec<Option<u64>> = sc.machine.lights().iter().map(|l| (*l == LightState::Green).then_some(0)).collect();
        let mut preempted_since_green = vec![false; n];
        for (i, step) in seq.iter().enumerate() {
            let pre = discharge_step(&mut sc, &mut chk, i, step, preempt_at)?;
            let now = (sc.machine.now_s() * 1000.0).round() as u64;
            for (m, l) in sc.machine.lights().iter().enumerate() {
                preempted_since_green[m] |= pre;
                match (green_since[m], *l) {
                    (None, LightState::Green) => { green_since[m] = Some(now); preempted_since_green[m] = pre; }
                    (Some(t0), LightState::Yellow) => {
                        prop_assert!(
                            preempted_since_green[m] || now - t0 >= min_green_of[m],
                            "movement {} green {} ms < its minimum {} ms", ix.movements[m].id, now - t0, min_green_of[m]
                        );
                        green_since[m] = None;
                    }
                    (Some(_), LightState::Red) => prop_assert!(false, "green → red without yellow"),
                    _ => {}
                }
            }
        }
    }

    /// Liveness: with every movement queued all the time, every vehicle movement gets
    /// green within two full rounds of maximum greens and clearances.
    #[test]
    fn dual_ring_serves_every_called_movement(
        ix in dual_ring_four_arm(),
        params in dual_ring_params(),
        exp in proptest::collection::vec(0u8..6, 16),
    ) {
        let mut params = params;
        params.discharge.min_call_veh = params.discharge.min_call_veh.min(1.0);
        let pr = params.discharge;
        let ix = Arc::new(ix);
        let n = ix.n_movements();
        let mut sc = dual_ring_controller(&ix, params);
        let q = vec![3.0; n];
        let a = vec![1.0; n];
        let e: Vec<f64> = (0..n).map(|m| exp[m % 16] as f64).collect();
        let per_phase = ix.phases.iter().map(|p| p.min_green.max(1.0) + p.yellow + p.all_red + 1.0).fold(0.0, f64::max);
        let max_ph = ix.phases.iter().map(|p| p.max_green).fold(0.0, f64::max);
        let round = pr.max_green_through_s.min(max_ph) + pr.max_green_left_s.min(max_ph) + 4.0 * per_phase;
        let horizon = (2.0 * 2.0 * round).ceil() as usize + 10;
        let mut got = vec![false; n];
        for _ in 0..horizon {
            sc.step(1.0, Some(&discharge_state(&q, &a, &e)), None).unwrap();
            for (m, l) in sc.machine.lights().iter().enumerate() {
                got[m] |= *l == LightState::Green;
            }
        }
        for (mv, g) in ix.movements.iter().zip(&got) {
            if !mv.is_pedestrian() {
                prop_assert!(*g, "movement {} never got green in {} s", mv.id, horizon);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Coordinated-actuated: random plans (greens, order, offset, band, common cycle).

/// Sampled plan values: green fractions between each phase's minimum and maximum, order
/// keys, offset, band, shrink of the greens above their minimum by a common cycle (None =
/// no cycle given), start tolerance.
type CoordDraw = (Vec<f64>, Vec<u32>, f64, f64, Option<f64>, f64);

fn coord_draw() -> impl Strategy<Value = CoordDraw> {
    (
        proptest::collection::vec(0.0f64..1.0, 16),
        proptest::collection::vec(any::<u32>(), 16),
        0.0f64..300.0,
        0.0f64..=1.0,
        proptest::option::of(0.0f64..=1.0),
        0.0f64..2.0,
    )
}

/// A valid plan for `ix` from `draw` (greens within [min, max], a permutation order).
fn coord_params(ix: &Intersection, draw: &CoordDraw) -> CoordActuatedParams {
    let (frac, keys, offset, hold, shrink, tol) = draw;
    let np = ix.n_phases();
    let greens: Vec<f64> = (0..np)
        .map(|p| {
            let ph = &ix.phases[p];
            ph.min_green + frac[p % 16] * (ph.max_green - ph.min_green).min(60.0)
        })
        .collect();
    let mut order: Vec<usize> = (0..np).collect();
    order.sort_by_key(|&p| (keys[p % 16], p));
    let clear: f64 = (0..np)
        .map(|i| clearance_s(ix, order[i], order[(i + 1) % np]))
        .sum();
    let above: f64 = (0..np).map(|p| greens[p] - ix.phases[p].min_green).sum();
    let cycle_s = shrink.map(|f| greens.iter().sum::<f64>() + clear - f * above);
    CoordActuatedParams {
        order: Some(order),
        coord_hold: *hold,
        cycle_s,
        start_tolerance_s: *tol,
        ..CoordActuatedParams::new(greens, *offset)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12_000, max_shrink_iters: 200, ..ProptestConfig::default() })]

    /// Random plans and detector states: never conflicting greens, never a cut clearance
    /// or minimum green, with or without a preemption.
    #[test]
    fn coord_actuated_never_unsafe(
        ix in any_intersection(),
        draw in coord_draw(),
        seq in detector_seq(200),
        preempt_at in proptest::option::of((0usize..200, 0usize..200, any::<u8>())),
    ) {
        let ix = Arc::new(ix);
        let ctl = CoordActuatedController::new(ix.clone(), coord_params(&ix, &draw)).unwrap();
        let mut sc = SignalController::new(ix.clone(), Ctl::CoordActuated(Box::new(ctl)), 0).unwrap();
        let mut chk = Checker::new(&sc.machine);
        for (i, step) in seq.iter().enumerate() {
            discharge_step(&mut sc, &mut chk, i, step, preempt_at)?;
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, max_shrink_iters: 100, ..ProptestConfig::default() })]

    /// Coordination: under full demand (every phase called, nothing gaps out) the
    /// coordinated phase is green through its band in every cycle once started up — its
    /// start late by at most 3 steps (force-off seen a step late, yellow and all-red
    /// rounded up to whole steps) — and every phase is served. Needs ≥ 3 steps of slack
    /// above every minimum green: with greens at their minimum, clearances that are not
    /// whole steps make the real cycle longer than the plan, and phases get skipped.
    #[test]
    fn coord_actuated_keeps_the_band(
        peds in any::<bool>(),
        greens in (2.0f64..20.0, 0.0f64..3.0, 0.0f64..3.0),
        c in clearance(),
        draw in coord_draw(),
        dt_ms in prop_oneof![Just(200u64), Just(500u64), Just(1000u64)],
    ) {
        let (min_green, ye, are) = greens;
        let o = FourArmOptions {
            max_green: 900.0,
            ..four_arm_options(peds, (1, 2), (min_green, 0.0), Some(ye), Some(are), c)
        };
        let o = FourArmOptions { max_green: o.min_green.max(o.max_green).max(900.0), ..o };
        let ix = Arc::new(Intersection::standard_four_arm("b", &o).unwrap());
        let dt = dt_ms as f64 / 1000.0;
        let mut params = coord_params(&ix, &draw);
        params.cycle_s = None;
        // 3 steps of slack, at most 40 s above the minimum
        for (p, g) in params.greens.iter_mut().enumerate() {
            let min = ix.phases[p].min_green;
            *g = min + 3.0 * dt + 1e-3 + (*g - min).min(40.0);
        }
        let ctl = CoordActuatedController::new(ix.clone(), params.clone()).unwrap();
        let (cycle, coord) = (ctl.cycle, ctl.coordinated());
        let band = params.coord_hold * ctl.force_offs[coord];
        let order = ctl.order().to_vec();
        let mut sc = SignalController::new(ix.clone(), Ctl::CoordActuated(Box::new(ctl)), 0).unwrap();
        let n = ix.n_movements();
        let (q, a, e) = (vec![3.0; n], vec![1.0; n], vec![1000.0; n]);
        let dt = dt_ms as f64 / 1000.0;
        let late = 3.0 * dt + 1e-3;
        let steps = ((6.0 * cycle + params.offset_s) / dt).ceil() as usize;
        let mut served = vec![false; ix.n_phases()];
        for _ in 0..steps {
            sc.step(dt, Some(&discharge_state(&q, &a, &e)), None).unwrap();
            let now = sc.machine.now_s();
            let u = now - params.offset_s;
            if u < 2.0 * cycle {
                continue; // start-up
            }
            if sc.machine.interval() == Interval::Green {
                served[sc.machine.phase()] = true;
            }
            let pos = u.rem_euclid(cycle);
            if pos >= late && pos < band {
                prop_assert!(
                    sc.machine.interval() == Interval::Green && sc.machine.phase() == coord,
                    "t {now}: position {pos:.2} of cycle {cycle:.2} is in the band (< {band:.2}) but phase {} shows {:?} (order {order:?})",
                    sc.machine.phase(), sc.machine.interval()
                );
            }
        }
        prop_assert!(served.iter().all(|&s| s), "phases served {served:?} (order {order:?})");
    }
}

// ---------------------------------------------------------------------------------------
// Plans: random (including invalid) demands.

proptest! {
    #![proptest_config(ProptestConfig { cases: 25_000, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn plans_respect_bounds_or_error(
        ix in any_intersection(),
        raw in proptest::collection::vec(prop_oneof![20 => 0.0f64..2500.0, 1 => Just(f64::NAN), 1 => -500.0f64..-0.001, 1 => Just(f64::INFINITY)], 16),
        target in 0.5f64..1.2,
        seq in proptest::collection::vec(proptest::collection::vec(0.0f64..2000.0, 16), 1..6),
    ) {
        let n = ix.n_movements();
        let flows: Vec<f64> = raw[..n].to_vec();
        let bad = flows.iter().any(|f| !f.is_finite() || *f < 0.0);
        let cl: f64 = ix.phases.iter().map(|p| p.yellow + p.all_red).sum();
        for res in [plan::webster(&ix, &flows), plan::critical_lane(&ix, &flows, target, 0.92)] {
            match res {
                Err(e) => {
                    prop_assert!(bad, "unexpected error {e}");
                    let msg = e.to_string();
                    prop_assert!(msg.contains(&format!("'{}'", ix.id)), "{msg}");
                }
                Ok(p) => {
                    prop_assert!(!bad, "plan from invalid flows");
                    prop_assert!(p.cycle.is_finite() && p.cycle <= ix.cycle_max + 1e-6);
                    prop_assert!((p.greens.iter().sum::<f64>() + cl - p.cycle).abs() < 1e-6);
                    for (q, g) in p.greens.iter().enumerate() {
                        prop_assert!(*g >= ix.phases[q].min_green - 1e-9 && *g <= ix.phases[q].max_green + 1e-9);
                    }
                    for d in &p.movement_delay { prop_assert!(d.is_finite() && *d >= 0.0); }
                }
            }
        }
        let params = AdaptiveParams::default();
        let mut ap = AdaptivePlanner::new(Arc::new(ix.clone()), params).unwrap();
        let mut prev: Option<f64> = None;
        for f in &seq {
            let p = ap.update(&f[..n]).unwrap();
            for (q, g) in p.greens.iter().enumerate() {
                prop_assert!(*g >= ix.phases[q].min_green - 1e-9 && *g <= ix.phases[q].max_green + 1e-9);
            }
            if let Some(c) = prev {
                prop_assert!((p.cycle - c).abs() <= params.max_cycle_change + 1e-6, "cycle jumped {c} → {}", p.cycle);
            }
            prev = Some(p.cycle);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Green wave: the optimiser's bands are real and never beaten by exhaustive search.

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_500, max_shrink_iters: 50, ..ProptestConfig::default() })]

    #[test]
    fn green_wave_beats_exhaustive(
        d in proptest::collection::vec(150.0f64..900.0, 1..3),
        vo in 8.0f64..18.0,
        vi in 8.0f64..18.0,
        split in proptest::collection::vec(0.3f64..0.7, 3),
        cycle in 40u32..90,
    ) {
        let n = d.len() + 1;
        let c = GreenWaveCorridor {
            distances_m: d.clone(),
            speed_out: vec![vo; d.len()],
            speed_in: vec![vi; d.len()],
            green_split: split[..n].to_vec(),
            cycle_min: cycle as f64,
            cycle_max: cycle as f64,
            cycle_step: 1.0,
        };
        let r = c.optimize().unwrap();
        let (bo, bi) = c.bandwidths(r.cycle, &r.offsets).unwrap();
        prop_assert!((bo - r.bandwidth_out).abs() < 1e-6 && (bi - r.bandwidth_in).abs() < 1e-6);
        let ex = c.exhaustive(cycle as f64, 1.0).unwrap();
        let (a, b) = (r.bandwidth_out + r.bandwidth_in, ex.bandwidth_out + ex.bandwidth_in);
        prop_assert!(a >= b - 1e-6, "optimiser {a} < exhaustive {b}");
        // The grid can only lose to the continuous optimum by the grid resolution per signal.
        prop_assert!(a <= b + 2.0 * (n as f64) + 1e-6, "optimiser {a} ≫ exhaustive {b}");
    }
}

#[test]
fn green_wave_exact_on_integer_grid() {
    // Integer travel times and even greens: the continuous optimum lies on a 0.5 s grid,
    // so a fine exhaustive search must match it exactly.
    let c = GreenWaveCorridor {
        distances_m: vec![250.0, 375.0, 500.0],
        speed_out: vec![12.5; 3],
        speed_in: vec![12.5; 3],
        green_split: vec![0.5, 0.4, 0.6, 0.5],
        cycle_min: 50.0,
        cycle_max: 50.0,
        cycle_step: 1.0,
    };
    let r = c.optimize().unwrap();
    let ex = c.exhaustive(50.0, 0.5).unwrap();
    let (a, b) = (
        r.bandwidth_out + r.bandwidth_in,
        ex.bandwidth_out + ex.bandwidth_in,
    );
    assert!((a - b).abs() < 1e-6, "optimiser {a} vs exhaustive {b}");
}

#[test]
fn green_wave_ten_intersections_fast() {
    let c = GreenWaveCorridor {
        distances_m: vec![
            320.0, 410.0, 280.0, 520.0, 350.0, 300.0, 450.0, 380.0, 260.0,
        ],
        speed_out: vec![13.9; 9],
        speed_in: vec![12.5; 9],
        green_split: vec![0.45, 0.5, 0.55, 0.4, 0.5, 0.45, 0.6, 0.5, 0.5, 0.45],
        cycle_min: 60.0,
        cycle_max: 150.0,
        cycle_step: 0.5,
    };
    let t0 = std::time::Instant::now();
    let r = c.optimize().unwrap();
    let dt = t0.elapsed().as_secs_f64();
    assert!(dt < 0.1, "10-intersection green wave took {dt} s");
    assert!(r.efficiency > 0.0 && r.cycles_examined == 181);
}
