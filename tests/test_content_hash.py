"""Issue 15: the plate's content hash (the key of its analysis and of every cached model output) is gathered and
hashed a block of rows at a time; it must stay the sha256 of the whole interleaved R, G, B float32 copy, or every
existing shot database and cache would stop matching its plates."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from inference_server.server.frame_io import HASH_ROWS, PlateFacts, content_hash


@pytest.mark.parametrize(("shape", "rgb_index"), [
    ((1080, 1920, 4), [0, 1, 2]),              # RGBA plate
    ((HASH_ROWS * 3, 17, 3), [2, 1, 0]),       # rows a multiple of the block, channels reordered
    ((HASH_ROWS * 2 + 1, 5, 5), [4, 0, 2]),    # one row past a block, channels among others
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
