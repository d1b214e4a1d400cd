"""The embedded classical enhancer (restorer without a model file): edge-aware denoise and detail enhancement."""

from __future__ import annotations

from ...restore.enhancer import ENHANCER_ID, EnhancerSettings
from ..adapters import EnhancerAdapter
from ..loading import LoadContext, Loaded
from ..registry import Choice


def load(ctx: LoadContext, choice: Choice, precision: str) -> Loaded:
    settings = EnhancerSettings()
    ident = f"{ENHANCER_ID}:{settings.key()}"
    notes: list[str] = []
    notes.append("restoration by the embedded classical enhancer (edge-aware denoise and detail enhancement, "
                 "no neural model)")
    return Loaded(choice, EnhancerAdapter(settings, ident), ident, tuple(notes))
