//! Criterion benches for `detect`: decode + class-aware NMS of YOLOv3-tiny-shaped
//! outputs ([1, 2535, 85]) and YOLOv8-shaped outputs ([1, 84, 8400]) with a realistic
//! number of confident rows, and NMS alone on dense candidates.
use citystream_core::detect::{decode, nms, DecodeParams, FrameMeta, Layout};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Rows (cx, cy, w, h, obj, 80 probs): about 2% confident, clustered so NMS has work.
fn v3_output(rows: usize) -> Vec<f32> {
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    let mut out = vec![0f32; rows * 85];
    for i in 0..rows {
        let row = &mut out[i * 85..(i + 1) * 85];
        let cluster = (i % 12) as f32;
        row[0] = 30.0 + cluster * 30.0 + r.next() * 6.0;
        row[1] = 100.0 + cluster * 15.0 + r.next() * 6.0;
        row[2] = 20.0 + r.next() * 10.0;
        row[3] = 50.0 + r.next() * 20.0;
        row[4] = if r.next() < 0.02 {
            0.5 + 0.5 * r.next()
        } else {
            0.01 * r.next()
        };
        for p in &mut row[5..] {
            *p = 0.05 * r.next();
        }
        row[5 + [0usize, 2, 7][i % 3]] = 0.6 + 0.4 * r.next();
    }
    out
}

fn bench_decode(c: &mut Criterion) {
    let meta = [FrameMeta {
        scale: 416.0 / 768.0,
        pad_x: 0.0,
        pad_y: 52.0,
        orig_w: 768.0,
        orig_h: 576.0,
    }];
    let p = DecodeParams::default();
    let v3 = v3_output(2535);
    c.bench_function("decode_yolov3_2535x85", |b| {
        b.iter(|| decode(black_box(&v3), &[1, 2535, 85], &Layout::Yolov3, &meta, &p).unwrap())
    });
    // the same rows transposed to the v8 layout, 8400 anchors (objectness folded in)
    let rows = v3_output(8400);
    let mut v8 = vec![0f32; 84 * 8400];
    for a in 0..8400 {
        for k in 0..4 {
            v8[k * 8400 + a] = rows[a * 85 + k];
        }
        for cls in 0..80 {
            v8[(4 + cls) * 8400 + a] = rows[a * 85 + 4] * rows[a * 85 + 5 + cls];
        }
    }
    c.bench_function("decode_yolov8_84x8400", |b| {
        b.iter(|| decode(black_box(&v8), &[1, 84, 8400], &Layout::Yolov8, &meta, &p).unwrap())
    });
}

fn bench_nms(c: &mut Criterion) {
    let mut r = Rng(7);
    let n = 1000;
    let boxes: Vec<[f32; 4]> = (0..n)
        .map(|_| {
            let (x, y) = (r.next() * 600.0, r.next() * 400.0);
            [x, y, x + 20.0 + r.next() * 40.0, y + 40.0 + r.next() * 60.0]
        })
        .collect();
    let scores: Vec<f32> = (0..n).map(|_| r.next()).collect();
    let classes: Vec<i32> = (0..n).map(|i| i % 6).collect();
    c.bench_function("nms_1000_boxes_6_classes", |b| {
        b.iter(|| nms(black_box(&boxes), &scores, &classes, 0.45, 300))
    });
}

criterion_group!(benches, bench_decode, bench_nms);
criterion_main!(benches);
