"""Issue 15: the plate's content hash (the key of its analysis and of every cached model output) is gathered and
hashed a block of rows at a time; it must stay the sha256 of the whole interleaved R, G, B float32 copy, or every
existing shot database and cache would stop matching its plates. What a file decodes to (the content hash among it)
is recorded in the shot database by the file's sha256, and believed only where it describes the plate in hand."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from inference_server.plates.image_file import DECODER, Limits, Plate, RgbPlate
from inference_server.server.frame_io import (
    HASH_ROWS,
    FrameLoader,
    PlateFacts,
    content_hash,
)
from inference_server.store.shot_db import ShotDatabase


@pytest.mark.parametrize(("shape", "rgb_index"), [
    ((1080, 1920, 4), [0, 1, 2]),              # RGBA plate
    ((HASH_ROWS * 3, 17, 3), [2, 1, 0]),       # rows a multiple of the block, channels reordered
    ((HASH_ROWS * 2 + 1, 5, 5), [4, 0, 2]),    # one row past a block, channels among others
    ((HASH_ROWS + 3, 7, 6), [2, 3, 4]),        # in order after other channels (gathered as a slice)
    ((1, 1, 3), [0, 1, 2]),
])
def test_the_content_hash_is_the_sha256_of_the_whole_interleaved_rgb(shape: tuple[int, int, int],
                                                                     rgb_index: list[int]) -> None:
    pixels = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)
    pixels.flat[::97] = np.nan  # NaN and infinities are hashed as their bits, like any value
    pixels.flat[::89] = np.inf
    whole = np.ascontiguousarray(pixels[..., rgb_index], np.float32)
    assert content_hash(pixels, rgb_index) == hashlib.sha256(whole.tobytes()).hexdigest()
    # a strided view (a crop of a bigger plate) hashes its own values
    view = pixels[:, ::2]
    assert content_hash(view, rgb_index) == hashlib.sha256(
        np.ascontiguousarray(view[..., rgb_index], np.float32).tobytes()).hexdigest()


def test_the_facts_recorded_for_a_file_read_back_as_written_and_anything_else_reads_as_unknown() -> None:
    facts = PlateFacts("ab" * 32, (2, 0, 1), "ACES - ACEScg", (1080, 1920))
    assert PlateFacts.from_text(facts.to_text()) == facts
    for text in ("", "not json", "[]", '{"content_hash": "x"}', facts.to_text().replace("1080", '"tall"')):
        assert PlateFacts.from_text(text) is None, text


def test_recorded_facts_that_do_not_describe_the_decoded_plate_are_computed_and_recorded_again(
        tmp_path: Path) -> None:
    """A row of the shot database that does not fit the plate in hand (another size, channels or colour space:
    damaged, or written by something else) is not believed: the content hash is computed from the pixels."""
    plate = Plate(np.arange(4 * 6 * 4, dtype=np.float32).reshape(4, 6, 4), _spec(6, 4, ("R", "G", "B", "A")), "openexr")
    db = ShotDatabase(tmp_path / "shots.sqlite")
    truth = PlateFacts(content_hash(plate.pixels, [0, 1, 2]), (0, 1, 2), "", (4, 6))
    for wrong in (replace(truth, content_hash="0" * 64, size=(6, 4)), replace(truth, rgb_index=(2, 1, 0)),
                  replace(truth, content_hash="0" * 64, colorspace="ACEScg")):
        db.remember_plate_file("d", DECODER, wrong.to_text())
        loader = FrameLoader(tmp_path, Limits(), 0, files=db)  # a new server: nothing in memory
        assert loader.known_facts("d") == wrong
        assert loader.facts(plate, "d") == truth
        assert PlateFacts.from_text(db.plate_file_facts("d", DECODER) or "") == truth
    # facts that fit are believed as recorded (the content hash is not computed again)
    db.remember_plate_file("d", DECODER, replace(truth, content_hash="1" * 64).to_text())
    assert FrameLoader(tmp_path, Limits(), 0, files=db).content_hash(plate, "d") == "1" * 64


@pytest.mark.parametrize("channels", [("R", "G", "B", "A"), ("Z", "R", "G", "B")])
def test_the_facts_of_a_plates_rgb_alone_are_those_of_the_whole_plate(tmp_path: Path,
                                                                       channels: tuple[str, ...]) -> None:
    """The analysis decodes only R, G, B: what it records for a file must be what a render decoding every channel
    finds (the same content hash, R, G, B's indices among all the channels, size, colour space), or the render would
    not believe it and the two would record over each other."""
    pixels = np.random.default_rng(1).standard_normal((5, 7, 4)).astype(np.float32)
    spec = _spec(7, 5, channels)
    spec.attribute("oiio:ColorSpace", "ACEScg")
    plate = Plate(pixels, spec, "openexr")
    rgb_index = plate.channel_index(("R", "G", "B"))
    rgb = RgbPlate(np.ascontiguousarray(pixels[..., rgb_index]), spec, (rgb_index[0], rgb_index[1], rgb_index[2]))
    whole = FrameLoader(tmp_path, Limits(), 0).facts(plate, "")
    assert FrameLoader(tmp_path, Limits(), 0).facts(rgb, "") == whole
    assert whole.rgb_index == tuple(rgb_index) and whole.colorspace == "ACEScg" and whole.size == (5, 7)
    db = ShotDatabase(tmp_path / "shots.sqlite")
    assert FrameLoader(tmp_path, Limits(), 0, files=db).facts(rgb, "d") == whole  # recorded by the analysis ...
    # ... and believed by a render of the same file in a new server (not computed: these pixels would hash otherwise)
    other = Plate(pixels + 1.0, spec, "openexr")
    assert FrameLoader(tmp_path, Limits(), 0, files=db).facts(other, "d") == whole
    assert FrameLoader(tmp_path, Limits(), 0).facts(other, "") != whole


def _spec(width: int, height: int, channels: tuple[str, ...]) -> oiio.ImageSpec:
    spec = oiio.ImageSpec(width, height, len(channels), oiio.HALF)
    spec.channelnames = channels
    return spec
