"""Plate I/O and colour conversions on real EXR files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
from support import read_exr, same_bits, write_exr

from inference_server.plates.colour import ColourSpace, linear_to_srgb8, plate_colourspace, srgb_decode, srgb_encode, to_uint8
from inference_server.plates.errors import PlateError
from inference_server.plates.image_file import Limits, decode_rgb, read_plate, read_rgb, write_plate_atomic


def _awkward_plate(path: Path) -> np.ndarray:
    rng = np.random.default_rng(0)
    pixels = rng.normal(0.5, 2.0, (40, 64, 6)).astype(np.float32)
    pixels[3, 4, 0] = np.nan
    pixels[5, 6, 1] = np.inf
    pixels[7, 8, 2] = -np.inf
    pixels[9, 9, 0] = 60000.0
    names = ("R", "G", "B", "A", "Z", "crypto.r")
    formats = (oiio.HALF, oiio.HALF, oiio.HALF, oiio.HALF, oiio.FLOAT, oiio.FLOAT)
    write_exr(path, pixels, names, formats, attributes={"shot": "sh010", "cameraFocalLength": 35.0},
              origin=(12, 7), display=(100, 60))
    return read_exr(path)[0]


def test_round_trip_keeps_channels_formats_windows_metadata_and_bits(tmp_path: Path) -> None:
    original = _awkward_plate(tmp_path / "in.exr")
    plate = read_plate(tmp_path / "in.exr")
    assert plate.channel_names == ("R", "G", "B", "A", "Z", "crypto.r")
    write_plate_atomic(tmp_path / "out.exr", plate, plate.pixels.copy(), {"facebridge:ai_processed": 1})
    pixels, spec = read_exr(tmp_path / "out.exr")
    assert same_bits(pixels, original).all()
    assert [str(f) for f in spec.channelformats] == ["half"] * 4 + ["float"] * 2
    assert (spec.x, spec.y, spec.width, spec.height) == (12, 7, 64, 40)
    assert (spec.full_width, spec.full_height) == (100, 60)
    assert spec.get_string_attribute("shot") == "sh010"
    assert spec.get_float_attribute("cameraFocalLength") == 35.0
    assert spec.get_int_attribute("facebridge:ai_processed") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.exr", "out.exr"], "temporary file left behind"


def test_multipart_exr_parts_are_carried_through(tmp_path: Path) -> None:
    path = tmp_path / "parts.exr"
    beauty = oiio.ImageSpec(8, 6, 3, oiio.HALF)
    beauty.channelnames = ("R", "G", "B")
    beauty.attribute("name", "rgba")
    depth = oiio.ImageSpec(8, 6, 1, oiio.FLOAT)
    depth.channelnames = ("Z",)
    depth.attribute("name", "depth")
    out = oiio.ImageOutput.create(str(path))
    assert out is not None
    assert out.open(str(path), (beauty, depth))
    out.write_image(np.full((6, 8, 3), 0.25, np.float32))
    out.open(str(path), depth, "AppendSubimage")
    out.write_image(np.arange(48, dtype=np.float32).reshape(6, 8, 1))
    out.close()
    plate = read_plate(path)
    assert len(plate.extra_subimages) == 1
    write_plate_atomic(tmp_path / "o.exr", plate, plate.pixels, {})
    again = read_plate(tmp_path / "o.exr")
    assert np.array_equal(again.extra_subimages[0][1], np.arange(48, dtype=np.float32).reshape(6, 8, 1))
    assert again.extra_subimages[0][0].get_string_attribute("name") == "depth"


def test_truncated_file_is_a_decode_error(tmp_path: Path) -> None:
    _awkward_plate(tmp_path / "in.exr")
    data = (tmp_path / "in.exr").read_bytes()
    (tmp_path / "cut.exr").write_bytes(data[: len(data) // 2])
    with pytest.raises(PlateError) as info:
        read_plate(tmp_path / "cut.exr")
    assert info.value.kind == "decode"


def test_garbage_and_empty_files_are_decode_errors(tmp_path: Path) -> None:
    (tmp_path / "empty.exr").write_bytes(b"")
    (tmp_path / "junk.exr").write_bytes(b"not an image at all" * 10)
    for name in ("empty.exr", "junk.exr"):
        with pytest.raises(PlateError) as info:
            read_plate(tmp_path / name)
        assert info.value.kind == "decode"


def test_absurd_dimensions_are_refused_before_reading(tmp_path: Path) -> None:
    write_exr(tmp_path / "wide.exr", np.zeros((1, 20000, 3), np.float32), ("R", "G", "B"))
    with pytest.raises(PlateError, match="exceeds") as info:
        read_plate(tmp_path / "wide.exr", Limits(max_width=16384, max_height=16384))
    assert info.value.kind == "dimensions"


def test_missing_rgb_channels_are_named(tmp_path: Path) -> None:
    write_exr(tmp_path / "depth.exr", np.zeros((4, 4, 1), np.float32), ("Z",))
    with pytest.raises(PlateError, match="missing channel") as info:
        read_plate(tmp_path / "depth.exr").channel_index(("R", "G", "B"))
    assert info.value.kind == "channels"
    with pytest.raises(PlateError, match="missing channel") as info:
        read_rgb(tmp_path / "depth.exr")
    assert info.value.kind == "channels"


@pytest.mark.parametrize("names", [("R", "G", "B", "A", "Z", "crypto.r"), ("Y", "B", "G", "R"), ("R", "G", "B")])
def test_reading_only_rgb_gives_the_values_the_whole_read_gives_them(tmp_path: Path, names: tuple[str, ...]) -> None:
    rng = np.random.default_rng(len(names))
    pixels = rng.normal(0.5, 2.0, (37, 53, len(names))).astype(np.float32)
    pixels[3, 4, 0], pixels[5, 6, 1], pixels[7, 8, 2], pixels[9, 9, 0] = np.nan, np.inf, -0.0, 60000.0
    formats = tuple(oiio.FLOAT if n in ("Z", "crypto.r") else oiio.HALF for n in names)
    path = write_exr(tmp_path / "in.exr", pixels, names, formats, origin=(12, 7), display=(100, 60))
    whole = read_plate(path)
    rgb_index = whole.channel_index(("R", "G", "B"))
    part = read_rgb(path)
    assert part.rgb_index == tuple(rgb_index)
    assert tuple(part.spec.channelnames) == whole.channel_names and part.spec.roi == whole.spec.roi
    assert part.rgb.dtype == np.float32 and part.rgb.flags.c_contiguous and part.rgb.shape == (37, 53, 3)
    expected = np.ascontiguousarray(whole.pixels[..., rgb_index])
    assert (part.rgb.view(np.uint32) == expected.view(np.uint32)).all()
    staged = decode_rgb((path.read_bytes()[:99], path.read_bytes()[99:]), "in.exr", tmp_path)
    assert (staged.rgb.view(np.uint32) == expected.view(np.uint32)).all()
    (tmp_path / "cut.exr").write_bytes(path.read_bytes()[:-200])
    with pytest.raises(PlateError) as info:
        read_rgb(tmp_path / "cut.exr")
    assert info.value.kind == "decode"


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    _awkward_plate(tmp_path / "in.exr")
    plate = read_plate(tmp_path / "in.exr")
    with pytest.raises(PlateError):
        write_plate_atomic(tmp_path / "out.exr", plate, plate.pixels[:, :10], {})
    assert not (tmp_path / "out.exr").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.exr"]


def test_srgb_curves_are_inverse_and_hit_known_values() -> None:
    x = np.linspace(0.0, 1.0, 1001, dtype=np.float32)
    assert np.allclose(srgb_decode(srgb_encode(x)), x, atol=2e-6)
    assert srgb_encode(np.array([0.18], np.float32))[0] == pytest.approx(0.4614, abs=1e-4)
    assert np.max(np.abs(linear_to_srgb8(x[:, None]).astype(int) - to_uint8(srgb_encode(x[:, None])))) <= 1


def test_ocio_colourspace_round_trip_and_metadata_choice() -> None:
    acescg = plate_colourspace("", "ACEScg")
    assert not acescg.is_linear_rec709
    grey = np.full((2, 2, 3), 0.18, np.float32)
    encoded = acescg.to_model(grey)
    assert encoded[0, 0] == pytest.approx([0.4614] * 3, abs=2e-3)
    assert acescg.from_model(encoded)[0, 0] == pytest.approx([0.18] * 3, abs=1e-4)
    assert plate_colourspace("lin_rec709", "ACEScg").is_linear_rec709
    assert plate_colourspace("", None).is_linear_rec709
    with pytest.raises(PlateError, match="unknown colourspace"):
        ColourSpace.named("no-such-space")
