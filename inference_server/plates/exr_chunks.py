"""Single-part scan-line OpenEXR files as their header and compressed chunks, and splicing two of them.

A render changes the plate only inside a band of rows (where faces are); every chunk of rows outside it can be
copied from the plate file as it was read, compressed bytes and all, instead of being encoded again. That is
both faster (a 1080p ZIP frame's encode is ~0.15 s, the largest stage of a blend-only re-render) and exact: a lossy
plate (DWAA, DWAB) re-encoded whole changes pixels far from any face (16% of a 1080p half plate's values by up
to 4e-3 here), while its copied chunks keep every stored value.

Layout facts (https://openexr.com/en/latest/OpenEXRFileLayout.html, "Scan Line Blocks", "Line Offset Table"):
magic number 20000630 and a 4-byte version field (low byte 2; bit 9 single-part tiled, bit 10 long names, bit 11
non-image (deep), bit 12 multi-part); the header's attributes (name NUL, type NUL, int32 size, value) up to a
NUL byte; one uint64 offset per chunk, ordered by increasing y whatever the line order; each chunk an int32 y
(its first line), an int32 size and that many bytes. Lines per chunk follow the compression (NONE, RLE, ZIPS 1;
ZIP, PXR24 16; PIZ, B44, B44A, DWAA 32; DWAB 256), counted from the data window's first line, the last chunk
holding what is left. All integers little-endian.

Everything here is pure: bytes in, the spliced file's pieces (or None) out; None means "not a file this module
splices" and the caller encodes the whole frame as before.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from .encoded_file import EncodedFile, Piece

MAGIC = b"\x76\x2f\x31\x01"
_TILED, _NON_IMAGE, _MULTIPART = 0x200, 0x800, 0x1000
LINES_PER_CHUNK = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256}
"""Scan lines per chunk by the ``compression`` attribute's value (NONE .. DWAB)."""
INCREASING_Y = 0


@dataclass(frozen=True)
class ScanlineFile:
    """Where things are in a single-part, flat, scan-line EXR held in memory.

    Attributes:
        header_end: offset of the first byte after the header's closing NUL (the offset table starts there).
        attributes: name -> (type name, offset of the value, size of the value), offsets into the file.
        data_window: ``(x_min, y_min, x_max, y_max)``, inclusive.
        compression: the ``compression`` attribute's value.
        chunks: per chunk in increasing y, ``(offset, length)`` of the whole chunk (its 8-byte y and size included).
    """

    header_end: int
    attributes: dict[str, tuple[str, int, int]]
    data_window: tuple[int, int, int, int]
    compression: int
    chunks: tuple[tuple[int, int], ...]

    @property
    def lines_per_chunk(self) -> int:
        return LINES_PER_CHUNK[self.compression]

    def value(self, data: bytes, name: str) -> bytes:
        """The raw value of attribute ``name`` (b"" when the header has none)."""
        if name not in self.attributes:
            return b""
        _, at, size = self.attributes[name]
        return data[at:at + size]


def _cstring(data: bytes, at: int, limit: int) -> tuple[str, int] | None:
    end = data.find(b"\0", at, at + limit + 1)
    return None if end < 0 else (data[at:end].decode("latin-1"), end + 1)


def _attributes(data: bytes, at: int, name_limit: int) -> tuple[dict[str, tuple[str, int, int]], int] | None:
    attributes: dict[str, tuple[str, int, int]] = {}
    while True:
        name = _cstring(data, at, name_limit)
        if name is None:
            return None
        if name[0] == "":
            return attributes, name[1]
        kind = _cstring(data, name[1], name_limit)
        if kind is None or kind[1] + 4 > len(data):
            return None
        (size,) = struct.unpack_from("<i", data, kind[1])
        value_at = kind[1] + 4
        if size < 0 or value_at + size > len(data):
            return None
        attributes[name[0]] = (kind[0], value_at, size)
        at = value_at + size


def scanline_file(data: bytes) -> ScanlineFile | None:
    """The layout of ``data`` when it is a complete single-part, flat, scan-line EXR in increasing-y line order
    with a known compression and an offset table whose every entry points at the chunk it names; None for
    anything else (other formats, tiled, deep or multi-part files, unknown compressions, damaged tables)."""
    if len(data) < 8 or data[:4] != MAGIC:
        return None
    (version,) = struct.unpack_from("<I", data, 4)
    if version & 0xFF != 2 or version & (_TILED | _NON_IMAGE | _MULTIPART):
        return None
    parsed = _attributes(data, 8, 255 if version & 0x400 else 31)
    if parsed is None:
        return None
    attributes, header_end = parsed
    kinds = {name: attributes.get(name, ("", 0, 0)) for name in ("dataWindow", "compression", "lineOrder")}
    if (kinds["dataWindow"][0], kinds["dataWindow"][2]) != ("box2i", 16) or kinds["compression"][:1] != ("compression",) \
            or kinds["lineOrder"][:1] != ("lineOrder",) or kinds["compression"][2] != 1 or kinds["lineOrder"][2] != 1:
        return None
    window = struct.unpack_from("<4i", data, kinds["dataWindow"][1])
    compression, line_order = data[kinds["compression"][1]], data[kinds["lineOrder"][1]]
    if compression not in LINES_PER_CHUNK or line_order != INCREASING_Y or window[2] < window[0] or window[3] < window[1]:
        return None
    lines = LINES_PER_CHUNK[compression]
    count = -(-(window[3] - window[1] + 1) // lines)
    if header_end + 8 * count > len(data):
        return None
    chunks = []
    for index, offset in enumerate(struct.unpack_from(f"<{count}Q", data, header_end)):
        if offset < header_end + 8 * count or offset + 8 > len(data):
            return None
        y, size = struct.unpack_from("<ii", data, offset)
        if y != window[1] + index * lines or size < 0 or offset + 8 + size > len(data):
            return None
        chunks.append((offset, 8 + size))
    return ScanlineFile(header_end, attributes, window, compression, tuple(chunks))


def band_rows(layout: ScanlineFile, first: int, last: int) -> tuple[int, int]:
    """The rows ``[top, bottom)`` (0-based in the data window) of chunks ``first`` to ``last`` (inclusive)."""
    lines = layout.lines_per_chunk
    return first * lines, min(layout.data_window[3] - layout.data_window[1] + 1, (last + 1) * lines)


def chunk_runs(indices: Collection[int]) -> list[tuple[int, int]]:
    """Sorted chunk ``indices`` as runs of consecutive ones, ``(first, last)`` inclusive, in order."""
    runs: list[tuple[int, int]] = []
    for index in sorted(indices):
        if runs and index == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], index)
        else:
            runs.append((index, index))
    return runs


def _band_chunks(plate: bytes, whole: ScanlineFile, band: bytes) -> tuple[ScanlineFile, int] | None:
    """``band``'s layout and the index of its first chunk among ``plate``'s, when it is a band of ``plate`` as
    :func:`splice` wants it; None otherwise."""
    part = scanline_file(band)
    if part is None:
        return None
    if any(whole.value(plate, name) != part.value(band, name) for name in ("channels", "compression", "lineOrder")):
        return None
    wx0, wy0, wx1, wy1 = whole.data_window
    bx0, by0, bx1, by1 = part.data_window
    lines = whole.lines_per_chunk
    if (bx0, bx1) != (wx0, wx1) or by0 < wy0 or by1 > wy1 or (by0 - wy0) % lines \
            or (by1 != wy1 and (by1 + 1 - wy0) % lines):
        return None
    return part, (by0 - wy0) // lines


def _whole_header(band: bytes, layout: ScanlineFile, whole: ScanlineFile) -> bytes | None:
    """``band``'s header (``layout``) made the whole file's: its data window and chunk count ``whole``'s."""
    header = bytearray(band[:layout.header_end])
    _, at, _ = layout.attributes["dataWindow"]
    header[at:at + 16] = struct.pack("<4i", *whole.data_window)
    if "chunkCount" in layout.attributes:  # written by multi-part aware encoders; must count the whole file's
        kind, at, size = layout.attributes["chunkCount"]
        if (kind, size) != ("int", 4):
            return None
        header[at:at + 4] = struct.pack("<i", len(whole.chunks))
    return bytes(header)


def splice(plate: bytes, whole: ScanlineFile, bands: Sequence[bytes], take: Collection[int]) -> EncodedFile | None:
    """The pieces of a file with the bands' header (its data window set to ``plate``'s) and, chunk by chunk,
    the bands' chunks for the chunk indices in ``take`` and ``plate``'s elsewhere; None when they cannot be
    spliced. ``whole`` is ``plate``'s layout (:func:`scanline_file`).

    Each band must be a scan-line EXR of whole chunks of ``plate``'s rows (its data window's x range the
    plate's, its first row on one of the plate's chunk boundaries, its last row at one or at the plate's end),
    with the same channels, compression and line order: as an encoder writes the same image restricted to those
    rows (several bands: several such writes, of rows that do not overlap, with the same header otherwise);
    every index of ``take`` must lie within a band. The result is then the file that encoder would have written
    for the plate's pixels with the rows of ``take`` replaced, except that every other chunk keeps the plate's
    own compressed bytes. Each run of the plate's chunks that follow one another in ``plate`` is one piece, a
    view of ``plate`` that says where it is there (:class:`~.encoded_file.Piece`).
    """
    parts = [part for part in (_band_chunks(plate, whole, band) for band in bands) if part is not None]
    if not bands or len(parts) != len(bands):
        return None
    owner: dict[int, tuple[memoryview, tuple[int, int]]] = {}  # chunk index -> the band's bytes, its chunk there
    for band, (layout, first) in zip(bands, parts):
        for k, chunk in enumerate(layout.chunks):
            if first + k in owner:
                return None  # two bands hold the same rows
            owner[first + k] = (memoryview(band), chunk)
    if any(index not in owner for index in take):
        return None
    # one header for all: bands written with other attributes (or one that cannot describe the file) are refused
    headers = {_whole_header(band, layout, whole) for band, (layout, _) in zip(bands, parts)}
    header = headers.pop() if len(headers) == 1 else None
    if header is None:
        return None
    taken = set(take)
    pieces: list[Piece] = []
    offsets, position = [], len(header) + 8 * len(whole.chunks)
    plate_view = memoryview(plate)
    for index, (offset, length) in enumerate(whole.chunks):
        offsets.append(position)
        if index in taken:
            band_view, (at, size) = owner[index]
            pieces.append(Piece(band_view[at:at + size]))
            position += size
            continue
        position += length
        last = pieces[-1] if pieces else None
        if last is not None and last.input_offset is not None and last.input_offset + last.size == offset:
            pieces[-1] = Piece(plate_view[last.input_offset:offset + length], last.input_offset)  # the run goes on
        else:
            pieces.append(Piece(plate_view[offset:offset + length], offset))
    return EncodedFile((Piece(header + struct.pack(f"<{len(offsets)}Q", *offsets)), *pieces))
