"""One identity from several source photos: the mean of their embeddings.

With several source photos, an embedding-based swapper (inswapper and the other families that take an
identity vector) is driven by one identity for every face, frame and track of a session, so the swapped
person does not change with the pose of the photo nearest each frame. FaceFusion 3.8.1
(``facefusion/face_creator.py``, ``average_face_identity``) keeps two averages: the element-wise mean of
the *raw* embeddings (its ``embedding``, what inswapper's ``dot(raw, emap) / |raw|`` is computed from) and
the element-wise mean of the L2-normalised embeddings (its ``embedding_norm``, for the families that take
a normalised vector). Neither mean is re-normalised there; the swapper's own preparation does that.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _stacked(embeddings: Sequence[np.ndarray]) -> np.ndarray:
    """``(N, D)`` float64 of N same-length 1-D embeddings (``(D,)`` or ``(1, D)`` each); ValueError when
    there are none, their lengths differ or a value is not finite."""
    if len(embeddings) == 0:
        raise ValueError("no embeddings to average")
    rows = [np.asarray(e, np.float64).reshape(-1) for e in embeddings]
    if len({r.shape for r in rows}) != 1:
        raise ValueError(f"embeddings of different lengths: {sorted({r.size for r in rows})}")
    stacked = np.stack(rows)
    if not np.isfinite(stacked).all():
        raise ValueError("an embedding is not finite")
    return stacked


def average_embedding(embeddings: Sequence[np.ndarray]) -> np.ndarray:
    """The element-wise mean of raw embeddings (FaceFusion's averaged ``embedding``).

    Args:
        embeddings: N >= 1 raw embeddings, ``(D,)`` or ``(1, D)`` each (e.g. arcface's 512 values).
    Returns:
        ``(D,)`` float64; a single embedding comes back unchanged (as float64).
    """
    return _stacked(embeddings).mean(axis=0)


def average_normed_embedding(embeddings: Sequence[np.ndarray]) -> np.ndarray:
    """The element-wise mean of the L2-normalised embeddings (FaceFusion's averaged ``embedding_norm``);
    not re-normalised, so its length is below 1 where the photos disagree.

    Args:
        embeddings: N >= 1 raw embeddings, ``(D,)`` or ``(1, D)`` each, none of length 0.
    Returns:
        ``(D,)`` float64.
    """
    stacked = _stacked(embeddings)
    norms = np.linalg.norm(stacked, axis=1, keepdims=True)
    if (norms == 0.0).any():
        raise ValueError("an embedding has length 0")
    return (stacked / norms).mean(axis=0)


__all__ = ["average_embedding", "average_normed_embedding"]
