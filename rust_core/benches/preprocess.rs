//! Criterion benches for `preprocess`: letterbox of 1080p / 576p frames to 416x416, and a
//! plate-sized perspective warp.
use citystream_core::preprocess::{
    letterbox_into, letterbox_into_with, quad_to_rect_h_inv, warp_perspective,
    warp_perspective_chw, ImageView, Normalize,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

/// A deterministic textured frame (smooth gradients plus noise), BGR.
fn frame(w: usize, h: usize) -> Vec<u8> {
    let mut s = 0x9e37_79b9u32;
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let n = (s >> 28) as usize;
            out.push(((x * 255 / w + n) & 255) as u8);
            out.push(((y * 255 / h + n) & 255) as u8);
            out.push((((x + y) * 127 / (w + h) + n) & 255) as u8);
        }
    }
    out
}

fn bench_letterbox(c: &mut Criterion) {
    let mut g = c.benchmark_group("letterbox_416");
    for &(w, h) in &[(1920usize, 1080usize), (768, 576)] {
        let data = frame(w, h);
        let v = ImageView::new(&data, w, h).unwrap();
        let mut out = vec![0f32; 3 * 416 * 416];
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("{w}x{h}_parallel"), |b| {
            b.iter(|| letterbox_into(black_box(&v), 416, 416, &mut out).unwrap())
        });
        g.bench_function(format!("{w}x{h}_serial"), |b| {
            b.iter(|| letterbox_into_with(black_box(&v), 416, 416, &mut out, false).unwrap())
        });
    }
    g.finish();
}

fn bench_warp(c: &mut Criterion) {
    let (w, h) = (1280usize, 720usize);
    let data = frame(w, h);
    let v = ImageView::new(&data, w, h).unwrap();
    let quad = [
        [600.0, 400.0],
        [780.0, 410.0],
        [776.0, 462.0],
        [598.0, 450.0],
    ];
    let hi = quad_to_rect_h_inv(quad, 168, 48).unwrap();
    c.bench_function("warp_plate_168x48_u8", |b| {
        b.iter(|| warp_perspective(black_box(&v), hi, 168, 48).unwrap())
    });
    c.bench_function("warp_plate_168x48_chw", |b| {
        b.iter(|| warp_perspective_chw(black_box(&v), hi, 168, 48, Normalize::default()).unwrap())
    });
}

criterion_group!(benches, bench_letterbox, bench_warp);
criterion_main!(benches);
