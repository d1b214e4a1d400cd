"""Preset JSON files, read and written with the standard library.

Same format as ``facebridge.client.params`` (the CLI's ``--preset`` and the panel): a JSON object
``{"facebridge_preset": 1, "name": "...", <RenderParams fields>...}``. Hosts load a preset into knobs
or the Resolve dialog, and can save the knobs back for the panel or the CLI.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Dict, Mapping, Tuple

from .knobs import PARAM_DEFAULTS, SettingsError, validate_params

PRESET_VERSION = 1


def load_preset(path: str) -> Tuple[Dict[str, object], str]:
    """``(params, name)`` from a preset file; missing fields take their default.

    Raises:
        SettingsError: unreadable file, not a facebridge preset, unknown field or bad value.
    """
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise SettingsError("preset %s: %s" % (path, exc)) from None
    if not isinstance(data, dict) or data.get("facebridge_preset") != PRESET_VERSION:
        raise SettingsError("preset %s: not a facebridge preset (version %d)" % (path, PRESET_VERSION))
    fields = {k: v for k, v in data.items() if k not in ("facebridge_preset", "name")}
    try:
        params = validate_params(fields)
    except SettingsError as exc:
        raise SettingsError("preset %s: %s" % (path, exc)) from None
    return params, str(data.get("name", ""))


def save_preset(path: str, params: Mapping[str, object], name: str = "") -> None:
    """Write ``params`` as a preset (every field, sorted keys), atomically."""
    checked = validate_params(params)
    data = {"facebridge_preset": PRESET_VERSION}
    if name:
        data["name"] = name  # type: ignore[assignment]
    data.update({k: checked[k] for k in PARAM_DEFAULTS})  # type: ignore[arg-type]
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=".preset-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


__all__ = ["PRESET_VERSION", "SettingsError", "load_preset", "save_preset"]
