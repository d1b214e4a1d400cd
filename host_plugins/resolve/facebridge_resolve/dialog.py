"""The settings dialog and message windows, built with Resolve's UIManager.

``fusion.UIManager`` and ``bmd.UIDispatcher(ui)`` are what Blackmagic's Workflow Integrations README
calls Resolve's built-in Qt-based UIManager; a menu script receives ``fusion`` and ``bmd`` as globals.
The dialog edits a small settings dict; the job is built from it (and from a preset JSON the panel
saved, when one is named) by :func:`job_from_settings`.
"""

import json
import os
from typing import Any, Dict, Mapping, Optional

from host_plugins.common.command import FARM_CHUNK, FARM_SCHEDULERS, farm_chunk, split_sources
from host_plugins.common.knobs import MODES, PARAM_DEFAULTS, SettingsError, needs_source, validate_params
from host_plugins.common.presets import load_preset

from .job import ResolveJob

WINDOW_ID = "FaceBridgeWin"
LAST_SETTINGS = os.path.join(os.path.expanduser("~"), ".config", "facebridge", "resolve_last.json")
DEFAULTS = {"preset": "", "sources": "", "mode": "swap", "blend": "1.0", "server": "", "output": "", "farm": "",
            "farm_chunk": str(FARM_CHUNK)}
# The dialog's "Run on" choices: processing here, or a farm job (the value of the "farm" setting).
RUN_ON = (("", "this machine (process now, place the result)"),
          ("openjd", "send to farm: Open Job Description bundle (Deadline Cloud, openjd run)"),
          ("opencue", "send to farm: OpenCue (submit to Cuebot)"))


def job_from_settings(settings: Mapping[str, str]) -> ResolveJob:
    """The job for dialog (or environment) settings: the preset's parameters, then mode and blend.

    Raises:
        SettingsError: an unreadable preset, a bad value, a swap mode without source images.
    """
    params = dict(PARAM_DEFAULTS)
    preset = str(settings.get("preset", "")).strip()
    if preset:
        params, _name = load_preset(os.path.expanduser(preset))
    if str(settings.get("mode", "")).strip():
        params["mode"] = str(settings["mode"]).strip()
    if str(settings.get("blend", "")).strip():
        params["blend"] = str(settings["blend"]).strip()   # checked, as text, by the schema (one message)
    params = validate_params(params)
    sources = split_sources(str(settings.get("sources", "")))
    if needs_source(params) and not sources:
        raise SettingsError("mode '%s' needs at least one source image" % params["mode"])
    farm = str(settings.get("farm", "")).strip().lower()
    if farm not in ("",) + FARM_SCHEDULERS:
        raise SettingsError("the farm must be %s or empty (process here), got '%s'"
                            % (" or ".join(FARM_SCHEDULERS), settings.get("farm")))
    chunk = str(settings.get("farm_chunk", "")).strip()
    return ResolveJob(params, sources, str(settings.get("server", "")).strip(),
                      os.path.expanduser(str(settings.get("output", "")).strip()), farm,
                      farm_chunk(chunk) if chunk else FARM_CHUNK)


def settings_from_env(env: Mapping[str, str]) -> Dict[str, str]:
    """Settings for runs without a dialog: ``FACEBRIDGE_PRESET``, ``FACEBRIDGE_SOURCES`` (``;``-separated),
    ``FACEBRIDGE_MODE``, ``FACEBRIDGE_BLEND``, ``FACEBRIDGE_SERVER``, ``FACEBRIDGE_OUTPUT``, ``FACEBRIDGE_FARM``
    (``openjd`` or ``opencue``: send to the farm; empty: process here), ``FACEBRIDGE_FARM_CHUNK``."""
    return {key: env.get("FACEBRIDGE_" + key.upper(), "") for key in DEFAULTS}


def load_last(path: Optional[str] = None) -> Dict[str, str]:
    """The settings of the last run (the dialog's defaults)."""
    path = path or LAST_SETTINGS
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return dict(DEFAULTS)
    return {key: str(data.get(key, DEFAULTS[key])) for key in DEFAULTS}


def save_last(settings: Mapping[str, str], path: Optional[str] = None) -> None:
    path = path or LAST_SETTINGS
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({key: str(settings.get(key, "")) for key in DEFAULTS}, handle, indent=2, sort_keys=True)
    except OSError:
        pass   # remembering the last settings is a convenience only


def _row(ui: Any, label: str, widget: Any) -> Any:
    return ui.HGroup({"Weight": 0}, [ui.Label({"Text": label, "Weight": 0.25}), widget])


def ask_settings(ui: Any, dispatcher: Any, defaults: Mapping[str, str]) -> Optional[Dict[str, str]]:
    """Show the dialog; the settings when the artist presses Run, None on Cancel or close."""
    window = dispatcher.AddWindow({"ID": WINDOW_ID, "WindowTitle": "facebridge", "Geometry": [200, 200, 620, 380]},
                                  ui.VGroup([
                                      _row(ui, "Preset (JSON)", ui.LineEdit({"ID": "Preset",
                                                                             "Text": defaults["preset"]})),
                                      ui.Button({"ID": "Load", "Text": "Load preset", "Weight": 0}),
                                      _row(ui, "Source images", ui.LineEdit({"ID": "Sources",
                                                                             "Text": defaults["sources"]})),
                                      _row(ui, "Mode", ui.ComboBox({"ID": "Mode"})),
                                      _row(ui, "Blend", ui.LineEdit({"ID": "Blend", "Text": defaults["blend"]})),
                                      _row(ui, "Server", ui.LineEdit({"ID": "Server", "Text": defaults["server"]})),
                                      _row(ui, "Output folder", ui.LineEdit({"ID": "Output",
                                                                             "Text": defaults["output"]})),
                                      _row(ui, "Run on", ui.ComboBox({"ID": "Farm"})),
                                      _row(ui, "Farm chunk (frames)", ui.LineEdit({"ID": "FarmChunk",
                                                                                   "Text": defaults.get("farm_chunk",
                                                                                                        str(FARM_CHUNK))})),
                                      ui.Label({"ID": "Status", "Text": "", "Weight": 0}),
                                      ui.HGroup({"Weight": 0}, [ui.Button({"ID": "Run", "Text": "Run"}),
                                                                ui.Button({"ID": "Cancel", "Text": "Cancel"})]),
                                  ]))
    mode = window.Find("Mode")
    for name in MODES:
        mode.AddItem(name)
    mode.CurrentIndex = MODES.index(defaults["mode"]) if defaults["mode"] in MODES else 0
    farm = window.Find("Farm")
    for _value, label in RUN_ON:
        farm.AddItem(label)
    choices = [value for value, _label in RUN_ON]
    farm.CurrentIndex = choices.index(defaults.get("farm", "")) if defaults.get("farm", "") in choices else 0
    chosen: Dict[str, Dict[str, str]] = {}

    def values() -> Dict[str, str]:
        return {"preset": window.Find("Preset").Text, "sources": window.Find("Sources").Text,
                "mode": window.Find("Mode").CurrentText, "blend": window.Find("Blend").Text,
                "server": window.Find("Server").Text, "output": window.Find("Output").Text,
                "farm": choices[int(window.Find("Farm").CurrentIndex)], "farm_chunk": window.Find("FarmChunk").Text}

    def on_load(event: Any) -> None:
        try:
            params, name = load_preset(os.path.expanduser(window.Find("Preset").Text.strip()))
        except SettingsError as exc:
            window.Find("Status").Text = str(exc)
            return
        window.Find("Mode").CurrentIndex = MODES.index(str(params["mode"]))
        window.Find("Blend").Text = repr(params["blend"])
        window.Find("Status").Text = "loaded preset %s" % (name or window.Find("Preset").Text)

    def on_run(event: Any) -> None:
        current = values()
        try:
            job_from_settings(current)
        except SettingsError as exc:
            window.Find("Status").Text = str(exc)
            return
        chosen["settings"] = current
        dispatcher.ExitLoop()

    def on_cancel(event: Any) -> None:
        dispatcher.ExitLoop()

    window.On.Load.Clicked = on_load
    window.On.Run.Clicked = on_run
    window.On.Cancel.Clicked = on_cancel
    getattr(window.On, WINDOW_ID).Close = on_cancel
    window.Show()
    dispatcher.RunLoop()
    window.Hide()
    return chosen.get("settings")


def show_message(ui: Any, dispatcher: Any, text: str) -> None:
    """A small window with ``text`` and an OK button."""
    window = dispatcher.AddWindow({"ID": "FaceBridgeMessage", "WindowTitle": "facebridge",
                                   "Geometry": [250, 250, 520, 160]},
                                  ui.VGroup([ui.Label({"ID": "Text", "Text": text, "WordWrap": True}),
                                             ui.Button({"ID": "OK", "Text": "OK", "Weight": 0})]))

    def close(event: Any) -> None:
        dispatcher.ExitLoop()

    window.On.OK.Clicked = close
    window.On.FaceBridgeMessage.Close = close
    window.Show()
    dispatcher.RunLoop()
    window.Hide()
