"""The client's input reads: files read chunk by chunk as they are sent, into a buffer reused for the next
file, and refused before their last chunk when they changed while being read."""

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from facebridge_wire.chunking import CHUNK_PREFIX_BYTES, chunk_prefix, encoded_chunk
from facebridge_wire.v1 import facebridge_pb2 as pb

from facebridge.client.input_buffer import BufferPool, InputChanged, InputFile

CHUNK = 1000


def _prefix(frame_id: int) -> Callable[[int, int], bytes]:
    return lambda offset, size: chunk_prefix(pb.ProcessFramesRequest, frame_id, offset, size)


@pytest.mark.parametrize("size", [1, 999, 1000, 1001, 12345])
def test_chunks_are_the_encoded_messages_of_the_file(tmp_path: Path, size: int) -> None:
    path = tmp_path / "plate.exr"
    data = os.urandom(size)
    path.write_bytes(data)
    buffer = bytearray(CHUNK_PREFIX_BYTES + CHUNK)
    with InputFile(path) as source:
        assert source.size == size
        messages = list(source.chunks(buffer, CHUNK_PREFIX_BYTES, CHUNK, _prefix(7)))
    expected = [encoded_chunk(pb.ProcessFramesRequest, 7, o, data[o:o + CHUNK]) for o in range(0, size, CHUNK)]
    assert messages == expected
    received = [pb.ProcessFramesRequest.FromString(m).chunk for m in messages]
    assert b"".join(c.data for c in received) == data and [c.offset for c in received] == list(range(0, size, CHUNK))


def test_an_empty_file_has_no_chunks(tmp_path: Path) -> None:
    (tmp_path / "empty.exr").write_bytes(b"")
    with InputFile(tmp_path / "empty.exr") as source:
        assert source.size == 0 and list(source.chunks(bytearray(2000), CHUNK_PREFIX_BYTES, CHUNK, _prefix(0))) == []


def test_unreadable_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        InputFile(tmp_path / "missing.exr")


def _mutations(path: Path) -> dict[str, Callable[[], None]]:
    def rewrite_same_size() -> None:
        with open(path, "r+b") as handle:
            handle.seek(500)  # inside the chunk already sent: the frame would be torn
            handle.write(b"\0" * 10)

    def grow() -> None:
        with open(path, "ab") as handle:
            handle.write(b"more")

    return {"grown": grow, "shrunk": lambda: os.truncate(path, 1500), "rewritten": rewrite_same_size}


@pytest.mark.parametrize("fresh", [True, False])
@pytest.mark.parametrize("mutation", ["grown", "shrunk", "rewritten"])
def test_a_file_changed_while_it_is_read_is_refused_before_its_last_chunk(tmp_path: Path, mutation: str,
                                                                          fresh: bool) -> None:
    """Size changes are seen by the size; a rewrite of the same size by the change time (an old file, after
    a pause longer than the timestamps' tick) or by the content read again (a fresh file, whatever the tick)."""
    path = tmp_path / "plate.exr"
    path.write_bytes(os.urandom(3500))
    if not fresh:
        time.sleep(0.05)  # the rewrite below lands in a later timestamp tick than the file's creation
    with InputFile(path, fresh_s=2.0 if fresh else 0.0) as source:
        assert source.fresh == fresh
        chunks = source.chunks(bytearray(CHUNK_PREFIX_BYTES + CHUNK), CHUNK_PREFIX_BYTES, CHUNK, _prefix(1))
        sent = [next(chunks)]
        _mutations(path)[mutation]()
        with pytest.raises(InputChanged, match="changed while it was being sent") as refused:
            sent.extend(chunks)
    assert len(sent) < 4  # the last chunk never left
    assert "\n" not in str(refused.value)


def test_a_fresh_file_rewritten_within_the_same_tick_is_caught_by_its_content(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The stat alone cannot see a same-size rewrite in the timestamps' tick: with every stat alike (as a
    coarse clock gives), the content read again still refuses the frame."""
    path = tmp_path / "plate.exr"
    path.write_bytes(os.urandom(3500))
    source = InputFile(path)
    assert source.fresh
    frozen = os.fstat(source._handle.fileno())
    monkeypatch.setattr("facebridge.client.input_buffer.os.fstat", lambda fd: frozen)
    chunks = source.chunks(bytearray(CHUNK_PREFIX_BYTES + CHUNK), CHUNK_PREFIX_BYTES, CHUNK, _prefix(1))
    next(chunks)
    _mutations(path)["rewritten"]()
    with pytest.raises(InputChanged, match="content differs"):
        list(chunks)
    source.close()


def test_an_unchanged_old_file_is_not_read_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "plate.exr"
    path.write_bytes(os.urandom(3500))
    calls: list[int] = []
    real = os.preadv

    def counted(*args: Any) -> int:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr("facebridge.client.input_buffer.os.preadv", counted)
    with InputFile(path, fresh_s=0.0) as source:
        assert not source.fresh
        assert len(list(source.chunks(bytearray(2000), CHUNK_PREFIX_BYTES, CHUNK, _prefix(0)))) == 4
    assert calls == []
    with InputFile(path) as source:  # fresh: read again (and the same)
        assert source.fresh
        assert len(list(source.chunks(bytearray(2000), CHUNK_PREFIX_BYTES, CHUNK, _prefix(0)))) == 4
    assert calls


def test_the_pool_reuses_one_buffer_and_never_lends_it_twice() -> None:
    pool = BufferPool(4096)
    with pool.lend() as first:
        pass
    with pool.lend() as again:
        assert again is first
        seen: list[bytearray] = []
        done = threading.Event()

        def other() -> None:
            with pool.lend() as buffer:
                seen.append(buffer)
            done.set()

        threading.Thread(target=other).start()
        assert done.wait(10)
        assert seen[0] is not first and len(seen[0]) == 4096
