"""The artist's compositing controls: blend, region weights, feather, erode, grain and colour match.

They apply after the model stage, from its cached output, and are never part of a model-output cache key.
Lengths (feather, erode) are fractions of the face size (longest side of its landmark box).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import SupportsFloat, SupportsIndex

from .regions import REGION_NAMES

COLOUR_MATCH_MODES = ("none", "mean-std", "histogram")
_MAX_EDGE_SHIFT = 0.5    # |erode| limit, x face size
_MAX_FEATHER = 1.0       # feather limit, x face size


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
        """A normalised copy (plain floats, regions in :data:`REGION_NAMES` order); ValueError with a
        one-line message for a bad name or value."""

        def number(name: str, value: object, lo: float, hi: float) -> float:
            try:
                if not isinstance(value, (str, bytes, bytearray, SupportsFloat, SupportsIndex)):
                    raise TypeError  # what float() would refuse
                v = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a number, got {value!r}") from None
            if not math.isfinite(v) or not lo <= v <= hi:
                raise ValueError(f"{name} must be in [{lo:g}, {hi:g}], got {value!r}")
            return v

        blend = number("blend", self.blend, 0.0, 1.0)
        feather = number("feather", self.feather, 0.0, _MAX_FEATHER)
        erode = number("erode", self.erode, -_MAX_EDGE_SHIFT, _MAX_EDGE_SHIFT)
        grain = number("grain", self.grain, 0.0, 1.0)
        if self.colour_match not in COLOUR_MATCH_MODES:
            raise ValueError(f"colour_match must be one of {', '.join(COLOUR_MATCH_MODES)}, got {self.colour_match!r}")
        seen: dict[str, float] = {}
        try:
            pairs = [tuple(p) for p in self.regions]
        except TypeError:
            raise ValueError(f"regions must be (name, weight) pairs, got {self.regions!r}") from None
        for pair in pairs:
            if len(pair) != 2:
                raise ValueError(f"regions must be (name, weight) pairs, got {pair!r}")
            name, weight = pair
            if name not in REGION_NAMES:
                raise ValueError(f"unknown region {name!r}; regions are {', '.join(REGION_NAMES)}")
            if name in seen:
                raise ValueError(f"region {name!r} given twice")
            seen[name] = number(f"region {name}", weight, 0.0, 1.0)
        regions = tuple((n, seen[n]) for n in REGION_NAMES if n in seen)
        return replace(self, blend=blend, feather=feather, erode=erode, grain=grain, regions=regions)

    def region_weights(self) -> dict[str, float]:
        """Weight of every region (1.0 for the ones not given)."""
        given = dict(self.regions)
        return {n: float(given.get(n, 1.0)) for n in REGION_NAMES}


def colour_stage_key(controls: CompositeControls) -> tuple[str, float, float]:
    """The controls a colour-matched face depends on (colour match, and feather and erode through the edge
    correction); blend, region weights and grain are applied after it."""
    c = controls.validated()
    return (c.colour_match, c.feather, c.erode)
