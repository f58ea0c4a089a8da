//! `detect`: decode YOLO-family detector outputs into boxes in original-image pixels,
//! then class-aware non-maximum suppression.
//!
//! Layouts ([`Layout`]):
//! * `Yolov3` / `Yolov5` / `Yolox`: `[N, A, 5 + C]`, rows `(cx, cy, w, h, obj, p_0..p_C)`
//!   already decoded to input pixels with probabilities after the logistic. This is what
//!   our YOLOv3-tiny ONNX emits (heads decoded in the graph), what Ultralytics' YOLOv5
//!   export emits, and YOLOX exported with `decode_in_inference=True`.
//! * `YoloxRaw { strides }`: `[N, A, 5 + C]` with `(dx, dy, log w, log h)` relative to a
//!   grid cell (YOLOX with `decode_in_inference=False`); decoded here from the input size.
//! * `Yolov8`: `[N, 4 + C, A]` (channels first), `(cx, cy, w, h, p_0..p_C)`, no objectness.
//!
//! Score = `obj * p_best` (or `p_best` for v8), best over *all* model classes; the class
//! is then mapped through a class map (e.g. COCO → road classes) and unmapped classes are
//! dropped. Rows with non-finite numbers are skipped; they never panic.
use crate::error::{CoreError, CoreResult};

#[derive(Clone, Debug, PartialEq)]
pub enum Layout {
    Yolov3,
    Yolov5,
    Yolox,
    YoloxRaw { strides: Vec<u32> },
    Yolov8,
}

impl Layout {
    pub fn parse(kind: &str) -> CoreResult<Layout> {
        match kind.to_ascii_lowercase().as_str() {
            "yolov3" => Ok(Layout::Yolov3),
            "yolov5" => Ok(Layout::Yolov5),
            "yolox" => Ok(Layout::Yolox),
            "yolox_raw" => Ok(Layout::YoloxRaw { strides: vec![8, 16, 32] }),
            "yolov8" => Ok(Layout::Yolov8),
            other => Err(CoreError::Model(format!(
                "unknown detector output kind {other:?} (expected yolov3, yolov5, yolox, yolox_raw, yolov8)"
            ))),
        }
    }

    fn has_objectness(&self) -> bool {
        !matches!(self, Layout::Yolov8)
    }
}

/// Letterbox geometry of one batch item plus its original size, to map boxes back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameMeta {
    pub scale: f32,
    pub pad_x: f32,
    pub pad_y: f32,
    pub orig_w: f32,
    pub orig_h: f32,
}

#[derive(Clone, Debug)]
pub struct DecodeParams {
    pub conf: f32,
    pub iou: f32,
    pub max_det: usize,
    /// model class index → output class id, or -1 to drop. Empty: keep model ids as is.
    pub class_map: Vec<i32>,
    /// network input size (w, h); needed by `YoloxRaw` only
    pub input_size: (usize, usize),
    /// at most this many candidates enter NMS (highest scores first)
    pub max_candidates: usize,
}

impl Default for DecodeParams {
    fn default() -> Self {
        DecodeParams {
            conf: 0.25,
            iou: 0.45,
            max_det: 300,
            class_map: coco_to_road(),
            input_size: (416, 416),
            max_candidates: 30_000,
        }
    }
}

/// COCO-80 → road classes (engine.detections.COCO_TO_ROAD): person 0, bicycle 1, car 2,
/// motorcycle 3, bus 4, truck 5; every other class dropped.
pub fn coco_to_road() -> Vec<i32> {
    let mut m = vec![-1; 80];
    for (coco, road) in [(0usize, 0i32), (1, 1), (2, 2), (3, 3), (5, 4), (7, 5)] {
        m[coco] = road;
    }
    m
}

/// Detections of one image, columnar.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dets {
    pub xyxy: Vec<[f32; 4]>,
    pub scores: Vec<f32>,
    pub class_ids: Vec<i32>,
}

impl Dets {
    pub fn len(&self) -> usize {
        self.scores.len()
    }
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }
}

#[inline]
fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if ua <= 0.0 {
        0.0
    } else {
        inter / ua
    }
}

/// Class-aware greedy NMS. Returns indices of kept boxes, highest score first, at most
/// `max_det`. A box suppresses another only if they share a class and IoU > `iou_thr`.
pub fn nms(
    boxes: &[[f32; 4]],
    scores: &[f32],
    classes: &[i32],
    iou_thr: f32,
    max_det: usize,
) -> Vec<usize> {
    let n = boxes.len().min(scores.len()).min(classes.len());
    let mut order: Vec<usize> = (0..n).filter(|&i| scores[i].is_finite()).collect();
    // sort by score desc, then by index for determinism
    order.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut keep: Vec<usize> = Vec::new();
    // kept boxes grouped per class, so each candidate is compared only within its class
    let mut by_class: std::collections::HashMap<i32, Vec<usize>> = std::collections::HashMap::new();
    for i in order {
        if keep.len() >= max_det {
            break;
        }
        let kept = by_class.entry(classes[i]).or_default();
        if kept.iter().all(|&j| iou(&boxes[i], &boxes[j]) <= iou_thr) {
            kept.push(i);
            keep.push(i);
        }
    }
    keep
}

/// Decode one batch item: `rows` holds this item's output (`A × (5+C)` row-major, or
/// `(4+C) × A` for v8).
fn decode_item(
    data: &[f32],
    layout: &Layout,
    n_anchors: usize,
    n_attr: usize,
    grid: Option<&[(f32, f32, f32)]>,
    meta: &FrameMeta,
    p: &DecodeParams,
) -> Dets {
    let off = if layout.has_objectness() { 5 } else { 4 };
    let n_cls = n_attr - off;
    let v8 = matches!(layout, Layout::Yolov8);
    // accessor: attribute k of anchor a
    let at = |a: usize, k: usize| -> f32 {
        if v8 {
            data[k * n_anchors + a]
        } else {
            data[a * n_attr + k]
        }
    };
    let mut cand_boxes: Vec<[f32; 4]> = Vec::new();
    let mut cand_scores: Vec<f32> = Vec::new();
    let mut cand_cls: Vec<i32> = Vec::new();
    // Channels-first (v8): find each anchor's best class by sweeping the class planes,
    // which are contiguous, instead of striding A floats per class.
    let planes_best: Option<(Vec<f32>, Vec<u32>)> = if v8 {
        let mut best = vec![f32::NEG_INFINITY; n_anchors];
        let mut best_c = vec![0u32; n_anchors];
        let mut bad = vec![false; n_anchors];
        for c in 0..n_cls {
            let plane = &data[(off + c) * n_anchors..(off + c + 1) * n_anchors];
            // branch-free so the sweep vectorises
            for (((b, bc), bad), &v) in best
                .iter_mut()
                .zip(best_c.iter_mut())
                .zip(bad.iter_mut())
                .zip(plane)
            {
                let gt = v > *b;
                *b = if gt { v } else { *b };
                *bc = if gt { c as u32 } else { *bc };
                *bad |= !v.is_finite();
            }
        }
        // NaN/inf poison the anchor: it is skipped below
        for (b, &x) in best.iter_mut().zip(&bad) {
            if x {
                *b = f32::NAN;
            }
        }
        Some((best, best_c))
    } else {
        None
    };
    for a in 0..n_anchors {
        let obj = if off == 5 { at(a, 4) } else { 1.0 };
        if obj.is_nan() || obj < p.conf {
            continue; // also skips NaN
        }
        let (best, best_c) = if let Some((pb, pc)) = &planes_best {
            if n_cls == 0 || !pb[a].is_finite() {
                continue;
            }
            (pb[a], pc[a] as usize)
        } else {
            let mut best = f32::NEG_INFINITY;
            let mut best_c = 0usize;
            let mut finite = true;
            for c in 0..n_cls {
                let s = at(a, off + c);
                if !s.is_finite() {
                    finite = false;
                    break;
                }
                if s > best {
                    best = s;
                    best_c = c;
                }
            }
            if !finite || n_cls == 0 {
                continue;
            }
            (best, best_c)
        };
        let score = obj * best;
        if !score.is_finite() || score < p.conf {
            continue;
        }
        let cls = if p.class_map.is_empty() {
            best_c as i32
        } else {
            match p.class_map.get(best_c) {
                Some(&c) if c >= 0 => c,
                _ => continue,
            }
        };
        let (mut cx, mut cy, mut w, mut h) = (at(a, 0), at(a, 1), at(a, 2), at(a, 3));
        if let Some(g) = grid {
            let (gx, gy, s) = g[a];
            cx = (cx + gx) * s;
            cy = (cy + gy) * s;
            w = w.exp() * s;
            h = h.exp() * s;
        }
        if !(cx.is_finite() && cy.is_finite() && w.is_finite() && h.is_finite())
            || w < 0.0
            || h < 0.0
        {
            continue;
        }
        let inv = 1.0 / meta.scale;
        let x1 = ((cx - 0.5 * w - meta.pad_x) * inv).clamp(0.0, meta.orig_w);
        let y1 = ((cy - 0.5 * h - meta.pad_y) * inv).clamp(0.0, meta.orig_h);
        let x2 = ((cx + 0.5 * w - meta.pad_x) * inv).clamp(0.0, meta.orig_w);
        let y2 = ((cy + 0.5 * h - meta.pad_y) * inv).clamp(0.0, meta.orig_h);
        if x2 <= x1 || y2 <= y1 {
            continue; // nothing left inside the image
        }
        cand_boxes.push([x1, y1, x2, y2]);
        cand_scores.push(score);
        cand_cls.push(cls);
    }
    if cand_scores.len() > p.max_candidates {
        let mut idx: Vec<usize> = (0..cand_scores.len()).collect();
        idx.select_nth_unstable_by(p.max_candidates, |&a, &b| {
            cand_scores[b].total_cmp(&cand_scores[a])
        });
        idx.truncate(p.max_candidates);
        cand_boxes = idx.iter().map(|&i| cand_boxes[i]).collect();
        cand_scores = idx.iter().map(|&i| cand_scores[i]).collect();
        cand_cls = idx.iter().map(|&i| cand_cls[i]).collect();
    }
    let keep = nms(&cand_boxes, &cand_scores, &cand_cls, p.iou, p.max_det);
    Dets {
        xyxy: keep.iter().map(|&i| cand_boxes[i]).collect(),
        scores: keep.iter().map(|&i| cand_scores[i]).collect(),
        class_ids: keep.iter().map(|&i| cand_cls[i]).collect(),
    }
}

/// Grid (gx, gy, stride) per anchor for YOLOX raw outputs: strides in order, row-major.
fn yolox_grid(
    strides: &[u32],
    input: (usize, usize),
    n_anchors: usize,
) -> CoreResult<Vec<(f32, f32, f32)>> {
    let mut g = Vec::with_capacity(n_anchors);
    for &s in strides {
        if s == 0 {
            return Err(CoreError::Model("yolox stride 0".into()));
        }
        let (gw, gh) = (input.0 / s as usize, input.1 / s as usize);
        for y in 0..gh {
            for x in 0..gw {
                g.push((x as f32, y as f32, s as f32));
            }
        }
    }
    if g.len() != n_anchors {
        return Err(CoreError::Model(format!(
            "yolox_raw: output has {n_anchors} anchors but input {}x{} with strides {strides:?} gives {}",
            input.0,
            input.1,
            g.len()
        )));
    }
    Ok(g)
}

/// Decode a whole batch output of shape `shape` (3-D; a 2-D output is one item).
pub fn decode(
    output: &[f32],
    shape: &[usize],
    layout: &Layout,
    metas: &[FrameMeta],
    p: &DecodeParams,
) -> CoreResult<Vec<Dets>> {
    let shape: Vec<usize> = match shape.len() {
        2 => vec![1, shape[0], shape[1]],
        3 => shape.to_vec(),
        _ => {
            return Err(CoreError::Model(format!(
                "detector output must be 2-D or 3-D, got shape {shape:?}"
            )))
        }
    };
    let (n, d1, d2) = (shape[0], shape[1], shape[2]);
    if output.len() != n * d1 * d2 {
        return Err(CoreError::Model(format!(
            "output has {} values, shape {shape:?} needs {}",
            output.len(),
            n * d1 * d2
        )));
    }
    if n != metas.len() {
        return Err(CoreError::Model(format!(
            "output batch is {n} but {} frame metas were given",
            metas.len()
        )));
    }
    let (n_anchors, n_attr) = if matches!(layout, Layout::Yolov8) {
        (d2, d1)
    } else {
        (d1, d2)
    };
    let min_attr = if layout.has_objectness() { 6 } else { 5 };
    if n_attr < min_attr {
        return Err(CoreError::Model(format!(
            "{layout:?} output needs >= {min_attr} values per box, shape {shape:?} has {n_attr}"
        )));
    }
    if !p.class_map.is_empty() && p.class_map.len() < n_attr - (min_attr - 1) {
        return Err(CoreError::input(format!(
            "class map has {} entries but the model has {} classes",
            p.class_map.len(),
            n_attr - (min_attr - 1)
        )));
    }
    for (i, m) in metas.iter().enumerate() {
        if !(m.scale.is_finite()
            && m.scale > 0.0
            && m.pad_x.is_finite()
            && m.pad_y.is_finite()
            && m.orig_w > 0.0
            && m.orig_h > 0.0)
        {
            return Err(CoreError::input(format!(
                "frame meta {i} is invalid: {m:?}"
            )));
        }
    }
    if !(p.iou.is_finite() && p.conf.is_finite()) {
        return Err(CoreError::input("conf and iou thresholds must be finite"));
    }
    let grid = match layout {
        Layout::YoloxRaw { strides } => Some(yolox_grid(strides, p.input_size, n_anchors)?),
        _ => None,
    };
    let per = d1 * d2;
    use rayon::prelude::*;
    Ok(output
        .par_chunks(per.max(1))
        .take(n)
        .zip(metas.par_iter())
        .map(|(item, meta)| decode_item(item, layout, n_anchors, n_attr, grid.as_deref(), meta, p))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meta_identity(w: f32, h: f32) -> FrameMeta {
        FrameMeta {
            scale: 1.0,
            pad_x: 0.0,
            pad_y: 0.0,
            orig_w: w,
            orig_h: h,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn row(cx: f32, cy: f32, w: f32, h: f32, obj: f32, cls: usize, p: f32, nc: usize) -> Vec<f32> {
        let mut r = vec![cx, cy, w, h, obj];
        r.extend((0..nc).map(|c| if c == cls { p } else { 0.0 }));
        r
    }

    #[test]
    fn nms_table() {
        let b = [
            [0.0, 0.0, 10.0, 10.0],
            [1.0, 1.0, 11.0, 11.0],
            [0.0, 0.0, 10.0, 10.0],
            [50.0, 50.0, 60.0, 60.0],
        ];
        // overlapping same class → lower one suppressed; different class kept; far box kept
        assert_eq!(
            nms(&b, &[0.9, 0.8, 0.7, 0.6], &[0, 0, 1, 0], 0.5, 100),
            vec![0, 2, 3]
        );
        // threshold above the IoU (0.68) → both kept
        assert_eq!(nms(&b[..2], &[0.9, 0.8], &[0, 0], 0.7, 100), vec![0, 1]);
        // max_det
        assert_eq!(
            nms(&b, &[0.9, 0.8, 0.7, 0.6], &[0, 1, 2, 3], 0.5, 2),
            vec![0, 1]
        );
        // order by score
        assert_eq!(
            nms(&b, &[0.1, 0.8, 0.7, 0.9], &[0, 1, 2, 3], 0.5, 10),
            vec![3, 1, 2, 0]
        );
        // NaN score dropped
        assert_eq!(
            nms(&b[..1], &[f32::NAN], &[0], 0.5, 10),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn decode_yolov3_maps_back_and_filters() {
        let nc = 80;
        let mut out = Vec::new();
        out.extend(row(208.0, 208.0, 100.0, 50.0, 0.9, 0, 0.9, nc)); // person
        out.extend(row(208.0, 208.0, 100.0, 50.0, 0.9, 56, 0.9, nc)); // chair → dropped
        out.extend(row(100.0, 100.0, 10.0, 10.0, 0.1, 2, 0.9, nc)); // low obj
        out.extend(row(300.0, 300.0, 20.0, 20.0, 0.9, 7, 0.8, nc)); // truck → 5
        let shape = [1, 4, 85];
        // 768x576 letterboxed to 416: scale 416/768, pad_y 52
        let s = 416.0 / 768.0;
        let meta = FrameMeta {
            scale: s,
            pad_x: 0.0,
            pad_y: 52.0,
            orig_w: 768.0,
            orig_h: 576.0,
        };
        let d = decode(
            &out,
            &shape,
            &Layout::Yolov3,
            &[meta],
            &DecodeParams::default(),
        )
        .unwrap();
        assert_eq!(d[0].class_ids, vec![0, 5]);
        let b = d[0].xyxy[0];
        let exp = [
            (158.0) / s,
            (183.0 - 52.0) / s,
            258.0 / s,
            (233.0 - 52.0) / s,
        ];
        for k in 0..4 {
            assert!((b[k] - exp[k]).abs() < 1e-3, "{b:?} vs {exp:?}");
        }
        assert!((d[0].scores[0] - 0.81).abs() < 1e-6);
    }

    #[test]
    fn decode_v8_transposed_and_clip() {
        // 2 classes, 3 anchors, channels first
        let a = 3;
        let rows = [
            [5.0f32, 5.0, 20.0, 20.0, 0.9, 0.1],
            [50.0, 50.0, 10.0, 10.0, 0.2, 0.7],
            [50.0, 50.0, 10.0, 10.0, 0.1, 0.1],
        ];
        let mut out = vec![0f32; 6 * a];
        for (i, r) in rows.iter().enumerate() {
            for k in 0..6 {
                out[k * a + i] = r[k];
            }
        }
        let p = DecodeParams {
            class_map: vec![],
            ..Default::default()
        };
        let d = decode(
            &out,
            &[1, 6, 3],
            &Layout::Yolov8,
            &[meta_identity(60.0, 60.0)],
            &p,
        )
        .unwrap();
        assert_eq!(d[0].class_ids, vec![0, 1]);
        assert_eq!(d[0].xyxy[0], [0.0, 0.0, 15.0, 15.0]); // clipped at 0
        assert!((d[0].scores[1] - 0.7).abs() < 1e-6);
        // a non-finite class score poisons only its own anchor
        out[4 * a + 1] = f32::NAN;
        let d = decode(
            &out,
            &[1, 6, 3],
            &Layout::Yolov8,
            &[meta_identity(60.0, 60.0)],
            &p,
        )
        .unwrap();
        assert_eq!(d[0].class_ids, vec![0]);
    }

    #[test]
    fn decode_yolox_raw_grid() {
        // input 64x64, strides [32] → 2x2 grid; anchor 3 = cell (1,1)
        let mut out = vec![0f32; 4 * 7];
        out[3 * 7..4 * 7].copy_from_slice(&[0.5, 0.5, 0.0, 0.0, 0.9, 0.9, 0.0]);
        let p = DecodeParams {
            class_map: vec![],
            input_size: (64, 64),
            ..Default::default()
        };
        let l = Layout::YoloxRaw { strides: vec![32] };
        let d = decode(&out, &[1, 4, 7], &l, &[meta_identity(64.0, 64.0)], &p).unwrap();
        assert_eq!(d[0].xyxy, vec![[32.0, 32.0, 64.0, 64.0]]);
        let bad = decode(
            &out,
            &[1, 4, 7],
            &Layout::YoloxRaw { strides: vec![16] },
            &[meta_identity(64.0, 64.0)],
            &p,
        );
        assert!(matches!(bad, Err(CoreError::Model(_))));
    }

    #[test]
    fn non_finite_rows_skipped_and_shape_errors() {
        let nc = 80;
        let mut out = Vec::new();
        out.extend(row(f32::NAN, 10.0, 5.0, 5.0, 0.9, 0, 0.9, nc));
        out.extend(row(10.0, 10.0, f32::INFINITY, 5.0, 0.9, 0, 0.9, nc));
        out.extend(row(10.0, 10.0, 5.0, 5.0, f32::NAN, 0, 0.9, nc));
        out.extend(row(10.0, 10.0, 5.0, 5.0, 0.9, 0, f32::NAN, nc));
        out.extend(row(30.0, 30.0, 5.0, 5.0, 0.9, 2, 0.9, nc));
        let m = [meta_identity(100.0, 100.0)];
        let d = decode(
            &out,
            &[1, 5, 85],
            &Layout::Yolov3,
            &m,
            &DecodeParams::default(),
        )
        .unwrap();
        assert_eq!(d[0].class_ids, vec![2]);
        assert!(decode(
            &out,
            &[1, 5, 84],
            &Layout::Yolov3,
            &m,
            &DecodeParams::default()
        )
        .is_err());
        assert!(decode(
            &out,
            &[2, 5, 85],
            &Layout::Yolov3,
            &m,
            &DecodeParams::default()
        )
        .is_err());
        assert!(decode(
            &out[..5],
            &[1, 1, 5],
            &Layout::Yolov3,
            &m,
            &DecodeParams::default()
        )
        .is_err());
        assert!(Layout::parse("yolov9000").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn nms_invariants(raw in proptest::collection::vec((0f32..100.0, 0f32..100.0, 1f32..40.0, 1f32..40.0, 0f32..1.0, 0i32..3), 0..60), thr in 0.1f32..0.9) {
            let boxes: Vec<[f32; 4]> = raw.iter().map(|r| [r.0, r.1, r.0 + r.2, r.1 + r.3]).collect();
            let scores: Vec<f32> = raw.iter().map(|r| r.4).collect();
            let cls: Vec<i32> = raw.iter().map(|r| r.5).collect();
            let keep = nms(&boxes, &scores, &cls, thr, 1000);
            // kept boxes of the same class never overlap above the threshold
            for (i, &a) in keep.iter().enumerate() {
                for &b in &keep[i + 1..] {
                    prop_assert!(cls[a] != cls[b] || iou(&boxes[a], &boxes[b]) <= thr);
                    prop_assert!(scores[a] >= scores[b]);
                }
            }
            // every dropped box overlaps a kept, higher-scored box of its class
            for i in 0..boxes.len() {
                if !keep.contains(&i) {
                    prop_assert!(keep.iter().any(|&k| cls[k] == cls[i] && scores[k] >= scores[i] && iou(&boxes[k], &boxes[i]) > thr));
                }
            }
        }

        #[test]
        fn decode_never_panics(vals in proptest::collection::vec(prop_oneof![Just(f32::NAN), Just(f32::INFINITY), -1e6f32..1e6], 0..200), d2 in 1usize..12) {
            let d1 = vals.len() / d2;
            let data = &vals[..d1 * d2];
            for l in [Layout::Yolov3, Layout::Yolov8, Layout::YoloxRaw { strides: vec![8] }] {
                let p = DecodeParams { class_map: vec![], input_size: (16, 16), ..Default::default() };
                let _ = decode(data, &[1, d1, d2], &l, &[meta_identity(10.0, 10.0)], &p);
            }
        }
    }
}
