//! Python bindings for [`crate::plate`]: detector decode, rectification into the
//! recogniser tensor, CTC + plate rules, voting and privacy tokens. Arrays are borrowed
//! from numpy; the GIL is released for the per-pixel work.
use crate::error::CoreError;
use crate::plate::{self, PlateCheck, PlateDetectorDecoder, RecInput};
use crate::preprocess::ImageView;
use numpy::ndarray::{Array1, Array2, Array3, Array4};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArray3, PyArray4, PyArrayMethods, PyReadonlyArray3,
    PyReadonlyArrayDyn, PyUntypedArrayMethods,
};
use pyo3::prelude::*;

fn borrow_frame<'py>(obj: &Bound<'py, PyAny>) -> PyResult<PyReadonlyArray3<'py, u8>> {
    let bad = || CoreError::frame("frame must be a uint8 HxWx3 C-contiguous numpy array");
    let arr = obj.cast::<PyArray3<u8>>().map_err(|_| bad())?;
    let ro = arr.try_readonly().map_err(|_| bad())?;
    let s = ro.shape();
    if s[2] != 3 || s[0] == 0 || s[1] == 0 || !ro.is_c_contiguous() {
        return Err(CoreError::frame(format!(
            "frame must be uint8 HxWx3 C-contiguous, got shape {s:?}"
        ))
        .into());
    }
    Ok(ro)
}

fn view<'a>(ro: &'a PyReadonlyArray3<'_, u8>) -> PyResult<ImageView<'a>> {
    let s = ro.shape();
    let data = ro
        .as_slice()
        .map_err(|_| CoreError::frame("frame must be C-contiguous"))?;
    Ok(ImageView::new(data, s[1], s[0])?)
}

fn f32_vec(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<f32>> {
    let a: PyReadonlyArrayDyn<f32> = obj
        .extract()
        .map_err(|_| CoreError::Model(format!("{what} must be a float32 numpy array")))?;
    Ok(a.as_array().iter().copied().collect())
}

fn quads_of(obj: &Bound<'_, PyAny>) -> PyResult<Vec<[[f32; 2]; 4]>> {
    let a: PyReadonlyArrayDyn<f32> = obj
        .extract()
        .map_err(|_| CoreError::input("quads must be a float32 array of shape (N, 4, 2)"))?;
    let s = a.shape().to_vec();
    let flat: Vec<f32> = a.as_array().iter().copied().collect();
    let n = match s.as_slice() {
        [n, 4, 2] => *n,
        [4, 2] => 1,
        _ => {
            return Err(
                CoreError::input(format!("quads must have shape (N, 4, 2), got {s:?}")).into(),
            )
        }
    };
    Ok((0..n)
        .map(|i| {
            let q = &flat[i * 8..i * 8 + 8];
            [[q[0], q[1]], [q[2], q[3]], [q[4], q[5]], [q[6], q[7]]]
        })
        .collect())
}

/// Decode `clp_det` outputs for one image. Returns boxes (K,4) xyxy, scores (K,),
/// corners (K,4,2) TL,TR,BR,BL — in source pixels (input pixels × scale).
#[pyfunction]
#[pyo3(signature = (loc, conf, landms, input_hw, scale=(1.0, 1.0), conf_threshold=0.5, nms_iou=0.4, keep_top_k=50))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn plate_decode_detections<'py>(
    py: Python<'py>,
    loc: &Bound<'py, PyAny>,
    conf: &Bound<'py, PyAny>,
    landms: &Bound<'py, PyAny>,
    input_hw: (usize, usize),
    scale: (f32, f32),
    conf_threshold: f32,
    nms_iou: f32,
    keep_top_k: usize,
) -> PyResult<(
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray1<f32>>,
    Bound<'py, PyArray3<f32>>,
)> {
    let (l, c, m) = (
        f32_vec(loc, "loc")?,
        f32_vec(conf, "conf")?,
        f32_vec(landms, "landms")?,
    );
    if !(scale.0 > 0.0 && scale.1 > 0.0) {
        return Err(CoreError::input("scale must be positive").into());
    }
    let dec = PlateDetectorDecoder {
        conf_threshold,
        nms_iou,
        keep_top_k,
        ..Default::default()
    };
    let dets = py.detach(|| dec.decode(&l, &c, &m, input_hw.0, input_hw.1, scale.0, scale.1))?;
    let k = dets.len();
    let boxes = Array2::from_shape_fn((k, 4), |(i, j)| dets[i].bbox[j]);
    let scores = Array1::from_iter(dets.iter().map(|d| d.score));
    let corners = Array3::from_shape_fn((k, 4, 2), |(i, j, a)| dets[i].corners[j][a]);
    Ok((
        boxes.into_pyarray(py),
        scores.into_pyarray(py),
        corners.into_pyarray(py),
    ))
}

/// Rectify plates (quads (N,4,2) TL,TR,BR,BL) into the recogniser's (N,3,height,W)
/// float32 tensor; returns (tensor, widths). Raises PlateError for a plate smaller than
/// `min_size` (w, h) source pixels or a degenerate quad. `aspect` > 0 rectifies to that
/// width/height instead of the quad's measured one.
#[pyfunction]
#[pyo3(signature = (frame, quads, height=32, margin=1.0/3.0, max_width=480, min_size=(24.0, 8.0), aspect=0.0))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn plate_rec_batch<'py>(
    py: Python<'py>,
    frame: &Bound<'py, PyAny>,
    quads: &Bound<'py, PyAny>,
    height: usize,
    margin: f32,
    max_width: usize,
    min_size: (f32, f32),
    aspect: f32,
) -> PyResult<(Bound<'py, PyArray4<f32>>, Bound<'py, PyArray1<i64>>)> {
    let ro = borrow_frame(frame)?;
    let v = view(&ro)?;
    let qs = quads_of(quads)?;
    if !(0.0..=2.0).contains(&margin)
        || height == 0
        || height > 256
        || max_width > 4096
        || !(0.0..=20.0).contains(&aspect)
    {
        return Err(CoreError::input(
            "margin must be in 0..=2, height 1..=256, max_width ≤ 4096, aspect 0..=20",
        )
        .into());
    }
    let cfg = RecInput {
        height,
        margin,
        min_width: height.min(max_width).max(1),
        max_width,
        min_src_w: min_size.0,
        min_src_h: min_size.1,
        aspect,
    };
    let (data, w, widths) = py.detach(|| plate::rec_batch(&v, &qs, &cfg))?;
    let n = qs.len();
    let arr = Array4::from_shape_vec((n, 3, height, w), data)
        .map_err(|e| CoreError::input(e.to_string()))?;
    let ws = Array1::from_iter(widths.into_iter().map(|x| x as i64));
    Ok((arr.into_pyarray(py), ws.into_pyarray(py)))
}

/// The part `[u0,u1]×[v0,v1]` (unit square of the rectified plate) of a quad, as a quad.
#[pyfunction]
fn plate_sub_quad<'py>(
    py: Python<'py>,
    quad: &Bound<'py, PyAny>,
    u0: f32,
    v0: f32,
    u1: f32,
    v1: f32,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let q = quads_of(quad)?;
    if q.len() != 1 {
        return Err(CoreError::input("plate_sub_quad takes one quad (4, 2)").into());
    }
    let s = plate::sub_quad(&q[0], u0, v0, u1, v1)?;
    Ok(Array2::from_shape_fn((4, 2), |(i, j)| s[i][j]).into_pyarray(py))
}

/// Background colour of each plate quad: "blue", "yellow", "green", "white", "black", "unknown".
#[pyfunction]
fn plate_colours(
    py: Python<'_>,
    frame: &Bound<'_, PyAny>,
    quads: &Bound<'_, PyAny>,
) -> PyResult<Vec<&'static str>> {
    let ro = borrow_frame(frame)?;
    let v = view(&ro)?;
    let qs = quads_of(quads)?;
    let out = py.detach(|| {
        qs.iter()
            .map(|q| plate::plate_colour(&v, q).map(|c| c.as_str()))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(out)
}

type CheckTuple = (String, Vec<f32>, bool, bool, Option<&'static str>, String);

fn to_tuple(c: PlateCheck) -> CheckTuple {
    (
        c.text,
        c.conf,
        c.valid,
        c.corrected,
        c.kind.map(|k| k.as_str()),
        c.reason,
    )
}

/// CTC decoder + plate rules for one recogniser dictionary.
///
/// `PlateDecoder(chars, blank=0).decode(probs (N,T,C))` → list of
/// `(text, per-char conf, valid, corrected, kind | None, reason)`.
#[pyclass(module = "engine._core", frozen)]
struct PlateDecoder {
    dict: Vec<char>,
    blank: usize,
}

#[pymethods]
impl PlateDecoder {
    #[new]
    #[pyo3(signature = (chars, blank=0))]
    fn new(chars: Vec<String>, blank: usize) -> PyResult<Self> {
        let mut dict = Vec::with_capacity(chars.len());
        for (i, s) in chars.iter().enumerate() {
            let mut it = s.chars();
            match (it.next(), it.next()) {
                (Some(c), None) => dict.push(c),
                _ => {
                    return Err(CoreError::input(format!(
                        "dictionary entry {i} ({s:?}) is not one character"
                    ))
                    .into())
                }
            }
        }
        if blank > dict.len() {
            return Err(CoreError::input("blank index beyond the dictionary").into());
        }
        Ok(PlateDecoder { dict, blank })
    }

    #[getter]
    fn num_classes(&self) -> usize {
        self.dict.len() + 1
    }

    fn decode(&self, py: Python<'_>, probs: &Bound<'_, PyAny>) -> PyResult<Vec<CheckTuple>> {
        let a: PyReadonlyArrayDyn<f32> = probs
            .extract()
            .map_err(|_| CoreError::Model("recogniser output must be float32 (N,T,C)".into()))?;
        let s = a.shape().to_vec();
        if s.len() != 3 {
            return Err(
                CoreError::Model(format!("recogniser output must be (N,T,C), got {s:?}")).into(),
            );
        }
        let flat: Vec<f32> = a.as_array().iter().copied().collect();
        let out =
            py.detach(|| plate::decode_batch(&flat, s[0], s[1], s[2], &self.dict, self.blank))?;
        Ok(out.into_iter().map(to_tuple).collect())
    }
}

/// Apply the plate rules to a text: (text, valid, corrected, kind | None, reason).
#[pyfunction]
fn plate_check(text: &str) -> (String, bool, bool, Option<&'static str>, String) {
    let c = plate::check_text(text);
    (
        c.text,
        c.valid,
        c.corrected,
        c.kind.map(|k| k.as_str()),
        c.reason,
    )
}

/// Per-character vote over several readings of one plate: (text, confs) or None.
#[pyfunction]
fn plate_vote(texts: Vec<String>, confs: Vec<Vec<f32>>) -> PyResult<Option<(String, Vec<f32>)>> {
    if texts.len() != confs.len() {
        return Err(CoreError::input("texts and confs differ in length").into());
    }
    let r: Vec<(String, Vec<f32>)> = texts.into_iter().zip(confs).collect();
    Ok(plate::vote(&r))
}

/// Keyed privacy token: first `hex_len` hex digits of HMAC-SHA256(key, text).
#[pyfunction]
#[pyo3(signature = (key, text, hex_len=16))]
fn plate_token(key: &[u8], text: &str, hex_len: usize) -> PyResult<String> {
    Ok(plate::plate_token(key, text, hex_len)?)
}

/// Tokens for many texts with one key.
#[pyfunction]
#[pyo3(signature = (key, texts, hex_len=16))]
fn plate_tokens(key: &[u8], texts: Vec<String>, hex_len: usize) -> PyResult<Vec<String>> {
    Ok(texts
        .iter()
        .map(|t| plate::plate_token(key, t, hex_len))
        .collect::<Result<_, _>>()?)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(plate_decode_detections, m)?)?;
    m.add_function(wrap_pyfunction!(plate_rec_batch, m)?)?;
    m.add_function(wrap_pyfunction!(plate_sub_quad, m)?)?;
    m.add_function(wrap_pyfunction!(plate_colours, m)?)?;
    m.add_function(wrap_pyfunction!(plate_check, m)?)?;
    m.add_function(wrap_pyfunction!(plate_vote, m)?)?;
    m.add_function(wrap_pyfunction!(plate_token, m)?)?;
    m.add_function(wrap_pyfunction!(plate_tokens, m)?)?;
    m.add_class::<PlateDecoder>()?;
    Ok(())
}
