"""The client's input reads: whole files, as they are when read, into a buffer reused for the next file."""

import os
import threading
from pathlib import Path

import pytest

from facebridge.client import input_buffer
from facebridge.client.input_buffer import InputBuffers


def test_reads_whole_files_and_reuses_the_buffer(tmp_path: Path) -> None:
    big, small = tmp_path / "big.exr", tmp_path / "small.exr"
    big.write_bytes(os.urandom(300_000))
    small.write_bytes(os.urandom(1000))
    buffers = InputBuffers()
    with buffers.read(big) as data:
        assert bytes(data) == big.read_bytes()
        first = data.obj
    with buffers.read(small) as data:  # the same buffer, only the file's bytes of it
        assert data.obj is first and bytes(data) == small.read_bytes()
    with buffers.read(big) as data:  # a second read sees nothing of the first
        assert bytes(data) == big.read_bytes()


def test_a_buffer_in_use_is_not_lent_twice(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"a" * 5000)
    b.write_bytes(b"b" * 5000)
    buffers = InputBuffers()
    with buffers.read(a) as first:
        done = threading.Event()
        seen: list[bytes] = []

        def other() -> None:
            with buffers.read(b) as second:
                seen.append(bytes(second))
            done.set()

        threading.Thread(target=other).start()
        assert done.wait(10)
        assert bytes(first) == b"a" * 5000 and seen == [b"b" * 5000]


def test_large_buffers_are_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(os.urandom(5000))
    buffers = InputBuffers(keep_bytes=4096)
    with buffers.read(path) as data:
        first = data.obj
    with buffers.read(path) as data:
        assert data.obj is not first and bytes(data) == path.read_bytes()


def test_unreadable_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError), InputBuffers().read(tmp_path / "missing.exr"):
        pass


@pytest.mark.parametrize("stat_size", [10, 900_000])
def test_a_file_that_changed_size_since_its_stat_is_read_to_its_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    stat_size: int) -> None:
    path = tmp_path / "growing.exr"
    path.write_bytes(os.urandom(100_000))

    class _Stat:
        st_size = stat_size

    monkeypatch.setattr(input_buffer, "os", type("os", (), {"fstat": staticmethod(lambda fd: _Stat())}))
    with InputBuffers().read(path) as data:
        assert bytes(data) == path.read_bytes()
