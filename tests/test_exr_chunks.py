"""EXR outputs reuse the plate file's compressed chunks outside the changed rows (inference_server.plates.exr_chunks):
real EXR files written and read by OpenImageIO, a real photo's pixels with NaN, Inf, -0 and HDR values."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
from support import load_rgb8, srgb8_to_linear, write_exr

from inference_server.plates import image_file
from inference_server.plates.exr_chunks import LINES_PER_CHUNK, band_rows, chunk_runs, scanline_file, splice
from inference_server.plates.image_file import (MetadataValue, changed_chunks, decode_plate, encode_output, encode_plate,
                                                read_plate)

LOSSLESS = ["none", "rle", "zips", "zip", "piz"]
LOSSY = ["pxr24", "b44", "b44a", "dwaa", "dwab"]
META: dict[str, MetadataValue] = {"facebridge:ai_processed": 1, "facebridge:models": "test-models", "facebridge:params_hash": "abc123"}


def _plate_pixels(faces_dir: Path) -> np.ndarray:
    """(h, w, 5) float32: a real photo's linear RGB, an alpha and a float depth, with special values."""
    rgb = srgb8_to_linear(load_rgb8(faces_dir / "fr_obama.jpg"))[:301, :257]
    rgb[3, 5] = (np.nan, np.inf, -np.inf)
    rgb[7, 9] = (-0.0, 65000.0, 12.5)
    h, w = rgb.shape[:2]
    alpha = np.linspace(0.0, 1.0, h * w, dtype=np.float32).reshape(h, w, 1)
    depth = np.fromfunction(lambda y, x: 3.0 + 0.013 * x + 0.071 * y, (h, w), dtype=np.float32)[..., None]
    return np.concatenate([rgb, alpha, depth], axis=2).astype(np.float32)


def _plate(faces_dir: Path, folder: Path, compression: str) -> tuple[Path, bytes]:
    path = write_exr(folder / f"plate_{compression}.exr", _plate_pixels(faces_dir), ("R", "G", "B", "A", "Z"),
                     (oiio.HALF,) * 4 + (oiio.FLOAT,), compression=compression, origin=(-8, -5),
                     display=(241, 291))
    return path, path.read_bytes()


def _changed(pixels: np.ndarray, rows: slice) -> np.ndarray:
    out = pixels.copy()
    out[rows, 60:190, :3] = (out[rows, 60:190, :3] * 0.5 + 0.25).astype(np.float16)  # values a half file holds
    return out


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


@pytest.mark.parametrize("compression", LOSSLESS + LOSSY)
def test_only_the_changed_rows_chunks_are_encoded(faces_dir: Path, tmp_path: Path, compression: str) -> None:
    path, original = _plate(faces_dir, tmp_path, compression)
    plate = read_plate(path)
    pixels = _changed(plate.pixels, slice(101, 187))
    pieces = encode_output(plate, pixels, META, "exr", tmp_path, original)
    spliced = pieces.join()
    whole = encode_plate(plate, pixels, META, "exr", tmp_path)
    layout = scanline_file(original)
    assert layout is not None and layout.compression == list(LINES_PER_CHUNK)[
        ["none", "rle", "zips", "zip", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab"].index(compression)]
    lines = layout.lines_per_chunk
    top, bottom = band_rows(layout, 101 // lines, 186 // lines)
    out = decode_plate(spliced, "o.exr", tmp_path)
    full = decode_plate(whole, "w.exr", tmp_path)
    # the plate's own stored values outside the band's chunks; inside, what encoding the whole frame stores
    assert (_bits(out.pixels[:top]) == _bits(plate.pixels[:top])).all()
    assert (_bits(out.pixels[bottom:]) == _bits(plate.pixels[bottom:])).all()
    assert (_bits(out.pixels[top:bottom]) == _bits(full.pixels[top:bottom])).all()
    assert out.spec.roi == plate.spec.roi and out.spec.roi_full == plate.spec.roi_full
    assert [str(f) for f in out.spec.channelformats] == ["half"] * 4 + ["float"]
    assert out.spec.get_int_attribute("facebridge:ai_processed") == 1
    assert out.spec.get_string_attribute("facebridge:params_hash") == "abc123"
    assert out.spec.get_string_attribute("compression") == full.spec.get_string_attribute("compression")
    # the plate's chunks above and below the band (DWAB's first chunk holds the band): a piece each, that says
    # where it is in the plate file
    copied = [(p.input_offset, bytes(p.data)) for p in pieces.pieces if p.input_offset is not None]
    above = [layout.chunks[0][0]] if top else []
    below = [layout.chunks[bottom // lines][0]] if bottom < plate.pixels.shape[0] else []
    assert [at for at, _ in copied] == above + below and len(copied) == 2 - (compression == "dwab")
    assert all(original[at:at + len(data)] == data for at, data in copied)
    assert sum(len(data) for _, data in copied) == sum(length for i, (_, length) in enumerate(layout.chunks)
                                                       if not top // lines <= i < -(-bottom // lines))
    if compression in LOSSLESS:
        # a plate the same encoder wrote: the same file, byte for byte, as encoding the whole frame
        assert spliced == whole
        assert (_bits(out.pixels) == _bits(pixels)).all()
    if compression in ("dwaa", "dwab"):
        # what encoding the whole frame again would have cost: stored values changed far from the change
        outside = np.r_[0:top, bottom:plate.pixels.shape[0]]
        assert outside.size and not (_bits(full.pixels[outside]) == _bits(plate.pixels[outside])).all()


@pytest.mark.parametrize("rows", [slice(0, 1), slice(300, 301), slice(0, 301), slice(31, 33)])
def test_bands_at_the_edges_and_across_chunk_boundaries(faces_dir: Path, tmp_path: Path, rows: slice) -> None:
    path, original = _plate(faces_dir, tmp_path, "piz")  # 32 lines a chunk; 301 rows: a last chunk of 13
    plate = read_plate(path)
    pixels = _changed(plate.pixels, rows)
    spliced = encode_plate(plate, pixels, META, ".EXR", tmp_path, original)
    assert spliced == encode_plate(plate, pixels, META, "exr", tmp_path)
    assert (_bits(decode_plate(spliced, "o.exr", tmp_path).pixels) == _bits(pixels)).all()


def test_nothing_changed_keeps_every_chunk_and_says_what_processed_it(faces_dir: Path, tmp_path: Path) -> None:
    path, original = _plate(faces_dir, tmp_path, "dwaa")
    plate = read_plate(path)
    spliced = encode_plate(plate, plate.pixels.copy(), META, "exr", tmp_path, original)
    out = decode_plate(spliced, "o.exr", tmp_path)
    assert (_bits(out.pixels) == _bits(plate.pixels)).all()
    assert out.spec.get_string_attribute("facebridge:models") == "test-models"
    layout, result = scanline_file(original), scanline_file(spliced)
    assert layout is not None and result is not None
    # every chunk but the first (which carried the header's encode) is the plate's, byte for byte
    for (at, size), (bt, bsize) in list(zip(layout.chunks, result.chunks))[1:]:
        assert original[at:at + size] == spliced[bt:bt + bsize]


def test_changed_chunks_compares_bits() -> None:
    before = np.zeros((40, 3, 4), np.float32)
    before[5, 1, 2] = np.nan
    after = before.copy()
    assert changed_chunks(before, after, 16) == []  # the same NaN is no change
    after[17, 0, 0] = -0.0
    after[39, 2, 3] = 1e-30
    assert changed_chunks(before, after, 16) == [1, 2]
    assert changed_chunks(before, after, 1) == [17, 39]
    nan_payload = before.copy()
    nan_payload.view(np.uint32)[5, 1, 2] ^= 1
    assert changed_chunks(before, nan_payload, 7) == [0]


def _rows_written(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The rows ``(y, height)`` of every band encoded from now on (a spy on ``image_file._write``)."""
    rows: list[tuple[int, int]] = []
    write = image_file._write

    def spied(path: Path, specs: list[oiio.ImageSpec], images: list[np.ndarray]) -> None:
        rows.extend((spec.y, spec.height) for spec in specs)
        write(path, specs, images)

    monkeypatch.setattr(image_file, "_write", spied)
    return rows


def test_chunk_runs() -> None:
    assert chunk_runs([]) == []
    assert chunk_runs([4]) == [(4, 4)]
    assert chunk_runs([7, 0, 1, 2, 5, 9, 8]) == [(0, 2), (5, 5), (7, 9)]


def test_unchanged_chunks_between_two_faces_keep_the_plates_bytes(faces_dir: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path, original = _plate(faces_dir, tmp_path, "dwaa")
    plate = read_plate(path)
    pixels = _changed(_changed(plate.pixels, slice(10, 40)), slice(230, 250))  # chunks 0, 1 and 7 of 10
    rows = _rows_written(monkeypatch)
    spliced = encode_plate(plate, pixels, META, "exr", tmp_path, original)
    # two bands: chunks 0-1 and chunk 7 (32 rows each, from the data window's first row -5); none between
    assert rows == [(-5, 64), (-5 + 7 * 32, 32)]
    layout, result = scanline_file(original), scanline_file(spliced)
    assert layout is not None and result is not None
    same = [original[a:a + n] == spliced[b:b + m] for (a, n), (b, m) in zip(layout.chunks, result.chunks)]
    assert same == [False, False, True, True, True, True, True, False, True, True]
    out = decode_plate(spliced, "o.exr", tmp_path).pixels
    assert (_bits(out[64:224]) == _bits(plate.pixels[64:224])).all()


@pytest.mark.parametrize("compression", ["zip", "piz"])
def test_two_bands_make_the_same_file_as_encoding_the_whole_frame(faces_dir: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  compression: str) -> None:
    """Faces far apart: each is encoded as its own band, and the file is byte for byte the whole frame's."""
    path, original = _plate(faces_dir, tmp_path, compression)
    plate = read_plate(path)
    lines = LINES_PER_CHUNK[scanline_file(original).compression]  # type: ignore[union-attr]
    pixels = _changed(_changed(_changed(plate.pixels, slice(3, 20)), slice(150, 152)), slice(280, 301))
    whole = encode_plate(plate, pixels, META, "exr", tmp_path)
    rows = _rows_written(monkeypatch)
    assert encode_plate(plate, pixels, META, "exr", tmp_path, original) == whole
    expected = [(-5 + first * lines, min(301, (last + 1) * lines) - first * lines)
                for first, last in chunk_runs(changed_chunks(plate.pixels, pixels, lines))]
    assert rows == expected and len(rows) == 3
    assert sum(height for _, height in rows) < 301 // 2


def _plate_file(tmp_path: Path, name: str, pixels: np.ndarray, spec_changes: dict[str, int | str],
                subimages: int = 1) -> Path:
    path = tmp_path / name
    spec = oiio.ImageSpec(pixels.shape[1], pixels.shape[0], pixels.shape[2], oiio.HALF)
    spec.channelnames = ("R", "G", "B", "A")[:pixels.shape[2]]
    spec.attribute("compression", "zip")
    for key, value in spec_changes.items():
        if key == "tile":
            spec.tile_width = spec.tile_height = int(value)
        else:
            spec.attribute(key, value)
    out = oiio.ImageOutput.create(str(path))
    assert out is not None
    assert out.open(str(path), [spec] * subimages) if subimages > 1 else out.open(str(path), spec)
    for index in range(subimages):
        if index:
            assert out.open(str(path), spec, "AppendSubimage")
        assert out.write_image(pixels)
    out.close()
    return path


@pytest.mark.parametrize(("name", "changes", "subimages"), [
    ("tiled.exr", {"tile": 64}, 1),
    ("decreasing.exr", {"openexr:lineOrder": "decreasingY"}, 1),
    ("parts.exr", {}, 2),
    ("plate.png", {}, 1),
])
def test_files_it_cannot_splice_are_encoded_whole(faces_dir: Path, tmp_path: Path, name: str,
                                                  changes: dict[str, int | str], subimages: int) -> None:
    pixels = np.ascontiguousarray(_plate_pixels(faces_dir)[..., :4])
    if name.endswith(".png"):
        pixels = np.clip(np.nan_to_num(pixels), 0.0, 1.0)
    path = _plate_file(tmp_path, name, pixels, changes, subimages)
    original = path.read_bytes()
    assert scanline_file(original) is None
    plate = read_plate(path)
    out_pixels = _changed(plate.pixels, slice(40, 90))
    extension = Path(name).suffix
    spliced = encode_plate(plate, out_pixels, META, extension, tmp_path, (original[:100], memoryview(original)[100:]))
    assert spliced == encode_plate(plate, out_pixels, META, extension, tmp_path)


def test_damaged_or_mismatched_files_are_not_spliced(faces_dir: Path, tmp_path: Path) -> None:
    path, original = _plate(faces_dir, tmp_path, "zip")
    layout = scanline_file(original)
    assert layout is not None
    table = layout.header_end
    zeroed = bytearray(original)
    zeroed[table + 8:table + 16] = bytes(8)  # the second chunk's offset lost (a file cut short while written)
    assert scanline_file(bytes(zeroed)) is None
    swapped = bytearray(original)
    swapped[table:table + 16] = original[table + 8:table + 16] + original[table:table + 8]
    assert scanline_file(bytes(swapped)) is None  # each entry must point at the chunk of its own rows
    assert scanline_file(original[:-10]) is None
    long_size = bytearray(original)
    at = layout.chunks[-1][0]
    long_size[at + 4:at + 8] = struct.pack("<i", len(original))
    assert scanline_file(bytes(long_size)) is None
    plate = read_plate(path)

    def band(y: int, changes: dict[str, int | str]) -> bytes:
        spec = oiio.ImageSpec(plate.spec)
        spec.y, spec.height = plate.spec.y + y, 16
        for key, value in changes.items():
            if key == "y":
                spec.y = int(value)
            else:
                spec.attribute(key, value)
        band_path = tmp_path / "band.exr"
        out = oiio.ImageOutput.create(str(band_path))
        assert out is not None and out.open(str(band_path), spec)
        assert out.write_image(np.ascontiguousarray(plate.pixels[spec.y - plate.spec.y:][:16]))
        out.close()
        return band_path.read_bytes()

    # a band with other channels, or rows not on the plate's chunk boundaries, is refused
    cases: list[tuple[dict[str, int | str], bool]] = [({}, True), ({"y": plate.spec.y + 17}, False),
                                                     ({"compression": "zips"}, False)]
    for changes, good in cases:
        assert (splice(original, layout, [band(16, changes)], [1]) is not None) == good, changes
    assert splice(original, layout, [band(16, {})], [2]) is None  # a chunk the band does not hold
    assert splice(original, layout, [], []) is None
    assert splice(original, layout, [band(16, {})] * 2, [1]) is None  # two bands with the same rows
    # bands of other rows must have the same header but for the data window
    assert splice(original, layout, [band(16, {}), band(48, {})], [1, 3]) is not None
    assert splice(original, layout, [band(16, {}), band(48, {"facebridge:note": "other"})], [1, 3]) is None
