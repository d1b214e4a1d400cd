"""The options of ``facebridge process`` and ``facebridge analyse``.

The render settings' options are derived from ``facebridge.schema`` (flag, help, placeholder); each is
read as text and checked by the schema after parsing, so a bad value gets the same one-line message as
from a knob or the server, and the command exits 2 before any server starts. Standard library only, so
``facebridge --help`` and ``facebridge serve`` load no gRPC.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from facebridge import schema
from facebridge.settings import RenderParams

PROGRESS_MODES = ("auto", "bar", "json", "none")
ANALYSE_SETTINGS = ("keyframe_interval",)
"""The settings ``facebridge analyse`` takes (those of the analysis scope)."""


def _help(setting: schema.Setting) -> str:
    default = setting.default
    if setting.kind == "bool":
        return setting.tooltip
    if setting.kind == "regions":
        shown = "1 each"
    elif setting.kind in ("float", "int"):
        shown = "%g; %s" % (default, setting.bounds_text())
    else:
        shown = repr(default) if default == "" else str(default)
    text = f"{setting.tooltip} (default {shown})"
    return text.replace("%", "%%")


def add_setting_options(parser: argparse.ArgumentParser, names: tuple[str, ...] = schema.NAMES) -> None:
    """One option per setting in ``names``, as the schema declares it (values checked after parsing)."""
    group = parser.add_argument_group("render settings")
    for name in names:
        setting = schema.BY_NAME[name]
        if setting.kind == "bool":
            group.add_argument(setting.flag, dest=setting.name, action="store_const", const=True,
                               help=_help(setting))
            continue
        metavar = setting.metavar or ("{%s}" % ",".join(setting.choices) if setting.choices else "F")
        group.add_argument(setting.flag, dest=setting.name, metavar=metavar, help=_help(setting))


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (name -> raw text), unchecked."""
    return {name: getattr(args, name) for name in schema.NAMES if getattr(args, name, None) is not None}


def render_params(args: argparse.Namespace) -> RenderParams:
    """The preset (if any) overridden by the command line, checked.

    Raises:
        SettingError: a bad value, naming the setting; or an unreadable preset.
    """
    base = RenderParams()
    if getattr(args, "preset", None):
        from .params import load_preset  # the preset reader is part of the client (it imports the wire)

        base = load_preset(args.preset)
    return base.with_overrides(given_settings(args))


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, metavar="PATTERN",
                        help="input frames: plate.####.exr, plate.%%04d.exr or a single file")
    parser.add_argument("--shot", default="",
                        help="shot id shared by analyse and process (default: derived from the input pattern)")
    parser.add_argument("--preset", metavar="FILE.json", help="settings from a preset (the command line overrides it)")
    parser.add_argument("--server", metavar="HOST:PORT", help="use this server (default: start a private local one)")
    parser.add_argument("--device", default="auto", help="device of the private server: auto|cpu|cuda[:N]|mps")
    parser.add_argument("--cache-dir", type=Path, help="shot database and model cache of the private server")
    parser.add_argument("--models-dir", type=Path, help="model files of the private server (default: "
                        "$FACEBRIDGE_MODELS_DIR, the config file, else ~/.local/share/facebridge/models)")
    parser.add_argument("--transport", choices=("auto", "stream", "path"), default="auto",
                        help="how frames travel: stream them, or pass paths (same machine); default auto")
    parser.add_argument("--report", metavar="FILE.json", help="write a JSON report of every frame")
    parser.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                        help="bar on a terminal, json lines on stdout for host plugins, or none")


def add_analyse_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``facebridge analyse``."""
    _add_common(parser)
    parser.add_argument("--frames", metavar="A-B", help="frames to analyse (default: every frame on disk)")
    parser.add_argument("--analysis-out", metavar="FILE",
                        help="then write the shot's analysis as a portable, read-only shot-analysis file (for "
                             "farm renders: process --analysis FILE)")
    add_setting_options(parser, ANALYSE_SETTINGS)


ANALYSIS_HELP = ("render from this shot-analysis file (analyse --analysis-out): no analysis pass, the same pixels "
                 "as a render of the whole shot; refused for another shot")


def add_process_arguments(parser: argparse.ArgumentParser, analysis_help: str = ANALYSIS_HELP) -> None:
    """Arguments of ``facebridge process`` (``analysis_help``: the help of ``--analysis``, for commands that
    pass it on, such as ``facebridge farm``)."""
    _add_common(parser)
    parser.add_argument("--source", action="append", default=[], metavar="IMG",
                        help="source identity image; repeat for several (the best pose match is used per face); "
                             "needed by the swap modes")
    parser.add_argument("--output", required=True, metavar="PATTERN",
                        help="output frames, same tokens; the format follows the extension (EXR by default)")
    parser.add_argument("--frames", metavar="A-B", help="frames to render, e.g. 1001-1024 or 1-10,20 (default: all on disk)")
    parser.add_argument("--analyse-range", metavar="A-B",
                        help="frames the shot analysis covers (default: every frame of the input on disk)")
    parser.add_argument("--no-analyse", action="store_true",
                        help="skip the analysis pass: frames the shot's analysis already covers render from it, "
                             "others are detected on their own (no tracking, no smoothing)")
    parser.add_argument("--analysis", metavar="FILE", help=analysis_help)
    add_setting_options(parser)
