//! Python bindings for [`crate::preprocess`]: frames are borrowed from numpy without a
//! copy, the GIL is released for the resampling, results come back as new numpy arrays.
use crate::error::CoreError;
use crate::preprocess::{self, ImageView, Normalize};
use numpy::ndarray::{Array1, Array2, Array3};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArray3, PyArray4, PyArrayMethods, PyReadonlyArray3,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;

const FRAME_CONTRACT: &str = "frame must be uint8 HxWx3 C-contiguous";

/// "float32 (480, 640)" / "list" — what the caller actually passed.
fn describe(obj: &Bound<'_, PyAny>) -> String {
    if let Ok(a) = obj.cast::<numpy::PyUntypedArray>() {
        let dtype = a
            .dtype()
            .str()
            .map(|s| s.to_string())
            .unwrap_or_else(|_| "?".into());
        let shape = a
            .shape()
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let comma = if a.ndim() == 1 { "," } else { "" };
        let layout = if a.is_c_contiguous() {
            ""
        } else {
            " non-contiguous"
        };
        format!("{dtype} ({shape}{comma}){layout}")
    } else {
        obj.get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into())
    }
}

fn frame_error(what: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    CoreError::frame(format!("{what}{FRAME_CONTRACT}, got {}", describe(obj))).into()
}

/// Borrow a frame: uint8, 3-D, last axis 3, C-contiguous, non-empty.
fn borrow_frame<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<PyReadonlyArray3<'py, u8>> {
    let arr = obj
        .cast::<PyArray3<u8>>()
        .map_err(|_| frame_error(what, obj))?;
    let ro = arr
        .try_readonly()
        .map_err(|_| CoreError::frame(format!("{what}frame is being written elsewhere")))?;
    let s = ro.shape();
    if s[2] != 3 || !ro.is_c_contiguous() || s[0] == 0 || s[1] == 0 {
        let empty = if s[0] == 0 || s[1] == 0 {
            " (empty)"
        } else {
            ""
        };
        return Err(CoreError::frame(format!(
            "{what}{FRAME_CONTRACT}, got {}{empty}",
            describe(obj)
        ))
        .into());
    }
    Ok(ro)
}

fn view<'a>(ro: &'a PyReadonlyArray3<'_, u8>) -> PyResult<ImageView<'a>> {
    let s = ro.shape();
    let data = ro
        .as_slice()
        .map_err(|_| CoreError::frame(FRAME_CONTRACT))?;
    Ok(ImageView::new(data, s[1], s[0])?)
}

fn check_size(size: (usize, usize)) -> PyResult<()> {
    if size.0 == 0 || size.1 == 0 || size.0 > 16384 || size.1 > 16384 {
        return Err(CoreError::input(format!(
            "size must be (w, h) with 1..16384 each, got {size:?}"
        ))
        .into());
    }
    Ok(())
}

/// Letterbox one BGR frame to an RGB float32 CHW tensor. Returns (tensor, scale, (pad_x, pad_y)).
#[pyfunction]
#[pyo3(signature = (frame, size=(416, 416), parallel=true))]
#[allow(clippy::type_complexity)]
fn letterbox<'py>(
    py: Python<'py>,
    frame: &Bound<'py, PyAny>,
    size: (usize, usize),
    parallel: bool,
) -> PyResult<(Bound<'py, PyArray3<f32>>, f32, (f32, f32))> {
    check_size(size)?;
    let ro = borrow_frame(frame, "")?;
    let v = view(&ro)?;
    let (w, h) = size;
    // SAFETY: uninitialised float32 array; letterbox_into writes every element (image,
    // padding rows and padding columns) before Python can see it.
    let arr = unsafe { PyArray3::<f32>::new(py, [3, h, w], false) };
    let lb = {
        let mut rw = arr.readwrite();
        let out = rw
            .as_slice_mut()
            .map_err(|_| CoreError::input("output not contiguous"))?;
        py.detach(|| preprocess::letterbox_into_with(&v, w, h, out, parallel))?
    };
    Ok((arr, lb.scale, (lb.pad_x, lb.pad_y)))
}

/// Letterbox a list of frames (any sizes) into one (N,3,h,w) batch tensor.
#[pyfunction]
#[pyo3(signature = (frames, size=(416, 416), parallel=true))]
#[allow(clippy::type_complexity)]
fn letterbox_batch<'py>(
    py: Python<'py>,
    frames: Vec<Bound<'py, PyAny>>,
    size: (usize, usize),
    parallel: bool,
) -> PyResult<(
    Bound<'py, PyArray4<f32>>,
    Bound<'py, PyArray1<f32>>,
    Bound<'py, PyArray2<f32>>,
)> {
    check_size(size)?;
    let ros = frames
        .iter()
        .enumerate()
        .map(|(i, f)| borrow_frame(f, &format!("frames[{i}]: ")))
        .collect::<PyResult<Vec<_>>>()?;
    let views = ros.iter().map(view).collect::<PyResult<Vec<_>>>()?;
    let (w, h) = size;
    let n = views.len();
    // SAFETY: uninitialised; letterbox_batch_into writes every element of every item.
    let arr = unsafe { PyArray4::<f32>::new(py, [n, 3, h, w], false) };
    let lbs = {
        let mut rw = arr.readwrite();
        let out = rw
            .as_slice_mut()
            .map_err(|_| CoreError::input("output not contiguous"))?;
        py.detach(|| preprocess::letterbox_batch_into(&views, w, h, out, parallel))?
    };
    let scales = Array1::from_iter(lbs.iter().map(|l| l.scale));
    let pads = Array2::from_shape_fn(
        (n, 2),
        |(i, k)| if k == 0 { lbs[i].pad_x } else { lbs[i].pad_y },
    );
    Ok((arr, scales.into_pyarray(py), pads.into_pyarray(py)))
}

fn h9(h_inv: &Bound<'_, PyAny>) -> PyResult<[f64; 9]> {
    let flat: Vec<f64> = if let Ok(a) = h_inv.extract::<numpy::PyReadonlyArrayDyn<f64>>() {
        a.as_array().iter().copied().collect()
    } else if let Ok(rows) = h_inv.extract::<Vec<Vec<f64>>>() {
        rows.into_iter().flatten().collect()
    } else {
        h_inv
            .extract::<Vec<f64>>()
            .map_err(|_| CoreError::input("h_inv must be a 3x3 float64 array or 9 numbers"))?
    };
    flat.try_into().map_err(|v: Vec<f64>| {
        CoreError::input(format!("h_inv must have 9 entries (3x3), got {}", v.len())).into()
    })
}

/// Perspective-warp a BGR frame through `h_inv` (output pixel -> source pixel).
/// `out="u8"`: (h, w, 3) uint8 BGR. `out="chw"`: (3, h, w) float32, `(v - mean) / std`
/// per output channel (v in 0..255), RGB planes unless `rgb=False`.
#[pyfunction]
#[pyo3(signature = (frame, h_inv, size, out="u8", mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0), rgb=true))]
#[allow(clippy::too_many_arguments)]
fn warp_perspective<'py>(
    py: Python<'py>,
    frame: &Bound<'py, PyAny>,
    h_inv: &Bound<'py, PyAny>,
    size: (usize, usize),
    out: &str,
    mean: (f32, f32, f32),
    std: (f32, f32, f32),
    rgb: bool,
) -> PyResult<Bound<'py, PyAny>> {
    check_size(size)?;
    let ro = borrow_frame(frame, "")?;
    let v = view(&ro)?;
    let h = h9(h_inv)?;
    let (w, hh) = size;
    match out {
        "u8" => {
            let data = py.detach(|| preprocess::warp_perspective(&v, h, w, hh))?;
            let arr = Array3::from_shape_vec((hh, w, 3), data)
                .map_err(|e| CoreError::input(e.to_string()))?;
            Ok(arr.into_pyarray(py).into_any())
        }
        "chw" => {
            let norm = Normalize {
                mean: [mean.0, mean.1, mean.2],
                std: [std.0, std.1, std.2],
                rgb,
            };
            let data = py.detach(|| preprocess::warp_perspective_chw(&v, h, w, hh, norm))?;
            let arr = Array3::from_shape_vec((3, hh, w), data)
                .map_err(|e| CoreError::input(e.to_string()))?;
            Ok(arr.into_pyarray(py).into_any())
        }
        other => {
            Err(CoreError::input(format!("out must be \"u8\" or \"chw\", got {other:?}")).into())
        }
    }
}

/// Inverse homography mapping the `size` rectangle onto `quad` (TL, TR, BR, BL, source px).
#[pyfunction]
fn quad_to_rect_h_inv<'py>(
    py: Python<'py>,
    quad: Vec<(f64, f64)>,
    size: (usize, usize),
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    if quad.len() != 4 {
        return Err(
            CoreError::input(format!("quad must have 4 points, got {}", quad.len())).into(),
        );
    }
    let q = [
        [quad[0].0, quad[0].1],
        [quad[1].0, quad[1].1],
        [quad[2].0, quad[2].1],
        [quad[3].0, quad[3].1],
    ];
    let h = preprocess::quad_to_rect_h_inv(q, size.0, size.1)?;
    let arr =
        Array2::from_shape_vec((3, 3), h.to_vec()).map_err(|e| CoreError::input(e.to_string()))?;
    Ok(arr.into_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(letterbox, m)?)?;
    m.add_function(wrap_pyfunction!(letterbox_batch, m)?)?;
    m.add_function(wrap_pyfunction!(warp_perspective, m)?)?;
    m.add_function(wrap_pyfunction!(quad_to_rect_h_inv, m)?)?;
    Ok(())
}
