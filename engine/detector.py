"""The object detector: any YOLO-family ONNX model behind one small API.

    >>> from engine.config import DetectorConfig
    >>> from engine.detector import Detector
    >>> det = Detector(DetectorConfig())            # doctest: +SKIP  (registry yolov3-tiny)
    >>> dets = det.detect_batch([frame_a, frame_b])  # doctest: +SKIP  one model call
    >>> det.last_timings_ms                          # doctest: +SKIP
    {'preprocess': 1.9, 'inference': 41.0, 'decode': 0.2}

Per batch: Rust letterbox of every frame into one [N,3,H,W] tensor (GIL released), one
onnxruntime call, Rust decode + class-aware NMS mapping boxes back to each frame's
pixels. COCO classes become road classes (``engine.detections.RoadClass``); classes not
listed in ``DetectorConfig.classes`` are dropped.

``DetectorConfig.model`` is a registry id (``models/registry.toml``, sha256-verified) or a
path to a user's ``.onnx`` (YOLOv5 / YOLOv8 / YOLOX exports plug in; ``kind = "auto"``
reads the layout from the output shape).
"""

from __future__ import annotations

import ast
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine import _core
from engine.config import DetectorConfig
from engine.detections import Detections, RoadClass
from engine.errors import ModelError, ModelOutputError

COCO80 = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant "
    "stop_sign parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe "
    "backpack umbrella handbag tie suitcase frisbee skis snowboard sports_ball kite "
    "baseball_bat baseball_glove skateboard surfboard tennis_racket bottle wine_glass cup "
    "fork knife spoon bowl banana apple sandwich orange broccoli carrot hot_dog pizza donut "
    "cake chair couch potted_plant bed dining_table toilet tv laptop mouse remote keyboard "
    "cell_phone microwave oven toaster sink refrigerator book clock vase scissors teddy_bear "
    "hair_drier toothbrush"
).split()
assert len(COCO80) == 80

# other spellings of road classes found in model metadata
_ALIASES = {"motorbike": "motorcycle", "bike": "bicycle", "pedestrian": "person"}


def class_map_for(names: list[str], keep: list[str]) -> np.ndarray:
    """Model class index → RoadClass int, or -1 when the class is not kept."""
    keep_set = {k.lower() for k in keep}
    out = np.full(len(names), -1, dtype=np.int32)
    for i, n in enumerate(names):
        label = _ALIASES.get(n.lower().replace(" ", "_"), n.lower().replace(" ", "_"))
        if label in keep_set and label.upper() in RoadClass.__members__:
            out[i] = int(RoadClass[label.upper()])
    return out


def guess_kind(output_shape: list[Any]) -> str:
    """Layout from the output shape: ``[N, 4+C, A]`` with A > 4+C is YOLOv8 (channels
    first); ``[N, A, 5+C]`` rows are YOLOv3/v5-style (YOLOX decoded reads the same way)."""
    if len(output_shape) != 3:
        raise ModelOutputError(
            f"cannot guess the detector layout from output shape {output_shape}: expected "
            "3-D [N, A, 5+C] or [N, 4+C, A]; set detector.kind"
        )
    d1, d2 = output_shape[1], output_shape[2]
    if isinstance(d1, int) and isinstance(d2, int):
        return "yolov8" if d1 < d2 else "yolov5"
    if isinstance(d1, int):  # [N, 84, anchors?]
        return "yolov8"
    if isinstance(d2, int):  # [N, anchors?, 85]
        return "yolov5"
    raise ModelOutputError(f"output shape {output_shape} is fully dynamic; set detector.kind")


class Detector:
    """YOLO-family ONNX detector with Rust pre/post-processing. Thread-safe for
    concurrent ``detect_batch`` calls (onnxruntime sessions are), except that
    ``last_timings_ms`` then reflects whichever call finished last."""

    def __init__(self, cfg: DetectorConfig | None = None) -> None:
        import onnxruntime as ort

        self.cfg = cfg = cfg or DetectorConfig()
        self.model_path, registry_kind = self._resolve(cfg.model)
        so = ort.SessionOptions()
        if cfg.threads:
            so.intra_op_num_threads = cfg.threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(self.model_path), sess_options=so, providers=list(cfg.providers)
            )
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load ONNX model {self.model_path}: {e}") from e
        inp = self.session.get_inputs()[0]
        out = self.session.get_outputs()[0]
        self.input_name, self.output_name = inp.name, out.name
        if len(inp.shape) != 4:
            raise ModelError(f"{self.model_path}: input {inp.name} must be NCHW, got {inp.shape}")
        self.input_size = self._input_size(cfg, inp.shape)
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        if cfg.kind != "auto":
            self.kind = cfg.kind
        else:
            self.kind = registry_kind or guess_kind(list(out.shape))
        unknown = sorted({c.lower() for c in cfg.classes} - {r.label for r in RoadClass})
        if unknown:
            from engine.errors import ConfigError

            raise ConfigError(
                "<detector config>",
                "detector.classes",
                f"road classes among {[r.label for r in RoadClass]}",
                unknown,
            )
        self.class_names = self._class_names(out.shape)
        self.class_map = class_map_for(self.class_names, cfg.classes)
        self.last_timings_ms: dict[str, float] = {}

    # ---- set-up ------------------------------------------------------------------------

    @staticmethod
    def _resolve(model: str) -> tuple[Path, str | None]:
        p = Path(model)
        if p.suffix == ".onnx" or p.exists():
            if not p.is_file():
                raise ModelError(f"detector model file not found: {p}")
            return p, None
        from models.registry import load_registry, resolve

        reg = load_registry()
        entry = reg.get(model)
        return resolve(model, registry=reg), entry.extra.get("kind")

    def _input_size(self, cfg: DetectorConfig, shape: list[Any]) -> tuple[int, int]:
        h, w = shape[2], shape[3]
        if isinstance(h, int) and isinstance(w, int):
            if (w, h) != tuple(cfg.input_size):
                if "input_size" in cfg.model_fields_set:
                    raise ModelError(
                        f"{self.model_path}: detector.input_size is {tuple(cfg.input_size)} but "
                        f"the model's input is fixed at {w}x{h}"
                    )
                return (w, h)
        return (int(cfg.input_size[0]), int(cfg.input_size[1]))

    def _class_names(self, out_shape: list[Any]) -> list[str]:
        meta = self.session.get_modelmeta().custom_metadata_map or {}
        if "names" in meta:  # Ultralytics exports: "{0: 'person', 1: 'bicycle', ...}"
            try:
                names = ast.literal_eval(meta["names"])
                if isinstance(names, dict):
                    return [str(names[k]) for k in sorted(names)]
                return [str(n) for n in names]
            except (ValueError, SyntaxError):
                pass
        dims = [d for d in out_shape[1:] if isinstance(d, int)]
        off = 4 if self.kind == "yolov8" else 5
        n_cls = (out_shape[1] if self.kind == "yolov8" else out_shape[2]) if dims else None
        if isinstance(n_cls, int) and n_cls - off != 80:
            raise ModelError(
                f"{self.model_path}: model has {n_cls - off} classes and no 'names' metadata; "
                "only COCO-80 models are mapped to road classes without it"
            )
        return list(COCO80)

    # ---- inference ---------------------------------------------------------------------

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self.fixed_batch is not None and batch.shape[0] != self.fixed_batch:
            outs = [
                self.session.run([self.output_name], {self.input_name: batch[i : i + 1]})[0]
                for i in range(batch.shape[0])
            ]
            out = np.concatenate(outs, axis=0)
        else:
            out = self.session.run([self.output_name], {self.input_name: batch})[0]
        if out.dtype != np.float32:
            out = out.astype(np.float32)
        return np.ascontiguousarray(out)

    def detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        """Detect in every frame (uint8 HxWx3 BGR, any sizes) with one model call."""
        if not frames:
            self.last_timings_ms = {"preprocess": 0.0, "inference": 0.0, "decode": 0.0}
            return []
        t0 = time.perf_counter()
        # Serial letterbox: it is ~0.3 ms a frame next to tens of ms of inference, and a
        # thread-pool hand-off stalls when the cores are busy with other workers (see
        # `citystream bench preprocess`: parallel rows lose under load).
        batch, scales, pads = _core.letterbox_batch(frames, self.input_size, parallel=False)
        t1 = time.perf_counter()
        out = self._run(batch)
        t2 = time.perf_counter()
        sizes = [(float(f.shape[1]), float(f.shape[0])) for f in frames]
        cols = _core.decode_yolo(
            out,
            self.kind,
            self.cfg.conf_threshold,
            self.cfg.iou_threshold,
            scales.tolist(),
            [tuple(p) for p in pads.tolist()],
            sizes,
            max_det=300,
            class_map=self.class_map.tolist(),
            input_size=self.input_size,
        )
        dets = [Detections(xyxy=b, scores=s, class_ids=c) for b, s, c in cols]
        t3 = time.perf_counter()
        self.last_timings_ms = {
            "preprocess": (t1 - t0) * 1e3,
            "inference": (t2 - t1) * 1e3,
            "decode": (t3 - t2) * 1e3,
        }
        return dets

    def detect(self, frame: np.ndarray) -> Detections:
        """Detect in one frame (uint8 HxWx3 BGR)."""
        return self.detect_batch([frame])[0]

    def __repr__(self) -> str:
        w, h = self.input_size
        return f"Detector({self.model_path.name}, kind={self.kind}, input={w}x{h})"
