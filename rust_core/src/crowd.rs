//! `crowd`: density-map integration, per-zone counts and gathering detection.
//!
//! * [`ZoneMask`]: a zone polygon (frame pixels) rasterised onto a density-map grid
//!   (cell centres inside the polygon, even-odd rule). Self-intersecting polygons are
//!   rejected: their inside is ambiguous and a count over one would be meaningless.
//! * [`zone_sums`]: each zone's sum of the density map (people), in one pass per zone.
//! * [`GatheringMonitor`]: per-zone alert logic — a count above a threshold for a dwell
//!   time, or growth faster than a rate over a window — with hysteresis and cooldown so
//!   one gathering raises one alert, not one per update.
use crate::error::{CoreError, CoreResult};
use std::collections::VecDeque;

/// True when two non-adjacent edges of the closed polygon cross or touch.
pub fn polygon_self_intersects(poly: &[[f64; 2]]) -> bool {
    let n = poly.len();
    if n < 4 {
        return false;
    }
    let seg = |i: usize| (poly[i], poly[(i + 1) % n]);
    for i in 0..n {
        for j in i + 1..n {
            // adjacent edges share a vertex
            if j == i + 1 || (i == 0 && j == n - 1) {
                continue;
            }
            let (a, b) = seg(i);
            let (c, d) = seg(j);
            if segments_intersect(a, b, c, d) {
                return true;
            }
        }
    }
    false
}

fn orient(a: [f64; 2], b: [f64; 2], c: [f64; 2]) -> f64 {
    (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
}

fn on_segment(a: [f64; 2], b: [f64; 2], p: [f64; 2]) -> bool {
    p[0] >= a[0].min(b[0])
        && p[0] <= a[0].max(b[0])
        && p[1] >= a[1].min(b[1])
        && p[1] <= a[1].max(b[1])
}

fn segments_intersect(a: [f64; 2], b: [f64; 2], c: [f64; 2], d: [f64; 2]) -> bool {
    let (d1, d2, d3, d4) = (
        orient(c, d, a),
        orient(c, d, b),
        orient(a, b, c),
        orient(a, b, d),
    );
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
    {
        return true;
    }
    (d1 == 0.0 && on_segment(c, d, a))
        || (d2 == 0.0 && on_segment(c, d, b))
        || (d3 == 0.0 && on_segment(a, b, c))
        || (d4 == 0.0 && on_segment(a, b, d))
}

/// Validate a zone polygon: ≥ 3 finite vertices, non-zero area, no self-intersection.
pub fn check_polygon(poly: &[[f64; 2]]) -> CoreResult<()> {
    if poly.len() < 3 {
        return Err(CoreError::input(format!(
            "zone polygon needs at least 3 points, got {}",
            poly.len()
        )));
    }
    if poly.iter().flatten().any(|v| !v.is_finite()) {
        return Err(CoreError::input("zone polygon has non-finite coordinates"));
    }
    if polygon_self_intersects(poly) {
        return Err(CoreError::input(
            "zone polygon intersects itself; list its vertices in order around the boundary",
        ));
    }
    let area: f64 = (0..poly.len())
        .map(|i| {
            let (a, b) = (poly[i], poly[(i + 1) % poly.len()]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum::<f64>()
        / 2.0;
    if area.abs() < 1e-9 {
        return Err(CoreError::input("zone polygon has zero area"));
    }
    Ok(())
}

/// A polygon rasterised onto a `grid_w × grid_h` grid covering a `frame_w × frame_h`
/// frame: cell (i, j) belongs to the zone when its centre does.
#[derive(Clone, Debug)]
pub struct ZoneMask {
    pub grid_w: usize,
    pub grid_h: usize,
    /// Per row: half-open column spans inside the polygon.
    spans: Vec<Vec<(usize, usize)>>,
    /// Zone area in frame pixels (for density per area).
    pub area_px: f64,
    pub cells: usize,
}

impl ZoneMask {
    pub fn new(
        poly: &[[f64; 2]],
        frame_w: f64,
        frame_h: f64,
        grid_w: usize,
        grid_h: usize,
    ) -> CoreResult<Self> {
        check_polygon(poly)?;
        if grid_w == 0 || grid_h == 0 || !(frame_w > 0.0 && frame_h > 0.0) {
            return Err(CoreError::input(
                "density grid and frame size must be positive",
            ));
        }
        let (sx, sy) = (frame_w / grid_w as f64, frame_h / grid_h as f64);
        let n = poly.len();
        let mut spans = Vec::with_capacity(grid_h);
        let mut cells = 0;
        let mut xs: Vec<f64> = Vec::new();
        for i in 0..grid_h {
            let y = (i as f64 + 0.5) * sy;
            xs.clear();
            for k in 0..n {
                let (a, b) = (poly[k], poly[(k + 1) % n]);
                // half-open rule on y so shared vertices count once
                if (a[1] <= y && b[1] > y) || (b[1] <= y && a[1] > y) {
                    xs.push(a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1]));
                }
            }
            xs.sort_by(|p, q| p.total_cmp(q));
            let mut row = Vec::new();
            for pair in xs.chunks_exact(2) {
                // cells whose centre (j+0.5)*sx lies in [x0, x1)
                let j0 = ((pair[0] / sx - 0.5).ceil().max(0.0)) as usize;
                let j1 = ((pair[1] / sx - 0.5).ceil().max(0.0) as usize).min(grid_w);
                if j1 > j0 {
                    cells += j1 - j0;
                    row.push((j0, j1));
                }
            }
            spans.push(row);
        }
        let area_px = (0..n)
            .map(|k| {
                let (a, b) = (poly[k], poly[(k + 1) % n]);
                a[0] * b[1] - b[0] * a[1]
            })
            .sum::<f64>()
            .abs()
            / 2.0;
        Ok(ZoneMask {
            grid_w,
            grid_h,
            spans,
            area_px,
            cells,
        })
    }

    /// Sum of `density` (row-major `grid_h × grid_w`) over the zone.
    pub fn sum(&self, density: &[f32]) -> CoreResult<f64> {
        if density.len() != self.grid_w * self.grid_h {
            return Err(CoreError::input(format!(
                "density map has {} cells, zone mask expects {}x{}",
                density.len(),
                self.grid_w,
                self.grid_h
            )));
        }
        let mut s = 0f64;
        for (i, row) in self.spans.iter().enumerate() {
            let base = i * self.grid_w;
            for &(a, b) in row {
                s += density[base + a..base + b]
                    .iter()
                    .map(|&v| v as f64)
                    .sum::<f64>();
            }
        }
        Ok(s)
    }

    /// The mask as a dense 0/1 grid (for tests and drawing).
    pub fn dense(&self) -> Vec<u8> {
        let mut m = vec![0u8; self.grid_w * self.grid_h];
        for (i, row) in self.spans.iter().enumerate() {
            for &(a, b) in row {
                m[i * self.grid_w + a..i * self.grid_w + b].fill(1);
            }
        }
        m
    }
}

/// Sum of the density map over each zone. NaN cells are rejected.
pub fn zone_sums(density: &[f32], masks: &[ZoneMask]) -> CoreResult<Vec<f64>> {
    if density.iter().any(|v| !v.is_finite()) {
        return Err(CoreError::Model("density map has non-finite values".into()));
    }
    masks.iter().map(|m| m.sum(density)).collect()
}

/// Overlapping square tiles covering a `w`×`h` image: `(x, y, tw, th)` per tile, row
/// major. Tiles are `tile` px (clipped to the image); neighbours overlap by at least
/// `overlap` px and the last tile of a row/column ends at the image edge.
pub fn tile_grid(w: usize, h: usize, tile: usize, overlap: usize) -> CoreResult<Vec<[usize; 4]>> {
    if tile == 0 || overlap >= tile || w == 0 || h == 0 {
        return Err(CoreError::input(format!(
            "tile_grid needs tile > overlap ≥ 0 and a non-empty image, got tile {tile}, overlap {overlap}, image {w}x{h}"
        )));
    }
    let starts = |len: usize| -> Vec<usize> {
        if len <= tile {
            return vec![0];
        }
        let n = (len - overlap).div_ceil(tile - overlap);
        let n = n.max(2);
        (0..n)
            .map(|i| ((i * (len - tile)) as f64 / (n - 1) as f64).round() as usize)
            .collect()
    };
    let (xs, ys) = (starts(w), starts(h));
    let mut out = Vec::with_capacity(xs.len() * ys.len());
    for &y in &ys {
        for &x in &xs {
            out.push([x, y, tile.min(w), tile.min(h)]);
        }
    }
    Ok(out)
}

/// Greedy merge of person boxes pooled from overlapping tiles (and a whole-image pass):
/// highest score first, a box is dropped when it overlaps a kept box with IoU ≥ `iou`
/// or covers it / is covered by it with intersection-over-smaller ≥ `ios` (a fragment
/// of a person cut by a tile edge lies inside the whole person's box). Returns the kept
/// indices, highest score first. See [`merge_people_tops`] for the top-edge rule.
pub fn merge_people(
    boxes: &[[f32; 4]],
    scores: &[f32],
    iou: f32,
    ios: f32,
) -> CoreResult<Vec<usize>> {
    merge_people_tops(boxes, scores, iou, ios, f32::INFINITY)
}

/// [`merge_people`] where the intersection-over-smaller rule also needs the two top
/// edges within `top_tol` × the smaller box's height: an upper-body fragment of a
/// person shares the head (the top edge), while a person standing behind another,
/// whose box lies mostly inside the front person's, has their head elsewhere.
/// `top_tol` = infinity is plain [`merge_people`].
pub fn merge_people_tops(
    boxes: &[[f32; 4]],
    scores: &[f32],
    iou: f32,
    ios: f32,
    top_tol: f32,
) -> CoreResult<Vec<usize>> {
    if boxes.len() != scores.len() {
        return Err(CoreError::input(format!(
            "merge_people: {} boxes but {} scores",
            boxes.len(),
            scores.len()
        )));
    }
    if !(0.0..=1.0).contains(&iou) || !(0.0..=1.0).contains(&ios) {
        return Err(CoreError::input(
            "merge_people: iou and ios must be in [0, 1]",
        ));
    }
    if top_tol.is_nan() || top_tol < 0.0 {
        return Err(CoreError::input("merge_people: top_tol must be ≥ 0"));
    }
    let mut order: Vec<usize> = (0..boxes.len())
        .filter(|&i| scores[i].is_finite() && boxes[i].iter().all(|v| v.is_finite()))
        .collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let area = |b: &[f32; 4]| (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0);
    let mut keep: Vec<usize> = Vec::new();
    for i in order {
        let a = &boxes[i];
        let aa = area(a);
        if aa <= 0.0 {
            continue;
        }
        let dup = keep.iter().any(|&j| {
            let b = &boxes[j];
            let ix = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
            let iy = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
            let inter = ix * iy;
            let ab = area(b);
            if inter >= iou * (aa + ab - inter) {
                return true;
            }
            let small_h = if aa <= ab { a[3] - a[1] } else { b[3] - b[1] };
            inter >= ios * aa.min(ab) && (a[1] - b[1]).abs() <= top_tol * small_h
        });
        if !dup {
            keep.push(i);
        }
    }
    Ok(keep)
}

/// Alert settings for one zone.
#[derive(Clone, Copy, Debug)]
pub struct GatheringRule {
    /// People at or above which a gathering is suspected.
    pub threshold: f64,
    /// Seconds the count must stay at or above `threshold` before alerting.
    pub dwell_s: f64,
    /// Growth alert: people per minute over `window_s` (≤ 0 disables it).
    pub growth_per_min: f64,
    pub window_s: f64,
    /// Minimum seconds between two alerts of the same kind.
    pub cooldown_s: f64,
}

/// One gathering alert.
#[derive(Clone, Debug, PartialEq)]
pub struct GatheringEvent {
    /// "gathering" (sustained) or "crowd_growth".
    pub kind: &'static str,
    pub ts: f64,
    pub count: f64,
    /// For "gathering": seconds above threshold; for "crowd_growth": people per minute.
    pub value: f64,
}

/// Stateful per-zone alert logic. Feed it (ts, count) at each crowd update.
#[derive(Clone, Debug)]
pub struct GatheringMonitor {
    pub rule: GatheringRule,
    above_since: Option<f64>,
    alerted_sustained: bool,
    last_growth_alert: Option<f64>,
    last_sustained_alert: Option<f64>,
    history: VecDeque<(f64, f64)>,
    last_ts: Option<f64>,
}

impl GatheringMonitor {
    pub fn new(rule: GatheringRule) -> CoreResult<Self> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !(ok(rule.threshold)
            && ok(rule.dwell_s)
            && rule.growth_per_min.is_finite()
            && ok(rule.cooldown_s))
        {
            return Err(CoreError::input(
                "gathering rule values must be finite and non-negative",
            ));
        }
        if rule.growth_per_min > 0.0 && !(rule.window_s > 0.0 && rule.window_s.is_finite()) {
            return Err(CoreError::input("growth alert needs window_s > 0"));
        }
        Ok(GatheringMonitor {
            rule,
            above_since: None,
            alerted_sustained: false,
            last_growth_alert: None,
            last_sustained_alert: None,
            history: VecDeque::new(),
            last_ts: None,
        })
    }

    pub fn update(&mut self, ts: f64, count: f64) -> CoreResult<Vec<GatheringEvent>> {
        if !ts.is_finite() || !count.is_finite() {
            return Err(CoreError::input(
                "gathering update needs finite ts and count",
            ));
        }
        if let Some(last) = self.last_ts {
            if ts < last {
                return Err(CoreError::TimeOrder(format!(
                    "crowd update at {ts} after {last}"
                )));
            }
        }
        self.last_ts = Some(ts);
        let r = self.rule;
        let mut out = Vec::new();
        // Sustained: above threshold for dwell_s; re-armed once the count falls below
        // 80 % of the threshold (hysteresis against a count hovering at the threshold).
        if count >= r.threshold {
            let since = *self.above_since.get_or_insert(ts);
            let cool = self
                .last_sustained_alert
                .is_none_or(|t| ts - t >= r.cooldown_s);
            if !self.alerted_sustained && ts - since >= r.dwell_s && cool {
                out.push(GatheringEvent {
                    kind: "gathering",
                    ts,
                    count,
                    value: ts - since,
                });
                self.alerted_sustained = true;
                self.last_sustained_alert = Some(ts);
            }
        } else if count < 0.8 * r.threshold {
            self.above_since = None;
            self.alerted_sustained = false;
        }
        // Growth: compare with the oldest sample inside the window.
        if r.growth_per_min > 0.0 {
            self.history.push_back((ts, count));
            while let Some(&(t0, _)) = self.history.front() {
                if ts - t0 > r.window_s {
                    self.history.pop_front();
                } else {
                    break;
                }
            }
            if let Some(&(t0, c0)) = self.history.front() {
                let dt = ts - t0;
                if dt >= 0.5 * r.window_s && dt > 0.0 {
                    let rate = (count - c0) / dt * 60.0;
                    let cool = self
                        .last_growth_alert
                        .is_none_or(|t| ts - t >= r.cooldown_s);
                    if rate >= r.growth_per_min && cool {
                        out.push(GatheringEvent {
                            kind: "crowd_growth",
                            ts,
                            count,
                            value: rate,
                        });
                        self.last_growth_alert = Some(ts);
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rectangle_mask_counts_cells() {
        // 100x80 frame, 10x8 grid (10 px cells); zone = [20,60]x[10,50] -> cols 2..6, rows 1..5
        let poly = [[20.0, 10.0], [60.0, 10.0], [60.0, 50.0], [20.0, 50.0]];
        let m = ZoneMask::new(&poly, 100.0, 80.0, 10, 8).unwrap();
        assert_eq!(m.cells, 16);
        let d = vec![1.0f32; 80];
        assert!((m.sum(&d).unwrap() - 16.0).abs() < 1e-9);
        assert!((m.area_px - 1600.0).abs() < 1e-9);
        assert!(m.sum(&d[..10]).is_err());
    }

    #[test]
    fn self_intersecting_rejected() {
        let bowtie = [[0.0, 0.0], [10.0, 10.0], [10.0, 0.0], [0.0, 10.0]];
        assert!(polygon_self_intersects(&bowtie));
        let e = ZoneMask::new(&bowtie, 20.0, 20.0, 4, 4).unwrap_err();
        assert!(e.to_string().contains("intersects itself"));
        let square = [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]];
        assert!(!polygon_self_intersects(&square));
        assert!(ZoneMask::new(&[[0.0, 0.0], [1.0, 1.0]], 10.0, 10.0, 2, 2).is_err());
        assert!(ZoneMask::new(&[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], 10.0, 10.0, 2, 2).is_err());
    }

    #[test]
    fn concave_polygon_mask() {
        // L shape
        let l = [
            [0.0, 0.0],
            [4.0, 0.0],
            [4.0, 2.0],
            [2.0, 2.0],
            [2.0, 4.0],
            [0.0, 4.0],
        ];
        let m = ZoneMask::new(&l, 4.0, 4.0, 4, 4).unwrap();
        assert_eq!(m.cells, 12);
        let dense = m.dense();
        assert_eq!(dense[2 * 4 + 3], 0);
        assert_eq!(dense[3 * 4 + 1], 1);
    }

    #[test]
    fn sustained_alert_once_with_hysteresis() {
        let rule = GatheringRule {
            threshold: 10.0,
            dwell_s: 5.0,
            growth_per_min: 0.0,
            window_s: 30.0,
            cooldown_s: 0.0,
        };
        let mut m = GatheringMonitor::new(rule).unwrap();
        let mut n = 0;
        for (t, c) in [
            (0.0, 12.0),
            (2.0, 12.0),
            (4.0, 11.0),
            (6.0, 12.0),
            (8.0, 12.0),
            (10.0, 9.0),
            (12.0, 12.0),
        ] {
            n += m.update(t, c).unwrap().len();
        }
        assert_eq!(n, 1, "9 is above 80% of 10: no re-arm");
        m.update(14.0, 5.0).unwrap();
        assert!(m.update(15.0, 12.0).unwrap().is_empty());
        let ev = m.update(21.0, 12.0).unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].kind, "gathering");
        assert!(m.update(20.0, 1.0).is_err());
    }

    #[test]
    fn growth_alert() {
        let rule = GatheringRule {
            threshold: 1e9,
            dwell_s: 0.0,
            growth_per_min: 20.0,
            window_s: 60.0,
            cooldown_s: 120.0,
        };
        let mut m = GatheringMonitor::new(rule).unwrap();
        let mut kinds = vec![];
        for k in 0..10 {
            let t = k as f64 * 10.0;
            for e in m.update(t, 5.0 + k as f64 * 5.0).unwrap() {
                kinds.push((e.kind, e.ts));
            }
        }
        // 5 people / 10 s = 30 / min ≥ 20 once the window is half full (t = 30), then cooldown.
        assert_eq!(kinds, vec![("crowd_growth", 30.0)]);
    }

    #[test]
    fn tile_grid_covers_with_overlap() {
        let t = tile_grid(1024, 768, 416, 96).unwrap();
        assert_eq!(t.len(), 3 * 3);
        assert_eq!(t[0], [0, 0, 416, 416]);
        assert_eq!(t[2][0] + 416, 1024);
        assert_eq!(t[8][1] + 416, 768);
        for w in t.windows(2).filter(|w| w[0][1] == w[1][1]) {
            assert!(w[0][0] + 416 >= w[1][0] + 96);
        }
        assert_eq!(
            tile_grid(300, 200, 416, 96).unwrap(),
            vec![[0, 0, 300, 200]]
        );
        assert!(tile_grid(100, 100, 50, 50).is_err());
    }

    #[test]
    fn merge_people_drops_fragments_keeps_neighbours() {
        let boxes = [
            [100.0, 100.0, 160.0, 260.0], // person
            [100.0, 95.0, 160.0, 180.0],  // upper-half fragment of the same person
            [165.0, 100.0, 225.0, 260.0], // neighbour, touching
            [102.0, 101.0, 161.0, 262.0], // duplicate from another tile
        ];
        let scores = [0.9, 0.5, 0.8, 0.7];
        let k = merge_people(&boxes, &scores, 0.45, 0.8).unwrap();
        assert_eq!(k, vec![0, 2]);
        // without the IoS rule the fragment survives (its IoU with the person is 0.49)
        let k = merge_people(&boxes, &scores, 0.6, 1.0).unwrap();
        assert_eq!(k, vec![0, 2, 1]);
        assert!(merge_people(&boxes, &scores[..2], 0.45, 0.8).is_err());
    }

    #[test]
    fn merge_people_tops_keeps_person_behind() {
        let boxes = [
            [100.0, 100.0, 180.0, 300.0], // front person
            [110.0, 96.0, 170.0, 190.0],  // upper-body fragment: same top edge
            [130.0, 160.0, 175.0, 290.0], // smaller person behind, head lower in frame
        ];
        let scores = [0.9, 0.5, 0.4];
        // plain intersection-over-smaller drops both
        assert_eq!(merge_people(&boxes, &scores, 0.45, 0.7).unwrap(), vec![0]);
        // with the top-edge rule the person behind stays, the fragment still goes
        assert_eq!(
            merge_people_tops(&boxes, &scores, 0.45, 0.7, 0.3).unwrap(),
            vec![0, 2]
        );
        assert!(merge_people_tops(&boxes, &scores, 0.45, 0.7, -1.0).is_err());
        assert!(merge_people_tops(&boxes, &scores, 0.45, 0.7, f32::NAN).is_err());
    }

    proptest! {
        #[test]
        fn convex_mask_sum_bounded(x0 in 0.0f64..50.0, y0 in 0.0f64..50.0, w in 1.0f64..50.0, h in 1.0f64..50.0) {
            let poly = [[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]];
            let m = ZoneMask::new(&poly, 100.0, 100.0, 25, 25).unwrap();
            let d = vec![1.0f32; 625];
            let s = m.sum(&d).unwrap();
            prop_assert!(s <= 625.0);
            // cells ≈ area / cell area within a one-cell border
            let approx = w * h / 16.0;
            let border = 2.0 * (w + h) / 4.0 + 4.0;
            prop_assert!((s - approx).abs() <= border, "s={} approx={}", s, approx);
        }
    }
}
