//! `count`: directional line crossings, zone occupancy and dwell, and road-plane speed,
//! all on the trajectory of each track's ground-contact point (bottom-centre of its box).
//!
//! * A crossing counts ONCE per track and line: the point must go from one side of the
//!   line to the other with its distance off the line exceeding a margin on both sides
//!   (hysteresis: a box flickering on the line never counts), the chord between the two
//!   confident positions must pass through the line segment, and a track+line that has
//!   counted can never count again. Tentative tracks are followed too; a crossing made
//!   before confirmation is emitted when (if) the track is confirmed, so counts do not
//!   depend on where along the approach the tracker happens to confirm.
//! * Direction: `in` when moving from the right of a→b to its left, as seen on screen
//!   (image coordinates, y down), `out` the other way (engine.config.LineConfig).
//! * Speed: least-squares velocity of the road-plane position (homography-projected ground
//!   point, metres) over the last `speed_window_s` seconds — not a single metres-per-pixel
//!   scale, which is wrong everywhere but one image row.
//!
//! [`CameraAnalytics`] combines the tracker and the counters so one call per frame does
//! tracking, crossings, zones and speeds.

use std::collections::{HashMap, VecDeque};

use crate::error::{CoreError, CoreResult};
use crate::geometry::{dist, segment_intersection, signed_distance, Homography, Polygon, Pt};
use crate::track::{TrackOut, Tracker, TrackerConfig};

/// Crossing direction: `In` = right → left of a→b (image coordinates).
pub const DIR_IN: i8 = 1;
pub const DIR_OUT: i8 = -1;

/// Below this road-plane speed a track counts as stopped.
pub const STOPPED_KMH: f64 = 3.0;
/// Without a homography: below this many box heights per second a track counts as stopped.
const STOPPED_HEIGHTS_PER_S: f64 = 0.1;

#[derive(Debug, Clone, PartialEq)]
pub struct LineSpec {
    pub a: Pt,
    pub b: Pt,
    /// Class ids counted on this line; `None` counts every class.
    pub classes: Option<Vec<i32>>,
    /// Hysteresis margin in pixels; `None` = 10% of the box height, at least 2 px.
    pub margin_px: Option<f64>,
}

impl LineSpec {
    fn validate(&self, idx: usize) -> CoreResult<()> {
        for v in [self.a[0], self.a[1], self.b[0], self.b[1]] {
            if !v.is_finite() {
                return Err(CoreError::input(format!(
                    "line {idx}: end points must be finite"
                )));
            }
        }
        if dist(self.a, self.b) == 0.0 {
            return Err(CoreError::input(format!(
                "line {idx}: end points a and b are identical"
            )));
        }
        if let Some(m) = self.margin_px {
            if !(m.is_finite() && m >= 0.0) {
                return Err(CoreError::input(format!(
                    "line {idx}: margin_px must be ≥ 0"
                )));
            }
        }
        Ok(())
    }

    fn counts_class(&self, c: i32) -> bool {
        self.classes.as_ref().is_none_or(|cs| cs.contains(&c))
    }
}

/// Per-track, per-line crossing state.
#[derive(Debug, Clone, Copy)]
struct LineState {
    /// Last side the point was confidently on (+1 left, −1 right, 0 unknown).
    side: i8,
    /// Point where it was last confidently on `side`.
    at: Pt,
    /// Counted already (or pending) — never again.
    done: bool,
    /// A crossing made while tentative, emitted at confirmation.
    pending: i8,
}

#[derive(Debug, Clone)]
struct TrackCountState {
    lines: Vec<LineState>,
    /// Entry time per zone (NaN = outside).
    zone_enter: Vec<f64>,
    /// (ts, x, y): road-plane metres, or image pixels without a homography.
    hist: VecDeque<(f64, f64, f64)>,
    stopped_since: f64,
}

/// A counted crossing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crossing {
    pub track_id: u64,
    pub line: u32,
    pub direction: i8,
    pub class_id: i32,
    /// NaN when not yet measurable.
    pub speed_kmh: f64,
}

/// One frame of analytics output, columnar (confirmed tracks only).
#[derive(Debug, Clone, Default)]
pub struct FrameOut {
    pub ids: Vec<u64>,
    pub xyxy: Vec<[f32; 4]>,
    pub class_ids: Vec<i32>,
    pub scores: Vec<f32>,
    pub det_index: Vec<u32>,
    /// Road-plane ground point (metres); NaN without a homography or above the horizon.
    pub world_xy: Vec<[f64; 2]>,
    pub speed_kmh: Vec<f64>,
    /// Seconds the track has been stopped (0 while moving).
    pub stopped_s: Vec<f64>,
    pub crossings: Vec<Crossing>,
    /// Per zone: number of confirmed tracks inside and their longest dwell.
    pub zone_count: Vec<u32>,
    pub zone_max_dwell: Vec<f64>,
    /// Zone membership rows: (zone index, track id, dwell seconds).
    pub zone_members: Vec<(u32, u64, f64)>,
}

impl FrameOut {
    fn clear(&mut self, n_zones: usize) {
        self.ids.clear();
        self.xyxy.clear();
        self.class_ids.clear();
        self.scores.clear();
        self.det_index.clear();
        self.world_xy.clear();
        self.speed_kmh.clear();
        self.stopped_s.clear();
        self.crossings.clear();
        self.zone_count.clear();
        self.zone_count.resize(n_zones, 0);
        self.zone_max_dwell.clear();
        self.zone_max_dwell.resize(n_zones, 0.0);
        self.zone_members.clear();
    }
}

/// Lines, zones and speeds for one camera, fed with the tracker's per-frame output.
#[derive(Debug, Clone)]
pub struct SceneCounter {
    lines: Vec<LineSpec>,
    zones: Vec<Polygon>,
    homography: Option<Homography>,
    speed_window_s: f64,
    state: HashMap<u64, TrackCountState>,
    totals: HashMap<(u32, i8, i32), u64>,
}

/// Ground-contact point of a box: bottom centre.
#[inline]
pub fn ground_point(b: [f32; 4]) -> Pt {
    [((b[0] + b[2]) / 2.0) as f64, b[3] as f64]
}

/// Least-squares slope of (t, x, y) samples: returns (vx, vy) per second.
fn fit_velocity(h: &VecDeque<(f64, f64, f64)>, from: f64) -> Option<(f64, f64, f64)> {
    let mut n = 0.0;
    let (mut st, mut sx, mut sy) = (0.0, 0.0, 0.0);
    let t0 = h.back()?.0;
    let mut tmin = f64::INFINITY;
    for &(t, x, y) in h.iter().filter(|s| s.0 >= from) {
        n += 1.0;
        st += t - t0;
        sx += x;
        sy += y;
        tmin = tmin.min(t);
    }
    if n < 2.0 {
        return None;
    }
    let (mt, mx, my) = (st / n, sx / n, sy / n);
    let (mut stt, mut stx, mut sty) = (0.0, 0.0, 0.0);
    for &(t, x, y) in h.iter().filter(|s| s.0 >= from) {
        let dt = t - t0 - mt;
        stt += dt * dt;
        stx += dt * (x - mx);
        sty += dt * (y - my);
    }
    if stt <= 0.0 {
        return None;
    }
    Some((stx / stt, sty / stt, t0 - tmin))
}

impl SceneCounter {
    pub fn new(
        lines: Vec<LineSpec>,
        zones: Vec<Polygon>,
        homography: Option<Homography>,
        speed_window_s: f64,
    ) -> CoreResult<Self> {
        for (i, l) in lines.iter().enumerate() {
            l.validate(i)?;
        }
        if !(speed_window_s.is_finite() && speed_window_s > 0.0) {
            return Err(CoreError::input(format!(
                "speed_window_s must be > 0, got {speed_window_s}"
            )));
        }
        Ok(SceneCounter {
            lines,
            zones,
            homography,
            speed_window_s,
            state: HashMap::new(),
            totals: HashMap::new(),
        })
    }

    pub fn lines(&self) -> &[LineSpec] {
        &self.lines
    }

    pub fn n_zones(&self) -> usize {
        self.zones.len()
    }

    pub fn homography(&self) -> Option<&Homography> {
        self.homography.as_ref()
    }

    /// Totals so far: ((line, direction, class), count), sorted.
    pub fn totals(&self) -> Vec<((u32, i8, i32), u64)> {
        let mut v: Vec<_> = self.totals.iter().map(|(k, v)| (*k, *v)).collect();
        v.sort_unstable();
        v
    }

    /// Per-track state tracked right now (for tests and memory bounds).
    pub fn tracked_states(&self) -> usize {
        self.state.len()
    }

    /// Consume one frame of tracker output.
    pub fn update(&mut self, tracks: &[TrackOut], removed: &[u64], ts: f64, out: &mut FrameOut) {
        out.clear(self.zones.len());
        for k in removed {
            self.state.remove(k);
        }
        let n_lines = self.lines.len();
        let n_zones = self.zones.len();
        let window = self.speed_window_s;
        for t in tracks {
            let g = ground_point(t.xyxy);
            let bh = (t.xyxy[3] - t.xyxy[1]).max(1.0) as f64;
            let st = self.state.entry(t.key).or_insert_with(|| TrackCountState {
                lines: vec![
                    LineState {
                        side: 0,
                        at: g,
                        done: false,
                        pending: 0
                    };
                    n_lines
                ],
                zone_enter: vec![f64::NAN; n_zones],
                hist: VecDeque::new(),
                stopped_since: f64::NAN,
            });

            // Speed: road-plane (or image-plane fallback) trajectory over the window.
            let world = self.homography.as_ref().and_then(|h| h.to_world(g));
            let sample = match (&self.homography, world) {
                (Some(_), Some(w)) => Some((ts, w[0], w[1])),
                (Some(_), None) => None,
                (None, _) => Some((ts, g[0], g[1])),
            };
            if let Some(s) = sample {
                st.hist.push_back(s);
            }
            // Keep one sample older than the window so the fit spans it fully.
            while st.hist.len() > 2 && st.hist[1].0 <= ts - window {
                st.hist.pop_front();
            }
            let fit = fit_velocity(&st.hist, ts - window - 1e-9);
            let (speed_kmh, moving_slow) = match fit {
                Some((vx, vy, span)) if span >= 0.5 * window.min(1.0) => {
                    let v = (vx * vx + vy * vy).sqrt();
                    if self.homography.is_some() {
                        (v * 3.6, v * 3.6 < STOPPED_KMH)
                    } else {
                        (f64::NAN, v / bh < STOPPED_HEIGHTS_PER_S)
                    }
                }
                _ => (f64::NAN, false),
            };
            if moving_slow {
                if st.stopped_since.is_nan() {
                    st.stopped_since = ts;
                }
            } else {
                st.stopped_since = f64::NAN;
            }

            // Lines.
            for (li, line) in self.lines.iter().enumerate() {
                let ls = &mut st.lines[li];
                if ls.done {
                    if ls.pending != 0 && t.confirmed {
                        let dir = ls.pending;
                        ls.pending = 0;
                        if line.counts_class(t.class_id) {
                            out.crossings.push(Crossing {
                                track_id: t.id,
                                line: li as u32,
                                direction: dir,
                                class_id: t.class_id,
                                speed_kmh,
                            });
                        }
                    }
                    continue;
                }
                let margin = line.margin_px.unwrap_or((0.1 * bh).max(2.0));
                let d = signed_distance(line.a, line.b, g);
                let new_side: i8 = if d > margin {
                    1
                } else if d < -margin {
                    -1
                } else {
                    0
                };
                if new_side == 0 {
                    if ls.side == 0 && d != 0.0 {
                        // Provisional side for a track first seen inside the band.
                        ls.side = if d > 0.0 { 1 } else { -1 };
                        ls.at = g;
                    }
                    continue;
                }
                if ls.side == 0 || ls.side == new_side {
                    ls.side = new_side;
                    ls.at = g;
                    continue;
                }
                // Confident side change: does the chord pass through the segment?
                let len = dist(line.a, line.b);
                let ext = margin / len;
                let (ea, eb) = (
                    [
                        line.a[0] - (line.b[0] - line.a[0]) * ext,
                        line.a[1] - (line.b[1] - line.a[1]) * ext,
                    ],
                    [
                        line.b[0] + (line.b[0] - line.a[0]) * ext,
                        line.b[1] + (line.b[1] - line.a[1]) * ext,
                    ],
                );
                let through = segment_intersection(ls.at, g, ea, eb).is_some();
                ls.side = new_side;
                ls.at = g;
                if !through {
                    continue;
                }
                // −1 (right) → +1 (left) is `in`.
                let dir = if new_side == 1 { DIR_IN } else { DIR_OUT };
                ls.done = true;
                if !t.confirmed {
                    ls.pending = dir;
                    continue;
                }
                if line.counts_class(t.class_id) {
                    out.crossings.push(Crossing {
                        track_id: t.id,
                        line: li as u32,
                        direction: dir,
                        class_id: t.class_id,
                        speed_kmh,
                    });
                }
            }

            // Zones (entry times kept while tentative so dwell starts at first sight).
            for (zi, z) in self.zones.iter().enumerate() {
                if z.contains(g) {
                    if st.zone_enter[zi].is_nan() {
                        st.zone_enter[zi] = ts;
                    }
                    if t.confirmed {
                        let dwell = ts - st.zone_enter[zi];
                        out.zone_count[zi] += 1;
                        out.zone_max_dwell[zi] = out.zone_max_dwell[zi].max(dwell);
                        out.zone_members.push((zi as u32, t.id, dwell));
                    }
                } else {
                    st.zone_enter[zi] = f64::NAN;
                }
            }

            if t.confirmed {
                out.ids.push(t.id);
                out.xyxy.push(t.xyxy);
                out.class_ids.push(t.class_id);
                out.scores.push(t.score);
                out.det_index.push(t.det_index);
                out.world_xy.push(world.unwrap_or([f64::NAN, f64::NAN]));
                out.speed_kmh.push(speed_kmh);
                out.stopped_s.push(if st.stopped_since.is_nan() {
                    0.0
                } else {
                    ts - st.stopped_since
                });
            }
        }
        for c in &out.crossings {
            *self
                .totals
                .entry((c.line, c.direction, c.class_id))
                .or_insert(0) += 1;
        }
    }
}

/// Tracker + counters of one camera: one call per frame.
#[derive(Debug, Clone)]
pub struct CameraAnalytics {
    tracker: Tracker,
    counter: SceneCounter,
    out: FrameOut,
}

impl CameraAnalytics {
    pub fn new(
        cfg: TrackerConfig,
        lines: Vec<LineSpec>,
        zones: Vec<Polygon>,
        homography: Option<Homography>,
    ) -> CoreResult<Self> {
        let speed_window = cfg.speed_window_s;
        Ok(CameraAnalytics {
            tracker: Tracker::new(cfg)?,
            counter: SceneCounter::new(lines, zones, homography, speed_window)?,
            out: FrameOut::default(),
        })
    }

    pub fn update(
        &mut self,
        boxes: &[[f32; 4]],
        scores: &[f32],
        classes: &[i32],
        ts: f64,
    ) -> CoreResult<&FrameOut> {
        self.tracker.update(boxes, scores, classes, ts)?;
        self.counter.update(
            self.tracker.outputs(),
            self.tracker.removed(),
            ts,
            &mut self.out,
        );
        Ok(&self.out)
    }

    pub fn last(&self) -> &FrameOut {
        &self.out
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    pub fn counter(&self) -> &SceneCounter {
        &self.counter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(min_hits: u32) -> TrackerConfig {
        TrackerConfig {
            min_hits,
            ..TrackerConfig::default()
        }
    }

    fn car_at(x: f32, y: f32) -> [f32; 4] {
        [x - 20.0, y - 30.0, x + 20.0, y]
    }

    /// A horizontal line a=(0,300)→b=(1000,300): "left" of a→b on screen is above it.
    fn hline() -> LineSpec {
        LineSpec {
            a: [0.0, 300.0],
            b: [1000.0, 300.0],
            classes: None,
            margin_px: Some(3.0),
        }
    }

    #[test]
    fn counts_once_with_flicker_and_direction() {
        let mut ca = CameraAnalytics::new(cfg(3), vec![hline()], vec![], None).unwrap();
        // Moves upward (from right/below to left/above) = "in", with a flicker on the line.
        let ys = [
            400.0, 380.0, 360.0, 340.0, 320.0, 305.0, 299.0, 302.0, 298.0, 301.0, 296.0, 280.0,
            260.0, 240.0,
        ];
        let mut crossings = vec![];
        for (k, y) in ys.iter().enumerate() {
            let out = ca
                .update(&[car_at(500.0, *y)], &[0.9], &[2], k as f64 * 0.1)
                .unwrap();
            crossings.extend(out.crossings.iter().copied());
        }
        assert_eq!(crossings.len(), 1, "{crossings:?}");
        assert_eq!(crossings[0].direction, DIR_IN);
        assert_eq!(crossings[0].track_id, 1);
        assert_eq!(ca.counter().totals(), vec![((0, DIR_IN, 2), 1)]);
    }

    #[test]
    fn flicker_without_crossing_never_counts() {
        let mut ca = CameraAnalytics::new(cfg(1), vec![hline()], vec![], None).unwrap();
        let mut n = 0;
        for k in 0..40 {
            let y = if k % 2 == 0 { 298.0 } else { 302.0 };
            n += ca
                .update(&[car_at(500.0, y)], &[0.9], &[2], k as f64 * 0.1)
                .unwrap()
                .crossings
                .len();
        }
        assert_eq!(n, 0);
    }

    #[test]
    fn crossing_while_tentative_is_emitted_at_confirmation_and_outside_segment_is_not() {
        let mut ca = CameraAnalytics::new(cfg(3), vec![hline()], vec![], None).unwrap();
        let mut got = vec![];
        // Crosses downward between frames 0 and 1 (out), confirmed at frame 2.
        for (k, y) in [290.0f32, 310.0, 330.0, 350.0].iter().enumerate() {
            let out = ca
                .update(&[car_at(500.0, *y)], &[0.9], &[2], k as f64 * 0.1)
                .unwrap();
            got.push(out.crossings.len());
            if k == 2 {
                assert_eq!(out.crossings[0].direction, DIR_OUT);
            }
        }
        assert_eq!(got, vec![0, 0, 1, 0]);
        // Beyond the segment's end (x = 1500): no count.
        let mut ca = CameraAnalytics::new(cfg(1), vec![hline()], vec![], None).unwrap();
        let mut n = 0;
        for (k, y) in [280.0f32, 290.0, 310.0, 320.0].iter().enumerate() {
            n += ca
                .update(&[car_at(1500.0, *y)], &[0.9], &[2], k as f64 * 0.1)
                .unwrap()
                .crossings
                .len();
        }
        assert_eq!(n, 0);
    }

    #[test]
    fn class_filter_and_unconfirmed_never_count() {
        let line = LineSpec {
            classes: Some(vec![0]),
            ..hline()
        };
        let mut ca = CameraAnalytics::new(cfg(1), vec![line], vec![], None).unwrap();
        let mut n = 0;
        for (k, y) in [320.0f32, 310.0, 290.0, 280.0].iter().enumerate() {
            n += ca
                .update(&[car_at(500.0, *y)], &[0.9], &[2], k as f64 * 0.1)
                .unwrap()
                .crossings
                .len();
        }
        assert_eq!(n, 0, "cars are not counted on a person-only line");
        // A track seen for 2 frames (min_hits 3) that crosses and vanishes: no count.
        let mut ca = CameraAnalytics::new(cfg(3), vec![hline()], vec![], None).unwrap();
        let mut n = 0;
        for (k, y) in [320.0f32, 280.0].iter().enumerate() {
            n += ca
                .update(&[car_at(500.0, *y)], &[0.9], &[2], k as f64 * 0.1)
                .unwrap()
                .crossings
                .len();
        }
        for k in 2..10 {
            n += ca
                .update(&[], &[], &[], k as f64 * 0.1)
                .unwrap()
                .crossings
                .len();
        }
        assert_eq!(n, 0);
        assert_eq!(
            ca.counter().tracked_states(),
            0,
            "state of removed tracks is dropped"
        );
    }

    #[test]
    fn zone_occupancy_and_dwell() {
        let zone =
            Polygon::new(vec![[0.0, 0.0], [400.0, 0.0], [400.0, 400.0], [0.0, 400.0]]).unwrap();
        let mut ca = CameraAnalytics::new(cfg(2), vec![], vec![zone], None).unwrap();
        for k in 0..10 {
            let out = ca
                .update(
                    &[car_at(200.0, 200.0), car_at(600.0, 200.0)],
                    &[0.9, 0.9],
                    &[2, 2],
                    k as f64 * 0.5,
                )
                .unwrap();
            if k >= 1 {
                assert_eq!(out.zone_count, vec![1]);
                assert!((out.zone_max_dwell[0] - k as f64 * 0.5).abs() < 1e-9);
            }
            if k >= 6 {
                // Standing still for > 1 s without a homography: stopped.
                assert!(out.stopped_s[0] > 0.0);
            }
        }
    }

    #[test]
    fn speed_from_road_plane() {
        // World: x = u / 10, y = 100 / (v - 100) style perspective -> use an exact H.
        let image = [[0.0, 200.0], [1000.0, 200.0], [1000.0, 700.0], [0.0, 700.0]];
        let world = [[-10.0, 60.0], [10.0, 60.0], [4.0, 5.0], [-4.0, 5.0]];
        let h = Homography::from_points(&image, &world).unwrap();
        let mut ca = CameraAnalytics::new(cfg(1), vec![], vec![], Some(h.clone())).unwrap();
        // Drive at 15 m/s along world y from 10 m to 50 m at 10 fps.
        let mut last = f64::NAN;
        for k in 0..25 {
            let t = k as f64 * 0.1;
            let w = [1.0, 10.0 + 15.0 * t];
            let p = h.to_image(w).unwrap();
            let hh = 40.0 * (10.0 / w[1]) as f32 + 5.0;
            let b = [
                p[0] as f32 - hh,
                p[1] as f32 - hh,
                p[0] as f32 + hh,
                p[1] as f32,
            ];
            let out = ca.update(&[b], &[0.9], &[2], t).unwrap();
            if !out.speed_kmh.is_empty() {
                last = out.speed_kmh[0];
            }
        }
        assert!((last - 54.0).abs() < 54.0 * 0.05, "speed {last}");
    }
}
