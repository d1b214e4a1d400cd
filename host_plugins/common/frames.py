"""Frame ranges, and the timeline arithmetic of Resolve (record frames vs source frames).

Convention: every range here is inclusive (``first..last``), like Nuke's frame ranges and the CLI's
``--frames A-B``. Resolve's ``TimelineItem.GetStart()`` is the item's first record frame and
``GetDuration()`` its length in frames, so its last record frame is ``start + duration - 1``.
"""

from typing import Any, Mapping, NamedTuple, Optional


class FrameRangeError(ValueError):
    """An empty or malformed range, or one outside what the host offers."""


class FrameRange(NamedTuple):
    first: int
    last: int

    @classmethod
    def checked(cls, first: Any, last: Any) -> "FrameRange":
        """``first..last`` from values a host or a user gave (numbers or text), checked."""
        try:
            a, b = int(first), int(last)
        except (TypeError, ValueError):
            raise FrameRangeError("frame range %r-%r is not two whole numbers" % (first, last)) from None
        if b < a:
            raise FrameRangeError("frame range %d-%d is empty (last before first)" % (a, b))
        return cls(a, b)

    @classmethod
    def parse(cls, text: str) -> "FrameRange":
        """``"1001-1024"`` or ``"1001"`` (negative frames allowed: ``"-5--1"``)."""
        text = text.strip()
        for i in range(1, len(text)):
            if text[i] == "-" and text[i - 1].isdigit():
                return cls.checked(text[:i], text[i + 1:])
        return cls.checked(text, text)

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def arg(self) -> str:
        """The CLI form, ``"1001-1024"``."""
        return "%d-%d" % (self.first, self.last)

    def __contains__(self, frame: object) -> bool:
        return isinstance(frame, int) and self.first <= frame <= self.last

    def intersect(self, other: "FrameRange") -> Optional["FrameRange"]:
        first, last = max(self.first, other.first), min(self.last, other.last)
        return FrameRange(first, last) if first <= last else None

    def shifted(self, offset: int) -> "FrameRange":
        return FrameRange(self.first + offset, self.last + offset)


def chunk_of(shot: FrameRange, first: Optional[int], last: Optional[int]) -> FrameRange:
    """The frames a render covers: ``first..last`` (each defaulting to the shot's end) within the shot.

    Raises:
        FrameRangeError: the request lies outside the shot or is empty.
    """
    wanted = FrameRange.checked(shot.first if first is None else first, shot.last if last is None else last)
    inside = wanted.intersect(shot)
    if inside is None or inside != wanted:
        raise FrameRangeError("frames %s are outside the node's frame range %s" % (wanted.arg(), shot.arg()))
    return inside


# --- Resolve -------------------------------------------------------------------------------------


def item_record_range(start: int, duration: int) -> FrameRange:
    """Record frames of a timeline item from ``GetStart()`` and ``GetDuration()``."""
    if int(duration) < 1:
        raise FrameRangeError("timeline item has no frames (duration %r)" % duration)
    return FrameRange(int(start), int(start) + int(duration) - 1)


def marks_placeholder(marks: object) -> bool:
    """True for ``{'video': {'in': 0, 'out': 0}, ...}``: what some Resolve 20.x builds return with no marks set."""
    video = marks.get("video") if isinstance(marks, Mapping) else None
    return isinstance(video, Mapping) and video.get("in") == 0 and video.get("out") == 0


def marks_record_range(marks: Optional[Mapping[str, object]], timeline_start: int,
                       timeline_end: int) -> Optional[FrameRange]:
    """The timeline's video in/out marks as record frames, or None when either mark is unset.

    ``Timeline.GetMarkInOut()`` (Resolve 20) returns ``{'video': {'in': I, 'out': O}, ...}`` with keys
    omitted when unset; the README's example (``'in': 0``) counts from the timeline start, so the record
    frames are ``timeline_start + I .. timeline_start + O``. The ``{0, 0}`` placeholder some 20.x builds
    return when nothing is marked counts as unset (see :func:`marks_placeholder`).

    Raises:
        FrameRangeError: marks out of order, or reaching past the timeline's end frame.
    """
    video = (marks or {}).get("video") if isinstance(marks, Mapping) else None
    if not isinstance(video, Mapping) or "in" not in video or "out" not in video or marks_placeholder(marks):
        return None
    relative = FrameRange.checked(video["in"], video["out"])
    record = relative.shifted(int(timeline_start))
    if relative.first < 0 or record.last > int(timeline_end):
        raise FrameRangeError("in/out marks %s (from the timeline start) lie outside the timeline %d-%d"
                              % (relative.arg(), int(timeline_start), int(timeline_end)))
    return record


class SourceMapping(NamedTuple):
    """How an item's record frames map to its media's frame numbers (1:1, no retime)."""

    record: FrameRange
    source: FrameRange

    def source_frame(self, record_frame: int) -> int:
        return self.source.first + (record_frame - self.record.first)

    def for_records(self, records: FrameRange) -> FrameRange:
        inside = records.intersect(self.record)
        if inside != records:
            raise FrameRangeError("frames %s are not all inside the clip (%s)" % (records.arg(), self.record.arg()))
        return FrameRange(self.source_frame(records.first), self.source_frame(records.last))


def item_source_mapping(record: FrameRange, source_start: int, source_end: int, media_first: int,
                        media_last: int) -> Optional[SourceMapping]:
    """The 1:1 record -> file-frame mapping of an item on an image sequence, or None if it is retimed.

    ``source_start``/``source_end`` are ``GetSourceStartFrame()``/``GetSourceEndFrame()``; for an image
    sequence ``media_first..media_last`` they may be counted from the media's first frame (0-based) or
    be the file frame numbers themselves, so both are accepted: values inside the file-frame range are
    file frames, values that only fit 0-based are offset by ``media_first``. ``source_end`` is taken as
    inclusive; an exclusive end (one past) is accepted too.
    """
    media = FrameRange.checked(media_first, media_last)
    length = record.length
    for offset in (0, media.first):
        first = int(source_start) + offset
        last = int(source_end) + offset
        if last - first + 1 in (length, length + 1) and FrameRange(first, first + length - 1).intersect(media) \
                == FrameRange(first, first + length - 1):
            return SourceMapping(record, FrameRange(first, first + length - 1))
    return None
