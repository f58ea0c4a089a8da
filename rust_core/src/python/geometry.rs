//! Python bindings for [`crate::geometry`]: `Homography`, `Polygon`, side-of-line and
//! segment tests. Points cross the boundary as float64 (N, 2) arrays.
use crate::error::CoreError;
use crate::geometry::{self, Pt};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

/// (N, 2) float64 array → points.
pub(crate) fn points(name: &str, a: &PyReadonlyArray2<'_, f64>) -> PyResult<Vec<Pt>> {
    let shape = a.shape();
    if shape[1] != 2 {
        return Err(
            CoreError::input(format!("{name} must have shape (N, 2), got {shape:?}")).into(),
        );
    }
    let v = a.as_array();
    Ok((0..shape[0]).map(|i| [v[(i, 0)], v[(i, 1)]]).collect())
}

pub(crate) fn points_to_py<'py>(
    py: Python<'py>,
    pts: Vec<Pt>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let n = pts.len();
    let flat: Vec<f64> = pts.into_iter().flatten().collect();
    let arr = Array2::from_shape_vec((n, 2), flat).map_err(|e| CoreError::input(e.to_string()))?;
    Ok(arr.into_pyarray(py))
}

/// Image (pixels) ↔ road plane (metres) projective map.
#[pyclass(module = "engine._core", frozen)]
#[derive(Clone)]
pub struct Homography {
    pub(crate) inner: geometry::Homography,
}

#[pymethods]
impl Homography {
    /// Fit from ≥4 image↔world point pairs (normalised DLT; least squares for more).
    #[staticmethod]
    fn from_points(
        image: PyReadonlyArray2<'_, f64>,
        world: PyReadonlyArray2<'_, f64>,
    ) -> PyResult<Self> {
        let (i, w) = (points("image", &image)?, points("world", &world)?);
        Ok(Homography {
            inner: geometry::Homography::from_points(&i, &w)?,
        })
    }

    /// From a 3×3 image→world matrix.
    #[staticmethod]
    fn from_matrix(m: PyReadonlyArray2<'_, f64>) -> PyResult<Self> {
        if m.shape() != [3, 3] {
            return Err(CoreError::input("homography matrix must be 3×3").into());
        }
        let v = m.as_array();
        let mut a = [[0.0; 3]; 3];
        for (r, row) in a.iter_mut().enumerate() {
            for (c, x) in row.iter_mut().enumerate() {
                *x = v[(r, c)];
            }
        }
        Ok(Homography {
            inner: geometry::Homography::from_matrix(a)?,
        })
    }

    /// The 3×3 image→world matrix.
    #[getter]
    fn matrix<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let m = self.inner.matrix();
        let arr = Array2::from_shape_vec((3, 3), m.iter().flatten().copied().collect())
            .map_err(|e| CoreError::input(e.to_string()))?;
        Ok(arr.into_pyarray(py))
    }

    /// Image pixels (N, 2) → road metres (N, 2); NaN rows for points at/above the horizon.
    fn to_world<'py>(
        &self,
        py: Python<'py>,
        pts: PyReadonlyArray2<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let p = points("pts", &pts)?;
        let out = p
            .iter()
            .map(|&q| self.inner.to_world(q).unwrap_or([f64::NAN; 2]))
            .collect();
        points_to_py(py, out)
    }

    /// Road metres (N, 2) → image pixels (N, 2); NaN rows for points mapping to infinity.
    fn to_image<'py>(
        &self,
        py: Python<'py>,
        pts: PyReadonlyArray2<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let p = points("pts", &pts)?;
        let out = p
            .iter()
            .map(|&q| self.inner.to_image(q).unwrap_or([f64::NAN; 2]))
            .collect();
        points_to_py(py, out)
    }

    fn __repr__(&self) -> String {
        format!("Homography({:?})", self.inner.matrix())
    }
}

/// A simple polygon (zone) in image pixels; construction validates it.
#[pyclass(module = "engine._core", frozen)]
#[derive(Clone)]
pub struct Polygon {
    pub(crate) inner: geometry::Polygon,
}

#[pymethods]
impl Polygon {
    #[new]
    fn new(points_: PyReadonlyArray2<'_, f64>) -> PyResult<Self> {
        Ok(Polygon {
            inner: geometry::Polygon::new(points("polygon", &points_)?)?,
        })
    }

    #[getter]
    fn area(&self) -> f64 {
        self.inner.area()
    }

    /// Which of the (N, 2) points lie inside.
    fn contains<'py>(
        &self,
        py: Python<'py>,
        pts: PyReadonlyArray2<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray1<bool>>> {
        let p = points("pts", &pts)?;
        Ok(p.iter()
            .map(|&q| self.inner.contains(q))
            .collect::<Vec<bool>>()
            .into_pyarray(py))
    }
}

/// Side of each point relative to the directed line a→b (image coords, y down):
/// +1 left, −1 right, 0 on the line.
#[pyfunction]
fn side_of_line<'py>(
    py: Python<'py>,
    a: (f64, f64),
    b: (f64, f64),
    pts: PyReadonlyArray2<'py, f64>,
) -> PyResult<Bound<'py, PyArray1<i8>>> {
    let p = points("pts", &pts)?;
    let (a, b) = ([a.0, a.1], [b.0, b.1]);
    Ok(p.iter()
        .map(|&q| geometry::side_of_line(a, b, q))
        .collect::<Vec<i8>>()
        .into_pyarray(py))
}

/// Intersection point of closed segments p1p2 and q1q2, or None.
#[pyfunction]
fn segment_intersection(
    p1: (f64, f64),
    p2: (f64, f64),
    q1: (f64, f64),
    q2: (f64, f64),
) -> Option<(f64, f64)> {
    geometry::segment_intersection([p1.0, p1.1], [p2.0, p2.1], [q1.0, q1.1], [q2.0, q2.1])
        .map(|p| (p[0], p[1]))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Homography>()?;
    m.add_class::<Polygon>()?;
    m.add_function(wrap_pyfunction!(side_of_line, m)?)?;
    m.add_function(wrap_pyfunction!(segment_intersection, m)?)?;
    Ok(())
}
