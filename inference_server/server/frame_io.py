"""Frames in and out of the engine: decoding or reading a frame (and a source photo), the file digest and
what the file decodes to (its content hash, remembered in memory and in the shot database), the preview's
remembered plates, and writing or encoding the result.

Plates are :class:`~inference_server.plates.image_file.Plate` (``pixels`` ``(H, W, C)`` float32
scene-linear, channels in file order).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..plates.errors import PlateError
from ..plates.image_file import (
    DECODER,
    Limits,
    MetadataValue,
    Plate,
    RgbPlate,
    channel_selection,
    decode_plate,
    decode_rgb,
    encode_output,
    encode_plate,
)
from ..plates.encoded_file import EncodedFile
from ..plates.source_image import source_rgb8
from ..store.memo import Memo
from .errors import SourceError
from .file_roots import FileRoots


@dataclass(frozen=True)
class FrameRequest:
    """One frame: its encoded bytes (stream transport: the pieces it came in, in order, as ``bytes`` or
    read-only views into the received messages) or an input path, and where the result goes.
    ``input_copies``: the client can take parts of the result from the file it sent (stream transport)."""

    frame_number: int
    name: str
    data: tuple[bytes | memoryview, ...] | None = None
    input_path: str = ""
    output_path: str = ""
    input_copies: bool = False


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
    time (a cached block instead of a 25 MB copy of a 1080p plate; about 40% less time). Channels next to each
    other in order (an RGB or RGBA plate) are gathered as a slice, a strided copy (~25% faster than picking them)."""
    digest = hashlib.sha256()
    channels = channel_selection(rgb_index)
    for top in range(0, pixels.shape[0], HASH_ROWS):
        rows = np.ascontiguousarray(pixels[top:top + HASH_ROWS, :, channels], np.float32)
        digest.update(rows.data.cast("B"))
    return digest.hexdigest()


def _rgb_of(plate: Plate | RgbPlate) -> tuple[np.ndarray, list[int], tuple[int, ...]]:
    """A decoded plate's pixels (all its channels, or its R, G, B only), the indices of R, G, B among them, and
    their indices among the file's channels."""
    if isinstance(plate, RgbPlate):
        return plate.rgb, [0, 1, 2], plate.rgb_index
    index = plate.channel_index(("R", "G", "B"))
    return plate.pixels, index, tuple(index)


@dataclass(frozen=True)
class PlateFacts:
    """What an encoded frame file decodes to, as far as a replayed analysis needs it without the pixels.

    Attributes:
        content_hash: :func:`content_hash` of its R, G, B.
        rgb_index: the indices of R, G, B among its channels.
        colorspace: its ``oiio:ColorSpace`` attribute ("" when it has none).
        size: its pixels' ``(height, width)``.
    """

    content_hash: str
    rgb_index: tuple[int, ...]
    colorspace: str
    size: tuple[int, int]

    @classmethod
    def of(cls, plate: Plate | RgbPlate, content: str) -> PlateFacts:
        """The facts of a decoded plate (all its channels, or its R, G, B only) whose content hash is ``content``."""
        pixels, _, in_file = _rgb_of(plate)
        height, width = pixels.shape[:2]
        return cls(content, in_file, plate.spec.get_string_attribute("oiio:ColorSpace"), (int(height), int(width)))

    def to_text(self) -> str:
        return json.dumps({"content_hash": self.content_hash, "rgb_index": list(self.rgb_index),
                           "colorspace": self.colorspace, "size": list(self.size)}, sort_keys=True)

    @classmethod
    def from_text(cls, text: str) -> PlateFacts | None:
        """The facts :meth:`to_text` wrote; None for anything else (then the file is decoded, as if unknown)."""
        try:
            d = json.loads(text)
            height, width = (int(v) for v in d["size"])
            return cls(str(d["content_hash"]), tuple(int(i) for i in d["rgb_index"]), str(d["colorspace"]),
                       (height, width))
        except (ValueError, TypeError, KeyError):
            return None


class PlateFiles(Protocol):
    """Where what plate files decode to is kept between processes (the shot database)."""

    def plate_file_facts(self, digest: str, decoder: str) -> str | None: ...

    def remember_plate_file(self, digest: str, decoder: str, facts: str) -> bool: ...


@dataclass(frozen=True)
class EncodedFrame:
    """A frame's encoded bytes as read (a stream's pieces, or a file's bytes), the name that tells OpenImageIO
    its format, and their sha256."""

    data: bytes | tuple[bytes | memoryview, ...]
    name: str
    digest: str


class FrameLoader:
    """Reads frames for the engine and remembers what is worth keeping between requests.

    Args:
        scratch_dir: where encoded frames are staged for OpenImageIO.
        limits: the largest frames accepted.
        preview_bytes: the budget of the plates remembered for previews.
        roots: the folders the path transport may read and write (none: path requests are refused).
        max_input_bytes: the largest input file read through the path transport.
        files: keeps what plate files decode to between processes (None: only in memory), so that a replayed
            analysis knows a file it has seen by its digest without decoding it.
    """

    def __init__(self, scratch_dir: Path, limits: Limits, preview_bytes: int, roots: FileRoots | None = None,
                 max_input_bytes: int = 1024**3, files: PlateFiles | None = None) -> None:
        self.scratch_dir = Path(scratch_dir)
        self.limits = limits
        self.roots = roots if roots is not None else FileRoots()
        self.max_input_bytes = max_input_bytes
        self._files = files
        self._facts: Memo[PlateFacts] = Memo(1 << 16)
        self._preview_plates: Memo[tuple[Plate, str]] = Memo(preview_bytes, lambda v: v[0].pixels.nbytes)

    def read(self, request: FrameRequest) -> EncodedFrame:
        """The frame's encoded bytes and their sha256. A path is read through :class:`FileRoots` (PlateError
        ``path`` when refused): the bytes decoded are the bytes of the file that was checked."""
        if request.data is not None:
            return EncodedFrame(request.data, request.name, _sha256(request.data))
        data, real = self.roots.read_input(request.input_path, self.max_input_bytes)
        return EncodedFrame(data, os.path.basename(real), hashlib.sha256(data).hexdigest())

    def decode(self, encoded: EncodedFrame) -> Plate:
        return decode_plate(encoded.data, encoded.name, self.scratch_dir, self.limits)

    def decode_rgb(self, encoded: EncodedFrame) -> RgbPlate:
        """Only the frame's R, G and B (what an analysis needs; see :func:`~..plates.image_file.read_rgb`)."""
        return decode_rgb(encoded.data, encoded.name, self.scratch_dir, self.limits)

    def load(self, request: FrameRequest) -> tuple[Plate, str]:
        """The decoded plate and the sha256 of its encoded bytes (the key of what it decodes to)."""
        encoded = self.read(request)
        return self.decode(encoded), encoded.digest

    def load_remembered(self, request: FrameRequest) -> tuple[Plate, str]:
        """:meth:`load`, remembered for the next preview of the same file (by path, size and mtime) or bytes."""
        if request.data is not None:
            key: tuple[object, ...] = ("data", _sha256(request.data))
        else:
            checked = self.roots.check_input(request.input_path, self.max_input_bytes)
            key = ("path", checked.path, checked.size, checked.mtime_ns, checked.inode)
        hit = self._preview_plates.get(key)
        return hit if hit is not None else self._preview_plates.put(key, self.load(request))

    def known_facts(self, file_digest: str) -> PlateFacts | None:
        """What the file of sha256 ``file_digest`` decodes to, when this server (or one before it on the same
        shot database) decoded it with the same decoder; None otherwise."""
        hit = self._facts.get(file_digest)
        if hit is not None or self._files is None:
            return hit
        text = self._files.plate_file_facts(file_digest, DECODER)
        facts = PlateFacts.from_text(text) if text is not None else None
        return self._facts.put(file_digest, facts) if facts is not None else None

    def facts(self, plate: Plate | RgbPlate, file_digest: str) -> PlateFacts:
        """What ``plate`` (all its channels, or its R, G, B only), decoded from the file of sha256 ``file_digest``,
        holds (:class:`PlateFacts`), remembered by that digest; computed (its content hash) and recorded the first
        time, and again when what was recorded does not describe this plate (its size, channels or colour space
        attribute). No digest: computed."""
        def hashed() -> str:
            pixels, rgb_index, _ = _rgb_of(plate)
            return content_hash(pixels, rgb_index)

        if not file_digest:
            return PlateFacts.of(plate, hashed())
        known = self.known_facts(file_digest)
        if known is not None and known == PlateFacts.of(plate, known.content_hash):
            return known
        facts = PlateFacts.of(plate, hashed())
        if self._files is not None:
            self._files.remember_plate_file(file_digest, DECODER, facts.to_text())
        return self._facts.put(file_digest, facts)

    def content_hash(self, plate: Plate, file_digest: str) -> str:
        """:func:`content_hash` of the plate, remembered by the digest of the file it was decoded from."""
        return self.facts(plate, file_digest).content_hash

    def decode_source(self, label: str, data: bytes) -> np.ndarray:
        """A source photo's encoded bytes -> display-referred ``(H, W, 3)`` uint8 RGB (SourceError naming
        the source when it cannot be decoded)."""
        try:
            return source_rgb8(decode_plate(data, label, self.scratch_dir, self.limits))
        except PlateError as exc:
            raise SourceError(f"source '{label}': {exc}") from exc


def deliver(request: FrameRequest, plate: Plate, pixels: np.ndarray, metadata: Mapping[str, MetadataValue],
            output_format: str, scratch_dir: Path, roots: FileRoots | None = None,
            original: bytes | tuple[bytes | memoryview, ...] | None = None) -> EncodedFile | None:
    """The rendered ``pixels`` (``(H, W, C)`` float32, ``plate``'s channels) as the request wants them:
    encoded in ``output_format`` for a stream request (returned, in pieces), else written to its output path
    (in the format of its extension, the input's channels; through ``roots``, atomically; None returned).
    ``original``: the encoded frame ``plate`` was decoded from, whose unchanged EXR chunks an EXR output reuses
    (:func:`~inference_server.plates.image_file.encode_plate`)."""
    if request.data is not None:
        return encode_output(plate, pixels, metadata, output_format, scratch_dir, original)
    if roots is None or not roots.offered:
        raise PlateError("path", "this server does not offer the path transport (no --allow-root)")
    if not request.output_path:
        raise PlateError("path", "no output path")
    data = encode_plate(plate, pixels, metadata, Path(request.output_path).suffix or ".exr", scratch_dir, original)
    roots.write_output(request.output_path, data, request.input_path)
    return None
