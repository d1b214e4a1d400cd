"""Which ``facebridge`` to run, and the argv of ``facebridge process`` / ``analyse`` / ``farm``.

Hosts drive the client as a sidecar process because their interpreters must not import grpc or
protobuf. The command comes from, in order:

1. ``$FACEBRIDGE_CLI``: a JSON array (``["/opt/fb/bin/python", "-m", "facebridge"]``) or a
   single executable path (``/opt/fb/bin/facebridge``). ``facebridge install`` records it for Nuke and
   Resolve, so hosts find the environment it was installed from.
2. ``facebridge`` on ``$PATH``.

The sidecar runs without the host's ``PYTHONPATH``/``PYTHONHOME`` (:func:`sidecar_env`).

Every parameter is passed explicitly, so the sidecar's defaults never decide a render.
"""

import json
import os
import shutil
from typing import List, Mapping, NamedTuple, Optional, Sequence

from facebridge import schema

from .frames import FrameRange
from .knobs import SettingsError, format_regions, needs_source, validate_params

ENV_CLI = "FACEBRIDGE_CLI"


class CliNotFound(RuntimeError):
    """No ``facebridge`` command could be found; the message says how to point hosts at one."""


def resolve_cli(env: Optional[Mapping[str, str]] = None) -> List[str]:
    """The sidecar command as an argv prefix.

    Raises:
        CliNotFound: ``$FACEBRIDGE_CLI`` is malformed, or unset with no ``facebridge`` on ``$PATH``.
    """
    env = os.environ if env is None else env
    value = env.get(ENV_CLI, "").strip()
    if value:
        if value.startswith("["):
            try:
                argv = json.loads(value)
            except ValueError as exc:
                raise CliNotFound("%s is not a valid JSON array: %s" % (ENV_CLI, exc)) from None
            if not argv or not all(isinstance(a, str) and a for a in argv):
                raise CliNotFound("%s must be a non-empty JSON array of strings" % ENV_CLI)
            return list(argv)
        return [value]
    found = shutil.which("facebridge", path=env.get("PATH"))
    if found:
        return [found]
    raise CliNotFound("cannot find the facebridge command: run `facebridge install nuke|resolve` from the "
                      "environment facebridge is installed in, or set %s to its path (or to a JSON array such as "
                      "[\"/path/to/python\", \"-m\", \"facebridge\"])" % ENV_CLI)


ENV_SIDECAR_PYTHONPATH = "FACEBRIDGE_CLI_PYTHONPATH"
_HOST_PYTHON_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "PYTHONUSERBASE")


def sidecar_env(env: Optional[Mapping[str, str]] = None) -> dict:
    """The sidecar's environment: the host's, without the host interpreter's Python variables.

    Nuke and Resolve (or a studio's launcher) may point ``PYTHONPATH``/``PYTHONHOME`` at the host's own
    packages, an old protobuf among them; the sidecar is another Python and must not see them. Set
    ``$FACEBRIDGE_CLI_PYTHONPATH`` when the facebridge installation itself needs a ``PYTHONPATH``.
    """
    env = dict(os.environ if env is None else env)
    for name in _HOST_PYTHON_VARIABLES:
        env.pop(name, None)
    if env.get(ENV_SIDECAR_PYTHONPATH):
        env["PYTHONPATH"] = env[ENV_SIDECAR_PYTHONPATH]
    return env


def encode_cli(argv: Sequence[str]) -> str:
    """The ``$FACEBRIDGE_CLI`` value for ``argv`` (what ``facebridge install`` records)."""
    return json.dumps(list(argv))


class RenderRequest(NamedTuple):
    """Everything one sidecar render needs besides the command itself.

    Attributes:
        params: RenderParams fields (validated again here).
        input_pattern: the frames to read (``####``).
        output_pattern: where results go (``####``).
        frames: the frames to render.
        analyse_range: the frames the shot analysis covers (the whole shot; a farm chunk renders part).
        sources: source identity images (swap modes need at least one).
        server: ``HOST:PORT``, or "" for a private local server.
        shot: the shot id shared by analyse and process.
        report: a JSON report path, or "".
    """

    params: Mapping[str, object]
    input_pattern: str
    output_pattern: str
    frames: FrameRange
    analyse_range: Optional[FrameRange] = None
    sources: Sequence[str] = ()
    server: str = ""
    shot: str = ""
    report: str = ""


def param_args(params: Mapping[str, object]) -> List[str]:
    """Every setting as its ``facebridge process`` option (the schema's flags), so the sidecar's defaults never
    decide a render: numbers as ``repr`` (they survive exactly), empty strings, no regions and a false
    switch left out."""
    checked = validate_params(params)
    args: List[str] = []
    for setting in schema.SETTINGS:
        value = checked[setting.name]
        if setting.kind == "bool":
            args += [setting.flag] if value else []
        elif setting.kind == "regions":
            args += [setting.flag, format_regions(value)] if value else []
        elif setting.kind in ("float", "int"):
            args += [setting.flag, repr(value)]
        elif value != "":
            args += [setting.flag, str(value)]
    return args


def _connection_args(server: str, shot: str, report: str) -> List[str]:
    args = ["--progress", "json"]
    if server:
        args += ["--server", server]
    if shot:
        args += ["--shot", shot]
    if report:
        args += ["--report", report]
    return args


def _request_args(request: RenderRequest) -> List[str]:
    """Input, output, frames, analysed range, sources and every setting of ``request``: what ``process`` and
    ``farm`` share.

    Raises:
        SettingsError: a swap mode without a source image, or a bad parameter.
    """
    if needs_source(request.params) and not [s for s in request.sources if s]:
        raise SettingsError("mode '%s' needs at least one source image" % request.params.get("mode"))
    args = ["--input", request.input_pattern, "--output", request.output_pattern, "--frames", request.frames.arg()]
    if request.analyse_range is not None:
        args += ["--analyse-range", request.analyse_range.arg()]
    for source in request.sources:
        if source:
            args += ["--source", source]
    return args + param_args(request.params)


def process_argv(cli: Sequence[str], request: RenderRequest) -> List[str]:
    """``facebridge process ...`` for ``request``.

    Raises:
        SettingsError: a swap mode without a source image, or a bad parameter.
    """
    return list(cli) + ["process"] + _request_args(request) + _connection_args(request.server, request.shot,
                                                                               request.report)


FARM_SCHEDULERS = ("openjd", "opencue")
FARM_CHUNK = 10   # frames per render task, as ``facebridge farm --chunk``


def farm_chunk(value: object) -> int:
    """A chunk size from a knob or a text field: a positive whole number.

    Raises:
        SettingsError: anything else.
    """
    text = str(value).strip()
    try:
        number = float(text)
        whole = int(number) if number == int(number) else 0   # 10.0 from a knob is 10; 2.5, nan, inf are not
    except (ValueError, OverflowError):
        whole = 0
    if whole < 1:
        raise SettingsError("the farm chunk must be a positive whole number of frames, got '%s'" % text)
    return whole


def farm_argv(cli: Sequence[str], request: RenderRequest, scheduler: str, chunk: object = FARM_CHUNK,
              bundle_dir: str = "", show: str = "", user: str = "", dry_run: bool = False,
              farm_cli: str = "") -> List[str]:
    """``facebridge farm openjd|opencue ...``: the render of ``request`` as a farm job.

    The same input, output, frames, analysed range, sources and settings (every one explicit) as
    :func:`process_argv` for the same request, so the farm renders what a local render would; the server and
    shot id too. ``request.report`` is not used: each farm task writes its own report (``facebridge farm``'s
    ``--report-dir``, default ``OUTPUT_FOLDER/farm_reports``).

    Args:
        scheduler: ``openjd`` (writes a job bundle into ``bundle_dir``) or ``opencue`` (submits to Cuebot, or
            prints the job spec with ``dry_run``; ``show``/``user`` default to pyoutline's conventions).
        chunk: frames per render task.
        farm_cli: the ``facebridge`` command on the farm machines (``--cli``); "" = the one that writes the job.

    Raises:
        SettingsError: an unknown scheduler, a bad chunk, OpenJD without a bundle folder, a swap mode without
            a source image, or a bad parameter.
    """
    if scheduler not in FARM_SCHEDULERS:
        raise SettingsError("the farm scheduler must be one of %s, got '%s'" % (", ".join(FARM_SCHEDULERS), scheduler))
    size = farm_chunk(chunk)
    args = _request_args(request)
    if request.server:
        args += ["--server", request.server]
    if request.shot:
        args += ["--shot", request.shot]
    args += ["--chunk", str(size)]
    if farm_cli.strip():
        args += ["--cli", farm_cli.strip()]
    if scheduler == "openjd":
        if not bundle_dir.strip():
            raise SettingsError("an Open Job Description job needs a bundle folder")
        args += ["--bundle", bundle_dir]
    else:
        args += (["--show", show.strip()] if show.strip() else []) + (["--user", user.strip()] if user.strip() else [])
        args += ["--dry-run"] if dry_run else []
    return list(cli) + ["farm", scheduler] + args


def analyse_argv(cli: Sequence[str], input_pattern: str, frames: FrameRange, keyframe_interval: int,
                 server: str = "", shot: str = "", report: str = "") -> List[str]:
    """``facebridge analyse ...``: the shot analysis alone (a later render replays it)."""
    return list(cli) + ["analyse", "--input", input_pattern, "--frames", frames.arg(),
                        "--keyframe-interval", str(int(keyframe_interval))] + _connection_args(server, shot, report)


def split_sources(text: str) -> List[str]:
    """Source image paths from a knob or a dialog field: one per line, or separated by ``;``."""
    parts = [p.strip() for line in str(text).splitlines() for p in line.split(";")]
    return [p for p in parts if p]


__all__ = ["CliNotFound", "ENV_CLI", "ENV_SIDECAR_PYTHONPATH", "FARM_CHUNK", "FARM_SCHEDULERS", "RenderRequest",
           "SettingsError", "analyse_argv", "encode_cli", "farm_argv", "farm_chunk", "param_args", "process_argv",
           "resolve_cli", "sidecar_env", "split_sources"]
