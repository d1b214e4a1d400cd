"""Every render setting, declared once: name, type, default, bounds or choices, scope, CLI flag, label, tooltip.

Everything else is derived from ``SETTINGS``: the client's ``RenderParams`` and the server's session
parameters (both validate with :func:`check_values`), the mapping to and from the wire's ``ProcessParams``
(:func:`values_from_message`, :func:`message_fields`), the ``facebridge process`` options, the Nuke knobs
and Resolve dialog fields (``host_plugins.common.knobs``), the panel's sliders, and which settings a
preview may change (:data:`PREVIEW_SETTINGS`). ``tests/test_schema.py`` fails when a derived place differs.

Standard library only, Python 3.6 syntax: the Nuke and Resolve plugins load this module inside the
hosts' own interpreters (Resolve 18 documents Python 3.6).

Scopes:
    model: decides what the models compute (mode, model files, precision, the plate's colourspace).
    analysis: decides the shot analysis (detection keyframes).
    temporal: applied when rendering from the analysis (landmark smoothing, flow stabilisation).
    composite: the artist's compositing controls, applied over cached model output.

A new setting: add a ``Setting`` here, a field to ``facebridge.settings.RenderParams`` and to
``ProcessParams`` in the .proto (``optional`` for numbers, so 0 is not mistaken for "absent"), then
``python protos/generate.py``; the schema tests name whatever is missing.
"""

import math
from typing import Any, Dict, Mapping, NamedTuple, Optional, Tuple

REGION_NAMES = ("eyes", "brows", "nose", "mouth", "cheeks", "forehead", "jaw", "skin")
MODES = ("swap", "restore", "swap+restore")
SWAP_MODES = ("swap", "swap+restore")
COLOUR_MATCH = ("none", "mean-std", "histogram")
PRECISIONS = ("fp32", "fp16", "bf16")
PASTE_MODES = ("residual", "replace")
KINDS = ("enum", "float", "int", "bool", "string", "face", "regions")
SCOPES = ("model", "analysis", "temporal", "composite")
PREVIEW_SCOPES = ("temporal", "composite")
REGION_KNOB_PREFIX = "region_"
REGION_WEIGHT_RANGE = (0.0, 1.0)

WIRE_ONLY_FIELDS = ("output_format", "face_reference", "skip_quality_checks")
"""``ProcessParams`` fields that are not artist settings: the output file type (from the output pattern's
extension), the reference image's bytes (read from ``face = "ref:IMAGE"``) and a transport option."""


class SettingError(ValueError):
    """A setting's value that cannot be used; the one-line message names the setting."""


class Setting(NamedTuple):
    """One render setting.

    Attributes:
        name: the field name in ``RenderParams``, ``ProcessParams``, presets and (except regions) the knob name.
        kind: one of ``KINDS``; ``face`` is ``all | track:N | ref | ref:IMAGE``; ``regions`` a weight per region.
        default: the value when the setting is not given (absent on the wire, missing from a preset).
        scope: one of ``SCOPES``.
        flag: the ``facebridge process`` option.
        label: what the artist reads next to the control.
        tooltip: one line of help (CLI help, knob tooltip, panel tooltip).
        choices: the values of an ``enum``.
        lo, hi: inclusive bounds of a number (None: unbounded on that side).
        lo_open: ``lo`` itself is refused (the value must be greater).
        soft_lo, soft_hi: the slider range of the knob and the panel, inside the bounds (None: the bounds).
        metavar: the option's placeholder in ``--help``.
    """

    name: str
    kind: str
    default: Any
    scope: str
    flag: str
    label: str
    tooltip: str
    choices: Tuple[str, ...] = ()
    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    soft_lo: Optional[float] = None
    soft_hi: Optional[float] = None
    metavar: str = ""

    @property
    def slider_range(self) -> Tuple[float, float]:
        """``(lo, hi)`` of the knob's and the panel's slider."""
        lo = self.soft_lo if self.soft_lo is not None else self.lo
        hi = self.soft_hi if self.soft_hi is not None else self.hi
        return (0.0 if lo is None else float(lo), 1.0 if hi is None else float(hi))

    def bounds_text(self) -> str:
        """``0..4``, ``> 0 and <= 1``, ``>= 1``: the allowed range as error messages and help say it."""
        if self.lo is not None and self.hi is not None:
            if self.lo_open:
                return "> %g and <= %g" % (self.lo, self.hi)
            return "%g..%g" % (self.lo, self.hi)
        if self.lo is not None:
            return ("> %g" if self.lo_open else ">= %g") % self.lo
        if self.hi is not None:
            return "<= %g" % self.hi
        return "any number"


SETTINGS = (
    Setting("mode", "enum", "swap", "model", "--mode", "mode",
            "swap faces with the source, restore them, or both", choices=MODES),
    Setting("face", "face", "all", "composite", "--face", "faces",
            "which faces: all, track:N (one track), or ref:IMAGE (the track nearest that identity)",
            metavar="all|track:N|ref:IMG"),
    Setting("blend", "float", 1.0, "composite", "--blend", "blend",
            "overall strength of the processed face over the plate, 0..1 (0 = the plate)", lo=0.0, hi=1.0),
    Setting("regions", "regions", {}, "composite", "--regions", "region weights",
            "weight 0..1 per face region (eyes, brows, nose, mouth, cheeks, forehead, jaw, skin); 1 = fully "
            "processed", metavar="R=W,..."),
    Setting("grain", "float", 0.0, "composite", "--grain", "grain retention",
            "how much of the plate's own grain and skin texture is kept in the face, 0..1", lo=0.0, hi=1.0),
    Setting("feather", "float", 0.0, "composite", "--feather", "feather",
            "extra mask softening, fraction of the face size", lo=0.0, hi=1.0, soft_hi=0.5),
    Setting("erode", "float", 0.0, "composite", "--erode", "erode",
            "shrink (> 0) or grow (< 0) the mask, fraction of the face size", lo=-0.5, hi=0.5,
            soft_lo=-0.3, soft_hi=0.3),
    Setting("colour_match", "enum", "mean-std", "composite", "--colour-match", "colour match",
            "colour match of the face to the plate, in linear light", choices=COLOUR_MATCH),
    Setting("smoothing", "float", 2.0, "temporal", "--smooth", "smoothing",
            "landmark smoothing over each whole track, Gaussian sigma in frames (0 = off)", lo=0.0, hi=50.0,
            soft_hi=10.0),
    Setting("stabilise", "float", 1.0, "temporal", "--stabilise", "stabilise",
            "temporal stabilisation: weight of each neighbour face carried along the plate's optical flow "
            "(0 = off)", lo=0.0, hi=4.0),
    Setting("flow_threshold", "float", 0.04, "temporal", "--flow-threshold", "flow threshold",
            "grey difference up to which the plate's optical flow is trusted", lo=0.0, hi=1.0, lo_open=True,
            soft_lo=0.0, soft_hi=0.2),
    Setting("keyframe_interval", "int", 8, "analysis", "--keyframe-interval", "keyframe interval",
            "detect faces every N frames and track them in between", lo=1, hi=1000, soft_hi=50, metavar="N"),
    Setting("detector", "string", "", "analysis", "--detector", "face detector",
            "registry name (e.g. scrfd_2.5g) or a file name in the server's models folder; empty = the best "
            "verified one, else dlib's HOG detector with its CNN fallback", metavar="NAME|FILE"),
    Setting("landmarker", "string", "", "analysis", "--landmarker", "landmarker",
            "68-point landmark model: registry name (e.g. 2dfan4) or a file name in the server's models folder; "
            "empty = the best verified one, else dlib's 68-point predictor", metavar="NAME|FILE"),
    Setting("min_face", "float", 48.0, "model", "--min-face", "minimum face size",
            "swap modes: faces smaller than this (px, landmark extent) are left as the plate with a warning unless "
            "--face picks them; a picked small face is swapped without the forehead band, and up to 1.5x this size "
            "the band shrinks gradually (0 = swap every face in full)", lo=0.0, hi=4096.0,
            soft_hi=256.0, metavar="PX"),
    Setting("colorspace", "string", "", "model", "--colorspace", "plate colourspace",
            "OCIO name of the plate's colourspace; empty = the file's metadata, else linear Rec.709",
            metavar="NAME"),
    Setting("swapper", "string", "", "model", "--swapper", "swap model",
            "registry name, or a file name in the server's models folder; empty = the best verified model, "
            "else the classical swap",
            metavar="NAME|FILE"),
    Setting("restorer", "string", "", "model", "--restorer", "restore model",
            "registry name (e.g. gpen_bfr_512) or a file name in the server's models folder; empty = the best "
            "verified one, else the classical enhancer", metavar="NAME|FILE"),
    Setting("parser", "string", "", "model", "--parser", "face parser",
            "registry name or a file name in the server's models folder, or 'none' for landmark masks only; "
            "empty = the best verified one",
            metavar="NAME|FILE|none"),
    Setting("occluder", "string", "", "model", "--occluder", "occlusion model",
            "occlusion mask model (e.g. xseg_1): hands, hair, glasses and props in front of the face stay the plate's; "
            "registry name or a file name in the server's models folder, or 'none'; empty = the best verified one",
            metavar="NAME|FILE|none"),
    Setting("paste", "enum", "residual", "model", "--paste", "paste back",
            "how a neural swap's face goes back into the plate: residual adds the model's change to the plate (plate "
            "detail finer than the model survives), replace puts the model's face in its place",
            choices=PASTE_MODES),
    Setting("pixel_boost", "int", 0, "model", "--pixel-boost", "pixel boost",
            "work a neural swapper at this size (a multiple of its native size, e.g. 512 for inswapper_128: the "
            "aligned face split into interleaved tiles of the model's size); 0 = the model's native size", lo=0,
            hi=1024, soft_hi=1024, metavar="PX"),
    Setting("restore_weight", "float", 0.5, "model", "--restore-weight", "restore weight",
            "fidelity weight for restorers that take one (codeformer): 0 = strongest restoration, 1 = closest to "
            "the plate", lo=0.0, hi=1.0),
    Setting("precision", "enum", "fp32", "model", "--precision", "precision",
            "numeric precision of neural models", choices=PRECISIONS),
    Setting("allow_unverified", "bool", False, "model", "--allow-unverified", "allow unverified models",
            "use model files whose sha256 differs from the registry's (the report says so); a shared server "
            "must allow it (serve --allow-unverified), a private one does when asked"),
)

BY_NAME = dict((s.name, s) for s in SETTINGS)
NAMES = tuple(s.name for s in SETTINGS)
PREVIEW_SETTINGS = tuple(s.name for s in SETTINGS if s.scope in PREVIEW_SCOPES)
"""The settings a preview may change; the rest (models, mode, colourspace, analysis) are the session's."""


def defaults() -> Dict[str, Any]:
    """Every setting's default (a fresh dict: ``regions`` is a new empty dict)."""
    return dict((s.name, dict(s.default) if isinstance(s.default, dict) else s.default) for s in SETTINGS)


def _error(setting: str, problem: str) -> SettingError:
    return SettingError("setting '%s' %s" % (setting, problem))


def _number(setting: Setting, value: Any, region: str = "") -> float:
    """``value`` as a finite float within the setting's bounds (or a region weight's, naming ``region``).

    Out-of-range values are quoted as numbers (``%g``), so the message is the same whether the value came
    as text (CLI, knob), as an int (preset) or as a float32 (the wire).
    """
    label = setting.name + ("." + region if region else "")
    number = None
    if not isinstance(value, bool) and isinstance(value, (int, float, str)):
        try:
            number = float(value)
        except ValueError:
            pass
    if number is None:
        raise _error(label, "must be a number, got %r" % (value,))
    if not math.isfinite(number):
        raise _error(label, "must be a finite number, got %g" % number)
    lo: Optional[float]
    hi: Optional[float]
    if region:
        lo, hi = REGION_WEIGHT_RANGE
        bounds, lo_open = "within %g..%g" % (lo, hi), False
    else:
        lo, hi, lo_open = setting.lo, setting.hi, setting.lo_open
        bounds = setting.bounds_text()
        bounds = bounds if bounds[0] in "<>" else "within " + bounds
    below = lo is not None and (number <= lo if lo_open else number < lo)
    if below or (hi is not None and number > hi):
        raise _error(label, "must be %s, got %g" % (bounds, number))
    return number


def _face(value: Any) -> str:
    text = str(value).strip() if value is not None else ""
    if text in ("all", "ref"):
        return text
    if text.startswith("track:") and text[6:].isdigit():
        return "track:%d" % int(text[6:])
    if text.startswith("ref:") and text[4:].strip():
        return "ref:" + text[4:].strip()
    raise _error("face", "must be all, track:N or ref:IMAGE, got %r" % (value,))


def _regions(value: Any) -> Dict[str, float]:
    if isinstance(value, str):
        return parse_regions(value)
    try:
        pairs = list(dict(value).items())
    except (TypeError, ValueError):
        raise _error("regions", "must map region names to weights, got %r" % (value,)) from None
    weights = {}
    for name, weight in pairs:
        if name not in REGION_NAMES:
            raise _error("regions", "has an unknown region %r (regions: %s)" % (name, ", ".join(REGION_NAMES)))
        weights[name] = _number(BY_NAME["regions"], weight, str(name))
    return dict((name, weights[name]) for name in REGION_NAMES if name in weights)


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise _error(name, "must be true or false, got %r" % (value,))


def check(name: str, value: Any) -> Any:
    """``value`` of setting ``name`` as its type, normalised (floats as float, regions in canonical order,
    strings stripped), or SettingError naming the setting.

    Raises:
        SettingError: an unknown setting, a value of the wrong type, out of bounds or not among the choices.
    """
    setting = BY_NAME.get(name)
    if setting is None:
        raise SettingError("unknown setting '%s' (settings: %s)" % (name, ", ".join(NAMES)))
    kind = setting.kind
    if kind == "enum":
        text = str(value).strip() if value is not None else ""
        if text not in setting.choices:
            raise _error(name, "must be one of %s, got %r" % (", ".join(setting.choices), value))
        return text
    if kind == "float":
        return _number(setting, value)
    if kind == "int":
        number = _number(setting, value)
        if number != int(number):
            raise _error(name, "must be a whole number, got %g" % number)
        return int(number)
    if kind == "bool":
        return _bool(name, value)
    if kind == "string":
        return "" if value is None else str(value).strip()
    if kind == "face":
        return _face(value)
    return _regions(value)


def check_values(values: Mapping[str, Any], origin: str = "") -> Dict[str, Any]:
    """Every setting, checked and normalised; missing ones take their default.

    Args:
        values: setting name -> value (a preset's fields, knob-derived values, a dataclass' fields).
        origin: prefixed to messages (``"preset look.json: "``), empty for none.

    Raises:
        SettingError: an unknown name or a bad value; the message names the setting (and the origin).
    """
    unknown = sorted(set(values) - set(NAMES))
    try:
        if unknown:
            raise SettingError("unknown setting(s) %s (settings: %s)" % (", ".join(unknown), ", ".join(NAMES)))
        return dict((name, check(name, values[name]) if name in values else default)
                    for name, default in defaults().items())
    except SettingError as exc:
        if origin:
            raise SettingError(origin + str(exc)) from None
        raise


def parse_regions(text: str) -> Dict[str, float]:
    """``"eyes=1,mouth=0.3"`` -> ``{"eyes": 1.0, "mouth": 0.3}`` (checked, canonical region order)."""
    pairs = []
    for part in [p.strip() for p in str(text).split(",") if p.strip()]:
        name, sep, weight = part.partition("=")
        if not sep or not name.strip():
            raise _error("regions", "cannot read %r (expected name=weight, e.g. eyes=1,mouth=0.3)" % part)
        pairs.append((name.strip(), weight.strip()))
    seen = [name for name, _ in pairs]
    twice = sorted(set(n for n in seen if seen.count(n) > 1))
    if twice:
        raise _error("regions", "names %s more than once" % ", ".join(twice))
    return _regions(dict(pairs))


def format_regions(regions: Mapping[str, float]) -> str:
    """``{"mouth": 0.3, "eyes": 1.0}`` -> ``"eyes=1.0,mouth=0.3"`` (canonical order, floats exact)."""
    return ",".join("%s=%r" % (name, float(regions[name])) for name in REGION_NAMES if name in regions)


def needs_source(values: Mapping[str, Any]) -> bool:
    """True when the mode swaps faces, so at least one source image is required."""
    return values.get("mode", BY_NAME["mode"].default) in SWAP_MODES


# -- the wire: ProcessParams --------------------------------------------------------------------------

def values_from_message(message: Any) -> Dict[str, Any]:
    """Setting values (unchecked) from a ``ProcessParams`` message: a number absent from the message, and an
    empty string of an enum or the face, take the default; ``face = "ref"`` names the message's reference.

    Duck-typed on the generated protobuf class (``HasField`` of the ``optional`` numbers), so this module
    needs no protobuf.
    """
    values = {}
    for setting in SETTINGS:
        raw = getattr(message, setting.name)
        if setting.kind in ("float", "int"):
            values[setting.name] = raw if message.HasField(setting.name) else setting.default
        elif setting.kind in ("enum", "face"):
            values[setting.name] = raw or setting.default
        elif setting.kind == "regions":
            values[setting.name] = dict(raw)
        else:
            values[setting.name] = raw
    return values


def message_fields(values: Mapping[str, Any]) -> Dict[str, Any]:
    """``ProcessParams`` keyword arguments for checked setting values (every setting present, so the
    receiver's defaults never decide a render; ``face = "ref:IMAGE"`` travels as ``"ref"`` with the
    image in ``face_reference``)."""
    fields = dict((name, values[name]) for name in NAMES)
    fields["regions"] = dict(fields["regions"])
    if str(fields["face"]).startswith("ref:"):
        fields["face"] = "ref"
    return fields


# -- hosts: knob names ----------------------------------------------------------------------------------

def knob_names() -> Dict[str, str]:
    """Setting (``regions.<name>`` for a region weight) -> knob name (what a Nuke node saves in the .nk)."""
    names = {}
    for setting in SETTINGS:
        if setting.kind == "regions":
            for region in REGION_NAMES:
                names["regions." + region] = REGION_KNOB_PREFIX + region
        else:
            names[setting.name] = setting.name
    return names
