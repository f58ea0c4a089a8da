//! The intersection model and its safety constraints.
//!
//! An [`Intersection`] can only be built through [`Intersection::new`], which validates
//! everything the rest of the module relies on: every movement gets green in some phase,
//! no phase holds two conflicting movements, minimum/maximum greens, clearance intervals no
//! shorter than the kinematic formulas, a phase order, and a cycle bound that can hold the
//! minimum greens and clearances. Errors name the intersection and the constraint.

use crate::error::{CoreError, CoreResult};

/// Standard gravity (m/s²), for the grade term of the ITE yellow formula.
pub const G: f64 = 9.81;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Turn {
    Left,
    Through,
    Right,
    Pedestrian,
}

impl Turn {
    pub fn parse(s: &str) -> CoreResult<Turn> {
        match s.to_ascii_lowercase().as_str() {
            "left" | "l" => Ok(Turn::Left),
            "through" | "t" | "straight" => Ok(Turn::Through),
            "right" | "r" => Ok(Turn::Right),
            "pedestrian" | "ped" | "p" => Ok(Turn::Pedestrian),
            other => Err(CoreError::Signal(format!(
                "unknown turn '{other}' (expected left, through, right or pedestrian)"
            ))),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Turn::Left => "left",
            Turn::Through => "through",
            Turn::Right => "right",
            Turn::Pedestrian => "pedestrian",
        }
    }
}

/// One movement: traffic from an approach making a turn (or pedestrians crossing the
/// approach's leg).
#[derive(Debug, Clone, PartialEq)]
pub struct Movement {
    pub id: String,
    pub approach: String,
    pub turn: Turn,
    /// Lanes serving the movement (vehicles); 1 for pedestrians.
    pub lanes: u32,
    /// Saturation flow of the whole movement (veh/h, all its lanes). 0 for pedestrians.
    pub sat_flow: f64,
    /// Crosswalk length (m) for pedestrian movements; 0 otherwise.
    pub crossing_m: f64,
}

impl Movement {
    pub fn is_pedestrian(&self) -> bool {
        self.turn == Turn::Pedestrian
    }
}

/// Parameters of the clearance formulas and of the lost-time model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClearanceParams {
    /// Perception–reaction time t (s) in y = t + v / (2a + 2Gg).
    pub reaction_s: f64,
    /// Approach speed v (km/h).
    pub speed_kmh: f64,
    /// Comfortable deceleration a (m/s²); ITE uses 3.05 (10 ft/s²).
    pub decel: f64,
    /// Approach grade g (fraction, +uphill).
    pub grade: f64,
    /// Intersection width W (m) from stop line to the far side of the last conflict.
    pub width_m: f64,
    /// Design vehicle length L (m).
    pub vehicle_length_m: f64,
    /// Pedestrian walk interval (s).
    pub walk_s: f64,
    /// Pedestrian walking speed (m/s) for the clearance part; 1.2 m/s (MUTCD / GB 14886 practice).
    pub ped_speed: f64,
    /// Start-up lost time l1 (s) per phase.
    pub startup_lost_s: f64,
    /// Extension of effective green into the clearance e (s) per phase.
    pub extension_s: f64,
    /// Preemption entry minimum green (s): how short a preempted green may be truncated.
    pub preempt_min_green_s: f64,
}

impl Default for ClearanceParams {
    fn default() -> Self {
        ClearanceParams {
            reaction_s: 1.0,
            speed_kmh: 50.0,
            decel: 3.05,
            grade: 0.0,
            width_m: 20.0,
            vehicle_length_m: 6.0,
            walk_s: 7.0,
            ped_speed: 1.2,
            startup_lost_s: 2.0,
            extension_s: 2.0,
            preempt_min_green_s: 5.0,
        }
    }
}

/// ITE kinematic yellow change interval: y = t + v / (2a + 2·G·g), v in m/s.
pub fn ite_yellow(reaction_s: f64, speed_mps: f64, decel: f64, grade: f64) -> CoreResult<f64> {
    let den = 2.0 * decel + 2.0 * G * grade;
    if !(reaction_s.is_finite() && speed_mps.is_finite() && decel.is_finite() && grade.is_finite())
        || reaction_s < 0.0
        || speed_mps <= 0.0
        || den <= 0.0
    {
        return Err(CoreError::Signal(format!(
            "ITE yellow needs reaction ≥ 0, speed > 0 and 2a + 2Gg > 0 (got t={reaction_s}, v={speed_mps} m/s, a={decel}, g={grade})"
        )));
    }
    Ok(reaction_s + speed_mps / den)
}

/// All-red clearance: (W + L) / v.
pub fn all_red_time(width_m: f64, vehicle_length_m: f64, speed_mps: f64) -> CoreResult<f64> {
    if !(width_m.is_finite() && vehicle_length_m.is_finite() && speed_mps.is_finite())
        || width_m <= 0.0
        || vehicle_length_m < 0.0
        || speed_mps <= 0.0
    {
        return Err(CoreError::Signal(format!(
            "all-red needs width > 0, vehicle length ≥ 0, speed > 0 (got W={width_m}, L={vehicle_length_m}, v={speed_mps})"
        )));
    }
    Ok((width_m + vehicle_length_m) / speed_mps)
}

/// Pedestrian minimum green: walk + crossing distance / walking speed.
pub fn ped_min_green(walk_s: f64, crossing_m: f64, ped_speed: f64) -> CoreResult<f64> {
    if !(walk_s.is_finite() && crossing_m.is_finite() && ped_speed.is_finite())
        || walk_s < 0.0
        || crossing_m <= 0.0
        || ped_speed <= 0.0
    {
        return Err(CoreError::Signal(format!(
            "pedestrian minimum green needs walk ≥ 0, crossing > 0, speed > 0 (got walk={walk_s}, d={crossing_m}, v={ped_speed})"
        )));
    }
    Ok(walk_s + crossing_m / ped_speed)
}

/// A phase as declared (before validation). `None` timings take the intersection defaults
/// (yellow/all-red from the kinematic formulas).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PhaseSpec {
    pub name: String,
    pub movements: Vec<usize>,
    pub min_green: Option<f64>,
    pub max_green: Option<f64>,
    pub yellow: Option<f64>,
    pub all_red: Option<f64>,
}

/// Everything needed to build an intersection.
#[derive(Debug, Clone, PartialEq)]
pub struct IntersectionSpec {
    pub id: String,
    pub movements: Vec<Movement>,
    pub phases: Vec<PhaseSpec>,
    /// Explicit conflicting pairs (movement indices). `None`: derive them geometrically,
    /// which needs every approach to be one of N, E, S, W.
    pub conflicts: Option<Vec<(usize, usize)>>,
    /// Pairs that conflict geometrically but may run together because one yields
    /// (permissive left turns, right turns yielding to pedestrians).
    pub permissive: Vec<(usize, usize)>,
    /// Phase order (indices); empty = declaration order.
    pub order: Vec<usize>,
    pub clearance: ClearanceParams,
    pub min_green: f64,
    pub max_green: f64,
    pub cycle_min: f64,
    pub cycle_max: f64,
}

/// A validated phase.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: String,
    pub movements: Vec<usize>,
    pub min_green: f64,
    pub max_green: f64,
    pub yellow: f64,
    pub all_red: f64,
    /// Shortest green a preemption may leave (≤ min_green; ≥ the pedestrian minimum).
    pub preempt_min_green: f64,
    pub has_pedestrians: bool,
}

/// A validated intersection. Immutable once built.
#[derive(Debug, Clone, PartialEq)]
pub struct Intersection {
    pub id: String,
    pub movements: Vec<Movement>,
    pub phases: Vec<Phase>,
    conflict: Vec<bool>,
    pub order: Vec<usize>,
    pub clearance: ClearanceParams,
    pub cycle_min: f64,
    pub cycle_max: f64,
    /// For each movement, the phases that serve it.
    pub served_by: Vec<Vec<usize>>,
    /// For each phase, a movement membership mask.
    member: Vec<Vec<bool>>,
}

pub(crate) fn arm_index(approach: &str) -> Option<usize> {
    match approach.to_ascii_uppercase().as_str() {
        "N" | "NORTH" => Some(0),
        "E" | "EAST" => Some(1),
        "S" | "SOUTH" => Some(2),
        "W" | "WEST" => Some(3),
        _ => None,
    }
}

/// Exit arm of a vehicle movement (right-hand traffic, arms clockwise N, E, S, W).
fn exit_arm(arm: usize, turn: Turn) -> usize {
    match turn {
        Turn::Left => (arm + 1) % 4,
        Turn::Through => (arm + 2) % 4,
        Turn::Right => (arm + 3) % 4,
        Turn::Pedestrian => arm,
    }
}

/// Geometric conflict between two movements of a standard 4-arm intersection: paths that
/// cross or merge into the same exit; pedestrians crossing a leg conflict with every
/// vehicle movement entering or leaving that leg.
fn geometric_conflict(a: (usize, Turn), b: (usize, Turn)) -> bool {
    let (ai, at) = a;
    let (bi, bt) = b;
    match (at == Turn::Pedestrian, bt == Turn::Pedestrian) {
        (true, true) => false,
        (true, false) => bi == ai || exit_arm(bi, bt) == ai,
        (false, true) => ai == bi || exit_arm(ai, at) == bi,
        (false, false) => {
            let (ae, be) = (exit_arm(ai, at), exit_arm(bi, bt));
            if ai == bi {
                return false; // same entry: diverging
            }
            if ae == be {
                return true; // merging
            }
            // Points on a circle (degrees clockwise from north): a leg's entry lane sits
            // 10° counter-clockwise of its axis (right-hand traffic), its exit 10° clockwise.
            let entry = |k: usize| (90 * k + 350) as i32 % 360;
            let exit = |k: usize| (90 * k + 10) as i32 % 360;
            let (p1, p2) = (entry(ai), exit(ae));
            let (q1, q2) = (entry(bi), exit(be));
            let inside = |x: i32, lo: i32, hi: i32| {
                let (lo, hi) = if lo < hi { (lo, hi) } else { (hi, lo) };
                x > lo && x < hi
            };
            inside(q1, p1, p2) != inside(q2, p1, p2)
        }
    }
}

fn err(id: &str, msg: impl AsRef<str>) -> CoreError {
    CoreError::Signal(format!("intersection '{id}': {}", msg.as_ref()))
}

fn finite_pos(id: &str, what: &str, v: f64) -> CoreResult<f64> {
    if !v.is_finite() || v <= 0.0 {
        return Err(err(
            id,
            format!("{what} must be a finite number > 0 (got {v})"),
        ));
    }
    Ok(v)
}

impl Intersection {
    pub fn new(spec: IntersectionSpec) -> CoreResult<Intersection> {
        let id = spec.id.clone();
        if id.is_empty() {
            return Err(CoreError::Signal(
                "intersection id must not be empty".into(),
            ));
        }
        let n = spec.movements.len();
        if n == 0 {
            return Err(err(&id, "has no movements"));
        }
        if spec.phases.is_empty() {
            return Err(err(&id, "has no phases"));
        }
        let c = spec.clearance;
        for (what, v) in [
            ("speed_kmh", c.speed_kmh),
            ("decel", c.decel),
            ("width_m", c.width_m),
            ("ped_speed", c.ped_speed),
            ("preempt_min_green_s", c.preempt_min_green_s),
        ] {
            finite_pos(&id, what, v)?;
        }
        for (what, v) in [
            ("reaction_s", c.reaction_s),
            ("vehicle_length_m", c.vehicle_length_m),
            ("walk_s", c.walk_s),
            ("startup_lost_s", c.startup_lost_s),
            ("extension_s", c.extension_s),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(err(&id, format!("{what} must be finite and ≥ 0 (got {v})")));
            }
        }
        if !c.grade.is_finite() || c.grade.abs() >= 0.3 {
            return Err(err(
                &id,
                format!("grade must be a fraction in (-0.3, 0.3) (got {})", c.grade),
            ));
        }
        let v = c.speed_kmh / 3.6;
        let ite_y =
            ite_yellow(c.reaction_s, v, c.decel, c.grade).map_err(|e| err(&id, e.to_string()))?;
        let ite_ar =
            all_red_time(c.width_m, c.vehicle_length_m, v).map_err(|e| err(&id, e.to_string()))?;
        finite_pos(&id, "default min_green", spec.min_green)?;
        finite_pos(&id, "default max_green", spec.max_green)?;
        if spec.max_green < spec.min_green {
            return Err(err(
                &id,
                format!(
                    "max_green {} s is below min_green {} s",
                    spec.max_green, spec.min_green
                ),
            ));
        }

        // Movements.
        let mut seen = std::collections::HashSet::new();
        for m in &spec.movements {
            if m.id.is_empty() {
                return Err(err(&id, "a movement has an empty id"));
            }
            if !seen.insert(m.id.as_str()) {
                return Err(err(
                    &id,
                    format!("movement id '{}' is declared twice", m.id),
                ));
            }
            if m.is_pedestrian() {
                if !m.crossing_m.is_finite() || m.crossing_m <= 0.0 {
                    return Err(err(
                        &id,
                        format!(
                            "pedestrian movement '{}' needs crossing_m > 0 (got {})",
                            m.id, m.crossing_m
                        ),
                    ));
                }
            } else {
                if m.lanes == 0 {
                    return Err(err(
                        &id,
                        format!("movement '{}' needs at least one lane", m.id),
                    ));
                }
                if !m.sat_flow.is_finite() || m.sat_flow <= 0.0 {
                    return Err(err(
                        &id,
                        format!(
                            "movement '{}' needs a saturation flow > 0 veh/h (got {})",
                            m.id, m.sat_flow
                        ),
                    ));
                }
            }
        }

        // Conflict matrix.
        let mut conflict = vec![false; n * n];
        let check_pair = |(a, b): (usize, usize), what: &str| -> CoreResult<()> {
            if a >= n || b >= n {
                return Err(err(
                    &id,
                    format!("{what} pair ({a}, {b}) names an unknown movement"),
                ));
            }
            if a == b {
                return Err(err(
                    &id,
                    format!(
                        "{what} pair names movement '{}' twice",
                        spec.movements[a].id
                    ),
                ));
            }
            Ok(())
        };
        match &spec.conflicts {
            Some(pairs) => {
                for &p in pairs {
                    check_pair(p, "conflict")?;
                    conflict[p.0 * n + p.1] = true;
                    conflict[p.1 * n + p.0] = true;
                }
            }
            None => {
                let mut geo = Vec::with_capacity(n);
                for m in &spec.movements {
                    let arm = arm_index(&m.approach).ok_or_else(|| {
                        err(
                            &id,
                            format!(
                                "movement '{}' has approach '{}': conflicts can only be derived for approaches N/E/S/W; give them explicitly",
                                m.id, m.approach
                            ),
                        )
                    })?;
                    geo.push((arm, m.turn));
                }
                for a in 0..n {
                    for b in 0..n {
                        if a != b && geometric_conflict(geo[a], geo[b]) {
                            conflict[a * n + b] = true;
                        }
                    }
                }
            }
        }
        for &p in &spec.permissive {
            check_pair(p, "permissive")?;
            conflict[p.0 * n + p.1] = false;
            conflict[p.1 * n + p.0] = false;
        }

        // Phases.
        let mut phases = Vec::with_capacity(spec.phases.len());
        let mut names = std::collections::HashSet::new();
        for ps in &spec.phases {
            if ps.name.is_empty() {
                return Err(err(&id, "a phase has an empty name"));
            }
            if !names.insert(ps.name.as_str()) {
                return Err(err(
                    &id,
                    format!("phase name '{}' is declared twice", ps.name),
                ));
            }
            if ps.movements.is_empty() {
                return Err(err(&id, format!("phase '{}' has no movements", ps.name)));
            }
            let mut mv = ps.movements.clone();
            for &m in &mv {
                if m >= n {
                    return Err(err(
                        &id,
                        format!("phase '{}' names unknown movement index {m}", ps.name),
                    ));
                }
            }
            mv.sort_unstable();
            if mv.windows(2).any(|w| w[0] == w[1]) {
                return Err(err(
                    &id,
                    format!("phase '{}' lists a movement twice", ps.name),
                ));
            }
            for (i, &a) in mv.iter().enumerate() {
                for &b in &mv[i + 1..] {
                    if conflict[a * n + b] {
                        return Err(err(
                            &id,
                            format!(
                                "phase '{}' declares conflicting movements '{}' and '{}' compatible",
                                ps.name, spec.movements[a].id, spec.movements[b].id
                            ),
                        ));
                    }
                }
            }
            let mut ped_min: f64 = 0.0;
            let mut has_ped = false;
            for &m in &mv {
                let mm = &spec.movements[m];
                if mm.is_pedestrian() {
                    has_ped = true;
                    ped_min = ped_min.max(
                        ped_min_green(c.walk_s, mm.crossing_m, c.ped_speed)
                            .map_err(|e| err(&id, e.to_string()))?,
                    );
                }
            }
            let min_green = match ps.min_green {
                Some(g) => {
                    finite_pos(&id, &format!("phase '{}' min_green", ps.name), g)?;
                    if g + 1e-9 < ped_min {
                        return Err(err(
                            &id,
                            format!(
                                "phase '{}' min_green {g:.2} s is shorter than its pedestrian minimum green {ped_min:.2} s (walk + crossing / {:.1} m/s)",
                                ps.name, c.ped_speed
                            ),
                        ));
                    }
                    g
                }
                None => spec.min_green.max(ped_min),
            };
            let max_green = match ps.max_green {
                Some(g) => finite_pos(&id, &format!("phase '{}' max_green", ps.name), g)?,
                None => spec.max_green.max(min_green),
            };
            if max_green < min_green {
                return Err(err(
                    &id,
                    format!(
                        "phase '{}' max_green {max_green} s is below its min_green {min_green} s",
                        ps.name
                    ),
                ));
            }
            let yellow = match ps.yellow {
                Some(y) => {
                    finite_pos(&id, &format!("phase '{}' yellow", ps.name), y)?;
                    if y + 1e-9 < ite_y {
                        return Err(err(
                            &id,
                            format!(
                                "phase '{}' yellow {y:.2} s is shorter than the ITE kinematic minimum {ite_y:.2} s (t={} s, v={} km/h, a={} m/s², grade={})",
                                ps.name, c.reaction_s, c.speed_kmh, c.decel, c.grade
                            ),
                        ));
                    }
                    y
                }
                None => ite_y,
            };
            let all_red = match ps.all_red {
                Some(r) => {
                    finite_pos(&id, &format!("phase '{}' all_red", ps.name), r)?;
                    if r + 1e-9 < ite_ar {
                        return Err(err(
                            &id,
                            format!(
                                "phase '{}' all-red {r:.2} s is shorter than (W + L) / v = {ite_ar:.2} s (W={} m, L={} m, v={} km/h)",
                                ps.name, c.width_m, c.vehicle_length_m, c.speed_kmh
                            ),
                        ));
                    }
                    r
                }
                None => ite_ar,
            };
            let preempt_min_green = if has_ped {
                min_green.min(c.preempt_min_green_s.max(ped_min))
            } else {
                min_green.min(c.preempt_min_green_s)
            };
            phases.push(Phase {
                name: ps.name.clone(),
                movements: mv,
                min_green,
                max_green,
                yellow,
                all_red,
                preempt_min_green,
                has_pedestrians: has_ped,
            });
        }

        let np = phases.len();
        let mut served_by = vec![Vec::new(); n];
        let mut member = vec![vec![false; n]; np];
        for (p, ph) in phases.iter().enumerate() {
            for &m in &ph.movements {
                served_by[m].push(p);
                member[p][m] = true;
            }
        }
        for (m, s) in served_by.iter().enumerate() {
            if s.is_empty() {
                return Err(err(
                    &id,
                    format!(
                        "movement '{}' gets no green in any phase",
                        spec.movements[m].id
                    ),
                ));
            }
        }

        let order = if spec.order.is_empty() {
            (0..np).collect::<Vec<_>>()
        } else {
            spec.order.clone()
        };
        {
            let mut sorted = order.clone();
            sorted.sort_unstable();
            if sorted != (0..np).collect::<Vec<_>>() {
                return Err(err(
                    &id,
                    format!("phase order {order:?} must list every phase exactly once"),
                ));
            }
        }

        if !(spec.cycle_min.is_finite() && spec.cycle_max.is_finite())
            || spec.cycle_min <= 0.0
            || spec.cycle_max < spec.cycle_min
        {
            return Err(err(
                &id,
                format!(
                    "cycle bounds must satisfy 0 < cycle_min ≤ cycle_max (got {} .. {})",
                    spec.cycle_min, spec.cycle_max
                ),
            ));
        }
        let need: f64 = phases
            .iter()
            .map(|p| p.min_green + p.yellow + p.all_red)
            .sum();
        if spec.cycle_max + 1e-9 < need {
            return Err(err(
                &id,
                format!(
                    "cycle_max {} s cannot hold the minimum greens plus clearances ({need:.1} s)",
                    spec.cycle_max
                ),
            ));
        }

        Ok(Intersection {
            id,
            movements: spec.movements,
            phases,
            conflict,
            order,
            clearance: c,
            cycle_min: spec.cycle_min,
            cycle_max: spec.cycle_max,
            served_by,
            member,
        })
    }

    pub fn n_movements(&self) -> usize {
        self.movements.len()
    }
    pub fn n_phases(&self) -> usize {
        self.phases.len()
    }
    #[inline]
    pub fn conflicts(&self, a: usize, b: usize) -> bool {
        self.conflict[a * self.movements.len() + b]
    }
    #[inline]
    pub fn in_phase(&self, phase: usize, movement: usize) -> bool {
        self.member[phase][movement]
    }
    pub fn movement_index(&self, id: &str) -> Option<usize> {
        self.movements.iter().position(|m| m.id == id)
    }
    pub fn phase_index(&self, name: &str) -> Option<usize> {
        self.phases.iter().position(|p| p.name == name)
    }
    /// Lost time of one phase (s): start-up lost + clearance − extension of effective green.
    pub fn phase_lost_time(&self, p: usize) -> f64 {
        let ph = &self.phases[p];
        (self.clearance.startup_lost_s + ph.yellow + ph.all_red - self.clearance.extension_s)
            .max(0.0)
    }
    /// The phase that follows `p` in the cyclic order.
    pub fn next_in_order(&self, p: usize) -> usize {
        let i = self.order.iter().position(|&q| q == p).unwrap_or(0);
        self.order[(i + 1) % self.order.len()]
    }
    /// Yellow and all-red from the kinematic formulas for this intersection's parameters.
    pub fn kinematic_clearance(&self) -> (f64, f64) {
        let c = &self.clearance;
        let v = c.speed_kmh / 3.6;
        (
            ite_yellow(c.reaction_s, v, c.decel, c.grade).unwrap_or(f64::NAN),
            all_red_time(c.width_m, c.vehicle_length_m, v).unwrap_or(f64::NAN),
        )
    }

    /// A standard 4-arm intersection (approaches N, E, S, W; right-hand traffic) with its
    /// conflict matrix derived geometrically.
    pub fn standard_four_arm(id: &str, o: &FourArmOptions) -> CoreResult<Intersection> {
        let arms = ["N", "E", "S", "W"];
        let mut movements = Vec::new();
        for a in arms {
            for (turn, lanes, factor) in [
                (Turn::Left, o.lanes_left, 0.95),
                (Turn::Through, o.lanes_through, 1.0),
                (Turn::Right, o.lanes_right, 0.85),
            ] {
                if lanes == 0 {
                    return Err(err(id, "standard_four_arm needs ≥ 1 lane per turn"));
                }
                movements.push(Movement {
                    id: format!("{a}_{}", &turn.as_str()[..1].to_uppercase()),
                    approach: a.to_string(),
                    turn,
                    lanes,
                    sat_flow: o.sat_flow_per_lane * lanes as f64 * factor,
                    crossing_m: 0.0,
                });
            }
        }
        if o.pedestrians {
            for a in arms {
                movements.push(Movement {
                    id: format!("{a}_P"),
                    approach: a.to_string(),
                    turn: Turn::Pedestrian,
                    lanes: 1,
                    sat_flow: 0.0,
                    crossing_m: o.crossing_m,
                });
            }
        }
        let idx = |s: &str| movements.iter().position(|m| m.id == s).expect("own id");
        let ph = |name: &str, ids: &[&str]| PhaseSpec {
            name: name.to_string(),
            movements: ids.iter().map(|s| idx(s)).collect(),
            min_green: None,
            max_green: None,
            yellow: o.yellow,
            all_red: o.all_red,
        };
        let mut permissive = Vec::new();
        let mut phases;
        if o.dual_ring && !o.protected_left {
            return Err(err(
                id,
                "dual_ring=true gives every left turn its own protected green; protected_left=false contradicts it",
            ));
        }
        if o.dual_ring {
            // NEMA dual ring, two barrier groups (N/S, E/W). In each group ring A serves
            // a_L then b_T, ring B b_L then a_T; a phase is one movement group per ring.
            phases = Vec::with_capacity(8);
            for (g, a, b) in [("NS", "N", "S"), ("EW", "E", "W")] {
                let (al, bl) = (format!("{a}_L"), format!("{b}_L"));
                let (at, ar) = (format!("{a}_T"), format!("{a}_R"));
                let (bt, br) = (format!("{b}_T"), format!("{b}_R"));
                phases.push(ph(&format!("{g}_L"), &[&al, &bl]));
                phases.push(ph(&format!("{a}_TL"), &[&al, &at, &ar]));
                phases.push(ph(&format!("{b}_TL"), &[&bl, &bt, &br]));
                phases.push(ph(&format!("{g}_T"), &[&at, &ar, &bt, &br]));
            }
        } else if o.protected_left {
            phases = vec![
                ph("NS_T", &["N_T", "N_R", "S_T", "S_R"]),
                ph("NS_L", &["N_L", "S_L"]),
                ph("EW_T", &["E_T", "E_R", "W_T", "W_R"]),
                ph("EW_L", &["E_L", "W_L"]),
            ];
        } else {
            phases = vec![
                ph("NS", &["N_L", "N_T", "N_R", "S_L", "S_T", "S_R"]),
                ph("EW", &["E_L", "E_T", "E_R", "W_L", "W_T", "W_R"]),
            ];
            // Left turns yield to the opposing through and right turns.
            for (l, t, r) in [
                ("N_L", "S_T", "S_R"),
                ("S_L", "N_T", "N_R"),
                ("E_L", "W_T", "W_R"),
                ("W_L", "E_T", "E_R"),
            ] {
                permissive.push((idx(l), idx(t)));
                permissive.push((idx(l), idx(r)));
            }
            // Opposing lefts (they do not cross in right-hand traffic; kept for clarity).
        }
        if o.pedestrians {
            // Crosswalks over the legs parallel to the through traffic; right turns yield.
            let (ns, ew) = if o.dual_ring {
                (3usize, 7usize)
            } else {
                (0usize, if o.protected_left { 2 } else { 1 })
            };
            for (p, legs) in [(ns, ["E_P", "W_P"]), (ew, ["N_P", "S_P"])] {
                for l in legs {
                    phases[p].movements.push(idx(l));
                }
            }
            for (ped, rights) in [
                ("E_P", ["S_R", "E_R"]),
                ("W_P", ["N_R", "W_R"]),
                ("N_P", ["E_R", "N_R"]),
                ("S_P", ["W_R", "S_R"]),
            ] {
                for r in rights {
                    permissive.push((idx(ped), idx(r)));
                }
            }
            if !o.protected_left {
                for (ped, lefts) in [
                    ("E_P", ["N_L", "E_L"]),
                    ("W_P", ["S_L", "W_L"]),
                    ("N_P", ["W_L", "N_L"]),
                    ("S_P", ["E_L", "S_L"]),
                ] {
                    for l in lefts {
                        permissive.push((idx(ped), idx(l)));
                    }
                }
            }
        }
        Intersection::new(IntersectionSpec {
            id: id.to_string(),
            movements,
            phases,
            conflicts: None,
            permissive,
            order: Vec::new(),
            clearance: o.clearance,
            min_green: o.min_green,
            max_green: o.max_green,
            cycle_min: o.cycle_min,
            cycle_max: o.cycle_max,
        })
    }
}

/// Options of [`Intersection::standard_four_arm`].
#[derive(Debug, Clone, PartialEq)]
pub struct FourArmOptions {
    pub lanes_left: u32,
    pub lanes_through: u32,
    pub lanes_right: u32,
    pub sat_flow_per_lane: f64,
    pub protected_left: bool,
    /// NEMA dual-ring phases (8: NS_L, N_TL, S_TL, NS_T, EW_L, E_TL, W_TL, EW_T) instead
    /// of the 4 stages, for [`super::control::DualRingController`]. Needs protected lefts.
    pub dual_ring: bool,
    pub pedestrians: bool,
    pub crossing_m: f64,
    pub min_green: f64,
    pub max_green: f64,
    pub yellow: Option<f64>,
    pub all_red: Option<f64>,
    pub cycle_min: f64,
    pub cycle_max: f64,
    pub clearance: ClearanceParams,
}

impl Default for FourArmOptions {
    fn default() -> Self {
        FourArmOptions {
            lanes_left: 1,
            lanes_through: 2,
            lanes_right: 1,
            sat_flow_per_lane: 1800.0,
            protected_left: true,
            dual_ring: false,
            pedestrians: false,
            crossing_m: 14.0,
            min_green: 10.0,
            max_green: 60.0,
            yellow: None,
            all_red: None,
            cycle_min: 40.0,
            cycle_max: 180.0,
            clearance: ClearanceParams::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ite_yellow_matches_hand_value() {
        // 50 km/h, t=1, a=3.05, flat: 1 + 13.889/6.1 = 3.277 s
        let y = ite_yellow(1.0, 50.0 / 3.6, 3.05, 0.0).unwrap();
        assert!((y - 3.2769).abs() < 1e-3, "{y}");
        // uphill shortens, downhill lengthens
        assert!(ite_yellow(1.0, 13.9, 3.05, 0.03).unwrap() < y);
        assert!(ite_yellow(1.0, 13.9, 3.05, -0.03).unwrap() > y);
        assert!((all_red_time(20.0, 6.0, 13.0).unwrap() - 2.0).abs() < 1e-12);
        assert!((ped_min_green(7.0, 18.0, 1.2).unwrap() - 22.0).abs() < 1e-12);
    }

    #[test]
    fn four_arm_geometry() {
        let ix = Intersection::standard_four_arm("x", &FourArmOptions::default()).unwrap();
        let m = |s: &str| ix.movement_index(s).unwrap();
        assert!(ix.conflicts(m("N_T"), m("E_T")));
        assert!(ix.conflicts(m("N_L"), m("S_T")));
        assert!(!ix.conflicts(m("N_T"), m("S_T")));
        assert!(!ix.conflicts(m("N_L"), m("S_L")));
        assert!(!ix.conflicts(m("N_R"), m("W_T")));
        assert!(ix.conflicts(m("N_R"), m("E_T"))); // merge into W
        assert!(!ix.conflicts(m("N_L"), m("N_T")));
        for a in 0..ix.n_movements() {
            assert!(!ix.conflicts(a, a));
            for b in 0..ix.n_movements() {
                assert_eq!(ix.conflicts(a, b), ix.conflicts(b, a));
            }
        }
        let mut o = FourArmOptions {
            pedestrians: true,
            ..Default::default()
        };
        Intersection::standard_four_arm("x", &o).unwrap();
        o.protected_left = false;
        Intersection::standard_four_arm("x", &o).unwrap();
    }
}
