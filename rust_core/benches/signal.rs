//! Signal-timing hot paths: max-pressure and pressure-actuated decisions, a full
//! controller + safety-machine step, adaptive re-planning, Webster plans and the green-wave
//! optimiser on 10 intersections.
use std::hint::black_box;
use std::sync::Arc;

use citystream_core::signal::control::{random_states, DetectorState};
use citystream_core::signal::machine::{Interval, Status};
use citystream_core::signal::model::{FourArmOptions, Intersection};
use citystream_core::signal::plan::{self, AdaptiveParams, AdaptivePlanner};
use citystream_core::signal::{
    GreenWaveCorridor, MaxPressureController, MaxPressureParams, PressureActuatedController,
    PressureActuatedParams, SignalController, Strategy,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn status(i: usize, np: usize) -> Status {
    Status {
        now_s: i as f64,
        phase: i % np,
        next_phase: None,
        interval: Interval::Green,
        elapsed_s: 10.0 + (i % 50) as f64,
        remaining_s: 0.0,
        preempting: false,
        changed: false,
        held_by_min_green: false,
    }
}

fn bench(c: &mut Criterion) {
    let ix = Arc::new(Intersection::standard_four_arm("b", &FourArmOptions::default()).unwrap());
    let n = ix.n_movements();
    let k = 1024;
    let (q, a, g) = random_states(n, k, 7);
    let det = |j: usize| DetectorState {
        queue: &q[j * n..(j + 1) * n],
        approaching: &a[j * n..(j + 1) * n],
        gap_s: Some(&g[j * n..(j + 1) * n]),
        downstream: None,
        arrivals: None,
        expected: None,
    };

    let mut grp = c.benchmark_group("signal_decisions");
    grp.throughput(Throughput::Elements(k as u64));
    let mut mp = MaxPressureController::new(
        ix.clone(),
        MaxPressureParams {
            approach_weight: 0.5,
            ..Default::default()
        },
    )
    .unwrap();
    grp.bench_function("max_pressure_x1024", |b| {
        b.iter(|| {
            let mut acc = 0;
            for j in 0..k {
                acc += mp.decide(&status(j, 4), &det(j)).unwrap_or(0);
            }
            black_box(acc)
        })
    });
    let mut pa =
        PressureActuatedController::new(ix.clone(), PressureActuatedParams::default()).unwrap();
    grp.bench_function("pressure_actuated_x1024", |b| {
        b.iter(|| {
            let mut acc = 0;
            for j in 0..k {
                acc += pa.decide(&status(j, 4), &det(j)).unwrap_or(0);
            }
            black_box(acc)
        })
    });
    let pa2 =
        PressureActuatedController::new(ix.clone(), PressureActuatedParams::default()).unwrap();
    let mut sc = SignalController::new(ix.clone(), Strategy::PressureActuated(pa2), 0).unwrap();
    grp.bench_function("controller_step_x1024", |b| {
        b.iter(|| {
            for j in 0..k {
                black_box(sc.step(1.0, Some(&det(j)), None).unwrap());
            }
        })
    });
    grp.finish();

    let flows: Vec<f64> = q.iter().map(|x| x * 40.0).collect();
    let mut grp = c.benchmark_group("signal_plans");
    grp.bench_function("webster", |b| {
        let mut j = 0;
        b.iter(|| {
            j = (j + 1) % k;
            black_box(
                plan::webster(&ix, &flows[j * n..(j + 1) * n])
                    .unwrap()
                    .cycle,
            )
        })
    });
    let mut ap = AdaptivePlanner::new(ix.clone(), AdaptiveParams::default()).unwrap();
    grp.bench_function("adaptive_replan", |b| {
        let mut j = 0;
        b.iter(|| {
            j = (j + 1) % k;
            black_box(ap.update(&flows[j * n..(j + 1) * n]).unwrap().cycle)
        })
    });
    let corridor = GreenWaveCorridor {
        distances_m: vec![
            320.0, 410.0, 280.0, 520.0, 350.0, 300.0, 450.0, 380.0, 260.0,
        ],
        speed_out: vec![13.9; 9],
        speed_in: vec![12.5; 9],
        green_split: vec![0.45, 0.5, 0.55, 0.4, 0.5, 0.45, 0.6, 0.5, 0.5, 0.45],
        cycle_min: 60.0,
        cycle_max: 150.0,
        cycle_step: 1.0,
    };
    grp.bench_function("green_wave_10_intersections_91_cycles", |b| {
        b.iter(|| black_box(corridor.optimize().unwrap().efficiency))
    });
    grp.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
