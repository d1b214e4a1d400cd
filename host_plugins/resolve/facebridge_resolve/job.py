"""One facebridge job in Resolve: EXR frames out, through the sidecar, results back on the timeline.

Target: the timeline's video in/out range when both marks are set, else the current video item (the
clip under the playhead). Frames:

- read straight from the source EXR sequence when the target lies within one clip that is an EXR
  image sequence played 1:1;
- otherwise rendered by a render job (single clip, EXR, lossless) of the record range into the job's
  work folder. Render settings of the Deliver page are restored afterwards where the API can read them.

Results (``<output>/<clip>_<record frame>/<clip>.####.exr``) are imported into the media pool as one
clip and placed on a new video track (added on top, so above the source) at the same record frame.

Only calls documented in Blackmagic's scripting README are made (host_plugins/resolve/README.md lists
them); the logic lives in ``host_plugins.common``.
"""

import os
import shutil
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from host_plugins.common.command import CliNotFound, RenderRequest, process_argv, resolve_cli
from host_plugins.common.frames import FrameRange, FrameRangeError, item_record_range, marks_record_range
from host_plugins.common.knobs import SettingsError, validate_params
from host_plugins.common.progress import EXIT_FRAMES_FAILED, EXIT_OK, ProgressEvent, ProgressModel, run_sidecar
from host_plugins.common.resolve_render import (RENDER_MODE_SINGLE_CLIP, Placement, PlanError, covering_items,
                                                default_output_root, direct_source, exr_codec, exr_format,
                                                import_clip_info, job_finished, job_output_dir, render_settings)
from host_plugins.common.sequence import (FrameSequence, SequenceError, clip_stem, find_sequence, node_folders,
                                          safe_name, shot_id)

FREE_EDITION = ("facebridge needs DaVinci Resolve Studio: this is %s. Python scripts (the Workspace > Scripts menu "
                "from Resolve 21.1, and external scripting in every version) are Studio features.")
NO_SCRIPTING = ("DaVinci Resolve scripting is unavailable: start Resolve Studio, and for runs from outside Resolve "
                "set Preferences > System > General > External scripting using to Local.")


class ResolveJob(NamedTuple):
    """What the artist chose: parameters, sources, server, where results go."""

    params: Dict[str, object]
    sources: List[str]
    server: str = ""
    output_root: str = ""


class JobOutcome(NamedTuple):
    ok: bool
    message: str
    returncode: int                # 0 ok, 1 some frames failed, 2 nothing done
    timeline_item: Any = None      # the placed TimelineItem (a Resolve object), or None
    output_pattern: str = ""


class JobError(RuntimeError):
    """A step that cannot go on; the message is for the artist."""


class Target(NamedTuple):
    name: str
    record: FrameRange
    direct: Optional[tuple]        # (FrameSequence, SourceMapping) for a straight read


def scripting_problem(resolve: Any) -> str:
    """A message when scripting cannot be used (no ``resolve`` object, free edition), else ""."""
    if resolve is None:
        return NO_SCRIPTING
    product = str(resolve.GetProductName() or "")
    if "studio" not in product.lower():
        return FREE_EDITION % (product or "the free edition")
    return ""


def _video_items(timeline: Any) -> List[tuple]:
    items = []
    for track in range(1, int(timeline.GetTrackCount("video")) + 1):
        for item in timeline.GetItemListInTrack("video", track) or []:
            items.append((track, int(item.GetStart()), int(item.GetDuration()), item))
    return items


def _direct(item: Any, record: FrameRange) -> Optional[tuple]:
    """Straight-read plan for ``record`` frames of ``item``, or None."""
    media = item.GetMediaPoolItem()
    if media is None:
        return None
    item_record = item_record_range(item.GetStart(), item.GetDuration())
    found = direct_source(item_record, str(media.GetClipProperty("File Path") or ""), int(item.GetSourceStartFrame()),
                          int(item.GetSourceEndFrame()))
    if found is None or record.intersect(item_record) != record:
        return None
    return found


def find_target(timeline: Any) -> Target:
    """The in/out range (both marks set) or the current video item, and how to get its frames."""
    marks = marks_record_range(timeline.GetMarkInOut(), int(timeline.GetStartFrame()), int(timeline.GetEndFrame()))
    if marks is not None:
        covering = covering_items(_video_items(timeline), marks)
        direct = _direct(covering[0][3], marks) if len(covering) == 1 else None
        return Target("%s_inout" % safe_name(str(timeline.GetName()), "timeline"), marks, direct)
    item = timeline.GetCurrentVideoItem()
    if item is None:
        raise JobError("put the playhead over a video clip, or set the timeline's in and out marks")
    record = item_record_range(item.GetStart(), item.GetDuration())
    return Target(clip_stem(str(item.GetName())), record, _direct(item, record))


def _render_range(project: Any, record: FrameRange, folder: str, name: str, log: Callable[[str], None],
                  sleep: Callable[[float], None], poll_s: float) -> FrameSequence:
    """Render ``record`` frames of the current timeline to an EXR sequence in ``folder``."""
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    previous = project.GetCurrentRenderFormatAndCodec() or {}
    previous_mode = project.GetCurrentRenderMode()
    job_id = None
    try:
        fmt = exr_format(project.GetRenderFormats() or {})
        codec = exr_codec(project.GetRenderCodecs(fmt) or {})
        if not project.SetCurrentRenderFormatAndCodec(fmt, codec):
            raise JobError("Resolve refused the render format %s / %s" % (fmt, codec))
        if not project.SetCurrentRenderMode(RENDER_MODE_SINGLE_CLIP):
            raise JobError("Resolve refused the single-clip render mode")
        if not project.SetRenderSettings(render_settings(record, folder, name)):
            raise JobError("Resolve refused the render settings for frames %s" % record.arg())
        job_id = project.AddRenderJob()
        if not job_id:
            raise JobError("Resolve could not add a render job")
        log("facebridge: rendering frames %s to EXR (%s)" % (record.arg(), codec))
        if not project.StartRendering([job_id], isInteractiveMode=False):
            raise JobError("Resolve could not start the render job")
        last, idle = -1, 0
        while True:
            rendering = project.IsRenderingInProgress()
            status = project.GetRenderJobStatus(job_id) or {}
            done = job_finished(status)
            if not rendering and done is not None:
                break
            idle = idle + 1 if not rendering else 0
            if idle > 50:
                raise JobError("the render job stopped without a final status (%r)" % (status,))
            percent = int(status.get("CompletionPercentage", 0) or 0)
            if percent != last:
                log("facebridge: render job %d%%" % percent)
                last = percent
            sleep(poll_s)
        if done != "Complete":
            raise JobError("the render job ended as %s" % done)
        log("facebridge: render job complete")
    finally:
        if job_id:
            project.DeleteRenderJob(job_id)
        if previous.get("format") and previous.get("codec"):
            project.SetCurrentRenderFormatAndCodec(previous["format"], previous["codec"])
        if previous_mode is not None:
            project.SetCurrentRenderMode(previous_mode)
    try:
        sequence = find_sequence(folder, name)
    except SequenceError as exc:
        raise JobError("the render job's frames: %s" % exc) from None
    if sequence.length != record.length:
        raise JobError("the render job wrote %d frames for %d record frames" % (sequence.length, record.length))
    return sequence


def run_job(resolve: Any, job: ResolveJob, log: Callable[[str], None] = print,
            sleep: Callable[[float], None] = time.sleep, poll_s: float = 0.5) -> JobOutcome:
    """Run one job on the current timeline of the current project."""
    problem = scripting_problem(resolve)
    if problem:
        return JobOutcome(False, problem, 2)
    try:
        params = validate_params(job.params)
        cli = resolve_cli()
        project = resolve.GetProjectManager().GetCurrentProject()
        if project is None:
            raise JobError("open a project first")
        timeline = project.GetCurrentTimeline()
        if timeline is None:
            raise JobError("open a timeline first")
        target = find_target(timeline)
        output = job_output_dir(job.output_root or default_output_root(), str(project.GetName()),
                                str(timeline.GetName()), target.name, target.record.first)
        if target.direct is not None:
            sequence, mapping = target.direct
            source = mapping.for_records(target.record)
            log("facebridge: reading %s frames %s directly" % (sequence.hashes, source.arg()))
        else:
            sequence = _render_range(project, target.record, os.path.join(output, "work", "render"), target.name,
                                     log, sleep, poll_s)
            source = FrameRange(sequence.first, sequence.last)
        folders = node_folders(output, target.name, sequence.padding)
        request = RenderRequest(params, sequence.hashes, folders.result_pattern, source, source, job.sources,
                                job.server, shot_id("resolve", folders.result_pattern), folders.report_path)
        argv = process_argv(cli, request)
    except (SettingsError, CliNotFound, JobError, PlanError, FrameRangeError) as exc:
        return JobOutcome(False, str(exc), 2)

    def on_event(event: ProgressEvent, model: ProgressModel) -> None:
        if event.kind in ("frame", "end") or (event.kind == "analyse" and event.data.get("done") == 1):
            log("facebridge: %3d%% %s" % (model.percent, model.message))

    os.makedirs(folders.work_dir, exist_ok=True)
    try:
        result = run_sidecar(argv, on_event)
    except OSError as exc:
        return JobOutcome(False, "cannot run facebridge: %s" % exc, 2)
    if result.returncode not in (EXIT_OK, EXIT_FRAMES_FAILED):
        return JobOutcome(False, result.describe(), 2)
    prefix, _dot, suffix = folders.result_pattern.partition("#" * sequence.padding)
    results = FrameSequence(prefix, sequence.padding, suffix, source.first, source.last)
    missing = [f for f in range(source.first, source.last + 1) if not os.path.isfile(results.path(f))]
    if missing:
        return JobOutcome(False, "%s; %d result frames missing, nothing placed" % (result.describe(), len(missing)), 1)
    media_pool = project.GetMediaPool()
    clips = media_pool.ImportMedia([import_clip_info(results)]) or []
    if len(clips) != 1:
        return JobOutcome(False, "Resolve did not import %s as one clip" % results.printf, 2)
    if not timeline.AddTrack("video"):
        return JobOutcome(False, "Resolve could not add a video track", 2)
    placement = Placement(int(timeline.GetTrackCount("video")), target.record.first, target.record.length)
    placed = media_pool.AppendToTimeline([placement.clip_info(clips[0])]) or []
    if not placed:
        return JobOutcome(False, "Resolve did not place the results on track V%d" % placement.track_index, 2)
    message = "%s; placed on V%d at frame %d" % (result.describe(), placement.track_index, placement.record_first)
    return JobOutcome(result.returncode == EXIT_OK, message, int(result.returncode), placed[0], results.hashes)
