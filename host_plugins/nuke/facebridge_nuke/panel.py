"""The facebridge panel from the node: the full A/B panel as its own process, and its choice back in the knobs.

Nuke's interpreter gets nothing installed and imports no Qt, grpc or protobuf: **Open Panel** starts
``facebridge panel`` (the same ``facebridge`` command the renders run, through ``subprocess``) on the node's
shot, plates and sources, with the node's knobs written as preset A. In the panel, "Apply to node" writes the
chosen set (A or B) as a preset file into the node's work folder; **Get from panel** reads it into the knobs
in one undo step. Works the same on Nuke 13 to 16 (whatever Qt the panel's own environment has).
"""

import os
import subprocess
from typing import Any, Dict, List, Optional

import nuke

from host_plugins.common.command import CliNotFound, resolve_cli, sidecar_env
from host_plugins.common.knobs import SettingsError, knobs_from_params
from host_plugins.common.presets import load_preset, save_preset
from host_plugins.common.sequence import existing_frames, shot_id

from . import node as fb_node

PANEL_FOLDER = "panel"
PRESET_A = "A.json"
TO_NODE = "to_node.json"
_panels: Dict[str, "subprocess.Popen[Any]"] = {}   # node full name -> its panel process (one at a time)


def panel_dir(settings: "fb_node.NodeSettings") -> str:
    return os.path.join(settings.folders.work_dir, PANEL_FOLDER)


def to_node_path(settings: "fb_node.NodeSettings") -> str:
    """The file the panel's "Apply to node" writes for this node."""
    return os.path.join(panel_dir(settings), TO_NODE)


def plate_pattern(settings: "fb_node.NodeSettings") -> Optional[str]:
    """Plates of the node's whole shot that Analyse or a Render left on disk (Analyse's first), or None."""
    work = settings.folders.work_dir
    name = os.path.basename(settings.folders.plate_pattern)
    folders = [os.path.join(work, "analyse")]
    try:
        folders += [os.path.join(work, f) for f in sorted(os.listdir(work)) if f not in ("analyse", PANEL_FOLDER)]
    except OSError:
        pass
    frames = range(settings.frames.first, settings.frames.last + 1)
    for folder in folders:
        pattern = os.path.join(folder, name)
        if len(existing_frames(pattern, frames)) == len(frames):
            return pattern
    return None


def panel_argv(cli: List[str], settings: "fb_node.NodeSettings", plates: str, preset_a: str, to_node: str) -> List[str]:
    """``facebridge panel --shot ... --input PLATES [--source ...] [--server ...] --preset-a A --to-node TO``."""
    argv = list(cli) + ["panel", "--shot", shot_id("nuke", settings.folders.result_pattern), "--input", plates]
    for source in settings.sources:
        argv += ["--source", source]
    if settings.server:
        argv += ["--server", settings.server]
    return argv + ["--preset-a", preset_a, "--to-node", to_node]


def _detached() -> Dict[str, Any]:
    if os.name == "nt":
        return {"creationflags": getattr(subprocess, "DETACHED_PROCESS", 0x8)
                | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}
    return {"start_new_session": True}


def open_panel(node: Any) -> Optional["subprocess.Popen[Any]"]:
    """Open Panel: start the panel on the node's shot with its knobs as set A (a status line says why not)."""
    key = node.fullName()
    running = _panels.get(key)
    if running is not None and running.poll() is None:
        fb_node.set_status(node, "the panel of %s is already open" % node.name())
        return running
    try:
        settings = fb_node.read_settings(node)
        cli = resolve_cli()
    except (SettingsError, CliNotFound) as exc:
        _refuse(node, str(exc))
        return None
    plates = plate_pattern(settings)
    if plates is None:
        _refuse(node, "no plates of frames %s on disk yet: press Analyse first" % settings.frames.arg())
        return None
    folder = panel_dir(settings)
    os.makedirs(folder, exist_ok=True)
    preset_a = os.path.join(folder, PRESET_A)
    save_preset(preset_a, settings.params, name=node.name())
    argv = panel_argv(cli, settings, plates, preset_a, to_node_path(settings))
    env = sidecar_env()
    if settings.ocio_config:
        env["OCIO"] = settings.ocio_config
    try:
        with open(os.path.join(folder, "panel.log"), "ab") as log:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       env=env, cwd=folder, close_fds=True, **_detached())
    except OSError as exc:
        _refuse(node, "cannot start the panel: %s" % exc)
        return None
    _panels[key] = process
    fb_node.set_status(node, "panel open: choose A or B there, press 'Apply to node', then 'Get from panel' here")
    return process


def get_from_panel(node: Any) -> bool:
    """Get from panel: the set the panel sent (A or B) into the knobs, in one undo step."""
    try:
        settings = fb_node.read_settings(node)
    except SettingsError as exc:
        _refuse(node, str(exc))
        return False
    path = to_node_path(settings)
    if not os.path.isfile(path):
        _refuse(node, "nothing from the panel yet: open the panel and press 'Apply to node' there")
        return False
    try:
        params, name = load_preset(path)
        values = knobs_from_params(params)
    except SettingsError as exc:
        _refuse(node, "cannot read %s: %s" % (path, exc))
        return False
    if values.get("colorspace") == settings.params["colorspace"] and not str(node["colorspace"].value()).strip():
        values["colorspace"] = ""   # the script's working space, as A was sent: keep following it
    undo = nuke.Undo()
    undo.begin("FaceBridge: settings %s from the panel" % (name or "set"))
    try:
        for knob, value in values.items():
            if node.knob(knob) is not None and node[knob].value() != value:
                node[knob].setValue(value)
    finally:
        undo.end()
    fb_node.set_status(node, "settings %s from the panel applied" % (name or "set"))
    return True


def _refuse(node: Any, message: str) -> None:
    fb_node.set_status(node, message)
    if nuke.env["gui"]:
        nuke.message("FaceBridge %s: %s" % (node.name(), message))
