"""Preset JSON files in the hosts: the settings as the knob layer gives and takes them.

The file format and its checks are ``facebridge.presets`` (the CLI's ``--preset`` and the panel use the
same functions); this adds the knob layer's normalisation (region weights of 1 left out).
"""

from typing import Dict, Mapping, Tuple

from facebridge.presets import PRESET_VERSION, read_preset, write_preset

from .knobs import SettingsError, validate_params


def load_preset(path: str) -> Tuple[Dict[str, object], str]:
    """``(settings, name)`` from a preset file; missing settings take their default.

    Raises:
        SettingsError: unreadable file, not a facebridge preset, unknown setting or bad value.
    """
    values, name = read_preset(path)
    return validate_params(values), name


def save_preset(path: str, params: Mapping[str, object], name: str = "") -> None:
    """Write ``params`` as a preset (every setting, sorted keys), atomically."""
    write_preset(path, validate_params(params), name)


__all__ = ["PRESET_VERSION", "SettingsError", "load_preset", "save_preset"]
