"""Issue 15: the server runs numpy's OpenBLAS on the calling thread (its parallelism is across frames; BLAS's own
threads only spin on the cores the other frame needs), unless the environment says otherwise."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

from inference_server.server.app import one_blas_thread


def _openblas_threads() -> list[int]:
    return [int(lib["num_threads"]) for lib in ThreadpoolController().select(internal_api="openblas").info()]


@pytest.fixture()
def blas_restored() -> Iterator[None]:
    before = ThreadpoolController().select(internal_api="openblas")
    counts = _openblas_threads()
    yield
    before.limit(limits=max(counts) if counts else None)


def test_the_server_s_blas_runs_on_the_calling_thread(blas_restored: None) -> None:
    assert _openblas_threads(), "numpy is expected to carry OpenBLAS (its wheels do)"
    ThreadpoolController().select(internal_api="openblas").limit(limits=2)
    one_blas_thread({"OPENBLAS_NUM_THREADS": "2"})  # the environment's word stands
    assert _openblas_threads() == [2] * len(_openblas_threads())
    one_blas_thread({})
    assert _openblas_threads() == [1] * len(_openblas_threads())
    # the same products as before: a row's sum does not depend on how many threads share the rows
    rng = np.random.default_rng(7)
    u, w = rng.random((8192, 84)), rng.random((84, 2))
    one = u @ w
    ThreadpoolController().select(internal_api="openblas").limit(limits=2)
    assert np.array_equal(one, u @ w)
