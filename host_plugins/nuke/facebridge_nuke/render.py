"""Rendering a FaceBridge node: the one code path behind the Render button and ``nuke -t``.

1. The node's input is written for the node's whole frame range (the shot analysis covers the whole
   shot, so a farm chunk sees the same shot as a full render) to linear EXR with a temporary Write
   (``raw``, every channel, 32-bit float, lossless) into ``<output>/work/<chunk first>-<chunk last>/``
   (one folder per chunk, so farm tasks can run side by side). The server keys its shot analysis by
   shot id, frame and frame content, so every chunk (and an earlier Analyse) shares one analysis.
2. ``facebridge process --progress json`` runs as a sidecar for the requested frames; its events drive
   a ``nuke.ProgressTask`` in the GUI (cancel kills it) or progress lines in ``nuke -t``.
3. The results land in ``<output>/<node>.####.exr`` and the node's internal Read shows them.

In the GUI the buttons run this in a worker thread (:func:`start`, Foundry's threading pattern): the
``ProgressTask`` lives in that thread and every touch of the node graph (knobs, the plate Write and
``nuke.execute``) runs in Nuke's main thread through ``nuke.executeInMainThreadWithResult``, so Nuke
stays responsive while the sidecar works. One job per node at a time.

Farm entry point (``nuke -t`` strips a trailing frame range from the arguments, so ``--frames`` goes
before the positional arguments)::

    nuke -t <plugin folder>/facebridge_render.py --frames 1001-1010 shot.nk FaceBridge1

or from Python inside any Nuke session: ``facebridge_nuke.render.render_node("FaceBridge1", 1001, 1010)``.

**Send to farm** (:func:`send_to_farm`) hands the node's render to a scheduler instead: it writes the plates
of the whole range into ``<output>/work/farm/`` (kept for the farm) and runs ``facebridge farm openjd|opencue``
(:func:`host_plugins.common.command.farm_argv`) with the same settings, shot id and result pattern.
"""

import argparse
import os
import sys
import threading
from typing import Any, Callable, Dict, List, NamedTuple, Optional

import nuke

from host_plugins.common.command import (CliNotFound, RenderRequest, analyse_argv, farm_argv, process_argv, resolve_cli,
                                         sidecar_env)
from host_plugins.common.frames import FrameRange, FrameRangeError, chunk_of
from host_plugins.common.knobs import SettingsError
from host_plugins.common.progress import EXIT_FRAMES_FAILED, EXIT_OK, ProgressEvent, ProgressModel, run_sidecar
from host_plugins.common.sequence import existing_frames, shot_id

from . import node as fb_node

PLATE_DATATYPE = "32 bit float"        # Nuke works in float: writing float keeps the plate exact
PLATE_COMPRESSION = "Zip (1 scanline)"  # lossless


class RenderOutcome(NamedTuple):
    ok: bool
    cancelled: bool
    message: str
    returncode: int               # 0 ok, 1 some frames failed, 2 nothing rendered, 3 cancelled
    frames: Optional[FrameRange]
    result_pattern: str


class Reporter:
    """Progress for a render: a ``nuke.ProgressTask`` in the GUI, lines on stdout in ``nuke -t``."""

    def __init__(self, title: str, gui: bool) -> None:
        self._task = nuke.ProgressTask(title) if gui else None
        self._last = -1

    def update(self, percent: int, message: str) -> None:
        if self._task is not None:
            self._task.setMessage(message)
            self._task.setProgress(int(percent))
        elif percent != self._last:
            print("facebridge: %3d%% %s" % (percent, message))
            sys.stdout.flush()
        self._last = percent

    def keep_alive(self) -> None:
        """Re-post the last progress while the sidecar is quiet, so the dialog (and Cancel) stay live."""
        if self._task is not None and self._last >= 0:
            self._task.setProgress(int(self._last))

    def cancelled(self) -> bool:
        return bool(self._task is not None and self._task.isCancelled())

    def close(self) -> None:
        self._task = None   # the task's window closes when the object goes


def default_reporter(title: str) -> Reporter:
    return Reporter(title, bool(nuke.env["gui"]))


def _failure(message: str, code: int = 2) -> RenderOutcome:
    return RenderOutcome(False, False, message, code, None, "")


def on_main(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` in Nuke's main thread (directly when already there), its exception re-raised here.

    ``nuke.executeInMainThreadWithResult`` prints an exception and returns None, so the call is wrapped.
    """
    if threading.current_thread() is threading.main_thread():
        return function(*args)

    def boxed() -> Any:
        try:
            return (True, function(*args))
        except BaseException as exc:  # handed to the worker, which raises it
            return (False, exc)

    reply = nuke.executeInMainThreadWithResult(boxed)
    if reply is None:
        raise RuntimeError("Nuke's main thread did not answer")
    ok, value = reply
    if not ok:
        raise value
    return value


def _resolve(node_or_name: Any) -> Any:
    if isinstance(node_or_name, str):
        # absolute: a button runs inside its group's context, where toNode looks first
        node_name = node_or_name
        node = nuke.toNode(node_name if node_name.startswith("root.") else "root." + node_name)
    else:
        node = node_or_name
        node_name = node.fullName()
    if node is None:
        raise SettingsError("no node named '%s' in the script" % node_name)
    if not fb_node.is_facebridge(node):
        raise SettingsError("'%s' is not a FaceBridge node" % node_name)
    if node.input(0) is None:
        raise SettingsError("'%s' has no input: connect the plate" % node_name)
    if nuke.root()["proxy"].value():
        raise SettingsError("proxy mode is on: Write nodes would render proxy-sized plates; turn it off")
    return node


def _prepare(node_or_name: Any) -> Any:
    node = _resolve(node_or_name)
    return node, fb_node.read_settings(node)


def write_plates(node: Any, pattern: str, frames: FrameRange) -> None:
    """The node's input over ``frames`` as linear EXR at ``pattern``, via a temporary Write inside it."""
    os.makedirs(os.path.dirname(pattern), exist_ok=True)
    node.begin()
    try:
        write = nuke.nodes.Write(name="FaceBridgePlateWrite")
        try:
            write.setInput(0, node.node(fb_node.INPUT))
            write["file"].setValue(fb_node.knob_path(pattern))   # TCL-safe, forward slashes
            write["file_type"].setValue("exr")
            write["raw"].setValue(True)
            write["channels"].setValue("all")
            write["datatype"].setValue(PLATE_DATATYPE)
            write["compression"].setValue(PLATE_COMPRESSION)
            write["create_directories"].setValue(True)
            nuke.execute(write, frames.first, frames.last, 1)
        finally:
            nuke.delete(write)
    finally:
        node.end()


def _sidecar(argv: List[str], reporter: Reporter, what: str, settings: "fb_node.NodeSettings",
             on_output: Optional[Callable[[str], None]] = None):
    def on_event(event: ProgressEvent, model: ProgressModel) -> None:
        reporter.update(model.percent, model.message)

    env = sidecar_env()
    if settings.ocio_config:   # the script's own OCIO config names its working space
        env["OCIO"] = settings.ocio_config
    return run_sidecar(argv, on_event, reporter.cancelled, what=what, on_idle=reporter.keep_alive, env=env,
                       on_output=on_output)


def render_node(node_name: Any, first: Optional[int] = None, last: Optional[int] = None,
                reporter: Optional[Reporter] = None) -> RenderOutcome:
    """Render frames ``first..last`` (default: the node's frame range) of the FaceBridge node.

    ``node_name`` is the node's full name (``Group1.FaceBridge1``) or the node itself. The knobs alone
    decide the result: the GUI's Render button and ``nuke -t`` call this same function, and the same knobs
    give the same frames. It may run in a worker thread (:func:`start`): node access goes through
    :func:`on_main`.
    """
    reporter = reporter or Reporter("FaceBridge render", False)
    node = None
    try:
        node = on_main(_resolve, node_name)
        node, settings = on_main(_prepare, node)
        chunk = chunk_of(settings.frames, first, last)
        cli = resolve_cli()
    except (SettingsError, FrameRangeError, CliNotFound) as exc:
        if node is not None:
            on_main(fb_node.set_status, node, "error: %s" % exc)
        return _failure(str(exc))
    folders = settings.folders
    work = os.path.join(folders.work_dir, chunk.arg())   # one folder per chunk: farm tasks run side by side
    plates = os.path.join(work, os.path.basename(folders.plate_pattern))
    on_main(fb_node.set_status, node, "rendering %s ..." % chunk.arg())
    reporter.update(0, "writing the plate, frames %s" % settings.frames.arg())
    try:
        on_main(write_plates, node, plates, settings.frames)
    except RuntimeError as exc:   # includes the user cancelling nuke.execute's own progress
        cancelled = "cancel" in str(exc).lower()
        on_main(fb_node.set_status, node, "cancelled" if cancelled else "plate write failed: %s" % exc)
        reporter.close()
        return RenderOutcome(False, cancelled, "cancelled" if cancelled else "plate write failed: %s" % exc,
                             3 if cancelled else 2, chunk, folders.result_pattern)
    request = RenderRequest(settings.params, plates, folders.result_pattern, chunk, settings.frames,
                            settings.sources, settings.server, shot_id("nuke", folders.result_pattern),
                            os.path.join(work, "report.json"))
    try:
        argv = process_argv(cli, request)
        result = _sidecar(argv, reporter, "frames", settings)
    except (SettingsError, OSError) as exc:
        on_main(fb_node.set_status, node, "error: %s" % exc)
        reporter.close()
        return _failure(str(exc))
    reporter.close()
    shot = range(settings.frames.first, settings.frames.last + 1)
    rendered = existing_frames(folders.result_pattern, shot)
    on_main(fb_node.show_results, node, folders.result_pattern if rendered else None, settings.frames)
    message = result.describe()
    missing = [f for f in range(chunk.first, chunk.last + 1) if f not in rendered]
    if rendered and missing and not result.cancelled:
        message = "%s; frames without a result (shown as a checkerboard): %s" % (message, short_frame_list(missing))
    on_main(fb_node.set_status, node, message)
    if result.cancelled:
        return RenderOutcome(False, True, "cancelled", 3, chunk, folders.result_pattern)
    if result.returncode == EXIT_OK:
        _remove_plates(work)
    code = result.returncode if result.returncode in (EXIT_OK, EXIT_FRAMES_FAILED) else 2
    return RenderOutcome(code == EXIT_OK, False, message, code, chunk, folders.result_pattern)


def analyse_node(node_name: Any, reporter: Optional[Reporter] = None) -> RenderOutcome:
    """Analyse the node's shot (cuts, tracks, landmarks) on the server; a later render replays it."""
    reporter = reporter or Reporter("FaceBridge analysis", False)
    node = None
    try:
        node = on_main(_resolve, node_name)
        node, settings = on_main(_prepare, node)
        cli = resolve_cli()
    except (SettingsError, FrameRangeError, CliNotFound) as exc:
        if node is not None:
            on_main(fb_node.set_status, node, "error: %s" % exc)
        return _failure(str(exc))
    folders = settings.folders
    work = analyse_dir(settings)
    plates = os.path.join(work, os.path.basename(folders.plate_pattern))
    reporter.update(0, "writing the plate, frames %s" % settings.frames.arg())
    try:
        on_main(write_plates, node, plates, settings.frames)
    except RuntimeError as exc:
        reporter.close()
        return _failure("plate write failed: %s" % exc)
    argv = analyse_argv(cli, plates, settings.frames, int(settings.params["keyframe_interval"]),
                        settings.server, shot_id("nuke", folders.result_pattern), os.path.join(work, "analysis.json"))
    try:
        result = _sidecar(argv, reporter, "analysis", settings)
    except OSError as exc:
        reporter.close()
        return _failure(str(exc))
    reporter.close()
    if result.cancelled:
        on_main(fb_node.set_status, node, "cancelled")
        return RenderOutcome(False, True, "cancelled", 3, settings.frames, "")
    message = "analysed %s: %s" % (settings.frames.arg(), result.describe()) if result.ok else result.describe()
    on_main(fb_node.set_status, node, message)
    return RenderOutcome(result.ok, False, message, 0 if result.ok else 2, settings.frames, "")


def farm_dir(settings: "fb_node.NodeSettings") -> str:
    """Where Send to farm writes the plates the farm reads (kept: the farm job reads them later)."""
    return os.path.join(settings.folders.work_dir, "farm")


def send_to_farm(node_name: Any, reporter: Optional[Reporter] = None) -> RenderOutcome:
    """Send to farm: the node's plates for its whole frame range, then ``facebridge farm`` with its settings.

    The job renders what Render would (the same settings, every one explicit, the same shot id and result
    pattern), over the node's frame range in chunks of the Farm tab's size. The plates go to
    ``<output>/work/farm/`` and stay there for the farm; the output folder must be on storage the farm
    machines read and write. The status knob says where the job went. It may run in a worker thread
    (:func:`start`): node access goes through :func:`on_main`.
    """
    reporter = reporter or Reporter("FaceBridge farm job", False)
    node = None
    try:
        node = on_main(_resolve, node_name)
        node, settings = on_main(_prepare, node)
        farm = on_main(fb_node.read_farm_settings, node, settings)
        cli = resolve_cli()
        folders = settings.folders
        plates = os.path.join(farm_dir(settings), os.path.basename(folders.plate_pattern))
        request = RenderRequest(settings.params, plates, folders.result_pattern, settings.frames, settings.frames,
                                settings.sources, settings.server, shot_id("nuke", folders.result_pattern))
        argv = farm_argv(cli, request, farm.scheduler, farm.chunk, bundle_dir=farm.bundle_dir, show=farm.show,
                         user=farm.user, dry_run=farm.dry_run, farm_cli=farm.farm_cli)
    except (SettingsError, FrameRangeError, CliNotFound) as exc:
        if node is not None:
            on_main(fb_node.set_status, node, "error: %s" % exc)
        return _failure(str(exc))
    on_main(fb_node.set_status, node, "sending %s to the farm ..." % settings.frames.arg())
    reporter.update(0, "writing the plate, frames %s" % settings.frames.arg())
    try:
        on_main(write_plates, node, plates, settings.frames)
    except RuntimeError as exc:
        cancelled = "cancel" in str(exc).lower()
        message = "cancelled" if cancelled else "plate write failed: %s" % exc
        on_main(fb_node.set_status, node, message)
        reporter.close()
        return RenderOutcome(False, cancelled, message, 3 if cancelled else 2, settings.frames, "")
    reporter.update(90, "writing the %s job" % farm.scheduler)
    said: List[str] = []
    try:
        result = _sidecar(argv, reporter, "farm", settings, said.append)
    except OSError as exc:
        on_main(fb_node.set_status, node, "error: %s" % exc)
        reporter.close()
        return _failure(str(exc))
    reporter.close()
    if result.cancelled:
        on_main(fb_node.set_status, node, "cancelled")
        return RenderOutcome(False, True, "cancelled", 3, settings.frames, "")
    if not result.ok:
        message = "farm job not sent: %s" % result.describe()
        on_main(fb_node.set_status, node, message)
        return RenderOutcome(False, False, message, 2, settings.frames, "")
    message = _farm_message(farm, said, folders.result_pattern, settings)
    on_main(fb_node.set_status, node, message)
    return RenderOutcome(True, False, message, 0, settings.frames, folders.result_pattern)


def _farm_message(farm: "fb_node.FarmSettings", said: List[str], results: str,
                  settings: "fb_node.NodeSettings") -> str:
    """Where the job went (from what ``facebridge farm`` printed), and where its results will land."""
    if farm.scheduler == "opencue" and farm.dry_run:
        os.makedirs(farm.bundle_dir, exist_ok=True)
        spec = os.path.join(farm.bundle_dir, "opencue_job.xml")
        with open(spec, "w", encoding="utf-8") as handle:
            handle.write("\n".join(said) + "\n")
        told = "OpenCue dry run, nothing submitted: the job spec is in %s" % spec
    else:
        told = "; ".join(line.strip() for line in said if line.strip()) or "farm job sent"
    notes = ["frames %s in chunks of %d; the results land in %s" % (settings.frames.arg(), farm.chunk, results)]
    if settings.ocio_config:
        notes.append("the farm machines need $OCIO=%s (the script's OCIO config)" % settings.ocio_config)
    return "%s. %s" % (told, "; ".join(notes))


def short_frame_list(frames: List[int]) -> str:
    shown = ", ".join(str(f) for f in frames[:10])
    return shown + (" ... (%d in all)" % len(frames) if len(frames) > 10 else "")


def analyse_dir(settings: "fb_node.NodeSettings") -> str:
    """Where Analyse writes its plates (kept: the panel previews from them)."""
    return os.path.join(settings.folders.work_dir, "analyse")


# --- the buttons: one job per node, in a worker thread in the GUI -------------------------------------

_jobs: Dict[str, threading.Thread] = {}
_jobs_lock = threading.Lock()


def is_running(node: Any) -> bool:
    """Whether a Render, Analyse or Send to farm of ``node`` is under way in this session."""
    with _jobs_lock:
        job = _jobs.get(node.fullName())
        return job is not None and job.is_alive()


def start(node: Any, kind: str) -> Optional[threading.Thread]:
    """The Render / Analyse / Send to farm button (``kind`` render, analyse, farm): run the job without blocking
    Nuke (in ``nuke -t``, run it here).

    A second press while the node's job runs starts nothing; it says so. Returns the worker thread.
    """
    jobs: Dict[str, Callable[..., RenderOutcome]] = {"render": render_node, "analyse": analyse_node,
                                                     "farm": send_to_farm}
    titles = {"render": "FaceBridge render", "analyse": "FaceBridge analysis", "farm": "FaceBridge farm job"}
    title, job = titles[kind], jobs[kind]
    if not nuke.env["gui"]:
        outcome = job(node, reporter=Reporter(title, False))
        if not outcome.ok and not outcome.cancelled:
            print("facebridge: %s: %s" % (node.name(), outcome.message), file=sys.stderr)
        return None
    key = node.fullName()
    name = node.name()
    with _jobs_lock:
        running = _jobs.get(key)
        if running is not None and running.is_alive():
            nuke.message("FaceBridge %s is already rendering, analysing or sending to the farm: wait for it, or "
                         "press Cancel in its progress window" % name)
            return None

        def work() -> None:
            try:
                outcome = job(node, reporter=Reporter(title, True))   # the ProgressTask lives in this thread
                if not outcome.ok and not outcome.cancelled:
                    nuke.executeInMainThread(nuke.message, ("FaceBridge %s: %s" % (name, outcome.message),))
            except Exception as exc:   # never die silently in a thread
                nuke.executeInMainThread(nuke.message, ("FaceBridge %s failed: %s" % (name, exc),))
            finally:
                with _jobs_lock:
                    if _jobs.get(key) is threading.current_thread():
                        del _jobs[key]

        worker = threading.Thread(target=work, name="facebridge-%s-%s" % (kind, key))
        worker.daemon = True
        _jobs[key] = worker
        worker.start()
    return worker


def _remove_plates(work: str) -> None:
    """Plates are rewritten by every render (the knobs are the truth, not old files): drop them."""
    for name in os.listdir(work):
        if name.startswith("plate.") and name.endswith(".exr"):
            try:
                os.unlink(os.path.join(work, name))
            except OSError:
                pass


def main(argv: Optional[List[str]] = None) -> int:
    """``nuke -t facebridge_render.py [--frames A-B] SCRIPT.nk NODE``; exit status as ``facebridge process``."""
    parser = argparse.ArgumentParser(
        prog="facebridge_render.py",
        description="Render a FaceBridge node of a Nuke script (for nuke -t and render farms). Put --frames "
                    "before the script: nuke -t strips a trailing frame range.")
    parser.add_argument("--frames", metavar="A-B", help="frames to render (default: the node's frame range)")
    parser.add_argument("script", help="the .nk script")
    parser.add_argument("node", help="the FaceBridge node's name, e.g. FaceBridge1 (Group1.FaceBridge1 inside a group)")
    args = parser.parse_args(argv)
    try:
        frames = FrameRange.parse(args.frames) if args.frames else None
    except FrameRangeError as exc:
        print("facebridge: error: %s" % exc, file=sys.stderr)
        return 2
    nuke.scriptOpen(args.script)
    outcome = render_node(args.node, frames.first if frames else None, frames.last if frames else None,
                          Reporter("FaceBridge render", False))
    stream = sys.stdout if outcome.ok else sys.stderr
    print("facebridge: %s: %s" % (args.node, outcome.message), file=stream)
    return outcome.returncode
