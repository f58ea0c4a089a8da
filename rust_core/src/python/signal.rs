//! Python bindings for [`crate::signal`]. Thin wrappers: every check lives in the core, so a
//! bad intersection, plan or request raises `SignalConstraintError` / `InputError`.
//! `engine/signal.py` is the typed facade over these.
use std::sync::Arc;

use numpy::{IntoPyArray, PyArray2, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::error::CoreError;
use crate::signal::control::{AdaptiveFollower, Decision};
use crate::signal::machine::Status;
use crate::signal::model::{
    self, ClearanceParams, FourArmOptions, Intersection, IntersectionSpec, Movement, PhaseSpec,
    Turn,
};
use crate::signal::plan::{self, AdaptiveParams, AdaptivePlanner, Plan};
use crate::signal::{
    CoordActuatedController, CoordActuatedParams, CyclicGapController, CyclicGapParams,
    DetectorState, DischargeParams, DualRingController, DualRingParams, FixedTimeController,
    GreenWaveCorridor, GreenWaveResult, MaxPressureController, MaxPressureParams,
    PressureActuatedController, PressureActuatedParams, SignalController, Strategy,
};

fn sig(msg: impl Into<String>) -> PyErr {
    CoreError::Signal(msg.into()).into()
}

fn slice<'a>(name: &str, a: &'a PyReadonlyArray1<'_, f64>) -> PyResult<&'a [f64]> {
    a.as_slice().map_err(|_| {
        CoreError::input(format!("{name} must be a contiguous 1-D float64 array")).into()
    })
}

fn clearance_from(d: Option<&Bound<'_, PyDict>>) -> PyResult<ClearanceParams> {
    let mut c = ClearanceParams::default();
    if let Some(d) = d {
        for (k, v) in d.iter() {
            let k: String = k.extract()?;
            let v: f64 = v.extract()?;
            match k.as_str() {
                "reaction_s" => c.reaction_s = v,
                "speed_kmh" => c.speed_kmh = v,
                "decel" => c.decel = v,
                "grade" => c.grade = v,
                "width_m" => c.width_m = v,
                "vehicle_length_m" => c.vehicle_length_m = v,
                "walk_s" => c.walk_s = v,
                "ped_speed" => c.ped_speed = v,
                "startup_lost_s" => c.startup_lost_s = v,
                "extension_s" => c.extension_s = v,
                "preempt_min_green_s" => c.preempt_min_green_s = v,
                other => return Err(sig(format!("unknown clearance parameter '{other}'"))),
            }
        }
    }
    Ok(c)
}

/// A validated intersection (see `engine.signal.Intersection`).
#[pyclass(name = "Intersection", module = "engine._core", frozen)]
pub struct PyIntersection {
    pub inner: Arc<Intersection>,
}

impl PyIntersection {
    fn phase_arg(&self, p: &Bound<'_, PyAny>) -> PyResult<usize> {
        let ix = &self.inner;
        if let Ok(i) = p.extract::<usize>() {
            if i < ix.n_phases() {
                return Ok(i);
            }
            return Err(sig(format!(
                "intersection '{}': phase {i} does not exist",
                ix.id
            )));
        }
        let name: String = p.extract()?;
        ix.phase_index(&name)
            .ok_or_else(|| sig(format!("intersection '{}': unknown phase '{name}'", ix.id)))
    }
}

#[pymethods]
impl PyIntersection {
    #[new]
    #[pyo3(signature = (id, movements, phases, order=None, conflicts=None, permissive=None,
                        clearance=None, min_green=10.0, max_green=60.0, cycle_min=40.0, cycle_max=180.0))]
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn new(
        id: String,
        movements: Vec<(String, String, String, u32, f64, f64)>,
        phases: Vec<(
            String,
            Vec<String>,
            Option<f64>,
            Option<f64>,
            Option<f64>,
            Option<f64>,
        )>,
        order: Option<Vec<String>>,
        conflicts: Option<Vec<(String, String)>>,
        permissive: Option<Vec<(String, String)>>,
        clearance: Option<&Bound<'_, PyDict>>,
        min_green: f64,
        max_green: f64,
        cycle_min: f64,
        cycle_max: f64,
    ) -> PyResult<Self> {
        let mut mv = Vec::with_capacity(movements.len());
        for (mid, approach, turn, lanes, sat_flow, crossing_m) in movements {
            let turn = Turn::parse(&turn)
                .map_err(|e| sig(format!("intersection '{id}': movement '{mid}': {e}")))?;
            mv.push(Movement {
                id: mid,
                approach,
                turn,
                lanes,
                sat_flow,
                crossing_m,
            });
        }
        let midx = |s: &str| -> PyResult<usize> {
            mv.iter()
                .position(|m| m.id == s)
                .ok_or_else(|| sig(format!("intersection '{id}': unknown movement '{s}'")))
        };
        let mut ps = Vec::with_capacity(phases.len());
        for (name, mids, ming, maxg, y, ar) in &phases {
            let mut idx = Vec::with_capacity(mids.len());
            for m in mids {
                idx.push(midx(m).map_err(|_| {
                    sig(format!(
                        "intersection '{id}': phase '{name}' names unknown movement '{m}'"
                    ))
                })?);
            }
            ps.push(PhaseSpec {
                name: name.clone(),
                movements: idx,
                min_green: *ming,
                max_green: *maxg,
                yellow: *y,
                all_red: *ar,
            });
        }
        let pairs = |v: Option<Vec<(String, String)>>| -> PyResult<Option<Vec<(usize, usize)>>> {
            match v {
                None => Ok(None),
                Some(v) => v
                    .iter()
                    .map(|(a, b)| Ok((midx(a)?, midx(b)?)))
                    .collect::<PyResult<Vec<_>>>()
                    .map(Some),
            }
        };
        let conflicts = pairs(conflicts)?;
        let permissive = pairs(permissive)?.unwrap_or_default();
        let order = match order {
            None => Vec::new(),
            Some(o) => o
                .iter()
                .map(|n| {
                    ps.iter().position(|p| &p.name == n).ok_or_else(|| {
                        sig(format!(
                            "intersection '{id}': order names unknown phase '{n}'"
                        ))
                    })
                })
                .collect::<PyResult<Vec<_>>>()?,
        };
        let spec = IntersectionSpec {
            id: id.clone(),
            movements: mv,
            phases: ps,
            conflicts,
            permissive,
            order,
            clearance: clearance_from(clearance)?,
            min_green,
            max_green,
            cycle_min,
            cycle_max,
        };
        Ok(PyIntersection {
            inner: Arc::new(Intersection::new(spec)?),
        })
    }

    /// Standard 4-arm intersection (approaches N/E/S/W, right-hand traffic).
    #[staticmethod]
    #[pyo3(signature = (id, lanes_left=1, lanes_through=2, lanes_right=1, sat_flow_per_lane=1800.0,
                        protected_left=true, pedestrians=false, crossing_m=14.0, min_green=10.0,
                        max_green=60.0, yellow=None, all_red=None, cycle_min=40.0, cycle_max=180.0,
                        clearance=None, dual_ring=false))]
    #[allow(clippy::too_many_arguments)]
    fn standard_four_arm(
        id: &str,
        lanes_left: u32,
        lanes_through: u32,
        lanes_right: u32,
        sat_flow_per_lane: f64,
        protected_left: bool,
        pedestrians: bool,
        crossing_m: f64,
        min_green: f64,
        max_green: f64,
        yellow: Option<f64>,
        all_red: Option<f64>,
        cycle_min: f64,
        cycle_max: f64,
        clearance: Option<&Bound<'_, PyDict>>,
        dual_ring: bool,
    ) -> PyResult<Self> {
        let o = FourArmOptions {
            dual_ring,
            lanes_left,
            lanes_through,
            lanes_right,
            sat_flow_per_lane,
            protected_left,
            pedestrians,
            crossing_m,
            min_green,
            max_green,
            yellow,
            all_red,
            cycle_min,
            cycle_max,
            clearance: clearance_from(clearance)?,
        };
        Ok(PyIntersection {
            inner: Arc::new(Intersection::standard_four_arm(id, &o)?),
        })
    }

    #[getter]
    fn id(&self) -> String {
        self.inner.id.clone()
    }
    #[getter]
    fn movement_ids(&self) -> Vec<String> {
        self.inner.movements.iter().map(|m| m.id.clone()).collect()
    }
    #[getter]
    fn approaches(&self) -> Vec<String> {
        self.inner
            .movements
            .iter()
            .map(|m| m.approach.clone())
            .collect()
    }
    #[getter]
    fn turns(&self) -> Vec<&'static str> {
        self.inner
            .movements
            .iter()
            .map(|m| m.turn.as_str())
            .collect()
    }
    #[getter]
    fn lanes(&self) -> Vec<u32> {
        self.inner.movements.iter().map(|m| m.lanes).collect()
    }
    #[getter]
    fn sat_flows(&self) -> Vec<f64> {
        self.inner.movements.iter().map(|m| m.sat_flow).collect()
    }
    #[getter]
    fn phase_names(&self) -> Vec<String> {
        self.inner.phases.iter().map(|p| p.name.clone()).collect()
    }
    #[getter]
    fn phase_movements(&self) -> Vec<Vec<String>> {
        let ix = &self.inner;
        ix.phases
            .iter()
            .map(|p| {
                p.movements
                    .iter()
                    .map(|&m| ix.movements[m].id.clone())
                    .collect()
            })
            .collect()
    }
    #[getter]
    fn min_green(&self) -> Vec<f64> {
        self.inner.phases.iter().map(|p| p.min_green).collect()
    }
    #[getter]
    fn max_green(&self) -> Vec<f64> {
        self.inner.phases.iter().map(|p| p.max_green).collect()
    }
    #[getter]
    fn yellow(&self) -> Vec<f64> {
        self.inner.phases.iter().map(|p| p.yellow).collect()
    }
    #[getter]
    fn all_red(&self) -> Vec<f64> {
        self.inner.phases.iter().map(|p| p.all_red).collect()
    }
    #[getter]
    fn preempt_min_green(&self) -> Vec<f64> {
        self.inner
            .phases
            .iter()
            .map(|p| p.preempt_min_green)
            .collect()
    }
    #[getter]
    fn order(&self) -> Vec<String> {
        self.inner
            .order
            .iter()
            .map(|&p| self.inner.phases[p].name.clone())
            .collect()
    }
    #[getter]
    fn cycle_bounds(&self) -> (f64, f64) {
        (self.inner.cycle_min, self.inner.cycle_max)
    }
    /// (ITE yellow, all-red) from this intersection's clearance parameters.
    #[getter]
    fn kinematic_clearance(&self) -> (f64, f64) {
        self.inner.kinematic_clearance()
    }
    fn phase_lost_time(&self, phase: &Bound<'_, PyAny>) -> PyResult<f64> {
        Ok(self.inner.phase_lost_time(self.phase_arg(phase)?))
    }
    /// Phases (names) that serve a movement.
    fn phases_serving(&self, movement: &str) -> PyResult<Vec<String>> {
        let ix = &self.inner;
        let m = ix.movement_index(movement).ok_or_else(|| {
            sig(format!(
                "intersection '{}': unknown movement '{movement}'",
                ix.id
            ))
        })?;
        Ok(ix.served_by[m]
            .iter()
            .map(|&p| ix.phases[p].name.clone())
            .collect())
    }
    /// Boolean (n_movements × n_movements) conflict matrix.
    fn conflict_matrix<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<bool>>> {
        let n = self.inner.n_movements();
        let rows: Vec<Vec<bool>> = (0..n)
            .map(|a| (0..n).map(|b| self.inner.conflicts(a, b)).collect())
            .collect();
        PyArray2::from_vec2(py, &rows).map_err(|e| sig(e.to_string()))
    }
    fn __repr__(&self) -> String {
        format!(
            "Intersection(id={:?}, movements={}, phases={:?})",
            self.inner.id,
            self.inner.n_movements(),
            self.phase_names()
        )
    }
}

fn plan_dict<'py>(
    py: Python<'py>,
    ix: &Intersection,
    p: &Plan,
    flows: &[f64],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("intersection", &ix.id)?;
    d.set_item("method", p.method)?;
    d.set_item("cycle", p.cycle)?;
    d.set_item("cycle_unbounded", p.cycle_unbounded)?;
    d.set_item("lost_time", p.lost_time)?;
    d.set_item("y_total", p.y_total)?;
    d.set_item(
        "phase",
        ix.phases.iter().map(|q| q.name.clone()).collect::<Vec<_>>(),
    )?;
    d.set_item("green", p.greens.clone())?;
    d.set_item("effective_green", p.effective_greens.clone())?;
    d.set_item(
        "yellow",
        ix.phases.iter().map(|q| q.yellow).collect::<Vec<_>>(),
    )?;
    d.set_item(
        "all_red",
        ix.phases.iter().map(|q| q.all_red).collect::<Vec<_>>(),
    )?;
    d.set_item("flow_ratio", p.flow_ratios.clone())?;
    d.set_item("vc", p.phase_vc.clone())?;
    d.set_item(
        "critical_movement",
        p.critical_movement
            .iter()
            .map(|m| m.map(|m| ix.movements[m].id.clone()))
            .collect::<Vec<_>>(),
    )?;
    d.set_item(
        "movement",
        ix.movements
            .iter()
            .map(|m| m.id.clone())
            .collect::<Vec<_>>(),
    )?;
    d.set_item("movement_flow", flows.to_vec())?;
    d.set_item("movement_vc", p.movement_vc.clone())?;
    d.set_item("movement_delay", p.movement_delay.clone())?;
    let ad = p.approach_delays(ix, flows);
    d.set_item(
        "approach",
        ad.iter().map(|a| a.0.clone()).collect::<Vec<_>>(),
    )?;
    d.set_item("approach_delay", ad.iter().map(|a| a.1).collect::<Vec<_>>())?;
    d.set_item("approach_flow", ad.iter().map(|a| a.2).collect::<Vec<_>>())?;
    Ok(d)
}

/// Webster fixed-time plan for per-movement flows (veh/h).
#[pyfunction]
fn webster_plan<'py>(
    py: Python<'py>,
    ix: &PyIntersection,
    flows: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let f = slice("flows", &flows)?;
    let p = plan::webster(&ix.inner, f)?;
    plan_dict(py, &ix.inner, &p, f)
}

/// HCM critical-lane plan for a target v/c and peak-hour factor.
#[pyfunction]
#[pyo3(signature = (ix, flows, target_vc=0.9, phf=1.0))]
fn critical_lane_plan<'py>(
    py: Python<'py>,
    ix: &PyIntersection,
    flows: PyReadonlyArray1<'py, f64>,
    target_vc: f64,
    phf: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let f = slice("flows", &flows)?;
    let p = plan::critical_lane(&ix.inner, f, target_vc, phf)?;
    plan_dict(py, &ix.inner, &p, f)
}

#[pyfunction]
fn ite_yellow(reaction_s: f64, speed_kmh: f64, decel: f64, grade: f64) -> PyResult<f64> {
    Ok(model::ite_yellow(
        reaction_s,
        speed_kmh / 3.6,
        decel,
        grade,
    )?)
}
#[pyfunction]
fn all_red_time(width_m: f64, vehicle_length_m: f64, speed_kmh: f64) -> PyResult<f64> {
    Ok(model::all_red_time(
        width_m,
        vehicle_length_m,
        speed_kmh / 3.6,
    )?)
}
#[pyfunction]
fn ped_min_green(walk_s: f64, crossing_m: f64, ped_speed: f64) -> PyResult<f64> {
    Ok(model::ped_min_green(walk_s, crossing_m, ped_speed)?)
}

/// Cycle-by-cycle adaptive planner.
#[pyclass(name = "AdaptivePlanner", module = "engine._core")]
pub struct PyAdaptivePlanner {
    inner: AdaptivePlanner,
}

#[pymethods]
impl PyAdaptivePlanner {
    #[new]
    #[pyo3(signature = (ix, alpha=0.4, max_cycle_change=10.0, max_green_change=8.0))]
    fn new(
        ix: &PyIntersection,
        alpha: f64,
        max_cycle_change: f64,
        max_green_change: f64,
    ) -> PyResult<Self> {
        let p = AdaptiveParams {
            alpha,
            max_cycle_change,
            max_green_change,
        };
        Ok(PyAdaptivePlanner {
            inner: AdaptivePlanner::new(ix.inner.clone(), p)?,
        })
    }
    fn update<'py>(
        &mut self,
        py: Python<'py>,
        flows: PyReadonlyArray1<'py, f64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let f = slice("flows", &flows)?;
        let p = self.inner.update(f)?;
        let sm = self.inner.smoothed_flows().unwrap_or(f).to_vec();
        plan_dict(py, &self.inner.ix, &p, &sm)
    }
    #[getter]
    fn updates(&self) -> u64 {
        self.inner.updates
    }
}

#[allow(clippy::too_many_arguments)]
fn detector<'a>(
    n: usize,
    queue: &'a Option<PyReadonlyArray1<'_, f64>>,
    approaching: &'a Option<PyReadonlyArray1<'_, f64>>,
    gap: &'a Option<PyReadonlyArray1<'_, f64>>,
    downstream: &'a Option<PyReadonlyArray1<'_, f64>>,
    arrivals: &'a Option<PyReadonlyArray1<'_, f64>>,
    expected: &'a Option<PyReadonlyArray1<'_, f64>>,
    zeros: &'a [f64],
) -> PyResult<Option<DetectorState<'a>>> {
    let _ = n;
    let opt =
        |name: &str, a: &'a Option<PyReadonlyArray1<'_, f64>>| -> PyResult<Option<&'a [f64]>> {
            a.as_ref().map(|a| slice(name, a)).transpose()
        };
    let (q, a) = (opt("queue", queue)?, opt("approaching", approaching)?);
    let (g, d, r) = (
        opt("gap", gap)?,
        opt("downstream", downstream)?,
        opt("arrivals", arrivals)?,
    );
    let e = opt("expected", expected)?;
    if q.is_none() && a.is_none() && g.is_none() && d.is_none() && r.is_none() && e.is_none() {
        return Ok(None);
    }
    Ok(Some(DetectorState {
        queue: q.unwrap_or(zeros),
        approaching: a.unwrap_or(zeros),
        gap_s: g,
        downstream: d,
        arrivals: r,
        expected: e,
    }))
}

fn status_dict<'py>(
    py: Python<'py>,
    ix: &Intersection,
    s: &Status,
    request: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("now", s.now_s)?;
    d.set_item("phase", s.phase)?;
    d.set_item("phase_name", &ix.phases[s.phase].name)?;
    d.set_item("interval", s.interval.as_str())?;
    d.set_item("elapsed", s.elapsed_s)?;
    d.set_item("remaining", s.remaining_s)?;
    d.set_item("next_phase", s.next_phase)?;
    d.set_item("preempting", s.preempting)?;
    d.set_item("changed", s.changed)?;
    d.set_item("held_by_min_green", s.held_by_min_green)?;
    d.set_item("request", request)?;
    Ok(d)
}

fn parse_interval(s: &str) -> PyResult<crate::signal::Interval> {
    match s {
        "green" => Ok(crate::signal::Interval::Green),
        "yellow" => Ok(crate::signal::Interval::Yellow),
        "all_red" => Ok(crate::signal::Interval::AllRed),
        o => Err(CoreError::input(format!(
            "interval must be green, yellow or all_red (got '{o}')"
        ))
        .into()),
    }
}

/// The discharge controllers' `decide` from Python: checks the phase, builds the status and
/// the detector state (queue, approaching, expected discharge per movement) and asks `f`.
fn discharge_decision<F>(
    ix: &Intersection,
    phase: usize,
    elapsed: f64,
    interval: &str,
    now: f64,
    [queue, approaching, expected]: [PyReadonlyArray1<'_, f64>; 3],
    f: F,
) -> PyResult<Decision>
where
    F: FnOnce(&Status, &DetectorState) -> Result<Decision, CoreError>,
{
    if phase >= ix.n_phases() {
        return Err(sig(format!(
            "intersection '{}': phase {} does not exist",
            ix.id, phase
        )));
    }
    let st = view(phase, elapsed, interval, now)?;
    let zeros = vec![0.0; ix.n_movements()];
    let (q, a, e) = (Some(queue), Some(approaching), Some(expected));
    let none = None;
    let det =
        detector(ix.n_movements(), &q, &a, &none, &none, &none, &e, &zeros)?.expect("queue given");
    Ok(f(&st, &det)?)
}

fn view(phase: usize, elapsed: f64, interval: &str, now: f64) -> PyResult<Status> {
    Ok(Status {
        now_s: now,
        phase,
        next_phase: None,
        interval: parse_interval(interval)?,
        elapsed_s: elapsed,
        remaining_s: 0.0,
        preempting: false,
        changed: false,
        held_by_min_green: false,
    })
}

/// The `#[pymethods]` of a pressure controller class: the shared `decide` (queue and
/// approaching vehicles per movement, optional gaps and downstream occupancy), then the
/// class's own methods.
macro_rules! pressure_pymethods {
    ($ty:ident, $decide_doc:literal; $($methods:tt)*) => {
        #[pymethods]
        impl $ty {
            #[doc = $decide_doc]
            #[pyo3(signature = (phase, elapsed, queue, approaching, gap=None, downstream=None, interval="green", now=0.0))]
            #[allow(clippy::too_many_arguments, clippy::type_complexity)]
            fn decide<'py>(
                &mut self,
                py: Python<'py>,
                phase: usize,
                elapsed: f64,
                queue: PyReadonlyArray1<'py, f64>,
                approaching: PyReadonlyArray1<'py, f64>,
                gap: Option<PyReadonlyArray1<'py, f64>>,
                downstream: Option<PyReadonlyArray1<'py, f64>>,
                interval: &str,
                now: f64,
            ) -> PyResult<(Option<usize>, Bound<'py, numpy::PyArray1<f64>>, Vec<bool>)> {
                let ix = self.inner.ix.clone();
                if phase >= ix.n_phases() {
                    return Err(sig(format!(
                        "intersection '{}': phase {} does not exist",
                        ix.id, phase
                    )));
                }
                let st = view(phase, elapsed, interval, now)?;
                let zeros = vec![0.0; ix.n_movements()];
                let (q, a) = (Some(queue), Some(approaching));
                let none = None;
                let det = detector(
                    ix.n_movements(),
                    &q,
                    &a,
                    &gap,
                    &downstream,
                    &none,
                    &none,
                    &zeros,
                )?
                .expect("queue given");
                let dec = self.inner.decide_checked(&st, &det)?;
                Ok((dec.target, dec.pressures.into_pyarray(py), dec.calls))
            }
            $($methods)*
        }
    };
}

/// Max-pressure decisions.
#[pyclass(name = "MaxPressureController", module = "engine._core")]
#[derive(Clone)]
pub struct PyMaxPressure {
    inner: MaxPressureController,
}

pressure_pymethods! {
    PyMaxPressure, "-> (requested phase or None, phase pressures, phase calls)";
    #[new]
    #[pyo3(signature = (ix, approach_weight=0.0, switch_margin=0.0, cyclic=false))]
    fn new(
        ix: &PyIntersection,
        approach_weight: f64,
        switch_margin: f64,
        cyclic: bool,
    ) -> PyResult<Self> {
        let p = MaxPressureParams {
            approach_weight,
            switch_margin,
            cyclic,
        };
        Ok(PyMaxPressure {
            inner: MaxPressureController::new(ix.inner.clone(), p)?,
        })
    }
}

/// The pressure-actuated hybrid controller.
#[pyclass(name = "PressureActuatedController", module = "engine._core")]
#[derive(Clone)]
pub struct PyPressureActuated {
    inner: PressureActuatedController,
}

pressure_pymethods! {
    PyPressureActuated, "-> (requested phase or None, phase pressures, phase calls)";
    #[new]
    #[pyo3(signature = (ix, approach_weight=0.5, gap_out_s=3.0, switch_ratio=2.0, switch_margin=4.0, max_wait_s=180.0, cyclic=false, fair_green_s=25.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        ix: &PyIntersection,
        approach_weight: f64,
        gap_out_s: f64,
        switch_ratio: f64,
        switch_margin: f64,
        max_wait_s: f64,
        cyclic: bool,
        fair_green_s: f64,
    ) -> PyResult<Self> {
        let p = PressureActuatedParams {
            approach_weight,
            gap_out_s,
            switch_ratio,
            switch_margin,
            max_wait_s,
            cyclic,
            fair_green_s,
        };
        Ok(PyPressureActuated {
            inner: PressureActuatedController::new(ix.inner.clone(), p)?,
        })
    }
}

/// The `#[pymethods]` of a discharge controller class: the shared `decide` (queue,
/// approaching and expected discharge per movement, see `discharge_decision`), documented
/// by `$decide_doc`, and the class's own methods.
macro_rules! discharge_pymethods {
    ($ty:ident, $decide_doc:literal; $($methods:tt)*) => {
        #[pymethods]
        impl $ty {
            #[doc = $decide_doc]
            #[pyo3(signature = (phase, elapsed, queue, approaching, expected, interval="green", now=0.0))]
            #[allow(clippy::too_many_arguments, clippy::type_complexity)]
            fn decide<'py>(
                &mut self,
                py: Python<'py>,
                phase: usize,
                elapsed: f64,
                queue: PyReadonlyArray1<'py, f64>,
                approaching: PyReadonlyArray1<'py, f64>,
                expected: PyReadonlyArray1<'py, f64>,
                interval: &str,
                now: f64,
            ) -> PyResult<(Option<usize>, Bound<'py, numpy::PyArray1<f64>>, Vec<bool>)> {
                let ix = self.inner.ix.clone();
                let inner = &mut self.inner;
                let arrays = [queue, approaching, expected];
                let dec = discharge_decision(&ix, phase, elapsed, interval, now, arrays, |st, d| {
                    inner.decide_checked(st, d)
                })?;
                Ok((dec.target, dec.pressures.into_pyarray(py), dec.calls))
            }
            $($methods)*
        }
    };
}

/// The cyclic gap-out controller (cyclic order, skip uncalled phases, end a green when the
/// vehicles expected at the stop line within h s fall below a share of saturation flow).
#[pyclass(name = "CyclicGapController", module = "engine._core")]
#[derive(Clone)]
pub struct PyCyclicGap {
    inner: CyclicGapController,
}

discharge_pymethods! {
    PyCyclicGap, "Returns (target or None, demand per phase, calls per phase).";
    #[new]
    #[pyo3(signature = (ix, max_green_through_s=60.0, max_green_left_s=30.0, horizon_s=6.0, efficiency=0.2, lane_sat_vps=0.5, min_call_veh=0.5, phase_lanes=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        ix: &PyIntersection,
        max_green_through_s: f64,
        max_green_left_s: f64,
        horizon_s: f64,
        efficiency: f64,
        lane_sat_vps: f64,
        min_call_veh: f64,
        phase_lanes: Option<Vec<f64>>,
    ) -> PyResult<Self> {
        let p = CyclicGapParams {
            discharge: DischargeParams {
                max_green_through_s,
                max_green_left_s,
                horizon_s,
                efficiency,
                lane_sat_vps,
                min_call_veh,
            },
            phase_lanes,
        };
        Ok(PyCyclicGap {
            inner: CyclicGapController::new(ix.inner.clone(), p)?,
        })
    }
}

/// NEMA dual-ring controller (two rings per barrier group, each gapping out on its own
/// expected discharge). Needs an intersection with the 8 dual-ring phases.
#[pyclass(name = "DualRingController", module = "engine._core")]
#[derive(Clone)]
pub struct PyDualRing {
    inner: DualRingController,
}

discharge_pymethods! {
    PyDualRing, "Returns (target or None, demand per movement group, calls per phase). \
    Movement groups: g·4 + ring·2 + slot (g 0 = N/S, 1 = E/W; slot 0 left, 1 through + right).";
    #[new]
    #[pyo3(signature = (ix, max_green_through_s=60.0, max_green_left_s=30.0, horizon_s=6.0, efficiency=0.35, lane_sat_vps=0.5, min_call_veh=0.5, lead_left_veh=f64::INFINITY, early_left_veh=f64::INFINITY, count_right_lanes=false, early_left_queue_veh=9.0, busy_cross_queue_veh=40.0, busy_max_green_through_s=45.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        ix: &PyIntersection,
        max_green_through_s: f64,
        max_green_left_s: f64,
        horizon_s: f64,
        efficiency: f64,
        lane_sat_vps: f64,
        min_call_veh: f64,
        lead_left_veh: f64,
        early_left_veh: f64,
        count_right_lanes: bool,
        early_left_queue_veh: f64,
        busy_cross_queue_veh: f64,
        busy_max_green_through_s: f64,
    ) -> PyResult<Self> {
        let p = DualRingParams {
            discharge: DischargeParams {
                max_green_through_s,
                max_green_left_s,
                horizon_s,
                efficiency,
                lane_sat_vps,
                min_call_veh,
            },
            lead_left_veh,
            early_left_veh,
            early_left_queue_veh,
            busy_cross_queue_veh,
            busy_max_green_through_s,
            count_right_lanes,
        };
        Ok(PyDualRing {
            inner: DualRingController::new(ix.inner.clone(), p)?,
        })
    }
    /// The parameters in effect (constructor keyword → value).
    #[getter]
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        dual_ring_params_dict(py, &self.inner.params)
    }
    /// The Rust core's defaults (`DualRingParams::default()`), keyed as the constructor's
    /// keywords: the one source the Python signatures are tested against.
    #[staticmethod]
    fn default_params(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
        dual_ring_params_dict(py, &DualRingParams::default())
    }
    /// Movement ids of each of the 8 movement groups.
    #[getter]
    fn groups(&self) -> Vec<Vec<String>> {
        (0..8)
            .map(|gi| {
                self.inner
                    .group_movements(gi)
                    .iter()
                    .map(|&m| self.inner.ix.movements[m].id.clone())
                    .collect()
            })
            .collect()
    }
}

fn dual_ring_params_dict<'py>(py: Python<'py>, p: &DualRingParams) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let dp = &p.discharge;
    for (k, v) in [
        ("max_green_through_s", dp.max_green_through_s),
        ("max_green_left_s", dp.max_green_left_s),
        ("horizon_s", dp.horizon_s),
        ("efficiency", dp.efficiency),
        ("lane_sat_vps", dp.lane_sat_vps),
        ("min_call_veh", dp.min_call_veh),
        ("lead_left_veh", p.lead_left_veh),
        ("early_left_veh", p.early_left_veh),
        ("early_left_queue_veh", p.early_left_queue_veh),
        ("busy_cross_queue_veh", p.busy_cross_queue_veh),
        ("busy_max_green_through_s", p.busy_max_green_through_s),
    ] {
        d.set_item(k, v)?;
    }
    d.set_item("count_right_lanes", p.count_right_lanes)?;
    Ok(d)
}

/// Coordinated-actuated control on a common cycle (the coordinated phase `order[0]`
/// anchored to its offset, a held band, the other phases skipped / gapping out / forced
/// off at their planned end; see `engine.signal.CoordActuatedController`).
#[pyclass(name = "CoordActuatedController", module = "engine._core")]
#[derive(Clone)]
pub struct PyCoordActuated {
    inner: CoordActuatedController,
}

discharge_pymethods! {
    PyCoordActuated, "Returns (target or None, demand per phase, calls per phase).";
    #[new]
    #[pyo3(signature = (ix, greens, offset=0.0, order=None, cycle=None, coord_hold=0.75, horizon_s=6.0, efficiency=0.2, lane_sat_vps=0.5, min_call_veh=0.5, phase_lanes=None, start_tolerance_s=1.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        ix: &PyIntersection,
        greens: Vec<f64>,
        offset: f64,
        order: Option<Vec<usize>>,
        cycle: Option<f64>,
        coord_hold: f64,
        horizon_s: f64,
        efficiency: f64,
        lane_sat_vps: f64,
        min_call_veh: f64,
        phase_lanes: Option<Vec<f64>>,
        start_tolerance_s: f64,
    ) -> PyResult<Self> {
        let base = CoordActuatedParams::new(greens, offset);
        let p = CoordActuatedParams {
            discharge: DischargeParams {
                horizon_s,
                efficiency,
                lane_sat_vps,
                min_call_veh,
                ..base.discharge
            },
            phase_lanes,
            cycle_s: cycle,
            order,
            coord_hold,
            start_tolerance_s,
            ..base
        };
        Ok(PyCoordActuated {
            inner: CoordActuatedController::new(ix.inner.clone(), p)?,
        })
    }
    /// Cycle length (s): planned greens + the clearances of the phase changes.
    #[getter]
    fn cycle(&self) -> f64 {
        self.inner.cycle
    }
    /// Planned green per phase (s), after fitting the cycle.
    #[getter]
    fn greens(&self) -> Vec<f64> {
        self.inner.greens.clone()
    }
    /// Position in the cycle where each phase's planned green starts (s).
    #[getter]
    fn starts(&self) -> Vec<f64> {
        self.inner.starts.clone()
    }
    /// Position in the cycle where each phase is forced off (s).
    #[getter]
    fn force_offs(&self) -> Vec<f64> {
        self.inner.force_offs.clone()
    }
    #[getter]
    fn order(&self) -> Vec<usize> {
        self.inner.order().to_vec()
    }
    #[getter]
    fn offset(&self) -> f64 {
        self.inner.params.offset_s
    }
}

/// Fixed-time (coordinated) plan follower.
#[pyclass(name = "FixedTimeController", module = "engine._core")]
#[derive(Clone)]
pub struct PyFixedTime {
    inner: FixedTimeController,
}

#[pymethods]
impl PyFixedTime {
    #[new]
    #[pyo3(signature = (ix, greens, offset=0.0))]
    fn new(ix: &PyIntersection, greens: Vec<f64>, offset: f64) -> PyResult<Self> {
        Ok(PyFixedTime {
            inner: FixedTimeController::new(ix.inner.clone(), &greens, offset)?,
        })
    }
    #[getter]
    fn cycle(&self) -> f64 {
        self.inner.cycle
    }
}

/// Adaptive plan follower (re-plans once per cycle from counted arrivals).
#[pyclass(name = "AdaptiveController", module = "engine._core")]
#[derive(Clone)]
pub struct PyAdaptiveController {
    inner: AdaptiveFollower,
}

#[pymethods]
impl PyAdaptiveController {
    #[new]
    #[pyo3(signature = (ix, initial_flows, alpha=0.4, max_cycle_change=10.0, max_green_change=8.0))]
    fn new(
        ix: &PyIntersection,
        initial_flows: Vec<f64>,
        alpha: f64,
        max_cycle_change: f64,
        max_green_change: f64,
    ) -> PyResult<Self> {
        let p = AdaptiveParams {
            alpha,
            max_cycle_change,
            max_green_change,
        };
        Ok(PyAdaptiveController {
            inner: AdaptiveFollower::new(ix.inner.clone(), p, &initial_flows)?,
        })
    }
}

/// Controller + safety state machine, stepped by the simulation.
#[pyclass(name = "SignalController", module = "engine._core")]
pub struct PySignalController {
    inner: SignalController,
    zeros: Vec<f64>,
}

#[pymethods]
impl PySignalController {
    #[new]
    #[pyo3(signature = (ix, controller=None, initial_phase=0))]
    fn new(
        ix: &PyIntersection,
        controller: Option<&Bound<'_, PyAny>>,
        initial_phase: usize,
    ) -> PyResult<Self> {
        let strategy = match controller {
            None => Strategy::Manual,
            Some(c) => {
                if let Ok(c) = c.cast::<PyMaxPressure>() {
                    Strategy::MaxPressure(c.borrow().inner.clone())
                } else if let Ok(c) = c.cast::<PyPressureActuated>() {
                    Strategy::PressureActuated(c.borrow().inner.clone())
                } else if let Ok(c) = c.cast::<PyCyclicGap>() {
                    Strategy::CyclicGap(c.borrow().inner.clone())
                } else if let Ok(c) = c.cast::<PyDualRing>() {
                    Strategy::DualRing(Box::new(c.borrow().inner.clone()))
                } else if let Ok(c) = c.cast::<PyCoordActuated>() {
                    Strategy::CoordActuated(Box::new(c.borrow().inner.clone()))
                } else if let Ok(c) = c.cast::<PyFixedTime>() {
                    Strategy::Fixed(c.borrow().inner.clone())
                } else if let Ok(c) = c.cast::<PyAdaptiveController>() {
                    Strategy::Adaptive(Box::new(c.borrow().inner.clone()))
                } else {
                    return Err(CoreError::input(
                        "controller must be a MaxPressureController, PressureActuatedController, CyclicGapController, DualRingController, CoordActuatedController, FixedTimeController, AdaptiveController or None",
                    )
                    .into());
                }
            }
        };
        let check_ix = |other: &Arc<Intersection>| -> PyResult<()> {
            if !Arc::ptr_eq(other, &ix.inner) && **other != *ix.inner {
                return Err(sig(format!(
                    "controller was built for intersection '{}', not '{}'",
                    other.id, ix.inner.id
                )));
            }
            Ok(())
        };
        match &strategy {
            Strategy::MaxPressure(c) => check_ix(&c.ix)?,
            Strategy::PressureActuated(c) => check_ix(&c.ix)?,
            Strategy::CyclicGap(c) => check_ix(&c.ix)?,
            Strategy::DualRing(c) => check_ix(&c.ix)?,
            Strategy::CoordActuated(c) => check_ix(&c.ix)?,
            Strategy::Fixed(c) => check_ix(&c.ix)?,
            Strategy::Adaptive(c) => check_ix(&c.planner.ix)?,
            Strategy::Manual => {}
        }
        Ok(PySignalController {
            inner: SignalController::new(ix.inner.clone(), strategy, initial_phase)?,
            zeros: vec![0.0; ix.inner.n_movements()],
        })
    }

    /// Advance `dt` seconds with the detector state measured now; returns the status dict.
    #[pyo3(signature = (dt, queue=None, approaching=None, gap=None, downstream=None, arrivals=None, request=None, expected=None))]
    #[allow(clippy::too_many_arguments)]
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        dt: f64,
        queue: Option<PyReadonlyArray1<'py, f64>>,
        approaching: Option<PyReadonlyArray1<'py, f64>>,
        gap: Option<PyReadonlyArray1<'py, f64>>,
        downstream: Option<PyReadonlyArray1<'py, f64>>,
        arrivals: Option<PyReadonlyArray1<'py, f64>>,
        request: Option<&Bound<'py, PyAny>>,
        expected: Option<PyReadonlyArray1<'py, f64>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let req = match request {
            None => None,
            Some(r) => Some(
                PyIntersection {
                    inner: self.inner.intersection().clone(),
                }
                .phase_arg(r)?,
            ),
        };
        let n = self.zeros.len();
        let det = detector(
            n,
            &queue,
            &approaching,
            &gap,
            &downstream,
            &arrivals,
            &expected,
            &self.zeros,
        )?;
        let st = self.inner.step(dt, det.as_ref(), req)?;
        status_dict(py, self.inner.intersection(), &st, self.inner.last_request)
    }

    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        status_dict(
            py,
            self.inner.intersection(),
            &self.inner.machine.status(),
            self.inner.last_request,
        )
    }

    /// Per-movement indication: 0 red, 1 yellow, 2 green.
    fn lights<'py>(&self, py: Python<'py>) -> Bound<'py, numpy::PyArray1<i8>> {
        self.inner
            .machine
            .lights()
            .iter()
            .map(|l| l.code())
            .collect::<Vec<_>>()
            .into_pyarray(py)
    }

    /// SUMO state string. `links[i]` is the movement (id or index) driving SUMO link i, or
    /// None for a link that stays red; `minor[i]` marks permissive links ('g').
    #[pyo3(signature = (links, minor=None))]
    fn sumo_state(&self, links: &Bound<'_, PyList>, minor: Option<Vec<bool>>) -> PyResult<String> {
        let ix = self.inner.intersection();
        let mut v = Vec::with_capacity(links.len());
        for l in links.iter() {
            if l.is_none() {
                v.push(None);
            } else if let Ok(i) = l.extract::<usize>() {
                v.push(Some(i));
            } else {
                let s: String = l.extract()?;
                v.push(Some(ix.movement_index(&s).ok_or_else(|| {
                    sig(format!("intersection '{}': unknown movement '{s}'", ix.id))
                })?));
            }
        }
        Ok(self.inner.machine.sumo_state(&v, minor.as_deref())?)
    }

    /// Call an emergency preemption for a phase (index or name).
    fn preempt(&mut self, phase: &Bound<'_, PyAny>) -> PyResult<()> {
        let p = PyIntersection {
            inner: self.inner.intersection().clone(),
        }
        .phase_arg(phase)?;
        Ok(self.inner.machine.preempt(p)?)
    }
    fn clear_preempt(&mut self) {
        self.inner.machine.clear_preempt()
    }
    #[getter]
    fn preempting(&self) -> Option<usize> {
        self.inner.machine.preempting()
    }
    #[getter]
    fn switches(&self) -> u64 {
        self.inner.machine.switches
    }
    /// Current plan greens (fixed / adaptive / coordinated-actuated strategies), else None.
    #[getter]
    fn plan_greens(&self) -> Option<Vec<f64>> {
        match &self.inner.strategy {
            Strategy::Fixed(c) => Some(c.greens.clone()),
            Strategy::CoordActuated(c) => Some(c.greens.clone()),
            Strategy::Adaptive(c) => Some(c.plan.greens.clone()),
            _ => None,
        }
    }
    #[getter]
    fn pressures(&self) -> Option<Vec<f64>> {
        match &self.inner.strategy {
            Strategy::MaxPressure(c) => Some(c.pressures.clone()),
            Strategy::PressureActuated(c) => Some(c.pressures.clone()),
            Strategy::CyclicGap(c) => Some(c.demand.clone()),
            Strategy::DualRing(c) => Some(c.demand.clone()),
            Strategy::CoordActuated(c) => Some(c.demand.clone()),
            _ => None,
        }
    }
}

fn corridor(
    distances_m: Vec<f64>,
    speed_out: Vec<f64>,
    speed_in: Vec<f64>,
    green_split: Vec<f64>,
    cycle_min: f64,
    cycle_max: f64,
    cycle_step: f64,
) -> GreenWaveCorridor {
    GreenWaveCorridor {
        distances_m,
        speed_out,
        speed_in,
        green_split,
        cycle_min,
        cycle_max,
        cycle_step,
    }
}

fn gw_dict<'py>(py: Python<'py>, r: &GreenWaveResult) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("cycle", r.cycle)?;
    d.set_item("offsets", r.offsets.clone())?;
    d.set_item("bandwidth_out", r.bandwidth_out)?;
    d.set_item("bandwidth_in", r.bandwidth_in)?;
    d.set_item("efficiency", r.efficiency)?;
    d.set_item("cycles_examined", r.cycles_examined)?;
    Ok(d)
}

/// Best common cycle and offsets (speeds in m/s). GIL released.
#[pyfunction]
#[pyo3(signature = (distances_m, speed_out, speed_in, green_split, cycle_min, cycle_max, cycle_step=1.0))]
#[allow(clippy::too_many_arguments)]
fn green_wave_optimize<'py>(
    py: Python<'py>,
    distances_m: Vec<f64>,
    speed_out: Vec<f64>,
    speed_in: Vec<f64>,
    green_split: Vec<f64>,
    cycle_min: f64,
    cycle_max: f64,
    cycle_step: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let c = corridor(
        distances_m,
        speed_out,
        speed_in,
        green_split,
        cycle_min,
        cycle_max,
        cycle_step,
    );
    let r = py.detach(|| c.optimize())?;
    gw_dict(py, &r)
}

/// Exhaustive search over offsets on a grid (verification on small corridors).
#[pyfunction]
#[pyo3(signature = (distances_m, speed_out, speed_in, green_split, cycle, step))]
fn green_wave_exhaustive<'py>(
    py: Python<'py>,
    distances_m: Vec<f64>,
    speed_out: Vec<f64>,
    speed_in: Vec<f64>,
    green_split: Vec<f64>,
    cycle: f64,
    step: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let c = corridor(
        distances_m,
        speed_out,
        speed_in,
        green_split,
        cycle,
        cycle,
        1.0,
    );
    let r = py.detach(|| c.exhaustive(cycle, step))?;
    gw_dict(py, &r)
}

/// (outbound, inbound) bandwidth of given offsets.
#[pyfunction]
#[pyo3(signature = (distances_m, speed_out, speed_in, green_split, cycle, offsets))]
fn green_wave_bandwidths(
    distances_m: Vec<f64>,
    speed_out: Vec<f64>,
    speed_in: Vec<f64>,
    green_split: Vec<f64>,
    cycle: f64,
    offsets: Vec<f64>,
) -> PyResult<(f64, f64)> {
    let c = corridor(
        distances_m,
        speed_out,
        speed_in,
        green_split,
        cycle,
        cycle,
        1.0,
    );
    Ok(c.bandwidths(cycle, &offsets)?)
}

/// Time `n` max-pressure (or pressure-actuated) decisions on random detector states inside
/// Rust (GIL released). Returns seconds.
#[pyfunction]
#[pyo3(signature = (ix, n, hybrid=false, seed=1))]
fn bench_decisions(
    py: Python<'_>,
    ix: &PyIntersection,
    n: usize,
    hybrid: bool,
    seed: u64,
) -> PyResult<f64> {
    let ix = ix.inner.clone();
    py.detach(|| crate::signal::control::bench_decisions(ix, n, hybrid, seed))
        .map_err(Into::into)
}

/// Time `n` adaptive re-plans inside Rust. Returns seconds.
#[pyfunction]
#[pyo3(signature = (ix, n, seed=1))]
fn bench_replans(py: Python<'_>, ix: &PyIntersection, n: usize, seed: u64) -> PyResult<f64> {
    let ix = ix.inner.clone();
    py.detach(|| crate::signal::control::bench_replans(ix, n, seed))
        .map_err(Into::into)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyIntersection>()?;
    m.add_class::<PyAdaptivePlanner>()?;
    m.add_class::<PyMaxPressure>()?;
    m.add_class::<PyPressureActuated>()?;
    m.add_class::<PyCyclicGap>()?;
    m.add_class::<PyCoordActuated>()?;
    m.add_class::<PyDualRing>()?;
    m.add_class::<PyFixedTime>()?;
    m.add_class::<PyAdaptiveController>()?;
    m.add_class::<PySignalController>()?;
    m.add_function(wrap_pyfunction!(webster_plan, m)?)?;
    m.add_function(wrap_pyfunction!(critical_lane_plan, m)?)?;
    m.add_function(wrap_pyfunction!(ite_yellow, m)?)?;
    m.add_function(wrap_pyfunction!(all_red_time, m)?)?;
    m.add_function(wrap_pyfunction!(ped_min_green, m)?)?;
    m.add_function(wrap_pyfunction!(green_wave_optimize, m)?)?;
    m.add_function(wrap_pyfunction!(green_wave_exhaustive, m)?)?;
    m.add_function(wrap_pyfunction!(green_wave_bandwidths, m)?)?;
    m.add_function(wrap_pyfunction!(bench_decisions, m)?)?;
    m.add_function(wrap_pyfunction!(bench_replans, m)?)?;
    Ok(())
}
