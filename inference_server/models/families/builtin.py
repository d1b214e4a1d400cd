"""Embedded defaults that need no loaded object: the classical swap and the landmark-polygon parser (their
stages run code, not a model)."""

from __future__ import annotations

from ..loading import LoadContext, Loaded, model_id
from ..registry import Choice


def load(ctx: LoadContext, choice: Choice, precision: str) -> Loaded:
    return Loaded(choice, None, model_id(choice))
