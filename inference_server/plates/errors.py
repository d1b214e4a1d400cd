"""Errors about a plate's content, each naming what was wrong in one line."""

from __future__ import annotations


class PlateError(ValueError):
    """A frame that cannot be processed as given.

    ``kind`` is machine-readable (``decode``, ``channels``, ``dimensions``, ``format``, ``encode``);
    the message says what is wrong in one line, without the file or frame (the caller adds those).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
