//! End-to-end through the public API: vehicles on a road seen by a perspective camera at
//! low, irregular frame rates, with jitter, misses and a box flickering on the line —
//! counts must be exact, ids contiguous, speeds from the road plane.
use citystream_core::count::{CameraAnalytics, LineSpec, DIR_IN, DIR_OUT};
use citystream_core::geometry::Homography;
use citystream_core::track::TrackerConfig;
use citystream_core::CoreError;
use rand::{Rng, SeedableRng};

fn camera() -> Homography {
    let image = [
        [0.0, 720.0],
        [1280.0, 720.0],
        [790.0, 140.0],
        [490.0, 140.0],
    ];
    let world = [[-15.0, 8.0], [15.0, 8.0], [15.0, 90.0], [-15.0, 90.0]];
    Homography::from_points(&image, &world).unwrap()
}

/// Box of a car whose near ground point is at world (x, y).
fn car_box(h: &Homography, x: f64, y: f64) -> [f32; 4] {
    let g = h.to_image([x, y]).unwrap();
    let side = h.to_image([x + 1.0, y]).unwrap();
    let ppm = (side[0] - g[0]).abs();
    let (w, hh) = (1.8 * ppm, 1.5 * ppm * 1.6);
    [
        (g[0] - w / 2.0) as f32,
        (g[1] - hh) as f32,
        (g[0] + w / 2.0) as f32,
        g[1] as f32,
    ]
}

#[test]
fn exact_counts_at_low_irregular_fps() {
    let h = camera();
    let a = h.to_image([-8.0, 40.0]).unwrap();
    let b = h.to_image([8.0, 40.0]).unwrap();
    let line = LineSpec {
        a,
        b,
        classes: None,
        margin_px: None,
    };
    for (fps, seed) in [(5.0, 1u64), (8.0, 2), (12.0, 3)] {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut ca = CameraAnalytics::new(
            TrackerConfig::default(),
            vec![line.clone()],
            vec![],
            Some(h.clone()),
        )
        .unwrap();
        // Lane x, start time, speed (+ = away from the camera), a stop on the line or not.
        let cars: Vec<(f64, f64, f64, bool)> = (0..12)
            .map(|i| {
                let lane = [-5.25, -1.75, 1.75, 5.25][i % 4];
                let dir = if lane < 0.0 { -1.0 } else { 1.0 };
                (
                    lane,
                    i as f64 * 2.5,
                    dir * rng.random_range(8.0..15.0),
                    i % 5 == 0,
                )
            })
            .collect();
        let (mut t, mut n_in, mut n_out, mut seen) = (0.0, 0, 0, std::collections::BTreeSet::new());
        while t < 45.0 {
            let (mut boxes, mut scores, mut classes) = (vec![], vec![], vec![]);
            for &(x, t0, v, stops) in &cars {
                let tau = t - t0;
                if tau < 0.0 {
                    continue;
                }
                let start = if v < 0.0 { 85.0 } else { 10.0 };
                // A stopper waits 3 s with its ground point on the line (y = 40).
                let t_line = (40.0 - start) / v;
                let y = if stops && tau > t_line && tau < t_line + 3.0 {
                    40.0
                } else if stops && tau >= t_line + 3.0 {
                    start + v * (tau - 3.0)
                } else {
                    start + v * tau
                };
                if !(9.0..=86.0).contains(&y) || rng.random::<f64>() < 0.05 {
                    continue;
                }
                let mut bx = car_box(&h, x, y);
                let hh = bx[3] - bx[1];
                for v in bx.iter_mut() {
                    *v += rng.random_range(-0.04..0.04) * hh;
                }
                boxes.push(bx);
                scores.push(if rng.random::<f64>() < 0.1 { 0.3 } else { 0.85 });
                classes.push(2);
            }
            let out = ca.update(&boxes, &scores, &classes, t).unwrap();
            for c in &out.crossings {
                if c.direction == DIR_IN {
                    n_in += 1;
                } else {
                    assert_eq!(c.direction, DIR_OUT);
                    n_out += 1;
                }
            }
            seen.extend(out.ids.iter().copied());
            t += (1.0 / fps) * rng.random_range(0.7..1.3);
        }
        // Cars on the right (x > 0) drive away (up the image): right → left of a→b = in.
        assert_eq!((n_in, n_out), (6, 6), "fps {fps}");
        let ids: Vec<u64> = seen.into_iter().collect();
        assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
        assert_eq!(ids.len(), 12, "one id per car at fps {fps}");
    }
}

#[test]
fn backwards_time_is_a_time_order_error_and_changes_nothing() {
    let mut ca = CameraAnalytics::new(TrackerConfig::default(), vec![], vec![], None).unwrap();
    ca.update(&[[0.0, 0.0, 10.0, 10.0]], &[0.9], &[2], 10.0)
        .unwrap();
    let e = ca
        .update(&[[0.0, 0.0, 10.0, 10.0]], &[0.9], &[2], 9.0)
        .unwrap_err();
    assert!(matches!(e, CoreError::TimeOrder(_)));
    assert_eq!(ca.tracker().last_ts(), Some(10.0));
}
