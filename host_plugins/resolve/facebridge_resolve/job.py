"""One facebridge job in Resolve: EXR frames out, through the sidecar, results back on the timeline.

Target: the timeline's video in/out range when both marks are set and this Resolve can read them
(``Timeline.GetMarkInOut``, Resolve 20), else the clip under the playhead, whole. Frames:

- read straight from the source EXR sequence when the target lies within one clip that is an EXR
  image sequence played 1:1 (needs ``TimelineItem.GetSourceStartFrame/EndFrame``, Resolve 20); the
  clip's grade is then copied onto the result (``CopyGrades``) so that it looks like the clip it covers;
- otherwise rendered by a render job (single clip, EXR, lossless) of the record range into the job's
  work folder. The Deliver page is saved as a temporary render preset first and loaded back after.

Results (``<output>/<clip>_<record frame>/<clip>.####.exr``) are imported as one clip into the media
pool folder ``facebridge`` (the current folder is restored) and placed on a new video track on top of
the job's timeline (made current again first) at the same record frame, then read back and checked.
Resolve 18 has no ``AddTrack`` nor ``trackIndex``/``recordFrame``: there the result is imported only.

With ``ResolveJob.farm`` set (the dialog's "Run on" choice, ``FACEBRIDGE_FARM``) the frames are found or
rendered the same way, then ``facebridge farm openjd|opencue`` writes the farm job of the same settings instead
of processing here; nothing is placed (the message says what to import when the farm has finished).

Every call is listed, with the README text that documents it per version, in host_plugins/resolve/README.md.
Methods a version lacks are looked up with ``getattr`` (absent, or answering None, counts as missing),
never called blindly. The artist gets one message saying what was processed and anything that differs
from the usual.
"""

import os
import shutil
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from host_plugins.common.command import FARM_CHUNK, CliNotFound, RenderRequest, farm_argv, process_argv, resolve_cli
from host_plugins.common.frames import (FrameRange, FrameRangeError, item_record_range, marks_placeholder,
                                        marks_record_range)
from host_plugins.common.knobs import SettingsError, validate_params
from host_plugins.common.progress import EXIT_FRAMES_FAILED, EXIT_OK, ProgressEvent, ProgressModel, run_sidecar
from host_plugins.common.resolve_render import (RENDER_MODE_SINGLE_CLIP, Placement, PlanError, covering_items,
                                                default_output_root, direct_source, exr_codec, exr_format,
                                                import_clip_info, job_output_dir, job_percent, render_settings)
from host_plugins.common.sequence import (FrameSequence, SequenceError, clip_stem, find_sequence, node_folders,
                                          safe_name, shot_id)

FREE_EDITION = ("facebridge needs DaVinci Resolve Studio: this is %s. Python scripts (the Workspace > Scripts menu "
                "from Resolve 21.1, and external scripting in every version) are Studio features.")
NO_SCRIPTING = ("DaVinci Resolve scripting is unavailable: start Resolve Studio, and for runs from outside Resolve "
                "set Preferences > System > General > External scripting using to Local.")
POOL_FOLDER = "facebridge"
START_POLLS = 100   # polls a render job may take to start before it counts as never started


class ResolveJob(NamedTuple):
    """What the artist chose: parameters, sources, server, where results go, and where it runs (``farm``: ""
    processes here and places the result; ``openjd``/``opencue`` writes a farm job of ``farm_chunk`` frames per
    render task instead)."""

    params: Dict[str, object]
    sources: List[str]
    server: str = ""
    output_root: str = ""
    farm: str = ""
    farm_chunk: int = FARM_CHUNK


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
    described: str                 # what is processed, for the artist
    item: Any = None               # the one clip under the target (for CopyGrades), or None


def optional_call(obj: Any, name: str, *args: Any) -> Tuple[bool, Any]:
    """``(True, value)`` when ``obj`` offers method ``name`` and it answers; ``(False, None)`` otherwise.

    A method a Resolve version's README does not list may be absent (AttributeError) or answer None.
    """
    method = getattr(obj, name, None)
    if method is None or not callable(method):
        return False, None
    value = method(*args)
    return value is not None, value


def scripting_problem(resolve: Any) -> str:
    """A message when scripting cannot be used (no ``resolve`` object, free edition), else ""."""
    if resolve is None:
        return NO_SCRIPTING
    product = str(resolve.GetProductName() or "")
    if "studio" not in product.lower():
        return FREE_EDITION % (product or "the free edition")
    return ""


def _version(resolve: Any) -> str:
    return str(optional_call(resolve, "GetVersionString")[1] or "?")


def _video_items(timeline: Any) -> List[tuple]:
    items = []
    for track in range(1, int(timeline.GetTrackCount("video")) + 1):
        for item in timeline.GetItemListInTrack("video", track) or []:
            items.append((track, int(item.GetStart()), int(item.GetDuration()), item))
    return items


def _direct(item: Any, record: FrameRange, notes: List[str]) -> Optional[tuple]:
    """Straight-read plan for ``record`` frames of ``item``, or None."""
    media = item.GetMediaPoolItem()
    if media is None:
        return None
    path = str(media.GetClipProperty("File Path") or "")
    has_start, source_start = optional_call(item, "GetSourceStartFrame")
    has_end, source_end = optional_call(item, "GetSourceEndFrame")
    if not (has_start and has_end):
        if path.lower().endswith(".exr"):
            notes.append("this Resolve has no TimelineItem.GetSourceStartFrame/GetSourceEndFrame (Resolve 20 and "
                         "later), so the frames came from a render job (graded, RGB) instead of the EXR files")
        return None
    item_record = item_record_range(item.GetStart(), item.GetDuration())
    found = direct_source(item_record, path, int(source_start), int(source_end))
    if found is None or record.intersect(item_record) != record:
        return None
    return found


def find_target(timeline: Any, notes: List[str]) -> Target:
    """The in/out range (both marks set and readable) or the clip under the playhead, and how to get its frames."""
    has_marks, marks = optional_call(timeline, "GetMarkInOut")
    record = None
    if not has_marks:
        notes.append("this Resolve cannot read in/out marks (Timeline.GetMarkInOut arrives in Resolve 20)")
    elif marks_placeholder(marks):
        notes.append("Resolve reported in/out marks 0-0, which some 20.x builds return when nothing is marked: "
                     "taken as no marks")
    else:
        record = marks_record_range(marks, int(timeline.GetStartFrame()), int(timeline.GetEndFrame()))
    if record is not None:
        covering = covering_items(_video_items(timeline), record)
        item = covering[0][3] if len(covering) == 1 else None
        direct = _direct(item, record, notes) if item is not None else None
        return Target("%s_inout" % safe_name(str(timeline.GetName()), "timeline"), record, direct,
                      "the in/out range, record frames %s" % record.arg(), item)
    item = timeline.GetCurrentVideoItem()
    if item is None:
        raise JobError("put the playhead over a video clip" + (", or set the timeline's in and out marks"
                                                               if has_marks else ""))
    record = item_record_range(item.GetStart(), item.GetDuration())
    return Target(clip_stem(str(item.GetName())), record, _direct(item, record, notes),
                  "the clip under the playhead, %s, whole (record frames %s)" % (item.GetName(), record.arg()), item)


def _rendered_sequence(folder: str, name: str) -> FrameSequence:
    """The one ``name*<digits>.exr`` sequence in ``folder`` or any folder below it (Resolve may add one)."""
    found = []
    for here, _dirs, files in sorted(os.walk(folder)):
        if any(f.startswith(name) for f in files):
            try:
                found.append(find_sequence(here, name))
            except SequenceError as exc:
                raise JobError("the render job's frames: %s" % exc) from None
    if len(found) != 1:
        raise JobError("the render job's frames: %s in %s" % (
            "no %s*.exr frames" % name if not found else "several sequences", folder))
    return found[0]


def _render_range(project: Any, timeline: Any, record: FrameRange, folder: str, name: str,
                  log: Callable[[str], None], sleep: Callable[[float], None], poll_s: float,
                  notes: List[str]) -> FrameSequence:
    """Render ``record`` frames of ``timeline`` to an EXR sequence under ``folder``; the Deliver page is left as found."""
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    preset = "facebridge restore %d-%d" % (os.getpid(), int(time.time() * 1000))
    previous = project.GetCurrentRenderFormatAndCodec() or {}
    previous_mode = project.GetCurrentRenderMode()
    if not project.SaveAsNewRenderPreset(preset):
        raise JobError("Resolve could not save the Deliver page settings as render preset '%s', so no render job "
                       "was made (nothing changed)" % preset)
    job_id = None
    try:
        if not project.SetCurrentTimeline(timeline):
            raise JobError("Resolve could not make timeline %s current for the render job" % timeline.GetName())
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
        last, started, waited = -1, False, 0
        while True:
            rendering = bool(project.IsRenderingInProgress())
            status = project.GetRenderJobStatus(job_id) or {}
            percent = job_percent(status)
            if not rendering and (started or percent >= 100):
                break
            if rendering:
                started = True
            else:
                waited += 1
                if waited > START_POLLS:
                    raise JobError("the render job did not start (Resolve says: %s)" % status.get("JobStatus", "?"))
            if percent != last:
                log("facebridge: render job %d%%" % percent)
                last = percent
            sleep(poll_s)
        if percent < 100:
            raise JobError("the render job stopped at %d%% (Resolve says: %s); nothing was processed"
                           % (percent, status.get("JobStatus", "?")))
        log("facebridge: render job finished")
    finally:
        if job_id:
            project.DeleteRenderJob(job_id)
        restored = project.LoadRenderPreset(preset)
        if previous.get("format") and previous.get("codec"):
            project.SetCurrentRenderFormatAndCodec(previous["format"], previous["codec"])
        if previous_mode is not None:
            project.SetCurrentRenderMode(previous_mode)
        deleted, _value = optional_call(project, "DeleteRenderPreset", preset)
        if not restored:
            notes.append("Resolve could not load render preset '%s' back: check the Deliver page (target folder, "
                         "name, range, audio)" % preset)
        elif not deleted:
            notes.append("the Deliver page was saved as render preset '%s' and loaded back; this Resolve cannot "
                         "delete presets from a script (DeleteRenderPreset arrives in Resolve 20): delete it on the "
                         "Deliver page when you like" % preset)
    sequence = _rendered_sequence(folder, name)
    if sequence.length != record.length:
        raise JobError("the render job wrote %d frames for %d record frames" % (sequence.length, record.length))
    return sequence


def _import(media_pool: Any, results: FrameSequence, notes: List[str]) -> Any:
    """Import ``results`` as one clip into the media pool folder ``facebridge``; the current folder is restored."""
    previous = media_pool.GetCurrentFolder()
    root = media_pool.GetRootFolder()
    folder = None
    for sub in (root.GetSubFolderList() or []) if root is not None else []:
        if str(sub.GetName()) == POOL_FOLDER:
            folder = sub
    if folder is None and root is not None:
        folder = media_pool.AddSubFolder(root, POOL_FOLDER)
    if folder is None or not media_pool.SetCurrentFolder(folder):
        notes.append("could not use media pool folder '%s': imported into the current folder" % POOL_FOLDER)
        folder = None
    try:
        clips = media_pool.ImportMedia([import_clip_info(results)]) or []
    finally:
        if folder is not None and previous is not None:
            media_pool.SetCurrentFolder(previous)
    if len(clips) != 1:
        raise JobError("Resolve did not import %s as one clip" % results.printf)
    return clips[0]


def _remove(timeline: Any, item: Any) -> bool:
    return bool(optional_call(timeline, "DeleteClips", [item])[1])


def _place(media_pool: Any, timeline: Any, clip: Any, placement: Placement) -> Any:
    """Append ``clip`` per ``placement`` and read it back; the item, exactly where asked, or JobError."""
    where = "V%d at frame %d for %d frames" % (placement.track_index, placement.record_first, placement.frame_count)
    for exclusive in (True, False):   # endFrame exclusive (field evidence) first, then the inclusive reading
        placed = media_pool.AppendToTimeline([placement.clip_info(clip, exclusive)]) or []
        if not placed:
            continue
        item = placed[0]
        start, duration = item.GetStart(), item.GetDuration()
        if start is None or duration is None:
            removed = _remove(timeline, item)
            raise JobError("Resolve placed the result but cannot say where (GetStart/GetDuration gave nothing)%s; "
                           "it belongs on %s" % ("" if removed else ", check the track", where))
        if (int(start), int(duration)) == (placement.record_first, placement.frame_count):
            return item
        if not _remove(timeline, item):
            raise JobError("Resolve placed the result at frame %s for %s frames instead of %s, and could not remove "
                           "it: fix it by hand" % (start, duration, where))
    raise JobError("Resolve did not place the result on %s" % where)


def run_job(resolve: Any, job: ResolveJob, log: Callable[[str], None] = print,
            sleep: Callable[[float], None] = time.sleep, poll_s: float = 0.5) -> JobOutcome:
    """Run one job on the current timeline of the current project."""
    problem = scripting_problem(resolve)
    if problem:
        return JobOutcome(False, problem, 2)
    notes = []  # type: List[str]

    def told(text: str) -> str:
        return " ".join([text.rstrip(".") + "."] + [n[0].upper() + n[1:].rstrip(".") + "." for n in notes])

    try:
        params = validate_params(job.params)
        cli = resolve_cli()
        project = resolve.GetProjectManager().GetCurrentProject()
        if project is None:
            raise JobError("open a project first")
        timeline = project.GetCurrentTimeline()
        if timeline is None:
            raise JobError("open a timeline first")
        timeline_name = str(timeline.GetName())
        target = find_target(timeline, notes)
        output = job_output_dir(job.output_root or default_output_root(), str(project.GetName()),
                                timeline_name, target.name, target.record.first)
        if target.direct is not None:
            sequence, mapping = target.direct
            source = mapping.for_records(target.record)
            log("facebridge: reading %s frames %s directly" % (sequence.hashes, source.arg()))
        else:
            sequence = _render_range(project, timeline, target.record, os.path.join(output, "work", "render"),
                                     target.name, log, sleep, poll_s, notes)
            source = FrameRange(sequence.first, sequence.last)
        folders = node_folders(output, target.name, sequence.padding)
        request = RenderRequest(params, sequence.hashes, folders.result_pattern, source, source, job.sources,
                                job.server, shot_id("resolve", folders.result_pattern), folders.report_path)
        if job.farm:
            argv = farm_argv(cli, request, job.farm, job.farm_chunk, bundle_dir=os.path.join(output, "farm"))
        else:
            argv = process_argv(cli, request)
    except (SettingsError, CliNotFound, JobError, PlanError, FrameRangeError) as exc:
        return JobOutcome(False, told(str(exc)), 2)
    if job.farm:
        return _send_to_farm(argv, job, target, timeline_name, folders.result_pattern, sequence.padding, source,
                             output, log, told)
    processed = "Processed %s of timeline %s" % (target.described, timeline_name)

    def on_event(event: ProgressEvent, model: ProgressModel) -> None:
        if event.kind in ("frame", "end") or (event.kind == "analyse" and event.data.get("done") == 1):
            log("facebridge: %3d%% %s" % (model.percent, model.message))

    os.makedirs(folders.work_dir, exist_ok=True)
    try:
        result = run_sidecar(argv, on_event)
    except OSError as exc:
        return JobOutcome(False, told("cannot run facebridge: %s" % exc), 2)
    if result.returncode not in (EXIT_OK, EXIT_FRAMES_FAILED):
        return JobOutcome(False, told(result.describe()), 2)
    prefix, _dot, suffix = folders.result_pattern.partition("#" * sequence.padding)
    results = FrameSequence(prefix, sequence.padding, suffix, source.first, source.last)
    missing = [f for f in range(source.first, source.last + 1) if not os.path.isfile(results.path(f))]
    if missing:
        return JobOutcome(False, told("%s; %d result frames missing, nothing placed" % (result.describe(), len(missing))),
                          1)
    ok = result.returncode == EXIT_OK
    try:
        clip = _import(project.GetMediaPool(), results, notes)
        if not hasattr_api(timeline, "AddTrack"):
            notes.append("Resolve %s cannot put a clip on a new track from a script (Timeline.AddTrack and "
                         "AppendToTimeline's trackIndex/recordFrame arrive in Resolve 19): the result is in media "
                         "pool folder '%s'; place it on a track above the source at record frame %d"
                         % (_version(resolve), POOL_FOLDER, target.record.first))
            return JobOutcome(ok, told("%s; %s; imported, not placed" % (processed, result.describe())),
                              int(result.returncode), None, results.hashes)
        current = project.GetCurrentTimeline()
        if not project.SetCurrentTimeline(timeline):
            raise JobError("Resolve could not make timeline %s current again to place the result (it is in media "
                           "pool folder '%s')" % (timeline_name, POOL_FOLDER))
        if current is None or str(current.GetName()) != timeline_name:
            notes.append("switched back to timeline %s to place the result" % timeline_name)
        if not timeline.AddTrack("video"):
            raise JobError("Resolve could not add a video track (the result is in media pool folder '%s')"
                           % POOL_FOLDER)
        placement = Placement(int(timeline.GetTrackCount("video")), target.record.first, target.record.length)
        item = _place(project.GetMediaPool(), timeline, clip, placement)
    except JobError as exc:
        return JobOutcome(False, told("%s; %s; %s" % (processed, result.describe(), exc)), 2, None, results.hashes)
    if target.direct is not None:
        copied = target.item is not None and bool(target.item.CopyGrades([item]))
        notes.append("copied the grade of %s onto the result (CopyGrades), so it looks like the clip it covers"
                     % target.item.GetName() if copied else
                     "the grade of the clip below could not be copied (CopyGrades refused): the result shows the "
                     "ungraded plate; copy the grade on the Color page")
    else:
        notes.append("the frames came from a render job, so the timeline's grade is already in them")
    message = "%s; %s; placed on V%d at frame %d" % (processed, result.describe(), placement.track_index,
                                                     placement.record_first)
    return JobOutcome(ok, told(message), int(result.returncode), item, results.hashes)


def _send_to_farm(argv: List[str], job: ResolveJob, target: Target, timeline_name: str, result_pattern: str,
                  padding: int, source: FrameRange, output: str, log: Callable[[str], None],
                  told: Callable[[str], str]) -> JobOutcome:
    """Write the farm job (``facebridge farm``) for frames the script has on disk, instead of processing here.

    The frames it reads (the source EXR files, or the render job's frames under ``<output>/work/render``) and
    ``<output>`` must be on storage the farm machines reach. Nothing is placed: the result is imported when the
    farm has finished.
    """
    said = []  # type: List[str]
    log("facebridge: writing the %s farm job for frames %s" % (job.farm, source.arg()))
    try:
        result = run_sidecar(argv, on_output=said.append)
    except OSError as exc:
        return JobOutcome(False, told("cannot run facebridge: %s" % exc), 2)
    if not result.ok:
        return JobOutcome(False, told("Nothing was sent to the farm: %s" % result.describe()), 2)
    prefix, _dot, suffix = result_pattern.partition("#" * padding)
    results = FrameSequence(prefix, padding, suffix, source.first, source.last)
    went = "; ".join(line.strip() for line in said if line.strip())   # "wrote BUNDLE: ...", "submitted JOB ..."
    if not went:
        went = "the job bundle is in %s" % os.path.join(output, "farm") if job.farm == "openjd" else "submitted"
    message = ("Sent %s of timeline %s to the farm (%s, chunks of %d frames): %s. Nothing is placed yet: when the "
               "farm has finished, import %s (frames %d-%d) and put it on a track above the source at record frame %d"
               % (target.described, timeline_name, job.farm, job.farm_chunk, went, results.printf,
                  source.first, source.last, target.record.first))
    if target.direct is not None:
        message += (" (the farm reads the EXR files ungraded: copy the grade of %s onto the result)"
                    % (target.item.GetName() if target.item is not None else "the clip below"))
    return JobOutcome(True, told(message), 0, None, results.hashes)


def hasattr_api(obj: Any, name: str) -> bool:
    """Whether a Resolve object offers method ``name`` (absent methods raise AttributeError)."""
    return callable(getattr(obj, name, None))
