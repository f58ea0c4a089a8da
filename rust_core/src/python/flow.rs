//! Python bindings for [`crate::flow`]: columnar numpy arrays in, a dict of numpy arrays
//! out (one entry per (group, window) row, group-major). The GIL is released while
//! aggregating.
use crate::error::CoreError;
use crate::flow;
use numpy::{IntoPyArray, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

fn slice<'a, T: numpy::Element>(name: &str, a: &'a PyReadonlyArray1<'_, T>) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| CoreError::input(format!("{name} must be a contiguous 1-D array")).into())
}

/// Aggregate line crossings per (group, window). See `engine._core.pyi`.
#[pyfunction]
#[pyo3(signature = (ts, lane, speed_kmh, pcu, group_of_lane, edges))]
fn flow_aggregate_crossings<'py>(
    py: Python<'py>,
    ts: PyReadonlyArray1<'py, f64>,
    lane: PyReadonlyArray1<'py, u32>,
    speed_kmh: PyReadonlyArray1<'py, f64>,
    pcu: PyReadonlyArray1<'py, f64>,
    group_of_lane: PyReadonlyArray1<'py, u32>,
    edges: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let (ts, lane, speed_kmh, pcu, gol, edges) = (
        slice("ts", &ts)?,
        slice("lane", &lane)?,
        slice("speed_kmh", &speed_kmh)?,
        slice("pcu", &pcu)?,
        slice("group_of_lane", &group_of_lane)?,
        slice("edges", &edges)?,
    );
    let f = py.detach(|| flow::aggregate_crossings(ts, lane, speed_kmh, pcu, gol, edges))?;
    let d = PyDict::new(py);
    d.set_item("n_groups", f.n_groups)?;
    d.set_item("n_windows", f.n_windows)?;
    d.set_item("count", f.count.into_pyarray(py))?;
    d.set_item("pcu", f.pcu.into_pyarray(py))?;
    d.set_item("volume_vph", f.volume_vph.into_pyarray(py))?;
    d.set_item("pcu_vph", f.pcu_vph.into_pyarray(py))?;
    d.set_item(
        "time_mean_speed_kmh",
        f.time_mean_speed_kmh.into_pyarray(py),
    )?;
    d.set_item(
        "space_mean_speed_kmh",
        f.space_mean_speed_kmh.into_pyarray(py),
    )?;
    d.set_item("n_speed", f.n_speed.into_pyarray(py))?;
    d.set_item("headway_mean_s", f.headway_mean_s.into_pyarray(py))?;
    d.set_item("headway_min_s", f.headway_min_s.into_pyarray(py))?;
    Ok(d)
}

/// Aggregate per-frame vehicle samples per (group, window). See `engine._core.pyi`.
#[pyfunction]
#[pyo3(signature = (frame_ts, frame, lane, dist_m, speed_mps, length_m, segment_m, group_of_lane, edges,
                    detector_from_m=0.0, detector_to_m=10.0, stopped_mps=5.0/3.6, queue_gap_m=25.0,
                    advance_m=None, dt_s=None))]
#[allow(clippy::too_many_arguments)]
fn flow_aggregate_presence<'py>(
    py: Python<'py>,
    frame_ts: PyReadonlyArray1<'py, f64>,
    frame: PyReadonlyArray1<'py, u32>,
    lane: PyReadonlyArray1<'py, u32>,
    dist_m: PyReadonlyArray1<'py, f64>,
    speed_mps: PyReadonlyArray1<'py, f64>,
    length_m: PyReadonlyArray1<'py, f64>,
    segment_m: PyReadonlyArray1<'py, f64>,
    group_of_lane: PyReadonlyArray1<'py, u32>,
    edges: PyReadonlyArray1<'py, f64>,
    detector_from_m: f64,
    detector_to_m: f64,
    stopped_mps: f64,
    queue_gap_m: f64,
    advance_m: Option<PyReadonlyArray1<'py, f64>>,
    dt_s: Option<PyReadonlyArray1<'py, f64>>,
) -> PyResult<Bound<'py, PyDict>> {
    let cfg = flow::PresenceConfig {
        detector_from_m,
        detector_to_m,
        stopped_mps,
        queue_gap_m,
    };
    let (frame_ts, frame, lane, dist_m, speed_mps, length_m, segment_m, gol, edges) = (
        slice("frame_ts", &frame_ts)?,
        slice("frame", &frame)?,
        slice("lane", &lane)?,
        slice("dist_m", &dist_m)?,
        slice("speed_mps", &speed_mps)?,
        slice("length_m", &length_m)?,
        slice("segment_m", &segment_m)?,
        slice("group_of_lane", &group_of_lane)?,
        slice("edges", &edges)?,
    );
    let advance = match (&advance_m, &dt_s) {
        (Some(a), Some(t)) => Some(flow::TrackAdvance {
            advance_m: slice("advance_m", a)?,
            dt_s: slice("dt_s", t)?,
        }),
        (None, None) => None,
        _ => {
            return Err(
                CoreError::input("advance_m and dt_s go together: give both or neither").into(),
            )
        }
    };
    let p = py.detach(|| {
        flow::aggregate_presence(
            frame_ts, frame, lane, dist_m, speed_mps, length_m, segment_m, gol, edges, advance,
            &cfg,
        )
    })?;
    let d = PyDict::new(py);
    d.set_item("n_groups", p.n_groups)?;
    d.set_item("n_windows", p.n_windows)?;
    d.set_item("frames", p.frames.into_pyarray(py))?;
    d.set_item("occupancy", p.occupancy.into_pyarray(py))?;
    d.set_item("density_veh_km", p.density_veh_km.into_pyarray(py))?;
    d.set_item("segment_speed_kmh", p.segment_speed_kmh.into_pyarray(py))?;
    d.set_item("edie_advance_m", p.edie_advance_m.into_pyarray(py))?;
    d.set_item("edie_time_s", p.edie_time_s.into_pyarray(py))?;
    d.set_item("queue_mean_veh", p.queue_mean_veh.into_pyarray(py))?;
    d.set_item("queue_max_veh", p.queue_max_veh.into_pyarray(py))?;
    d.set_item("queue_mean_m", p.queue_mean_m.into_pyarray(py))?;
    d.set_item("queue_max_m", p.queue_max_m.into_pyarray(py))?;
    Ok(d)
}

/// Capacity, degree of saturation, HCM control delay and LOS, element-wise.
#[pyfunction]
fn flow_signal_performance<'py>(
    py: Python<'py>,
    volume_vph: PyReadonlyArray1<'py, f64>,
    sat_flow_vph: PyReadonlyArray1<'py, f64>,
    green_s: PyReadonlyArray1<'py, f64>,
    cycle_s: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let (v, s, g, c) = (
        slice("volume_vph", &volume_vph)?,
        slice("sat_flow_vph", &sat_flow_vph)?,
        slice("green_s", &green_s)?,
        slice("cycle_s", &cycle_s)?,
    );
    let n = v.len();
    if s.len() != n || g.len() != n || c.len() != n {
        return Err(
            CoreError::input("volume, saturation flow, green and cycle differ in length").into(),
        );
    }
    let mut cap = Vec::with_capacity(n);
    let mut x = Vec::with_capacity(n);
    let mut d1 = Vec::with_capacity(n);
    let mut d2 = Vec::with_capacity(n);
    let mut d = Vec::with_capacity(n);
    let mut los = Vec::with_capacity(n);
    for i in 0..n {
        let p = flow::signal_performance(v[i], s[i], g[i], c[i])
            .map_err(|e| CoreError::input(format!("row {i}: {e}")))?;
        cap.push(p.capacity_vph);
        x.push(p.degree_of_saturation);
        d1.push(p.uniform_delay_s);
        d2.push(p.incremental_delay_s);
        d.push(p.control_delay_s);
        los.push(p.los.to_string());
    }
    let out = PyDict::new(py);
    out.set_item("capacity_vph", cap.into_pyarray(py))?;
    out.set_item("degree_of_saturation", x.into_pyarray(py))?;
    out.set_item("uniform_delay_s", d1.into_pyarray(py))?;
    out.set_item("incremental_delay_s", d2.into_pyarray(py))?;
    out.set_item("control_delay_s", d.into_pyarray(py))?;
    out.set_item("los", los)?;
    Ok(out)
}

/// Traffic performance index 0–10 from travel-time indices, element-wise.
#[pyfunction]
#[pyo3(signature = (tti, breaks=None))]
fn flow_tpi<'py>(
    py: Python<'py>,
    tti: PyReadonlyArray1<'py, f64>,
    breaks: Option<[f64; 6]>,
) -> PyResult<Bound<'py, numpy::PyArray1<f64>>> {
    let b = breaks.unwrap_or(flow::TPI_TTI_BREAKS);
    let t = slice("tti", &tti)?;
    let out: Result<Vec<f64>, CoreError> = t
        .iter()
        .map(|&x| flow::traffic_performance_index(x, &b))
        .collect();
    Ok(out?.into_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(flow_aggregate_crossings, m)?)?;
    m.add_function(wrap_pyfunction!(flow_aggregate_presence, m)?)?;
    m.add_function(wrap_pyfunction!(flow_signal_performance, m)?)?;
    m.add_function(wrap_pyfunction!(flow_tpi, m)?)?;
    m.add("FLOW_TPI_TTI_BREAKS", flow::TPI_TTI_BREAKS.to_vec())?;
    Ok(())
}
