"""The FaceBridge knob set, derived from the settings schema, and its mapping to the settings.

Knob names are what a Nuke node stores in the ``.nk`` and what the Resolve dialog edits: the setting's
name, and one knob per region weight (``region_eyes`` ...). A region at weight 1 is left out of
``regions`` (the server weighs missing regions 1), so ``settings -> knobs -> settings`` is the identity.
Bounds, choices, defaults and messages are the schema's (``facebridge.schema``): a knob refuses what the
CLI and the server refuse, with the same one-line message. Standard library only.
"""

from collections import OrderedDict
from typing import Any, Dict, Mapping, NamedTuple, Optional, Tuple

from facebridge import schema
from facebridge.schema import MODES, REGION_NAMES, SettingError

SettingsError = SettingError
"""What every knob, preset and sidecar check raises (the schema's error)."""

PARAM_DEFAULTS = OrderedDict(schema.defaults())
"""Setting name -> default, in the schema's order."""


class KnobSpec(NamedTuple):
    """One artist-facing control.

    Attributes:
        name: knob name (Nuke knob / Resolve dialog key), stable: it is saved in scripts.
        field: the setting it sets (``regions`` for the region weights).
        kind: ``enum`` | ``float`` | ``int`` | ``bool`` | ``string`` (the face is a string knob).
        label: what the artist reads.
        default: value of a fresh node.
        choices: the values of an ``enum``.
        lo, hi: the slider's range (Nuke's ``setRange``; the schema's bounds are checked on use).
        tooltip: one line of help.
        region: the region name of a region weight knob.
    """

    name: str
    field: str
    kind: str
    label: str
    default: object
    choices: Tuple[str, ...] = ()
    lo: Optional[float] = None
    hi: Optional[float] = None
    tooltip: str = ""
    region: str = ""


def _knobs(setting: schema.Setting) -> Tuple[KnobSpec, ...]:
    if setting.kind == "regions":
        lo, hi = schema.REGION_WEIGHT_RANGE
        return tuple(KnobSpec(schema.REGION_KNOB_PREFIX + region, setting.name, "float", region, 1.0, lo=lo, hi=hi,
                              tooltip="weight of the %s region, 0..1 (1 = fully processed)" % region, region=region)
                     for region in REGION_NAMES)
    kind = "string" if setting.kind == "face" else setting.kind
    spec = KnobSpec(setting.name, setting.name, kind, setting.label, setting.default, setting.choices,
                    tooltip=setting.tooltip)
    if kind in ("float", "int"):
        spec = spec._replace(lo=setting.slider_range[0], hi=setting.slider_range[1])
    return (spec,)


PARAM_KNOBS = tuple(knob for setting in schema.SETTINGS for knob in _knobs(setting))
KNOBS_BY_NAME = OrderedDict((k.name, k) for k in PARAM_KNOBS)


def params_from_knobs(values: Mapping[str, object]) -> Dict[str, Any]:
    """Settings (a plain dict, every one) from knob values; missing knobs take their default.

    Raises:
        SettingsError: a value of the wrong type or out of range, named as the schema names it.
    """
    settings: Dict[str, Any] = {}
    regions: Dict[str, object] = {}
    for spec in PARAM_KNOBS:
        value = values.get(spec.name, spec.default)
        if spec.region:
            regions[spec.region] = value
        else:
            settings[spec.field] = value
    checked = schema.check("regions", regions)
    settings["regions"] = dict((name, weight) for name, weight in checked.items() if weight != 1.0)
    return schema.check_values(settings)


def knobs_from_params(params: Mapping[str, object]) -> Dict[str, Any]:
    """Knob values from settings (missing ones take their default).

    Raises:
        SettingsError: an unknown setting or region, or a bad value.
    """
    checked = schema.check_values(params)
    values: Dict[str, Any] = OrderedDict()
    for spec in PARAM_KNOBS:
        values[spec.name] = checked["regions"].get(spec.region, 1.0) if spec.region else checked[spec.field]
    return dict(values)


def validate_params(params: Mapping[str, object]) -> Dict[str, Any]:
    """A checked, normalised copy of the settings (the round trip through the knobs)."""
    return params_from_knobs(knobs_from_params(params))


needs_source = schema.needs_source
format_regions = schema.format_regions

__all__ = ["KNOBS_BY_NAME", "KnobSpec", "MODES", "PARAM_DEFAULTS", "PARAM_KNOBS", "REGION_NAMES", "SettingsError",
           "format_regions", "knobs_from_params", "needs_source", "params_from_knobs", "validate_params"]
