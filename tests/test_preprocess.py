"""Rust preprocess: letterbox vs an OpenCV/numpy reference, frame validation, warps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine import _core
from engine.config import shared_data_dir
from engine.errors import FrameError, InputError

VIDEO = shared_data_dir() / "video"


def cv2_letterbox(frame: np.ndarray, w: int, h: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """The usual Python pipeline: cv2.resize + pad 114 + /255 + BGR->RGB + HWC->CHW."""
    r = min(w / frame.shape[1], h / frame.shape[0])
    nw, nh = round(frame.shape[1] * r), round(frame.shape[0] * r)
    px, py = (w - nw) // 2, (h - nh) // 2
    canvas = np.full((h, w, 3), 114, np.float32)
    resized = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    canvas[py : py + nh, px : px + nw] = resized
    return canvas[:, :, ::-1].transpose(2, 0, 1) / 255.0, r, (px, py)


@pytest.fixture(scope="module")
def vtest_frame() -> np.ndarray:
    cap = cv2.VideoCapture(str(VIDEO / "vtest.avi"))
    ok, f = cap.read()
    cap.release()
    assert ok, "cannot read vtest.avi"
    return f


@pytest.mark.parametrize(
    ("shape", "size"),
    [
        ((576, 768), (416, 416)),
        ((1080, 1920), (416, 416)),
        ((360, 640), (320, 256)),
        ((600, 300), (416, 416)),
    ],
)
def test_letterbox_matches_cv2(
    vtest_frame: np.ndarray, shape: tuple[int, int], size: tuple[int, int]
) -> None:
    frame = cv2.resize(vtest_frame, shape[::-1], interpolation=cv2.INTER_AREA)
    ours, scale, (pad_x, pad_y) = _core.letterbox(frame, size)
    ref, r, (px, py) = cv2_letterbox(frame, *size)
    assert ours.shape == (3, size[1], size[0]) and ours.dtype == np.float32
    assert (pad_x, pad_y) == (px, py)
    assert scale == pytest.approx(r, rel=1e-6)
    # cv2 interpolates with 11-bit fixed-point weights and rounds to uint8; we keep
    # float32: under one grey level apart everywhere, a quarter on average
    diff = np.abs(ours - ref)
    assert diff.max() < 1.0 / 255
    assert diff.mean() < 0.3 / 255


def test_letterbox_pad_value_and_channel_order() -> None:
    frame = np.zeros((50, 100, 3), np.uint8)
    frame[..., 0] = 255  # pure blue in BGR
    t, _, (px, py) = _core.letterbox(frame, (100, 100))
    assert (px, py) == (0, 25)
    assert np.allclose(t[:, :25], 114 / 255)
    assert np.allclose(t[:, 75:], 114 / 255)
    assert np.all(t[0, 25:75] == 0) and np.all(t[2, 25:75] == 1)  # R plane 0, B plane 1


def test_batch_equals_single_frames(vtest_frame: np.ndarray) -> None:
    frames = [
        vtest_frame,
        cv2.resize(vtest_frame, (1920, 1080)),
        vtest_frame[100:300, 50:650].copy(),
    ]
    batch, scales, pads = _core.letterbox_batch(frames, (416, 416))
    assert batch.shape == (3, 3, 416, 416)
    for i, f in enumerate(frames):
        t, s, p = _core.letterbox(f, (416, 416))
        np.testing.assert_array_equal(batch[i], t)
        assert scales[i] == pytest.approx(s)
        assert tuple(pads[i]) == p
    empty, s0, p0 = _core.letterbox_batch([], (416, 416))
    assert empty.shape == (0, 3, 416, 416) and s0.shape == (0,) and p0.shape == (0, 2)


def test_frame_is_borrowed_not_mutated(vtest_frame: np.ndarray) -> None:
    before = vtest_frame.copy()
    _core.letterbox(vtest_frame, (416, 416))
    np.testing.assert_array_equal(vtest_frame, before)


BAD_FRAMES = [
    (np.zeros((480, 640), np.float32), "float32 (480, 640)"),
    (np.zeros((480, 640, 3), np.float32), "float32 (480, 640, 3)"),
    (np.zeros((480, 640), np.uint8), "uint8 (480, 640)"),
    (np.zeros((480, 640, 4), np.uint8), "uint8 (480, 640, 4)"),
    (np.zeros((0, 640, 3), np.uint8), "empty"),
    (np.zeros((480, 0, 3), np.uint8), "empty"),
    (np.zeros((480, 640, 3), np.uint8)[:, ::2], "non-contiguous"),
    (np.asfortranarray(np.zeros((48, 64, 3), np.uint8)), "non-contiguous"),
    ([[1, 2, 3]], "list"),
    (None, "NoneType"),
]


@pytest.mark.parametrize(("frame", "words"), BAD_FRAMES)
def test_bad_frames_raise_frame_error(frame: object, words: str) -> None:
    with pytest.raises(FrameError, match="frame must be uint8 HxWx3 C-contiguous") as e:
        _core.letterbox(frame, (416, 416))  # type: ignore[arg-type]
    assert words in str(e.value)


def test_bad_frame_in_batch_names_its_index(vtest_frame: np.ndarray) -> None:
    with pytest.raises(FrameError, match=r"frames\[1\]"):
        _core.letterbox_batch([vtest_frame, np.zeros((4, 4), np.uint8)], (416, 416))


@pytest.mark.parametrize("size", [(0, 416), (416, 0), (100000, 10)])
def test_bad_size(vtest_frame: np.ndarray, size: tuple[int, int]) -> None:
    with pytest.raises(InputError):
        _core.letterbox(vtest_frame, size)


def test_warp_perspective_matches_cv2(vtest_frame: np.ndarray) -> None:
    quad = [(300.0, 150.0), (520.0, 170.0), (510.0, 260.0), (310.0, 240.0)]
    size = (188, 48)
    h_inv = _core.quad_to_rect_h_inv(quad, size)
    ours = _core.warp_perspective(vtest_frame, h_inv, size)
    ref = cv2.warpPerspective(
        vtest_frame, h_inv, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0
    )
    assert ours.shape == (48, 188, 3) and ours.dtype == np.uint8
    diff = np.abs(ours.astype(int) - ref.astype(int))
    # cv2 uses 5-bit fixed-point interpolation weights; we interpolate in float
    assert diff.max() <= 8 and diff.mean() < 1.0
    # the corners land where quad_to_rect_h_inv says
    dst = np.array([[0, 0], [187, 0], [187, 47], [0, 47]], np.float64)
    mapped = cv2.perspectiveTransform(dst[None], h_inv)[0]
    np.testing.assert_allclose(mapped, np.array(quad), atol=1e-6)

    chw = _core.warp_perspective(
        vtest_frame, h_inv, size, out="chw", mean=(127.5,) * 3, std=(128.0,) * 3, rgb=False
    )
    assert chw.shape == (3, 48, 188) and chw.dtype == np.float32
    np.testing.assert_allclose(
        chw[0], (ours[..., 0].astype(np.float32) - 127.5) / 128, atol=0.5 / 128 + 1e-6
    )


def test_warp_errors(vtest_frame: np.ndarray) -> None:
    with pytest.raises(InputError, match="9 entries"):
        _core.warp_perspective(vtest_frame, [1.0, 0.0], (10, 10))
    with pytest.raises(InputError, match="non-finite"):
        _core.warp_perspective(vtest_frame, np.full((3, 3), np.nan), (10, 10))
    with pytest.raises(InputError, match="out must be"):
        _core.warp_perspective(vtest_frame, np.eye(3), (10, 10), out="png")
    with pytest.raises(InputError, match="degenerate"):
        _core.quad_to_rect_h_inv([(0.0, 0.0)] * 4, (10, 10))
    with pytest.raises(FrameError):
        _core.warp_perspective(np.zeros((5, 5), np.uint8), np.eye(3), (10, 10))
