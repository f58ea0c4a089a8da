//! Fixed-time plans (Webster, HCM critical-lane) and cycle-by-cycle adaptive re-planning.
//!
//! Lost time per phase l = l1 + (Y + AR) − e (start-up lost time l1, extension e); the
//! effective green g = G − l1 + e. Greens are split by critical flow ratios (which equalises
//! the degree of saturation of the critical movements), then held inside each phase's
//! [min, max] green with the remainder redistributed. Every plan satisfies the phase
//! minimum greens and the clearance intervals of the validated [`Intersection`].

use super::model::Intersection;
use crate::error::{CoreError, CoreResult};

/// One timing plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub method: &'static str,
    pub cycle: f64,
    /// Displayed green per phase (indexed like `Intersection::phases`).
    pub greens: Vec<f64>,
    pub effective_greens: Vec<f64>,
    /// Critical flow ratio y per phase.
    pub flow_ratios: Vec<f64>,
    /// Degree of saturation (v/c) of each phase's critical movement.
    pub phase_vc: Vec<f64>,
    /// Index of each phase's critical movement (None when the phase has no vehicle flow).
    pub critical_movement: Vec<Option<usize>>,
    pub lost_time: f64,
    /// Sum of critical flow ratios.
    pub y_total: f64,
    /// Unbounded optimum cycle of the method (may lie outside the cycle bounds; inf when
    /// the intersection is oversaturated).
    pub cycle_unbounded: f64,
    /// Per movement: v/c and average delay (s/veh).
    pub movement_vc: Vec<f64>,
    pub movement_delay: Vec<f64>,
}

impl Plan {
    /// Flow-weighted average delay per approach: (approach, delay s/veh, flow veh/h).
    pub fn approach_delays(&self, ix: &Intersection, flows: &[f64]) -> Vec<(String, f64, f64)> {
        let mut out: Vec<(String, f64, f64, usize)> = Vec::new();
        for (m, mv) in ix.movements.iter().enumerate() {
            if mv.is_pedestrian() {
                continue;
            }
            let pos = match out.iter().position(|o| o.0 == mv.approach) {
                Some(p) => p,
                None => {
                    out.push((mv.approach.clone(), 0.0, 0.0, 0));
                    out.len() - 1
                }
            };
            let d = self.movement_delay[m];
            out[pos].1 += d * flows[m];
            out[pos].2 += flows[m];
            out[pos].3 += 1;
        }
        out.into_iter()
            .map(|(a, wd, f, _)| (a, if f > 0.0 { wd / f } else { 0.0 }, f))
            .collect()
    }
}

/// Negative / NaN flows are bad input: a clear error naming the intersection.
pub fn validate_flows(ix: &Intersection, flows: &[f64]) -> CoreResult<()> {
    if flows.len() != ix.n_movements() {
        return Err(CoreError::Signal(format!(
            "intersection '{}': expected {} movement flows, got {}",
            ix.id,
            ix.n_movements(),
            flows.len()
        )));
    }
    for (m, &f) in flows.iter().enumerate() {
        if !f.is_finite() || f < 0.0 {
            return Err(CoreError::Signal(format!(
                "intersection '{}': flow of movement '{}' must be finite and ≥ 0 veh/h (got {f})",
                ix.id, ix.movements[m].id
            )));
        }
    }
    Ok(())
}

/// Critical flow ratio per phase: max over its vehicle movements of v/s.
fn flow_ratios(ix: &Intersection, flows: &[f64], phf: f64) -> (Vec<f64>, Vec<Option<usize>>) {
    let mut ys = vec![0.0; ix.n_phases()];
    let mut crit = vec![None; ix.n_phases()];
    for (p, ph) in ix.phases.iter().enumerate() {
        for &m in &ph.movements {
            let mv = &ix.movements[m];
            if mv.is_pedestrian() {
                continue;
            }
            let y = flows[m] / phf / mv.sat_flow;
            if crit[p].is_none() || y > ys[p] {
                ys[p] = y;
                crit[p] = Some(m);
            }
        }
    }
    (ys, crit)
}

fn total_lost(ix: &Intersection) -> f64 {
    (0..ix.n_phases()).map(|p| ix.phase_lost_time(p)).sum()
}

fn clearance_sum(ix: &Intersection) -> f64 {
    ix.phases.iter().map(|p| p.yellow + p.all_red).sum()
}

/// Shortest and longest cycles the phase bounds allow.
pub fn cycle_limits(ix: &Intersection) -> (f64, f64) {
    let cl = clearance_sum(ix);
    let lo = ix.phases.iter().map(|p| p.min_green).sum::<f64>() + cl;
    let hi = ix.phases.iter().map(|p| p.max_green).sum::<f64>() + cl;
    let lo = lo.max(ix.cycle_min);
    let hi = hi.min(ix.cycle_max).max(lo);
    (lo, hi)
}

/// Split the displayed green time of a cycle in proportion to `weights` inside each
/// phase's [min, max]. Returns the greens; their sum equals `cycle − clearances` unless
/// every phase hit a bound.
pub fn split_greens(ix: &Intersection, cycle: f64, weights: &[f64]) -> Vec<f64> {
    let np = ix.n_phases();
    let avail = cycle - clearance_sum(ix);
    let mut g = vec![0.0; np];
    let mut fixed = vec![false; np];
    let wsum_all: f64 = weights.iter().sum();
    let w: Vec<f64> = if wsum_all > 0.0 {
        weights.to_vec()
    } else {
        vec![1.0; np]
    };
    for _ in 0..=np {
        let left: f64 = avail - (0..np).filter(|&p| fixed[p]).map(|p| g[p]).sum::<f64>();
        let wsum: f64 = (0..np).filter(|&p| !fixed[p]).map(|p| w[p]).sum();
        let free: Vec<usize> = (0..np).filter(|&p| !fixed[p]).collect();
        if free.is_empty() {
            break;
        }
        for &p in &free {
            g[p] = if wsum > 0.0 {
                left * w[p] / wsum
            } else {
                left / free.len() as f64
            };
        }
        // Fix the worst violators (min first: they take time from the others).
        let mut changed = false;
        for &p in &free {
            if g[p] < ix.phases[p].min_green {
                g[p] = ix.phases[p].min_green;
                fixed[p] = true;
                changed = true;
            }
        }
        if !changed {
            for &p in &free {
                if g[p] > ix.phases[p].max_green {
                    g[p] = ix.phases[p].max_green;
                    fixed[p] = true;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    for (p, gp) in g.iter_mut().enumerate() {
        *gp = gp.clamp(ix.phases[p].min_green, ix.phases[p].max_green);
    }
    g
}

/// Webster delay (s/veh) of a movement; HCM uniform + incremental delay when x > 0.95,
/// where Webster's random term diverges.
pub fn movement_delay(cycle: f64, eff_green: f64, flow_vph: f64, sat_flow: f64) -> (f64, f64) {
    let lam = (eff_green / cycle).clamp(1e-6, 1.0);
    let cap = sat_flow * lam;
    let x = if cap > 0.0 {
        flow_vph / cap
    } else {
        f64::INFINITY
    };
    if x <= 0.95 {
        let q = flow_vph / 3600.0;
        let d1 = cycle * (1.0 - lam).powi(2) / (2.0 * (1.0 - lam * x));
        let d2 = if q > 0.0 {
            x * x / (2.0 * q * (1.0 - x))
        } else {
            0.0
        };
        let d3 = if q > 0.0 {
            0.65 * (cycle / (q * q)).cbrt() * x.powf(2.0 + 5.0 * lam)
        } else {
            0.0
        };
        ((d1 + d2 - d3).max(d1 * 0.5), x)
    } else {
        let t = 0.25; // analysis period (h)
        let d1 = 0.5 * cycle * (1.0 - lam).powi(2) / (1.0 - x.min(1.0) * lam);
        let d2 = 900.0 * t * ((x - 1.0) + ((x - 1.0).powi(2) + 4.0 * x / (cap * t)).sqrt());
        (d1 + d2, x)
    }
}

#[allow(clippy::too_many_arguments)]
fn finish(
    ix: &Intersection,
    flows: &[f64],
    method: &'static str,
    cycle_target: f64,
    cycle_unbounded: f64,
    ys: Vec<f64>,
    crit: Vec<Option<usize>>,
    phf: f64,
) -> Plan {
    let greens = split_greens(ix, cycle_target, &ys);
    let cycle: f64 = greens.iter().sum::<f64>() + clearance_sum(ix);
    let c = &ix.clearance;
    let eff: Vec<f64> = greens
        .iter()
        .map(|g| (g - c.startup_lost_s + c.extension_s).max(0.1))
        .collect();
    let n = ix.n_movements();
    let mut mvc = vec![0.0; n];
    let mut mdel = vec![0.0; n];
    for (m, mv) in ix.movements.iter().enumerate() {
        if mv.is_pedestrian() {
            continue;
        }
        let g: f64 = ix.served_by[m]
            .iter()
            .map(|&p| eff[p])
            .sum::<f64>()
            .min(cycle);
        let (d, x) = movement_delay(cycle, g, flows[m] / phf, mv.sat_flow);
        mvc[m] = x;
        mdel[m] = d;
    }
    let phase_vc = (0..ix.n_phases())
        .map(|p| crit[p].map(|m| mvc[m]).unwrap_or(0.0))
        .collect();
    let y_total = ys.iter().sum();
    Plan {
        method,
        cycle,
        greens,
        effective_greens: eff,
        flow_ratios: ys,
        phase_vc,
        critical_movement: crit,
        lost_time: total_lost(ix),
        y_total,
        cycle_unbounded,
        movement_vc: mvc,
        movement_delay: mdel,
    }
}

/// Webster's optimum cycle C0 = (1.5 L + 5) / (1 − Y), bounded by the intersection's cycle
/// range and by what the phase min/max greens allow; greens by critical flow ratios.
pub fn webster(ix: &Intersection, flows: &[f64]) -> CoreResult<Plan> {
    validate_flows(ix, flows)?;
    let (ys, crit) = flow_ratios(ix, flows, 1.0);
    let y: f64 = ys.iter().sum();
    let l = total_lost(ix);
    let c0 = if y < 1.0 {
        (1.5 * l + 5.0) / (1.0 - y)
    } else {
        f64::INFINITY
    };
    let (lo, hi) = cycle_limits(ix);
    let c = c0.clamp(lo, hi);
    Ok(finish(ix, flows, "webster", c, c0, ys, crit, 1.0))
}

/// HCM critical-lane method: C = L / (1 − Σ(v/(PHF·s))_crit / X_target), bounded.
pub fn critical_lane(
    ix: &Intersection,
    flows: &[f64],
    target_vc: f64,
    phf: f64,
) -> CoreResult<Plan> {
    validate_flows(ix, flows)?;
    if !(target_vc.is_finite() && target_vc > 0.0 && target_vc <= 1.5) {
        return Err(CoreError::Signal(format!(
            "intersection '{}': target v/c must lie in (0, 1.5] (got {target_vc})",
            ix.id
        )));
    }
    if !(phf.is_finite() && phf > 0.0 && phf <= 1.0) {
        return Err(CoreError::Signal(format!(
            "intersection '{}': peak-hour factor must lie in (0, 1] (got {phf})",
            ix.id
        )));
    }
    let (ys, crit) = flow_ratios(ix, flows, phf);
    let y: f64 = ys.iter().sum();
    let l = total_lost(ix);
    let c0 = if y < target_vc {
        l / (1.0 - y / target_vc)
    } else {
        f64::INFINITY
    };
    let (lo, hi) = cycle_limits(ix);
    let c = c0.clamp(lo, hi);
    Ok(finish(ix, flows, "hcm_critical_lane", c, c0, ys, crit, phf))
}

/// Parameters of the adaptive planner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveParams {
    /// Exponential smoothing weight of the newest measured flows (0 < α ≤ 1).
    pub alpha: f64,
    /// Largest cycle change from one cycle to the next (s).
    pub max_cycle_change: f64,
    /// Largest change of any phase green from one cycle to the next (s).
    pub max_green_change: f64,
}

impl Default for AdaptiveParams {
    fn default() -> Self {
        AdaptiveParams {
            alpha: 0.4,
            max_cycle_change: 10.0,
            max_green_change: 8.0,
        }
    }
}

/// Cycle-by-cycle re-planning: smoothed flows → Webster cycle → rate-limited cycle →
/// greens balancing the degree of saturation of the critical movements.
#[derive(Debug, Clone)]
pub struct AdaptivePlanner {
    pub ix: std::sync::Arc<Intersection>,
    pub params: AdaptiveParams,
    smoothed: Option<Vec<f64>>,
    last: Option<Plan>,
    pub updates: u64,
}

impl AdaptivePlanner {
    pub fn new(ix: std::sync::Arc<Intersection>, params: AdaptiveParams) -> CoreResult<Self> {
        let bad = |v: f64| !v.is_finite() || v <= 0.0;
        if bad(params.alpha)
            || params.alpha > 1.0
            || bad(params.max_cycle_change)
            || bad(params.max_green_change)
        {
            return Err(CoreError::Signal(format!(
                "intersection '{}': adaptive planner needs 0 < alpha ≤ 1 and positive change limits (got {params:?})",
                ix.id
            )));
        }
        Ok(AdaptivePlanner {
            ix,
            params,
            smoothed: None,
            last: None,
            updates: 0,
        })
    }

    pub fn last_plan(&self) -> Option<&Plan> {
        self.last.as_ref()
    }

    pub fn smoothed_flows(&self) -> Option<&[f64]> {
        self.smoothed.as_deref()
    }

    /// Feed the flows measured over the last cycle (veh/h per movement); get the next plan.
    pub fn update(&mut self, flows: &[f64]) -> CoreResult<Plan> {
        let ix = self.ix.clone();
        validate_flows(&ix, flows)?;
        let a = self.params.alpha;
        let sm: Vec<f64> = match &self.smoothed {
            None => flows.to_vec(),
            Some(prev) => prev
                .iter()
                .zip(flows)
                .map(|(p, f)| (1.0 - a) * p + a * f)
                .collect(),
        };
        let target = webster(&ix, &sm)?;
        let plan = match &self.last {
            None => target,
            Some(prev) => {
                let dc = (target.cycle - prev.cycle)
                    .clamp(-self.params.max_cycle_change, self.params.max_cycle_change);
                let (lo, hi) = cycle_limits(&ix);
                let cycle = (prev.cycle + dc).clamp(lo, hi);
                let (ys, crit) = flow_ratios(&ix, &sm, 1.0);
                let mut p = finish(
                    &ix,
                    &sm,
                    "adaptive",
                    cycle,
                    target.cycle_unbounded,
                    ys,
                    crit,
                    1.0,
                );
                // Rate-limit each green; then give any difference to / take it from the
                // phases still inside their limits so the cycle stays as planned.
                let mg = self.params.max_green_change;
                let mut g: Vec<f64> = p
                    .greens
                    .iter()
                    .zip(&prev.greens)
                    .enumerate()
                    .map(|(i, (n, o))| {
                        n.clamp(o - mg, o + mg)
                            .clamp(ix.phases[i].min_green, ix.phases[i].max_green)
                    })
                    .collect();
                let want: f64 = p.greens.iter().sum();
                for _ in 0..4 {
                    let diff = want - g.iter().sum::<f64>();
                    if diff.abs() < 1e-9 {
                        break;
                    }
                    let room: Vec<f64> = (0..g.len())
                        .map(|i| {
                            let o = prev.greens[i];
                            let ph = &ix.phases[i];
                            if diff > 0.0 {
                                ((o + mg).min(ph.max_green) - g[i]).max(0.0)
                            } else {
                                (g[i] - (o - mg).max(ph.min_green)).max(0.0)
                            }
                        })
                        .collect();
                    let total: f64 = room.iter().sum();
                    if total <= 1e-12 {
                        break;
                    }
                    let share = (diff.abs() / total).min(1.0);
                    for i in 0..g.len() {
                        g[i] += diff.signum() * room[i] * share;
                    }
                }
                // Guarantee the cycle limit: pull every green towards its previous value by
                // the same factor (a convex combination keeps each green inside its bounds
                // and its own change limit).
                let dev: f64 = g.iter().zip(&prev.greens).map(|(a, b)| a - b).sum();
                let mcc = self.params.max_cycle_change;
                if dev.abs() > mcc {
                    let lam = mcc / dev.abs();
                    for (gi, o) in g.iter_mut().zip(&prev.greens) {
                        *gi = o + lam * (*gi - o);
                    }
                }
                p.greens = g;
                p = recompute(&ix, &sm, p);
                p
            }
        };
        self.smoothed = Some(sm);
        self.last = Some(plan.clone());
        self.updates += 1;
        Ok(plan)
    }
}

/// Recompute cycle, effective greens, v/c and delays after the greens were adjusted.
fn recompute(ix: &Intersection, flows: &[f64], mut p: Plan) -> Plan {
    let c = &ix.clearance;
    p.cycle = p.greens.iter().sum::<f64>() + clearance_sum(ix);
    p.effective_greens = p
        .greens
        .iter()
        .map(|g| (g - c.startup_lost_s + c.extension_s).max(0.1))
        .collect();
    for (m, mv) in ix.movements.iter().enumerate() {
        if mv.is_pedestrian() {
            continue;
        }
        let g: f64 = ix.served_by[m]
            .iter()
            .map(|&q| p.effective_greens[q])
            .sum::<f64>()
            .min(p.cycle);
        let (d, x) = movement_delay(p.cycle, g, flows[m], mv.sat_flow);
        p.movement_vc[m] = x;
        p.movement_delay[m] = d;
    }
    p.phase_vc = (0..ix.n_phases())
        .map(|q| {
            p.critical_movement[q]
                .map(|m| p.movement_vc[m])
                .unwrap_or(0.0)
        })
        .collect();
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::model::FourArmOptions;
    use std::sync::Arc;

    fn ix() -> Intersection {
        Intersection::standard_four_arm("t", &FourArmOptions::default()).unwrap()
    }

    fn flows(ix: &Intersection, t: f64, l: f64, r: f64) -> Vec<f64> {
        ix.movements
            .iter()
            .map(|m| match m.turn {
                crate::signal::Turn::Through => t,
                crate::signal::Turn::Left => l,
                crate::signal::Turn::Right => r,
                _ => 0.0,
            })
            .collect()
    }

    #[test]
    fn webster_matches_formula_and_balances_x() {
        let ix = ix();
        let f = flows(&ix, 900.0, 250.0, 150.0);
        let p = webster(&ix, &f).unwrap();
        let l: f64 = (0..4).map(|q| ix.phase_lost_time(q)).sum();
        let y: f64 = p.flow_ratios.iter().sum();
        let c0 = (1.5 * l + 5.0) / (1.0 - y);
        assert!((p.cycle_unbounded - c0).abs() < 1e-9);
        assert!((p.cycle - c0).abs() < 1e-6, "{} vs {c0}", p.cycle);
        // equal degree of saturation on critical movements when no bound binds
        let x0 = p.phase_vc[0];
        for x in &p.phase_vc {
            assert!((x - x0).abs() < 1e-6, "{:?}", p.phase_vc);
        }
        for (q, g) in p.greens.iter().enumerate() {
            assert!(*g >= ix.phases[q].min_green - 1e-9);
        }
    }

    #[test]
    fn oversaturated_uses_cycle_max_and_bad_flows_error() {
        let ix = ix();
        let f = flows(&ix, 3000.0, 1500.0, 500.0);
        let p = webster(&ix, &f).unwrap();
        assert!(p.cycle_unbounded.is_infinite());
        assert!(p.cycle <= ix.cycle_max + 1e-9);
        let mut bad = f.clone();
        bad[3] = f64::NAN;
        let e = webster(&ix, &bad).unwrap_err().to_string();
        assert!(
            e.contains("'t'") && e.contains("N_") || e.contains("E_"),
            "{e}"
        );
        bad[3] = -1.0;
        assert!(webster(&ix, &bad).is_err());
    }

    #[test]
    fn adaptive_is_rate_limited() {
        let ix = Arc::new(ix());
        let mut ap = AdaptivePlanner::new(ix.clone(), AdaptiveParams::default()).unwrap();
        let low = flows(&ix, 300.0, 80.0, 50.0);
        let high = flows(&ix, 1300.0, 350.0, 200.0);
        let p0 = ap.update(&low).unwrap();
        let p1 = ap.update(&high).unwrap();
        assert!(p1.cycle - p0.cycle <= 10.0 + 1e-6 && p1.cycle > p0.cycle);
        for q in 0..4 {
            assert!((p1.greens[q] - p0.greens[q]).abs() <= 8.0 + 1e-6);
        }
    }
}
