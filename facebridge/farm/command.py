"""``facebridge farm openjd|opencue``: the arguments of ``facebridge process`` plus the farm's, as a farm job.

The parser is standard library only (``facebridge --help`` loads neither the schedulers' packages nor gRPC).
The settings are checked by the schema before anything is written (a bad value exits 2), then written into
every render command explicitly.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from typing import TYPE_CHECKING

from . import FarmError

if TYPE_CHECKING:
    from .job import FarmJob

SCHEDULERS = ("openjd", "opencue")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return value


def default_cli() -> list[str]:
    """The ``facebridge`` the farm runs by default: this one (``sys.executable -m facebridge``)."""
    return [sys.executable, "-m", "facebridge"]


def _add_farm_options(parser: argparse.ArgumentParser) -> None:
    from facebridge.client.options import add_process_arguments

    add_process_arguments(parser)
    farm = parser.add_argument_group("farm")
    farm.add_argument("--chunk", type=_positive, default=10, metavar="N", help="frames per render task (default 10)")
    try:  # process has --analysis (render from the file) too: here the file the job writes, then reads
        farm.add_argument("--analysis", metavar="FILE",
                          help="the shot's analysis file, written by the analyse task and read by every render "
                               "task (default OUTPUT_FOLDER/SHOT.fbanalysis; on storage every farm machine reads)")
    except argparse.ArgumentError:
        pass
    farm.add_argument("--report-dir", metavar="DIR",
                      help="one JSON report per task (default OUTPUT_FOLDER/farm_reports)")
    farm.add_argument("--cli", metavar="COMMAND",
                      help="the facebridge command on the farm machines, e.g. '/opt/fb/bin/facebridge' "
                           "(default: this one, '%s -m facebridge'; 'facebridge' uses the one on PATH)"
                           % sys.executable.replace("%", "%%"))
    farm.add_argument("--name", default="", help="the job's name (default facebridge-SHOT)")


def add_farm_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """``facebridge farm openjd ...`` and ``facebridge farm opencue ...``."""
    farm = commands.add_parser("farm", help="render a shot on a farm: an analyse task, then render tasks in chunks "
                                            "(Open Job Description / AWS Deadline Cloud, OpenCue)")
    schedulers = farm.add_subparsers(dest="scheduler", required=True, metavar="SCHEDULER")
    openjd = schedulers.add_parser("openjd", help="write an Open Job Description job bundle (openjd run, "
                                                  "deadline bundle submit)")
    _add_farm_options(openjd)
    openjd.add_argument("--bundle", required=True, metavar="DIR", help="the job bundle folder (DIR/template.yaml)")
    opencue = schedulers.add_parser("opencue", help="submit an OpenCue job (pyoutline) to Cuebot")
    _add_farm_options(opencue)
    cue = opencue.add_argument_group("OpenCue")
    cue.add_argument("--show", help="the show (default $CUE_SHOW, $SHOW, else 'testing')")
    cue.add_argument("--shot-name", help="the farm's shot name (default $CUE_SHOT, $SHOT, else 'default'); "
                                         "--shot is facebridge's shot id")
    cue.add_argument("--user", help="submit as this user (default $CUE_USER, $USER)")
    cue.add_argument("--dry-run", action="store_true", help="print the job spec XML and submit nothing")
    farm.set_defaults(func=run)


def _frames(args: argparse.Namespace) -> tuple[list[int], list[int]]:
    """The frames to render and the frames the analysis covers (both written into the job)."""
    from facebridge.client.sequence import PatternError, parse_frame_range, parse_pattern

    inputs = parse_pattern(args.input)
    if not inputs.is_sequence:
        raise PatternError("a farm job renders a sequence: --input needs #### or %04d")
    if not parse_pattern(args.output).is_sequence:
        raise PatternError("--output needs #### or %04d, like --input")
    on_disk = inputs.existing_frames()
    frames = parse_frame_range(args.frames) if args.frames else on_disk
    if not frames:
        raise PatternError(f"no files match '{args.input}': give --frames")
    analysed = parse_frame_range(args.analyse_range) if args.analyse_range else (on_disk or frames)
    return frames, analysed


def build_job(args: argparse.Namespace) -> FarmJob:
    """The farm job of the parsed arguments.

    Raises:
        SettingError, PatternError, FarmError: a bad setting, pattern or frame range; options a farm job
            cannot take.
    """
    from facebridge.client.options import render_params
    from facebridge.client.process_cmd import default_shot
    from host_plugins.common.command import param_args

    from .job import FarmJob, JobPaths

    if args.no_analyse:
        raise FarmError("a farm job always analyses the shot first (its analyse task); drop --no-analyse")
    if args.report:
        raise FarmError("each farm task writes its own report: use --report-dir DIR instead of --report")
    params = render_params(args)  # SettingError before anything is written
    if params.needs_source and not args.source:
        raise FarmError(f"mode '{params.mode}' needs at least one --source image")
    frames, analysed = _frames(args)
    shot = args.shot or default_shot(args.input)
    output_folder = os.path.dirname(os.path.abspath(args.output))
    absolute = os.path.abspath
    paths = JobPaths(input=absolute(args.input), output=absolute(args.output),
                     analysis=absolute(args.analysis or os.path.join(output_folder, f"{shot}.fbanalysis")),
                     report_dir=absolute(args.report_dir or os.path.join(output_folder, "farm_reports")),
                     sources=tuple(absolute(s) for s in args.source),
                     models_dir=absolute(args.models_dir) if args.models_dir else None,
                     cache_dir=absolute(args.cache_dir) if args.cache_dir else None)
    cli = shlex.split(args.cli) if args.cli else default_cli()
    if not cli:
        raise FarmError("--cli is empty")
    if args.cli and len(cli) == 1 and os.sep not in cli[0] and not shutil.which(cli[0]):
        print(f"facebridge: note: '{cli[0]}' is not on this machine's PATH; the farm machines need it",
              file=sys.stderr)
    options = ["--device", args.device, "--transport", args.transport] + (["--server", args.server] if args.server
                                                                          else [])
    return FarmJob(cli=tuple(cli), shot=shot, paths=paths, frames=tuple(frames), analyse_frames=tuple(analysed),
                   chunk=args.chunk, settings=tuple(param_args(params.settings())),
                   keyframe_interval=params.keyframe_interval, options=tuple(options), name=args.name)


def run(args: argparse.Namespace) -> int:
    """``facebridge farm``: 0 written/submitted, 2 nothing was (the message says why)."""
    from facebridge.client.sequence import PatternError
    from facebridge.schema import SettingError

    from .job import chunks

    try:
        job = build_job(args)
        tasks = chunks(job.frames, job.chunk)
        if args.scheduler == "openjd":
            from .openjd import run_command, write_bundle

            path = write_bundle(job, os.path.abspath(args.bundle))
            print(f"wrote {path.parent}: analyse, then {len(tasks)} render task(s) of up to {job.chunk} frame(s)")
            print(f"run it here: {shlex.join(run_command(path))}")
            print(f"submit it:   deadline bundle submit {shlex.quote(str(path.parent))}")
            return 0
        from .opencue import CueTarget, default_target, spec_xml, submit

        default = default_target()
        target = CueTarget(show=args.show or default.show, shot=args.shot_name or default.shot,
                           user=args.user or default.user)
        if args.dry_run:
            print(spec_xml(job, target))
            return 0
        names = submit(job, target)
        print(f"submitted {', '.join(names)} to Cuebot: analyse, then {len(tasks)} render task(s)")
        return 0
    except (FarmError, PatternError, SettingError, ValueError) as exc:
        print(f"facebridge: error: {exc}", file=sys.stderr)
        return 2


__all__ = ["SCHEDULERS", "add_farm_parser", "build_job", "default_cli", "run"]
