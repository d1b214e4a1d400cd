"""The client's result files: written on a helper thread in order, committed or discarded whole, with their
disk space reserved up front where the filesystem does it."""

import os
import sys
from pathlib import Path

import pytest

from facebridge.client.result_writer import QueuedWriter
from facebridge.files import AtomicFile, reserve


def test_pieces_are_written_in_order_and_committed(tmp_path: Path) -> None:
    target = tmp_path / "out.exr"
    target.write_bytes(b"previous")
    received = os.urandom(50_000)
    pieces = [memoryview(received)[o:o + 700] for o in range(0, len(received), 700)]
    writer = QueuedWriter(AtomicFile(target, size=len(received)), queued=2)
    for piece in pieces:
        writer.write(piece)
    assert target.read_bytes() == b"previous"  # nothing at the path before the commit
    writer.finish()
    assert target.read_bytes() == received
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.exr"]


def test_an_abandoned_result_leaves_the_path_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "out.exr"
    target.write_bytes(b"previous")
    writer = QueuedWriter(AtomicFile(target, size=1000))
    writer.write(b"half")
    writer.abandon()
    assert target.read_bytes() == b"previous" and sorted(p.name for p in tmp_path.iterdir()) == ["out.exr"]


def test_a_write_error_is_raised_at_the_end_and_nothing_is_left(tmp_path: Path) -> None:
    target = tmp_path / "out.exr"
    file = AtomicFile(target)
    calls: list[int] = []

    def failing(data: object) -> None:
        calls.append(1)
        raise OSError(28, "No space left on device")

    file.write = failing  # type: ignore[method-assign]  # a full disk, on the writer's thread
    writer = QueuedWriter(file)
    for _ in range(5):
        writer.write(b"x" * 100)
    with pytest.raises(OSError, match="No space left"):
        writer.finish()
    assert calls == [1]  # the writing stopped at the first error
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fallocate(2) is Linux's")
def test_reserve_keeps_the_size_and_the_content(tmp_path: Path) -> None:
    path = tmp_path / "reserved"
    with open(path, "wb") as handle:
        assert reserve(handle.fileno(), 5_000_000)  # ext4, xfs, btrfs, tmpfs all do it natively
        assert os.fstat(handle.fileno()).st_size == 0
        assert os.fstat(handle.fileno()).st_blocks * 512 >= 5_000_000
        handle.write(b"abc")
    assert path.read_bytes() == b"abc"
    with open(os.devnull, "wb") as null:
        assert not reserve(null.fileno(), 100)  # refused: nothing, no error
