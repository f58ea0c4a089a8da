//! The signal state machine: the single place that decides which indication each movement
//! shows. Controllers only *request* a next phase; the machine grants a request when it is
//! safe and otherwise ignores it, so no controller bug can produce an unsafe timeline.
//!
//! Guarantees (checked by the property tests in `rust_core/tests/signal_props.rs`):
//! * the movements showing green or yellow are always pairwise compatible — they are the
//!   movements of one validated phase, plus, during a clearance, only movements that
//!   continue into the next phase;
//! * a green lasts at least its phase's minimum green; only an emergency preemption may end
//!   it earlier, and never before the phase's preemption entry minimum;
//! * every movement that loses green shows yellow for the full yellow time and then red for
//!   the full all-red time before any other movement gains green;
//! * time is kept in integer milliseconds and an interval only ends at a step boundary, so
//!   the indications a caller displays between steps last at least as long as required
//!   (never rounded down).

use std::sync::Arc;

use super::model::Intersection;
use crate::error::{CoreError, CoreResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interval {
    Green,
    Yellow,
    AllRed,
}

impl Interval {
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Green => "green",
            Interval::Yellow => "yellow",
            Interval::AllRed => "all_red",
        }
    }
}

/// Indication of one movement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LightState {
    Red,
    Yellow,
    Green,
}

impl LightState {
    pub fn code(self) -> i8 {
        match self {
            LightState::Red => 0,
            LightState::Yellow => 1,
            LightState::Green => 2,
        }
    }
}

/// What the machine shows after a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Status {
    pub now_s: f64,
    /// The green phase, or the phase being cleared during yellow / all-red.
    pub phase: usize,
    /// The phase that gets green after the current clearance.
    pub next_phase: Option<usize>,
    pub interval: Interval,
    pub elapsed_s: f64,
    /// Yellow / all-red: time left in the interval. Green: time left until the minimum
    /// green is served (0 once the phase may end).
    pub remaining_s: f64,
    pub preempting: bool,
    /// The interval changed in this step.
    pub changed: bool,
    /// A switch request was refused because the minimum green had not been served.
    pub held_by_min_green: bool,
}

pub(crate) fn to_ms(s: f64) -> u64 {
    // Durations are rounded *up* to the millisecond: a constraint is never shortened.
    (s * 1000.0 - 1e-6).ceil().max(0.0) as u64
}

#[derive(Debug, Clone)]
pub struct SignalMachine {
    ix: Arc<Intersection>,
    min_green: Vec<u64>,
    max_green: Vec<u64>,
    yellow: Vec<u64>,
    all_red: Vec<u64>,
    preempt_min: Vec<u64>,
    phase: usize,
    target: usize,
    interval: Interval,
    elapsed: u64,
    now: u64,
    lights: Vec<LightState>,
    preempt: Option<usize>,
    changed: bool,
    held: bool,
    /// Completed greens (phase, duration ms) and switch count, for reporting.
    pub switches: u64,
}

impl SignalMachine {
    /// Start in the green of `initial_phase` (elapsed 0).
    pub fn new(ix: Arc<Intersection>, initial_phase: usize) -> CoreResult<Self> {
        if initial_phase >= ix.n_phases() {
            return Err(CoreError::Signal(format!(
                "intersection '{}': initial phase {initial_phase} does not exist ({} phases)",
                ix.id,
                ix.n_phases()
            )));
        }
        let v = |f: fn(&super::model::Phase) -> f64| {
            ix.phases.iter().map(|p| to_ms(f(p))).collect::<Vec<_>>()
        };
        let mut m = SignalMachine {
            min_green: v(|p| p.min_green),
            max_green: v(|p| p.max_green),
            yellow: v(|p| p.yellow),
            all_red: v(|p| p.all_red),
            preempt_min: v(|p| p.preempt_min_green),
            lights: vec![LightState::Red; ix.n_movements()],
            ix,
            phase: initial_phase,
            target: initial_phase,
            interval: Interval::Green,
            elapsed: 0,
            now: 0,
            preempt: None,
            changed: true,
            held: false,
            switches: 0,
        };
        m.update_lights();
        Ok(m)
    }

    pub fn intersection(&self) -> &Arc<Intersection> {
        &self.ix
    }
    pub fn lights(&self) -> &[LightState] {
        &self.lights
    }
    pub fn phase(&self) -> usize {
        self.phase
    }
    pub fn interval(&self) -> Interval {
        self.interval
    }
    pub fn elapsed_s(&self) -> f64 {
        self.elapsed as f64 / 1000.0
    }
    pub fn now_s(&self) -> f64 {
        self.now as f64 / 1000.0
    }
    pub fn preempting(&self) -> Option<usize> {
        self.preempt
    }

    /// Call an emergency preemption for `phase` (it stays active until [`Self::clear_preempt`]).
    pub fn preempt(&mut self, phase: usize) -> CoreResult<()> {
        if phase >= self.ix.n_phases() {
            return Err(CoreError::Signal(format!(
                "intersection '{}': preemption phase {phase} does not exist",
                self.ix.id
            )));
        }
        self.preempt = Some(phase);
        Ok(())
    }

    /// End the preemption; normal operation resumes (the preempted green still serves its
    /// minimum green before a controller may end it).
    pub fn clear_preempt(&mut self) {
        self.preempt = None;
    }

    pub fn status(&self) -> Status {
        let ms = |x: u64| x as f64 / 1000.0;
        let remaining = match self.interval {
            Interval::Green => self.min_green[self.phase].saturating_sub(self.elapsed),
            Interval::Yellow => self.yellow[self.phase].saturating_sub(self.elapsed),
            Interval::AllRed => self.all_red[self.phase].saturating_sub(self.elapsed),
        };
        Status {
            now_s: ms(self.now),
            phase: self.phase,
            next_phase: if self.interval == Interval::Green {
                None
            } else {
                Some(self.target)
            },
            interval: self.interval,
            elapsed_s: ms(self.elapsed),
            remaining_s: ms(remaining),
            preempting: self.preempt.is_some(),
            changed: self.changed,
            held_by_min_green: self.held,
        }
    }

    /// Advance time by `dt_s` and end a yellow or all-red whose duration is complete
    /// (at most one interval change per step).
    pub fn advance(&mut self, dt_s: f64) -> CoreResult<()> {
        if !dt_s.is_finite() || !(0.0..=86_400.0).contains(&dt_s) {
            return Err(CoreError::Signal(format!(
                "intersection '{}': time step must be finite and within [0, 86400] s (got {dt_s})",
                self.ix.id
            )));
        }
        let dt = (dt_s * 1000.0).round() as u64;
        self.now += dt;
        self.elapsed += dt;
        self.changed = false;
        self.held = false;
        match self.interval {
            Interval::Green => {}
            Interval::Yellow => {
                if self.elapsed >= self.yellow[self.phase] {
                    self.interval = Interval::AllRed;
                    self.elapsed = 0;
                    self.changed = true;
                }
            }
            Interval::AllRed => {
                if self.elapsed >= self.all_red[self.phase] {
                    // A preemption called during the clearance may redirect it, but only to a
                    // phase that contains every movement still green through the clearance.
                    if let Some(p) = self.preempt {
                        if p != self.target && self.continuing().all(|m| self.ix.in_phase(p, m)) {
                            self.target = p;
                        }
                    }
                    self.phase = self.target;
                    self.interval = Interval::Green;
                    self.elapsed = 0;
                    self.changed = true;
                }
            }
        }
        self.update_lights();
        Ok(())
    }

    /// Apply a controller request (`Some(phase)` = switch to it, `None` = keep the current
    /// green). `calls[p]` says whether phase `p` has demand; it is used only when the
    /// maximum green expires (the machine then moves to the next phase in the cyclic order
    /// that has a call; with no call anywhere it rests in green). `None` = every phase calls.
    pub fn apply(&mut self, request: Option<usize>, calls: Option<&[bool]>) -> CoreResult<()> {
        let np = self.ix.n_phases();
        if let Some(p) = request {
            if p >= np {
                return Err(CoreError::Signal(format!(
                    "intersection '{}': requested phase {p} does not exist ({np} phases)",
                    self.ix.id
                )));
            }
        }
        if let Some(c) = calls {
            if c.len() != np {
                return Err(CoreError::Signal(format!(
                    "intersection '{}': expected {np} phase calls, got {}",
                    self.ix.id,
                    c.len()
                )));
            }
        }
        if self.interval != Interval::Green {
            return Ok(()); // clearances always run to completion
        }
        let cur = self.phase;
        if let Some(p) = self.preempt {
            if p != cur && self.elapsed >= self.preempt_min[cur] {
                self.begin_transition(p);
            }
            return Ok(());
        }
        match request {
            Some(p) if p != cur => {
                if self.elapsed >= self.min_green[cur] {
                    self.begin_transition(p);
                    return Ok(());
                }
                self.held = true;
            }
            _ => {}
        }
        if self.elapsed >= self.max_green[cur] {
            let mut p = cur;
            for _ in 0..np {
                p = self.ix.next_in_order(p);
                if p == cur {
                    break;
                }
                if calls.map(|c| c[p]).unwrap_or(true) {
                    self.begin_transition(p);
                    break;
                }
            }
        }
        Ok(())
    }

    /// `advance` then `apply`.
    pub fn step(
        &mut self,
        dt_s: f64,
        request: Option<usize>,
        calls: Option<&[bool]>,
    ) -> CoreResult<Status> {
        self.advance(dt_s)?;
        self.apply(request, calls)?;
        Ok(self.status())
    }

    fn continuing(&self) -> impl Iterator<Item = usize> + '_ {
        let (a, b) = (self.phase, self.target);
        self.ix.phases[a]
            .movements
            .iter()
            .copied()
            .filter(move |&m| self.ix.in_phase(b, m))
    }

    fn begin_transition(&mut self, p: usize) {
        let cur = self.phase;
        self.switches += 1;
        self.changed = true;
        self.elapsed = 0;
        let terminating = self.ix.phases[cur]
            .movements
            .iter()
            .any(|&m| !self.ix.in_phase(p, m));
        if terminating {
            self.target = p;
            self.interval = Interval::Yellow;
        } else {
            // Nothing loses green (p ⊇ cur): no clearance is needed; p's green starts now.
            self.phase = p;
            self.target = p;
            self.interval = Interval::Green;
        }
        self.update_lights();
    }

    fn update_lights(&mut self) {
        let ix = &self.ix;
        for l in self.lights.iter_mut() {
            *l = LightState::Red;
        }
        match self.interval {
            Interval::Green => {
                for &m in &ix.phases[self.phase].movements {
                    self.lights[m] = LightState::Green;
                }
            }
            Interval::Yellow => {
                for &m in &ix.phases[self.phase].movements {
                    self.lights[m] = if ix.in_phase(self.target, m) {
                        LightState::Green
                    } else {
                        LightState::Yellow
                    };
                }
            }
            Interval::AllRed => {
                for &m in &ix.phases[self.phase].movements {
                    if ix.in_phase(self.target, m) {
                        self.lights[m] = LightState::Green;
                    }
                }
            }
        }
    }

    /// SUMO `ryg` state string: `links[i]` is the movement index driving SUMO link i
    /// (`None` = always red). Green uses 'G' (priority) unless `minor[i]` marks a
    /// permissive link ('g').
    pub fn sumo_state(
        &self,
        links: &[Option<usize>],
        minor: Option<&[bool]>,
    ) -> CoreResult<String> {
        let mut s = String::with_capacity(links.len());
        for (i, l) in links.iter().enumerate() {
            let c = match l {
                None => 'r',
                Some(m) if *m >= self.lights.len() => {
                    return Err(CoreError::Signal(format!(
                        "intersection '{}': SUMO link {i} maps to unknown movement {m}",
                        self.ix.id
                    )))
                }
                Some(m) => match self.lights[*m] {
                    LightState::Red => 'r',
                    LightState::Yellow => 'y',
                    LightState::Green => {
                        if minor
                            .map(|v| v.get(i).copied().unwrap_or(false))
                            .unwrap_or(false)
                        {
                            'g'
                        } else {
                            'G'
                        }
                    }
                },
            };
            s.push(c);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::model::FourArmOptions;

    #[test]
    fn clearance_is_full_and_min_green_holds() {
        let o = FourArmOptions {
            yellow: Some(3.5),
            all_red: Some(2.5),
            min_green: 10.0,
            ..Default::default()
        };
        let ix = Arc::new(Intersection::standard_four_arm("m", &o).unwrap());
        let mut sm = SignalMachine::new(ix, 0).unwrap();
        // Requests during min green are refused.
        for _ in 0..9 {
            let s = sm.step(1.0, Some(2), None).unwrap();
            assert_eq!(s.interval, Interval::Green);
            assert!(s.held_by_min_green);
        }
        let s = sm.step(1.0, Some(2), None).unwrap();
        assert_eq!(s.interval, Interval::Yellow);
        let mut y = 0;
        let mut ar = 0;
        loop {
            let s = sm.step(1.0, Some(1), None).unwrap();
            match s.interval {
                Interval::Yellow => y += 1,
                Interval::AllRed => ar += 1,
                Interval::Green => {
                    assert_eq!(s.phase, 2);
                    break;
                }
            }
        }
        // yellow shown from t=10 to t=14 (3.5 s rounds up to whole steps), all-red 3 steps.
        assert_eq!(y + 1, 4);
        assert_eq!(ar, 3);
    }
}
