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

/// The tracker settings from Python keyword arguments (`high_threshold=…`, `min_hits=…`;
/// the names of [`TrackerConfig`]'s fields, defaults from `TrackerConfig::default()`),
/// validated. One parser for `Tracker` and `CameraAnalyticsCore`; an unknown name is a
/// `TypeError` naming it.
pub(crate) fn tracker_config(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<TrackerConfig> {
    let mut c = TrackerConfig::default();
    if let Some(kw) = kwargs {
        for (k, v) in kw.iter() {
            let key: String = k.extract()?;
            match key.as_str() {
                "high_threshold" => c.high_threshold = v.extract()?,
                "low_threshold" => c.low_threshold = v.extract()?,
                "new_track_threshold" => c.new_track_threshold = v.extract()?,
                "match_iou" => c.match_iou = v.extract()?,
                "min_hits" => c.min_hits = v.extract()?,
                "max_lost_s" => c.max_lost_s = v.extract()?,
                "speed_window_s" => c.speed_window_s = v.extract()?,
                "class_mismatch_cost" => c.class_mismatch_cost = v.extract()?,
                _ => {
                    return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                        "unexpected tracker keyword argument {key:?}"
                    )))
                }
            }
        }
    }
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
    /// Keyword arguments: the tracker settings (see `tracker_config`).
    #[new]
    #[pyo3(signature = (**tracker))]
    fn new(tracker: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        Ok(Tracker {
            inner: track::Tracker::new(tracker_config(tracker)?)?,
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
        fn col<'py, T: numpy::Element>(
            py: Python<'py>,
            outs: &[&track::TrackOut],
            f: impl Fn(&track::TrackOut) -> T,
        ) -> Bound<'py, numpy::PyArray1<T>> {
            outs.iter()
                .map(|o| f(o))
                .collect::<Vec<T>>()
                .into_pyarray(py)
        }
        dict.set_item("ids", col(py, &outs, |o| o.id))?;
        dict.set_item(
            "xyxy",
            boxes_to_py(py, &outs.iter().map(|o| o.xyxy).collect::<Vec<_>>())?,
        )?;
        dict.set_item("class_ids", col(py, &outs, |o| o.class_id))?;
        dict.set_item("scores", col(py, &outs, |o| o.score))?;
        dict.set_item("det_index", col(py, &outs, |o| o.det_index))?;
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
