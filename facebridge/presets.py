"""Preset files: ``{"facebridge_preset": 1, "name": "...", <settings>...}``, read and written in one place.

The CLI's ``--preset``, the panel's versions and the host plugins' load/save all use these two functions,
so a preset saved anywhere loads everywhere. Every setting is written (sorted keys); a missing one takes the
schema's default when read. Standard library only, Python 3.6 syntax (the hosts load it).
"""

import json
from typing import Any, Dict, Mapping, Tuple

from . import schema
from .files import write_atomic
from .schema import SettingError

PRESET_VERSION = 1
PRESET_KEYS = ("facebridge_preset", "name")


def preset_values(data: Mapping[str, Any], origin: str) -> Dict[str, Any]:
    """The checked settings of a preset document (its own keys skipped); ``origin`` prefixes messages."""
    return schema.check_values(dict((k, v) for k, v in data.items() if k not in PRESET_KEYS), origin + ": ")


def read_preset(path: str) -> Tuple[Dict[str, Any], str]:
    """``(settings, name)`` of a preset file, every setting checked (missing ones take their default).

    Raises:
        SettingError: unreadable file, not a facebridge preset, unknown setting or bad value (one line,
            naming the file).
    """
    origin = "preset %s" % path
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise SettingError("%s: %s" % (origin, exc)) from None
    if not isinstance(data, dict) or data.get("facebridge_preset") != PRESET_VERSION:
        raise SettingError("%s: not a facebridge preset (version %d)" % (origin, PRESET_VERSION))
    return preset_values(data, origin), str(data.get("name", ""))


def preset_document(values: Mapping[str, Any], name: str = "") -> Dict[str, Any]:
    """The preset document of ``values`` (checked; every setting)."""
    document: Dict[str, Any] = {"facebridge_preset": PRESET_VERSION}
    if name:
        document["name"] = name
    document.update(schema.check_values(values))
    return document


def write_preset(path: str, values: Mapping[str, Any], name: str = "") -> None:
    """Write ``values`` as a preset, to a temporary name renamed into place when complete."""
    text = json.dumps(preset_document(values, name), indent=2, sort_keys=True) + "\n"
    write_atomic(path, text.encode("utf-8"))
