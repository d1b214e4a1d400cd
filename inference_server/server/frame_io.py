"""Frames in and out of the engine: decoding or reading a frame (and a source photo), the file digest and
the remembered content hash, the preview's remembered plates, and writing or encoding the result.

Plates are :class:`~inference_server.plates.image_file.Plate` (``pixels`` ``(H, W, C)`` float32
scene-linear, channels in file order).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..plates.errors import PlateError
from ..plates.image_file import Limits, MetadataValue, Plate, decode_plate, encode_plate
from ..plates.source_image import source_rgb8
from ..store.memo import Memo
from .errors import SourceError
from .file_roots import FileRoots


@dataclass(frozen=True)
class FrameRequest:
    """One frame: its encoded bytes (stream transport: the pieces it came in, in order, as ``bytes`` or
    read-only views into the received messages) or an input path, and where the result goes."""

    frame_number: int
    name: str
    data: tuple[bytes | memoryview, ...] | None = None
    input_path: str = ""
    output_path: str = ""


def _sha256(pieces: tuple[bytes | memoryview, ...]) -> str:
    """sha256 of the pieces joined (without joining them)."""
    digest = hashlib.sha256()
    for piece in pieces:
        digest.update(piece)
    return digest.hexdigest()


HASH_ROWS = 64  # rows of the plate gathered and hashed at a time (1080p RGB float32: 1.5 MB, in the CPU's caches)


def content_hash(pixels: np.ndarray, rgb_index: list[int]) -> str:
    """sha256 of the frame's R, G, B values (float32, row-major, interleaved): what the analysis and the model
    outputs depend on. The same bytes as hashing the whole interleaved RGB copy, gathered ``HASH_ROWS`` rows at a
    time (a cached block instead of a 25 MB copy of a 1080p plate; about 40% less time)."""
    digest = hashlib.sha256()
    for top in range(0, pixels.shape[0], HASH_ROWS):
        rows = np.ascontiguousarray(pixels[top:top + HASH_ROWS][..., rgb_index], np.float32)
        digest.update(rows.data.cast("B"))
    return digest.hexdigest()


class FrameLoader:
    """Reads frames for the engine and remembers what is worth keeping between requests.

    Args:
        scratch_dir: where encoded frames are staged for OpenImageIO.
        limits: the largest frames accepted.
        preview_bytes: the budget of the plates remembered for previews.
        roots: the folders the path transport may read and write (none: path requests are refused).
        max_input_bytes: the largest input file read through the path transport.
    """

    def __init__(self, scratch_dir: Path, limits: Limits, preview_bytes: int, roots: FileRoots | None = None,
                 max_input_bytes: int = 1024**3) -> None:
        self.scratch_dir = Path(scratch_dir)
        self.limits = limits
        self.roots = roots if roots is not None else FileRoots()
        self.max_input_bytes = max_input_bytes
        self._frame_hashes: Memo[str] = Memo(1 << 16)
        self._preview_plates: Memo[tuple[Plate, str]] = Memo(preview_bytes, lambda v: v[0].pixels.nbytes)

    def load(self, request: FrameRequest) -> tuple[Plate, str]:
        """The decoded plate and the sha256 of its encoded bytes (the key of its remembered content hash).
        A path is read through :class:`FileRoots` (PlateError ``path`` when refused): the bytes decoded are
        the bytes of the file that was checked."""
        if request.data is not None:
            digest = _sha256(request.data)
            return decode_plate(request.data, request.name, self.scratch_dir, self.limits), digest
        data, real = self.roots.read_input(request.input_path, self.max_input_bytes)
        return decode_plate(data, os.path.basename(real), self.scratch_dir, self.limits), hashlib.sha256(data).hexdigest()

    def load_remembered(self, request: FrameRequest) -> tuple[Plate, str]:
        """:meth:`load`, remembered for the next preview of the same file (by path, size and mtime) or bytes."""
        if request.data is not None:
            key: tuple[object, ...] = ("data", _sha256(request.data))
        else:
            checked = self.roots.check_input(request.input_path, self.max_input_bytes)
            key = ("path", checked.path, checked.size, checked.mtime_ns, checked.inode)
        hit = self._preview_plates.get(key)
        return hit if hit is not None else self._preview_plates.put(key, self.load(request))

    def content_hash(self, plate: Plate, file_digest: str) -> str:
        """:func:`content_hash` of the plate, remembered by the digest of the file it was decoded from."""
        rgb_index = plate.channel_index(("R", "G", "B"))
        if not file_digest:
            return content_hash(plate.pixels, rgb_index)
        key = (file_digest, tuple(rgb_index))
        return self._frame_hashes.get_or_compute(key, lambda: content_hash(plate.pixels, rgb_index))

    def decode_source(self, label: str, data: bytes) -> np.ndarray:
        """A source photo's encoded bytes -> display-referred ``(H, W, 3)`` uint8 RGB (SourceError naming
        the source when it cannot be decoded)."""
        try:
            return source_rgb8(decode_plate(data, label, self.scratch_dir, self.limits))
        except PlateError as exc:
            raise SourceError(f"source '{label}': {exc}") from exc


def deliver(request: FrameRequest, plate: Plate, pixels: np.ndarray, metadata: Mapping[str, MetadataValue],
            output_format: str, scratch_dir: Path, roots: FileRoots | None = None) -> bytes | None:
    """The rendered ``pixels`` (``(H, W, C)`` float32, ``plate``'s channels) as the request wants them:
    encoded bytes in ``output_format`` for a stream request (returned), else written to its output path
    (in the format of its extension, the input's channels; through ``roots``, atomically; None returned)."""
    if request.data is not None:
        return encode_plate(plate, pixels, metadata, output_format, scratch_dir)
    if roots is None or not roots.offered:
        raise PlateError("path", "this server does not offer the path transport (no --allow-root)")
    if not request.output_path:
        raise PlateError("path", "no output path")
    data = encode_plate(plate, pixels, metadata, Path(request.output_path).suffix or ".exr", scratch_dir)
    roots.write_output(request.output_path, data, request.input_path)
    return None
