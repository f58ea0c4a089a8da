"""Plate reading on real data (LPRNet crops, CCPD scenes), plate rules, bad input."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine import _core
from engine.errors import FrameError, ModelError, ModelIntegrityError, PlateError
from engine.plates import PlateReader, decode_image

PROV = "皖沪津渝冀晋蒙辽吉黑苏浙京闽赣鲁豫鄂湘粤桂琼川贵云藏陕甘青宁新警学O"
ALPHA = "ABCDEFGHJKLMNPQRSTUVWXYZO"
ADS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789O"


def ccpd_truth(name: str) -> tuple[str, np.ndarray]:
    parts = Path(name).stem.split("-")
    idx = [int(x) for x in parts[4].split("_")]
    text = PROV[idx[0]] + ALPHA[idx[1]] + "".join(ADS[i] for i in idx[2:])
    pts = np.array([[float(v) for v in p.split("&")] for p in parts[3].split("_")])
    return text, pts[[2, 3, 0, 1]]  # BR, BL, TL, TR -> TL, TR, BR, BL


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    return PlateReader()


def test_crops_accuracy_subset(reader: PlateReader, data_dir: Path) -> None:
    files = sorted((data_dir / "plates" / "crops").glob("*.jpg"))[::5]  # 120 of 600
    crops = [decode_image(f.read_bytes()) for f in files]
    reads = reader.read_crops(crops)
    exact = np.mean([r.text == f.stem for r, f in zip(reads, files, strict=True)])
    assert exact >= 0.93, exact
    # Anything marked valid passes the rules; per-char confidences line up with the text.
    for r in reads:
        if r.valid:
            assert _core.plate_check(r.text)[1]
            assert len(r.char_conf) == len(r.text)
            assert all(0 < c <= 1 for c in r.char_conf)


def test_ccpd_scenes_end_to_end(reader: PlateReader, data_dir: Path) -> None:
    """All 10 CCPD scenes at the default detector size (640): at least 9 exact and
    valid, landmarks within 10 px of the annotated corners."""
    files = sorted((data_dir / "plates" / "ccpd").glob("*.jpg"))
    ok = 0
    for f in files:
        text, corners = ccpd_truth(f.name)
        reads = reader.read_image(cv2.imread(str(f)))
        if not reads:
            continue
        best = reads[0]
        if best.text == text and best.valid:
            ok += 1
            err = np.linalg.norm(np.array(best.corners) - corners, axis=1).mean()
            assert err < 10, (f.name, err)
            assert best.colour in ("blue", "green", "white", "unknown")
    assert ok >= 9, ok


def test_batched_crops_match_single_reads(reader: PlateReader, data_dir: Path) -> None:
    """read_crops batches crops by recogniser width; the readings equal one-by-one
    reads, also for a mix of sizes (several width groups)."""
    files = sorted((data_dir / "plates" / "crops").glob("*.jpg"))[3:40:3]
    crops = [decode_image(f.read_bytes()) for f in files]
    crops = [c if i % 3 else cv2.resize(c, (141, 36)) for i, c in enumerate(crops)]
    batched = reader.read_crops(crops)
    one_by_one = [reader.read_crops([c])[0] for c in crops]
    assert [r.text for r in batched] == [r.text for r in one_by_one]
    for a, b in zip(batched, one_by_one, strict=True):
        assert np.allclose(a.char_conf, b.char_conf, atol=1e-4)


def test_double_row_split(reader: PlateReader, data_dir: Path) -> None:
    """Double-row (yellow truck/bus) layout: the plate quad is split into a top row
    (province + letter, centred) and a bottom row (five characters). Built from real
    crops: the bottom row must read exactly. (No real double-row plate is in the data,
    and the synthetic two-character top row made from a 94x24 crop is too small to read
    reliably, so only the split and the bottom row are asserted.)"""
    files = sorted((data_dir / "plates" / "crops").glob("皖A*.jpg"))[:8]
    ok = 0
    for f in files:
        crop = decode_image(f.read_bytes())
        split = int(crop.shape[1] * 0.29)
        plate = np.zeros((110, 200, 3), np.uint8)
        plate[:] = crop[:, :3].mean(axis=(0, 1)).astype(np.uint8)
        plate[3:43, 38:162] = cv2.resize(crop[:, :split], (124, 40))
        plate[42:106] = cv2.resize(crop[:, split:], (200, 64))
        q = np.array([[0, 0], [200, 0], [200, 110], [0, 110]], np.float32)
        top = _core.plate_sub_quad(q, 0.18, 0.02, 0.82, 0.40)
        bottom = _core.plate_sub_quad(q, 0.0, 0.34, 1.0, 0.98)
        assert np.allclose(top[0], [36, 2.2], atol=0.5) and np.allclose(
            bottom[2], [200, 107.8], atol=0.5
        )
        rows = reader._run_rec(
            plate, np.stack([top, bottom]).astype(np.float32), 0.0, [reader.margin]
        )
        ok += rows[1][0] == f.stem[2:]
    # measured 3/8: the 0.29 split of a 94x24 crop cuts through characters; see report
    assert ok >= 3, ok


def _double_row_from_scene(img: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """A double-row plate (440x220, the yellow truck/bus size) made from a real CCPD
    plate: rectified with the annotated corners to 440x140, its province + letter
    become the centred top row, its five characters the bottom row (widened x1.3, as
    double-row characters are wider than single-row ones)."""
    dst = np.float32([[0, 0], [440, 0], [440, 140], [0, 140]])
    flat = cv2.warpPerspective(
        img, cv2.getPerspectiveTransform(corners.astype(np.float32), dst), (440, 140)
    )
    plate = np.empty((220, 440, 3), np.uint8)
    plate[:] = np.median(flat.reshape(-1, 3), axis=0).astype(np.uint8)
    plate[6:86, 187:253] = cv2.resize(flat[:, 8:124], (66, 80))  # province + letter
    bw = int(290 * 124 / 140 * 1.3)
    x0 = (440 - bw) // 2
    plate[92:216, x0 : x0 + bw] = cv2.resize(flat[:, 144:434], (bw, 124))  # five characters
    return plate


def test_double_row_plates_from_real_plates(reader: PlateReader, data_dir: Path) -> None:
    """Both rows of a double-row plate are read: the single-row reading of the tall
    plate is invalid, the reader cuts the two rows, reads them (stitched into one line,
    and each alone) and returns the full text with double_row set. The same plates as
    single rows are not flagged."""
    n = ok = 0
    for f in sorted((data_dir / "plates" / "ccpd").glob("*.jpg")):
        text, corners = ccpd_truth(f.name)
        if len(text) != 7:
            continue
        img = cv2.imread(str(f))
        plate = _double_row_from_scene(img, corners)
        q = np.float32([[0, 0], [440, 0], [440, 220], [0, 220]])[None]
        t, conf, valid, _, _, _, double = reader._recognise(plate, q)[0]
        n += 1
        ok += valid and double and t == text and len(conf) >= 7
        single = reader._recognise(img, corners[None].astype(np.float32))[0]
        assert not single[6], (f.name, single)
    # measured 6/8 (without stitching the rows: 1/8, the bottom row gains a phantom province)
    assert n == 8 and ok >= 5, (ok, n)


def test_rules_reject_or_correct() -> None:
    assert _core.plate_check("皖A1O234")[:3] == ("皖A10234", True, True)
    assert _core.plate_check("京AD1D345")[:3] == ("京AD10345", True, True)
    text, valid, corrected, kind, reason = _core.plate_check("A123456")
    assert not valid and reason
    assert _core.plate_check("粤Z1234港")[3] == "hong_kong"
    assert not _core.plate_check("京A1234港")[1]


def test_bad_inputs(reader: PlateReader, data_dir: Path, tmp_path: Path) -> None:
    f = next((data_dir / "plates" / "ccpd").glob("*.jpg"))
    data = f.read_bytes()
    with pytest.raises(FrameError, match="truncated"):
        decode_image(data[: len(data) // 2])
    with pytest.raises(FrameError):
        decode_image(b"not an image at all")
    with pytest.raises(FrameError):
        decode_image(b"")
    with pytest.raises(PlateError, match="at least"):
        reader.read_crops([np.zeros((6, 20, 3), np.uint8)])
    with pytest.raises(FrameError):
        reader.read_image(np.zeros((10, 10), np.float32))
    # The stream goes on: a good crop right after still reads.
    good = sorted((data_dir / "plates" / "crops").glob("*.jpg"))[0]
    assert reader.read_crops([decode_image(good.read_bytes())])[0].text


def test_missing_and_tampered_model(tmp_path: Path) -> None:
    from models import registry as r

    with pytest.raises(ModelError):
        PlateReader(det_model=str(tmp_path / "nope.onnx"))
    root = tmp_path / "models"
    (root / "onnx").mkdir(parents=True)
    src = r.resolve("plate-detector")
    bad = bytearray(src.read_bytes())
    bad[-10] ^= 0xFF
    (root / "onnx" / src.name).write_bytes(bytes(bad))
    with pytest.raises(ModelIntegrityError, match="sha256 mismatch"):
        r.resolve("plate-detector", root=root)
    shutil.copy(src, root / "onnx" / src.name)
    assert r.resolve("plate-detector", root=root).exists()
    os.remove(root / "onnx" / src.name)
    with pytest.raises(ModelError, match="not built"):
        r.resolve("plate-detector", root=root)
