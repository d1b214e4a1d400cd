"""The sidecar: run ``facebridge process|analyse --progress json`` and follow its events.

Event lines (stdout, one JSON object each; ``facebridge/client/progress.py`` writes them):

    {"event": "start", "total": N, "server": ADDR}
    {"event": "analyse", "frame": F, "status": "ok|failed", "done": K, "total": M, ...}
    {"event": "frame", "frame": F, "status": "ok|warning|failed", "done": K, "total": N, "message": "..."}
    {"event": "end", "total": N, "ok": A, "warnings": W, "failed": B, "elapsed_s": S}

Errors and warnings come on stderr as ``facebridge: error: ...`` lines. Exit status: 0 all frames
done, 1 some frames failed, 2 nothing could run.

:func:`run_sidecar` polls the host's cancel flag between events (and every ``poll_s`` while the
sidecar is quiet), and kills the sidecar's process group on cancel.
"""

import json
import os
import queue
import signal
import subprocess
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence

from .command import sidecar_env

EXIT_OK, EXIT_FRAMES_FAILED, EXIT_ERROR = 0, 1, 2
ANALYSIS_SHARE = 0.3   # share of the progress bar given to the analysis pass when there is one


class ProgressEvent(NamedTuple):
    kind: str                 # start | analyse | frame | end
    data: Dict[str, Any]      # the JSON object of one ``--progress json`` line

    @property
    def frame(self) -> Optional[int]:
        value = self.data.get("frame")
        return int(value) if isinstance(value, int) else None

    @property
    def status(self) -> str:
        return str(self.data.get("status", ""))


def parse_event(line: str) -> Optional[ProgressEvent]:
    """One stdout line -> an event, or None for anything that is not an event object."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("event") not in ("start", "analyse", "frame", "end"):
        return None
    return ProgressEvent(str(data["event"]), data)


class ProgressModel:
    """Turns events into a fraction 0..1 and a one-line message for a host's progress bar."""

    def __init__(self, what: str = "frames") -> None:
        self.what = what
        self.total = 0
        self.done = 0
        self.failed = 0
        self.warnings = 0
        self.analyse_total = 0
        self.analysed = 0
        self.finished = False
        self.summary: Dict[str, Any] = {}
        self.outputs: Dict[int, str] = {}

    def update(self, event: ProgressEvent) -> None:
        data = event.data
        if event.kind == "start":
            self.total = int(data.get("total", 0) or 0)
        elif event.kind == "analyse":
            self.analysed = int(data.get("done", self.analysed + 1) or 0)
            self.analyse_total = int(data.get("total", self.analyse_total) or 0)
        elif event.kind == "frame":
            self.done = int(data.get("done", self.done + 1) or 0)
            self.total = int(data.get("total", self.total) or self.total)
            self.failed += event.status == "failed"
            self.warnings += event.status == "warning"
            if event.frame is not None and data.get("output"):
                self.outputs[event.frame] = str(data["output"])
        elif event.kind == "end":
            self.finished = True
            self.summary = dict(data)

    @property
    def fraction(self) -> float:
        if self.finished:
            return 1.0
        analysis = self.analysed / self.analyse_total if self.analyse_total else 0.0
        frames = self.done / self.total if self.total else 0.0
        if self.analyse_total and self.what == "frames":
            return min(1.0, ANALYSIS_SHARE * analysis + (1.0 - ANALYSIS_SHARE) * frames)
        return min(1.0, analysis if self.what == "analysis" else frames)

    @property
    def percent(self) -> int:
        return int(round(100 * self.fraction))

    @property
    def message(self) -> str:
        if self.finished:
            return summary_line(self.summary)
        if self.what == "frames" and self.done == 0 and self.analyse_total:
            return "analysing shot: %d/%d frames" % (self.analysed, self.analyse_total)
        if self.what == "analysis":
            return "analysing shot: %d/%d frames" % (self.analysed, self.analyse_total)
        failed = ", %d failed" % self.failed if self.failed else ""
        return "rendering: %d/%d frames%s" % (self.done, self.total, failed)


def summary_line(summary: Mapping[str, Any]) -> str:
    """``"3 frames: 3 ok, 0 warnings, 0 failed in 4.2 s"`` from an ``end`` event."""
    return "%s frames: %s ok, %s warnings, %s failed in %.1f s" % (
        summary.get("total", 0), summary.get("ok", 0), summary.get("warnings", 0), summary.get("failed", 0),
        float(summary.get("elapsed_s", 0.0) or 0.0))


class SidecarResult(NamedTuple):
    returncode: Optional[int]   # None when cancelled
    cancelled: bool
    errors: List[str]           # "facebridge: error: ..." lines, prefix removed
    stderr: List[str]           # every stderr line
    model: ProgressModel

    @property
    def ok(self) -> bool:
        return not self.cancelled and self.returncode == EXIT_OK

    def describe(self) -> str:
        """One line for a status knob or a message box."""
        if self.cancelled:
            return "cancelled"
        if self.model.finished and self.returncode in (EXIT_OK, EXIT_FRAMES_FAILED):
            line = summary_line(self.model.summary)
            return line if not self.errors else line + "; first error: " + self.errors[0]
        if self.errors:
            return "error: " + self.errors[0]
        tail = [line for line in self.stderr if line.strip()][-1:]
        return "facebridge exited with status %s%s" % (self.returncode, (": " + tail[0]) if tail else "")


def _reader(stream, kind: str, out: "queue.Queue") -> None:
    try:
        for line in iter(stream.readline, ""):
            out.put((kind, line.rstrip("\r\n")))
    finally:
        out.put((kind, None))


def run_sidecar(argv: Sequence[str], on_event: Callable[[ProgressEvent, ProgressModel], None] = lambda e, m: None,
                is_cancelled: Callable[[], bool] = lambda: False, what: str = "frames", poll_s: float = 0.1,
                env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
                on_idle: Optional[Callable[[], None]] = None,
                on_output: Optional[Callable[[str], None]] = None) -> SidecarResult:
    """Run ``argv`` to completion (or until cancelled), reporting each event as it arrives.

    Args:
        argv: the full command, e.g. from :func:`host_plugins.common.command.process_argv`.
        on_event: called with each event and the updated model (in the calling thread).
        is_cancelled: polled between events and every ``poll_s``; True kills the sidecar.
        what: ``frames`` (a render) or ``analysis``, for the progress fraction and message.
        on_idle: called every ``poll_s`` while the sidecar is quiet (a GUI host keeps its progress dialog,
            and so its Cancel button, alive from there).
        on_output: called with each stdout line that is not an event (``facebridge farm`` says where the job
            went on stdout).
        env: the sidecar's environment (default: :func:`command.sidecar_env` of this process).
        cwd: its working folder.

    Raises:
        OSError: the command cannot be started (not found, not executable).
    """
    model = ProgressModel(what)
    kwargs = {}  # type: dict
    if os.name == "nt":
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
    else:
        kwargs["start_new_session"] = True
    process = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True, encoding="utf-8", errors="replace", bufsize=1,
                               env=dict(env) if env is not None else sidecar_env(), cwd=cwd, **kwargs)
    lines = queue.Queue()  # type: queue.Queue
    readers = [threading.Thread(target=_reader, args=(process.stdout, "out", lines), daemon=True),
               threading.Thread(target=_reader, args=(process.stderr, "err", lines), daemon=True)]
    for reader in readers:
        reader.start()
    stderr: List[str] = []
    open_streams = 2
    cancelled = False
    while open_streams:
        if is_cancelled():
            cancelled = True
            _kill(process)
            break
        try:
            kind, line = lines.get(timeout=poll_s)
        except queue.Empty:
            if on_idle is not None:
                on_idle()
            continue
        if line is None:
            open_streams -= 1
            continue
        if kind == "err":
            stderr.append(line)
            continue
        event = parse_event(line)
        if event is not None:
            model.update(event)
            on_event(event, model)
        elif on_output is not None:
            on_output(line)
    returncode = process.wait() if not cancelled else None
    if cancelled:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    for reader in readers:
        reader.join(timeout=1.0)
    while True:  # lines that arrived after the loop ended
        try:
            kind, line = lines.get_nowait()
        except queue.Empty:
            break
        if kind == "err" and line is not None:
            stderr.append(line)
    errors = [line.split("facebridge: error:", 1)[1].strip() for line in stderr if "facebridge: error:" in line]
    return SidecarResult(returncode, cancelled, errors, stderr, model)


def _kill(process: "subprocess.Popen") -> None:
    """Stop the sidecar and whatever it started (its private server): its whole process group."""
    if process.poll() is not None:
        return
    try:
        if os.name == "nt":   # the whole tree: the sidecar and the private server it started
            subprocess.call(["taskkill", "/T", "/F", "/PID", str(process.pid)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
            if process.poll() is None:
                process.kill()
        else:
            os.killpg(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + 5.0
            while process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        pass
