//! Python bindings for [`crate::detect`]: one call decodes a whole batch output (GIL
//! released) and returns columnar numpy arrays per image.
use crate::detect::{self, DecodeParams, FrameMeta, Layout};
use crate::error::CoreError;
use numpy::ndarray::{Array1, Array2};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayDyn, PyArrayMethods, PyReadonlyArray1,
    PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::prelude::*;

type DetTuple<'py> = (
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray1<f32>>,
    Bound<'py, PyArray1<i32>>,
);

fn pairs(name: &str, v: Vec<(f32, f32)>, n: usize) -> PyResult<Vec<(f32, f32)>> {
    if v.len() != n {
        return Err(CoreError::input(format!(
            "{name} has {} entries, the output batch has {n}",
            v.len()
        ))
        .into());
    }
    Ok(v)
}

/// Decode a YOLO-family output batch. See `engine/_core.pyi`.
#[pyfunction]
#[pyo3(signature = (output, kind, conf, iou, scales, pads, orig_sizes, max_det=300, class_map=None, input_size=(416, 416)))]
#[allow(clippy::too_many_arguments)]
fn decode_yolo<'py>(
    py: Python<'py>,
    output: &Bound<'py, PyAny>,
    kind: &str,
    conf: f32,
    iou: f32,
    scales: Vec<f32>,
    pads: Vec<(f32, f32)>,
    orig_sizes: Vec<(f32, f32)>,
    max_det: usize,
    class_map: Option<Vec<i32>>,
    input_size: (usize, usize),
) -> PyResult<Vec<DetTuple<'py>>> {
    let layout = Layout::parse(kind)?;
    let arr = output.cast::<PyArrayDyn<f32>>().map_err(|_| {
        CoreError::Model(format!(
            "detector output must be a float32 numpy array, got {}",
            output
                .getattr("dtype")
                .and_then(|d| d.str().map(|s| s.to_string()))
                .unwrap_or_else(|_| output
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default())
        ))
    })?;
    let ro = arr
        .try_readonly()
        .map_err(|_| CoreError::Model("output array is borrowed mutably".into()))?;
    let shape = ro.shape().to_vec();
    // as_slice also accepts Fortran order, which would be read in the wrong order
    if !ro.is_c_contiguous() {
        return Err(CoreError::Model(format!(
            "detector output must be C-contiguous (shape {shape:?})"
        ))
        .into());
    }
    let data = ro.as_slice().map_err(|_| {
        CoreError::Model(format!(
            "detector output must be C-contiguous (shape {shape:?})"
        ))
    })?;
    let n = if shape.len() == 3 { shape[0] } else { 1 };
    if scales.len() != n {
        return Err(CoreError::input(format!(
            "scales has {} entries, the output batch has {n}",
            scales.len()
        ))
        .into());
    }
    let pads = pairs("pads", pads, n)?;
    let sizes = pairs("orig_sizes", orig_sizes, n)?;
    let metas: Vec<FrameMeta> = (0..n)
        .map(|i| FrameMeta {
            scale: scales[i],
            pad_x: pads[i].0,
            pad_y: pads[i].1,
            orig_w: sizes[i].0,
            orig_h: sizes[i].1,
        })
        .collect();
    let params = DecodeParams {
        conf,
        iou,
        max_det,
        class_map: class_map.unwrap_or_else(detect::coco_to_road),
        input_size,
        ..Default::default()
    };
    let dets = py.detach(|| detect::decode(data, &shape, &layout, &metas, &params))?;
    dets.into_iter()
        .map(|d| {
            let k = d.len();
            let xyxy = Array2::from_shape_fn((k, 4), |(i, j)| d.xyxy[i][j]);
            Ok((
                xyxy.into_pyarray(py),
                Array1::from(d.scores).into_pyarray(py),
                Array1::from(d.class_ids).into_pyarray(py),
            ))
        })
        .collect()
}

/// Class-aware NMS over (N,4) xyxy boxes; returns kept indices, best first.
#[pyfunction]
#[pyo3(signature = (xyxy, scores, class_ids, iou=0.45, max_det=300))]
fn nms<'py>(
    py: Python<'py>,
    xyxy: PyReadonlyArray2<'py, f32>,
    scores: PyReadonlyArray1<'py, f32>,
    class_ids: PyReadonlyArray1<'py, i32>,
    iou: f32,
    max_det: usize,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let n = xyxy.shape()[0];
    if xyxy.shape()[1] != 4 || scores.len() != n || class_ids.len() != n {
        return Err(CoreError::input(format!(
            "nms: xyxy must be (N,4) with N scores and N class ids, got {:?}, {}, {}",
            xyxy.shape(),
            scores.len(),
            class_ids.len()
        ))
        .into());
    }
    let boxes: Vec<[f32; 4]> = xyxy
        .as_array()
        .rows()
        .into_iter()
        .map(|r| [r[0], r[1], r[2], r[3]])
        .collect();
    let s = scores.as_array().to_vec();
    let c = class_ids.as_array().to_vec();
    let keep = py.detach(|| detect::nms(&boxes, &s, &c, iou, max_det));
    Ok(Array1::from_iter(keep.into_iter().map(|i| i as i64)).into_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(decode_yolo, m)?)?;
    m.add_function(wrap_pyfunction!(nms, m)?)?;
    Ok(())
}
