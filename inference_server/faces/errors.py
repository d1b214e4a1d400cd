"""Errors raised by the face stages."""

from __future__ import annotations


class FaceError(Exception):
    """Base class of the face-stage errors."""


class ModelFilesMissingError(FaceError):
    """A model file that a face stage needs is not installed."""


class NoFaceError(FaceError):
    """No face was found in an image that must contain one (for example a swap source).

    Attributes:
        label: the caller's name for the image (a file name, a source id).
    """

    def __init__(self, label: str) -> None:
        super().__init__(f"no face found in {label!r}")
        self.label = label
