//! Controllers: they read detector state and *request* a next phase from the
//! [`SignalMachine`], which alone decides what is shown.
//!
//! * [`FixedTimeController`] follows a plan (greens per phase, cycle, offset) locked to the
//!   clock, so coordinated intersections keep their offsets.
//! * [`AdaptiveFollower`] follows an [`AdaptivePlanner`] plan and re-plans at every cycle
//!   start from the arrivals it counted during the cycle.
//! * [`MaxPressureController`]: pressure = Σ over a phase's movements of
//!   (s/1800)·(queue + β·approaching − downstream queue); after the minimum green the phase
//!   of highest pressure is requested when it beats the current one by a margin (the cost of
//!   switching), optionally in cyclic order.
//! * [`PressureActuatedController`]: the hybrid. It keeps a green while the phase still has
//!   a standing queue or dense arrivals (gap below the gap-out), switches as soon as the
//!   phase is empty, skips phases without demand, chooses the next phase by pressure, cuts a
//!   still-busy green only when the waiting pressure clearly outweighs what the green still
//!   serves (switching costs a clearance), and never lets a called phase wait beyond a
//!   maximum wait.
//! * [`CyclicGapController`]: the phases in their cyclic order, skipping phases nobody
//!   waits for; a green ends when the vehicles expected at the stop line within h seconds
//!   fall below a share of saturation flow over h (its discharge has become inefficient)
//!   while another phase is called, or at its maximum green (through / left).
//! * [`DualRingController`]: NEMA dual ring — two rings per barrier group (N/S, E/W), each
//!   ring gapping out its left and through groups on their own expected discharge, lefts
//!   lagging (or leading when their queue is long), uncalled groups skipped, the barrier
//!   crossed when both rings are done.
//! * [`CoordActuatedController`]: coordinated-actuated on a common cycle — the coordinated
//!   phase's green starts at its offset and holds a band, the other phases are skipped
//!   when uncalled, gap out on their expected discharge and are forced off at their
//!   planned end (laid out with the intersection's real clearances), so unused time
//!   returns early to the coordinated phase.

use std::sync::Arc;

use super::machine::{Interval, SignalMachine, Status};
use super::model::{Intersection, Turn};
use super::plan::{AdaptiveParams, AdaptivePlanner, Plan};
use crate::error::{CoreError, CoreResult};

/// Per-movement detector state for one decision (all slices have one entry per movement).
#[derive(Debug, Clone, Copy)]
pub struct DetectorState<'a> {
    /// Halting vehicles (or waiting pedestrians) of the movement.
    pub queue: &'a [f64],
    /// Moving vehicles within the detection range upstream of the stop line.
    pub approaching: &'a [f64],
    /// Seconds since the last vehicle arrived at the upstream detection point (∞ = none).
    pub gap_s: Option<&'a [f64]>,
    /// Queue on the movement's downstream link (max-pressure); absent = 0.
    pub downstream: Option<&'a [f64]>,
    /// Vehicles that arrived during this step (the adaptive follower counts flows from it).
    pub arrivals: Option<&'a [f64]>,
    /// Vehicles expected to reach the stop line within the controller's horizon h (moving
    /// ones: distance / speed ≤ h; halted ones: start-up + distance / discharge speed ≤ h).
    /// Needed by [`CyclicGapController`]; the others ignore it.
    pub expected: Option<&'a [f64]>,
}

impl DetectorState<'_> {
    pub fn validate(&self, ix: &Intersection) -> CoreResult<()> {
        let n = ix.n_movements();
        let check = |name: &str, v: Option<&[f64]>, allow_inf: bool| -> CoreResult<()> {
            if let Some(v) = v {
                if v.len() != n {
                    return Err(CoreError::Input(format!(
                        "intersection '{}': detector '{name}' has {} entries, expected {n} (one per movement)",
                        ix.id,
                        v.len()
                    )));
                }
                for (m, &x) in v.iter().enumerate() {
                    if x.is_nan() || x < 0.0 || (!allow_inf && x.is_infinite()) {
                        return Err(CoreError::Input(format!(
                            "intersection '{}': detector '{name}' of movement '{}' must be ≥ 0{} (got {x})",
                            ix.id,
                            ix.movements[m].id,
                            if allow_inf { "" } else { " and finite" }
                        )));
                    }
                }
            }
            Ok(())
        };
        check("queue", Some(self.queue), false)?;
        check("approaching", Some(self.approaching), false)?;
        check("gap_s", self.gap_s, true)?;
        check("downstream", self.downstream, false)?;
        check("arrivals", self.arrivals, false)?;
        check("expected", self.expected, false)
    }
}

fn weight(ix: &Intersection, m: usize) -> f64 {
    let mv = &ix.movements[m];
    if mv.is_pedestrian() {
        1.0
    } else {
        mv.sat_flow / 1800.0
    }
}

/// Phase pressures and calls (a phase "calls" when any of its movements has a queue or an
/// approaching vehicle).
fn pressures(ix: &Intersection, d: &DetectorState, beta: f64, out: &mut [f64], calls: &mut [bool]) {
    for (p, ph) in ix.phases.iter().enumerate() {
        let mut s = 0.0;
        let mut c = false;
        for &m in &ph.movements {
            let q = d.queue[m];
            let a = d.approaching[m];
            let dn = d.downstream.map(|v| v[m]).unwrap_or(0.0);
            s += weight(ix, m) * (q + beta * a - dn);
            c |= q > 0.0 || a > 0.0;
        }
        out[p] = s;
        calls[p] = c;
    }
}

/// Result of a decision: the phase requested (None = keep the current green).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub target: Option<usize>,
    pub pressures: Vec<f64>,
    pub calls: Vec<bool>,
}

// ---------------------------------------------------------------------------------------
// Max-pressure

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaxPressureParams {
    /// Weight β of approaching (moving) vehicles relative to halting ones.
    pub approach_weight: f64,
    /// A switch needs pressure(new) > pressure(current) + margin (the cost of switching).
    pub switch_margin: f64,
    /// Only ever move to the next phase (with demand) of the cyclic order.
    pub cyclic: bool,
}

impl Default for MaxPressureParams {
    fn default() -> Self {
        MaxPressureParams {
            approach_weight: 0.0,
            switch_margin: 0.0,
            cyclic: false,
        }
    }
}

fn check_nonneg(ix: &Intersection, what: &str, v: f64) -> CoreResult<()> {
    if !v.is_finite() || v < 0.0 {
        return Err(CoreError::Signal(format!(
            "intersection '{}': controller parameter {what} must be finite and ≥ 0 (got {v})",
            ix.id
        )));
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct MaxPressureController {
    pub ix: Arc<Intersection>,
    pub params: MaxPressureParams,
    pub pressures: Vec<f64>,
    pub calls: Vec<bool>,
}

impl MaxPressureController {
    pub fn new(ix: Arc<Intersection>, params: MaxPressureParams) -> CoreResult<Self> {
        check_nonneg(&ix, "approach_weight", params.approach_weight)?;
        check_nonneg(&ix, "switch_margin", params.switch_margin)?;
        let np = ix.n_phases();
        Ok(MaxPressureController {
            ix,
            params,
            pressures: vec![0.0; np],
            calls: vec![false; np],
        })
    }

    /// Decide from the machine's status and the detector state (validated by the caller or
    /// by [`Self::decide_checked`]).
    pub fn decide(&mut self, st: &Status, d: &DetectorState) -> Option<usize> {
        let ix = &*self.ix;
        pressures(
            ix,
            d,
            self.params.approach_weight,
            &mut self.pressures,
            &mut self.calls,
        );
        if st.interval != Interval::Green || st.elapsed_s < ix.phases[st.phase].min_green {
            return None;
        }
        let cur = st.phase;
        let cand = if self.params.cyclic {
            let mut p = cur;
            let mut found = None;
            for _ in 0..ix.n_phases() {
                p = ix.next_in_order(p);
                if p == cur {
                    break;
                }
                if self.calls[p] {
                    found = Some(p);
                    break;
                }
            }
            found
        } else {
            (0..ix.n_phases())
                .filter(|&p| p != cur && self.calls[p])
                .max_by(|&a, &b| self.pressures[a].total_cmp(&self.pressures[b]))
        };
        match cand {
            Some(p) if self.pressures[p] > self.pressures[cur] + self.params.switch_margin => {
                Some(p)
            }
            _ => None,
        }
    }

    pub fn decide_checked(&mut self, st: &Status, d: &DetectorState) -> CoreResult<Decision> {
        d.validate(&self.ix)?;
        let target = self.decide(st, d);
        Ok(Decision {
            target,
            pressures: self.pressures.clone(),
            calls: self.calls.clone(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Pressure-actuated hybrid

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PressureActuatedParams {
    /// Weight β of approaching vehicles in pressures.
    pub approach_weight: f64,
    /// A green with no standing queue ends when no vehicle arrived for this long.
    pub gap_out_s: f64,
    /// A still-busy green is cut when the best waiting pressure exceeds
    /// `switch_ratio` × the work in front of it (Σ (s/1800)·(queue + approaching) of its
    /// movements) + `switch_margin` (∞ disables early cuts).
    pub switch_ratio: f64,
    pub switch_margin: f64,
    /// A phase with demand never waits longer than this (s) once the current green has
    /// served its minimum.
    pub max_wait_s: f64,
    /// Serve phases in the cyclic order (skipping those without demand) instead of by pressure.
    pub cyclic: bool,
    /// A green that is still busy is never cut (early switch, starvation guard) before
    /// it has lasted this long.
    pub fair_green_s: f64,
}

/// Defaults: one configuration for every scenario. Chosen on helper-5's SUMO scenarios
/// (engine/sim, lane-level measurement, 3600 s, fixed seeds), mean delay vs SUMO actuated
/// in the same runs: steady 39.3 vs 50.9 s, unbalanced 91.2 vs 128.6 s, surging 98.8 vs
/// 130.4 s, 5-intersection arterial 42.0 vs 47.8 s. The landscape is noisy (e.g.
/// fair_green_s 20 gave unbalanced 107.9 s, 30 gave surging 126.2 s), so treat these as a
/// tuned point, not an optimum.
impl Default for PressureActuatedParams {
    fn default() -> Self {
        PressureActuatedParams {
            approach_weight: 0.5,
            gap_out_s: 3.0,
            switch_ratio: 2.0,
            switch_margin: 4.0,
            max_wait_s: 180.0,
            cyclic: false,
            fair_green_s: 25.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PressureActuatedController {
    pub ix: Arc<Intersection>,
    pub params: PressureActuatedParams,
    pub pressures: Vec<f64>,
    pub calls: Vec<bool>,
    last_served: Vec<f64>,
}

impl PressureActuatedController {
    pub fn new(ix: Arc<Intersection>, params: PressureActuatedParams) -> CoreResult<Self> {
        check_nonneg(&ix, "approach_weight", params.approach_weight)?;
        check_nonneg(&ix, "gap_out_s", params.gap_out_s)?;
        check_nonneg(&ix, "switch_ratio", params.switch_ratio)?;
        check_nonneg(&ix, "switch_margin", params.switch_margin)?;
        check_nonneg(&ix, "max_wait_s", params.max_wait_s)?;
        check_nonneg(&ix, "fair_green_s", params.fair_green_s)?;
        let np = ix.n_phases();
        Ok(PressureActuatedController {
            ix,
            params,
            pressures: vec![0.0; np],
            calls: vec![false; np],
            last_served: vec![0.0; np],
        })
    }

    pub fn decide(&mut self, st: &Status, d: &DetectorState) -> Option<usize> {
        let ix = &*self.ix;
        let pr = &self.params;
        pressures(
            ix,
            d,
            pr.approach_weight,
            &mut self.pressures,
            &mut self.calls,
        );
        if st.interval == Interval::Green {
            self.last_served[st.phase] = st.now_s;
        }
        if st.interval != Interval::Green || st.elapsed_s < ix.phases[st.phase].min_green {
            return None;
        }
        let cur = st.phase;
        let np = ix.n_phases();
        let mut any = false;
        for p in 0..np {
            any |= p != cur && self.calls[p];
        }
        if !any {
            return None; // rest in green
        }
        // Is the current green still doing work (a standing queue, or dense arrivals)?
        let mut queue = false;
        let mut dense = false;
        let mut work = 0.0;
        for &m in &ix.phases[cur].movements {
            queue |= d.queue[m] >= 1.0;
            let gap = d.gap_s.map(|g| g[m]).unwrap_or(0.0);
            dense |= d.approaching[m] > 0.0 && gap < pr.gap_out_s;
            work += weight(ix, m) * (d.queue[m] + d.approaching[m]);
        }
        let active = queue || dense;
        // A busy green is only ever cut after it has had a fair share of time: cutting
        // short greens under heavy demand turns capacity into clearance lost time.
        let fair = st.elapsed_s >= pr.fair_green_s;
        // Starvation guard: the longest-waiting called phase past the maximum wait.
        let starving = (0..np)
            .filter(|&p| {
                p != cur && self.calls[p] && st.now_s - self.last_served[p] > pr.max_wait_s
            })
            .max_by(|&a, &b| {
                (st.now_s - self.last_served[a]).total_cmp(&(st.now_s - self.last_served[b]))
            });
        if let Some(p) = starving {
            if !active || fair {
                return Some(p);
            }
        }
        let next = if pr.cyclic {
            let mut p = cur;
            loop {
                p = ix.next_in_order(p);
                if p == cur || self.calls[p] {
                    break;
                }
            }
            p
        } else {
            (0..np)
                .filter(|&p| p != cur && self.calls[p])
                .max_by(|&a, &b| self.pressures[a].total_cmp(&self.pressures[b]))
                .unwrap_or(cur)
        };
        if next == cur {
            return None;
        }
        if !active {
            return Some(next);
        }
        // Early cut of a busy green: the waiting pressure must clearly outweigh the work
        // still in front of this green (all its vehicles in range, moving or not).
        if fair && self.pressures[next] > pr.switch_ratio * work + pr.switch_margin {
            return Some(next);
        }
        None
    }

    pub fn decide_checked(&mut self, st: &Status, d: &DetectorState) -> CoreResult<Decision> {
        d.validate(&self.ix)?;
        let target = self.decide(st, d);
        Ok(Decision {
            target,
            pressures: self.pressures.clone(),
            calls: self.calls.clone(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Discharge gap-out: what the cyclic gap and dual-ring controllers share

/// How a green (a cyclic-gap phase, or a dual-ring movement group) is called, gaps out on
/// its expected discharge and is capped. Shared by [`CyclicGapParams`] and
/// [`DualRingParams`]; no `Default` of its own, as the two controllers' defaults differ
/// (see theirs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DischargeParams {
    /// Maximum green of through traffic (s): of a cyclic-gap phase serving through
    /// movements; of a dual-ring through (+ right) movement group, summed over the phases
    /// it stays green through.
    pub max_green_through_s: f64,
    /// Maximum green of left turns (s): of a cyclic-gap phase serving only left turns; of
    /// a dual-ring left-turn movement group.
    pub max_green_left_s: f64,
    /// Horizon h (s) of the detector's `expected` count.
    pub horizon_s: f64,
    /// A green (phase or ring's movement group) gaps out when expected(h) < efficiency ×
    /// lane_sat_vps × lanes × h.
    pub efficiency: f64,
    /// Saturation flow per lane (veh/s).
    pub lane_sat_vps: f64,
    /// A phase (movement group) is called by at least this many vehicles (queue +
    /// approaching) in range.
    pub min_call_veh: f64,
}

impl DischargeParams {
    /// Every field finite and ≥ 0 (a [`CoreError::Signal`] naming the field otherwise).
    pub fn validate(&self, ix: &Intersection) -> CoreResult<()> {
        check_nonneg(ix, "max_green_through_s", self.max_green_through_s)?;
        check_nonneg(ix, "max_green_left_s", self.max_green_left_s)?;
        check_nonneg(ix, "horizon_s", self.horizon_s)?;
        check_nonneg(ix, "efficiency", self.efficiency)?;
        check_nonneg(ix, "lane_sat_vps", self.lane_sat_vps)?;
        check_nonneg(ix, "min_call_veh", self.min_call_veh)
    }

    /// Whether `demand` vehicles (queue + approaching) call a green.
    pub fn called(&self, demand: f64) -> bool {
        demand > 0.0 && demand >= self.min_call_veh
    }

    /// The controller's maximum green of left-turn (`left`) or through traffic.
    pub fn max_green(&self, left: bool) -> f64 {
        if left {
            self.max_green_left_s
        } else {
            self.max_green_through_s
        }
    }

    /// Below this many vehicles expected within h over `lanes` lanes, a green gaps out.
    pub fn gap_out_threshold(&self, lanes: f64) -> f64 {
        self.efficiency * self.lane_sat_vps * lanes * self.horizon_s
    }
}

// ---------------------------------------------------------------------------------------
// Cyclic gap-out (the SUMO-evaluated hybrid)

#[derive(Debug, Clone, PartialEq)]
pub struct CyclicGapParams {
    /// Maximum greens, gap-out and call thresholds.
    pub discharge: DischargeParams,
    /// Lanes per phase for the discharge threshold; None = Σ lanes of its vehicle movements.
    /// (Give the real count when right turns share a through lane.)
    pub phase_lanes: Option<Vec<f64>>,
}

/// Defaults: the configuration of `engine.sim.controllers.CyclicGap`, evaluated in SUMO.
impl Default for CyclicGapParams {
    fn default() -> Self {
        CyclicGapParams {
            discharge: DischargeParams {
                max_green_through_s: 60.0,
                max_green_left_s: 30.0,
                horizon_s: 6.0,
                efficiency: 0.2,
                lane_sat_vps: 0.5,
                min_call_veh: 0.5,
            },
            phase_lanes: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CyclicGapController {
    pub ix: Arc<Intersection>,
    pub params: CyclicGapParams,
    /// Σ (queue + approaching) per phase at the last decision.
    pub demand: Vec<f64>,
    pub calls: Vec<bool>,
    lanes: Vec<f64>,
    left_only: Vec<bool>,
}

impl CyclicGapController {
    pub fn new(ix: Arc<Intersection>, params: CyclicGapParams) -> CoreResult<Self> {
        params.discharge.validate(&ix)?;
        let np = ix.n_phases();
        let lanes = phase_lane_counts(&ix, params.phase_lanes.as_deref())?;
        let left_only = ix
            .phases
            .iter()
            .map(|ph| {
                let mut veh = ph
                    .movements
                    .iter()
                    .filter(|&&m| !ix.movements[m].is_pedestrian())
                    .peekable();
                veh.peek().is_some() && veh.all(|&m| ix.movements[m].turn == Turn::Left)
            })
            .collect();
        Ok(CyclicGapController {
            ix,
            params,
            demand: vec![0.0; np],
            calls: vec![false; np],
            lanes,
            left_only,
        })
    }

    /// Maximum green the controller allows phase `p` (the machine's own maximum still applies).
    pub fn max_green(&self, p: usize) -> f64 {
        self.params.discharge.max_green(self.left_only[p])
    }

    /// Decide. Without `expected` in `d` the vehicles in range (queue + approaching) stand in
    /// for it, which holds greens longer; [`Self::decide_checked`] and the
    /// [`SignalController`] require it.
    pub fn decide(&mut self, st: &Status, d: &DetectorState) -> Option<usize> {
        let ix = &*self.ix;
        let pr = &self.params.discharge;
        phase_calls(ix, pr, d, &mut self.demand, &mut self.calls);
        if st.interval != Interval::Green || st.elapsed_s < ix.phases[st.phase].min_green {
            return None;
        }
        let cur = st.phase;
        let mut next = cur;
        for _ in 0..ix.n_phases() {
            next = ix.next_in_order(next);
            if next == cur || self.calls[next] {
                break;
            }
        }
        if next == cur || !self.calls[next] {
            return None; // nobody else waits: rest in green
        }
        let served = phase_expected(ix, d, cur);
        if st.elapsed_s >= self.max_green(cur) || served < pr.gap_out_threshold(self.lanes[cur]) {
            return Some(next);
        }
        None
    }

    pub fn decide_checked(&mut self, st: &Status, d: &DetectorState) -> CoreResult<Decision> {
        d.validate(&self.ix)?;
        require_expected(d, "cyclic gap")?;
        let target = self.decide(st, d);
        Ok(Decision {
            target,
            pressures: self.demand.clone(),
            calls: self.calls.clone(),
        })
    }
}

/// Lanes per phase for a discharge threshold: `given` (one per phase, each finite ≥ 0), or
/// Σ lanes of each phase's vehicle movements (at least 1).
fn phase_lane_counts(ix: &Intersection, given: Option<&[f64]>) -> CoreResult<Vec<f64>> {
    let np = ix.n_phases();
    match given {
        Some(l) => {
            if l.len() != np {
                return Err(CoreError::Signal(format!(
                    "intersection '{}': phase_lanes has {} entries, expected {np} (one per phase)",
                    ix.id,
                    l.len()
                )));
            }
            for &x in l {
                check_nonneg(ix, "phase_lanes", x)?;
            }
            Ok(l.to_vec())
        }
        None => Ok(ix
            .phases
            .iter()
            .map(|ph| {
                ph.movements
                    .iter()
                    .filter(|&&m| !ix.movements[m].is_pedestrian())
                    .map(|&m| ix.movements[m].lanes as f64)
                    .sum::<f64>()
                    .max(1.0)
            })
            .collect()),
    }
}

/// Σ (queue + approaching) per phase into `demand`, and whether it calls the phase.
fn phase_calls(
    ix: &Intersection,
    pr: &DischargeParams,
    d: &DetectorState,
    demand: &mut [f64],
    calls: &mut [bool],
) {
    for (p, ph) in ix.phases.iter().enumerate() {
        let s: f64 = ph
            .movements
            .iter()
            .map(|&m| d.queue[m] + d.approaching[m])
            .sum();
        demand[p] = s;
        calls[p] = pr.called(s);
    }
}

/// Vehicles expected at phase `p`'s stop lines within the horizon (queue + approaching
/// stand in when `expected` is absent).
fn phase_expected(ix: &Intersection, d: &DetectorState, p: usize) -> f64 {
    ix.phases[p]
        .movements
        .iter()
        .map(|&m| match d.expected {
            Some(e) => e[m],
            None => d.queue[m] + d.approaching[m],
        })
        .sum()
}

fn require_expected(d: &DetectorState, controller: &str) -> CoreResult<()> {
    if d.expected.is_none() {
        return Err(CoreError::Input(format!(
            "the {controller} controller needs detector 'expected' (vehicles reaching the stop line within its horizon) every step"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Dual ring (NEMA): two rings per barrier group, each gapping out on its own discharge

#[derive(Debug, Clone, PartialEq)]
pub struct DualRingParams {
    /// Maximum greens, gap-out and call thresholds of each ring's movement groups.
    pub discharge: DischargeParams,
    /// When a barrier group starts, a ring leads with its left turn (instead of its
    /// through) if the left has at least this many vehicles in range (∞ = lefts always lag).
    pub lead_left_veh: f64,
    /// A ring whose through group is done moves to its (lagging) left while the other
    /// ring still runs only if the left has at least this many vehicles in range; else
    /// it keeps its through green until both rings are done (0 = rings fully independent).
    pub early_left_veh: f64,
    /// The same move is also made when the lagging left has at least this many *halted*
    /// vehicles (∞ = never): a left-turn bay queued to its entrance spills into the shared
    /// lane and blocks the through beside it, so its left is served now rather than after
    /// the other ring. Halted vehicles, not approaching ones, so a left that the lagging
    /// phase will clear does not cut the through.
    pub early_left_queue_veh: f64,
    /// A through group's maximum green drops to `busy_max_green_through_s` while the
    /// other barrier group holds at least `busy_cross_queue_veh` halted vehicles (∞ =
    /// never): under a surge every approach queues and a long through green only grows the
    /// queues across the barrier (and the left bays behind them), while with unbalanced
    /// demand the cross street waits short and the main street keeps its long green.
    pub busy_cross_queue_veh: f64,
    pub busy_max_green_through_s: f64,
    /// Count the right-turn lanes in a through group's discharge threshold (false when
    /// right turns share the outer through lane).
    pub count_right_lanes: bool,
}

/// Defaults: one configuration for every scenario, chosen in SUMO through the cameras
/// (engine.sim, 3600 s, `bench.signal_seeds`, mean delay; SUMO actuated on the same
/// vehicles: unbalanced 64.5 s / surging 121.1 s on seeds 7–9, 63.5 / 128.1 on 7–13):
/// - maximum through green 60 s with the bay-spillback early left at 9 halted vehicles:
///   unbalanced 49.0 / surging 102.5 on seeds 7–9 (8 halted: 51.6 / 101.7; 6: 54.4 /
///   101.5; a demand-counted early left, `early_left_veh` 10: 51.4 / 97.0 but 80.3 s on
///   unbalanced seed 10; the previous defaults, 45 s and no early left: 61.9 / 113.4; 60 s
///   without early lefts 52.5 / 122.7): long through greens serve unbalanced demand, but
///   under a surge the long cycle overflows the left-turn bays into the shared lane unless
///   those lefts go beside their own through;
/// - and the through maximum cut to 45 s while ≥ 40 vehicles are halted across the
///   barrier: surging 92.2 (threshold 30: 96.0, 50: 94.1; 30 with 40 s: 100.3, with 50 s:
///   99.0; threshold 20 also cut unbalanced greens: 51.7 / 96.0), unbalanced unchanged;
///   on seeds 10–13 (not used to choose it) surging 115.9 against 127.0 without the cut
///   and actuated 133.3, unbalanced unchanged (51.6).
///
/// Steady demand: 38.8 s against actuated 48.4 (seeds 7–9, `citystream bench signals`).
/// (All the figures above were measured before the SUMO adapter's expected arrivals
/// stopped reading a crawling queue as far away; the README has the figures since.)
/// Through the cameras a demand-counted early left misfires on the
/// camera's left/through split of the shared lane; halted vehicles in and behind the bay,
/// and the halted total across the barrier, are what the camera measures best.
impl Default for DualRingParams {
    fn default() -> Self {
        DualRingParams {
            discharge: DischargeParams {
                max_green_through_s: 60.0,
                max_green_left_s: 30.0,
                horizon_s: 6.0,
                efficiency: 0.35,
                lane_sat_vps: 0.5,
                min_call_veh: 0.5,
            },
            lead_left_veh: f64::INFINITY,
            early_left_veh: f64::INFINITY,
            early_left_queue_veh: 9.0,
            busy_cross_queue_veh: 40.0,
            busy_max_green_through_s: 45.0,
            count_right_lanes: false,
        }
    }
}

/// Movement groups: index `g * 4 + ring * 2 + slot` (g: 0 = N/S, 1 = E/W barrier group;
/// slot 0 = left, 1 = through + right). Ring 0 of group (a, b) serves a_L and b_T, ring 1
/// b_L and a_T, so each ring's two groups conflict and the rings run side by side.
const N_GROUPS: usize = 8;

/// The dual-ring controller. Each intersection phase is one movement group per ring of
/// one barrier group (the 8 phases of `FourArmOptions { dual_ring: true, .. }`, or any
/// intersection declaring phases with exactly those vehicle movements). Each ring keeps
/// its group green while it discharges efficiently (vehicles expected at the stop line
/// within h s) and below its maximum green, then moves to its other group if that one is
/// called and has not been served in this barrier visit; when both rings are done and the
/// other barrier group is called, the barrier is crossed. Uncalled groups are skipped;
/// with no call across the barrier the rings re-open their own groups or rest in green.
/// Safety stays with the [`SignalMachine`]: every change is a phase request, so
/// clearances and minimum greens are the machine's.
#[derive(Debug, Clone)]
pub struct DualRingController {
    pub ix: Arc<Intersection>,
    pub params: DualRingParams,
    /// Σ (queue + approaching) per movement group at the last decision.
    pub demand: Vec<f64>,
    /// Σ queue (halted vehicles) per movement group at the last decision.
    pub queue: Vec<f64>,
    /// Expected discharge within h per movement group at the last decision.
    pub expected: Vec<f64>,
    /// Per-phase calls (for the machine's maximum-green fallback).
    pub calls: Vec<bool>,
    group_movements: Vec<Vec<usize>>,
    group_lanes: Vec<f64>,
    /// phase_of[g][slot ring 0][slot ring 1]
    phase_of: [[[usize; 2]; 2]; 2],
    /// (g, slot ring 0, slot ring 1) per phase
    slots: Vec<(usize, usize, usize)>,
    green_since: [Option<f64>; N_GROUPS],
    served: [bool; N_GROUPS],
    visit: Option<usize>,
    group_called: [bool; N_GROUPS],
}

fn group_index(g: usize, ring: usize, slot: usize) -> usize {
    g * 4 + ring * 2 + slot
}

impl DualRingController {
    pub fn new(ix: Arc<Intersection>, params: DualRingParams) -> CoreResult<Self> {
        params.discharge.validate(&ix)?;
        for (what, v) in [
            ("lead_left_veh", params.lead_left_veh),
            ("early_left_veh", params.early_left_veh),
            ("early_left_queue_veh", params.early_left_queue_veh),
            ("busy_cross_queue_veh", params.busy_cross_queue_veh),
        ] {
            if v.is_nan() || v < 0.0 {
                return Err(CoreError::Signal(format!(
                    "intersection '{}': controller parameter {what} must be ≥ 0 or ∞ (got {v})",
                    ix.id
                )));
            }
        }
        let b = params.busy_max_green_through_s;
        if !(b.is_finite() && b > 0.0) {
            return Err(CoreError::Signal(format!(
                "intersection '{}': controller parameter busy_max_green_through_s must be finite and > 0 (got {b})",
                ix.id
            )));
        }
        // movement groups from approaches and turns
        let find = |arm: usize, turn: Turn| -> Option<usize> {
            ix.movements
                .iter()
                .position(|m| m.turn == turn && super::model::arm_index(&m.approach) == Some(arm))
        };
        let arms = [[0usize, 2usize], [1, 3]]; // (a, b) per barrier group: N/S, E/W
        let names = ["N", "E", "S", "W"];
        let mut group_movements = vec![Vec::new(); N_GROUPS];
        let mut group_lanes = vec![1.0; N_GROUPS];
        for (g, &[a, b]) in arms.iter().enumerate() {
            for ring in 0..2 {
                let (left_arm, thru_arm) = if ring == 0 { (a, b) } else { (b, a) };
                let l = find(left_arm, Turn::Left).ok_or_else(|| {
                    CoreError::Signal(format!(
                        "intersection '{}': the dual ring needs a left-turn movement on approach {}",
                        ix.id, names[left_arm]
                    ))
                })?;
                let t = find(thru_arm, Turn::Through).ok_or_else(|| {
                    CoreError::Signal(format!(
                        "intersection '{}': the dual ring needs a through movement on approach {}",
                        ix.id, names[thru_arm]
                    ))
                })?;
                let gl = group_index(g, ring, 0);
                group_movements[gl] = vec![l];
                group_lanes[gl] = ix.movements[l].lanes.max(1) as f64;
                let gt = group_index(g, ring, 1);
                group_movements[gt] = vec![t];
                let mut lanes = ix.movements[t].lanes as f64;
                if let Some(r) = find(thru_arm, Turn::Right) {
                    group_movements[gt].push(r);
                    if params.count_right_lanes {
                        lanes += ix.movements[r].lanes as f64;
                    }
                }
                group_lanes[gt] = lanes.max(1.0);
            }
        }
        // the phase for every combination of ring groups (vehicle movements must match)
        let veh_set = |p: usize| -> Vec<usize> {
            let mut v: Vec<usize> = ix.phases[p]
                .movements
                .iter()
                .copied()
                .filter(|&m| !ix.movements[m].is_pedestrian())
                .collect();
            v.sort_unstable();
            v
        };
        let mut phase_of = [[[usize::MAX; 2]; 2]; 2];
        let mut slots = vec![(usize::MAX, 0, 0); ix.n_phases()];
        for g in 0..2 {
            for s0 in 0..2 {
                for s1 in 0..2 {
                    let mut want: Vec<usize> = group_movements[group_index(g, 0, s0)]
                        .iter()
                        .chain(&group_movements[group_index(g, 1, s1)])
                        .copied()
                        .collect();
                    want.sort_unstable();
                    let p = (0..ix.n_phases()).find(|&p| veh_set(p) == want).ok_or_else(|| {
                        let ids: Vec<&str> =
                            want.iter().map(|&m| ix.movements[m].id.as_str()).collect();
                        CoreError::Signal(format!(
                            "intersection '{}': the dual ring needs a phase serving exactly {{{}}} (build it with dual_ring=true)",
                            ix.id,
                            ids.join(", ")
                        ))
                    })?;
                    phase_of[g][s0][s1] = p;
                    slots[p] = (g, s0, s1);
                }
            }
        }
        if let Some(p) = slots.iter().position(|s| s.0 == usize::MAX) {
            return Err(CoreError::Signal(format!(
                "intersection '{}': phase '{}' is not a dual-ring phase (one left or through group per ring of one barrier group)",
                ix.id, ix.phases[p].name
            )));
        }
        let np = ix.n_phases();
        Ok(DualRingController {
            ix,
            params,
            demand: vec![0.0; N_GROUPS],
            queue: vec![0.0; N_GROUPS],
            expected: vec![0.0; N_GROUPS],
            calls: vec![false; np],
            group_movements,
            group_lanes,
            phase_of,
            slots,
            green_since: [None; N_GROUPS],
            served: [false; N_GROUPS],
            visit: None,
            group_called: [false; N_GROUPS],
        })
    }

    /// The phase of barrier group `g` with ring 0 / ring 1 on their left (0) or through (1).
    pub fn phase_for(&self, g: usize, slot0: usize, slot1: usize) -> usize {
        self.phase_of[g & 1][slot0 & 1][slot1 & 1]
    }

    /// Movements of movement group `gi` (see [`N_GROUPS`] for the numbering).
    pub fn group_movements(&self, gi: usize) -> &[usize] {
        &self.group_movements[gi]
    }

    fn max_green(&self, gi: usize) -> f64 {
        let left = gi.is_multiple_of(2);
        let m = self.params.discharge.max_green(left);
        if left {
            return m;
        }
        let og = 1 - gi / 4;
        let cross: f64 = (0..4).map(|k| self.queue[og * 4 + k]).sum();
        if cross >= self.params.busy_cross_queue_veh {
            m.min(self.params.busy_max_green_through_s)
        } else {
            m
        }
    }

    fn done(&self, gi: usize, now: f64, phase_maxed: bool) -> bool {
        let pr = &self.params.discharge;
        let gt = self.green_since[gi].map(|t0| now - t0).unwrap_or(0.0);
        phase_maxed
            || gt >= self.max_green(gi)
            || self.expected[gi] < pr.gap_out_threshold(self.group_lanes[gi])
    }

    /// The slot ring `ring` of group `g` should show next (None = the ring is done).
    fn ring_next(
        &self,
        g: usize,
        ring: usize,
        slot: usize,
        now: f64,
        phase_maxed: bool,
    ) -> Option<usize> {
        let cur = group_index(g, ring, slot);
        let other = group_index(g, ring, 1 - slot);
        if self.group_called[cur] && !self.done(cur, now, phase_maxed) {
            Some(slot)
        } else if self.group_called[other] && !self.served[other] {
            Some(1 - slot)
        } else {
            None
        }
    }

    /// First slot of a ring when its barrier group starts.
    fn start_slot(&self, g: usize, ring: usize) -> usize {
        let (l, t) = (group_index(g, ring, 0), group_index(g, ring, 1));
        if self.group_called[l] && self.demand[l] >= self.params.lead_left_veh {
            0
        } else if self.group_called[t] {
            1
        } else if self.group_called[l] {
            0
        } else {
            1
        }
    }

    pub fn decide(&mut self, st: &Status, d: &DetectorState) -> Option<usize> {
        let ix = &*self.ix;
        let pr = &self.params;
        for gi in 0..N_GROUPS {
            let (mut dem, mut q, mut exp) = (0.0, 0.0, 0.0);
            for &m in &self.group_movements[gi] {
                q += d.queue[m];
                dem += d.queue[m] + d.approaching[m];
                exp += match d.expected {
                    Some(e) => e[m],
                    None => d.queue[m] + d.approaching[m],
                };
            }
            self.demand[gi] = dem;
            self.queue[gi] = q;
            self.expected[gi] = exp;
            self.group_called[gi] = pr.discharge.called(dem);
        }
        for (p, &(g, s0, s1)) in self.slots.iter().enumerate() {
            self.calls[p] = self.group_called[group_index(g, 0, s0)]
                || self.group_called[group_index(g, 1, s1)];
        }
        let cur = st.phase;
        let (g, s0, s1) = self.slots[cur];
        if st.interval == Interval::Green {
            if self.visit != Some(g) {
                // a new barrier visit: nothing of this group served yet
                for r in 0..2 {
                    for s in 0..2 {
                        self.served[group_index(g, r, s)] = false;
                    }
                }
                self.visit = Some(g);
            }
            let on = [group_index(g, 0, s0), group_index(g, 1, s1)];
            let start = st.now_s - st.elapsed_s;
            for gi in 0..N_GROUPS {
                if on.contains(&gi) {
                    self.served[gi] = true;
                    if self.green_since[gi].is_none() {
                        self.green_since[gi] = Some(start);
                    }
                } else {
                    self.green_since[gi] = None;
                }
            }
        }
        if st.interval != Interval::Green || st.elapsed_s < ix.phases[cur].min_green {
            return None;
        }
        let now = st.now_s;
        // The phase reached the machine's maximum green: the controller moves on itself
        // (in ring / barrier order) before the machine's cyclic fallback would.
        let maxed = st.elapsed_s >= ix.phases[cur].max_green;
        let mut r0 = self.ring_next(g, 0, s0, now, maxed);
        let mut r1 = self.ring_next(g, 1, s1, now, maxed);
        // A ring whose through is done keeps it green (free: the other ring holds the
        // barrier) instead of moving to its lagging left alone, unless that left has at
        // least `early_left_veh` vehicles (or `early_left_queue_veh` halted); when both
        // rings are done they move together.
        let busy0 = r0 == Some(s0);
        let busy1 = r1 == Some(s1);
        let early = |slot: usize, next: Option<usize>, left: usize, other_busy: bool| {
            slot == 1
                && next == Some(0)
                && other_busy
                && !maxed
                && self.demand[left] < pr.early_left_veh
                && self.queue[left] < pr.early_left_queue_veh
        };
        if early(s0, r0, group_index(g, 0, 0), busy1) {
            r0 = Some(s0);
        }
        if early(s1, r1, group_index(g, 1, 0), busy0) {
            r1 = Some(s1);
        }
        if r0.is_none() && r1.is_none() {
            let og = 1 - g;
            let across = (0..2).any(|r| (0..2).any(|s| self.group_called[group_index(og, r, s)]));
            if across {
                let target = self.phase_of[og][self.start_slot(og, 0)][self.start_slot(og, 1)];
                return Some(target);
            }
            // nobody waits across the barrier: re-open this group's other movements
            for r in 0..2 {
                let s = if r == 0 { s0 } else { s1 };
                self.served[group_index(g, r, 1 - s)] = false;
            }
            r0 = self.ring_next(g, 0, s0, now, maxed);
            r1 = self.ring_next(g, 1, s1, now, maxed);
        }
        let target = self.phase_of[g][r0.unwrap_or(s0)][r1.unwrap_or(s1)];
        if target == cur {
            None
        } else {
            Some(target)
        }
    }

    pub fn decide_checked(&mut self, st: &Status, d: &DetectorState) -> CoreResult<Decision> {
        d.validate(&self.ix)?;
        require_expected(d, "dual ring")?;
        if st.phase >= self.ix.n_phases() {
            return Err(CoreError::Signal(format!(
                "intersection '{}': phase {} does not exist",
                self.ix.id, st.phase
            )));
        }
        let target = self.decide(st, d);
        Ok(Decision {
            target,
            pressures: self.demand.clone(),
            calls: self.calls.clone(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Coordinated-actuated (a common cycle, the coordinated phase anchored to its offset)

#[derive(Debug, Clone, PartialEq)]
pub struct CoordActuatedParams {
    /// Horizon, efficiency, lane saturation and call threshold of the gap-out. Its maximum
    /// greens are not used: the plan's force-offs bound every green (the machine's own
    /// maximum green still applies).
    pub discharge: DischargeParams,
    /// Lanes per phase for the discharge threshold (as [`CyclicGapParams::phase_lanes`]).
    pub phase_lanes: Option<Vec<f64>>,
    /// Planned green per phase (s), indexed by phase; each at least the phase's minimum.
    pub greens: Vec<f64>,
    /// Common cycle (s). None = Σ greens + the clearances (yellow + all-red) of the phase
    /// changes along `order`. When given, the greens' parts above their minimum greens are
    /// scaled so that greens + clearances fill exactly this cycle.
    pub cycle_s: Option<f64>,
    /// The coordinated phase's green starts at `offset_s` (mod cycle) on the clock.
    pub offset_s: f64,
    /// Service order, a permutation of the phases; `order[0]` is the coordinated phase.
    /// None = the intersection's order.
    pub order: Option<Vec<usize>>,
    /// The coordinated green is held for this share of its planned length (the band)
    /// before it may gap out; in [0, 1].
    pub coord_hold: f64,
    /// A phase may start up to this late (s) for its minimum green to fit before its
    /// force-off (a decision comes up to a step late; with planned greens at their minimum
    /// a strict fit would skip them), so it may overrun its force-off by as much.
    pub start_tolerance_s: f64,
}

impl CoordActuatedParams {
    /// A plan with the defaults of `engine.sim.controllers.CoordinatedActuated` (horizon
    /// 6 s, efficiency 0.2, 0.5 veh/s per lane, call 0.5 veh, band 75% of the planned
    /// coordinated green, start tolerance 1 s).
    pub fn new(greens: Vec<f64>, offset_s: f64) -> Self {
        CoordActuatedParams {
            discharge: DischargeParams {
                max_green_through_s: 0.0,
                max_green_left_s: 0.0,
                ..CyclicGapParams::default().discharge
            },
            phase_lanes: None,
            greens,
            cycle_s: None,
            offset_s,
            order: None,
            coord_hold: 0.75,
            start_tolerance_s: 1.0,
        }
    }
}

/// Coordinated-actuated control on a common cycle. The cycle is laid out along `order`:
/// the coordinated phase `order[0]` from position 0 (= `offset_s` on the clock), then each
/// other phase after the clearance (yellow + all-red of that phase change, as the machine
/// will run it) with its planned green, which ends at its force-off point. The coordinated
/// green is held for `coord_hold` of its planned length (the band), then until its planned
/// end while it discharges efficiently (vehicles expected at the stop line within h ≥
/// efficiency × saturation), then it hands over to the next phase of the order that is
/// called, not yet served in this cycle, and can still show its minimum green (after the
/// real clearance) before its force-off (give or take `start_tolerance_s`); with none it
/// rests in green. A non-coordinated
/// phase ends when its discharge becomes inefficient or at its force-off, moving on the
/// same way, so unused time returns early to the coordinated phase without moving the
/// coordinated phase's start; a non-coordinated green still running when the coordinated
/// window begins returns to the coordinated phase at once. Every change is a phase
/// request: minimum greens and clearances stay with the [`SignalMachine`].
#[derive(Debug, Clone)]
pub struct CoordActuatedController {
    pub ix: Arc<Intersection>,
    pub params: CoordActuatedParams,
    /// The cycle length (s).
    pub cycle: f64,
    /// Planned green per phase after fitting the cycle (s).
    pub greens: Vec<f64>,
    /// Position in the cycle where each phase's planned green starts / is forced off (s).
    pub starts: Vec<f64>,
    pub force_offs: Vec<f64>,
    /// Σ (queue + approaching) per phase at the last decision.
    pub demand: Vec<f64>,
    pub calls: Vec<bool>,
    order: Vec<usize>,
    lanes: Vec<f64>,
    /// Cycle index each phase was last green in.
    served: Vec<Option<i64>>,
}

fn coord_err(ix: &Intersection, msg: String) -> CoreError {
    CoreError::Signal(format!(
        "intersection '{}': coordinated-actuated {msg}",
        ix.id
    ))
}

/// Clearance (s) the machine runs from phase `a`'s green to phase `b`'s: none when `b`
/// keeps every movement of `a` green, else `a`'s yellow + all-red.
pub fn clearance_s(ix: &Intersection, a: usize, b: usize) -> f64 {
    if ix.phases[a].movements.iter().all(|&m| ix.in_phase(b, m)) {
        0.0
    } else {
        ix.phases[a].yellow + ix.phases[a].all_red
    }
}

impl CoordActuatedController {
    pub fn new(ix: Arc<Intersection>, params: CoordActuatedParams) -> CoreResult<Self> {
        params.discharge.validate(&ix)?;
        check_nonneg(&ix, "start_tolerance_s", params.start_tolerance_s)?;
        let np = ix.n_phases();
        let lanes = phase_lane_counts(&ix, params.phase_lanes.as_deref())?;
        if !params.offset_s.is_finite() || params.offset_s < 0.0 {
            return Err(coord_err(
                &ix,
                format!("offset_s must be finite and ≥ 0 (got {})", params.offset_s),
            ));
        }
        if !(0.0..=1.0).contains(&params.coord_hold) {
            return Err(coord_err(
                &ix,
                format!("coord_hold must be in [0, 1] (got {})", params.coord_hold),
            ));
        }
        let order = params.order.clone().unwrap_or_else(|| ix.order.clone());
        let mut seen = vec![false; np];
        let permutation = order.len() == np
            && order
                .iter()
                .all(|&p| p < np && !std::mem::replace(&mut seen[p], true));
        if !permutation {
            return Err(coord_err(
                &ix,
                format!("order {order:?} must be a permutation of the {np} phases (0..{np})"),
            ));
        }
        if params.greens.len() != np {
            return Err(coord_err(
                &ix,
                format!(
                    "greens has {} entries, expected {np} (one per phase)",
                    params.greens.len()
                ),
            ));
        }
        for (p, &g) in params.greens.iter().enumerate() {
            let ph = &ix.phases[p];
            if !g.is_finite() || g + 1e-9 < ph.min_green {
                return Err(coord_err(
                    &ix,
                    format!(
                        "green {g} s of phase '{}' cannot hold its minimum green {} s",
                        ph.name, ph.min_green
                    ),
                ));
            }
        }
        let clear: f64 = (0..np)
            .map(|i| clearance_s(&ix, order[i], order[(i + 1) % np]))
            .sum();
        let mut greens = params.greens.clone();
        if let Some(c) = params.cycle_s {
            if !c.is_finite() || c <= 0.0 {
                return Err(coord_err(
                    &ix,
                    format!("cycle_s must be finite and > 0 (got {c})"),
                ));
            }
            let mins: f64 = ix.phases.iter().map(|ph| ph.min_green).sum();
            let spare = c - clear - mins;
            if spare < -1e-9 {
                return Err(coord_err(
                    &ix,
                    format!(
                        "cycle_s {c} s cannot hold the minimum greens ({mins:.1} s) plus clearances ({clear:.1} s)"
                    ),
                ));
            }
            let extra: f64 = (0..np).map(|p| greens[p] - ix.phases[p].min_green).sum();
            for (p, g) in greens.iter_mut().enumerate() {
                let min = ix.phases[p].min_green;
                *g = if extra > 1e-9 {
                    min + (*g - min) * spare.max(0.0) / extra
                } else if p == order[0] {
                    min + spare.max(0.0)
                } else {
                    min
                };
            }
        }
        for (p, &g) in greens.iter().enumerate() {
            let ph = &ix.phases[p];
            if g > ph.max_green + 1e-9 {
                return Err(coord_err(
                    &ix,
                    format!(
                        "planned green {g:.1} s of phase '{}' exceeds its maximum green {} s",
                        ph.name, ph.max_green
                    ),
                ));
            }
        }
        let mut starts = vec![0.0; np];
        let mut force_offs = vec![0.0; np];
        let mut t = 0.0;
        for i in 0..np {
            let p = order[i];
            starts[p] = t;
            t += greens[p];
            force_offs[p] = t;
            t += clearance_s(&ix, p, order[(i + 1) % np]);
        }
        Ok(CoordActuatedController {
            ix,
            params,
            cycle: t,
            greens,
            starts,
            force_offs,
            demand: vec![0.0; np],
            calls: vec![false; np],
            order,
            lanes,
            served: vec![None; np],
        })
    }

    /// The coordinated phase (`order[0]`).
    pub fn coordinated(&self) -> usize {
        self.order[0]
    }

    /// The service order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// (cycle index, position in the cycle) of clock time `now_s`.
    pub fn position(&self, now_s: f64) -> (i64, f64) {
        let u = now_s - self.params.offset_s;
        let n = (u / self.cycle).floor();
        (n as i64, u - n * self.cycle)
    }

    fn gaps_out(&self, d: &DetectorState, p: usize) -> bool {
        phase_expected(&self.ix, d, p) < self.params.discharge.gap_out_threshold(self.lanes[p])
    }

    /// The next phase after `cur` in the order that is called, not yet served in cycle
    /// `n`, and can show its minimum green after the clearance from `cur` before its
    /// force-off (+ the start tolerance); else the coordinated phase.
    fn next_phase(&self, cur: usize, n: i64, pos: f64) -> usize {
        let i = self.order.iter().position(|&q| q == cur).unwrap_or(0);
        for &k in &self.order[i + 1..] {
            let start = pos + clearance_s(&self.ix, cur, k);
            if self.calls[k]
                && self.served[k] != Some(n)
                && start + self.ix.phases[k].min_green
                    <= self.force_offs[k] + self.params.start_tolerance_s + 1e-6
            {
                return k;
            }
        }
        self.order[0]
    }

    /// Decide (`expected` is read as in [`CyclicGapController::decide`]).
    pub fn decide(&mut self, st: &Status, d: &DetectorState) -> Option<usize> {
        let ix = &*self.ix;
        phase_calls(
            ix,
            &self.params.discharge,
            d,
            &mut self.demand,
            &mut self.calls,
        );
        if st.interval != Interval::Green {
            return None;
        }
        let cur = st.phase;
        let (n, pos) = self.position(st.now_s);
        self.served[cur] = Some(n);
        if st.elapsed_s < ix.phases[cur].min_green {
            return None;
        }
        let coord = self.order[0];
        let end = self.force_offs[coord];
        let target = if cur == coord {
            // (1e-6 s: clock times in ms vs positions summed from greens and clearances)
            if pos + 1e-6 < self.params.coord_hold * end
                || (pos + 1e-6 < end && !self.gaps_out(d, cur))
            {
                cur // the band, then while it discharges efficiently
            } else {
                self.next_phase(cur, n, pos)
            }
        } else if pos + 1e-6 < end {
            coord // the coordinated window has begun
        } else if pos + 1e-6 >= self.force_offs[cur] || self.gaps_out(d, cur) {
            self.next_phase(cur, n, pos)
        } else {
            cur
        };
        (target != cur).then_some(target)
    }

    pub fn decide_checked(&mut self, st: &Status, d: &DetectorState) -> CoreResult<Decision> {
        d.validate(&self.ix)?;
        require_expected(d, "coordinated-actuated")?;
        if st.phase >= self.ix.n_phases() || !st.now_s.is_finite() {
            return Err(CoreError::Signal(format!(
                "intersection '{}': phase {} at time {} is not a valid status",
                self.ix.id, st.phase, st.now_s
            )));
        }
        let target = self.decide(st, d);
        Ok(Decision {
            target,
            pressures: self.demand.clone(),
            calls: self.calls.clone(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Fixed-time (coordinated) and adaptive plan following

/// Follows fixed greens in the cyclic order, locked to the clock: phase `order[0]`'s green
/// starts at `offset` (mod cycle). A green ends when the clock leaves its window; a phase
/// that arrives early in its window holds until the window ends, so a controller that
/// starts out of step converges onto the schedule.
#[derive(Debug, Clone)]
pub struct FixedTimeController {
    pub ix: Arc<Intersection>,
    pub greens: Vec<f64>,
    pub cycle: f64,
    pub offset: f64,
    starts: Vec<f64>,
}

impl FixedTimeController {
    pub fn new(ix: Arc<Intersection>, greens: &[f64], offset: f64) -> CoreResult<Self> {
        if greens.len() != ix.n_phases() {
            return Err(CoreError::Signal(format!(
                "intersection '{}': plan has {} greens, expected {}",
                ix.id,
                greens.len(),
                ix.n_phases()
            )));
        }
        for (p, &g) in greens.iter().enumerate() {
            let ph = &ix.phases[p];
            if !g.is_finite() || g + 1e-9 < ph.min_green || g > ph.max_green + 1e-9 {
                return Err(CoreError::Signal(format!(
                    "intersection '{}': plan green {g} s of phase '{}' is outside [{}, {}]",
                    ix.id, ph.name, ph.min_green, ph.max_green
                )));
            }
        }
        if !offset.is_finite() {
            return Err(CoreError::Signal(format!(
                "intersection '{}': offset must be finite",
                ix.id
            )));
        }
        let mut starts = vec![0.0; ix.n_phases()];
        let mut t = 0.0;
        for &p in &ix.order {
            starts[p] = t;
            t += greens[p] + ix.phases[p].yellow + ix.phases[p].all_red;
        }
        Ok(FixedTimeController {
            greens: greens.to_vec(),
            cycle: t,
            offset,
            starts,
            ix,
        })
    }

    pub fn from_plan(ix: Arc<Intersection>, plan: &Plan, offset: f64) -> CoreResult<Self> {
        Self::new(ix, &plan.greens, offset)
    }

    pub fn decide(&self, st: &Status) -> Option<usize> {
        if st.interval != Interval::Green {
            return None;
        }
        let p = st.phase;
        let c = self.cycle;
        let pos = (st.now_s - self.offset).rem_euclid(c);
        let since_end = (pos - (self.starts[p] + self.greens[p])).rem_euclid(c);
        let off_window = c - self.greens[p];
        if since_end < off_window * 0.5 {
            Some(self.ix.next_in_order(p))
        } else {
            None
        }
    }
}

/// Follows the plan of an [`AdaptivePlanner`] and re-plans once per cycle (when the first
/// phase of the order starts) from the arrivals counted over the cycle.
#[derive(Debug, Clone)]
pub struct AdaptiveFollower {
    pub planner: AdaptivePlanner,
    pub plan: Plan,
    counts: Vec<f64>,
    cycle_start: f64,
    was_first_green: bool,
}

impl AdaptiveFollower {
    pub fn new(
        ix: Arc<Intersection>,
        params: AdaptiveParams,
        initial_flows: &[f64],
    ) -> CoreResult<Self> {
        let mut planner = AdaptivePlanner::new(ix.clone(), params)?;
        let plan = planner.update(initial_flows)?;
        Ok(AdaptiveFollower {
            planner,
            plan,
            counts: vec![0.0; ix.n_movements()],
            cycle_start: 0.0,
            was_first_green: true,
        })
    }

    pub fn decide(&mut self, st: &Status, d: Option<&DetectorState>) -> CoreResult<Option<usize>> {
        let ix = self.planner.ix.clone();
        if let Some(a) = d.and_then(|d| d.arrivals) {
            for (c, x) in self.counts.iter_mut().zip(a) {
                *c += x;
            }
        }
        let first = ix.order[0];
        let first_green = st.interval == Interval::Green && st.phase == first;
        if first_green && !self.was_first_green {
            let dur = st.now_s - self.cycle_start;
            if dur > 0.0 {
                let flows: Vec<f64> = self.counts.iter().map(|c| c * 3600.0 / dur).collect();
                self.plan = self.planner.update(&flows)?;
            }
            self.counts.iter_mut().for_each(|c| *c = 0.0);
            self.cycle_start = st.now_s;
        }
        self.was_first_green = first_green;
        if st.interval == Interval::Green && st.elapsed_s >= self.plan.greens[st.phase] {
            return Ok(Some(ix.next_in_order(st.phase)));
        }
        Ok(None)
    }
}

// ---------------------------------------------------------------------------------------
// The composite a simulation steps every second

#[derive(Debug, Clone)]
pub enum Strategy {
    /// Requests come from the caller.
    Manual,
    Fixed(FixedTimeController),
    Adaptive(Box<AdaptiveFollower>),
    MaxPressure(MaxPressureController),
    PressureActuated(PressureActuatedController),
    CyclicGap(CyclicGapController),
    DualRing(Box<DualRingController>),
    CoordActuated(Box<CoordActuatedController>),
}

/// A controller strategy driving the safety state machine.
#[derive(Debug, Clone)]
pub struct SignalController {
    pub machine: SignalMachine,
    pub strategy: Strategy,
    pub last_request: Option<usize>,
}

impl SignalController {
    pub fn new(
        ix: Arc<Intersection>,
        strategy: Strategy,
        initial_phase: usize,
    ) -> CoreResult<Self> {
        let machine = SignalMachine::new(ix, initial_phase)?;
        Ok(SignalController {
            machine,
            strategy,
            last_request: None,
        })
    }

    pub fn intersection(&self) -> &Arc<Intersection> {
        self.machine.intersection()
    }

    /// Advance `dt_s`, let the strategy decide from `det`, and apply its request through
    /// the machine. `manual` is the request for [`Strategy::Manual`].
    pub fn step(
        &mut self,
        dt_s: f64,
        det: Option<&DetectorState>,
        manual: Option<usize>,
    ) -> CoreResult<Status> {
        if let Some(d) = det {
            d.validate(self.machine.intersection())?;
        }
        self.machine.advance(dt_s)?;
        let st = self.machine.status();
        let (req, calls): (Option<usize>, Option<&[bool]>) = match &mut self.strategy {
            Strategy::Manual => (manual, None),
            Strategy::Fixed(c) => (c.decide(&st), None),
            Strategy::Adaptive(c) => (c.decide(&st, det)?, None),
            Strategy::MaxPressure(c) => (c.decide(&st, need_detector(det)?), Some(&c.calls[..])),
            Strategy::PressureActuated(c) => {
                (c.decide(&st, need_detector(det)?), Some(&c.calls[..]))
            }
            Strategy::CyclicGap(c) => {
                let d = need_expected(det, "cyclic gap")?;
                (c.decide(&st, d), Some(&c.calls[..]))
            }
            Strategy::DualRing(c) => {
                let d = need_expected(det, "dual ring")?;
                (c.decide(&st, d), Some(&c.calls[..]))
            }
            Strategy::CoordActuated(c) => {
                let d = need_expected(det, "coordinated-actuated")?;
                (c.decide(&st, d), Some(&c.calls[..]))
            }
        };
        self.last_request = req;
        self.machine.apply(req, calls)?;
        Ok(self.machine.status())
    }
}

fn need_detector<'s, 'a>(d: Option<&'s DetectorState<'a>>) -> CoreResult<&'s DetectorState<'a>> {
    d.ok_or_else(|| {
        CoreError::Input(
            "this controller needs detector state (queue, approaching) every step".into(),
        )
    })
}

/// The detector state of a discharge controller, which also needs `expected`.
fn need_expected<'s, 'a>(
    d: Option<&'s DetectorState<'a>>,
    controller: &str,
) -> CoreResult<&'s DetectorState<'a>> {
    let d = need_detector(d)?;
    require_expected(d, controller)?;
    Ok(d)
}

// ---------------------------------------------------------------------------------------
// Timing helpers shared by the criterion bench and `engine._core.bench_decisions`.

struct XorShift(u64);
impl XorShift {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Random detector states for benchmarks: `k` states of `n` movements, flattened.
pub fn random_states(n: usize, k: usize, seed: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut r = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut q = Vec::with_capacity(n * k);
    let mut a = Vec::with_capacity(n * k);
    let mut g = Vec::with_capacity(n * k);
    for _ in 0..n * k {
        q.push((r.next_f64() * 20.0).floor());
        a.push((r.next_f64() * 8.0).floor());
        g.push(r.next_f64() * 10.0);
    }
    (q, a, g)
}

/// Seconds for `n` decisions (max-pressure, or the hybrid) over random states.
pub fn bench_decisions(
    ix: Arc<Intersection>,
    n: usize,
    hybrid: bool,
    seed: u64,
) -> CoreResult<f64> {
    let nm = ix.n_movements();
    let k = 1024;
    let (q, a, g) = random_states(nm, k, seed);
    let mut mp = MaxPressureController::new(
        ix.clone(),
        MaxPressureParams {
            approach_weight: 0.5,
            ..Default::default()
        },
    )?;
    let mut pa = PressureActuatedController::new(ix.clone(), PressureActuatedParams::default())?;
    let t0 = std::time::Instant::now();
    let mut acc = 0usize;
    for i in 0..n {
        let j = i % k;
        let d = DetectorState {
            queue: &q[j * nm..(j + 1) * nm],
            approaching: &a[j * nm..(j + 1) * nm],
            gap_s: Some(&g[j * nm..(j + 1) * nm]),
            downstream: None,
            arrivals: None,
            expected: None,
        };
        let st = Status {
            now_s: i as f64,
            phase: i % ix.n_phases(),
            next_phase: None,
            interval: Interval::Green,
            elapsed_s: 10.0 + (i % 50) as f64,
            remaining_s: 0.0,
            preempting: false,
            changed: false,
            held_by_min_green: false,
        };
        let r = if hybrid {
            pa.decide(&st, &d)
        } else {
            mp.decide(&st, &d)
        };
        acc += r.unwrap_or(0);
    }
    let dt = t0.elapsed().as_secs_f64();
    std::hint::black_box(acc);
    Ok(dt)
}

/// Seconds for `n` adaptive re-plans over random flows.
pub fn bench_replans(ix: Arc<Intersection>, n: usize, seed: u64) -> CoreResult<f64> {
    let nm = ix.n_movements();
    let k = 256;
    let (q, _, _) = random_states(nm, k, seed);
    let flows: Vec<f64> = q.iter().map(|x| x * 40.0).collect();
    let mut ap = AdaptivePlanner::new(ix, AdaptiveParams::default())?;
    let t0 = std::time::Instant::now();
    let mut acc = 0.0;
    for i in 0..n {
        let j = i % k;
        acc += ap.update(&flows[j * nm..(j + 1) * nm])?.cycle;
    }
    let dt = t0.elapsed().as_secs_f64();
    std::hint::black_box(acc);
    Ok(dt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::model::FourArmOptions;

    fn green(phase: usize, elapsed_s: f64) -> Status {
        Status {
            now_s: 100.0,
            phase,
            next_phase: None,
            interval: Interval::Green,
            elapsed_s,
            remaining_s: 0.0,
            preempting: false,
            changed: false,
            held_by_min_green: false,
        }
    }

    // movements: N_L N_T N_R E_L E_T E_R S_L S_T S_R W_L W_T W_R; phases NS_T NS_L EW_T EW_L
    #[test]
    fn cyclic_gap_gaps_out_skips_uncalled_and_caps_lefts() {
        let ix =
            Arc::new(Intersection::standard_four_arm("t", &FourArmOptions::default()).unwrap());
        let mut c = CyclicGapController::new(ix.clone(), CyclicGapParams::default()).unwrap();
        let mut q = vec![0.0; 12];
        let a = vec![0.0; 12];
        let mut e = vec![0.0; 12];
        q[4] = 3.0; // E_T waits
        let det = |q: &[f64], e: &[f64]| -> (Vec<f64>, Vec<f64>) { (q.to_vec(), e.to_vec()) };
        // NS_T has 6 lanes: threshold 0.2 × 0.5 × 6 × 6 = 3.6 vehicles within 6 s
        e[1] = 4.0;
        q[1] = 4.0;
        let (qq, ee) = det(&q, &e);
        let d = DetectorState {
            queue: &qq,
            approaching: &a,
            gap_s: None,
            downstream: None,
            arrivals: None,
            expected: Some(&ee),
        };
        assert_eq!(
            c.decide(&green(0, 15.0), &d),
            None,
            "efficient discharge holds"
        );
        assert_eq!(
            c.decide(&green(0, 60.0), &d),
            Some(2),
            "max green (through)"
        );
        assert_eq!(c.decide(&green(0, 5.0), &d), None, "min green");
        e[1] = 3.0;
        let (qq, ee) = det(&q, &e);
        let d = DetectorState {
            queue: &qq,
            approaching: &a,
            expected: Some(&ee),
            ..d
        };
        // NS_L has no demand: skipped in the cyclic order
        assert_eq!(c.decide(&green(0, 15.0), &d), Some(2));
        // a left phase is capped at 30 s even while it discharges efficiently
        let mut q2 = q.clone();
        q2[0] = 5.0;
        let mut e2 = e.clone();
        e2[0] = 5.0;
        let d2 = DetectorState {
            queue: &q2,
            approaching: &a,
            expected: Some(&e2),
            ..d
        };
        assert_eq!(c.decide(&green(1, 29.0), &d2), None);
        assert_eq!(c.decide(&green(1, 30.0), &d2), Some(2));
        // nobody else called: rest in green although nothing discharges
        let z = vec![0.0; 12];
        let d3 = DetectorState {
            queue: &z,
            approaching: &z,
            expected: Some(&z),
            ..d
        };
        assert_eq!(c.decide(&green(0, 90.0), &d3), None);
        // the checked path requires `expected`
        let d4 = DetectorState {
            expected: None,
            ..d
        };
        assert!(c.decide_checked(&green(0, 15.0), &d4).is_err());
    }

    #[test]
    fn both_discharge_controllers_reject_each_bad_discharge_parameter() {
        let four = FourArmOptions::default();
        let ix = Arc::new(Intersection::standard_four_arm("t", &four).unwrap());
        let dual = FourArmOptions {
            dual_ring: true,
            ..four
        };
        let ix_dr = Arc::new(Intersection::standard_four_arm("d", &dual).unwrap());
        let names = [
            "max_green_through_s",
            "max_green_left_s",
            "horizon_s",
            "efficiency",
            "lane_sat_vps",
            "min_call_veh",
        ];
        for (k, name) in names.iter().enumerate() {
            let bad = |mut p: DischargeParams| {
                let f = [
                    &mut p.max_green_through_s,
                    &mut p.max_green_left_s,
                    &mut p.horizon_s,
                    &mut p.efficiency,
                    &mut p.lane_sat_vps,
                    &mut p.min_call_veh,
                ];
                *f.into_iter().nth(k).unwrap() = -1.0;
                p
            };
            let cg = CyclicGapParams {
                discharge: bad(CyclicGapParams::default().discharge),
                ..Default::default()
            };
            let e = CyclicGapController::new(ix.clone(), cg).unwrap_err();
            assert!(e.to_string().contains(&format!("parameter {name} ")), "{e}");
            let dr = DualRingParams {
                discharge: bad(DualRingParams::default().discharge),
                ..Default::default()
            };
            let e = DualRingController::new(ix_dr.clone(), dr).unwrap_err();
            assert!(e.to_string().contains(&format!("parameter {name} ")), "{e}");
        }
        assert!(CyclicGapController::new(ix, CyclicGapParams::default()).is_ok());
        assert!(DualRingController::new(ix_dr, DualRingParams::default()).is_ok());
    }

    fn coord_ix() -> Arc<Intersection> {
        let o = FourArmOptions {
            yellow: Some(3.4),
            all_red: Some(2.0),
            min_green: 6.0,
            ..FourArmOptions::default()
        };
        Arc::new(Intersection::standard_four_arm("c", &o).unwrap())
    }

    /// phases NS_T NS_L EW_T EW_L; order EW_T, EW_L, NS_T, NS_L; greens 14 6 20 6 with
    /// 5.4 s clearances: EW_T 0–20, EW_L 25.4–31.4, NS_T 36.8–50.8, NS_L 56.2–62.2, cycle 67.6
    fn coord(hold: f64) -> CoordActuatedController {
        let p = CoordActuatedParams {
            order: Some(vec![2, 3, 0, 1]),
            coord_hold: hold,
            start_tolerance_s: 0.0,
            ..CoordActuatedParams::new(vec![14.0, 6.0, 20.0, 6.0], 7.0)
        };
        CoordActuatedController::new(coord_ix(), p).unwrap()
    }

    /// Green of `phase` for `elapsed` s at position `pos` of cycle 3 (offset 7 s).
    fn at(c: &CoordActuatedController, phase: usize, elapsed: f64, pos: f64) -> Status {
        Status {
            now_s: 7.0 + 3.0 * c.cycle + pos,
            ..green(phase, elapsed)
        }
    }

    /// Queue = expected = `v[k]` on the through movement (or left for lefts) of phase k.
    /// `(phase, elapsed, pos)`: green of `phase` for `elapsed` s at position `pos` of cycle 3.
    fn coord_decide(
        c: &mut CoordActuatedController,
        (phase, elapsed, pos): (usize, f64, f64),
        queue: [f64; 4],
        expected: [f64; 4],
    ) -> Option<usize> {
        let movement = [1, 0, 4, 3]; // N_T, N_L, E_T, E_L
        let (mut q, mut e) = (vec![0.0; 12], vec![0.0; 12]);
        for k in 0..4 {
            q[movement[k]] = queue[k];
            e[movement[k]] = expected[k];
        }
        let z = vec![0.0; 12];
        let d = discharge_state_for_test(&q, &z, &e);
        let st = at(c, phase, elapsed, pos);
        c.decide_checked(&st, &d).unwrap().target
    }

    fn discharge_state_for_test<'a>(q: &'a [f64], a: &'a [f64], e: &'a [f64]) -> DetectorState<'a> {
        DetectorState {
            queue: q,
            approaching: a,
            gap_s: None,
            downstream: None,
            arrivals: None,
            expected: Some(e),
        }
    }

    #[test]
    fn coord_actuated_lays_out_the_cycle_with_real_clearances() {
        let c = coord(0.75);
        assert!((c.cycle - 67.6).abs() < 1e-9, "{}", c.cycle);
        assert_eq!(c.coordinated(), 2);
        let want = [(36.8, 50.8), (56.2, 62.2), (0.0, 20.0), (25.4, 31.4)];
        for (p, (s, e)) in want.iter().enumerate() {
            assert!((c.starts[p] - s).abs() < 1e-9 && (c.force_offs[p] - e).abs() < 1e-9);
        }
        // a common cycle: the greens above their minimum shrink to make room for clearances
        let p = CoordActuatedParams {
            order: Some(vec![2, 3, 0, 1]),
            cycle_s: Some(56.0),
            ..CoordActuatedParams::new(vec![9.0, 6.0, 15.0, 6.0], 0.0)
        };
        let c = CoordActuatedController::new(coord_ix(), p).unwrap();
        assert!((c.cycle - 56.0).abs() < 1e-9);
        let g = &c.greens;
        assert!((g.iter().sum::<f64>() - (56.0 - 4.0 * 5.4)).abs() < 1e-9);
        assert!((g[1] - 6.0).abs() < 1e-9 && (g[3] - 6.0).abs() < 1e-9);
        assert!(
            ((g[0] - 6.0) / (g[2] - 6.0) - 3.0 / 9.0).abs() < 1e-9,
            "{g:?}"
        );
    }

    #[test]
    fn coord_actuated_holds_the_band_then_gaps_out() {
        let mut c = coord(0.75);
        let busy = [5.0, 5.0, 9.0, 5.0];
        let idle = [5.0, 5.0, 0.0, 5.0]; // the coordinated phase discharges nothing
                                         // the band (75% of 20 s): held although nothing discharges and all others wait
        assert_eq!(coord_decide(&mut c, (2, 10.0, 10.0), busy, idle), None);
        assert_eq!(coord_decide(&mut c, (2, 14.0, 14.9), busy, idle), None);
        // after the band it gaps out to the next called phase of the order
        assert_eq!(coord_decide(&mut c, (2, 15.0, 15.1), busy, idle), Some(3));
        // efficient discharge holds it until the planned end, then it hands over
        assert_eq!(coord_decide(&mut c, (2, 19.0, 19.9), busy, busy), None);
        assert_eq!(coord_decide(&mut c, (2, 20.0, 20.0), busy, busy), Some(3));
        // coord_hold 1: held through the whole planned green
        let mut c1 = coord(1.0);
        assert_eq!(coord_decide(&mut c1, (2, 19.0, 19.9), busy, idle), None);
        // coord_hold 0: gaps out right after its minimum green
        let mut c0 = coord(0.0);
        assert_eq!(coord_decide(&mut c0, (2, 6.0, 6.0), busy, idle), Some(3));
        assert_eq!(
            coord_decide(&mut c0, (2, 5.0, 5.0), busy, idle),
            None,
            "min green"
        );
    }

    #[test]
    fn coord_actuated_skips_uncalled_and_unfitting_phases() {
        let mut c = coord(0.75);
        let idle = [0.0; 4];
        // EW_L uncalled: NS_T next
        assert_eq!(
            coord_decide(&mut c, (2, 16.0, 16.0), [5.0, 5.0, 0.0, 0.0], idle),
            Some(0)
        );
        // at 27 s EW_L (force-off 31.4) cannot show 6 s after a 5.4 s clearance: NS_T
        assert_eq!(
            coord_decide(&mut c, (2, 27.0, 27.0), [5.0, 5.0, 0.0, 5.0], idle),
            Some(0)
        );
        // 20.9 s: 0.9 s too late for EW_L strictly; a 1 s start tolerance lets it start
        let late = [0.0, 0.0, 0.0, 5.0];
        assert_eq!(coord_decide(&mut c, (2, 20.9, 20.9), late, idle), None);
        let mut tol = CoordActuatedController::new(
            coord_ix(),
            CoordActuatedParams {
                start_tolerance_s: 1.0,
                ..c.params.clone()
            },
        )
        .unwrap();
        assert_eq!(coord_decide(&mut tol, (2, 20.9, 20.9), late, idle), Some(3));
        assert_eq!(coord_decide(&mut tol, (2, 21.1, 21.1), late, idle), None);
        // at 20 s it fits (20 + 5.4 + 6 ≤ 31.4)
        assert_eq!(
            coord_decide(&mut c, (2, 20.0, 20.0), [0.0, 0.0, 0.0, 5.0], idle),
            Some(3)
        );
        // nothing fits late in the cycle: rest in the coordinated green
        assert_eq!(
            coord_decide(&mut c, (2, 50.0, 57.0), [5.0, 5.0, 0.0, 5.0], idle),
            None
        );
        // nobody called: rest in green
        assert_eq!(coord_decide(&mut c, (2, 30.0, 30.0), idle, idle), None);
    }

    #[test]
    fn coord_actuated_forces_off_and_returns_early() {
        let mut c = coord(0.75);
        let busy = [9.0, 5.0, 5.0, 5.0];
        // NS_T discharging: held before its force-off (50.8)
        assert_eq!(coord_decide(&mut c, (0, 10.0, 46.8), busy, busy), None);
        // forced off at its planned end, NS_L next (50.8 + 5.4 + 6 = 62.2 fits)
        assert_eq!(coord_decide(&mut c, (0, 14.0, 50.8), busy, busy), Some(1));
        // NS_L uncalled: unused time returns to the coordinated phase
        let no_left = [9.0, 0.0, 5.0, 5.0];
        assert_eq!(
            coord_decide(&mut c, (0, 14.0, 50.8), no_left, busy),
            Some(2)
        );
        // early return: NS_T gaps out at 40 s, nothing else called
        let idle = [1.0, 0.0, 5.0, 0.0];
        assert_eq!(
            coord_decide(&mut c, (0, 8.0, 44.8), idle, [0.0; 4]),
            Some(2)
        );
        // NS_T was served in this cycle: the coordinated green does not hand it back
        let waiting = [9.0, 0.0, 0.0, 0.0];
        assert_eq!(
            coord_decide(&mut c, (2, 8.0, 53.0), waiting, [0.0; 4]),
            None
        );
        // ... but it is served again in the next cycle
        let next = c.cycle + 25.0;
        assert_eq!(
            coord_decide(&mut c, (2, 8.0, next), waiting, [0.0; 4]),
            Some(0)
        );
        // a side green still running when the coordinated window begins goes back at once
        assert_eq!(coord_decide(&mut c, (1, 8.0, 1.0), busy, busy), Some(2));
    }

    #[test]
    fn coord_actuated_rejects_bad_plans() {
        let ix = coord_ix();
        let base = || CoordActuatedParams {
            order: Some(vec![2, 3, 0, 1]),
            ..CoordActuatedParams::new(vec![14.0, 6.0, 20.0, 6.0], 7.0)
        };
        let err = |p: CoordActuatedParams| {
            CoordActuatedController::new(ix.clone(), p)
                .unwrap_err()
                .to_string()
        };
        let e = err(CoordActuatedParams {
            greens: vec![14.0, 6.0, 20.0],
            ..base()
        });
        assert!(
            e.contains("intersection 'c'") && e.contains("greens has 3 entries"),
            "{e}"
        );
        for off in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(err(CoordActuatedParams {
                offset_s: off,
                ..base()
            })
            .contains("offset_s"));
        }
        for c in [-56.0, 0.0, f64::NAN] {
            assert!(err(CoordActuatedParams {
                cycle_s: Some(c),
                ..base()
            })
            .contains("cycle_s"));
        }
        let e = err(CoordActuatedParams {
            cycle_s: Some(40.0),
            ..base()
        });
        assert!(e.contains("cannot hold the minimum greens"), "{e}");
        for h in [-0.1, 1.5, f64::NAN] {
            assert!(err(CoordActuatedParams {
                coord_hold: h,
                ..base()
            })
            .contains("coord_hold"));
        }
        for o in [vec![2, 3, 0], vec![2, 2, 0, 1], vec![2, 3, 0, 4]] {
            assert!(err(CoordActuatedParams {
                order: Some(o),
                ..base()
            })
            .contains("permutation"));
        }
        let e = err(CoordActuatedParams {
            greens: vec![14.0, 5.0, 20.0, 6.0],
            ..base()
        });
        assert!(
            e.contains("phase 'NS_L' cannot hold its minimum green 6"),
            "{e}"
        );
        let e = err(CoordActuatedParams {
            greens: vec![14.0, 6.0, 80.0, 6.0],
            ..base()
        });
        assert!(e.contains("exceeds its maximum green"), "{e}");
        let e = err(CoordActuatedParams {
            start_tolerance_s: -1.0,
            ..base()
        });
        assert!(e.contains("parameter start_tolerance_s "), "{e}");
        let mut bad = base();
        bad.discharge.efficiency = -1.0;
        assert!(err(bad).contains("parameter efficiency "));
        assert!(err(CoordActuatedParams {
            phase_lanes: Some(vec![1.0]),
            ..base()
        })
        .contains("phase_lanes"));
        // `expected` is required on the checked path
        let mut c = coord(0.75);
        let z = vec![0.0; 12];
        let d = DetectorState {
            expected: None,
            ..discharge_state_for_test(&z, &z, &z)
        };
        let e = c
            .decide_checked(&at(&c, 2, 10.0, 10.0), &d)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("coordinated-actuated controller needs detector 'expected'"),
            "{e}"
        );
    }
}
