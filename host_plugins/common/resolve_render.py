"""Resolve's side of a job, as plain data: what to render, which EXR codec, what to place where.

The Resolve adapter feeds these functions the values its API calls return and acts on the answers;
everything here is testable without Resolve.
"""

import os
from typing import Dict, Iterable, Mapping, NamedTuple, Optional, Tuple

from .frames import FrameRange, SourceMapping, item_source_mapping
from .sequence import FrameSequence, parse_bracket_path, safe_name

# Lossless first; float before half (Resolve processes in 32-bit float).
EXR_CODEC_PREFERENCE = ("RGBFloatZIP", "RGBFloat", "RGBFloatPIZ", "RGBFloatRLE", "RGBHalfZIP", "RGBHalf",
                        "RGBHalfPIZ", "RGBHalfRLE")
RENDER_MODE_SINGLE_CLIP = 1


class PlanError(ValueError):
    """Nothing sensible to do (no EXR render format, a timeline item without frames...)."""


def exr_format(formats: Mapping[str, str]) -> str:
    """The EXR render format as ``GetRenderCodecs``/``SetCurrentRenderFormatAndCodec`` take it.

    ``Project.GetRenderFormats()`` returns "format -> file extension"; the documented argument and every
    public script use the extension value (``"exr"``), not the key (``"EXR"``).
    """
    for extension in formats.values():
        if str(extension).lower().lstrip(".") == "exr":
            return str(extension)
    raise PlanError("this Resolve offers no EXR render format (formats: %s)" % ", ".join(sorted(formats)))


def exr_codec(codecs: Mapping[str, str]) -> str:
    """The best lossless EXR codec name from ``Project.GetRenderCodecs(format)`` (description -> name)."""
    names = [str(v) for v in codecs.values()]
    for wanted in EXR_CODEC_PREFERENCE:
        if wanted in names:
            return wanted
    lossless = [n for n in names if not any(tag in n for tag in ("DWA", "B44", "PXR24"))]
    if lossless:
        return sorted(lossless)[0]
    raise PlanError("no lossless EXR codec offered (codecs: %s)" % ", ".join(sorted(names)))


def render_settings(record: FrameRange, target_dir: str, name: str) -> Dict[str, object]:
    """``Project.SetRenderSettings`` keys for an EXR sequence of ``record`` frames (video only).

    Only keys the README's "Looking up Render Settings" lists, and as few as possible: Resolve rejects
    the whole dictionary when one key is not accepted.
    """
    return {"SelectAllFrames": False, "MarkIn": int(record.first), "MarkOut": int(record.last),
            "TargetDir": target_dir, "CustomName": name, "ExportVideo": True, "ExportAudio": False}


def job_percent(status: Optional[Mapping[str, object]]) -> int:
    """``CompletionPercentage`` of ``GetRenderJobStatus``, 0 when absent or unreadable.

    The ``JobStatus`` text follows Resolve's UI language ("Complete", "已完成"...), so it is shown to the
    artist but never compared: completion is ``IsRenderingInProgress()`` false, 100 %, and the files.
    """
    try:
        return int(float(str((status or {}).get("CompletionPercentage", 0) or 0)))
    except ValueError:
        return 0


def direct_source(record: FrameRange, file_path: str, source_start: int,
                  source_end: int) -> Optional[Tuple[FrameSequence, SourceMapping]]:
    """``(sequence, record -> file frame mapping)`` when an item can be read straight from its EXR files.

    True for a clip on an EXR image sequence (Resolve's ``name.[1001-1100].exr`` path) played 1:1;
    None otherwise (a movie, a retime, a missing path): those go through a render job.
    """
    sequence = parse_bracket_path(file_path or "")
    if sequence is None or not sequence.suffix.lower().endswith(".exr"):
        return None
    mapping = item_source_mapping(record, source_start, source_end, sequence.first, sequence.last)
    if mapping is None:
        return None
    return sequence, mapping


class Placement(NamedTuple):
    """Where results go on the timeline: ``AppendToTimeline`` clip info for the imported sequence."""

    track_index: int
    record_first: int
    frame_count: int

    def clip_info(self, media_pool_item: object, end_exclusive: bool = True) -> Dict[str, object]:
        """Frames of the imported clip counted from its first frame; ``endFrame`` one past the last.

        No README says whether ``endFrame`` is inclusive; Blackmagic forum examples (startFrame 0,
        endFrame 25 = "the first 25 frames") read it as exclusive. ``end_exclusive=False`` is the other
        reading, tried when the placed item read back does not match.
        """
        end = self.frame_count if end_exclusive else self.frame_count - 1
        return {"mediaPoolItem": media_pool_item, "startFrame": 0, "endFrame": end,
                "mediaType": 1, "trackIndex": int(self.track_index), "recordFrame": int(self.record_first)}


def import_clip_info(sequence: FrameSequence) -> Dict[str, object]:
    """``MediaPool.ImportMedia`` clip info importing ``sequence`` as one clip."""
    return {"FilePath": sequence.printf, "StartIndex": sequence.first, "EndIndex": sequence.last}


def job_output_dir(root: str, project: str, timeline: str, clip: str, record_first: int) -> str:
    """``<root>/<project>/<timeline>/<clip>_<record frame>``: one folder per job."""
    return os.path.join(os.path.abspath(os.path.expanduser(root)), safe_name(project, "project"),
                        safe_name(timeline, "timeline"), "%s_%d" % (safe_name(clip, "clip"), int(record_first)))


def default_output_root() -> str:
    return os.path.join(os.path.expanduser("~"), "facebridge", "resolve")


def covering_items(items: Iterable[tuple], record: FrameRange) -> list:
    """``(track, start, duration, item)`` tuples overlapping ``record``, topmost track first."""
    found = []
    for track, start, duration, item in items:
        if duration < 1:
            continue
        span = FrameRange(int(start), int(start) + int(duration) - 1)
        if span.intersect(record) is not None:
            found.append((track, start, duration, item))
    return sorted(found, key=lambda t: (-t[0], t[1]))


__all__ = ["EXR_CODEC_PREFERENCE", "PlanError", "Placement", "RENDER_MODE_SINGLE_CLIP", "SourceMapping",
           "covering_items", "default_output_root", "direct_source", "exr_codec", "exr_format", "import_clip_info",
           "job_output_dir", "job_percent", "render_settings"]
