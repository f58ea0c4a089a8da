"""Rust decode + NMS, and the Detector with user-supplied YOLO ONNX layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine import _core
from engine.config import DetectorConfig
from engine.detections import RoadClass
from engine.detector import Detector, guess_kind
from engine.errors import InputError, ModelError, ModelOutputError

# ---- NMS -----------------------------------------------------------------------------

B = np.array(
    [[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 10, 10.5]],
    np.float32,
)


@pytest.mark.parametrize(
    ("idx", "scores", "classes", "iou", "max_det", "kept"),
    [
        # overlapping boxes (IoU 0.68) of one class: the lower score goes
        ([0, 1], [0.9, 0.8], [0, 0], 0.45, 100, [0]),
        # same boxes, different classes: both stay (class-aware)
        ([0, 1], [0.9, 0.8], [0, 2], 0.45, 100, [0, 1]),
        # IoU threshold above their overlap: both stay
        ([0, 1], [0.9, 0.8], [0, 0], 0.7, 100, [0, 1]),
        # identical boxes, lower one first in the input: order follows score
        ([0, 2], [0.3, 0.6], [1, 1], 0.45, 100, [1]),
        # far apart: both stay, best first
        ([0, 3], [0.2, 0.9], [0, 0], 0.45, 100, [1, 0]),
        # max_det caps the result
        ([0, 1, 3], [0.9, 0.8, 0.7], [0, 1, 2], 0.45, 2, [0, 1]),
        # chain: 0 suppresses 4 (IoU 0.95) but not 3
        ([0, 4, 3], [0.9, 0.95, 0.5], [0, 0, 0], 0.45, 100, [1, 2]),
        # NaN score never kept
        ([0, 3], [np.nan, 0.5], [0, 0], 0.45, 100, [1]),
        # nothing in, nothing out
        ([], [], [], 0.45, 100, []),
    ],
)
def test_nms_table(idx, scores, classes, iou, max_det, kept) -> None:
    keep = _core.nms(
        B[idx].reshape(-1, 4),
        np.array(scores, np.float32),
        np.array(classes, np.int32),
        iou,
        max_det,
    )
    assert keep.tolist() == kept


def test_nms_bad_shapes() -> None:
    with pytest.raises(InputError):
        _core.nms(B, np.zeros(3, np.float32), np.zeros(5, np.int32))


# ---- decode --------------------------------------------------------------------------


def rows_for(boxes_orig, classes, probs, scale, pad, n_anchors=50, nc=80, obj=0.95):
    """A decoded-rows ([A, 5+C]) output holding boxes given in ORIGINAL pixels."""
    out = np.zeros((n_anchors, 5 + nc), np.float32)
    for i, ((x1, y1, x2, y2), c, p) in enumerate(zip(boxes_orig, classes, probs, strict=True)):
        ix1, iy1 = x1 * scale + pad[0], y1 * scale + pad[1]
        ix2, iy2 = x2 * scale + pad[0], y2 * scale + pad[1]
        out[i, :5] = [(ix1 + ix2) / 2, (iy1 + iy2) / 2, ix2 - ix1, iy2 - iy1, obj]
        out[i, 5 + c] = p
    return out


def test_decode_maps_back_to_original_pixels() -> None:
    frames = [np.zeros((576, 768, 3), np.uint8), np.zeros((1080, 1920, 3), np.uint8)]
    _, scales, pads = _core.letterbox_batch(frames, (416, 416))
    truth = [
        [(100.0, 200.0, 140.0, 300.0), (500.0, 100.0, 700.0, 220.0)],
        [(1000.0, 500.0, 1100.0, 800.0), (10.0, 20.0, 400.0, 300.0)],
    ]
    classes = [[0, 2], [7, 5]]  # person, car | truck, bus
    out = np.stack(
        [rows_for(truth[i], classes[i], [0.9, 0.8], scales[i], pads[i]) for i in range(2)]
    )
    res = _core.decode_yolo(
        out,
        "yolov3",
        0.25,
        0.45,
        scales.tolist(),
        [tuple(p) for p in pads.tolist()],
        [(768.0, 576.0), (1920.0, 1080.0)],
    )
    assert len(res) == 2
    for i, (xyxy, scores, _) in enumerate(res):
        np.testing.assert_allclose(xyxy, np.array(truth[i], np.float32), atol=0.05)
        np.testing.assert_allclose(scores, [0.95 * 0.9, 0.95 * 0.8], rtol=1e-5)
    assert res[0][2].tolist() == [RoadClass.PERSON, RoadClass.CAR]
    assert res[1][2].tolist() == [RoadClass.TRUCK, RoadClass.BUS]


def test_decode_clips_and_drops_non_road_classes() -> None:
    out = rows_for(
        [(-50.0, -20.0, 100.0, 100.0), (10.0, 10.0, 50.0, 50.0), (600.0, 400.0, 900.0, 700.0)],
        [0, 56, 2],  # person, chair (dropped), car hanging off the bottom-right
        [0.9, 0.99, 0.9],
        1.0,
        (0.0, 0.0),
    )[None]
    xyxy, _, cls = _core.decode_yolo(
        out, "yolov5", 0.25, 0.45, [1.0], [(0.0, 0.0)], [(640.0, 480.0)]
    )[0]
    assert cls.tolist() == [0, 2]
    np.testing.assert_allclose(xyxy, [[0, 0, 100, 100], [600, 400, 640, 480]], atol=1e-4)


def test_decode_skips_non_finite_rows() -> None:
    out = rows_for(
        [(10.0, 10.0, 50.0, 50.0)] * 4 + [(100.0, 100.0, 150.0, 150.0)],
        [0] * 5,
        [0.9] * 5,
        1.0,
        (0, 0),
    )
    out[0, 0] = np.nan
    out[1, 3] = np.inf
    out[2, 4] = np.nan
    out[3, 5] = -np.inf
    xyxy, _, _ = _core.decode_yolo(
        out[None], "yolov3", 0.25, 0.45, [1.0], [(0.0, 0.0)], [(640.0, 480.0)]
    )[0]
    np.testing.assert_allclose(xyxy, [[100, 100, 150, 150]], atol=1e-4)


def test_decode_conf_threshold_and_max_det() -> None:
    boxes = [(i * 20.0, 0.0, i * 20.0 + 10, 10.0) for i in range(10)]
    probs = [0.1 * (i + 1) for i in range(10)]
    out = rows_for(boxes, [0] * 10, probs, 1.0, (0, 0), obj=1.0)[None]
    args = ([1.0], [(0.0, 0.0)], [(640.0, 480.0)])
    _, s, _ = _core.decode_yolo(out, "yolov3", 0.55, 0.45, *args)[0]
    assert len(s) == 5 and s.min() >= 0.55
    _, s, _ = _core.decode_yolo(out, "yolov3", 0.0, 0.45, *args, max_det=3)[0]
    np.testing.assert_allclose(s, [1.0, 0.9, 0.8], rtol=1e-6)


def test_decode_errors() -> None:
    args = ([1.0], [(0.0, 0.0)], [(640.0, 480.0)])
    good = np.zeros((1, 10, 85), np.float32)
    with pytest.raises(ModelOutputError, match="unknown detector output kind"):
        _core.decode_yolo(good, "yolov99", 0.25, 0.45, *args)
    with pytest.raises(ModelOutputError, match="float32"):
        _core.decode_yolo(good.astype(np.float64), "yolov3", 0.25, 0.45, *args)
    with pytest.raises(ModelOutputError, match="2-D or 3-D"):
        _core.decode_yolo(np.zeros((1, 1, 10, 85), np.float32), "yolov3", 0.25, 0.45, *args)
    with pytest.raises(ModelOutputError, match="values per box"):
        _core.decode_yolo(np.zeros((1, 10, 5), np.float32), "yolov3", 0.25, 0.45, *args)
    with pytest.raises(ModelOutputError, match="C-contiguous"):
        _core.decode_yolo(
            np.zeros((1, 85, 10), np.float32).transpose(0, 2, 1), "yolov3", 0.25, 0.45, *args
        )
    with pytest.raises(InputError, match="scales"):
        _core.decode_yolo(np.zeros((2, 10, 85), np.float32), "yolov3", 0.25, 0.45, *args)
    with pytest.raises(InputError, match="class map"):
        _core.decode_yolo(good, "yolov3", 0.25, 0.45, *args, class_map=[0, 1])


def test_decode_yolox_raw_grid() -> None:
    # 64x64 input, strides 8/16/32 -> 64 + 16 + 4 anchors; put a box in the stride-32 cell (1, 0)
    out = np.zeros((1, 84, 85), np.float32)
    a = 64 + 16 + 1
    out[0, a, :6] = [0.5, 0.5, np.log(2.0), 0.0, 0.9, 0.9]
    xyxy, s, c = _core.decode_yolo(
        out, "yolox_raw", 0.25, 0.45, [1.0], [(0.0, 0.0)], [(64.0, 64.0)], input_size=(64, 64)
    )[0]
    np.testing.assert_allclose(xyxy, [[16.0, 0.0, 64.0, 32.0]], atol=1e-4)  # cx 48 w 64 -> clipped
    assert c.tolist() == [0]


@pytest.mark.parametrize(
    ("shape", "kind"),
    [
        ([1, 2535, 85], "yolov5"),
        (["N", 84, 8400], "yolov8"),
        (["N", "A", 85], "yolov5"),
        ([1, 84, "A"], "yolov8"),
    ],
)
def test_guess_kind(shape, kind) -> None:
    assert guess_kind(shape) == kind


def test_guess_kind_refuses_unknowable() -> None:
    with pytest.raises(ModelOutputError):
        guess_kind(["N", "a", "b"])
    with pytest.raises(ModelOutputError):
        guess_kind([1, 2535])


# ---- a user-supplied YOLOv8-style ONNX, end to end -------------------------------------


def v8_model(path: Path, table: np.ndarray, names: dict[int, str] | None = None) -> Path:
    """An ONNX graph [N,3,64,64] -> [N, 4+C, A] whose output is `table` for every image
    (0 * mean(image) + table, so the batch dimension follows the input)."""
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["m", "shape"], ["m3"]),
        helper.make_node("Mul", ["m3", "zero"], ["z"]),
        helper.make_node("Add", ["z", "table"], ["output0"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape"),
        numpy_helper.from_array(np.zeros((1,), np.float32), "zero"),
        numpy_helper.from_array(table[None].astype(np.float32), "table"),
    ]
    graph = helper.make_graph(
        nodes,
        "synthetic-v8",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["N", *table.shape])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if names is not None:
        helper.set_model_props(model, {"names": repr(names)})
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def v8_table(
    entries: list[tuple[tuple[float, float, float, float], int, float]], nc: int, a: int = 100
):
    t = np.zeros((4 + nc, a), np.float32)
    for i, (box, c, p) in enumerate(entries):
        t[:4, i] = box
        t[4 + c, i] = p
    return t


def test_user_yolov8_onnx_end_to_end(tmp_path: Path) -> None:
    table = v8_table(
        [
            ((32, 32, 16, 16), 0, 0.9),  # person
            ((33, 32, 16, 16), 0, 0.6),  # same person, lower score -> NMS
            ((10, 40, 8, 8), 2, 0.8),  # car
            ((50, 40, 8, 8), 56, 0.99),  # chair -> dropped
            ((50, 20, 8, 8), 7, 0.1),  # truck under the threshold
        ],
        nc=80,
    )
    path = v8_model(tmp_path / "user_v8.onnx", table)
    det = Detector(DetectorConfig(model=str(path), input_size=(64, 64)))
    assert det.kind == "yolov8"
    # 256x128 frame: scale 0.25, resized 64x32, pad_y 16
    frames = [np.zeros((128, 256, 3), np.uint8), np.full((128, 256, 3), 200, np.uint8)]
    out = det.detect_batch(frames)
    assert len(out) == 2
    for d in out:
        assert d.class_ids.tolist() == [RoadClass.PERSON, RoadClass.CAR]
        np.testing.assert_allclose(d.scores, [0.9, 0.8], rtol=1e-6)
        np.testing.assert_allclose(d.xyxy[0], [96, 32, 160, 96], atol=1e-3)
    assert set(det.last_timings_ms) == {"preprocess", "inference", "decode"}
    assert all(v >= 0 for v in det.last_timings_ms.values())
    assert len(det.detect(frames[0])) == 2
    assert det.detect_batch([]) == []

    only_people = Detector(DetectorConfig(model=str(path), input_size=(64, 64), classes=["person"]))
    assert only_people.detect(frames[0]).class_ids.tolist() == [RoadClass.PERSON]


def test_user_model_with_own_class_names(tmp_path: Path) -> None:
    table = v8_table(
        [((32, 32, 16, 16), 0, 0.9), ((10, 40, 8, 8), 1, 0.8), ((50, 10, 8, 8), 2, 0.7)], nc=3
    )
    path = v8_model(tmp_path / "v8_3cls.onnx", table, names={0: "pedestrian", 1: "bus", 2: "tree"})
    det = Detector(DetectorConfig(model=str(path), kind="yolov8"))  # input size read from the model
    assert det.input_size == (64, 64)
    d = det.detect(np.zeros((64, 64, 3), np.uint8))
    assert d.class_ids.tolist() == [RoadClass.PERSON, RoadClass.BUS]


def test_user_model_errors(tmp_path: Path) -> None:
    path = v8_model(tmp_path / "v8_3cls.onnx", v8_table([], nc=3))
    with pytest.raises(ModelError, match="3 classes and no 'names'"):
        Detector(DetectorConfig(model=str(path)))
    ok = v8_model(tmp_path / "v8.onnx", v8_table([], nc=80))
    with pytest.raises(ModelError, match="fixed at 64x64"):
        Detector(DetectorConfig(model=str(ok), input_size=(416, 416)))
    with pytest.raises(ModelError, match="not found"):
        Detector(DetectorConfig(model=str(tmp_path / "missing.onnx")))
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="detector.classes.*tram"):
        Detector(DetectorConfig(model=str(ok), input_size=(64, 64), classes=["person", "tram"]))
    det = Detector(DetectorConfig(model=str(ok), input_size=(64, 64)))
    from engine.errors import FrameError

    with pytest.raises(FrameError):
        det.detect_batch([np.zeros((64, 64), np.uint8)])
