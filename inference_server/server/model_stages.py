"""The model stage of a session: its mode and model choices resolved against the server's model pool."""

from __future__ import annotations

from ..models.errors import ModelError
from ..models.pool import Loaded, ModelPool
from ..pipeline.stages import (AlignedSwapper, AlignedSwapStage, ClassicalSwapStage, FaceParser, Restorer,
                               RestoreStage, Stage)
from ..swap import ALGORITHM_ID, SwapParams
from .errors import ModelUnavailable
from .sessions import SessionParams


def _adapter(loaded: Loaded | None) -> object | None:
    return loaded.adapter if loaded is not None else None


def choose_stage(pool: ModelPool, params: SessionParams) -> tuple[Stage, tuple[str, ...]]:
    """The model stage for the session's mode and model choices (loaded from ``pool``, shared by every
    session asking for the same model), and notes about the models chosen.

    Raises:
        ModelUnavailable: a chosen model is missing, does not verify or cannot be loaded (one line).
    """
    try:
        restorer = swapper = parser = None
        if params.parser.strip().lower() != "none":
            parser = pool.load("parser", params.parser, params.allow_unverified)
        if "restore" in params.mode:
            restorer = pool.load("restorer", params.restorer, params.allow_unverified, params.precision)
        if "swap" in params.mode:
            swapper = pool.load("swapper", params.swapper, params.allow_unverified, params.precision)
    except (ModelError, ValueError, OSError) as exc:
        raise ModelUnavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    notes = tuple(n for loaded in (swapper, restorer, parser) if loaded is not None for n in loaded.notes)
    restore = _adapter(restorer)
    labels = _adapter(parser)
    assert restore is None or isinstance(restore, Restorer)
    assert labels is None or isinstance(labels, FaceParser)
    if swapper is None:
        assert restore is not None
        return RestoreStage(restore, labels), notes
    if swapper.adapter is None:
        return ClassicalSwapStage(SwapParams(), ALGORITHM_ID, restore, labels), notes
    assert isinstance(swapper.adapter, AlignedSwapper)
    return AlignedSwapStage(swapper.adapter, restore, labels), notes
