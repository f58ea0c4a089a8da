"""The synthetic scene generator: determinism and ground-truth consistency."""

from __future__ import annotations

import numpy as np

from engine.synth import SynthConfig, dense_scene, idf1, street_scene


def test_deterministic_for_a_seed():
    a = street_scene(SynthConfig(duration_s=8, seed=7))
    b = street_scene(SynthConfig(duration_s=8, seed=7))
    c = street_scene(SynthConfig(duration_s=8, seed=8))
    assert len(a.frames) == len(b.frames)
    for fa, fb in zip(a.frames, b.frames, strict=True):
        np.testing.assert_array_equal(fa.dets.xyxy, fb.dets.xyxy)
        np.testing.assert_array_equal(fa.det_gt_ids, fb.det_gt_ids)
    assert a.crossings == b.crossings
    assert any(
        len(fa.dets) != len(fc.dets) or not np.array_equal(fa.dets.xyxy, fc.dets.xyxy)
        for fa, fc in zip(a.frames, c.frames, strict=False)
    )


def test_fps_and_noise_free_truth():
    seq = street_scene(
        SynthConfig(
            fps=5,
            duration_s=30,
            seed=1,
            pedestrians_per_min=12,
            jitter=0,
            miss_rate=0,
            fp_per_frame=0,
            low_score_rate=0,
            occlusion=False,
            class_flip_rate=0,
        )
    )
    ts = np.array([f.ts for f in seq.frames])
    np.testing.assert_allclose(np.diff(ts), 0.2)
    for f in seq.frames:
        # Without noise every visible object is detected exactly at its true box.
        order = np.argsort(f.det_gt_ids)
        np.testing.assert_array_equal(f.det_gt_ids[order], np.sort(f.gt_ids))
        gt_sorted = f.gt_xyxy[np.argsort(f.gt_ids)]
        np.testing.assert_allclose(f.dets.xyxy[order], gt_sorted, atol=1e-3)
    classes = {seq.object_class[i].label for f in seq.frames for i in f.gt_ids}
    assert {"car", "person"} <= classes
    assert seq.crossings and {c.direction for c in seq.crossings} == {"in", "out"}


def test_irregular_frame_times_are_monotonic():
    seq = street_scene(SynthConfig(fps=8, duration_s=10, seed=2, irregular=0.6))
    ts = np.array([f.ts for f in seq.frames])
    assert (np.diff(ts) >= 0).all() and np.diff(ts).std() > 0.01


def test_dense_scene_holds_the_requested_count():
    seq = dense_scene(300, SynthConfig(duration_s=2, seed=0, occlusion=False))
    visible = np.mean([len(f.gt_ids) for f in seq.frames])
    assert 200 <= visible <= 450


def test_idf1_metric():
    b = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)
    gt = [(np.array([1, 2]), b)] * 4
    perfect = [(np.array([7, 8]), b)] * 4
    assert idf1(gt, perfect).idf1 == 1.0
    # One identity swap halfway: each gt keeps its majority id for half the frames.
    swapped = [(np.array([7, 8]), b)] * 2 + [(np.array([8, 7]), b)] * 2
    assert idf1(gt, swapped).idf1 == 0.5
    # Missing half of the predictions: IDP = 1, IDR = 0.5.
    half = [(np.array([7]), b[:1])] * 4
    m = idf1(gt, half)
    assert m.idp == 1.0 and m.idr == 0.5
