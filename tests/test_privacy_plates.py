"""Privacy by default: tokens, not text, in records; blurring on egress."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engine.config import SiteConfig
from engine.plates import PlateStage
from engine.privacy import blur_plates, plate_token
from engine.records import FrameResult, Observation, to_json


def _scene(data_dir: Path) -> tuple[np.ndarray, Observation, str]:
    f = sorted((data_dir / "plates" / "ccpd").glob("*.jpg"))[1]
    img = cv2.imread(str(f))
    # a "vehicle" box around the plate region
    obs = Observation("cam1", 0, 0.0, 7, "car", 100.0, 350.0, 650.0, 750.0, 0.9)
    return img, obs, "皖AFL605"


def _run(
    cfg: SiteConfig, img: np.ndarray, obs: Observation, reader=None
) -> tuple[FrameResult, PlateStage]:
    stage = PlateStage.from_config(cfg, reader=reader)
    res = None
    for k in range(3):
        o = Observation(
            **{**obs.__dict__}
            if hasattr(obs, "__dict__")
            else {f: getattr(obs, f) for f in obs.__slots__}
        )
        o.seq, o.ts = k, k * 1.0
        res = FrameResult("cam1", k, k * 1.0, observations=[o])
        stage(img, res, None)
    return res, stage  # type: ignore[return-value]


def test_token_by_default_text_only_when_configured(data_dir: Path) -> None:
    img, obs, text = _scene(data_dir)
    cfg = SiteConfig.from_dict({"plates": {"enabled": True}, "privacy": {"secret": "s3cret"}})
    res, stage = _run(cfg, img, obs)
    o = res.observations[0]
    assert o.plate_token == plate_token(text, b"s3cret")
    assert o.plate_text is None
    line = to_json(o) + str(res.extras)
    assert text not in line and "AFL605" not in line

    cfg2 = SiteConfig.from_dict(
        {"plates": {"enabled": True}, "privacy": {"secret": "s3cret", "clear_text": True}}
    )
    res2, _ = _run(cfg2, img, obs, reader=stage.reader)
    assert res2.observations[0].plate_text == text
    assert res2.observations[0].plate_token == o.plate_token


def test_attempts_are_bounded(data_dir: Path) -> None:
    img, obs, _ = _scene(data_dir)
    cfg = SiteConfig.from_dict({"plates": {"enabled": True, "attempts": 2, "interval_s": 0}})
    stage = PlateStage.from_config(cfg)
    n = 0
    for k in range(5):
        res = FrameResult(
            "cam1",
            k,
            float(k),
            observations=[
                Observation("cam1", k, float(k), 7, "car", obs.x1, obs.y1, obs.x2, obs.y2, 0.9)
            ],
        )
        stage(img, res, None)
        n += len(res.extras.get("plates", []))
    assert n == 2


def test_blur_removes_plate_detail(data_dir: Path) -> None:
    img, _, _ = _scene(data_dir)
    from engine.plates import PlateReader

    r = PlateReader()
    reads = r.read_image(img)
    corners = np.array([reads[0].corners], np.float32)
    out = blur_plates(img, corners)
    assert out is not img and np.array_equal(
        img, cv2.imread(str(sorted((data_dir / "plates" / "ccpd").glob("*.jpg"))[1]))
    )
    after = r.read_image(out)
    assert not any(a.valid and a.text == reads[0].text for a in after)
    x1, y1, x2, y2 = (int(v) for v in reads[0].box)

    # inside the plate only a few flat blocks remain (about 6 across its height)
    def colours(a: np.ndarray) -> int:
        return len(np.unique(a.reshape(-1, 3), axis=0))

    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    inner = (slice(cy - 8, cy + 8), slice(cx - 30, cx + 30))
    assert colours(out[inner]) <= 40 < colours(img[inner])
    assert np.array_equal(out[: y1 - 40], img[: y1 - 40])
