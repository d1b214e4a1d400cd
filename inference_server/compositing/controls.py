"""The artist's compositing controls: blend, region weights, feather, erode, grain and colour match.

They apply after the model stage, from its cached output, and are never part of a model-output cache key.
Lengths (feather, erode) are fractions of the face size (longest side of its landmark box).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from facebridge import schema

from .regions import REGION_NAMES

COLOUR_MATCH_MODES = schema.COLOUR_MATCH
_SCALARS = ("blend", "feather", "erode", "grain", "colour_match")


@dataclass(frozen=True)
class CompositeControls:
    """Artist controls applied at composite time (never part of the model-output cache key).

    Attributes:
        blend: overall strength 0..1.
        regions: ``(name, weight)`` pairs, weights 0..1, names from :data:`REGION_NAMES`; missing
            names weigh 1.
        feather: extra softening of the mask edge, x face size (0 = the model's own edge).
        erode: > 0 shrinks, < 0 grows the mask, x face size; never beyond the model's allowed zone.
        grain: 0..1, how much of the plate's own fine detail (film grain, skin texture) replaces the
            swapped face's.
        colour_match: ``none`` | ``mean-std`` | ``histogram``, all in linear light.
    """

    blend: float = 1.0
    regions: tuple[tuple[str, float], ...] = ()
    feather: float = 0.0
    erode: float = 0.0
    grain: float = 0.0
    colour_match: str = "mean-std"

    def validated(self) -> "CompositeControls":
        """A normalised copy (plain floats, regions in :data:`REGION_NAMES` order), checked against the settings
        schema (``facebridge.schema``: the bounds and messages the CLI, the knobs and the session use);
        ValueError with a one-line message for a bad name or value."""
        try:
            pairs = [tuple(p) for p in self.regions]
        except TypeError:
            raise ValueError(f"setting 'regions' must be (name, weight) pairs, got {self.regions!r}") from None
        for pair in pairs:
            if len(pair) != 2:
                raise ValueError(f"setting 'regions' must be (name, weight) pairs, got {pair!r}")
        names = [name for name, _ in pairs]
        twice = sorted({str(n) for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"setting 'regions' names {', '.join(twice)} more than once")
        checked = {name: schema.check(name, getattr(self, name)) for name in _SCALARS}
        regions = schema.check("regions", {name: weight for name, weight in pairs})
        return replace(self, regions=tuple(regions.items()), **checked)

    def region_weights(self) -> dict[str, float]:
        """Weight of every region (1.0 for the ones not given)."""
        given = dict(self.regions)
        return {n: float(given.get(n, 1.0)) for n in REGION_NAMES}


def colour_stage_key(controls: CompositeControls) -> tuple[str, float, float]:
    """The controls a colour-matched face depends on (colour match, and feather and erode through the edge
    correction); blend, region weights and grain are applied after it."""
    c = controls.validated()
    return (c.colour_match, c.feather, c.erode)
