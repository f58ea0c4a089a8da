"""Typed exceptions. Rust-side errors are raised as these same classes (defined in the
compiled module so that the Rust ↔ Python mapping lives in one place); Python-only errors
subclass the same base, so `except engine.CitystreamError` catches everything we raise."""

from __future__ import annotations

from engine._core import (
    CitystreamError,
    FrameError,
    InputError,
    ModelOutputError,
    PlateError,
    SignalConstraintError,
    TimeOrderError,
)


class ConfigError(CitystreamError):
    """A site configuration is invalid. Names the file, the key and what was expected."""

    def __init__(self, file: str, key: str, expected: str, got: object = None) -> None:
        self.file = str(file)
        self.key = key
        self.expected = expected
        self.got = got
        got_txt = "" if got is None else f", got {got!r}"
        super().__init__(f"{self.file}: key '{key}': expected {expected}{got_txt}")


class UnknownCameraError(CitystreamError):
    """A frame arrived for a camera that the site configuration does not define."""


class ModelError(CitystreamError):
    """A model file is missing, unreadable or fails its sha256 check."""


class ModelIntegrityError(ModelError):
    """A model file's sha256 does not match the registry (tampered or corrupt)."""


class EnvelopeError(CitystreamError):
    """A frame envelope on the wire is malformed (bad header, truncated, unknown codec)."""


__all__ = [
    "CitystreamError",
    "ConfigError",
    "EnvelopeError",
    "FrameError",
    "InputError",
    "ModelError",
    "ModelIntegrityError",
    "ModelOutputError",
    "PlateError",
    "SignalConstraintError",
    "TimeOrderError",
    "UnknownCameraError",
]
