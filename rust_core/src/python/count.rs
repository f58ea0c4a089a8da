//! Python bindings for [`crate::count`]: `CameraAnalyticsCore` — tracker + line crossings +
//! zones + road-plane speed in ONE call per frame (GIL released), columnar outputs.
use crate::count::{self, LineSpec};
use crate::error::CoreError;
use crate::geometry;
use crate::python::geometry::{points, points_to_py, Homography};
use crate::python::track::{boxes_to_py, dets_in, tracker_config};
use numpy::{IntoPyArray, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Per-camera tracking and counting core. See `engine._core.pyi` and engine/tracking.py.
#[pyclass(module = "engine._core")]
pub struct CameraAnalyticsCore {
    inner: count::CameraAnalytics,
}

type LineArg = ((f64, f64), (f64, f64), Option<Vec<i32>>, Option<f64>);

#[pymethods]
impl CameraAnalyticsCore {
    /// `lines`: list of (a, b, class_ids | None, margin_px | None) with a, b = (x, y) pixels;
    /// `zones`: list of float64 (K, 2) polygons in pixels; `homography`: image→road map.
    /// Keyword arguments after these: the tracker settings (`high_threshold=…`, …).
    #[new]
    #[pyo3(signature = (lines=Vec::new(), zones=Vec::new(), homography=None, **tracker))]
    fn new(
        lines: Vec<LineArg>,
        zones: Vec<PyReadonlyArray2<'_, f64>>,
        homography: Option<PyRef<'_, Homography>>,
        tracker: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let cfg = tracker_config(tracker)?;
        let lines = lines
            .into_iter()
            .map(|(a, b, classes, margin_px)| LineSpec {
                a: [a.0, a.1],
                b: [b.0, b.1],
                classes,
                margin_px,
            })
            .collect();
        let mut polys = Vec::with_capacity(zones.len());
        for (i, z) in zones.iter().enumerate() {
            let p = geometry::Polygon::new(points(&format!("zone {i}"), z)?).map_err(|e| {
                CoreError::input(format!(
                    "zone {i}: {}",
                    e.to_string().trim_start_matches("invalid input: ")
                ))
            })?;
            polys.push(p);
        }
        let h = homography.map(|h| h.inner.clone());
        Ok(CameraAnalyticsCore {
            inner: count::CameraAnalytics::new(cfg, lines, polys, h)?,
        })
    }

    /// One frame. Returns a dict of numpy arrays:
    /// confirmed tracks — ids, xyxy, class_ids, scores, det_index, world_xy (M, 2), speed_kmh,
    /// stopped_s; crossings — cross_track_id, cross_line, cross_direction (+1 in / −1 out),
    /// cross_class_id, cross_speed_kmh; zones — zone_count, zone_max_dwell_s, and membership
    /// rows zone_member_zone, zone_member_track_id, zone_member_dwell_s.
    fn update<'py>(
        &mut self,
        py: Python<'py>,
        xyxy: PyReadonlyArray2<'py, f32>,
        scores: PyReadonlyArray1<'py, f32>,
        class_ids: PyReadonlyArray1<'py, i32>,
        ts: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let d = dets_in(&xyxy, &scores, &class_ids)?;
        let inner = &mut self.inner;
        py.detach(|| {
            inner
                .update(&d.boxes, &d.scores, &d.classes, ts)
                .map(|_| ())
        })?;
        let o = self.inner.last();
        let dict = PyDict::new(py);
        dict.set_item("ids", o.ids.clone().into_pyarray(py))?;
        dict.set_item("xyxy", boxes_to_py(py, &o.xyxy)?)?;
        dict.set_item("class_ids", o.class_ids.clone().into_pyarray(py))?;
        dict.set_item("scores", o.scores.clone().into_pyarray(py))?;
        dict.set_item("det_index", o.det_index.clone().into_pyarray(py))?;
        dict.set_item("world_xy", points_to_py(py, o.world_xy.clone())?)?;
        dict.set_item("speed_kmh", o.speed_kmh.clone().into_pyarray(py))?;
        dict.set_item("stopped_s", o.stopped_s.clone().into_pyarray(py))?;
        let c = &o.crossings;
        dict.set_item(
            "cross_track_id",
            c.iter()
                .map(|x| x.track_id)
                .collect::<Vec<u64>>()
                .into_pyarray(py),
        )?;
        dict.set_item(
            "cross_line",
            c.iter()
                .map(|x| x.line)
                .collect::<Vec<u32>>()
                .into_pyarray(py),
        )?;
        dict.set_item(
            "cross_direction",
            c.iter()
                .map(|x| x.direction)
                .collect::<Vec<i8>>()
                .into_pyarray(py),
        )?;
        dict.set_item(
            "cross_class_id",
            c.iter()
                .map(|x| x.class_id)
                .collect::<Vec<i32>>()
                .into_pyarray(py),
        )?;
        dict.set_item(
            "cross_speed_kmh",
            c.iter()
                .map(|x| x.speed_kmh)
                .collect::<Vec<f64>>()
                .into_pyarray(py),
        )?;
        dict.set_item("zone_count", o.zone_count.clone().into_pyarray(py))?;
        dict.set_item(
            "zone_max_dwell_s",
            o.zone_max_dwell.clone().into_pyarray(py),
        )?;
        let zm = &o.zone_members;
        dict.set_item(
            "zone_member_zone",
            zm.iter()
                .map(|x| x.0)
                .collect::<Vec<u32>>()
                .into_pyarray(py),
        )?;
        dict.set_item(
            "zone_member_track_id",
            zm.iter()
                .map(|x| x.1)
                .collect::<Vec<u64>>()
                .into_pyarray(py),
        )?;
        dict.set_item(
            "zone_member_dwell_s",
            zm.iter()
                .map(|x| x.2)
                .collect::<Vec<f64>>()
                .into_pyarray(py),
        )?;
        Ok(dict)
    }

    /// Crossing totals so far: list of (line index, direction (+1 in / −1 out), class id, count).
    fn counts(&self) -> Vec<(u32, i8, i32, u64)> {
        self.inner
            .counter()
            .totals()
            .into_iter()
            .map(|((l, d, c), n)| (l, d, c, n))
            .collect()
    }

    /// Tracks alive in the tracker (tentative, confirmed and lost).
    #[getter]
    fn n_alive(&self) -> usize {
        self.inner.tracker().len()
    }

    /// Public ids handed out so far.
    #[getter]
    fn confirmed_total(&self) -> u64 {
        self.inner.tracker().confirmed_total()
    }

    #[getter]
    fn last_ts(&self) -> Option<f64> {
        self.inner.tracker().last_ts()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CameraAnalyticsCore>()?;
    Ok(())
}
