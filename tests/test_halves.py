"""Half <-> float32 conversions (plates/halves.py): the bits numpy and OpenImageIO give, NaN payloads included, and
the plate reader and writer that use them giving the bits OpenImageIO's own conversions give, on real EXR files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest
from support import write_exr

from inference_server.plates import halves
from inference_server.plates.halves import float_to_half, half_to_float
from inference_server.plates.image_file import read_plate, read_rgb, write_plate_atomic

# every half value, and float32 values where a conversion to half can go wrong: rounding ties and the largest half
# (65504; 65520 rounds to infinity), the smallest subnormal half and half of it (a tie to 0), signed zeros, the
# infinities, and NaNs quiet and signalling, with payloads only in the bits a half keeps, only in the bits it drops
ALL_HALVES = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
EDGES = np.array([0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x477FE000, 0x477FEFFF, 0x477FF000, 0xC77FF000,
                  0x33000000, 0x33000001, 0x337FFFFF, 0x33800000, 0x38800000, 0x387FE000, 0x3F801000, 0x3F803000,
                  0x7FC00000, 0xFFC00000, 0x7F800001, 0x7F802000, 0x7FBFFFFF, 0xFF801FFF, 0x7FC00001, 0xFFBFE000],
                 np.uint32).view(np.float32)


def _float_values(count: int = 1_000_000) -> np.ndarray:
    """Random float32 bit patterns (all exponents: NaNs, infinities, subnormals), the edges, and every half's
    value: ``(n,)`` float32."""
    bits = np.random.default_rng(7).integers(0, 2**32, size=count, dtype=np.uint64).astype(np.uint32)
    return np.concatenate([bits.view(np.float32), EDGES, ALL_HALVES.astype(np.float32)])


def _bits(values: np.ndarray) -> np.ndarray:
    return values.view(np.uint16 if values.dtype == np.float16 else np.uint32)


@pytest.mark.parametrize("shape", [(65536,), (256, 256), (64, 256, 4), (128, 128, 4), (32, 64, 32)])
def test_half_to_float_gives_numpys_bits_for_every_half(shape: tuple[int, ...]) -> None:
    values = ALL_HALVES.reshape(shape)
    out = half_to_float(values)
    assert out.dtype == np.float32 and out.shape == shape and out.flags.c_contiguous
    assert np.array_equal(_bits(out), _bits(values.astype(np.float32)))


def test_opencv_alone_quiets_signalling_nans_which_the_conversion_writes_back() -> None:
    """The reason for the NaN pass: without it a half frame's signalling NaN would come back changed (the test
    fails if OpenCV ever keeps them, so the pass's reason is checked, not assumed)."""
    raw = np.asarray(cv2.multiply(ALL_HALVES.reshape(256, 256), 1.0, dtype=cv2.CV_32F)).reshape(-1)
    wrong = _bits(raw) != _bits(ALL_HALVES.astype(np.float32))
    assert wrong.any() and np.isnan(raw[wrong]).all()
    signalling = (_bits(ALL_HALVES) & 0x7C00 == 0x7C00) & (_bits(ALL_HALVES) & 0x03FF != 0) & \
        (_bits(ALL_HALVES) & 0x0200 == 0)
    assert np.array_equal(wrong, signalling)
    assert np.array_equal(_bits(half_to_float(ALL_HALVES)), _bits(ALL_HALVES.astype(np.float32)))


@pytest.mark.parametrize("columns", [1, 3, 4, 1000])
def test_float_to_half_gives_numpys_bits(columns: int) -> None:
    values = _float_values()
    values = values[: values.size // columns * columns].reshape(-1, columns)
    with np.errstate(over="ignore"):
        expected = values.astype(np.float16)
    assert np.array_equal(_bits(float_to_half(values)), _bits(expected))


def test_small_strided_and_nan_free_arrays() -> None:
    rng = np.random.default_rng(3)
    frame = (rng.standard_normal((90, 160, 4)) * 3).astype(np.float32)
    for values in (frame, frame[:, ::3], frame[:5, :5], frame[:0], frame[..., 1:3]):
        assert np.array_equal(_bits(float_to_half(values)), _bits(values.astype(np.float16)))
        half = values.astype(np.float16)
        assert np.array_equal(_bits(half_to_float(half)), _bits(half.astype(np.float32)))


def test_without_opencvs_half_arithmetic_numpy_converts(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise cv2.error("no half arithmetic here")

    monkeypatch.setattr(halves.cv2, "multiply", refuse)
    values = _float_values(100_000)
    with np.errstate(over="ignore"):
        assert np.array_equal(_bits(float_to_half(values)), _bits(values.astype(np.float16)))
    assert np.array_equal(_bits(half_to_float(ALL_HALVES)), _bits(ALL_HALVES.astype(np.float32)))


def _oiio_float_read(path: Path, subimage: int = 0) -> np.ndarray:
    """OpenImageIO's own conversion of a file's pixels to float32 (the reference)."""
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None and inp.seek_subimage(subimage, 0)
    spec = inp.spec()
    pixels = inp.read_image(format=oiio.FLOAT)
    inp.close()
    assert pixels is not None
    return pixels.reshape(spec.height, spec.width, spec.nchannels)


def _stored_halves(path: Path) -> np.ndarray:
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None
    spec = inp.spec()
    pixels = inp.read_image(format=oiio.HALF)
    inp.close()
    assert pixels is not None
    return pixels.reshape(spec.height, spec.width, spec.nchannels)


def test_plate_reader_gives_openimageios_float_bits(tmp_path: Path) -> None:
    """Every half value in a half RGBA file, and a file of half R, G, B and float Z: the plate's pixels (and an
    analysis' R, G, B) are OpenImageIO's float conversion bit for bit, signalling NaNs as they are."""
    every = np.ascontiguousarray(np.repeat(ALL_HALVES.reshape(256, 256, 1), 4, axis=2))
    write_exr(tmp_path / "every.exr", every.astype(np.float32), ("R", "G", "B", "A"))
    mixed = (np.random.default_rng(1).standard_normal((64, 80, 4)) * 4).astype(np.float32)
    mixed[3, 4, :3] = ALL_HALVES[0x7C01].astype(np.float32)  # a signalling NaN in the half channels
    write_exr(tmp_path / "mixed.exr", mixed, ("R", "G", "B", "Z"), (oiio.HALF,) * 3 + (oiio.FLOAT,))
    for name in ("every.exr", "mixed.exr"):
        reference = _oiio_float_read(tmp_path / name)
        plate = read_plate(tmp_path / name)
        assert plate.pixels.dtype == np.float32 and np.array_equal(_bits(plate.pixels), _bits(reference))
        assert np.array_equal(_bits(read_rgb(tmp_path / name).rgb), _bits(reference[..., :3]))
    assert np.isnan(_oiio_float_read(tmp_path / "mixed.exr")[3, 4, 0])


def test_a_second_part_is_read_from_its_own_part(tmp_path: Path) -> None:
    path = tmp_path / "parts.exr"
    first, second = oiio.ImageSpec(96, 64, 4, oiio.HALF), oiio.ImageSpec(96, 64, 2, oiio.HALF)
    first.attribute("name", "rgba")
    second.channelnames = ("u", "v")
    second.attribute("name", "motion")
    out = oiio.ImageOutput.create(str(path))
    assert out is not None and out.open(str(path), (first, second))
    rng = np.random.default_rng(2)
    out.write_image(rng.random((64, 96, 4)).astype(np.float16))
    out.open(str(path), second, "AppendSubimage")
    out.write_image((rng.random((64, 96, 2)) * 9).astype(np.float16))
    out.close()
    plate = read_plate(path)
    assert np.array_equal(_bits(plate.pixels), _bits(_oiio_float_read(path, 0)))
    assert np.array_equal(_bits(plate.extra_subimages[0][1]), _bits(_oiio_float_read(path, 1)))


def test_plate_writer_stores_the_halves_openimageio_would(tmp_path: Path) -> None:
    """float32 pixels that are not halves (rounding ties, overflow to infinity, NaNs with payloads a half keeps
    and drops) written to a half plate: the stored halves are those OpenImageIO's own conversion stores."""
    values = _float_values(200_000)
    pixels = values[: values.size // 400 * 400].reshape(-1, 100, 4)
    write_exr(tmp_path / "in.exr", np.zeros(pixels.shape, np.float32), ("R", "G", "B", "A"))
    plate = read_plate(tmp_path / "in.exr")
    write_plate_atomic(tmp_path / "ours.exr", plate, pixels, {})
    write_exr(tmp_path / "theirs.exr", pixels, ("R", "G", "B", "A"))  # OpenImageIO converts the float32
    assert np.array_equal(_bits(_stored_halves(tmp_path / "ours.exr")), _bits(_stored_halves(tmp_path / "theirs.exr")))
