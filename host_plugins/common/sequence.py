"""Sequence naming: frame patterns, per-node folders, and finding a rendered sequence on disk.

Patterns use ``####`` (one ``#`` per digit; what Nuke's Read/Write and the ``facebridge`` CLI take)
or printf ``%04d`` (what Resolve's ``ImportMedia`` takes). Resolve shows an image sequence's path as
``name.[1001-1100].exr``.
"""

import hashlib
import os
import re
from typing import List, NamedTuple, Optional, Sequence, Tuple

from facebridge.tokens import SequenceError, frame_token

_BRACKET = re.compile(r"^(?P<prefix>.*?)\[(?P<first>-?\d+)-(?P<last>-?\d+)\](?P<suffix>[^\[\]]*)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class FrameSequence(NamedTuple):
    """A sequence on disk: ``prefix`` + zero-padded frame + ``suffix``, frames ``first..last``."""

    prefix: str
    padding: int
    suffix: str
    first: int
    last: int

    @property
    def hashes(self) -> str:
        return self.prefix + "#" * self.padding + self.suffix

    @property
    def printf(self) -> str:
        return "%s%%0%dd%s" % (self.prefix.replace("%", "%%"), self.padding, self.suffix.replace("%", "%%"))

    def path(self, frame: int) -> str:
        return "%s%0*d%s" % (self.prefix, self.padding, frame, self.suffix)

    @property
    def length(self) -> int:
        return self.last - self.first + 1


def split_pattern(pattern: str) -> Tuple[str, int, str]:
    """``("prefix", padding, "suffix")`` of a ``####`` or ``%04d`` pattern.

    Raises:
        SequenceError: no frame token, or more than one.
    """
    try:
        token = frame_token(pattern)
    except SequenceError:
        token = None
    if token is None:
        raise SequenceError("pattern %r needs exactly one frame token (#### or %%04d)" % pattern)
    return token


def frame_path(pattern: str, frame: int) -> str:
    prefix, padding, suffix = split_pattern(pattern)
    return "%s%0*d%s" % (prefix, padding, frame, suffix)


def parse_bracket_path(path: str) -> Optional[FrameSequence]:
    """Resolve's ``/shots/plate.[1001-1100].exr`` -> the sequence; None for anything else.

    The padding is the width of the first frame number as written (``[0998-1002]`` -> 4).
    """
    match = _BRACKET.match(path)
    if not match:
        return None
    first_text = match.group("first")
    first, last = int(first_text), int(match.group("last"))
    if last < first:
        return None
    return FrameSequence(match.group("prefix"), len(first_text.lstrip("-")), match.group("suffix"), first, last)


def safe_name(text: str, fallback: str = "item") -> str:
    """A file-name-safe version of ``text`` (letters, digits, ``._-``)."""
    cleaned = _UNSAFE.sub("_", text).strip("._")
    return cleaned or fallback


def clip_stem(name: str, fallback: str = "clip") -> str:
    """A clip's name for files: no folder, frame range (``[1001-1100]``) or extension, file-name safe.

    ``plate.[1001-1100].exr`` -> ``plate``; ``A001_C003.mov`` -> ``A001_C003``.
    """
    base = re.sub(r"\[-?\d+-{1,2}\d+\]", "", os.path.basename(str(name)))
    stem, extension = os.path.splitext(base)
    if extension and not extension[1:].isdigit():
        base = stem
    return safe_name(base.strip("._ "), fallback)


def shot_id(host: str, *parts: str) -> str:
    """A stable shot id (``host-<16 hex>``) from the parts that identify a shot, e.g. its plate pattern.

    The server keys its shot analysis by this id; the same parts give the same id on every machine.
    """
    digest = hashlib.sha1("\x00".join((host,) + parts).encode("utf-8")).hexdigest()[:16]
    return "%s-%s" % (safe_name(host), digest)


class NodeFolders(NamedTuple):
    """Where one FaceBridge node (or Resolve job) keeps its files."""

    output_dir: str       # results land here
    work_dir: str         # plates written by the host, the run's report
    plate_pattern: str    # host-written input frames (#### pattern)
    result_pattern: str   # results (#### pattern)
    report_path: str


def node_folders(output_dir: str, name: str, padding: int = 4) -> NodeFolders:
    """The standard layout under ``output_dir``: ``<name>.####.exr`` results, ``work/`` for plates."""
    output_dir = os.path.abspath(output_dir)
    work = os.path.join(output_dir, "work")
    stem = safe_name(name)
    token = "#" * padding
    return NodeFolders(output_dir, work, os.path.join(work, "plate." + token + ".exr"),
                       os.path.join(output_dir, stem + "." + token + ".exr"), os.path.join(work, "report.json"))


def default_output_dir(script_path: str, node_name: str) -> str:
    """``<script folder>/facebridge/<script name>/<node name>`` for a saved script."""
    folder, base = os.path.split(os.path.abspath(script_path))
    stem = os.path.splitext(base)[0]
    return os.path.join(folder, "facebridge", safe_name(stem, "script"), safe_name(node_name, "FaceBridge"))


def find_sequence(folder: str, prefix: str = "", extension: str = ".exr") -> FrameSequence:
    """The one numbered sequence of ``prefix*<digits><extension>`` files in ``folder``.

    Used for frames a host rendered with its own naming (Resolve's render jobs): whatever the digits
    mean, the sequence must be contiguous.

    Raises:
        SequenceError: no such files, several sequences, or gaps.
    """
    pattern = re.compile(re.escape(prefix) + r"(?P<stem>.*?)(?P<digits>\d+)" + re.escape(extension) + "$",
                         re.IGNORECASE)
    groups = {}  # type: dict
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise SequenceError("cannot list %s: %s" % (folder, exc)) from None
    for name in names:
        match = pattern.match(name)
        if match:
            key = (match.group("stem"), len(match.group("digits")))
            groups.setdefault(key, []).append(int(match.group("digits")))
    if not groups:
        raise SequenceError("no %s*%s frames in %s" % (prefix, extension, folder))
    if len(groups) > 1:
        raise SequenceError("several sequences in %s: %s" % (folder, ", ".join(
            prefix + stem + "#" * width + extension for stem, width in sorted(groups))))
    (stem, width), frames = next(iter(groups.items()))
    frames.sort()
    missing = sorted(set(range(frames[0], frames[-1] + 1)) - set(frames))
    if missing:
        raise SequenceError("%s: frames missing from the sequence: %s" % (folder, _short_list(missing)))
    ext = _actual_extension(folder, prefix + stem, width, frames[0], extension)
    return FrameSequence(os.path.join(folder, prefix + stem), width, ext, frames[0], frames[-1])


def _actual_extension(folder: str, head: str, width: int, frame: int, extension: str) -> str:
    wanted = "%s%0*d" % (head, width, frame)
    for name in os.listdir(folder):
        if name.startswith(wanted) and name.lower() == (wanted + extension).lower():
            return name[len(wanted):]
    return extension


def _short_list(values: Sequence[int]) -> str:
    shown = ", ".join(str(v) for v in values[:10])
    return shown + (" ... (%d in all)" % len(values) if len(values) > 10 else "")


def existing_frames(pattern: str, frames: Sequence[int]) -> List[int]:
    """Those of ``frames`` whose file exists."""
    return [f for f in frames if os.path.isfile(frame_path(pattern, f))]
