//! Python bindings for [`crate::track`]: the standalone `Tracker` (one call per frame,
//! columnar arrays in and out, GIL released). `CameraAnalyticsCore` (python/count.rs) wraps
//! the same tracker together with the counters.
use crate::error::CoreError;
use crate::track::{self, TrackerConfig};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Validated columnar detections copied out of numpy (N×16 bytes: negligible next to the
/// work, and it lets the GIL go while the tracker runs).
pub(crate) struct DetsIn {
    pub boxes: Vec<[f32; 4]>,
    pub scores: Vec<f32>,
    pub classes: Vec<i32>,
}

pub(crate) fn dets_in(
    xyxy: &PyReadonlyArray2<'_, f32>,
    scores: &PyReadonlyArray1<'_, f32>,
    class_ids: &PyReadonlyArray1<'_, i32>,
) -> PyResult<DetsIn> {
    let sh = xyxy.shape();
    if sh[1] != 4 {
        return Err(CoreError::input(format!("xyxy must have shape (N, 4), got {sh:?}")).into());
    }
    let boxes: Vec<[f32; 4]> = match xyxy.as_slice() {
        Ok(s) => s
            .chunks_exact(4)
            .map(|c| [c[0], c[1], c[2], c[3]])
            .collect(),
        Err(_) => {
            let v = xyxy.as_array();
            (0..sh[0])
                .map(|i| [v[(i, 0)], v[(i, 1)], v[(i, 2)], v[(i, 3)]])
                .collect()
        }
    };
    let scores = scores.as_array().iter().copied().collect();
    let classes = class_ids.as_array().iter().copied().collect();
    Ok(DetsIn {
        boxes,
        scores,
        classes,
    })
}

pub(crate) fn boxes_to_py<'py>(
    py: Python<'py>,
    b: &[[f32; 4]],
) -> PyResult<Bound<'py, numpy::PyArray2<f32>>> {
    let flat: Vec<f32> = b.iter().flatten().copied().collect();
    Ok(Array2::from_shape_vec((b.len(), 4), flat)
        .map_err(|e| CoreError::input(e.to_string()))?
        .into_pyarray(py))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn tracker_config(
    high_threshold: f32,
    low_threshold: f32,
    new_track_threshold: f32,
    match_iou: f32,
    min_hits: u32,
    max_lost_s: f64,
    speed_window_s: f64,
    class_mismatch_cost: f32,
) -> PyResult<TrackerConfig> {
    let c = TrackerConfig {
        high_threshold,
        low_threshold,
        new_track_threshold,
        match_iou,
        min_hits,
        max_lost_s,
        speed_window_s,
        class_mismatch_cost,
    };
    c.validate()?;
    Ok(c)
}

/// ByteTrack-style multi-object tracker (real-time-stamped Kalman filter, two-stage
/// association, optimal sparse assignment). Returns confirmed tracks only.
#[pyclass(module = "engine._core")]
pub struct Tracker {
    inner: track::Tracker,
}

#[pymethods]
impl Tracker {
    #[new]
    #[pyo3(signature = (high_threshold=0.5, low_threshold=0.1, new_track_threshold=0.6, match_iou=0.2,
                        min_hits=3, max_lost_s=1.5, speed_window_s=1.0, class_mismatch_cost=0.3))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        high_threshold: f32,
        low_threshold: f32,
        new_track_threshold: f32,
        match_iou: f32,
        min_hits: u32,
        max_lost_s: f64,
        speed_window_s: f64,
        class_mismatch_cost: f32,
    ) -> PyResult<Self> {
        let cfg = tracker_config(
            high_threshold,
            low_threshold,
            new_track_threshold,
            match_iou,
            min_hits,
            max_lost_s,
            speed_window_s,
            class_mismatch_cost,
        )?;
        Ok(Tracker {
            inner: track::Tracker::new(cfg)?,
        })
    }

    /// One frame: `xyxy` float32 (N, 4), `scores` float32 (N,), `class_ids` int32 (N,),
    /// `ts` seconds. Returns a dict of arrays over the confirmed tracks matched this frame:
    /// ids (uint64), xyxy (float32 (M, 4)), class_ids, scores, det_index (uint32).
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
        py.detach(|| inner.update(&d.boxes, &d.scores, &d.classes, ts))?;
        let outs: Vec<&track::TrackOut> = self
            .inner
            .outputs()
            .iter()
            .filter(|o| o.confirmed)
            .collect();
        let dict = PyDict::new(py);
        dict.set_item(
            "ids",
            outs.iter()
                .map(|o| o.id)
                .collect::<Vec<u64>>()
                .into_pyarray(py),
        )?;
        dict.set_item(
            "xyxy",
            boxes_to_py(py, &outs.iter().map(|o| o.xyxy).collect::<Vec<_>>())?,
        )?;
        dict.set_item(
            "class_ids",
            outs.iter()
                .map(|o| o.class_id)
                .collect::<Vec<i32>>()
                .into_pyarray(py),
        )?;
        dict.set_item(
            "scores",
            outs.iter()
                .map(|o| o.score)
                .collect::<Vec<f32>>()
                .into_pyarray(py),
        )?;
        dict.set_item(
            "det_index",
            outs.iter()
                .map(|o| o.det_index)
                .collect::<Vec<u32>>()
                .into_pyarray(py),
        )?;
        Ok(dict)
    }

    /// Tracks alive (tentative, confirmed and lost).
    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Number of public ids handed out so far.
    #[getter]
    fn confirmed_total(&self) -> u64 {
        self.inner.confirmed_total()
    }

    #[getter]
    fn last_ts(&self) -> Option<f64> {
        self.inner.last_ts()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Tracker>()?;
    Ok(())
}
