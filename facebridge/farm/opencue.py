"""An OpenCue job of a :class:`FarmJob`, built with pyoutline.

Two layers: ``analyse`` (one frame: the whole shot's analysis) and ``render`` over the frame range in chunks,
which depends on ``analyse`` (layer on layer). Each layer runs our command directly (pyoutline's
``serialize_simple``: no pycuerun wrapper on the farm machines); the render command reads its chunk from
Cuebot's ``#FRAME_START#``/``#FRAME_END#`` tokens. The command lines are shell-quoted, as RQD runs them
through a shell.

pyoutline builds the job spec XML without a Cuebot (``--dry-run`` prints it); submitting sends it to the
Cuebot that pycue is configured for (``$CUEBOT_HOSTS`` or pycue's config file).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import Any

from . import EXTRA_HINT, FarmError, MissingExtra
from .job import FarmJob, analyse_argv, range_expr, render_report, render_args

CHUNK_FRAMES = "#FRAME_START#-#FRAME_END#"
"""What Cuebot replaces with a render task's first and last frame."""
ANALYSE_LAYER, RENDER_LAYER = "analyse", "render"


@dataclass(frozen=True)
class CueTarget:
    """Where the job goes on the farm: the show, the shot and the user it is submitted as."""

    show: str
    shot: str
    user: str


def default_target(env: dict[str, str] | None = None) -> CueTarget:
    """pyoutline's conventions: ``$SHOW``/``$SHOT``/``$USER`` (``$CUE_SHOW``/``$CUE_SHOT`` first, as cuesubmit's
    users set them), else pyoutline's defaults ``testing``/``default`` and the login name."""
    import getpass

    env = dict(os.environ if env is None else env)
    user = env.get("CUE_USER") or env.get("USER") or env.get("USERNAME") or getpass.getuser()
    return CueTarget(show=env.get("CUE_SHOW") or env.get("SHOW") or "testing",
                     shot=env.get("CUE_SHOT") or env.get("SHOT") or "default", user=user)


def analyse_command(job: FarmJob) -> str:
    return shlex.join(analyse_argv(job))


def render_command(job: FarmJob) -> str:
    """The render layer's command: Cuebot puts the chunk's frames in place of ``#FRAME_START#-#FRAME_END#``."""
    paths = job.paths
    return shlex.join(list(job.cli) + render_args(job, paths, CHUNK_FRAMES, render_report(paths.report_dir,
                                                                                            CHUNK_FRAMES)))


def _outline() -> Any:
    try:
        import outline
        import outline.cuerun
        import outline.depend
        import outline.modules.shell
    except ImportError:
        raise MissingExtra(f"an OpenCue job needs opencue-pyoutline and opencue-pycue: {EXTRA_HINT}") from None
    return outline


def build_outline(job: FarmJob, target: CueTarget) -> Any:
    """The pyoutline ``Outline`` of the job (two layers, render depending on analyse)."""
    outline = _outline()
    shell = outline.modules.shell.Shell
    frames = range_expr(job.frames)
    ol = outline.Outline(job.job_name, frame_range=frames, shot=target.shot, show=target.show, user=target.user)
    analyse = shell(ANALYSE_LAYER, command=analyse_command(job), range=str(job.frames[0]), chunk=1)
    render = shell(RENDER_LAYER, command=render_command(job), range=frames, chunk=job.chunk)
    ol.add_layer(analyse)
    ol.add_layer(render)
    render.depend_on(analyse, outline.depend.DependType.LayerOnLayer)
    return ol


def _launcher(job: FarmJob, target: CueTarget) -> Any:
    outline = _outline()
    return outline.cuerun.OutlineLauncher(build_outline(job, target), user=target.user, show=target.show,
                                          shot=target.shot, nomail=True)


def spec_xml(job: FarmJob, target: CueTarget) -> str:
    """The job spec XML that would be sent to Cuebot (built without one)."""
    try:
        return str(_launcher(job, target).serialize(use_pycuerun=False))
    except MissingExtra:
        raise
    except Exception as exc:  # pyoutline raises its own exceptions and OSError (its session folder)
        raise FarmError(f"cannot build the OpenCue job: {exc}") from None


def submit(job: FarmJob, target: CueTarget) -> list[str]:
    """Submit the job to Cuebot; returns the names of the jobs it created."""
    launcher = _launcher(job, target)
    try:
        jobs = launcher.launch(use_pycuerun=False)
    except Exception as exc:  # pycue raises its own exceptions (an unreachable Cuebot among them)
        raise FarmError(f"cannot submit to Cuebot: {exc}") from None
    return [str(j.name()) for j in jobs]


__all__ = ["ANALYSE_LAYER", "CHUNK_FRAMES", "CueTarget", "RENDER_LAYER", "analyse_command", "build_outline",
           "default_target", "render_command", "spec_xml", "submit"]
