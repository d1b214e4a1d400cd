"""Decode and encode image files with OpenImageIO, keeping everything about them.

Convention:
    - ``Plate.pixels`` is ``(H, W, C)`` float32, the data window of subimage 0, channels in file order.
      Half and float values convert to float32 exactly, so writing them back to the same channel formats
      reproduces the file's values bit for bit (NaN, Inf and values above 1 included).
    - Channel formats, data/display windows, tiling, compression and metadata come from the file's
      ``ImageSpec`` and are reused when encoding; further subimages (multi-part EXR) are carried through
      untouched.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import OpenImageIO as oiio

from .errors import PlateError
from .encoded_file import EncodedFile
from .exr_chunks import band_rows, chunk_runs, scanline_file, splice
from .halves import float_to_half, half_to_float

MetadataValue = str | int | float
T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """The largest frame accepted, checked from the file's header before any pixel is read.

    ``max_decode_bytes`` bounds the decoded float32 pixels (width x height x channels x 4, all subimages
    together): an 820 KB PNG can announce 16384x16384 and decode to gigabytes (a decompression bomb).
    The default, 1 GiB, holds an 8K RGBA or a 4K 16-channel float plate.
    """

    max_width: int = 16384
    max_height: int = 16384
    max_channels: int = 64
    max_decode_bytes: int = 1024**3


DECODER = f"OpenImageIO {oiio.__version__}"
"""What decodes plates here: a file's decoded pixels are recorded per decoder (another version may decode the
same bytes differently)."""


@dataclass
class Plate:
    """One decoded image: subimage 0 as float32 pixels plus everything needed to write it back."""

    pixels: np.ndarray
    spec: oiio.ImageSpec
    format_name: str
    extra_subimages: list[tuple[oiio.ImageSpec, np.ndarray]] = field(default_factory=list)

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(self.spec.channelnames)

    def channel_index(self, names: Sequence[str]) -> list[int]:
        """Indices of ``names`` in file order; PlateError(``channels``) naming the missing ones."""
        return channel_index(self.spec, names)


def channel_index(spec: oiio.ImageSpec, names: Sequence[str]) -> list[int]:
    """Indices of ``names`` among ``spec``'s channels (file order); PlateError(``channels``) naming the missing ones."""
    have = tuple(spec.channelnames)
    missing = [n for n in names if n not in have]
    if missing:
        raise PlateError("channels", f"missing channel(s) {','.join(missing)}; has {','.join(have) or 'none'}")
    return [have.index(n) for n in names]


@dataclass(frozen=True)
class RgbPlate:
    """The R, G and B of an image's subimage 0, read without its other channels (what an analysis needs).

    Attributes:
        rgb: ``(H, W, 3)`` float32 scene-linear R, G, B: the values :func:`read_plate` gives those channels.
        spec: subimage 0's spec, every channel named in it.
        rgb_index: the indices of R, G, B among ``spec``'s channels.
    """

    rgb: np.ndarray
    spec: oiio.ImageSpec
    rgb_index: tuple[int, int, int]


def channel_selection(indices: Sequence[int]) -> slice | list[int]:
    """How to pick channels ``indices`` from an ``(H, W, C)`` array's last axis: a slice when they are consecutive
    and ascending (RGB of an RGB or RGBA plate; a view, nothing gathered: the same values as picking them, at a
    fraction of the cost where the result is copied anyway), else the list."""
    first = indices[0]
    return slice(first, first + len(indices)) if list(indices) == list(range(first, first + len(indices))) \
        else list(indices)


def _decoded_bytes(spec: oiio.ImageSpec) -> int:
    return int(spec.width) * int(spec.height) * max(1, int(spec.depth)) * int(spec.nchannels) * 4


def _check_spec(spec: oiio.ImageSpec, limits: Limits, decoded_before: int = 0) -> None:
    if spec.deep:
        raise PlateError("format", "deep images are not supported")
    if spec.width <= 0 or spec.height <= 0 or spec.nchannels <= 0:
        raise PlateError("dimensions", f"empty image ({spec.width}x{spec.height}, {spec.nchannels} channels)")
    if spec.width > limits.max_width or spec.height > limits.max_height:
        raise PlateError(
            "dimensions",
            f"{spec.width}x{spec.height} exceeds the server limit of {limits.max_width}x{limits.max_height}",
        )
    if spec.nchannels > limits.max_channels:
        raise PlateError("dimensions", f"{spec.nchannels} channels exceed the limit of {limits.max_channels}")
    decoded = decoded_before + _decoded_bytes(spec)
    if decoded > limits.max_decode_bytes:
        raise PlateError(
            "dimensions",
            f"{spec.width}x{spec.height}x{spec.nchannels} would decode to {decoded / 1024**2:.0f} MiB, over the "
            f"server's decode budget of {limits.max_decode_bytes / 1024**2:.0f} MiB",
        )


def _all_half(spec: oiio.ImageSpec, first: int = 0, end: int | None = None) -> bool:
    """Whether channels ``first`` to ``end`` (default: all) of ``spec`` are stored as half floats."""
    return all(spec.channelformat(c) == oiio.TypeHalf for c in range(first, spec.nchannels if end is None else end))


def _read_channels(inp: oiio.ImageInput, spec: oiio.ImageSpec, first: int, end: int) -> np.ndarray:
    """Channels ``first`` to ``end`` of the current subimage as ``(H, W, end - first)`` float32, the values
    OpenImageIO's float conversion gives: half channels are read as they are stored and converted here
    (:func:`~.halves.half_to_float`, the same bits in a third of the time), any other format by OpenImageIO.
    PlateError(``decode``) for pixels that cannot be read."""
    half = _all_half(spec, first, end)
    pixels = inp.read_image(inp.current_subimage(), inp.current_miplevel(), first, end,
                            oiio.HALF if half else oiio.FLOAT)
    if pixels is None or inp.has_error:
        raise PlateError("decode", f"unreadable pixels ({inp.geterror() or oiio.geterror() or 'truncated?'})")
    block = pixels.reshape(spec.height, spec.width, end - first)
    return half_to_float(block) if half else np.ascontiguousarray(block, dtype=np.float32)


def _read_subimage(inp: oiio.ImageInput, spec: oiio.ImageSpec) -> np.ndarray:
    return _read_channels(inp, spec, 0, spec.nchannels)


def _open(path: str | os.PathLike[str]) -> oiio.ImageInput:
    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        detail = oiio.geterror().strip().splitlines()
        raise PlateError("decode", f"cannot open image ({detail[-1] if detail else 'unknown format'})")
    return inp


def read_rgb(path: str | os.PathLike[str], limits: Limits = Limits()) -> RgbPlate:
    """Decode only R, G and B of the image file at ``path`` (subimage 0): the channels from the first of them to
    the last are copied out and converted, not the others (alpha, depth, AOVs: most of a many-channel plate's
    decode time). Checked against ``limits`` as :func:`read_plate` checks subimage 0.

    Raises:
        PlateError: unreadable, truncated, deep, empty or oversized images; ``channels`` without R, G or B.
    """
    inp = _open(path)
    try:
        spec = inp.spec()
        _check_spec(spec, limits)
        r, g, b = channel_index(spec, ("R", "G", "B"))
        first, end = min(r, g, b), max(r, g, b) + 1
        block = _read_channels(inp, spec, first, end)
        rgb = block[..., channel_selection([r - first, g - first, b - first])]
        return RgbPlate(np.ascontiguousarray(rgb, dtype=np.float32), spec, (r, g, b))
    finally:
        inp.close()


def read_plate(path: str | os.PathLike[str], limits: Limits = Limits()) -> Plate:
    """Decode the image file at ``path`` (anything OpenImageIO reads).

    Raises:
        PlateError: unreadable, truncated, deep, empty or oversized images.
    """
    inp = _open(path)
    try:
        spec = inp.spec()
        _check_spec(spec, limits)
        pixels = _read_subimage(inp, spec)
        extra: list[tuple[oiio.ImageSpec, np.ndarray]] = []
        decoded = _decoded_bytes(spec)
        index = 1
        while inp.seek_subimage(index, 0):
            sub = inp.spec()
            _check_spec(sub, limits, decoded)
            decoded += _decoded_bytes(sub)
            extra.append((sub, _read_subimage(inp, sub)))
            index += 1
        return Plate(pixels=pixels, spec=spec, format_name=inp.format_name(), extra_subimages=extra)
    finally:
        inp.close()


def _staged(data: bytes | bytearray | memoryview | tuple[bytes | memoryview, ...], name: str, scratch_dir: Path,
            read: Callable[[str], T]) -> T:
    """``read`` of an encoded image held in memory (one buffer, or a tuple of pieces to be read in order), staged
    in a temporary file of ``scratch_dir``; ``name``'s extension helps OpenImageIO pick the reader."""
    suffix = Path(name).suffix or ".img"
    with tempfile.NamedTemporaryFile(dir=scratch_dir, suffix=suffix) as handle:
        if isinstance(data, tuple):
            handle.writelines(data)
        else:
            handle.write(data)
        handle.flush()
        return read(handle.name)


def decode_plate(data: bytes | bytearray | memoryview | tuple[bytes | memoryview, ...], name: str, scratch_dir: Path,
                 limits: Limits = Limits()) -> Plate:
    """:func:`read_plate` of an encoded image held in memory (see :func:`_staged`)."""
    return _staged(data, name, scratch_dir, lambda path: read_plate(path, limits))


def decode_rgb(data: bytes | bytearray | memoryview | tuple[bytes | memoryview, ...], name: str, scratch_dir: Path,
               limits: Limits = Limits()) -> RgbPlate:
    """:func:`read_rgb` of an encoded image held in memory (see :func:`_staged`)."""
    return _staged(data, name, scratch_dir, lambda path: read_rgb(path, limits))


def _output_spec(spec: oiio.ImageSpec, metadata: Mapping[str, MetadataValue]) -> oiio.ImageSpec:
    out = oiio.ImageSpec(spec)
    for key, value in metadata.items():
        out.attribute(key, value)
    return out


def _to_write(path: Path, spec: oiio.ImageSpec, image: np.ndarray) -> np.ndarray:
    """``image`` (``(h, w, c)`` float32) as it is handed to OpenImageIO for ``spec``: an EXR's all-half channels
    converted here (:func:`~.halves.float_to_half`, the bits OpenImageIO's conversion gives, in a sixth of the
    time), anything else as float32 for OpenImageIO to convert."""
    if path.suffix.lower() == ".exr" and _all_half(spec):
        return float_to_half(image)
    return np.ascontiguousarray(image, dtype=np.float32)


def _write(path: Path, specs: Sequence[oiio.ImageSpec], images: Sequence[np.ndarray]) -> None:
    """Write ``images`` (``(h, w, c)`` float32, converted to each spec's channel formats) as the subimages of
    ``path``, in the format of its extension; PlateError(``encode``) when they cannot be written."""
    out = oiio.ImageOutput.create(str(path))
    if out is None:
        raise PlateError("encode", f"no writer for '{path.suffix}' ({oiio.geterror().strip()})")
    try:
        if len(specs) > 1 and not out.supports("multiimage"):
            raise PlateError("encode", f"'{path.suffix}' cannot hold the {len(specs)} parts of the input")
        ok = out.open(str(path), list(specs)) if len(specs) > 1 else out.open(str(path), specs[0])
        for index, (spec, image) in enumerate(zip(specs, images)):
            if index > 0:
                ok = ok and out.open(str(path), spec, "AppendSubimage")
            ok = ok and out.write_image(_to_write(path, spec, image))
        if not ok:
            raise PlateError("encode", f"cannot write '{path.name}' ({out.geterror() or oiio.geterror()})")
    finally:
        out.close()


def write_plate_atomic(
    path: str | os.PathLike[str],
    plate: Plate,
    pixels: np.ndarray,
    metadata: Mapping[str, MetadataValue],
) -> None:
    """Write ``pixels`` (same shape as ``plate.pixels``) with ``plate``'s spec plus ``metadata`` to ``path``.

    The file is written under a temporary name in the same folder and renamed when complete, so a failure
    never leaves a partial file at ``path``. The format follows ``path``'s extension.
    """
    path = Path(path)
    if pixels.shape != plate.pixels.shape:
        raise PlateError("encode", f"pixels {pixels.shape} do not match the plate {plate.pixels.shape}")
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    specs = [_output_spec(plate.spec, metadata)] + [_output_spec(s, metadata) for s, _ in plate.extra_subimages]
    try:
        _write(tmp, specs, [pixels] + [p for _, p in plate.extra_subimages])
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def changed_chunks(before: np.ndarray, after: np.ndarray, lines: int) -> list[int]:
    """The indices of the blocks of ``lines`` rows (from row 0) where ``after`` differs from ``before`` in any bit
    (both ``(H, W, C)`` float32; a NaN's payload and -0 count as values)."""
    old, new = before.view(np.uint32), after.view(np.uint32)
    return [top // lines for top in range(0, before.shape[0], lines)
            if not np.array_equal(old[top:top + lines], new[top:top + lines])]


def _spliced(plate: Plate, pixels: np.ndarray, metadata: Mapping[str, MetadataValue], original: bytes,
             scratch_dir: Path) -> EncodedFile | None:
    """``plate``'s file (``original``, the bytes it was decoded from) with only the chunks holding changed rows
    encoded again (:mod:`.exr_chunks`), every other chunk the plate file's own bytes; None when ``original`` is
    not a file that can be spliced this way. Each run of consecutive changed chunks (a face, or faces whose rows
    meet) is encoded as one band; the rows between two faces are not encoded at all."""
    layout = scanline_file(original)
    spec = plate.spec
    if layout is None or plate.extra_subimages or spec.tile_width or \
            layout.data_window != (spec.x, spec.y, spec.x + spec.width - 1, spec.y + spec.height - 1):
        return None
    changed = changed_chunks(plate.pixels, pixels, layout.lines_per_chunk)
    # nothing changed: one chunk is still encoded, for the output's header (its metadata), and not used
    bands = []
    for first, last in chunk_runs(changed) or [(0, 0)]:
        top, bottom = band_rows(layout, first, last)
        band = _output_spec(spec, metadata)
        band.y, band.height = spec.y + top, bottom - top
        path = Path(scratch_dir) / f"{uuid.uuid4().hex}.exr"
        try:
            _write(path, [band], [pixels[top:bottom]])
            bands.append(path.read_bytes())
        finally:
            path.unlink(missing_ok=True)
    return splice(original, layout, bands, changed)


def encode_output(
    plate: Plate, pixels: np.ndarray, metadata: Mapping[str, MetadataValue], extension: str, scratch_dir: Path,
    original: bytes | tuple[bytes | memoryview, ...] | None = None,
) -> EncodedFile:
    """Encode like ``write_plate_atomic``; the file as its pieces (for streaming back, or joined).

    ``original``: the encoded bytes ``plate`` was decoded from (a stream's pieces in order, or one buffer). When
    both it and the output are single-part scan-line EXRs, only the chunks of rows where ``pixels`` differ from
    the plate are encoded; the others are the plate file's own bytes (:func:`_spliced`), pieces that say where
    they are in ``original``: the same pixels as encoding the whole frame for lossless compressions, and for lossy
    ones (DWAA, DWAB, B44) the plate's stored values, untouched, outside the changed rows.
    """
    if original is not None and extension.lstrip(".").lower() == "exr":
        if pixels.shape != plate.pixels.shape:
            raise PlateError("encode", f"pixels {pixels.shape} do not match the plate {plate.pixels.shape}")
        whole = b"".join(original) if isinstance(original, tuple) else original
        spliced = _spliced(plate, np.ascontiguousarray(pixels, dtype=np.float32), metadata, whole, scratch_dir)
        if spliced is not None:
            return spliced
    path = Path(scratch_dir) / f"{uuid.uuid4().hex}.{extension.lstrip('.')}"
    try:
        write_plate_atomic(path, plate, pixels, metadata)
        return EncodedFile.of(path.read_bytes())
    finally:
        path.unlink(missing_ok=True)


def encode_plate(
    plate: Plate, pixels: np.ndarray, metadata: Mapping[str, MetadataValue], extension: str, scratch_dir: Path,
    original: bytes | tuple[bytes | memoryview, ...] | None = None,
) -> bytes:
    """:func:`encode_output`, joined: the file's bytes."""
    return encode_output(plate, pixels, metadata, extension, scratch_dir, original).join()
