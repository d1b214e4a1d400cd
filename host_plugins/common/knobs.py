"""The FaceBridge knob set and its mapping to the render parameters.

The parameters are the fields of ``facebridge.client.params.RenderParams`` (the CLI, presets and the
panel share them). That module imports protobuf, which must never load inside a host, so the field
names and defaults are mirrored here; ``tests/test_host_common.py`` checks the mirror against the
dataclass so the two cannot drift apart.

Knob names are what a Nuke node stores in the ``.nk`` and what the Resolve dialog edits. Region weights
are one knob per region (``region_eyes`` ...); a region at weight 1 is left out of ``regions`` because
the server weighs missing regions 1, so ``params -> knobs -> params`` is the identity.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Dict, Mapping, NamedTuple, Optional, Tuple

MODES = ("swap", "restore", "swap+restore")
COLOUR_MATCH = ("none", "mean-std", "histogram")
PRECISIONS = ("fp32", "fp16", "bf16")
REGION_NAMES = ("eyes", "brows", "nose", "mouth", "cheeks", "forehead", "jaw", "skin")
SWAP_MODES = ("swap", "swap+restore")

# Mirror of RenderParams' defaults (field name -> default), in the dataclass' order.
PARAM_DEFAULTS = OrderedDict([
    ("mode", "swap"),
    ("blend", 1.0),
    ("regions", {}),
    ("feather", 0.0),
    ("erode", 0.0),
    ("grain", 0.0),
    ("colour_match", "mean-std"),
    ("smoothing", 2.0),
    ("keyframe_interval", 8),
    ("face", "all"),
    ("colorspace", ""),
    ("stabilise", 1.0),
    ("flow_threshold", 0.04),
    ("swapper", ""),
    ("restorer", ""),
    ("parser", ""),
    ("allow_unverified", False),
    ("precision", "fp32"),
])


class SettingsError(ValueError):
    """A knob or preset value that cannot be used; the message names the knob."""


class KnobSpec(NamedTuple):
    """One artist-facing control.

    Attributes:
        name: knob name (Nuke knob / Resolve dialog key), stable: it is saved in scripts.
        field: the RenderParams field it sets (``regions`` for the region weights).
        kind: ``enum`` | ``float`` | ``int`` | ``bool`` | ``string``.
        label: what the artist reads.
        default: value of a fresh node (the RenderParams default).
        choices: the values of an ``enum``.
        lo, hi: inclusive bounds of a number (None = open).
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


def _region_knob(region: str) -> KnobSpec:
    return KnobSpec("region_" + region, "regions", "float", region, 1.0, lo=0.0, hi=1.0,
                    tooltip="weight of the " + region + " region, 0..1 (1 = fully processed)", region=region)


PARAM_KNOBS = (
    KnobSpec("mode", "mode", "enum", "mode", "swap", MODES,
             tooltip="swap faces with the source, restore them, or both"),
    KnobSpec("face", "face", "string", "faces", "all",
             tooltip="which faces: all, track:N (one track), or ref:IMAGE (the track nearest that identity)"),
    KnobSpec("blend", "blend", "float", "blend", 1.0, lo=0.0, hi=1.0, tooltip="overall strength 0..1"),
) + tuple(_region_knob(r) for r in REGION_NAMES) + (
    KnobSpec("grain", "grain", "float", "grain retention", 0.0, lo=0.0, hi=1.0,
             tooltip="how much of the plate's own grain and skin texture is kept, 0..1"),
    KnobSpec("smoothing", "smoothing", "float", "smoothing", 2.0, lo=0.0, hi=50.0,
             tooltip="landmark smoothing over each whole track, sigma in frames (0 = off)"),
    KnobSpec("keyframe_interval", "keyframe_interval", "int", "keyframe interval", 8, lo=1, hi=1000,
             tooltip="detect faces every N frames and track in between"),
    KnobSpec("feather", "feather", "float", "feather", 0.0, lo=0.0, hi=1.0,
             tooltip="extra mask softening, fraction of the face size"),
    KnobSpec("erode", "erode", "float", "erode", 0.0, lo=-0.5, hi=0.5,
             tooltip="shrink (>0) or grow (<0) the mask, fraction of the face size"),
    KnobSpec("colour_match", "colour_match", "enum", "colour match", "mean-std", COLOUR_MATCH,
             tooltip="colour match of the face in linear light"),
    KnobSpec("stabilise", "stabilise", "float", "stabilise", 1.0, lo=0.0, hi=10.0,
             tooltip="temporal stabilisation along the plate's optical flow, weight per neighbour (0 = off)"),
    KnobSpec("flow_threshold", "flow_threshold", "float", "flow threshold", 0.04, lo=0.0, hi=1.0,
             tooltip="grey difference up to which the plate's flow is trusted"),
    KnobSpec("colorspace", "colorspace", "string", "plate colourspace", "",
             tooltip="OCIO name of the plate's colourspace; empty = the file's metadata, else linear Rec.709"),
    KnobSpec("swapper", "swapper", "string", "swap model", "",
             tooltip="registry name or file on the server; empty = best verified model, else the classical swap"),
    KnobSpec("restorer", "restorer", "string", "restore model", "",
             tooltip="registry name or file on the server, e.g. gpen_bfr_512; empty = best verified one"),
    KnobSpec("parser", "parser", "string", "face parser", "",
             tooltip="registry name or file, or 'none' for landmark masks only; empty = best verified one"),
    KnobSpec("precision", "precision", "enum", "precision", "fp32", PRECISIONS,
             tooltip="numeric precision of neural models"),
    KnobSpec("allow_unverified", "allow_unverified", "bool", "allow unverified models", False,
             tooltip="use model files whose sha256 differs from the registry's (the report says so)"),
)

KNOBS_BY_NAME = OrderedDict((k.name, k) for k in PARAM_KNOBS)


def _coerce(spec: KnobSpec, value: object) -> object:
    """``value`` as the knob's type, checked against its choices and bounds."""
    label = "'" + spec.label + "'"
    if spec.kind == "enum":
        text = str(value)
        if text not in spec.choices:
            raise SettingsError("%s is %r (expected one of %s)" % (label, text, ", ".join(spec.choices)))
        return text
    if spec.kind == "string":
        return "" if value is None else str(value).strip()
    if spec.kind == "bool":
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SettingsError("%s must be a number, got %r" % (label, value)) from None
    if not math.isfinite(number):
        raise SettingsError("%s must be finite, got %r" % (label, value))
    if spec.kind == "int":
        if number != int(number):
            raise SettingsError("%s must be a whole number, got %r" % (label, value))
        number = int(number)
    if (spec.lo is not None and number < spec.lo) or (spec.hi is not None and number > spec.hi):
        raise SettingsError("%s must be within %g..%g, got %r" % (label, spec.lo, spec.hi, value))
    return number


def params_from_knobs(values: Mapping[str, object]) -> Dict[str, object]:
    """RenderParams fields (a plain dict) from knob values; missing knobs take their default.

    Raises:
        SettingsError: a value of the wrong type or out of range, naming the knob.
    """
    params = OrderedDict((k, (dict(v) if isinstance(v, dict) else v)) for k, v in PARAM_DEFAULTS.items())
    regions: Dict[str, float] = {}
    for spec in PARAM_KNOBS:
        value = _coerce(spec, values.get(spec.name, spec.default))
        if spec.region:
            if value != 1.0:
                regions[spec.region] = float(value)  # type: ignore[arg-type]
        else:
            params[spec.field] = value
    params["regions"] = regions
    return dict(params)


def knobs_from_params(params: Mapping[str, object]) -> Dict[str, object]:
    """Knob values from RenderParams fields (missing fields take their default).

    Raises:
        SettingsError: an unknown field or region, or a bad value.
    """
    unknown = sorted(set(params) - set(PARAM_DEFAULTS))
    if unknown:
        raise SettingsError("unknown parameter(s) %s" % ", ".join(unknown))
    regions = dict(params.get("regions") or {})  # type: ignore[call-overload]
    bad = sorted(set(regions) - set(REGION_NAMES))
    if bad:
        raise SettingsError("unknown region(s) %s (regions: %s)" % (", ".join(bad), ", ".join(REGION_NAMES)))
    values: Dict[str, object] = OrderedDict()
    for spec in PARAM_KNOBS:
        if spec.region:
            raw = regions.get(spec.region, 1.0)
        else:
            raw = params.get(spec.field, PARAM_DEFAULTS[spec.field])
        values[spec.name] = _coerce(spec, raw)
    return dict(values)


def validate_params(params: Mapping[str, object]) -> Dict[str, object]:
    """A checked, normalised copy of RenderParams fields (the round trip through the knobs)."""
    return params_from_knobs(knobs_from_params(params))


def needs_source(params: Mapping[str, object]) -> bool:
    """True when the mode swaps faces, so at least one source image is required."""
    return params.get("mode", PARAM_DEFAULTS["mode"]) in SWAP_MODES


def format_regions(regions: Mapping[str, float]) -> str:
    """``{"mouth": 0.3, "eyes": 1.0}`` -> ``"eyes=1.0,mouth=0.3"`` (canonical region order, exact floats)."""
    return ",".join("%s=%r" % (name, float(regions[name])) for name in REGION_NAMES if name in regions)
