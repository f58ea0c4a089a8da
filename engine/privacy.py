"""Privacy by default: keyed plate tokens and blurring of plate regions on egress.

Records carry ``plate_token`` — the first hex digits of HMAC-SHA256(secret, text),
computed in Rust — instead of the plate text. The same secret gives the same token on
every camera, so journeys can be joined without storing who drove them; without the
secret a token cannot be reversed or checked against a guessed plate. Clear text appears
only when the site config says ``[privacy] clear_text = true``.

    >>> from engine.privacy import plate_token
    >>> t = plate_token("皖A00E66", b"site-secret")
    >>> len(t), t == plate_token("皖A00E66", b"site-secret"), t == plate_token("皖A00E66", b"other")
    (16, True, False)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine import _core
from engine.config import PrivacyConfig, SiteConfig
from engine.errors import FrameError, InputError

TOKEN_HEX = 16


def _key(key: bytes | str | PrivacyConfig | SiteConfig | None) -> bytes:
    if key is None:
        return PrivacyConfig().key()
    if isinstance(key, SiteConfig):
        return key.privacy.key()
    if isinstance(key, PrivacyConfig):
        return key.key()
    if isinstance(key, str):
        return key.encode("utf-8")
    return bytes(key)


def plate_token(
    text: str, key: bytes | str | PrivacyConfig | SiteConfig | None = None, hex_len: int = TOKEN_HEX
) -> str:
    """Keyed token of a plate text (HMAC-SHA256, first ``hex_len`` hex digits)."""
    return _core.plate_token(_key(key), text, hex_len)


def plate_tokens(
    texts: Sequence[str],
    key: bytes | str | PrivacyConfig | SiteConfig | None = None,
    hex_len: int = TOKEN_HEX,
) -> list[str]:
    return _core.plate_tokens(_key(key), list(texts), hex_len)


def _polygons(regions: np.ndarray | Sequence) -> list[np.ndarray]:
    a = np.asarray(regions, dtype=np.float64)
    if a.size == 0:
        return []
    if a.ndim == 2 and a.shape[1] == 4:  # boxes x1,y1,x2,y2
        return [
            np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float64) for x1, y1, x2, y2 in a
        ]
    if a.ndim == 3 and a.shape[2] == 2 and a.shape[1] >= 3:  # corners (N,4,2)
        return list(a)
    if a.ndim == 2 and a.shape[1] == 2 and a.shape[0] >= 3:  # one polygon
        return [a]
    raise InputError(f"regions must be boxes (N,4) or corners (N,K,2), got shape {a.shape}")


def blur_plates(
    frame: np.ndarray,
    regions: np.ndarray | Sequence,
    *,
    grow: float = 0.15,
    cells: int = 6,
    inplace: bool = False,
) -> np.ndarray:
    """Pixelate plate regions (boxes (N,4) or corners (N,4,2)) before a frame leaves the
    system. Each region is grown by ``grow`` of its size so the plate border goes too,
    and reduced to about ``cells`` blocks across its height — too coarse for any
    character to survive. Returns a new frame unless ``inplace``."""
    import cv2

    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3:
        raise FrameError("blur_plates: frame must be a uint8 HxWx3 array")
    out = frame if inplace else frame.copy()
    h, w = out.shape[:2]
    for poly in _polygons(regions):
        if not np.isfinite(poly).all():
            raise InputError("blur_plates: region coordinates must be finite")
        c = poly.mean(axis=0)
        poly = c + (poly - c) * (1.0 + 2.0 * grow)
        x0, y0 = np.floor(poly.min(axis=0)).astype(int)
        x1, y1 = np.ceil(poly.max(axis=0)).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        roi = out[y0:y1, x0:x1]
        rh, rw = roi.shape[:2]
        n_y = max(1, min(cells, rh))
        n_x = max(1, min(rw, round(cells * rw / max(rh, 1))))
        small = cv2.resize(roi, (n_x, n_y), interpolation=cv2.INTER_AREA)
        pix = cv2.resize(small, (rw, rh), interpolation=cv2.INTER_NEAREST)
        mask = np.zeros((rh, rw), np.uint8)
        pts = np.round(poly - [x0, y0]).astype(np.int32)
        cv2.fillPoly(mask, [pts], 255)
        roi[mask > 0] = pix[mask > 0]
    return out


__all__ = ["blur_plates", "plate_token", "plate_tokens"]
