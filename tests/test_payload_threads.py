"""Payloads decoded from many threads at once (the render's frames in flight, the analysis's readers) never fail
with CPython 3.11's "AST constructor recursion depth mismatch": numpy parses each .npy header with
ast.literal_eval, whose AST conversion keeps one recursion counter per interpreter. The failure needs the GIL to
pass between threads inside that conversion, which a garbage collection running Python finalisers does; the
test makes that frequent (a 1 us switch interval, finalisers in cycles) and shows it happens to numpy's reader
itself here, then that the payload cache's decoder survives the same load."""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from inference_server.store.npz_file import npz_pieces
from inference_server.store.payload_cache import _decode


class _Finalised:
    """An object whose finaliser runs Python code (where the GIL can change hands)."""

    def __del__(self) -> None:
        sum(range(50))


@pytest.fixture()
def fast_switching() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def _hammer(decode: Callable[[bytes], object], data: bytes, threads: int = 4, rounds: int = 1500) -> list[str]:
    errors: list[str] = []

    def work() -> None:
        for _ in range(rounds):
            try:
                decode(data)
            except SystemError as exc:
                errors.append(str(exc))
                return
            for _ in range(10):
                _Finalised()
            cycle: list[object] = [_Finalised() for _ in range(5)]
            cycle.append(cycle)  # collected by the garbage collector, finalisers and all

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return errors


def test_payloads_decode_from_many_threads_at_once(fast_switching: None) -> None:
    payload: dict[str, np.ndarray] = {"rgb_half": np.arange(60, dtype=np.float16).reshape(4, 5, 3),
                                      "flags": np.ones(7, np.uint8)}
    data = b"".join(bytes(piece) for piece in npz_pieces(payload))

    def numpy_reads(raw: bytes) -> dict[str, np.ndarray]:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}

    if not _hammer(numpy_reads, data):  # (CPython versions without the shared counter, or a machine too calm)
        pytest.skip("numpy's own reader did not fail under this load here, so the decoder's survival would prove "
                    "nothing")
    assert _hammer(_decode, data) == []
    decoded = _decode(data)
    assert set(decoded) == set(payload) and all(np.array_equal(decoded[k], payload[k]) for k in payload)
