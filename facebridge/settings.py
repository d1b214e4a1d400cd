"""``RenderParams``: the settings of ``facebridge.schema`` as one typed, immutable value.

The client (CLI, presets, panel) and the server (its session parameters extend this class) share it, so
each setting's field is written once here and checked against the schema by ``tests/test_schema.py``;
defaults, validation and normalisation all come from the schema. Standard library only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping, TypeVar

from . import schema

P = TypeVar("P", bound="RenderParams")


def _default(name: str) -> Any:
    return schema.BY_NAME[name].default


@dataclass(frozen=True)
class RenderParams:
    """Everything an artist sets for a render (the knobs of a FaceBridge node), in schema order."""

    mode: str = _default("mode")
    face: str = _default("face")
    blend: float = _default("blend")
    regions: dict[str, float] = field(default_factory=dict)
    grain: float = _default("grain")
    feather: float = _default("feather")
    erode: float = _default("erode")
    colour_match: str = _default("colour_match")
    smoothing: float = _default("smoothing")
    stabilise: float = _default("stabilise")
    flow_threshold: float = _default("flow_threshold")
    keyframe_interval: int = _default("keyframe_interval")
    detector: str = _default("detector")
    landmarker: str = _default("landmarker")
    min_face: float = _default("min_face")
    colorspace: str = _default("colorspace")
    swapper: str = _default("swapper")
    restorer: str = _default("restorer")
    parser: str = _default("parser")
    occluder: str = _default("occluder")
    paste: str = _default("paste")
    pixel_boost: int = _default("pixel_boost")
    restore_weight: float = _default("restore_weight")
    precision: str = _default("precision")
    allow_unverified: bool = _default("allow_unverified")

    def settings(self) -> dict[str, Any]:
        """The schema's settings (name -> value), without any field a subclass adds."""
        return {name: getattr(self, name) for name in schema.NAMES}

    def validated(self: P) -> P:
        """A checked, normalised copy (SettingError naming the setting otherwise)."""
        return replace(self, **schema.check_values(self.settings()))

    def with_overrides(self: P, overrides: Mapping[str, Any]) -> P:
        """This with the given settings replaced (None values ignored; regions merge by name), checked."""
        values = {k: v for k, v in overrides.items() if v is not None}
        if "regions" in values:
            values["regions"] = {**self.regions, **schema.check("regions", values["regions"])}
        return replace(self, **schema.check_values({**self.settings(), **values}))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def needs_source(self) -> bool:
        """The mode swaps faces, so at least one source image is needed."""
        return schema.needs_source(self.settings())


def render_params(values: Mapping[str, Any], origin: str = "") -> RenderParams:
    """RenderParams from setting values (a preset's fields, knob values); missing ones take their default.

    Raises:
        SettingError: an unknown setting or a bad value (``origin`` prefixes the message).
    """
    return RenderParams(**schema.check_values(values, origin))

