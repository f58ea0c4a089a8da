//! `track`: multi-object tracking in the ByteTrack family, built for real timestamps.
//!
//! * Motion: a constant-velocity Kalman filter on (cx, cy, w, h). Its process and
//!   measurement noise are diagonal and the transition acts per coordinate, so the 8-state
//!   filter splits exactly into four independent (position, velocity) 2×2 filters — same
//!   result, a fraction of the arithmetic. `dt` is the real time between frames (seconds),
//!   so 5 fps and irregular frame intervals are handled by the same model.
//! * Association, ByteTrack's passes plus one: high-score detections vs confirmed and lost
//!   tracks by IoU; low-score detections vs the still-unmatched tracks seen recently, by
//!   IoU; then remaining high-score detections vs remaining confirmed/lost tracks by IoU or
//!   by the filter's 99% centre gate (capped near the predicted box) — this catches
//!   objects whose predicted box no longer overlaps at low fps, after the low-score pass so
//!   a gate match never steals a track from its own low-score detection; finally
//!   remaining high-score detections vs tentative tracks (IoU or a wide gate: their motion
//!   is still unknown), then low-score ones vs tentative tracks (IoU). IoU candidates
//!   always rank before gate-only ones.
//! * Assignment is an optimal min-cost matching (shortest augmenting paths, rectangular,
//!   with a per-track "stay unmatched" column) solved per connected component of the
//!   sparse candidate graph. Candidates come from a sweep over detections sorted by x, so
//!   per-frame cost stays close to linear in the object count.
//! * Lifecycle: tentative → confirmed (after `min_hits` matches; a tentative track survives
//!   gaps up to 0.3 s) → lost →
//!   removed (after `max_lost_s` seconds). Public ids are handed out at confirmation, so
//!   they are contiguous per tracker and unconfirmed tracks never show up with an id.

use crate::error::{CoreError, CoreResult};

/// Mirrors `engine.config.TrackerConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConfig {
    pub high_threshold: f32,
    pub low_threshold: f32,
    pub new_track_threshold: f32,
    /// Minimum IoU between a predicted box and a detection for an IoU match.
    pub match_iou: f32,
    /// Matches before a tentative track is confirmed.
    pub min_hits: u32,
    /// Seconds a lost track is kept for re-association.
    pub max_lost_s: f64,
    /// Window (seconds) of the road-plane speed fit (used by `count`).
    pub speed_window_s: f64,
    /// Cost added when track and detection classes differ. 0 = class-agnostic,
    /// ≥ 1 = strictly class-aware; in between tolerates detector class flicker
    /// (car ↔ truck) while preferring same-class matches.
    pub class_mismatch_cost: f32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            high_threshold: 0.5,
            low_threshold: 0.1,
            new_track_threshold: 0.6,
            match_iou: 0.2,
            min_hits: 3,
            max_lost_s: 1.5,
            speed_window_s: 1.0,
            class_mismatch_cost: 0.3,
        }
    }
}

impl TrackerConfig {
    pub fn validate(&self) -> CoreResult<()> {
        let unit = |v: f32, name: &str| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(CoreError::input(format!(
                    "tracker config: {name} must be in [0, 1], got {v}"
                )))
            }
        };
        unit(self.high_threshold, "high_threshold")?;
        unit(self.low_threshold, "low_threshold")?;
        unit(self.new_track_threshold, "new_track_threshold")?;
        unit(self.match_iou, "match_iou")?;
        if self.low_threshold > self.high_threshold {
            return Err(CoreError::input(format!(
                "tracker config: low_threshold {} exceeds high_threshold {}",
                self.low_threshold, self.high_threshold
            )));
        }
        if self.min_hits < 1 {
            return Err(CoreError::input("tracker config: min_hits must be ≥ 1"));
        }
        if !(self.max_lost_s.is_finite() && self.max_lost_s > 0.0) {
            return Err(CoreError::input(format!(
                "tracker config: max_lost_s must be > 0, got {}",
                self.max_lost_s
            )));
        }
        if !(self.speed_window_s.is_finite() && self.speed_window_s > 0.0) {
            return Err(CoreError::input(format!(
                "tracker config: speed_window_s must be > 0, got {}",
                self.speed_window_s
            )));
        }
        if !(self.class_mismatch_cost.is_finite() && self.class_mismatch_cost >= 0.0) {
            return Err(CoreError::input(
                "tracker config: class_mismatch_cost must be ≥ 0",
            ));
        }
        Ok(())
    }
}

// ---- Kalman filter ---------------------------------------------------------------------

/// Measurement noise std as a fraction of box height (ByteTrack uses 1/20).
const MEAS_STD: f64 = 0.05;
/// Process noise: white acceleration, std per second as a fraction of box height.
const ACC_POS: f64 = 3.0;
const ACC_SIZE: f64 = 0.5;
/// Initial velocity std (box heights per second): vehicles move a few lengths a second.
const INIT_VEL_STD: f64 = 4.0;
/// χ² (2 dof) 99% gate on the centre innovation.
const GATE_CHI2: f64 = 9.21;
/// Seconds an unmatched tentative track is kept before it is dropped.
const TENTATIVE_KEEP_S: f64 = 0.3;
/// Weight of the motion term in an IoU pair's cost (kept below the unmatched margin).
const MOTION_W: f64 = 0.1;

/// One coordinate's (position, velocity) filter.
#[derive(Debug, Clone, Copy)]
struct Kf1 {
    x: f64,
    v: f64,
    p00: f64,
    p01: f64,
    p11: f64,
}

impl Kf1 {
    fn new(x: f64, pos_std: f64, vel_std: f64) -> Self {
        Kf1 {
            x,
            v: 0.0,
            p00: pos_std * pos_std,
            p01: 0.0,
            p11: vel_std * vel_std,
        }
    }

    #[inline]
    fn predict(&mut self, dt: f64, q: f64) {
        if dt <= 0.0 {
            return;
        }
        self.x += self.v * dt;
        let (p00, p01, p11) = (self.p00, self.p01, self.p11);
        let dt2 = dt * dt;
        self.p00 = p00 + 2.0 * dt * p01 + dt2 * p11 + q * dt2 * dt / 3.0;
        self.p01 = p01 + dt * p11 + q * dt2 / 2.0;
        self.p11 = p11 + q * dt;
    }

    #[inline]
    fn update(&mut self, z: f64, r: f64) {
        let s = self.p00 + r;
        let k0 = self.p00 / s;
        let k1 = self.p01 / s;
        let y = z - self.x;
        self.x += k0 * y;
        self.v += k1 * y;
        let (p00, p01, p11) = (self.p00, self.p01, self.p11);
        self.p00 = (1.0 - k0) * p00;
        self.p01 = (1.0 - k0) * p01;
        self.p11 = p11 - k1 * p01;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackState {
    Tentative,
    Confirmed,
    Lost,
}

#[derive(Debug, Clone)]
struct Track {
    key: u64,
    id: u64, // 0 until confirmed
    state: TrackState,
    kf: [Kf1; 4], // cx, cy, w, h
    hits: u32,
    last_seen: f64,
    matched_now: bool,
    det_index: u32,
    score: f32,
    class_id: i32,
    votes: Vec<(i32, f32)>,
}

impl Track {
    fn new(key: u64, b: [f32; 4], score: f32, class_id: i32, ts: f64) -> Self {
        let (cx, cy, w, h) = to_cxcywh(b);
        let hs = h.max(1.0);
        let ps = 2.0 * MEAS_STD * hs;
        let vs = INIT_VEL_STD * hs;
        Track {
            key,
            id: 0,
            state: TrackState::Tentative,
            kf: [
                Kf1::new(cx, ps, vs),
                Kf1::new(cy, ps, vs),
                Kf1::new(w, ps, vs * 0.1),
                Kf1::new(h, ps, vs * 0.1),
            ],
            hits: 1,
            last_seen: ts,
            matched_now: true,
            det_index: 0,
            score,
            class_id,
            votes: vec![(class_id, score)],
        }
    }

    #[inline]
    fn height(&self) -> f64 {
        self.kf[3].x.max(1.0)
    }

    fn predict(&mut self, dt: f64) {
        let h = self.height();
        let qp = (ACC_POS * h).powi(2);
        let qs = (ACC_SIZE * h).powi(2);
        self.kf[0].predict(dt, qp);
        self.kf[1].predict(dt, qp);
        self.kf[2].predict(dt, qs);
        self.kf[3].predict(dt, qs);
        // Keep the box valid even if a shrinking velocity overshoots.
        for k in 2..4 {
            if self.kf[k].x < 1.0 {
                self.kf[k].x = 1.0;
                self.kf[k].v = 0.0;
            }
        }
    }

    fn update(&mut self, b: [f32; 4], score: f32, class_id: i32, ts: f64) {
        let (cx, cy, w, h) = to_cxcywh(b);
        let r = (MEAS_STD * h.max(1.0)).powi(2);
        self.kf[0].update(cx, r);
        self.kf[1].update(cy, r);
        self.kf[2].update(w, r);
        self.kf[3].update(h, r);
        self.hits += 1;
        self.last_seen = ts;
        self.matched_now = true;
        self.score = score;
        match self.votes.iter_mut().find(|v| v.0 == class_id) {
            Some(v) => v.1 += score,
            None => self.votes.push((class_id, score)),
        }
        let mut best = self.votes[0];
        for v in &self.votes[1..] {
            if v.1 > best.1 {
                best = *v;
            }
        }
        self.class_id = best.0;
    }

    fn bbox(&self) -> [f32; 4] {
        let (cx, cy, w, h) = (
            self.kf[0].x,
            self.kf[1].x,
            self.kf[2].x.max(1.0),
            self.kf[3].x.max(1.0),
        );
        [
            (cx - w / 2.0) as f32,
            (cy - h / 2.0) as f32,
            (cx + w / 2.0) as f32,
            (cy + h / 2.0) as f32,
        ]
    }
}

#[inline]
fn to_cxcywh(b: [f32; 4]) -> (f64, f64, f64, f64) {
    let (x1, y1, x2, y2) = (b[0] as f64, b[1] as f64, b[2] as f64, b[3] as f64);
    ((x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1, y2 - y1)
}

#[inline]
pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let iw = a[2].min(b[2]) - a[0].max(b[0]);
    let ih = a[3].min(b[3]) - a[1].max(b[1]);
    if iw <= 0.0 || ih <= 0.0 {
        return 0.0;
    }
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// One track that was matched to a detection in the latest update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackOut {
    /// Internal key, unique per tracker for every track ever created (tentative too).
    pub key: u64,
    /// Public id (1, 2, 3, … in confirmation order); 0 while tentative.
    pub id: u64,
    pub confirmed: bool,
    /// Filtered box (x1, y1, x2, y2).
    pub xyxy: [f32; 4],
    /// Majority class over the track's history (score-weighted).
    pub class_id: i32,
    pub score: f32,
    /// Row of the detection this track was matched to.
    pub det_index: u32,
}

// ---- assignment ------------------------------------------------------------------------

const BIG: f64 = 1e9;

/// Minimum-cost assignment of every row to a distinct column (rows ≤ cols), shortest
/// augmenting paths with potentials. `cost` is row-major n×m. Returns col per row.
pub fn solve_rect(cost: &[f64], n: usize, m: usize, out: &mut Vec<usize>) {
    debug_assert!(n <= m && cost.len() == n * m);
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; m + 1];
    let mut p = vec![0usize; m + 1]; // p[j] = row (1-based) assigned to column j
    let mut way = vec![0usize; m + 1];
    let mut minv = vec![0.0f64; m + 1];
    let mut used = vec![false; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        minv.iter_mut().for_each(|x| *x = f64::INFINITY);
        used.iter_mut().for_each(|x| *x = false);
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=m {
                if !used[j] {
                    let cur = cost[(i0 - 1) * m + (j - 1)] - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    out.clear();
    out.resize(n, usize::MAX);
    for j in 1..=m {
        if p[j] != 0 {
            out[p[j] - 1] = j - 1;
        }
    }
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let p = parent[parent[x as usize] as usize];
        parent[x as usize] = p;
        x = p;
    }
    x
}

/// Sparse min-cost matching with an "unmatched" option at cost `unmatched` per track.
/// `edges` are (track, det, cost) over local indices; returns matched (track, det) pairs.
fn match_sparse(
    edges: &[(u32, u32, f64)],
    n_tracks: usize,
    n_dets: usize,
    unmatched: f64,
    out: &mut Vec<(u32, u32)>,
) {
    out.clear();
    if edges.is_empty() {
        return;
    }
    // Connected components of the bipartite candidate graph (tracks 0..n, dets n..n+m).
    let mut parent: Vec<u32> = (0..(n_tracks + n_dets) as u32).collect();
    for &(t, d, _) in edges {
        let a = find(&mut parent, t);
        let b = find(&mut parent, n_tracks as u32 + d);
        if a != b {
            parent[a as usize] = b;
        }
    }
    let mut order: Vec<(u32, usize)> = edges
        .iter()
        .enumerate()
        .map(|(k, &(t, _, _))| (find(&mut parent, t), k))
        .collect();
    order.sort_unstable();
    let mut rows: Vec<u32> = Vec::new();
    let mut cols: Vec<u32> = Vec::new();
    let mut cost: Vec<f64> = Vec::new();
    let mut sol: Vec<usize> = Vec::new();
    let mut s = 0;
    while s < order.len() {
        let root = order[s].0;
        let mut e = s;
        while e < order.len() && order[e].0 == root {
            e += 1;
        }
        let comp = &order[s..e];
        s = e;
        if comp.len() == 1 {
            let (t, d, _) = edges[comp[0].1];
            out.push((t, d));
            continue;
        }
        rows.clear();
        cols.clear();
        for &(_, k) in comp {
            rows.push(edges[k].0);
            cols.push(edges[k].1);
        }
        rows.sort_unstable();
        rows.dedup();
        cols.sort_unstable();
        cols.dedup();
        let (n, m) = (rows.len(), cols.len());
        if n == 1 || m == 1 {
            // A star: the single best edge.
            let best = comp
                .iter()
                .map(|&(_, k)| edges[k])
                .min_by(|a, b| a.2.total_cmp(&b.2).then(a.1.cmp(&b.1)).then(a.0.cmp(&b.0)))
                .unwrap();
            out.push((best.0, best.1));
            continue;
        }
        if n > 400 {
            // Pathologically dense clump: greedy by cost keeps the frame time bounded.
            let mut es: Vec<(u32, u32, f64)> = comp.iter().map(|&(_, k)| edges[k]).collect();
            es.sort_by(|a, b| a.2.total_cmp(&b.2));
            let mut rt = vec![false; n_tracks];
            let mut cd = vec![false; n_dets];
            for (t, d, _) in es {
                if !rt[t as usize] && !cd[d as usize] {
                    rt[t as usize] = true;
                    cd[d as usize] = true;
                    out.push((t, d));
                }
            }
            continue;
        }
        // Rows = tracks; columns = detections then one private "unmatched" column per row.
        let mc = m + n;
        cost.clear();
        cost.resize(n * mc, BIG);
        for r in 0..n {
            cost[r * mc + m + r] = unmatched;
        }
        for &(_, k) in comp {
            let (t, d, c) = edges[k];
            let r = rows.binary_search(&t).unwrap();
            let cidx = cols.binary_search(&d).unwrap();
            cost[r * mc + cidx] = c;
        }
        solve_rect(&cost, n, mc, &mut sol);
        for r in 0..n {
            let c = sol[r];
            if c < m && cost[r * mc + c] < BIG {
                out.push((rows[r], cols[c]));
            }
        }
    }
}

// ---- spatial grid ----------------------------------------------------------------------

/// Uniform grid over detection top-left corners (CSR layout), cells at least as large as
/// the largest box, so the detections overlapping a query box lie in a handful of cells.
#[derive(Debug, Clone, Default)]
struct DetGrid {
    x0: f32,
    y0: f32,
    cw: f32,
    ch: f32,
    nx: usize,
    ny: usize,
    max_w: f32,
    max_h: f32,
    start: Vec<u32>,
    fill: Vec<u32>,
    items: Vec<u32>,
}

impl DetGrid {
    fn build(&mut self, boxes: &[[f32; 4]]) {
        self.start.clear();
        self.items.clear();
        self.nx = 0;
        self.ny = 0;
        if boxes.is_empty() {
            return;
        }
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        let (mut mw, mut mh) = (0.0f32, 0.0f32);
        for b in boxes {
            x0 = x0.min(b[0]);
            y0 = y0.min(b[1]);
            x1 = x1.max(b[0]);
            y1 = y1.max(b[1]);
            mw = mw.max(b[2] - b[0]);
            mh = mh.max(b[3] - b[1]);
        }
        let side = ((boxes.len() as f64).sqrt().ceil() as usize * 2).clamp(1, 1024);
        let cw = mw.max((x1 - x0) / side as f32).max(1.0);
        let ch = mh.max((y1 - y0) / side as f32).max(1.0);
        let nx = (((x1 - x0) / cw) as usize + 1).min(side + 1);
        let ny = (((y1 - y0) / ch) as usize + 1).min(side + 1);
        *self = DetGrid {
            x0,
            y0,
            cw,
            ch,
            nx,
            ny,
            max_w: mw,
            max_h: mh,
            start: std::mem::take(&mut self.start),
            fill: std::mem::take(&mut self.fill),
            items: std::mem::take(&mut self.items),
        };
        self.start.resize(nx * ny + 1, 0);
        for b in boxes {
            let c = self.cell(b);
            self.start[c + 1] += 1;
        }
        for i in 0..nx * ny {
            self.start[i + 1] += self.start[i];
        }
        self.fill.clear();
        self.fill.extend_from_slice(&self.start[..nx * ny]);
        self.items.resize(boxes.len(), 0);
        for (i, b) in boxes.iter().enumerate() {
            let c = self.cell(b);
            self.items[self.fill[c] as usize] = i as u32;
            self.fill[c] += 1;
        }
    }

    #[inline]
    fn cell(&self, b: &[f32; 4]) -> usize {
        let cx = (((b[0] - self.x0) / self.cw) as usize).min(self.nx - 1);
        let cy = (((b[1] - self.y0) / self.ch) as usize).min(self.ny - 1);
        cy * self.nx + cx
    }

    /// Detections whose box may overlap `q` (a superset; callers test the overlap).
    fn query(&self, q: [f32; 4], out: &mut Vec<u32>) {
        out.clear();
        if self.nx == 0 {
            return;
        }
        let (qx0, qx1) = (q[0] - self.max_w, q[2]);
        let (qy0, qy1) = (q[1] - self.max_h, q[3]);
        if qx1 < self.x0 || qy1 < self.y0 {
            return;
        }
        let span_x = self.cw * self.nx as f32;
        let span_y = self.ch * self.ny as f32;
        if qx0 > self.x0 + span_x || qy0 > self.y0 + span_y {
            return;
        }
        let c0 = (((qx0 - self.x0) / self.cw).max(0.0) as usize).min(self.nx - 1);
        let c1 = (((qx1 - self.x0) / self.cw).max(0.0) as usize).min(self.nx - 1);
        let r0 = (((qy0 - self.y0) / self.ch).max(0.0) as usize).min(self.ny - 1);
        let r1 = (((qy1 - self.y0) / self.ch).max(0.0) as usize).min(self.ny - 1);
        for r in r0..=r1 {
            let row = r * self.nx;
            let (a, b) = (
                self.start[row + c0] as usize,
                self.start[row + c1 + 1] as usize,
            );
            out.extend_from_slice(&self.items[a..b]);
        }
    }
}

// ---- tracker ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Tracker {
    cfg: TrackerConfig,
    tracks: Vec<Track>,
    next_key: u64,
    next_id: u64,
    last_ts: Option<f64>,
    outputs: Vec<TrackOut>,
    removed: Vec<u64>,
    // scratch
    grid: DetGrid,
    cand: Vec<u32>,
    edges: Vec<(u32, u32, f64)>,
    pairs: Vec<(u32, u32)>,
    det_used: Vec<bool>,
}

/// Which detections / tracks a pass considers.
#[derive(Clone, Copy)]
enum Pass {
    HighVsActive,
    LowVsTracked,
    GateVsActive,
    HighVsTentative,
    LowVsTentative,
}

impl Tracker {
    pub fn new(cfg: TrackerConfig) -> CoreResult<Self> {
        cfg.validate()?;
        Ok(Tracker {
            cfg,
            tracks: Vec::new(),
            next_key: 1,
            next_id: 1,
            last_ts: None,
            outputs: Vec::new(),
            removed: Vec::new(),
            grid: DetGrid::default(),
            cand: Vec::new(),
            edges: Vec::new(),
            pairs: Vec::new(),
            det_used: Vec::new(),
        })
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    /// Tracks matched in the latest update (tentative ones too, with `id == 0`).
    pub fn outputs(&self) -> &[TrackOut] {
        &self.outputs
    }

    /// Internal keys of tracks dropped in the latest update.
    pub fn removed(&self) -> &[u64] {
        &self.removed
    }

    pub fn last_ts(&self) -> Option<f64> {
        self.last_ts
    }

    /// Number of tracks alive (tentative, confirmed and lost).
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// Confirmed ids handed out so far.
    pub fn confirmed_total(&self) -> u64 {
        self.next_id - 1
    }

    /// Check a frame's detections and timestamp; nothing is modified on error.
    pub fn validate(
        &self,
        boxes: &[[f32; 4]],
        scores: &[f32],
        classes: &[i32],
        ts: f64,
    ) -> CoreResult<()> {
        if boxes.len() != scores.len() || boxes.len() != classes.len() {
            return Err(CoreError::input(format!(
                "tracker: {} boxes but {} scores and {} class ids",
                boxes.len(),
                scores.len(),
                classes.len()
            )));
        }
        if !ts.is_finite() {
            return Err(CoreError::input(format!(
                "tracker: timestamp {ts} is not finite"
            )));
        }
        if let Some(last) = self.last_ts {
            if ts < last {
                return Err(CoreError::TimeOrder(format!(
                    "timestamp {ts} is earlier than the previous frame's {last}"
                )));
            }
        }
        for (i, b) in boxes.iter().enumerate() {
            if !b.iter().all(|v| v.is_finite()) {
                return Err(CoreError::input(format!(
                    "tracker: box {i} has non-finite coordinates {b:?}"
                )));
            }
            if b[2] < b[0] || b[3] < b[1] {
                return Err(CoreError::input(format!(
                    "tracker: box {i} has x2<x1 or y2<y1: {b:?}"
                )));
            }
        }
        for (i, s) in scores.iter().enumerate() {
            if !s.is_finite() {
                return Err(CoreError::input(format!(
                    "tracker: score {i} is not finite ({s})"
                )));
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn run_pass(
        &mut self,
        pass: Pass,
        boxes: &[[f32; 4]],
        scores: &[f32],
        classes: &[i32],
        ts: f64,
        was_tracked: &[bool],
    ) {
        let cfg = &self.cfg;
        let (thr, gated) = match pass {
            Pass::HighVsActive => (cfg.match_iou, false),
            Pass::LowVsTracked => (cfg.match_iou.max(0.3), false),
            Pass::GateVsActive => (cfg.match_iou, true),
            Pass::LowVsTentative => (cfg.match_iou.max(0.3), false),
            Pass::HighVsTentative => (cfg.match_iou, true),
        };
        let want_det = |i: usize| -> bool {
            let s = scores[i];
            match pass {
                Pass::HighVsActive | Pass::GateVsActive | Pass::HighVsTentative => {
                    s >= cfg.high_threshold
                }
                Pass::LowVsTracked | Pass::LowVsTentative => {
                    s >= cfg.low_threshold && s < cfg.high_threshold
                }
            }
        };
        let unmatched = 1.0 - thr as f64 + 0.12;
        self.edges.clear();
        let mut local_tracks: Vec<u32> = Vec::new();
        for (ti, t) in self.tracks.iter().enumerate() {
            if t.matched_now {
                continue;
            }
            let ok = match pass {
                Pass::HighVsActive | Pass::GateVsActive => {
                    matches!(t.state, TrackState::Confirmed | TrackState::Lost)
                }
                Pass::LowVsTracked => was_tracked[ti],
                Pass::HighVsTentative | Pass::LowVsTentative => t.state == TrackState::Tentative,
            };
            if !ok {
                continue;
            }
            let lt = local_tracks.len() as u32;
            local_tracks.push(ti as u32);
            let pb = t.bbox();
            let h = t.height();
            let r = (MEAS_STD * h).powi(2);
            let (vx, vy) = (t.kf[0].p00 + r, t.kf[1].p00 + r);
            // Gate-only candidates: wide for young tracks (motion still unknown), narrow for
            // established ones so a lost track never grabs a newcomer far from its path.
            let cap = if t.hits < cfg.min_hits.max(2) {
                3.0 * h
            } else {
                0.75 * h
            };
            let (gx, gy) = if gated {
                (
                    (GATE_CHI2 * vx).sqrt().min(cap) as f32,
                    (GATE_CHI2 * vy).sqrt().min(cap) as f32,
                )
            } else {
                (0.0, 0.0)
            };
            let sb = [pb[0] - gx, pb[1] - gy, pb[2] + gx, pb[3] + gy];
            self.grid.query(sb, &mut self.cand);
            for &d in &self.cand {
                let di = d as usize;
                let b = boxes[di];
                if self.det_used[di]
                    || b[0] > sb[2]
                    || b[2] < sb[0]
                    || b[3] < sb[1]
                    || b[1] > sb[3]
                    || !want_det(di)
                {
                    continue;
                }
                let ov = iou(pb, b);
                let mut c = if ov >= thr && ov > 0.0 {
                    // Motion consistency breaks ties between overlapping candidates (people
                    // crossing each other): the normalised centre innovation, capped.
                    let (cx, cy, _, _) = to_cxcywh(b);
                    let d2 = (cx - t.kf[0].x).powi(2) / vx + (cy - t.kf[1].x).powi(2) / vy;
                    1.0 - ov as f64 + MOTION_W * (d2 / GATE_CHI2).min(1.0)
                } else if gated {
                    let (cx, cy, _, bh) = to_cxcywh(b);
                    let (ex, ey) = (cx - t.kf[0].x, cy - t.kf[1].x);
                    if ex.abs() > gx as f64 || ey.abs() > gy as f64 {
                        continue;
                    }
                    let d2 = ex * ex / vx + ey * ey / vy;
                    let ratio = bh.max(1.0) / h;
                    if d2 < GATE_CHI2 && (0.5..=2.0).contains(&ratio) {
                        1.0 - thr as f64 + 0.01 + 0.1 * d2 / GATE_CHI2
                    } else {
                        continue;
                    }
                } else {
                    continue;
                };
                if classes[di] != t.class_id {
                    c += cfg.class_mismatch_cost as f64;
                    if c >= unmatched {
                        continue;
                    }
                }
                self.edges.push((lt, d, c));
            }
        }
        if self.edges.is_empty() {
            return;
        }
        match_sparse(
            &self.edges,
            local_tracks.len(),
            boxes.len(),
            unmatched,
            &mut self.pairs,
        );
        for &(lt, d) in &self.pairs {
            let t = &mut self.tracks[local_tracks[lt as usize] as usize];
            let di = d as usize;
            t.update(boxes[di], scores[di], classes[di], ts);
            t.det_index = d;
            if t.state == TrackState::Lost {
                t.state = TrackState::Confirmed;
            }
            self.det_used[di] = true;
        }
    }

    /// Advance to time `ts` (seconds) with this frame's detections.
    pub fn update(
        &mut self,
        boxes: &[[f32; 4]],
        scores: &[f32],
        classes: &[i32],
        ts: f64,
    ) -> CoreResult<()> {
        self.validate(boxes, scores, classes, ts)?;
        let prev_ts = self.last_ts;
        let dt = prev_ts.map_or(0.0, |l| ts - l);
        self.last_ts = Some(ts);
        self.outputs.clear();
        self.removed.clear();

        for t in &mut self.tracks {
            t.predict(dt);
            t.matched_now = false;
        }

        // Spatial grid over detections: candidate pairs come from a few cells, not all N.
        self.grid.build(boxes);
        self.det_used.clear();
        self.det_used.resize(boxes.len(), false);

        let was_tracked: Vec<bool> = self
            .tracks
            .iter()
            .map(|t| {
                // Low-score detections may continue tracks seen recently (ByteTrack uses
                // only last frame's; a short miss at low fps should not end that).
                t.state != TrackState::Tentative
                    && prev_ts.is_some_and(|p| p - t.last_seen <= 0.25 * self.cfg.max_lost_s)
            })
            .collect();

        for pass in [
            Pass::HighVsActive,
            Pass::LowVsTracked,
            Pass::GateVsActive,
            Pass::HighVsTentative,
            Pass::LowVsTentative,
        ] {
            self.run_pass(pass, boxes, scores, classes, ts, &was_tracked);
        }

        // Lifecycle of unmatched tracks.
        let max_lost = self.cfg.max_lost_s;
        let removed = &mut self.removed;
        self.tracks.retain_mut(|t| {
            if t.matched_now {
                return true;
            }
            match t.state {
                // A tentative track survives a short gap (a missed frame must not restart
                // confirmation from scratch), but never long enough to matter.
                TrackState::Tentative => {
                    if ts - t.last_seen > TENTATIVE_KEEP_S.min(max_lost) {
                        removed.push(t.key);
                        false
                    } else {
                        true
                    }
                }
                TrackState::Confirmed | TrackState::Lost => {
                    if ts - t.last_seen > max_lost {
                        removed.push(t.key);
                        false
                    } else {
                        t.state = TrackState::Lost;
                        true
                    }
                }
            }
        });

        // Confirmation (ids in a deterministic order: by creation key).
        for t in &mut self.tracks {
            if t.matched_now && t.state == TrackState::Tentative && t.hits >= self.cfg.min_hits {
                t.state = TrackState::Confirmed;
                t.id = self.next_id;
                self.next_id += 1;
            }
        }

        // New tracks from unmatched confident detections.
        for i in 0..boxes.len() {
            if self.det_used[i]
                || scores[i] < self.cfg.new_track_threshold
                || scores[i] < self.cfg.high_threshold
            {
                continue;
            }
            self.det_used[i] = true;
            let mut t = Track::new(self.next_key, boxes[i], scores[i], classes[i], ts);
            self.next_key += 1;
            if self.cfg.min_hits <= 1 {
                t.state = TrackState::Confirmed;
                t.id = self.next_id;
                self.next_id += 1;
            }
            self.outputs.push(TrackOut {
                key: t.key,
                id: t.id,
                confirmed: t.state == TrackState::Confirmed,
                xyxy: boxes[i],
                class_id: t.class_id,
                score: t.score,
                det_index: i as u32,
            });
            t.det_index = i as u32;
            self.tracks.push(t);
        }
        for t in &self.tracks {
            if t.matched_now && t.hits > 1 {
                self.outputs.push(TrackOut {
                    key: t.key,
                    id: t.id,
                    confirmed: t.state == TrackState::Confirmed,
                    xyxy: t.bbox(),
                    class_id: t.class_id,
                    score: t.score,
                    det_index: t.det_index,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(x: f32, y: f32) -> [f32; 4] {
        [x, y, x + 40.0, y + 30.0]
    }

    #[test]
    fn lifecycle_ids_assigned_at_confirmation_and_contiguous() {
        let mut t = Tracker::new(TrackerConfig {
            min_hits: 3,
            max_lost_s: 0.5,
            ..Default::default()
        })
        .unwrap();
        // A one-frame false positive at (900, 900) must never get an id.
        for k in 0..5 {
            let mut b = vec![
                bx(100.0 + 10.0 * k as f32, 100.0),
                bx(500.0, 300.0 + 5.0 * k as f32),
            ];
            let mut s = vec![0.9, 0.8];
            if k == 1 {
                b.push(bx(900.0, 900.0));
                s.push(0.95);
            }
            let c = vec![2; b.len()];
            t.update(&b, &s, &c, k as f64 * 0.1).unwrap();
            let ids: Vec<u64> = t
                .outputs()
                .iter()
                .filter(|o| o.confirmed)
                .map(|o| o.id)
                .collect();
            if k < 2 {
                assert!(ids.is_empty());
            } else {
                let mut ids = ids;
                ids.sort();
                assert_eq!(ids, vec![1, 2]);
            }
        }
        assert_eq!(t.confirmed_total(), 2);
        // Disappear: lost, then removed after max_lost_s.
        t.update(&[], &[], &[], 0.6).unwrap();
        assert_eq!(t.len(), 2);
        t.update(&[], &[], &[], 1.0).unwrap();
        assert_eq!(t.len(), 0);
        assert_eq!(t.removed().len(), 2);
    }

    #[test]
    fn low_fps_fast_object_keeps_its_id_and_survives_a_miss() {
        // 5 fps, irregular intervals, moving 60 px per frame (1.5 box widths).
        let mut t = Tracker::new(TrackerConfig::default()).unwrap();
        let mut ts = 0.0;
        let mut ids = std::collections::BTreeSet::new();
        for k in 0..30 {
            ts += if k % 3 == 0 { 0.25 } else { 0.2 };
            if k == 12 {
                t.update(&[], &[], &[], ts).unwrap();
                continue;
            }
            let x = 300.0 * ts as f32;
            t.update(&[bx(x, 200.0)], &[0.9], &[2], ts).unwrap();
            for o in t.outputs().iter().filter(|o| o.confirmed) {
                ids.insert(o.id);
            }
        }
        assert_eq!(ids.into_iter().collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn low_score_detections_keep_tracks_alive() {
        let mut t = Tracker::new(TrackerConfig {
            min_hits: 1,
            max_lost_s: 0.15,
            ..Default::default()
        })
        .unwrap();
        for k in 0..10 {
            let s = if k > 3 { 0.3 } else { 0.9 };
            t.update(
                &[bx(100.0 + 2.0 * k as f32, 100.0)],
                &[s],
                &[2],
                k as f64 * 0.1,
            )
            .unwrap();
            assert_eq!(t.outputs().len(), 1, "frame {k}");
            assert_eq!(t.outputs()[0].id, 1);
        }
    }

    #[test]
    fn invalid_inputs_are_errors_not_panics() {
        let mut t = Tracker::new(TrackerConfig::default()).unwrap();
        t.update(&[bx(0.0, 0.0)], &[0.9], &[2], 1.0).unwrap();
        let e = t.update(&[bx(0.0, 0.0)], &[0.9], &[2], 0.5).unwrap_err();
        assert!(matches!(e, CoreError::TimeOrder(_)), "{e}");
        assert!(matches!(
            t.update(&[[f32::NAN, 0.0, 1.0, 1.0]], &[0.9], &[2], 2.0),
            Err(CoreError::Input(_))
        ));
        assert!(matches!(
            t.update(&[[5.0, 0.0, 1.0, 1.0]], &[0.9], &[2], 2.0),
            Err(CoreError::Input(_))
        ));
        assert!(matches!(
            t.update(&[bx(0.0, 0.0)], &[0.9, 0.8], &[2], 2.0),
            Err(CoreError::Input(_))
        ));
        assert!(matches!(
            t.update(&[bx(0.0, 0.0)], &[f32::NAN], &[2], 2.0),
            Err(CoreError::Input(_))
        ));
        assert!(matches!(
            t.update(&[], &[], &[], f64::NAN),
            Err(CoreError::Input(_))
        ));
        // The failed calls changed nothing.
        assert_eq!(t.last_ts(), Some(1.0));
        assert!(Tracker::new(TrackerConfig {
            match_iou: 2.0,
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn assignment_is_optimal_on_a_small_case() {
        // Greedy would take (0,0)=0.1 then (1,1)=0.9; optimal is (0,1)+(1,0) = 0.4.
        let cost = [0.1, 0.2, 0.2, 0.9];
        let mut out = vec![];
        solve_rect(&cost, 2, 2, &mut out);
        assert_eq!(out, vec![1, 0]);
        let edges = [(0u32, 0u32, 0.1), (0, 1, 0.2), (1, 0, 0.2), (1, 1, 0.9)];
        let mut pairs = vec![];
        match_sparse(&edges, 2, 2, 0.95, &mut pairs);
        pairs.sort();
        assert_eq!(pairs, vec![(0, 1), (1, 0)]);
    }

    proptest::proptest! {
        #[test]
        fn grid_query_finds_every_overlapping_box(
            dets in proptest::collection::vec((0f32..2000.0, 0f32..1000.0, 0f32..120.0, 0f32..90.0), 1..200),
            qs in proptest::collection::vec((-100f32..2100.0, -100f32..1100.0, 0f32..300.0, 0f32..300.0), 1..20),
        ) {
            let boxes: Vec<[f32; 4]> = dets.iter().map(|d| [d.0, d.1, d.0 + d.2, d.1 + d.3]).collect();
            let mut g = DetGrid::default();
            g.build(&boxes);
            let mut out = vec![];
            for q in qs {
                let q = [q.0, q.1, q.0 + q.2, q.1 + q.3];
                g.query(q, &mut out);
                for (i, b) in boxes.iter().enumerate() {
                    let overlaps = b[0] <= q[2] && b[2] >= q[0] && b[1] <= q[3] && b[3] >= q[1];
                    if overlaps {
                        proptest::prop_assert!(out.contains(&(i as u32)), "box {i} {b:?} missed for {q:?}");
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_ids_are_contiguous(
            frames in proptest::collection::vec(
                proptest::collection::vec((0f32..500.0, 0f32..500.0, 1f32..80.0, 1f32..80.0, 0f32..1.0, 0i32..6), 0..30),
                1..25),
        ) {
            let mut t = Tracker::new(TrackerConfig::default()).unwrap();
            let mut seen = std::collections::BTreeSet::new();
            for (k, f) in frames.iter().enumerate() {
                let b: Vec<[f32; 4]> = f.iter().map(|d| [d.0, d.1, d.0 + d.2, d.1 + d.3]).collect();
                let s: Vec<f32> = f.iter().map(|d| d.4).collect();
                let c: Vec<i32> = f.iter().map(|d| d.5).collect();
                t.update(&b, &s, &c, k as f64 * 0.1).unwrap();
                let mut used = std::collections::BTreeSet::new();
                for o in t.outputs() {
                    proptest::prop_assert!(used.insert(o.det_index), "a detection matched twice");
                    if o.confirmed { seen.insert(o.id); }
                }
            }
            let n = seen.len() as u64;
            proptest::prop_assert_eq!(seen.into_iter().collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());
        }
    }
}
