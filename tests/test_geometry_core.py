"""Homography, polygons and lines through the Python bindings."""

from __future__ import annotations

import numpy as np
import pytest

from engine import _core
from engine.errors import InputError

IMAGE = np.array([[0, 720], [1280, 720], [790, 140], [490, 140], [640, 400]], np.float64)


def _world_of(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ h.T
    return p[:, :2] / p[:, 2:]


def test_homography_round_trip_and_least_squares():
    true = np.array([[0.03, 0.001, -20], [0.0, -0.02, 30], [0.0, 0.002, 1.0]])
    world = _world_of(true, IMAGE)
    h = _core.Homography.from_points(IMAGE[:4], world[:4])
    np.testing.assert_allclose(h.to_world(IMAGE), world, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(h.to_image(world), IMAGE, atol=1e-4)
    # >4 points with noise: least squares stays close.
    rng = np.random.default_rng(0)
    noisy = world + rng.normal(0, 0.01, world.shape)
    h5 = _core.Homography.from_points(IMAGE, noisy)
    assert np.abs(h5.to_world(IMAGE) - world).max() < 0.1
    m = h.matrix
    assert m.shape == (3, 3)
    h2 = _core.Homography.from_matrix(m)
    np.testing.assert_allclose(h2.to_world(IMAGE), world, atol=1e-6)


@pytest.mark.parametrize(
    "image",
    [
        np.array([[0, 0], [1, 1], [2, 2], [3, 3]], np.float64),  # all collinear
        np.array([[0, 0], [10, 0], [20, 0], [0, 10]], np.float64),  # three collinear
        np.array([[0, 0], [np.nan, 0], [10, 10], [0, 10]], np.float64),
        np.array([[0, 0], [10, 0], [10, 10]], np.float64),  # too few
    ],
)
def test_degenerate_homography_is_input_error(image):
    world = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64)[: len(image)]
    with pytest.raises(InputError):
        _core.Homography.from_points(image, world)


def test_polygon_contains_area_and_self_intersection():
    sq = _core.Polygon(np.array([[0, 0], [4, 0], [4, 4], [0, 4]], np.float64))
    assert sq.area == 16.0
    inside = sq.contains(np.array([[2, 2], [5, 2], [0.1, 3.9]], np.float64))
    assert inside.tolist() == [True, False, True]
    with pytest.raises(InputError, match="self-intersects at edges 0 and 2"):
        _core.Polygon(np.array([[0, 0], [4, 4], [4, 0], [0, 4]], np.float64))


def test_side_of_line_matches_config_convention():
    # a→b points right on screen; "left" is up (smaller y): +1.
    s = _core.side_of_line((0, 100), (100, 100), np.array([[50, 50], [50, 150], [50, 100]], float))
    assert s.tolist() == [1, -1, 0]
    assert _core.segment_intersection((0, 0), (2, 2), (0, 2), (2, 0)) == (1.0, 1.0)
    assert _core.segment_intersection((0, 0), (1, 0), (0, 1), (1, 1)) is None
