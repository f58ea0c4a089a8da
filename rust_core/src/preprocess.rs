//! `preprocess`: frame → model-input tensors.
//!
//! * [`letterbox_into`]: YOLO letterbox (aspect-preserving bilinear resize, pad 114),
//!   normalise to 0..1, BGR→RGB and HWC→CHW — one pass over the output, written into a
//!   caller-provided slice so a batch tensor `[N,3,H,W]` is filled frame by frame.
//! * [`warp_perspective`] / [`warp_perspective_chw`]: bilinear perspective warp through an
//!   inverse homography (output pixel → source pixel), for plate rectification and crops.
//!
//! Resampling follows OpenCV's `INTER_LINEAR` (pixel centres at +0.5, edge clamping), so
//! results match `cv2.resize` to within rounding. Per-column source indices and weights
//! are computed once per call; rows are processed in parallel with rayon; nothing is
//! allocated per pixel.
use crate::error::{CoreError, CoreResult};
use rayon::prelude::*;

/// YOLO's letterbox grey, 114/255.
pub const PAD_VALUE: f32 = 114.0 / 255.0;

/// A borrowed 8-bit BGR image, `height` rows of `stride` bytes (`stride >= 3 * width`).
#[derive(Clone, Copy, Debug)]
pub struct ImageView<'a> {
    pub data: &'a [u8],
    pub width: usize,
    pub height: usize,
    pub stride: usize,
}

impl<'a> ImageView<'a> {
    /// A tightly packed `height × width × 3` image.
    pub fn new(data: &'a [u8], width: usize, height: usize) -> CoreResult<Self> {
        Self::with_stride(data, width, height, width * 3)
    }

    pub fn with_stride(
        data: &'a [u8],
        width: usize,
        height: usize,
        stride: usize,
    ) -> CoreResult<Self> {
        if width == 0 || height == 0 {
            return Err(CoreError::frame(format!("empty image {width}x{height}")));
        }
        if stride < width * 3 {
            return Err(CoreError::frame(format!(
                "row stride {stride} < 3 * width {width}"
            )));
        }
        let need = stride * (height - 1) + width * 3;
        if data.len() < need {
            return Err(CoreError::frame(format!(
                "buffer of {} bytes too small for {width}x{height}x3 (stride {stride}, need {need})",
                data.len()
            )));
        }
        Ok(Self {
            data,
            width,
            height,
            stride,
        })
    }

    #[inline]
    fn row(&self, y: usize) -> &'a [u8] {
        &self.data[y * self.stride..y * self.stride + self.width * 3]
    }
}

/// Where the resized image sits inside the letterboxed canvas. Map a box back to the
/// original image with `x_orig = (x - pad_x) / scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Letterbox {
    pub scale: f32,
    pub pad_x: f32,
    pub pad_y: f32,
    /// size of the resized image inside the canvas
    pub new_w: usize,
    pub new_h: usize,
}

/// Letterbox geometry for a `src_w × src_h` image on a `dst_w × dst_h` canvas (centred,
/// like Ultralytics' `letterbox(auto=False)`).
pub fn letterbox_params(src_w: usize, src_h: usize, dst_w: usize, dst_h: usize) -> Letterbox {
    let r = f64::min(dst_w as f64 / src_w as f64, dst_h as f64 / src_h as f64);
    let new_w = ((src_w as f64 * r).round() as usize).clamp(1, dst_w);
    let new_h = ((src_h as f64 * r).round() as usize).clamp(1, dst_h);
    let pad_x = (dst_w - new_w) / 2;
    let pad_y = (dst_h - new_h) / 2;
    Letterbox {
        scale: r as f32,
        pad_x: pad_x as f32,
        pad_y: pad_y as f32,
        new_w,
        new_h,
    }
}

/// One axis of bilinear resampling: for each destination index, the two source indices
/// and the weight of the second. OpenCV `INTER_LINEAR` convention.
#[derive(Clone, Debug)]
struct AxisTable {
    i0: Vec<u32>,
    i1: Vec<u32>,
    w1: Vec<f32>,
}

impl AxisTable {
    fn new(src: usize, dst: usize) -> Self {
        let inv = src as f64 / dst as f64;
        let mut t = AxisTable {
            i0: Vec::with_capacity(dst),
            i1: Vec::with_capacity(dst),
            w1: Vec::with_capacity(dst),
        };
        for d in 0..dst {
            let s = ((d as f64 + 0.5) * inv - 0.5).max(0.0);
            let mut i0 = s.floor() as usize;
            let mut f = (s - i0 as f64) as f32;
            if i0 >= src - 1 {
                i0 = src - 1;
                f = 0.0;
            }
            let i1 = (i0 + 1).min(src - 1);
            t.i0.push(i0 as u32);
            t.i1.push(i1 as u32);
            t.w1.push(f);
        }
        t
    }
}

/// The two source rows of one output row and their vertical weights (1/255 folded in).
struct RowTaps<'a> {
    row0: &'a [u8],
    row1: &'a [u8],
    wy0: f32,
    wy1: f32,
}

type RowKernel =
    fn(&mut [f32], &RowTaps, &[usize], &[usize], &[f32], &mut [f32], &mut [f32], &mut [f32]);

/// One output row of the letterbox: blend the two source rows vertically into `blend`
/// (contiguous, vectorises), then sample horizontally into the R, G, B plane rows.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn letterbox_row(
    blend: &mut [f32],
    t: &RowTaps,
    xo0: &[usize],
    xo1: &[usize],
    wx1: &[f32],
    r: &mut [f32],
    g: &mut [f32],
    b: &mut [f32],
) {
    for ((o, &p0), &p1) in blend.iter_mut().zip(t.row0).zip(t.row1) {
        *o = p0 as f32 * t.wy0 + p1 as f32 * t.wy1;
    }
    let blend = &*blend;
    let n = r
        .len()
        .min(g.len())
        .min(b.len())
        .min(xo0.len())
        .min(xo1.len())
        .min(wx1.len());
    // SAFETY: SSE2 is part of x86_64; the caller sized `blend` with BLEND_PAD zeroed
    // floats past the row and asserted the tap invariants.
    #[cfg(target_arch = "x86_64")]
    let start = unsafe { horizontal_sse2(blend, xo0, wx1, r, g, b, n) };
    #[cfg(not(target_arch = "x86_64"))]
    let start = 0;
    for x in start..n {
        let (o0, o1) = (xo0[x], xo1[x]);
        let w1 = wx1[x];
        let w0 = 1.0 - w1;
        // SAFETY: the caller asserted o + 2 < blend.len() for every tap offset.
        unsafe {
            let v = |o: usize| *blend.get_unchecked(o);
            // BGR in, RGB planes out
            b[x] = v(o0) * w0 + v(o1) * w1;
            g[x] = v(o0 + 1) * w0 + v(o1 + 1) * w1;
            r[x] = v(o0 + 2) * w0 + v(o1 + 2) * w1;
        }
    }
}

/// Zeroed floats kept after the blended row so 4-wide loads at the last pixel stay in
/// bounds (and read finite zeros, which then get weight 0).
const BLEND_PAD: usize = 8;

/// Horizontal pass, 4 output pixels at a time: each pixel's two taps are adjacent source
/// pixels (`o1 = o0 + 3`, or weight 0 at the clamped right edge), so one unaligned load
/// at `o0` and one at `o0 + 3` give [b, g, r, _] of both taps; four such pixels are
/// transposed into one store per plane. Returns the number of pixels done.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn horizontal_sse2(
    blend: &[f32],
    xo0: &[usize],
    wx1: &[f32],
    r: &mut [f32],
    g: &mut [f32],
    b: &mut [f32],
    n: usize,
) -> usize {
    use std::arch::x86_64::*;
    let bp = blend.as_ptr();
    let mut x = 0;
    while x + 4 <= n {
        let mut px = [_mm_setzero_ps(); 4];
        for (k, p) in px.iter_mut().enumerate() {
            let o = *xo0.get_unchecked(x + k);
            debug_assert!(o + 3 + 4 <= blend.len());
            let w1 = *wx1.get_unchecked(x + k);
            let v = _mm_loadu_ps(bp.add(o));
            let u = _mm_loadu_ps(bp.add(o + 3));
            *p = _mm_add_ps(
                _mm_mul_ps(v, _mm_set1_ps(1.0 - w1)),
                _mm_mul_ps(u, _mm_set1_ps(w1)),
            );
        }
        let t0 = _mm_unpacklo_ps(px[0], px[1]); // b0 b1 g0 g1
        let t1 = _mm_unpacklo_ps(px[2], px[3]); // b2 b3 g2 g3
        let t2 = _mm_unpackhi_ps(px[0], px[1]); // r0 r1 .. ..
        let t3 = _mm_unpackhi_ps(px[2], px[3]); // r2 r3 .. ..
        _mm_storeu_ps(b.as_mut_ptr().add(x), _mm_movelh_ps(t0, t1));
        _mm_storeu_ps(g.as_mut_ptr().add(x), _mm_movehl_ps(t1, t0));
        _mm_storeu_ps(r.as_mut_ptr().add(x), _mm_movelh_ps(t2, t3));
        x += 4;
    }
    x
}

#[allow(clippy::too_many_arguments)]
fn letterbox_row_generic(
    blend: &mut [f32],
    t: &RowTaps,
    xo0: &[usize],
    xo1: &[usize],
    wx1: &[f32],
    r: &mut [f32],
    g: &mut [f32],
    b: &mut [f32],
) {
    letterbox_row(blend, t, xo0, xo1, wx1, r, g, b)
}

/// The same code compiled for AVX2 (8-wide vertical blend), chosen at run time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn letterbox_row_avx2(
    blend: &mut [f32],
    t: &RowTaps,
    xo0: &[usize],
    xo1: &[usize],
    wx1: &[f32],
    r: &mut [f32],
    g: &mut [f32],
    b: &mut [f32],
) {
    letterbox_row(blend, t, xo0, xo1, wx1, r, g, b)
}

fn select_row_kernel() -> RowKernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            #[allow(clippy::too_many_arguments)]
            fn avx2(
                blend: &mut [f32],
                t: &RowTaps,
                xo0: &[usize],
                xo1: &[usize],
                wx1: &[f32],
                r: &mut [f32],
                g: &mut [f32],
                b: &mut [f32],
            ) {
                // SAFETY: only selected when the CPU reports AVX2.
                unsafe { letterbox_row_avx2(blend, t, xo0, xo1, wx1, r, g, b) }
            }
            return avx2;
        }
    }
    letterbox_row_generic
}

/// Letterbox `src` into `out`, a CHW float32 slice of exactly `3 * dst_h * dst_w` values
/// (planes R, G, B; values in 0..1; padding 114/255). Rows run in parallel on rayon.
pub fn letterbox_into(
    src: &ImageView,
    dst_w: usize,
    dst_h: usize,
    out: &mut [f32],
) -> CoreResult<Letterbox> {
    letterbox_into_with(src, dst_w, dst_h, out, true)
}

/// [`letterbox_into`] with a choice: `parallel = false` runs every row on the calling
/// thread. On a machine whose cores are already busy (one worker process per core), a
/// sub-millisecond job split across a thread pool waits for descheduled workers; serial
/// is then the faster and steadier choice.
pub fn letterbox_into_with(
    src: &ImageView,
    dst_w: usize,
    dst_h: usize,
    out: &mut [f32],
    parallel: bool,
) -> CoreResult<Letterbox> {
    if dst_w == 0 || dst_h == 0 {
        return Err(CoreError::input(format!(
            "letterbox size must be positive, got {dst_w}x{dst_h}"
        )));
    }
    let plane = dst_w * dst_h;
    if out.len() != 3 * plane {
        return Err(CoreError::input(format!(
            "output slice has {} values, expected 3*{dst_h}*{dst_w} = {}",
            out.len(),
            3 * plane
        )));
    }
    let lb = letterbox_params(src.width, src.height, dst_w, dst_h);
    let (px, py) = (lb.pad_x as usize, lb.pad_y as usize);
    let xt = AxisTable::new(src.width, lb.new_w);
    let yt = AxisTable::new(src.height, lb.new_h);
    // byte offsets of the x taps (3 bytes per pixel)
    let xo0: Vec<usize> = xt.i0.iter().map(|&i| i as usize * 3).collect();
    let xo1: Vec<usize> = xt.i1.iter().map(|&i| i as usize * 3).collect();

    let (r_plane, rest) = out.split_at_mut(plane);
    let (g_plane, b_plane) = rest.split_at_mut(plane);
    const K: f32 = 1.0 / 255.0;
    let row_len = src.width * 3;
    // The taps stay inside the blended source row: checked once here, so the per-pixel
    // loop can skip bounds checks.
    assert!(xo0.iter().chain(&xo1).all(|&o| o + 2 < row_len));
    // ... and the right tap is the next pixel, or has weight 0 (clamped edge)
    assert!(xo0
        .iter()
        .zip(&xo1)
        .zip(&xt.w1)
        .all(|((&a, &b), &w)| b == a + 3 || w == 0.0));
    let row_fn = select_row_kernel();
    let do_row = |blend: &mut Vec<f32>, y: usize, r: &mut [f32], g: &mut [f32], b: &mut [f32]| {
        if y < py || y >= py + lb.new_h {
            r.fill(PAD_VALUE);
            g.fill(PAD_VALUE);
            b.fill(PAD_VALUE);
            return;
        }
        let sy = y - py;
        for v in [&mut *r, &mut *g, &mut *b] {
            v[..px].fill(PAD_VALUE);
            v[px + lb.new_w..].fill(PAD_VALUE);
        }
        let wy1 = yt.w1[sy] * K;
        let rows = RowTaps {
            row0: src.row(yt.i0[sy] as usize),
            row1: src.row(yt.i1[sy] as usize),
            wy0: K - wy1,
            wy1,
        };
        let n = lb.new_w;
        row_fn(
            blend,
            &rows,
            &xo0,
            &xo1,
            &xt.w1,
            &mut r[px..px + n],
            &mut g[px..px + n],
            &mut b[px..px + n],
        );
    };
    // scratch row: the two source rows blended vertically (+ zero padding for SIMD loads)
    let scratch = || vec![0f32; row_len + BLEND_PAD];
    if parallel {
        r_plane
            .par_chunks_mut(dst_w)
            .zip(g_plane.par_chunks_mut(dst_w))
            .zip(b_plane.par_chunks_mut(dst_w))
            .enumerate()
            .for_each_init(scratch, |blend, (y, ((r, g), b))| do_row(blend, y, r, g, b));
    } else {
        let mut blend = scratch();
        r_plane
            .chunks_mut(dst_w)
            .zip(g_plane.chunks_mut(dst_w))
            .zip(b_plane.chunks_mut(dst_w))
            .enumerate()
            .for_each(|(y, ((r, g), b))| do_row(&mut blend, y, r, g, b));
    }
    Ok(lb)
}

/// Letterbox a batch into `out` (`[N,3,dst_h,dst_w]`, contiguous). With `parallel`,
/// frames run in parallel (each frame's rows serially: coarse tasks), or the rows of a
/// single frame do.
pub fn letterbox_batch_into(
    frames: &[ImageView],
    dst_w: usize,
    dst_h: usize,
    out: &mut [f32],
    parallel: bool,
) -> CoreResult<Vec<Letterbox>> {
    let per = 3 * dst_w * dst_h;
    if out.len() != per * frames.len() {
        return Err(CoreError::input(format!(
            "batch output has {} values, expected {} frames x {per}",
            out.len(),
            frames.len()
        )));
    }
    if parallel && frames.len() > 1 {
        frames
            .par_iter()
            .zip(out.par_chunks_mut(per.max(1)))
            .map(|(f, o)| letterbox_into_with(f, dst_w, dst_h, o, false))
            .collect()
    } else {
        frames
            .iter()
            .zip(out.chunks_mut(per.max(1)))
            .map(|(f, o)| letterbox_into_with(f, dst_w, dst_h, o, parallel))
            .collect()
    }
}

/// Allocate-and-fill convenience wrapper around [`letterbox_into`].
pub fn letterbox(src: &ImageView, dst_w: usize, dst_h: usize) -> CoreResult<(Vec<f32>, Letterbox)> {
    let mut out = vec![0f32; 3 * dst_w * dst_h];
    let lb = letterbox_into(src, dst_w, dst_h, &mut out)?;
    Ok((out, lb))
}

// ---- perspective warp -------------------------------------------------------------------

/// Below this many output pixels (a plate crop is ~8k) a warp runs on the calling thread:
/// handing it to the thread pool costs more than the work.
const PARALLEL_MIN_PIXELS: usize = 64 * 1024;

fn check_h(h: &[f64; 9]) -> CoreResult<()> {
    if h.iter().any(|v| !v.is_finite()) {
        return Err(CoreError::input("homography has non-finite entries"));
    }
    Ok(())
}

/// Bilinear sample of all three channels at source position (sx, sy); outside → `None`.
#[inline]
fn sample_bgr(src: &ImageView, sx: f64, sy: f64) -> Option<[f32; 3]> {
    // OpenCV warpPerspective convention: pixel centres at integer coordinates.
    let (w, h) = (src.width as f64, src.height as f64);
    if !(sx > -1.0 && sy > -1.0 && sx < w && sy < h) {
        return None;
    }
    // floor via truncation (sx, sy > -1 here): f64::floor is a libm call without SSE4.1
    let x0 = (sx + 1.0) as isize - 1;
    let y0 = (sy + 1.0) as isize - 1;
    let fx = (sx - x0 as f64) as f32;
    let fy = (sy - y0 as f64) as f32;
    let get = |x: isize, y: isize| -> [f32; 3] {
        // constant-0 border, like cv2.BORDER_CONSTANT
        if x < 0 || y < 0 || x as usize >= src.width || y as usize >= src.height {
            [0.0; 3]
        } else {
            let o = y as usize * src.stride + x as usize * 3;
            [
                src.data[o] as f32,
                src.data[o + 1] as f32,
                src.data[o + 2] as f32,
            ]
        }
    };
    let (p00, p01, p10, p11) = (
        get(x0, y0),
        get(x0 + 1, y0),
        get(x0, y0 + 1),
        get(x0 + 1, y0 + 1),
    );
    let mut o = [0f32; 3];
    for c in 0..3 {
        let top = p00[c] + (p01[c] - p00[c]) * fx;
        let bot = p10[c] + (p11[c] - p10[c]) * fx;
        o[c] = top + (bot - top) * fy;
    }
    Some(o)
}

#[inline]
fn map_point(h: &[f64; 9], x: f64, y: f64) -> Option<(f64, f64)> {
    let wz = h[6] * x + h[7] * y + h[8];
    if wz.abs() < 1e-12 {
        return None;
    }
    Some((
        (h[0] * x + h[1] * y + h[2]) / wz,
        (h[3] * x + h[4] * y + h[5]) / wz,
    ))
}

/// Warp `src` to `out_w × out_h` BGR u8 (HWC). `h_inv` (row-major 3x3) maps an output
/// pixel (x, y) to its source position, i.e. `cv2.warpPerspective(..., flags=INTER_LINEAR |
/// WARP_INVERSE_MAP)` with a black border.
pub fn warp_perspective(
    src: &ImageView,
    h_inv: [f64; 9],
    out_w: usize,
    out_h: usize,
) -> CoreResult<Vec<u8>> {
    check_h(&h_inv)?;
    if out_w == 0 || out_h == 0 {
        return Err(CoreError::input(format!(
            "warp output size must be positive, got {out_w}x{out_h}"
        )));
    }
    let mut out = vec![0u8; out_w * out_h * 3];
    let do_row = |(y, row): (usize, &mut [u8])| {
        for x in 0..out_w {
            if let Some((sx, sy)) = map_point(&h_inv, x as f64, y as f64) {
                if let Some(p) = sample_bgr(src, sx, sy) {
                    for c in 0..3 {
                        // p >= 0: +0.5 then the saturating cast rounds (f32::round is a libm call)
                        row[x * 3 + c] = (p[c] + 0.5) as u8;
                    }
                }
            }
        }
    };
    if out_w * out_h >= PARALLEL_MIN_PIXELS {
        out.par_chunks_mut(out_w * 3).enumerate().for_each(do_row);
    } else {
        out.chunks_mut(out_w * 3).enumerate().for_each(do_row);
    }
    Ok(out)
}

/// Channel normalisation for [`warp_perspective_chw`]: `out = (v - mean[c]) / std[c]`
/// with v in 0..255, channels in output order.
#[derive(Clone, Copy, Debug)]
pub struct Normalize {
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// output planes R,G,B (true) or B,G,R (false)
    pub rgb: bool,
}

impl Default for Normalize {
    /// 0..1 RGB, like the detector input.
    fn default() -> Self {
        Normalize {
            mean: [0.0; 3],
            std: [255.0; 3],
            rgb: true,
        }
    }
}

/// Like [`warp_perspective`] but writes normalised float32 CHW (`3 × out_h × out_w`),
/// ready for a recognition model. Pixels that map outside the source get `(0 - mean)/std`.
pub fn warp_perspective_chw(
    src: &ImageView,
    h_inv: [f64; 9],
    out_w: usize,
    out_h: usize,
    norm: Normalize,
) -> CoreResult<Vec<f32>> {
    check_h(&h_inv)?;
    if out_w == 0 || out_h == 0 {
        return Err(CoreError::input(format!(
            "warp output size must be positive, got {out_w}x{out_h}"
        )));
    }
    if norm.std.iter().any(|&s| s == 0.0 || !s.is_finite())
        || norm.mean.iter().any(|m| !m.is_finite())
    {
        return Err(CoreError::input(
            "normalisation std must be finite and non-zero, mean finite",
        ));
    }
    let plane = out_w * out_h;
    let mut out = vec![0f32; 3 * plane];
    let (p0, rest) = out.split_at_mut(plane);
    let (p1, p2) = rest.split_at_mut(plane);
    let inv_std = [1.0 / norm.std[0], 1.0 / norm.std[1], 1.0 / norm.std[2]];
    // source channel feeding output plane k
    let chan = if norm.rgb {
        [2usize, 1, 0]
    } else {
        [0usize, 1, 2]
    };
    #[allow(clippy::type_complexity)]
    let do_row = |(y, ((a, b), c)): (usize, ((&mut [f32], &mut [f32]), &mut [f32]))| {
        let mut planes: [&mut [f32]; 3] = [a, b, c];
        for x in 0..out_w {
            let p = map_point(&h_inv, x as f64, y as f64)
                .and_then(|(sx, sy)| sample_bgr(src, sx, sy))
                .unwrap_or([0.0; 3]);
            for (k, plane) in planes.iter_mut().enumerate() {
                plane[x] = (p[chan[k]] - norm.mean[k]) * inv_std[k];
            }
        }
    };
    if plane >= PARALLEL_MIN_PIXELS {
        p0.par_chunks_mut(out_w)
            .zip(p1.par_chunks_mut(out_w))
            .zip(p2.par_chunks_mut(out_w))
            .enumerate()
            .for_each(do_row);
    } else {
        p0.chunks_mut(out_w)
            .zip(p1.chunks_mut(out_w))
            .zip(p2.chunks_mut(out_w))
            .enumerate()
            .for_each(do_row);
    }
    Ok(out)
}

/// Inverse homography that maps the output rectangle `out_w × out_h` onto the source
/// quadrilateral `quad` (top-left, top-right, bottom-right, bottom-left, in source
/// pixels) — what [`warp_perspective`] wants to rectify a plate from its four corners.
pub fn quad_to_rect_h_inv(quad: [[f64; 2]; 4], out_w: usize, out_h: usize) -> CoreResult<[f64; 9]> {
    if out_w == 0 || out_h == 0 {
        return Err(CoreError::input("output size must be positive"));
    }
    if quad.iter().flatten().any(|v| !v.is_finite()) {
        return Err(CoreError::input("quad has non-finite coordinates"));
    }
    let (w, h) = ((out_w - 1).max(1) as f64, (out_h - 1).max(1) as f64);
    let dst = [[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]];
    // Solve for H (h33 = 1) with H * dst_i ~ quad_i: 8 equations, 8 unknowns.
    let mut a = nalgebra::SMatrix::<f64, 8, 8>::zeros();
    let mut bv = nalgebra::SVector::<f64, 8>::zeros();
    for i in 0..4 {
        let (x, y) = (dst[i][0], dst[i][1]);
        let (u, v) = (quad[i][0], quad[i][1]);
        let r = 2 * i;
        a.set_row(
            r,
            &nalgebra::RowSVector::<f64, 8>::from_row_slice(&[
                x,
                y,
                1.0,
                0.0,
                0.0,
                0.0,
                -u * x,
                -u * y,
            ]),
        );
        a.set_row(
            r + 1,
            &nalgebra::RowSVector::<f64, 8>::from_row_slice(&[
                0.0,
                0.0,
                0.0,
                x,
                y,
                1.0,
                -v * x,
                -v * y,
            ]),
        );
        bv[r] = u;
        bv[r + 1] = v;
    }
    let sol = a
        .lu()
        .solve(&bv)
        .ok_or_else(|| CoreError::input("degenerate quad (three corners collinear?)"))?;
    let mut hm = [0f64; 9];
    hm[..8].copy_from_slice(sol.as_slice());
    hm[8] = 1.0;
    check_h(&hm)?;
    Ok(hm)
}

/// Inverse homography for an axis-aligned crop `[x0,y0,x1,y1]` (source pixels) resized to
/// `out_w × out_h`.
pub fn crop_h_inv(x0: f64, y0: f64, x1: f64, y1: f64, out_w: usize, out_h: usize) -> [f64; 9] {
    let sx = (x1 - x0) / out_w.max(1) as f64;
    let sy = (y1 - y0) / out_h.max(1) as f64;
    // pixel-centre aligned, like cv2.resize of the crop
    [
        sx,
        0.0,
        x0 + 0.5 * sx - 0.5,
        0.0,
        sy,
        y0 + 0.5 * sy - 0.5,
        0.0,
        0.0,
        1.0,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn img(w: usize, h: usize, seed: u32) -> Vec<u8> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..w * h * 3)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 24) as u8
            })
            .collect()
    }

    /// Straightforward per-pixel reference: compute source coordinates from scratch.
    fn naive_letterbox(data: &[u8], w: usize, h: usize, dw: usize, dh: usize) -> Vec<f32> {
        let lb = letterbox_params(w, h, dw, dh);
        let mut out = vec![PAD_VALUE; 3 * dw * dh];
        let coord = |d: usize, src: usize, dst: usize| {
            let s = ((d as f64 + 0.5) * src as f64 / dst as f64 - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(src - 1);
            let f = if i0 >= src - 1 { 0.0 } else { s - i0 as f64 };
            (i0, (i0 + 1).min(src - 1), f)
        };
        for y in 0..lb.new_h {
            let (y0, y1, fy) = coord(y, h, lb.new_h);
            for x in 0..lb.new_w {
                let (x0, x1, fx) = coord(x, w, lb.new_w);
                for c in 0..3 {
                    let p = |yy: usize, xx: usize| data[(yy * w + xx) * 3 + c] as f64;
                    let v = (p(y0, x0) * (1.0 - fx) + p(y0, x1) * fx) * (1.0 - fy)
                        + (p(y1, x0) * (1.0 - fx) + p(y1, x1) * fx) * fy;
                    let plane = 2 - c;
                    out[plane * dw * dh + (y + lb.pad_y as usize) * dw + x + lb.pad_x as usize] =
                        (v / 255.0) as f32;
                }
            }
        }
        out
    }

    #[test]
    fn letterbox_matches_naive_reference() {
        for &(w, h, dw, dh) in &[
            (768, 576, 416, 416),
            (1920, 1080, 416, 416),
            (640, 360, 320, 256),
            (7, 3, 16, 16),
            (1, 1, 8, 8),
        ] {
            let data = img(w, h, (w * h) as u32);
            let v = ImageView::new(&data, w, h).unwrap();
            let (out, _) = letterbox(&v, dw, dh).unwrap();
            let r = naive_letterbox(&data, w, h, dw, dh);
            let max = out
                .iter()
                .zip(&r)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(max < 1e-5, "{w}x{h}->{dw}x{dh}: max diff {max}");
        }
    }

    #[test]
    fn letterbox_geometry() {
        let lb = letterbox_params(768, 576, 416, 416);
        assert_eq!((lb.new_w, lb.new_h), (416, 312));
        assert_eq!((lb.pad_x, lb.pad_y), (0.0, 52.0));
        let lb = letterbox_params(1080, 1920, 416, 416);
        assert_eq!(lb.new_h, 416);
        assert_eq!(lb.pad_x, ((416 - lb.new_w) / 2) as f32);
    }

    #[test]
    fn pad_rows_and_channel_order() {
        // a pure blue BGR image: R plane 0, B plane 1, pad rows 114/255
        let (w, h) = (8, 4);
        let data: Vec<u8> = (0..w * h).flat_map(|_| [255u8, 0, 0]).collect();
        let v = ImageView::new(&data, w, h).unwrap();
        let (out, lb) = letterbox(&v, 8, 8).unwrap();
        assert_eq!(lb.pad_y, 2.0);
        let plane = 64;
        assert_eq!(out[0], PAD_VALUE); // first row is padding
        let mid = 4 * 8 + 3;
        assert_eq!(out[mid], 0.0); // R
        assert_eq!(out[2 * plane + mid], 1.0); // B
    }

    #[test]
    fn strided_view_and_errors() {
        let data = img(10, 5, 3);
        let mut padded = vec![0u8; 5 * 40];
        for y in 0..5 {
            padded[y * 40..y * 40 + 30].copy_from_slice(&data[y * 30..y * 30 + 30]);
        }
        let a = letterbox(&ImageView::new(&data, 10, 5).unwrap(), 16, 16)
            .unwrap()
            .0;
        let b = letterbox(&ImageView::with_stride(&padded, 10, 5, 40).unwrap(), 16, 16)
            .unwrap()
            .0;
        assert_eq!(a, b);
        assert!(ImageView::new(&data, 0, 5).is_err());
        assert!(ImageView::new(&data, 11, 5).is_err());
        let v = ImageView::new(&data, 10, 5).unwrap();
        let mut small = vec![0f32; 10];
        assert!(letterbox_into(&v, 16, 16, &mut small).is_err());
        assert!(letterbox_into(&v, 0, 16, &mut []).is_err());
    }

    #[test]
    fn batch_fills_each_slot() {
        let d1 = img(20, 10, 1);
        let d2 = img(10, 20, 2);
        let frames = [
            ImageView::new(&d1, 20, 10).unwrap(),
            ImageView::new(&d2, 10, 20).unwrap(),
        ];
        let mut out = vec![0f32; 2 * 3 * 32 * 32];
        let lbs = letterbox_batch_into(&frames, 32, 32, &mut out, true).unwrap();
        let mut seq = vec![0f32; 2 * 3 * 32 * 32];
        letterbox_batch_into(&frames, 32, 32, &mut seq, false).unwrap();
        assert_eq!(out, seq);
        assert_eq!(lbs.len(), 2);
        let single = letterbox(&frames[1], 32, 32).unwrap().0;
        assert_eq!(&out[3 * 32 * 32..], &single[..]);
    }

    #[test]
    fn warp_identity_and_crop() {
        let (w, h) = (12, 9);
        let data = img(w, h, 5);
        let v = ImageView::new(&data, w, h).unwrap();
        let id = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        assert_eq!(warp_perspective(&v, id, w, h).unwrap(), data);
        // integer translation = crop
        let t = [1.0, 0.0, 3.0, 0.0, 1.0, 2.0, 0.0, 0.0, 1.0];
        let out = warp_perspective(&v, t, 4, 4).unwrap();
        for y in 0..4 {
            for x in 0..4 {
                for c in 0..3 {
                    assert_eq!(
                        out[(y * 4 + x) * 3 + c],
                        data[((y + 2) * w + x + 3) * 3 + c]
                    );
                }
            }
        }
        // chw variant with default normalisation: RGB, /255
        let f = warp_perspective_chw(&v, t, 4, 4, Normalize::default()).unwrap();
        assert!((f[0] - data[(2 * w + 3) * 3 + 2] as f32 / 255.0).abs() < 1e-6);
        // outside the source: black
        let far = [1.0, 0.0, 1000.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        assert!(warp_perspective(&v, far, 3, 3)
            .unwrap()
            .iter()
            .all(|&p| p == 0));
        assert!(warp_perspective(&v, [f64::NAN; 9], 3, 3).is_err());
        assert!(warp_perspective(&v, id, 0, 3).is_err());
    }

    #[test]
    fn quad_homography_maps_corners() {
        let quad = [[10.0, 20.0], [110.0, 25.0], [105.0, 60.0], [12.0, 55.0]];
        let h = quad_to_rect_h_inv(quad, 94, 24).unwrap();
        let corners = [[0.0, 0.0], [93.0, 0.0], [93.0, 23.0], [0.0, 23.0]];
        for (c, q) in corners.iter().zip(&quad) {
            let (x, y) = map_point(&h, c[0], c[1]).unwrap();
            assert!((x - q[0]).abs() < 1e-6 && (y - q[1]).abs() < 1e-6);
        }
        assert!(quad_to_rect_h_inv([[0.0, 0.0]; 4], 10, 10).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn letterbox_any_size(w in 1usize..64, h in 1usize..64, dw in 1usize..48, dh in 1usize..48, seed in 0u32..1000) {
            let data = img(w, h, seed);
            let v = ImageView::new(&data, w, h).unwrap();
            let (out, lb) = letterbox(&v, dw, dh).unwrap();
            prop_assert!(out.iter().all(|x| (0.0..=1.0).contains(x)));
            prop_assert!(lb.new_w <= dw && lb.new_h <= dh);
            let r = naive_letterbox(&data, w, h, dw, dh);
            let max = out.iter().zip(&r).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            prop_assert!(max < 1e-5);
            let mut serial = vec![0f32; out.len()];
            letterbox_into_with(&v, dw, dh, &mut serial, false).unwrap();
            prop_assert_eq!(&serial, &out);
        }
    }
}
