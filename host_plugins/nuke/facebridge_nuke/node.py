"""The FaceBridge node: a Group whose knobs hold every setting of a render.

Inside the group: ``Input1`` (the plate) -> ``ShowResults`` (a Switch) -> ``Output1``, with the
``Results`` Read on the Switch's second input. Until a render has produced results the Switch shows
input 0, so the node passes its input through; afterwards it shows the Read (``raw``, linear EXR).

Everything a render needs is read from the knobs (and the script's colour management) by
:func:`read_settings`; nothing comes from the session, so the saved ``.nk`` renders the same in the GUI,
in ``nuke -t`` and for another artist. Button knobs call :func:`on_render`, :func:`on_analyse`,
:func:`on_send_to_farm`, :func:`on_open_panel` and :func:`on_get_from_panel` with ``nuke.thisNode()``; the Farm
tab (:func:`read_farm_settings`) says where Send to farm sends the render.

Paths go into file knobs through :func:`knob_path`: Nuke evaluates file knobs as TCL (``[...]``, ``$``,
backslashes), so they are written with forward slashes and those characters escaped.
"""

import os
from typing import Any, Dict, List, NamedTuple, Optional

import nuke

from host_plugins.common.command import FARM_CHUNK, FARM_SCHEDULERS, farm_chunk, split_sources
from host_plugins.common.frames import FrameRange, FrameRangeError
from host_plugins.common.knobs import PARAM_KNOBS, REGION_NAMES, KnobSpec, SettingsError, params_from_knobs
from host_plugins.common.sequence import NodeFolders, default_output_dir, node_folders

from . import NODE_TAG

INPUT, SWITCH, READ, OUTPUT = "Input1", "ShowResults", "Results", "Output1"
MAIN_KNOBS = ("mode", "face", "blend") + tuple("region_" + r for r in REGION_NAMES) \
    + ("grain", "smoothing", "keyframe_interval")
ADVANCED_KNOBS = ("feather", "erode", "colour_match", "stabilise", "flow_threshold", "min_face", "colorspace")
MODEL_KNOBS = ("swapper", "restorer", "parser", "occluder", "detector", "landmarker", "paste", "pixel_boost",
               "restore_weight", "precision", "allow_unverified")


NUKE_LINEAR = {"linear": "lin_rec709"}   # nuke-default's working space, as the server's OCIO configs name it
_TCL_SPECIAL = ("\\", "[", "]", "$")


class FarmSettings(NamedTuple):
    """A FaceBridge node's Farm tab, checked."""

    scheduler: str                 # openjd | opencue
    chunk: int
    bundle_dir: str                # openjd's bundle folder; opencue's dry-run spec goes here too
    show: str
    user: str
    dry_run: bool
    farm_cli: str


class NodeSettings(NamedTuple):
    """A FaceBridge node's knobs, checked and resolved."""

    name: str
    params: Dict[str, Any]         # setting -> value, checked by params_from_knobs
    sources: List[str]
    server: str
    frames: FrameRange
    folders: NodeFolders
    ocio_config: str               # the script's custom OCIO config file, "" for Nuke's own configs


def knob_path(path: str, sep: str = os.sep) -> str:
    """``path`` as the text of a Nuke file knob: forward slashes (Windows paths included) and TCL's
    special characters (backslash, brackets, ``$``) escaped, so Nuke's evaluation gives ``path`` back."""
    text = path.replace(sep, "/") if sep == "\\" else path
    for char in _TCL_SPECIAL:
        text = text.replace(char, "\\" + char)
    return text


def working_colorspace() -> str:
    """The script's working space (Project Settings > Color): what a ``raw`` Write writes and a ``raw`` Read
    gives back. Nuke's native colour management and nuke-default work in ``linear`` (linear Rec.709)."""
    root = nuke.root()
    space = str(root["workingSpaceLUT"].value()).strip()
    return NUKE_LINEAR.get(space, space) or "lin_rec709"


def _ocio_config() -> str:
    root = nuke.root()
    if str(root["colorManagement"].value()) == "OCIO" and str(root["OCIO_config"].value()) == "custom":
        return str(root["customOCIOConfigPath"].evaluate()).strip()
    return ""


def _command(function: str) -> str:
    return "import nuke\nimport facebridge_nuke.node\nfacebridge_nuke.node.%s(nuke.thisNode())" % function


def _param_knob(spec: KnobSpec) -> Any:
    knob: Any  # a nuke knob: the host API is untyped
    if spec.kind == "enum":
        knob = nuke.Enumeration_Knob(spec.name, spec.label, list(spec.choices))
    elif spec.kind == "float":
        knob = nuke.Double_Knob(spec.name, spec.label)
        knob.setRange(spec.lo, spec.hi)
    elif spec.kind == "int":
        knob = nuke.Int_Knob(spec.name, spec.label)
    elif spec.kind == "bool":
        knob = nuke.Boolean_Knob(spec.name, spec.label)
    else:
        knob = nuke.String_Knob(spec.name, spec.label)
    knob.setValue(spec.default)
    knob.setTooltip(spec.tooltip)
    return knob


def _unique_name(base: str) -> str:
    index = 1
    while nuke.toNode("%s%d" % (base, index)) is not None:
        index += 1
    return "%s%d" % (base, index)


def add_knobs(node: Any) -> None:
    """Add the FaceBridge knobs to ``node`` (a Group)."""
    specs = {spec.name: spec for spec in PARAM_KNOBS}
    node.addKnob(nuke.Tab_Knob("facebridge", "FaceBridge"))
    node.addKnob(nuke.Text_Knob("facebridge_version", "", NODE_TAG))
    server = nuke.String_Knob("server", "server")
    server.setTooltip("HOST:PORT of a running facebridge server; empty = start a private local server per render")
    node.addKnob(server)
    sources = nuke.Multiline_Eval_String_Knob("sources", "source images")
    sources.setTooltip("source identity images, one path per line (the swap modes need at least one)")
    node.addKnob(sources)
    for name in MAIN_KNOBS:
        node.addKnob(_param_knob(specs[name]))
    first = nuke.Int_Knob("first_frame", "frame range")
    first.setValue(int(nuke.root()["first_frame"].value()))
    first.setTooltip("first frame of the shot (the analysis covers the whole range)")
    last = nuke.Int_Knob("last_frame", "to")
    last.setValue(int(nuke.root()["last_frame"].value()))
    node.addKnob(first)
    node.addKnob(last)
    output = nuke.File_Knob("output_dir", "output folder")
    output.setTooltip("results and the work folder; empty = <script folder>/facebridge/<script name>/<node name>")
    node.addKnob(output)
    node.addKnob(nuke.PyScript_Knob("analyse", "Analyse", _command("on_analyse")))
    node.addKnob(nuke.PyScript_Knob("render", "Render", _command("on_render")))
    farm = nuke.PyScript_Knob("send_to_farm", "Send to farm", _command("on_send_to_farm"))
    farm.setTooltip("write the plates of the whole frame range, then the farm job of this node's settings "
                    "(scheduler, chunk and bundle folder on the Farm tab); the status says where it went")
    node.addKnob(farm)
    panel = nuke.PyScript_Knob("open_panel", "Open Panel", _command("on_open_panel"))
    panel.setTooltip("open the facebridge panel (its own window) on this node's shot and settings as set A")
    node.addKnob(panel)
    fetch = nuke.PyScript_Knob("get_from_panel", "Get from panel", _command("on_get_from_panel"))
    fetch.setTooltip("set the knobs to the set (A or B) the panel's 'Apply to node' sent; one undo step")
    node.addKnob(fetch)
    node.addKnob(nuke.Text_Knob("status", "status", "no results yet: passing the input through"))
    node.addKnob(nuke.Tab_Knob("advanced", "Advanced"))
    for name in ADVANCED_KNOBS:
        node.addKnob(_param_knob(specs[name]))
    node.addKnob(nuke.Tab_Knob("models", "Models"))
    for name in MODEL_KNOBS:
        node.addKnob(_param_knob(specs[name]))
    add_farm_knobs(node)


def add_farm_knobs(node: Any) -> None:
    """The Farm tab: where Send to farm sends the node's render (``facebridge farm``)."""
    node.addKnob(nuke.Tab_Knob("farm", "Farm"))
    scheduler = nuke.Enumeration_Knob("farm_scheduler", "scheduler", list(FARM_SCHEDULERS))
    scheduler.setTooltip("openjd: write an Open Job Description job bundle (openjd run, deadline bundle submit); "
                         "opencue: submit an OpenCue job to the Cuebot in $CUEBOT_HOSTS")
    node.addKnob(scheduler)
    chunk = nuke.Int_Knob("farm_chunk", "chunk")
    chunk.setValue(FARM_CHUNK)
    chunk.setTooltip("frames per render task (an analyse task over the whole range runs first)")
    node.addKnob(chunk)
    bundle = nuke.File_Knob("farm_bundle", "bundle folder")
    bundle.setTooltip("openjd: the job bundle folder; empty = <output folder>/farm")
    node.addKnob(bundle)
    show = nuke.String_Knob("farm_show", "show")
    show.setTooltip("opencue: the show (empty = $CUE_SHOW, $SHOW, else 'testing')")
    node.addKnob(show)
    user = nuke.String_Knob("farm_user", "user")
    user.setTooltip("opencue: submit as this user (empty = $CUE_USER, $USER)")
    node.addKnob(user)
    dry_run = nuke.Boolean_Knob("farm_dry_run", "dry run")
    dry_run.setTooltip("opencue: write the job spec XML into the bundle folder and submit nothing")
    node.addKnob(dry_run)
    farm_cli = nuke.String_Knob("farm_cli", "farm facebridge")
    farm_cli.setTooltip("the facebridge command on the farm machines, e.g. /opt/fb/bin/facebridge; empty = the "
                        "one this Nuke runs (it must be reachable from the farm)")
    node.addKnob(farm_cli)


def build_internals(node: Any) -> None:
    """Input -> Switch(0: input, 1: Results Read) -> Output, inside ``node``."""
    node.begin()
    try:
        plate = nuke.nodes.Input(name=INPUT)
        results = nuke.nodes.Read(name=READ)
        results["raw"].setValue(True)
        switch = nuke.nodes.Switch(name=SWITCH)
        switch.setInput(0, plate)
        switch.setInput(1, results)
        switch["which"].setValue(0)
        output = nuke.nodes.Output(name=OUTPUT)
        output.setInput(0, switch)
    finally:
        node.end()


def create_node() -> Any:
    """Nodes > facebridge > FaceBridge: a new FaceBridge node (connect its input to the plate)."""
    node = nuke.createNode("Group", inpanel=False)
    node.setName(_unique_name("FaceBridge"))
    add_knobs(node)
    build_internals(node)
    return node


def is_facebridge(node: Any) -> bool:
    return node is not None and node.knob("facebridge_version") is not None


def read_settings(node: Any) -> NodeSettings:
    """The node's knobs, checked.

    Raises:
        SettingsError: a bad knob value, a swap mode without sources, or an unsaved script with no
            output folder set.
    """
    values = {spec.name: node[spec.name].value() for spec in PARAM_KNOBS}
    params = params_from_knobs(values)
    if not str(params["colorspace"]).strip():   # the plates are in the script's working space
        params["colorspace"] = working_colorspace()
    sources = split_sources(node["sources"].evaluate())
    if params["mode"] in ("swap", "swap+restore") and not sources:
        raise SettingsError("mode '%s' needs at least one source image" % params["mode"])
    try:
        frames = FrameRange.checked(node["first_frame"].value(), node["last_frame"].value())
    except FrameRangeError as exc:
        raise SettingsError(str(exc)) from None
    output_dir = str(node["output_dir"].evaluate()).strip()
    if not output_dir:
        try:
            script = nuke.scriptName()
        except RuntimeError:
            raise SettingsError("save the script first, or set the node's output folder") from None
        # the full name (Group1.FaceBridge1): same-named nodes in different groups get their own folders
        output_dir = default_output_dir(script, node.fullName())
    return NodeSettings(node.name(), params, sources, str(node["server"].value()).strip(), frames,
                        node_folders(output_dir, node.name()), _ocio_config())


def _knob(node: Any, name: str, default: Any) -> Any:
    """A Farm-tab knob's value; ``default`` on a node saved before the tab existed."""
    knob = node.knob(name)
    return default if knob is None else knob.value()


def read_farm_settings(node: Any, settings: NodeSettings) -> FarmSettings:
    """The node's Farm tab, checked (a node saved before the tab existed gets its defaults).

    Raises:
        SettingsError: an unknown scheduler or a chunk that is not a positive whole number.
    """
    scheduler = str(_knob(node, "farm_scheduler", FARM_SCHEDULERS[0])).strip()
    if scheduler not in FARM_SCHEDULERS:
        raise SettingsError("the farm scheduler must be one of %s, got '%s'" % (", ".join(FARM_SCHEDULERS),
                                                                                 scheduler))
    knob = node.knob("farm_bundle")
    bundle = str(knob.evaluate()).strip() if knob is not None else ""
    return FarmSettings(scheduler, farm_chunk(_knob(node, "farm_chunk", FARM_CHUNK)),
                        os.path.abspath(bundle) if bundle else os.path.join(settings.folders.output_dir, "farm"),
                        str(_knob(node, "farm_show", "")).strip(), str(_knob(node, "farm_user", "")).strip(),
                        bool(_knob(node, "farm_dry_run", False)), str(_knob(node, "farm_cli", "")).strip())


def show_results(node: Any, result_pattern: Optional[str], frames: FrameRange) -> None:
    """Point the internal Read at the results (or back to pass-through when None).

    ``fromUserText`` takes the frame range and opens the file for its format; ``reload`` drops the frames
    Nuke cached from an earlier render at the same path. A frame that failed has no file: the Read shows
    it as a checkerboard (the status knob names the failed frames) instead of erroring downstream renders.
    """
    read = node.node(READ)
    switch = node.node(SWITCH)
    if result_pattern is None:
        switch["which"].setValue(0)
        return
    read["raw"].setValue(True)
    read["on_error"].setValue("checkerboard")
    read["file"].fromUserText("%s %d-%d" % (knob_path(result_pattern), frames.first, frames.last))
    read["first"].setValue(frames.first)
    read["last"].setValue(frames.last)
    read["reload"].execute()
    switch["which"].setValue(1)


def set_status(node: Any, text: str) -> None:
    node["status"].setValue(text)


# --- buttons --------------------------------------------------------------------------------------


def on_render(node: Any) -> None:
    from . import render

    render.start(node, "render")


def on_analyse(node: Any) -> None:
    from . import render

    render.start(node, "analyse")


def on_send_to_farm(node: Any) -> None:
    from . import render

    render.start(node, "farm")


def on_open_panel(node: Any) -> None:
    from . import panel

    panel.open_panel(node)


def on_get_from_panel(node: Any) -> None:
    from . import panel

    panel.get_from_panel(node)
