"""Frame sequence patterns and frame ranges.

A pattern names one file per frame with ``####`` (one ``#`` per digit of padding) or printf-style
``%04d`` / ``%d``; a pattern without either names a single image.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass

from facebridge.tokens import SequenceError, frame_token



class PatternError(ValueError):
    """A malformed pattern or frame range."""


@dataclass(frozen=True)
class FramePattern:
    """A parsed pattern: ``prefix`` + frame number padded to ``padding`` digits + ``suffix``."""

    text: str
    prefix: str
    suffix: str
    padding: int | None  # None: a single file, not a sequence

    @property
    def is_sequence(self) -> bool:
        return self.padding is not None

    def path(self, frame: int) -> str:
        if self.padding is None:
            return self.text
        return f"{self.prefix}{frame:0{self.padding}d}{self.suffix}"

    def existing_frames(self) -> list[int]:
        """Frame numbers of the files on disk that match this pattern, sorted."""
        if self.padding is None:
            return []
        pattern = re.compile(re.escape(os.path.basename(self.prefix)) + r"(-?\d+)" + re.escape(self.suffix) + "$")
        frames = []
        for path in glob.glob(glob.escape(self.prefix) + "*" + glob.escape(self.suffix)):
            match = pattern.match(os.path.basename(path))
            if match and len(match.group(1).lstrip("-")) >= self.padding:
                frames.append(int(match.group(1)))
        return sorted(set(frames))


def parse_pattern(text: str) -> FramePattern:
    """Parse ``text``; more than one frame token is an error."""
    try:
        token = frame_token(text)
    except SequenceError as exc:
        raise PatternError(f"pattern '{text}' has more than one frame token") from exc
    if token is None:
        return FramePattern(text, text, "", None)
    prefix, padding, suffix = token
    return FramePattern(text, prefix, suffix, padding)


def parse_frame_range(text: str) -> list[int]:
    """``"1001-1024"``, ``"1001"``, ``"1-10,20-25"`` or ``"1-20x2"`` (every 2nd) -> sorted unique frames."""
    frames: set[int] = set()
    for part in text.replace(" ", "").split(","):
        match = re.fullmatch(r"(-?\d+)(?:-(-?\d+)(?:x(\d+))?)?", part)
        if not match:
            raise PatternError(f"frame range '{text}': cannot read '{part}' (expected A, A-B or A-BxSTEP)")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        step = int(match.group(3) or 1)
        if last < first or step < 1:
            raise PatternError(f"frame range '{text}': '{part}' is empty")
        frames.update(range(first, last + 1, step))
    return sorted(frames)


def gaps(frames: list[int]) -> list[int]:
    """Frame numbers missing between the first and last of ``frames`` (sorted input)."""
    present = set(frames)
    return [f for f in range(frames[0], frames[-1] + 1) if f not in present] if frames else []
