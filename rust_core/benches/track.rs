//! Tracker hot path: one frame of `Tracker::update` and of the full per-camera
//! `CameraAnalytics::update` (tracking + two counting lines + a zone + road-plane speed) at
//! 10 / 100 / 1000 objects moving through a scene with box jitter, misses and low scores.
use std::hint::black_box;

use citystream_core::count::{CameraAnalytics, LineSpec};
use citystream_core::geometry::{Homography, Polygon};
use citystream_core::track::{Tracker, TrackerConfig};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};

type Frame = (Vec<[f32; 4]>, Vec<f32>, Vec<i32>);

/// `n` objects on a lattice of lanes, moving at lane speeds, for `frames` frames at 10 fps.
fn stream(n: usize, frames: usize) -> (Vec<Frame>, f32, f32) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
    let lanes = ((n as f32).sqrt().ceil() as usize).max(2);
    let per_lane = n.div_ceil(lanes);
    let (w, h) = (per_lane as f32 * 80.0 + 200.0, lanes as f32 * 40.0 + 40.0);
    let objs: Vec<(f32, f32, f32)> = (0..n)
        .map(|i| {
            let lane = i % lanes;
            let slot = i / lanes;
            let v = if lane.is_multiple_of(2) { 60.0 } else { -60.0 }
                * (1.0 + 0.05 * (lane % 3) as f32);
            (
                slot as f32 * 80.0 + rng.random_range(0.0..20.0),
                20.0 + lane as f32 * 40.0,
                v,
            )
        })
        .collect();
    let mut out = Vec::with_capacity(frames);
    for k in 0..frames {
        let t = k as f32 * 0.1;
        let (mut b, mut s, mut c) = (vec![], vec![], vec![]);
        for &(x0, y, v) in &objs {
            if rng.random::<f32>() < 0.05 {
                continue;
            }
            let x = (x0 + v * t).rem_euclid(w);
            let j = |r: &mut rand::rngs::StdRng| r.random_range(-1.0f32..1.0);
            b.push([
                x + j(&mut rng),
                y - 25.0 + j(&mut rng),
                x + 40.0 + j(&mut rng),
                y + j(&mut rng),
            ]);
            s.push(if rng.random::<f32>() < 0.1 { 0.3 } else { 0.85 });
            c.push(2);
        }
        out.push((b, s, c));
    }
    (out, w, h)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("track_frame");
    for &n in &[10usize, 100, 1000] {
        let (frames, w, h) = stream(n, 300);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("tracker", n), &n, |bch, _| {
            let mut t = Tracker::new(TrackerConfig::default()).unwrap();
            let mut k = 0usize;
            bch.iter(|| {
                let f = &frames[k % frames.len()];
                t.update(&f.0, &f.1, &f.2, k as f64 * 0.1).unwrap();
                k += 1;
                black_box(t.outputs().len())
            })
        });
        g.bench_with_input(BenchmarkId::new("camera_analytics", n), &n, |bch, _| {
            let image = [
                [0.0, h as f64],
                [w as f64, h as f64],
                [w as f64 * 0.9, 0.0],
                [w as f64 * 0.1, 0.0],
            ];
            let world = [
                [0.0, 0.0],
                [w as f64 / 10.0, 0.0],
                [w as f64 / 10.0, h as f64 / 5.0],
                [0.0, h as f64 / 5.0],
            ];
            let hom = Homography::from_points(&image, &world).unwrap();
            let lines = vec![
                LineSpec {
                    a: [w as f64 / 3.0, 0.0],
                    b: [w as f64 / 3.0, h as f64],
                    classes: None,
                    margin_px: None,
                },
                LineSpec {
                    a: [w as f64 * 0.66, h as f64],
                    b: [w as f64 * 0.66, 0.0],
                    classes: None,
                    margin_px: None,
                },
            ];
            let zone = Polygon::new(vec![
                [0.0, 0.0],
                [w as f64 / 2.0, 0.0],
                [w as f64 / 2.0, h as f64],
                [0.0, h as f64],
            ])
            .unwrap();
            let mut ca =
                CameraAnalytics::new(TrackerConfig::default(), lines, vec![zone], Some(hom))
                    .unwrap();
            let mut k = 0usize;
            bch.iter(|| {
                let f = &frames[k % frames.len()];
                let out = ca.update(&f.0, &f.1, &f.2, k as f64 * 0.1).unwrap();
                k += 1;
                black_box(out.ids.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
