"""Issue 15: payloads are written as ``.npz`` files from headers and views of the arrays (store/npz_file.py)
instead of through ``np.savez`` into memory: the same ``.npy`` members, read back by ``np.load`` to the same
arrays, the file's sha256 recorded and checked as before; and the payload cache reads a checked file's stored
members as read-only views of its bytes (``stored_arrays``) instead of copying them out through ``np.load``."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from inference_server.store.npz_file import npz_pieces, pieces_size, stored_arrays
from inference_server.store.payload_cache import PayloadCache
from inference_server.store.shot_db import ShotDatabase

RNG = np.random.default_rng(15)
PAYLOADS = {
    "a plate crop": {"rgb": RNG.random((120, 90, 3), dtype=np.float32)},
    "many kinds": {"i16": np.arange(7, dtype=np.int16), "scalar": np.array(3.5), "empty": np.zeros((0, 4), np.uint8),
                   "mask": RNG.random((3, 5)) > 0.5, "half": RNG.random((5, 5)).astype(np.float16),
                   "big_endian": np.arange(6, dtype=">f4").reshape(2, 3),
                   "record": np.array([(1, 2.0)], dtype=[("x", "i4"), ("y", "f8")]),
                   "days": np.array(["2026-12-01"], dtype="datetime64[D]")},
    "Fortran order (np.savez's)": {"f": np.asfortranarray(RNG.random((4, 5)))},
    "a strided view (np.savez's)": {"s": RNG.random((6, 6))[::2, 1:]},
    "nothing": {},
}


def _file(pieces: list[bytes | memoryview]) -> bytes:
    return b"".join(bytes(piece) for piece in pieces)


def _savez(payload: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **payload)  # type: ignore[arg-type]  # (numpy's stubs: the arrays are the other keywords)
    return buffer.getvalue()


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_the_file_holds_what_np_savez_writes_and_loads_the_same(name: str) -> None:
    payload = PAYLOADS[name]
    pieces = npz_pieces(payload)
    data = _file(pieces)
    assert pieces_size(pieces) == len(data)
    ours, theirs = zipfile.ZipFile(io.BytesIO(data)), zipfile.ZipFile(io.BytesIO(_savez(payload)))
    assert ours.testzip() is None  # every member's CRC checks
    assert ours.namelist() == theirs.namelist() == [f"{k}.npy" for k in payload]
    for member in ours.namelist():
        assert ours.read(member) == theirs.read(member), member
    with np.load(io.BytesIO(data), allow_pickle=False) as loaded:
        for key, array in payload.items():
            assert loaded[key].dtype == array.dtype and loaded[key].shape == array.shape
            assert loaded[key].tobytes() == array.tobytes()


def test_the_arrays_are_viewed_not_copied_and_equal_payloads_give_equal_files() -> None:
    rgb = RNG.random((64, 64, 3), dtype=np.float32)
    pieces = npz_pieces({"rgb": rgb})
    assert any(isinstance(p, memoryview) and np.shares_memory(np.asarray(p), rgb) for p in pieces)
    assert _file(pieces) == _file(npz_pieces({"rgb": rgb.copy()}))  # (np.savez stamps the time of day)


def test_the_payload_cache_writes_it_records_its_sha256_and_reads_it_back(tmp_path: Path) -> None:
    db = ShotDatabase(tmp_path / "shots.sqlite")
    cache = PayloadCache(tmp_path / "payloads", db)
    key = hashlib.sha256(b"plate crop").hexdigest()
    payload = PAYLOADS["many kinds"]
    cache.put(key, payload)
    path = tmp_path / "payloads" / key[:2] / f"{key}.npz"
    entry = db.cache_lookup(key)
    assert entry is not None and entry.size == path.stat().st_size
    assert entry.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    fresh = PayloadCache(tmp_path / "payloads", ShotDatabase(tmp_path / "shots.sqlite"))  # from disk, not memory
    got = fresh.get(key)
    assert got is not None and list(got) == list(payload)
    for name, array in payload.items():
        assert got[name].dtype == array.dtype and got[name].tobytes() == array.tobytes()
        assert not got[name].flags.writeable  # views of the file's bytes, shared with every reader
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))  # a flipped bit: a miss, as before
    assert PayloadCache(tmp_path / "payloads", ShotDatabase(tmp_path / "shots.sqlite")).get(key) is None



@pytest.mark.parametrize("name", list(PAYLOADS))
@pytest.mark.parametrize("writer", ["ours", "np.savez"])
def test_stored_members_are_read_as_views_with_np_loads_values(name: str, writer: str) -> None:
    payload = PAYLOADS[name]
    data = _file(npz_pieces(payload)) if writer == "ours" else _savez(payload)
    arrays = stored_arrays(data)
    assert arrays is not None and list(arrays) == list(payload)
    with np.load(io.BytesIO(data), allow_pickle=False) as loaded:
        for key in payload:
            mine, theirs = arrays[key], loaded[key]
            assert mine.dtype == theirs.dtype and mine.shape == theirs.shape and mine.tobytes() == theirs.tobytes()
            assert mine.flags.f_contiguous == theirs.flags.f_contiguous and not mine.flags.writeable
            if mine.nbytes:
                assert np.shares_memory(mine, np.frombuffer(data, np.uint8))  # a view, not a copy


def test_other_files_are_left_to_np_load() -> None:
    payload = PAYLOADS["many kinds"]
    compressed = io.BytesIO()
    np.savez_compressed(compressed, **payload)  # type: ignore[arg-type]
    objects = io.BytesIO()
    np.savez(objects, o=np.array([{"x": 1}], dtype=object))
    data = _file(npz_pieces(payload))
    for other in (compressed.getvalue(), objects.getvalue(), b"", b"not a zip", data[: len(data) // 2]):
        assert stored_arrays(other) is None
    npy = io.BytesIO()
    np.save(npy, np.arange(3))
    clash = io.BytesIO()  # two members of one name
    with zipfile.ZipFile(clash, "w") as archive, pytest.warns(UserWarning, match="Duplicate name"):
        archive.writestr("a.npy", npy.getvalue())
        archive.writestr("a.npy", npy.getvalue())
    assert stored_arrays(clash.getvalue()) is None
