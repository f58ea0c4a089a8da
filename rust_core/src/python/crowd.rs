//! Python bindings for [`crate::crowd`]: zone masks on the density grid, per-zone sums
//! and the gathering monitor.
use crate::crowd::{self, GatheringMonitor as CoreMonitor, GatheringRule, ZoneMask};
use crate::error::CoreError;
use numpy::ndarray::{Array1, Array2};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use std::collections::HashMap;
use std::sync::Mutex;

fn poly64(p: &[(f64, f64)]) -> Vec<[f64; 2]> {
    p.iter().map(|&(x, y)| [x, y]).collect()
}

/// Raise InputError if a zone polygon is unusable (fewer than 3 points, zero area,
/// self-intersecting, non-finite).
#[pyfunction]
fn check_zone_polygon(polygon: Vec<(f64, f64)>) -> PyResult<()> {
    Ok(crowd::check_polygon(&poly64(&polygon))?)
}

/// Zone polygons (frame pixels) of one camera; masks per density-grid shape are built
/// once and cached. `CrowdZones(polygons, (frame_w, frame_h)).counts(density)`.
#[pyclass(module = "engine._core")]
struct CrowdZones {
    polygons: Vec<Vec<[f64; 2]>>,
    frame: (f64, f64),
    masks: Mutex<HashMap<(usize, usize), Vec<ZoneMask>>>,
}

impl CrowdZones {
    fn with_masks<T>(&self, gw: usize, gh: usize, f: impl FnOnce(&[ZoneMask]) -> T) -> PyResult<T> {
        let mut cache = self
            .masks
            .lock()
            .map_err(|_| CoreError::input("zone mask cache poisoned"))?;
        if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry((gw, gh)) {
            let ms = self
                .polygons
                .iter()
                .map(|p| ZoneMask::new(p, self.frame.0, self.frame.1, gw, gh))
                .collect::<Result<Vec<_>, _>>()?;
            slot.insert(ms);
        }
        Ok(f(&cache[&(gw, gh)]))
    }
}

#[pymethods]
impl CrowdZones {
    #[new]
    fn new(polygons: Vec<Vec<(f64, f64)>>, frame_size: (f64, f64)) -> PyResult<Self> {
        if !(frame_size.0 > 0.0 && frame_size.1 > 0.0) {
            return Err(CoreError::input(format!(
                "frame_size must be positive (w, h), got {frame_size:?}"
            ))
            .into());
        }
        let mut polys = Vec::with_capacity(polygons.len());
        for (i, p) in polygons.iter().enumerate() {
            let pp = poly64(p);
            crowd::check_polygon(&pp).map_err(|e| CoreError::input(format!("zone {i}: {e}")))?;
            polys.push(pp);
        }
        Ok(CrowdZones {
            polygons: polys,
            frame: frame_size,
            masks: Mutex::new(HashMap::new()),
        })
    }

    #[getter]
    fn areas<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        let a: Vec<f64> = self
            .polygons
            .iter()
            .map(|p| {
                (0..p.len())
                    .map(|k| p[k][0] * p[(k + 1) % p.len()][1] - p[(k + 1) % p.len()][0] * p[k][1])
                    .sum::<f64>()
                    .abs()
                    / 2.0
            })
            .collect();
        Array1::from_vec(a).into_pyarray(py)
    }

    /// People per zone: the density map (grid_h, grid_w) float32 summed inside each zone.
    fn counts<'py>(
        &self,
        py: Python<'py>,
        density: PyReadonlyArray2<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let s = density.shape();
        let (gh, gw) = (s[0], s[1]);
        let data: Vec<f32> = match density.as_slice() {
            Ok(d) => d.to_vec(),
            Err(_) => density.as_array().iter().copied().collect(),
        };
        let sums = self.with_masks(gw, gh, |ms| py.detach(|| crowd::zone_sums(&data, ms)))??;
        Ok(Array1::from_vec(sums).into_pyarray(py))
    }

    /// 0/1 mask of zone `i` on a (grid_h, grid_w) grid.
    fn mask<'py>(
        &self,
        py: Python<'py>,
        i: usize,
        grid_w: usize,
        grid_h: usize,
    ) -> PyResult<Bound<'py, PyArray2<u8>>> {
        if i >= self.polygons.len() {
            return Err(CoreError::input(format!("zone index {i} out of range")).into());
        }
        let d = self.with_masks(grid_w, grid_h, |ms| ms[i].dense())?;
        Ok(Array2::from_shape_vec((grid_h, grid_w), d)
            .map_err(|e| CoreError::input(e.to_string()))?
            .into_pyarray(py))
    }
}

/// Gathering alerts for one zone. `update(ts, count)` → list of (kind, ts, count, value)
/// where kind is "gathering" (value = seconds above threshold) or "crowd_growth"
/// (value = people per minute).
#[pyclass(module = "engine._core")]
struct GatheringMonitor {
    inner: CoreMonitor,
}

#[pymethods]
impl GatheringMonitor {
    #[new]
    #[pyo3(signature = (threshold, dwell_s, growth_per_min=0.0, window_s=60.0, cooldown_s=300.0))]
    fn new(
        threshold: f64,
        dwell_s: f64,
        growth_per_min: f64,
        window_s: f64,
        cooldown_s: f64,
    ) -> PyResult<Self> {
        let rule = GatheringRule {
            threshold,
            dwell_s,
            growth_per_min,
            window_s,
            cooldown_s,
        };
        Ok(GatheringMonitor {
            inner: CoreMonitor::new(rule)?,
        })
    }

    fn update(&mut self, ts: f64, count: f64) -> PyResult<Vec<(&'static str, f64, f64, f64)>> {
        Ok(self
            .inner
            .update(ts, count)?
            .into_iter()
            .map(|e| (e.kind, e.ts, e.count, e.value))
            .collect())
    }
}

/// Overlapping tiles over a (w, h) image: list of (x, y, tile_w, tile_h).
#[pyfunction]
#[pyo3(signature = (width, height, tile=416, overlap=96))]
fn crowd_tile_grid(
    width: usize,
    height: usize,
    tile: usize,
    overlap: usize,
) -> PyResult<Vec<(usize, usize, usize, usize)>> {
    Ok(crowd::tile_grid(width, height, tile, overlap)?
        .into_iter()
        .map(|t| (t[0], t[1], t[2], t[3]))
        .collect())
}

/// Merge person boxes pooled from overlapping tiles: greedy by score, dropping a box
/// whose IoU with a kept box is ≥ iou or whose intersection over the smaller box is
/// ≥ ios with top edges within top_tol × the smaller height (default infinity: any).
/// Returns kept indices (int64), highest score first.
#[pyfunction]
#[pyo3(signature = (xyxy, scores, iou=0.45, ios=0.8, top_tol=f32::INFINITY))]
fn crowd_merge_people<'py>(
    py: Python<'py>,
    xyxy: PyReadonlyArray2<'py, f32>,
    scores: PyReadonlyArray1<'py, f32>,
    iou: f32,
    ios: f32,
    top_tol: f32,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let s = xyxy.shape();
    if s[1] != 4 {
        return Err(CoreError::input(format!("xyxy must be (N, 4), got {s:?}")).into());
    }
    let a = xyxy.as_array();
    let boxes: Vec<[f32; 4]> = a
        .rows()
        .into_iter()
        .map(|r| [r[0], r[1], r[2], r[3]])
        .collect();
    let sc: Vec<f32> = scores.as_array().iter().copied().collect();
    let keep = py.detach(|| crowd::merge_people_tops(&boxes, &sc, iou, ios, top_tol))?;
    Ok(Array1::from_vec(keep.into_iter().map(|i| i as i64).collect()).into_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(check_zone_polygon, m)?)?;
    m.add_class::<CrowdZones>()?;
    m.add_class::<GatheringMonitor>()?;
    m.add_function(wrap_pyfunction!(crowd_tile_grid, m)?)?;
    m.add_function(wrap_pyfunction!(crowd_merge_people, m)?)?;
    Ok(())
}
