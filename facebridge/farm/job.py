"""The farm job of a shot, independent of the scheduler: frames, chunks, and the task command lines.

Pure functions producing data. Every render setting is written into the render command explicitly (the
farm machine's defaults never decide a render), the shot id too (never derived on the farm machine, whose
paths may be mapped). Paths come in as :class:`JobPaths`, either the real paths (OpenCue) or a
scheduler's references to its job parameters (OpenJD's ``{{Param.InputPattern}}``), so a farm's path
mapping applies to every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

ANALYSE_REPORT = "analyse.json"


class JobPaths(NamedTuple):
    """Every path a task command line names (values, or a scheduler's references to them)."""

    input: str
    output: str
    analysis: str
    report_dir: str
    sources: tuple[str, ...] = ()
    models_dir: str | None = None
    cache_dir: str | None = None


@dataclass(frozen=True)
class FarmJob:
    """A shot as a farm job.

    Attributes:
        cli: the ``facebridge`` command on the farm machines, as an argv prefix.
        shot: the shot id every task uses.
        paths: the real paths.
        frames: the frames to render (sorted).
        analyse_frames: the frames the analysis covers (the whole shot).
        chunk: frames per render task.
        settings: every render setting as its ``process`` option (``param_args``).
        keyframe_interval: the analysis setting, for the analyse task.
        options: further ``process``/``analyse`` options (``--device``, ``--transport``, ``--server``).
        name: the job's name on the farm.
    """

    cli: tuple[str, ...]
    shot: str
    paths: JobPaths
    frames: tuple[int, ...]
    analyse_frames: tuple[int, ...]
    chunk: int
    settings: tuple[str, ...]
    keyframe_interval: int
    options: tuple[str, ...] = ()
    name: str = field(default="")

    @property
    def job_name(self) -> str:
        return self.name or f"facebridge-{self.shot}"


def runs(frames: Sequence[int]) -> list[tuple[int, int]]:
    """Contiguous runs ``(first, last)`` of sorted unique ``frames``."""
    out: list[tuple[int, int]] = []
    for frame in sorted(set(frames)):
        if out and frame == out[-1][1] + 1:
            out[-1] = (out[-1][0], frame)
        else:
            out.append((frame, frame))
    return out


def _run_text(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def range_expr(frames: Sequence[int]) -> str:
    """``1001-1006`` or ``1001-1003,1005``: read alike by ``facebridge --frames``, OpenJD and OpenCue."""
    return ",".join(_run_text(a, b) for a, b in runs(frames))


def chunks(frames: Sequence[int], size: int) -> list[str]:
    """The render tasks' frame ranges: each contiguous run cut into pieces of ``size`` frames, the last one
    shorter (as OpenCue chunks a layer; OpenJD's ``CHUNK[INT]`` makes as many chunks of at most ``size`` frames
    but may even out their lengths: 6 frames in chunks of 4 are 1-3 and 4-6)."""
    if size < 1:
        raise ValueError("a chunk holds at least one frame")
    out: list[str] = []
    for first, last in runs(frames):
        for start in range(first, last + 1, size):
            out.append(_run_text(start, min(start + size - 1, last)))
    return out


def render_report(report_dir: str, frames_text: str) -> str:
    """The report of the render task of ``frames_text`` (one per chunk, so a re-run replaces only its own)."""
    return f"{report_dir}/render.{frames_text}.json"


def _path_options(paths: JobPaths) -> list[str]:
    args: list[str] = []
    if paths.models_dir is not None:
        args += ["--models-dir", paths.models_dir]
    if paths.cache_dir is not None:
        args += ["--cache-dir", paths.cache_dir]
    return args


def analyse_args(job: FarmJob, paths: JobPaths, shot: str | None = None, frames_text: str | None = None) -> list[str]:
    """The analyse task's arguments after the command: the whole shot, written as a read-only file (``shot`` and
    ``frames_text`` replace the job's, e.g. by references to job parameters)."""
    frames_text = range_expr(job.analyse_frames) if frames_text is None else frames_text
    return (["analyse", "--input", paths.input, "--shot", job.shot if shot is None else shot, "--frames", frames_text,
             "--keyframe-interval", str(int(job.keyframe_interval)), "--analysis-out", paths.analysis,
             "--report", f"{paths.report_dir}/{ANALYSE_REPORT}", "--progress", "none"]
            + list(job.options) + _path_options(paths))


def render_args(job: FarmJob, paths: JobPaths, frames_text: str, report: str, shot: str | None = None) -> list[str]:
    """A render task's arguments after the command: ``frames_text`` rendered from the analysis file."""
    sources = [a for s in paths.sources for a in ("--source", s)]
    return (["process", "--input", paths.input, "--output", paths.output] + sources
            + ["--shot", job.shot if shot is None else shot, "--frames", frames_text, "--analysis", paths.analysis, "--report", report,
               "--progress", "none"]
            + list(job.settings) + list(job.options) + _path_options(paths))


def analyse_argv(job: FarmJob) -> list[str]:
    """The analyse task's whole command line, with the real paths."""
    return list(job.cli) + analyse_args(job, job.paths)


def render_argv(job: FarmJob, frames_text: str) -> list[str]:
    """The render task's whole command line for one chunk, with the real paths."""
    return list(job.cli) + render_args(job, job.paths, frames_text, render_report(job.paths.report_dir, frames_text))


__all__ = ["ANALYSE_REPORT", "FarmJob", "JobPaths", "analyse_args", "analyse_argv", "chunks", "range_expr",
           "render_args", "render_argv", "render_report", "runs"]
