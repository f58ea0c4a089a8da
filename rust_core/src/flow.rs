//! `flow`: traffic-flow estimation from line crossings and tracked positions.
//!
//! Everything is columnar: the caller passes parallel slices (one entry per crossing, or
//! one entry per tracked vehicle per frame) plus window edges, and gets back one row per
//! (group, window) where a group is a lane or an approach. Windows are arbitrary sorted
//! edges so the same code does fixed windows (`t0 + k·w`) and signal cycles (cycle
//! start times).
//!
//! Definitions (HCM 6th ed. ch. 4 and 19 unless noted):
//! - volume: crossings per hour of window; PCU flow: Σ car-equivalent factor per hour.
//! - time-mean speed: arithmetic mean of spot speeds at the line; space-mean speed:
//!   harmonic mean of the same spot speeds (Wardrop's relation).
//! - occupancy: fraction of frames in which a virtual detector zone (a range of distance
//!   upstream of the stop line) holds at least one vehicle.
//! - density: mean number of vehicles in the observed segment / segment length, veh/km/lane.
//! - queue: stopped vehicles (speed below a threshold) chained back from the stop line with
//!   gaps no larger than `queue_gap_m`; metres = rear of the last queued vehicle.
//! - degree of saturation x = v / (s·g/C); control delay = HCM uniform delay d1 (with
//!   Webster's first term) + incremental delay d2 (HCM eq. 19-19/19-20, T = 0.25 h, k = 0.5,
//!   I = 1); level of service from HCM Exhibit 19-8 (signalised intersections).
//! - traffic performance index (TPI, 0–10): the five bands of Beijing's DB11/T 785-2011
//!   (0–2 smooth, 2–4 basically smooth, 4–6 light, 6–8 moderate, 8–10 severe congestion),
//!   mapped piecewise-linearly from the travel-time index (travel time / free-flow travel
//!   time). The TTI breakpoints of the bands are a calibration, configurable.

use crate::error::{CoreError, CoreResult};

fn check_finite(name: &str, v: &[f64]) -> CoreResult<()> {
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(CoreError::input(format!(
            "{name}[{i}] = {} is not finite",
            v[i]
        )));
    }
    Ok(())
}

fn check_edges(edges: &[f64]) -> CoreResult<()> {
    if edges.len() < 2 {
        return Err(CoreError::input(
            "window edges need at least 2 values (start and end)",
        ));
    }
    check_finite("edges", edges)?;
    for i in 1..edges.len() {
        if edges[i] <= edges[i - 1] {
            return Err(CoreError::input(format!(
                "window edges must be strictly increasing: edges[{}] = {} <= edges[{}] = {}",
                i,
                edges[i],
                i - 1,
                edges[i - 1]
            )));
        }
    }
    Ok(())
}

/// Index of the window holding `t` (edges[w] <= t < edges[w+1]), or None.
#[inline]
fn window_of(edges: &[f64], t: f64) -> Option<usize> {
    if t < edges[0] || t >= edges[edges.len() - 1] {
        return None;
    }
    // partition_point gives the first edge > t
    Some(edges.partition_point(|&e| e <= t) - 1)
}

/// Per (group, window) aggregates of line crossings. Row r = group * n_windows + window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CrossingFlows {
    pub n_groups: usize,
    pub n_windows: usize,
    pub count: Vec<u32>,
    pub pcu: Vec<f64>,
    pub volume_vph: Vec<f64>,
    pub pcu_vph: Vec<f64>,
    /// Arithmetic mean of spot speeds (km/h); NaN when no speed was measured.
    pub time_mean_speed_kmh: Vec<f64>,
    /// Harmonic mean of spot speeds (km/h); NaN when no speed was measured.
    pub space_mean_speed_kmh: Vec<f64>,
    pub n_speed: Vec<u32>,
    /// Mean / min headway between successive crossings of the same lane (s); NaN if < 2.
    pub headway_mean_s: Vec<f64>,
    pub headway_min_s: Vec<f64>,
}

/// Aggregate crossings into (group, window) rows.
///
/// `lane[i]` is the lane index of crossing i (headways are taken within a lane);
/// `group_of_lane[l]` maps lane l to its output group (identity for per-lane output, the
/// approach index for per-approach output). `speed_kmh[i]` may be NaN (not measured) but
/// must not be negative; `pcu[i]` must be finite and > 0. Crossings outside the edges are
/// ignored.
pub fn aggregate_crossings(
    ts: &[f64],
    lane: &[u32],
    speed_kmh: &[f64],
    pcu: &[f64],
    group_of_lane: &[u32],
    edges: &[f64],
) -> CoreResult<CrossingFlows> {
    let n = ts.len();
    if lane.len() != n || speed_kmh.len() != n || pcu.len() != n {
        return Err(CoreError::input(format!(
            "crossing columns differ in length: ts {n}, lane {}, speed {}, pcu {}",
            lane.len(),
            speed_kmh.len(),
            pcu.len()
        )));
    }
    check_edges(edges)?;
    check_finite("ts", ts)?;
    check_finite("pcu", pcu)?;
    if let Some(i) = pcu.iter().position(|&p| p <= 0.0) {
        return Err(CoreError::input(format!(
            "pcu[{i}] = {} must be > 0",
            pcu[i]
        )));
    }
    if let Some(i) = speed_kmh.iter().position(|&v| v < 0.0 || v.is_infinite()) {
        return Err(CoreError::input(format!(
            "speed_kmh[{i}] = {} must be >= 0 (NaN = not measured)",
            speed_kmh[i]
        )));
    }
    let n_lanes = group_of_lane.len();
    if let Some(i) = lane.iter().position(|&l| (l as usize) >= n_lanes) {
        return Err(CoreError::input(format!(
            "lane[{i}] = {} is out of range (there are {n_lanes} lanes)",
            lane[i]
        )));
    }
    let n_groups = group_of_lane
        .iter()
        .map(|&g| g as usize + 1)
        .max()
        .unwrap_or(0);
    let nw = edges.len() - 1;
    let rows = n_groups * nw;
    let mut out = CrossingFlows {
        n_groups,
        n_windows: nw,
        count: vec![0; rows],
        pcu: vec![0.0; rows],
        volume_vph: vec![0.0; rows],
        pcu_vph: vec![0.0; rows],
        time_mean_speed_kmh: vec![f64::NAN; rows],
        space_mean_speed_kmh: vec![f64::NAN; rows],
        n_speed: vec![0; rows],
        headway_mean_s: vec![f64::NAN; rows],
        headway_min_s: vec![f64::NAN; rows],
    };
    let mut v_sum = vec![0.0; rows];
    let mut inv_sum = vec![0.0; rows];
    let mut n_zero = vec![0u32; rows];
    let mut h_sum = vec![0.0; rows];
    let mut h_n = vec![0u32; rows];
    let mut h_min = vec![f64::INFINITY; rows];

    // Sort by (lane, ts) once so headways are successive crossings of the same lane.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&a, &b| lane[a].cmp(&lane[b]).then(ts[a].total_cmp(&ts[b])));
    let mut prev: Option<(u32, f64)> = None;
    for &i in &order {
        let l = lane[i];
        let t = ts[i];
        let last = prev;
        prev = Some((l, t));
        let Some(w) = window_of(edges, t) else {
            continue;
        };
        let r = group_of_lane[l as usize] as usize * nw + w;
        out.count[r] += 1;
        out.pcu[r] += pcu[i];
        let v = speed_kmh[i];
        if !v.is_nan() {
            out.n_speed[r] += 1;
            v_sum[r] += v;
            if v > 0.0 {
                inv_sum[r] += 1.0 / v;
            } else {
                n_zero[r] += 1;
            }
        }
        if let Some((pl, pt)) = last {
            if pl == l {
                let h = t - pt;
                h_sum[r] += h;
                h_n[r] += 1;
                if h < h_min[r] {
                    h_min[r] = h;
                }
            }
        }
    }
    for g in 0..n_groups {
        for w in 0..nw {
            let r = g * nw + w;
            let hours = (edges[w + 1] - edges[w]) / 3600.0;
            out.volume_vph[r] = out.count[r] as f64 / hours;
            out.pcu_vph[r] = out.pcu[r] / hours;
            if out.n_speed[r] > 0 {
                out.time_mean_speed_kmh[r] = v_sum[r] / out.n_speed[r] as f64;
                // A stopped vehicle on the line makes the harmonic mean 0.
                out.space_mean_speed_kmh[r] = if n_zero[r] > 0 {
                    0.0
                } else {
                    out.n_speed[r] as f64 / inv_sum[r]
                };
            }
            if h_n[r] > 0 {
                out.headway_mean_s[r] = h_sum[r] / h_n[r] as f64;
                out.headway_min_s[r] = h_min[r];
            }
        }
    }
    Ok(out)
}

/// Settings of the presence aggregation (virtual detector, density, queue).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PresenceConfig {
    /// Virtual detector: distance range upstream of the stop line (m).
    pub detector_from_m: f64,
    pub detector_to_m: f64,
    /// A vehicle slower than this is stopped (m/s).
    pub stopped_mps: f64,
    /// Largest gap between successive queued vehicles (front of one to the front of the
    /// next, m); the first queued vehicle must be within this distance of the stop line.
    pub queue_gap_m: f64,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            detector_from_m: 0.0,
            detector_to_m: 10.0,
            stopped_mps: 5.0 / 3.6,
            queue_gap_m: 25.0,
        }
    }
}

impl PresenceConfig {
    pub fn validate(&self) -> CoreResult<()> {
        for (k, v) in [
            ("detector_from_m", self.detector_from_m),
            ("detector_to_m", self.detector_to_m),
            ("stopped_mps", self.stopped_mps),
            ("queue_gap_m", self.queue_gap_m),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(CoreError::input(format!(
                    "{k} = {v} must be finite and >= 0"
                )));
            }
        }
        if self.detector_to_m <= self.detector_from_m {
            return Err(CoreError::input(format!(
                "virtual detector is empty: detector_to_m {} <= detector_from_m {}",
                self.detector_to_m, self.detector_from_m
            )));
        }
        Ok(())
    }
}

/// Per (group, window) aggregates of tracked positions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PresenceFlows {
    pub n_groups: usize,
    pub n_windows: usize,
    pub frames: Vec<u32>,
    /// Fraction of frames with the virtual detector occupied (mean over the group's lanes).
    pub occupancy: Vec<f64>,
    /// veh/km/lane over the observed segment.
    pub density_veh_km: Vec<f64>,
    /// Space-mean speed over the segment, km/h; NaN if no vehicle was seen. With track
    /// advances given ([`TrackAdvance`]), Edie's: Σ metres advanced towards the stop line
    /// / Σ seconds, over the samples inside the segment (clipped at 0); else (or where no
    /// sample has a time step) the mean of the instantaneous speeds.
    pub segment_speed_kmh: Vec<f64>,
    /// Edie's sums behind `segment_speed_kmh` (0 without track advances): they add up
    /// over cameras, whose ratio is the speed of the union.
    pub edie_advance_m: Vec<f64>,
    pub edie_time_s: Vec<f64>,
    pub queue_mean_veh: Vec<f64>,
    pub queue_max_veh: Vec<u32>,
    pub queue_mean_m: Vec<f64>,
    pub queue_max_m: Vec<f64>,
}

/// Per sample: the metres the track advanced towards the stop line since its previous
/// observation, and the seconds since (0 for a new track: not counted).
#[derive(Debug, Clone, Copy)]
pub struct TrackAdvance<'a> {
    pub advance_m: &'a [f64],
    pub dt_s: &'a [f64],
}

/// Queue (vehicles, metres) of one lane at one instant from (distance, speed, length)
/// of the vehicles in that lane, sorted by distance upstream of the stop line.
pub fn lane_queue(
    dist_sorted: &[f64],
    speed: &[f64],
    length: &[f64],
    cfg: &PresenceConfig,
) -> (u32, f64) {
    let mut n = 0u32;
    let mut metres = 0.0;
    let mut last_front = 0.0;
    for i in 0..dist_sorted.len() {
        let d = dist_sorted[i];
        if d < -2.0 {
            continue; // already past the stop line
        }
        if d - last_front > cfg.queue_gap_m {
            break;
        }
        if speed[i] < cfg.stopped_mps {
            n += 1;
            last_front = d.max(0.0);
            metres = d.max(0.0) + length[i];
        }
        // A moving vehicle inside the chain neither extends nor breaks it.
    }
    (n, metres)
}

/// Aggregate per-frame vehicle samples.
///
/// `frame_ts` lists every analysed frame of the cameras concerned (sorted, so frames with
/// no vehicle still count for occupancy and queue means). Sample j belongs to frame
/// `frame[j]`, lane `lane[j]`, at `dist_m[j]` metres upstream of the stop line (negative =
/// past it), moving at `speed_mps[j]`, `length_m[j]` long. `segment_m[l]` is the observed
/// length of lane l (for density); `group_of_lane` as in [`aggregate_crossings`].
#[allow(clippy::too_many_arguments)]
pub fn aggregate_presence(
    frame_ts: &[f64],
    frame: &[u32],
    lane: &[u32],
    dist_m: &[f64],
    speed_mps: &[f64],
    length_m: &[f64],
    segment_m: &[f64],
    group_of_lane: &[u32],
    edges: &[f64],
    advance: Option<TrackAdvance>,
    cfg: &PresenceConfig,
) -> CoreResult<PresenceFlows> {
    let n = frame.len();
    if let Some(a) = advance {
        if a.advance_m.len() != n || a.dt_s.len() != n {
            return Err(CoreError::input(format!(
                "track advances differ in length from the samples ({n}): advance_m {}, dt_s {}",
                a.advance_m.len(),
                a.dt_s.len()
            )));
        }
        check_finite("advance_m", a.advance_m)?;
        check_finite("dt_s", a.dt_s)?;
        if let Some(i) = a.dt_s.iter().position(|&v| v < 0.0) {
            return Err(CoreError::input(format!(
                "dt_s[{i}] = {} is negative",
                a.dt_s[i]
            )));
        }
    }
    if lane.len() != n || dist_m.len() != n || speed_mps.len() != n || length_m.len() != n {
        return Err(CoreError::input(format!(
            "sample columns differ in length: frame {n}, lane {}, dist {}, speed {}, length {}",
            lane.len(),
            dist_m.len(),
            speed_mps.len(),
            length_m.len()
        )));
    }
    cfg.validate()?;
    check_edges(edges)?;
    check_finite("frame_ts", frame_ts)?;
    for i in 1..frame_ts.len() {
        if frame_ts[i] < frame_ts[i - 1] {
            return Err(CoreError::TimeOrder(format!(
                "frame_ts must be sorted: frame_ts[{i}] = {} < {}",
                frame_ts[i],
                frame_ts[i - 1]
            )));
        }
    }
    check_finite("dist_m", dist_m)?;
    check_finite("speed_mps", speed_mps)?;
    check_finite("length_m", length_m)?;
    if let Some(i) = speed_mps.iter().position(|&v| v < 0.0) {
        return Err(CoreError::input(format!(
            "speed_mps[{i}] = {} is negative",
            speed_mps[i]
        )));
    }
    if let Some(i) = length_m.iter().position(|&v| v < 0.0) {
        return Err(CoreError::input(format!(
            "length_m[{i}] = {} is negative",
            length_m[i]
        )));
    }
    let n_lanes = group_of_lane.len();
    if segment_m.len() != n_lanes {
        return Err(CoreError::input(format!(
            "segment_m has {} entries but there are {n_lanes} lanes",
            segment_m.len()
        )));
    }
    if let Some(i) = segment_m.iter().position(|&v| !(v.is_finite() && v > 0.0)) {
        return Err(CoreError::input(format!(
            "segment_m[{i}] = {} must be > 0",
            segment_m[i]
        )));
    }
    if let Some(i) = lane.iter().position(|&l| (l as usize) >= n_lanes) {
        return Err(CoreError::input(format!(
            "lane[{i}] = {} is out of range (there are {n_lanes} lanes)",
            lane[i]
        )));
    }
    let nf = frame_ts.len();
    if let Some(i) = frame.iter().position(|&f| (f as usize) >= nf) {
        return Err(CoreError::input(format!(
            "frame[{i}] = {} is out of range (there are {nf} frames)",
            frame[i]
        )));
    }
    let n_groups = group_of_lane
        .iter()
        .map(|&g| g as usize + 1)
        .max()
        .unwrap_or(0);
    let mut lanes_in_group = vec![0u32; n_groups];
    let mut seg_in_group = vec![0.0; n_groups];
    for (l, &g) in group_of_lane.iter().enumerate() {
        lanes_in_group[g as usize] += 1;
        seg_in_group[g as usize] += segment_m[l];
    }
    let nw = edges.len() - 1;
    let rows = n_groups * nw;
    let mut out = PresenceFlows {
        n_groups,
        n_windows: nw,
        frames: vec![0; rows],
        occupancy: vec![f64::NAN; rows],
        density_veh_km: vec![f64::NAN; rows],
        segment_speed_kmh: vec![f64::NAN; rows],
        edie_advance_m: vec![0.0; rows],
        edie_time_s: vec![0.0; rows],
        queue_mean_veh: vec![f64::NAN; rows],
        queue_max_veh: vec![0; rows],
        queue_mean_m: vec![f64::NAN; rows],
        queue_max_m: vec![0.0; rows],
    };
    let frame_window: Vec<Option<usize>> = frame_ts.iter().map(|&t| window_of(edges, t)).collect();
    // frames per window (the same for every group: all cameras' frames are analysed)
    let mut frames_w = vec![0u32; nw];
    for w in frame_window.iter().flatten() {
        frames_w[*w] += 1;
    }
    let mut occ_frames = vec![0u32; n_lanes * nw]; // per lane
    let mut veh_sum = vec![0.0; rows];
    let mut spd_sum = vec![0.0; rows];
    let mut spd_n = vec![0u32; rows];
    let mut q_sum = vec![0.0; rows];
    let mut qm_sum = vec![0.0; rows];

    // Group samples by (frame, lane), sorted by distance.
    let mut order: Vec<usize> = (0..n)
        .filter(|&j| frame_window[frame[j] as usize].is_some())
        .collect();
    order.sort_unstable_by(|&a, &b| {
        frame[a]
            .cmp(&frame[b])
            .then(lane[a].cmp(&lane[b]))
            .then(dist_m[a].total_cmp(&dist_m[b]))
    });
    // Per frame: queue per group (sum of lane queues), flushed on frame change.
    let mut fq_veh = vec![0u32; n_groups];
    let mut fq_m = vec![0.0f64; n_groups];
    let mut touched: Vec<usize> = Vec::new();
    let mut d_buf = Vec::new();
    let mut s_buf = Vec::new();
    let mut l_buf = Vec::new();
    let mut k = 0;
    let flush = |w: usize,
                 touched: &mut Vec<usize>,
                 fq_veh: &mut [u32],
                 fq_m: &mut [f64],
                 out: &mut PresenceFlows,
                 q_sum: &mut [f64],
                 qm_sum: &mut [f64]| {
        for &g in touched.iter() {
            let r = g * nw + w;
            q_sum[r] += fq_veh[g] as f64;
            qm_sum[r] += fq_m[g];
            out.queue_max_veh[r] = out.queue_max_veh[r].max(fq_veh[g]);
            if fq_m[g] > out.queue_max_m[r] {
                out.queue_max_m[r] = fq_m[g];
            }
            fq_veh[g] = 0;
            fq_m[g] = 0.0;
        }
        touched.clear();
    };
    while k < order.len() {
        let f = frame[order[k]];
        let w = frame_window[f as usize].expect("filtered above");
        while k < order.len() && frame[order[k]] == f {
            let l = lane[order[k]];
            let g = group_of_lane[l as usize] as usize;
            let r = g * nw + w;
            d_buf.clear();
            s_buf.clear();
            l_buf.clear();
            let mut occupied = false;
            while k < order.len() && frame[order[k]] == f && lane[order[k]] == l {
                let j = order[k];
                d_buf.push(dist_m[j]);
                s_buf.push(speed_mps[j]);
                l_buf.push(length_m[j]);
                // The vehicle body spans [d, d + length]; occupied if it overlaps the zone.
                if dist_m[j] < cfg.detector_to_m && dist_m[j] + length_m[j] > cfg.detector_from_m {
                    occupied = true;
                }
                if dist_m[j] >= 0.0 && dist_m[j] <= segment_m[l as usize] {
                    veh_sum[r] += 1.0;
                    spd_sum[r] += speed_mps[j] * 3.6;
                    spd_n[r] += 1;
                    if let Some(a) = advance {
                        if a.dt_s[j] > 0.0 {
                            out.edie_advance_m[r] += a.advance_m[j];
                            out.edie_time_s[r] += a.dt_s[j];
                        }
                    }
                }
                k += 1;
            }
            if occupied {
                occ_frames[l as usize * nw + w] += 1;
            }
            let (qv, qm) = lane_queue(&d_buf, &s_buf, &l_buf, cfg);
            if !touched.contains(&g) {
                touched.push(g);
            }
            fq_veh[g] += qv;
            fq_m[g] = fq_m[g].max(qm);
        }
        flush(
            w,
            &mut touched,
            &mut fq_veh,
            &mut fq_m,
            &mut out,
            &mut q_sum,
            &mut qm_sum,
        );
    }
    for g in 0..n_groups {
        for w in 0..nw {
            let r = g * nw + w;
            let nfw = frames_w[w];
            out.frames[r] = nfw;
            if nfw == 0 {
                continue;
            }
            let nfw = nfw as f64;
            let mut occ = 0.0;
            for (l, &gl) in group_of_lane.iter().enumerate() {
                if gl as usize == g {
                    occ += occ_frames[l * nw + w] as f64 / nfw;
                }
            }
            let nl = lanes_in_group[g].max(1) as f64;
            out.occupancy[r] = occ / nl;
            // veh/km/lane: mean vehicles per frame over total observed lane-km of the group
            out.density_veh_km[r] = veh_sum[r] / nfw / (seg_in_group[g] / 1000.0);
            if out.edie_time_s[r] > 0.0 {
                out.segment_speed_kmh[r] =
                    (out.edie_advance_m[r] / out.edie_time_s[r]).max(0.0) * 3.6;
            } else if spd_n[r] > 0 {
                out.segment_speed_kmh[r] = spd_sum[r] / spd_n[r] as f64;
            }
            out.queue_mean_veh[r] = q_sum[r] / nfw;
            out.queue_mean_m[r] = qm_sum[r] / nfw;
        }
    }
    Ok(out)
}

/// Degree of saturation, control delay and level of service of one lane group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignalPerformance {
    pub capacity_vph: f64,
    pub degree_of_saturation: f64,
    pub uniform_delay_s: f64,
    pub incremental_delay_s: f64,
    pub control_delay_s: f64,
    pub los: char,
}

/// HCM signalised-intersection level of service from control delay (s/veh) and v/c
/// (HCM 6th ed. Exhibit 19-8: A ≤ 10, B ≤ 20, C ≤ 35, D ≤ 55, E ≤ 80, F > 80 or v/c > 1).
pub fn level_of_service(control_delay_s: f64, degree_of_saturation: f64) -> char {
    if degree_of_saturation > 1.0 || control_delay_s > 80.0 {
        'F'
    } else if control_delay_s > 55.0 {
        'E'
    } else if control_delay_s > 35.0 {
        'D'
    } else if control_delay_s > 20.0 {
        'C'
    } else if control_delay_s > 10.0 {
        'B'
    } else {
        'A'
    }
}

/// Capacity, x, HCM control delay (d1 + d2) and LOS for a lane group with demand
/// `volume_vph` (PCU/h), saturation flow `sat_flow_vph` (PCU/h of green), effective green
/// `green_s` in a cycle of `cycle_s`. Analysis period T = 0.25 h, k = 0.5 (pretimed),
/// I = 1, no initial queue.
pub fn signal_performance(
    volume_vph: f64,
    sat_flow_vph: f64,
    green_s: f64,
    cycle_s: f64,
) -> CoreResult<SignalPerformance> {
    for (k, v) in [
        ("volume_vph", volume_vph),
        ("sat_flow_vph", sat_flow_vph),
        ("green_s", green_s),
        ("cycle_s", cycle_s),
    ] {
        if !v.is_finite() || v < 0.0 {
            return Err(CoreError::input(format!(
                "{k} = {v} must be finite and >= 0"
            )));
        }
    }
    if sat_flow_vph <= 0.0 || cycle_s <= 0.0 || green_s <= 0.0 {
        return Err(CoreError::input(format!(
            "saturation flow ({sat_flow_vph}), green ({green_s}) and cycle ({cycle_s}) must be > 0"
        )));
    }
    if green_s > cycle_s {
        return Err(CoreError::input(format!(
            "green {green_s} s exceeds the cycle {cycle_s} s"
        )));
    }
    let gc = green_s / cycle_s;
    let cap = sat_flow_vph * gc;
    let x = volume_vph / cap;
    let d1 = 0.5 * cycle_s * (1.0 - gc).powi(2) / (1.0 - x.min(1.0) * gc);
    let t = 0.25;
    let (k, i) = (0.5, 1.0);
    let d2 = 900.0 * t * ((x - 1.0) + ((x - 1.0).powi(2) + 8.0 * k * i * x / (cap * t)).sqrt());
    let d = d1 + d2;
    Ok(SignalPerformance {
        capacity_vph: cap,
        degree_of_saturation: x,
        uniform_delay_s: d1,
        incremental_delay_s: d2,
        control_delay_s: d,
        los: level_of_service(d, x),
    })
}

/// Default TTI breakpoints for TPI 0, 2, 4, 6, 8, 10 (see module docs).
pub const TPI_TTI_BREAKS: [f64; 6] = [1.0, 1.3, 1.6, 1.9, 2.2, 2.5];

/// Traffic performance index (0–10) from a travel-time index (actual / free-flow travel
/// time), piecewise-linear through `breaks` (TTI at TPI 0, 2, 4, 6, 8, 10).
pub fn traffic_performance_index(tti: f64, breaks: &[f64; 6]) -> CoreResult<f64> {
    if !tti.is_finite() || tti <= 0.0 {
        return Err(CoreError::input(format!(
            "travel-time index {tti} must be finite and > 0"
        )));
    }
    for i in 1..6 {
        if breaks[i] <= breaks[i - 1] {
            return Err(CoreError::input(format!(
                "TPI breakpoints must increase: {breaks:?}"
            )));
        }
    }
    if tti <= breaks[0] {
        return Ok(0.0);
    }
    if tti >= breaks[5] {
        return Ok(10.0);
    }
    let i = breaks.partition_point(|&b| b <= tti) - 1;
    Ok(2.0 * i as f64 + 2.0 * (tti - breaks[i]) / (breaks[i + 1] - breaks[i]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn volume_speeds_headways() {
        // 4 crossings in lane 0 within a 60 s window, 1 in lane 1, one outside.
        let ts = [1.0, 3.0, 7.0, 8.0, 10.0, 70.0];
        let lane = [0, 0, 0, 0, 1, 0];
        let v = [36.0, 72.0, f64::NAN, 36.0, 50.0, 10.0];
        let pcu = [1.0, 2.5, 1.0, 1.0, 1.0, 1.0];
        let f = aggregate_crossings(&ts, &lane, &v, &pcu, &[0, 1], &[0.0, 60.0]).unwrap();
        assert_eq!(f.count, vec![4, 1]);
        assert!((f.volume_vph[0] - 240.0).abs() < 1e-9);
        assert!((f.pcu_vph[0] - 5.5 * 60.0).abs() < 1e-9);
        assert!((f.time_mean_speed_kmh[0] - 48.0).abs() < 1e-9);
        // harmonic mean of 36, 72, 36 = 3 / (1/36 + 1/72 + 1/36) = 43.2
        assert!((f.space_mean_speed_kmh[0] - 43.2).abs() < 1e-9);
        assert!((f.headway_mean_s[0] - 7.0 / 3.0).abs() < 1e-9);
        assert_eq!(f.headway_min_s[0], 1.0);
        assert!(f.headway_mean_s[1].is_nan());
    }

    #[test]
    fn queue_chain() {
        let cfg = PresenceConfig::default();
        // stopped at 1, 8, 15 m; a moving car at 22; stopped at 29; then a 60 m gap
        let d = [1.0, 8.0, 15.0, 22.0, 29.0, 90.0];
        let s = [0.0, 0.1, 0.5, 8.0, 0.0, 0.0];
        let l = [5.0; 6];
        let (n, m) = lane_queue(&d, &s, &l, &cfg);
        assert_eq!(n, 4);
        assert!((m - 34.0).abs() < 1e-9);
    }

    #[test]
    fn presence_occupancy_density() {
        // 4 frames; a car in the detector zone in frames 0 and 1; lane segment 100 m.
        let frame_ts = [0.0, 1.0, 2.0, 3.0];
        let frame = [0, 1, 2];
        let lane = [0, 0, 0];
        let dist = [5.0, 2.0, 50.0];
        let spd = [0.0, 0.0, 10.0];
        let len = [4.0, 4.0, 4.0];
        let cfg = PresenceConfig::default();
        let p = aggregate_presence(
            &frame_ts,
            &frame,
            &lane,
            &dist,
            &spd,
            &len,
            &[100.0],
            &[0],
            &[0.0, 4.0],
            None,
            &cfg,
        )
        .unwrap();
        assert_eq!(p.frames, vec![4]);
        // no track advances: the mean of the instantaneous speeds, (0 + 0 + 10) / 3 m/s
        assert!((p.segment_speed_kmh[0] - 12.0).abs() < 1e-9);
        assert_eq!(p.edie_time_s[0], 0.0);
        assert!((p.occupancy[0] - 0.5).abs() < 1e-12);
        // 3 vehicle-frames / 4 frames / 0.1 km = 7.5 veh/km
        assert!((p.density_veh_km[0] - 7.5).abs() < 1e-12);
        assert!((p.queue_mean_veh[0] - 0.5).abs() < 1e-12);
        assert_eq!(p.queue_max_veh[0], 1);
    }

    #[test]
    fn presence_edie_speed_from_track_advances() {
        // one track, 3 frames 1 s apart inside a 100 m segment: it advances 8 m then 0 m
        // (halted); its instantaneous speeds read box jitter (0.5 m/s while halted)
        let frame_ts = [0.0, 1.0, 2.0];
        let (frame, lane) = ([0, 1, 2], [0, 0, 0]);
        let dist = [60.0, 52.0, 52.0];
        let spd = [8.0, 8.0, 0.5];
        let len = [4.5; 3];
        let adv = [0.0, 8.0, 0.0];
        let dt = [0.0, 1.0, 1.0];
        let cfg = PresenceConfig::default();
        let run = |a: Option<TrackAdvance>| {
            aggregate_presence(
                &frame_ts,
                &frame,
                &lane,
                &dist,
                &spd,
                &len,
                &[100.0],
                &[0],
                &[0.0, 3.0],
                a,
                &cfg,
            )
        };
        let p = run(Some(TrackAdvance {
            advance_m: &adv,
            dt_s: &dt,
        }))
        .unwrap();
        // Edie: 8 m over the 2 s with a time step (the new track's sample is not counted)
        assert!((p.segment_speed_kmh[0] - 4.0 * 3.6).abs() < 1e-9);
        assert_eq!((p.edie_advance_m[0], p.edie_time_s[0]), (8.0, 2.0));
        // bad advances are named
        let short = run(Some(TrackAdvance {
            advance_m: &adv[..2],
            dt_s: &dt,
        }));
        assert!(format!("{}", short.unwrap_err()).contains("advance_m 2"));
        let neg = run(Some(TrackAdvance {
            advance_m: &adv,
            dt_s: &[0.0, -1.0, 1.0],
        }));
        assert!(format!("{}", neg.unwrap_err()).contains("dt_s[1]"));
    }

    #[test]
    fn delay_and_los() {
        // Webster/HCM uniform delay: C = 90, g = 45, x = 0.5 → d1 = 0.5·90·0.25 / 0.75 = 15
        let p = signal_performance(450.0, 1800.0, 45.0, 90.0).unwrap();
        assert!((p.degree_of_saturation - 0.5).abs() < 1e-12);
        assert!((p.uniform_delay_s - 15.0).abs() < 1e-9);
        assert!(p.incremental_delay_s > 0.0 && p.incremental_delay_s < 5.0);
        assert_eq!(p.los, 'B');
        assert_eq!(level_of_service(9.0, 1.2), 'F');
        assert!(signal_performance(-1.0, 1800.0, 45.0, 90.0).is_err());
        assert!(signal_performance(f64::NAN, 1800.0, 45.0, 90.0).is_err());
    }

    #[test]
    fn tpi_bands() {
        let b = TPI_TTI_BREAKS;
        assert_eq!(traffic_performance_index(0.9, &b).unwrap(), 0.0);
        assert!((traffic_performance_index(1.3, &b).unwrap() - 2.0).abs() < 1e-12);
        assert!((traffic_performance_index(1.45, &b).unwrap() - 3.0).abs() < 1e-12);
        assert_eq!(traffic_performance_index(9.0, &b).unwrap(), 10.0);
        assert!(traffic_performance_index(f64::NAN, &b).is_err());
    }

    #[test]
    fn bad_input() {
        let e = [0.0, 10.0];
        assert!(aggregate_crossings(&[1.0], &[0], &[-3.0], &[1.0], &[0], &e).is_err());
        assert!(aggregate_crossings(&[f64::NAN], &[0], &[3.0], &[1.0], &[0], &e).is_err());
        assert!(aggregate_crossings(&[1.0], &[0], &[3.0], &[0.0], &[0], &e).is_err());
        assert!(aggregate_crossings(&[1.0], &[2], &[3.0], &[1.0], &[0], &e).is_err());
        assert!(aggregate_crossings(&[1.0], &[0], &[3.0], &[1.0], &[0], &[5.0, 5.0]).is_err());
    }

    proptest! {
        #[test]
        fn counts_are_conserved(
            xs in proptest::collection::vec((0.0f64..100.0, 0u32..4, 0.0f64..90.0), 0..200),
            w in 1.0f64..50.0,
        ) {
            let ts: Vec<f64> = xs.iter().map(|x| x.0).collect();
            let lane: Vec<u32> = xs.iter().map(|x| x.1).collect();
            let v: Vec<f64> = xs.iter().map(|x| x.2).collect();
            let pcu = vec![1.0; xs.len()];
            let mut edges = vec![0.0];
            while *edges.last().unwrap() < 100.0 { edges.push(edges.last().unwrap() + w); }
            let per_lane = aggregate_crossings(&ts, &lane, &v, &pcu, &[0, 1, 2, 3], &edges).unwrap();
            let per_app = aggregate_crossings(&ts, &lane, &v, &pcu, &[0, 0, 1, 1], &edges).unwrap();
            let total: u32 = per_lane.count.iter().sum();
            prop_assert_eq!(total as usize, xs.len());
            prop_assert_eq!(per_app.count.iter().sum::<u32>(), total);
            for r in 0..per_lane.count.len() {
                if per_lane.n_speed[r] > 0 {
                    // harmonic <= arithmetic
                    prop_assert!(per_lane.space_mean_speed_kmh[r] <= per_lane.time_mean_speed_kmh[r] + 1e-9);
                }
            }
        }
    }
}
