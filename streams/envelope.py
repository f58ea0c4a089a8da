"""The frame envelope: how one camera frame travels on the `frames` topic.

A fixed little-endian header, the camera id, then the payload::

    offset size  field
    0      4     magic b"CSFE"
    4      1     version (1)
    5      1     codec: 1 = JPEG, 2 = raw BGR (H×W×3 uint8), 3 = detections (columnar)
    6      2     camera id length in bytes (UTF-8)
    8      8     timestamp, seconds (float64, finite)
    16     8     sequence number (int64, ≥ 0)
    24     4     width (pixels)
    28     4     height (pixels)
    32     4     payload length in bytes
    36     n     camera id
    36+n   m     payload

The "detections" codec carries a frame already reduced to detections (an edge detector,
or recorded detections in tests and benchmarks): u32 count N, then N×4 float32 xyxy,
N float32 scores, N int32 class ids. Never pickle: every field is checked on decode and a
bad envelope raises `EnvelopeError` with the reason.

    >>> import numpy as np
    >>> env = FrameEnvelope.from_frame("cam1", np.zeros((4, 6, 3), np.uint8), ts=1.5, seq=7, codec="raw")
    >>> back = FrameEnvelope.decode(env.encode())
    >>> (back.camera_id, back.seq, back.image().shape)
    ('cam1', 7, (4, 6, 3))
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from engine.detections import Detections
from engine.errors import EnvelopeError

MAGIC = b"CSFE"
VERSION = 1
_HEADER = struct.Struct("<4sBBHdqIII")
HEADER_SIZE = _HEADER.size  # 36
MAX_CAMERA_ID = 256
MAX_DIM = 16384


class Codec(IntEnum):
    JPEG = 1
    RAW_BGR = 2
    DETECTIONS = 3

    @classmethod
    def parse(cls, v: Codec | str | int) -> Codec:
        if isinstance(v, Codec):
            return v
        if isinstance(v, str):
            names = {
                "jpeg": cls.JPEG,
                "jpg": cls.JPEG,
                "raw": cls.RAW_BGR,
                "bgr": cls.RAW_BGR,
                "raw_bgr": cls.RAW_BGR,
                "detections": cls.DETECTIONS,
                "dets": cls.DETECTIONS,
            }
            try:
                return names[v.lower()]
            except KeyError:
                raise EnvelopeError(
                    f"unknown codec {v!r}: expected jpeg, raw or detections"
                ) from None
        try:
            return cls(int(v))
        except ValueError:
            raise EnvelopeError(f"unknown codec {v!r}") from None


@dataclass(slots=True)
class FrameEnvelope:
    camera_id: str
    ts: float
    seq: int
    width: int
    height: int
    codec: Codec
    payload: bytes

    # ---- building ------------------------------------------------------------------------
    @classmethod
    def from_frame(
        cls,
        camera_id: str,
        frame: np.ndarray,
        ts: float,
        seq: int,
        *,
        codec: Codec | str = Codec.JPEG,
        jpeg_quality: int = 85,
    ) -> FrameEnvelope:
        """Wrap a uint8 H×W×3 BGR frame, JPEG-encoded (default) or raw."""
        c = Codec.parse(codec)
        if (
            not isinstance(frame, np.ndarray)
            or frame.dtype != np.uint8
            or frame.ndim != 3
            or frame.shape[2] != 3
        ):
            raise EnvelopeError(f"camera {camera_id!r}: frame must be uint8 H×W×3 BGR")
        h, w = int(frame.shape[0]), int(frame.shape[1])
        if c is Codec.JPEG:
            import cv2

            ok, buf = cv2.imencode(
                ".jpg", frame, [int(cv2.IMWRITE_JPEG_QUALITY), int(jpeg_quality)]
            )
            if not ok:
                raise EnvelopeError(f"camera {camera_id!r}: JPEG encoding failed")
            payload = buf.tobytes()
        elif c is Codec.RAW_BGR:
            payload = np.ascontiguousarray(frame).tobytes()
        else:
            raise EnvelopeError("use FrameEnvelope.from_detections for the detections codec")
        return cls(camera_id, float(ts), int(seq), w, h, c, payload)

    @classmethod
    def from_detections(
        cls,
        camera_id: str,
        dets: Detections,
        ts: float,
        seq: int,
        *,
        width: int = 0,
        height: int = 0,
    ) -> FrameEnvelope:
        n = len(dets)
        payload = b"".join(
            (
                struct.pack("<I", n),
                dets.xyxy.astype("<f4").tobytes(),
                dets.scores.astype("<f4").tobytes(),
                dets.class_ids.astype("<i4").tobytes(),
            )
        )
        return cls(
            camera_id, float(ts), int(seq), int(width), int(height), Codec.DETECTIONS, payload
        )

    # ---- wire format ---------------------------------------------------------------------
    def encode(self) -> bytes:
        cam = self.camera_id.encode("utf-8")
        if not cam or len(cam) > MAX_CAMERA_ID:
            raise EnvelopeError(f"camera id must be 1..{MAX_CAMERA_ID} bytes, got {len(cam)}")
        if not math.isfinite(self.ts):
            raise EnvelopeError(
                f"camera {self.camera_id!r}: timestamp must be finite, got {self.ts!r}"
            )
        if self.seq < 0:
            raise EnvelopeError(f"camera {self.camera_id!r}: sequence must be ≥ 0, got {self.seq}")
        head = _HEADER.pack(
            MAGIC,
            VERSION,
            int(self.codec),
            len(cam),
            self.ts,
            self.seq,
            self.width,
            self.height,
            len(self.payload),
        )
        return b"".join((head, cam, self.payload))

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview | None) -> FrameEnvelope:
        """Parse and validate an envelope. Raises EnvelopeError naming what is wrong."""
        if data is None:
            raise EnvelopeError("empty message (no value)")
        data = bytes(data)
        if len(data) < HEADER_SIZE:
            raise EnvelopeError(f"truncated header: {len(data)} bytes, need {HEADER_SIZE}")
        magic, version, codec, cam_len, ts, seq, w, h, plen = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise EnvelopeError(f"bad magic {magic!r}: not a citystream frame envelope")
        if version != VERSION:
            raise EnvelopeError(f"unsupported envelope version {version} (this reader: {VERSION})")
        try:
            c = Codec(codec)
        except ValueError:
            raise EnvelopeError(f"unknown codec {codec}") from None
        if cam_len == 0 or cam_len > MAX_CAMERA_ID:
            raise EnvelopeError(f"camera id length {cam_len} out of range 1..{MAX_CAMERA_ID}")
        expected = HEADER_SIZE + cam_len + plen
        if len(data) != expected:
            what = "truncated" if len(data) < expected else "trailing bytes in"
            raise EnvelopeError(f"{what} envelope: {len(data)} bytes, header says {expected}")
        try:
            cam = data[HEADER_SIZE : HEADER_SIZE + cam_len].decode("utf-8")
        except UnicodeDecodeError:
            raise EnvelopeError("camera id is not valid UTF-8") from None
        if not math.isfinite(ts):
            raise EnvelopeError(f"camera {cam!r}: timestamp is not finite ({ts!r})")
        if seq < 0:
            raise EnvelopeError(f"camera {cam!r}: negative sequence {seq}")
        if c is not Codec.DETECTIONS and not (0 < w <= MAX_DIM and 0 < h <= MAX_DIM):
            raise EnvelopeError(f"camera {cam!r}: frame size {w}×{h} out of range")
        payload = data[HEADER_SIZE + cam_len :]
        if c is Codec.RAW_BGR and len(payload) != w * h * 3:
            raise EnvelopeError(
                f"camera {cam!r}: raw BGR payload has {len(payload)} bytes, {w}×{h}×3 = {w * h * 3} expected"
            )
        return cls(cam, ts, seq, w, h, c, payload)

    # ---- payload -------------------------------------------------------------------------
    def image(self) -> np.ndarray:
        """The frame as uint8 H×W×3 BGR. Raises EnvelopeError on a corrupt/truncated JPEG
        or a size that disagrees with the header."""
        if self.codec is Codec.RAW_BGR:
            return np.frombuffer(self.payload, np.uint8).reshape(self.height, self.width, 3)
        if self.codec is not Codec.JPEG:
            raise EnvelopeError(
                f"camera {self.camera_id!r}: a {self.codec.name} envelope has no image"
            )
        p = self.payload
        # libjpeg decodes a truncated stream "successfully" (grey fill + a warning), so check
        # the SOI/EOI markers first.
        if len(p) < 4 or p[:2] != b"\xff\xd8":
            raise EnvelopeError(f"camera {self.camera_id!r}: payload is not a JPEG (no SOI marker)")
        if p.rstrip(b"\x00")[-2:] != b"\xff\xd9":
            raise EnvelopeError(f"camera {self.camera_id!r}: truncated JPEG (no EOI marker)")
        import cv2

        img = cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise EnvelopeError(f"camera {self.camera_id!r}: corrupt JPEG (decoder failed)")
        if img.shape[0] != self.height or img.shape[1] != self.width:
            raise EnvelopeError(
                f"camera {self.camera_id!r}: JPEG is {img.shape[1]}×{img.shape[0]}, header says {self.width}×{self.height}"
            )
        return img

    def detections(self) -> Detections:
        if self.codec is not Codec.DETECTIONS:
            raise EnvelopeError(
                f"camera {self.camera_id!r}: a {self.codec.name} envelope carries no detections"
            )
        p = self.payload
        if len(p) < 4:
            raise EnvelopeError(f"camera {self.camera_id!r}: detections payload too short")
        (n,) = struct.unpack_from("<I", p)
        if len(p) != 4 + n * 24:
            raise EnvelopeError(
                f"camera {self.camera_id!r}: detections payload has {len(p)} bytes, {4 + n * 24} expected for {n} boxes"
            )
        xyxy = np.frombuffer(p, "<f4", n * 4, 4).reshape(n, 4)
        scores = np.frombuffer(p, "<f4", n, 4 + 16 * n)
        cls = np.frombuffer(p, "<i4", n, 4 + 20 * n)
        if n and not (np.isfinite(xyxy).all() and np.isfinite(scores).all()):
            raise EnvelopeError(f"camera {self.camera_id!r}: non-finite detection values")
        return Detections(xyxy, scores, cls)


def encode_frame(
    camera_id: str,
    frame: np.ndarray,
    ts: float,
    seq: int,
    *,
    codec: Codec | str = Codec.JPEG,
    jpeg_quality: int = 85,
) -> bytes:
    return FrameEnvelope.from_frame(
        camera_id, frame, ts, seq, codec=codec, jpeg_quality=jpeg_quality
    ).encode()


def encode_detections(camera_id: str, dets: Detections, ts: float, seq: int) -> bytes:
    return FrameEnvelope.from_detections(camera_id, dets, ts, seq).encode()


def decode(data: bytes | bytearray | memoryview | None) -> FrameEnvelope:
    return FrameEnvelope.decode(data)
