"""The loaded-model adapters behind the model stages: what they remember between frames and sessions."""

from __future__ import annotations

import numpy as np
import onnx_fixtures as fx
import pytest

from inference_server.faces.sources import SourceFace
from inference_server.models import adapters
from inference_server.models.adapters import InswapperAdapter
from inference_server.models.onnx_swapper import InswapperSwapper, prepare_inswapper_source


@pytest.fixture(scope="module")
def swapper(tmp_path_factory: pytest.TempPathFactory) -> InswapperSwapper:
    """A small synthetic inswapper file (the real one's inputs and emap layout)."""
    return InswapperSwapper(fx.make_inswapper(tmp_path_factory.mktemp("inswapper")), "cpu")


def _arrays(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"image": rng.random((40, 40, 3), dtype=np.float32),
            "landmarks": rng.random((68, 2), dtype=np.float32) * 40, "embedding": rng.normal(size=128)}


def _source(arrays: dict[str, np.ndarray], label: str = "photo") -> SourceFace:
    return SourceFace(image=arrays["image"], landmarks=arrays["landmarks"], embedding=arrays["embedding"],
                      pose=(0.0, 0.0, 0.0), label=label)


def _adapter(swapper: InswapperSwapper) -> InswapperAdapter:
    """An inswapper adapter without arcface (the unverified stand-in: dlib identities), shared by sessions."""
    return InswapperAdapter(swapper, None, "inswapper+dlib-stand-in")


def _expected(adapter: InswapperAdapter, source: SourceFace) -> np.ndarray:
    """The stand-in source vector: the dlib identity repeated to 512 values, through the emap."""
    return prepare_inswapper_source(np.tile(np.asarray(source.embedding, np.float32), 4), adapter.swapper.emap)


def test_a_source_with_a_reused_id_gets_its_own_vector(swapper: InswapperSwapper,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Two different sources whose objects have the same id (as a closed session's source and the next
    session's may): the second gets its own identity, not the first one's."""
    monkeypatch.setattr(adapters, "id", lambda obj: 4096, raising=False)  # every object "at one address"
    adapter = _adapter(swapper)
    first, second = _source(_arrays(1)), _source(_arrays(2))
    old = adapter.source_vector(first)
    new = adapter.source_vector(second)
    np.testing.assert_array_equal(old, _expected(adapter, first))
    np.testing.assert_array_equal(new, _expected(adapter, second))
    assert not np.array_equal(new, old)


def test_a_closed_sessions_source_does_not_leak_into_the_next_session(swapper: InswapperSwapper) -> None:
    """The same with real object ids: a session's source is freed when it closes, and CPython hands its
    memory (hence its id) to the next object of that size, such as the next session's source."""
    adapter = _adapter(swapper)
    reused = False
    for seed in range(1, 200):
        first = _source(_arrays(seed))
        old = adapter.source_vector(first)
        arrays = _arrays(seed + 1000)  # the next session's photo, decoded before its SourceFace is made
        freed = id(first)
        del first  # the session closes
        second = _source(arrays)
        np.testing.assert_array_equal(adapter.source_vector(second), _expected(adapter, second))
        assert not np.array_equal(adapter.source_vector(second), old)
        if id(second) == freed:
            reused = True
            break
    assert reused, "no id was reused: this test did not reach the case it is about"


def test_equal_sources_share_one_vector(swapper: InswapperSwapper) -> None:
    adapter = _adapter(swapper)
    a, b = _source(_arrays(7), "a"), _source(_arrays(7), "b")
    assert adapter.source_vector(a) is adapter.source_vector(b)
