"""``facebridge process`` and ``facebridge analyse``: run an image sequence through a facebridge server.

A private server is spawned as soon as the arguments are checked, before this process imports gRPC and the wire
modules (~0.2 s): the two overlap (:func:`_connected`). Test: ``test_cli``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facebridge import analysis_file
from facebridge.analysis_file import AnalysisFile, AnalysisFileError
from facebridge.auth import PLAIN
from facebridge.paths import default_cache_dir
from facebridge.schema import SettingError

from . import recent
from .errors import ClientError
from .jobs import AnalyseOutcome, FrameJob, FrameOutcome
from .local_server import LocalServer
from .options import given_settings, render_params
from .progress import Progress
from .report import build_report, write_report
from .sequence import FramePattern, PatternError, gaps, parse_frame_range, parse_pattern

if TYPE_CHECKING:  # (imported where a server is met, after a private one has been spawned)
    from facebridge_wire.v1 import facebridge_pb2 as pb

    from .grpc_client import FaceBridgeClient

EXIT_OK, EXIT_FRAMES_FAILED, EXIT_ERROR = 0, 1, 2


def default_shot(pattern: str) -> str:
    """A shot id derived from the input pattern's absolute path, so analyse and process meet."""
    return "auto-" + hashlib.sha1(os.path.abspath(pattern).encode("utf-8")).hexdigest()[:16]


def plan_jobs(inputs: FramePattern, outputs: FramePattern | None, frames_arg: str | None) -> tuple[list[FrameJob], list[int]]:
    """Jobs for the frames whose input exists, and the frame numbers that are missing.

    Raises:
        PatternError: mismatched patterns, or nothing to process.
    """
    if outputs is not None and inputs.is_sequence != outputs.is_sequence:
        raise PatternError("--input and --output must both be sequences (#### or %04d) or both single files")

    def output(frame: int) -> str:
        return outputs.path(frame) if outputs is not None else ""

    if not inputs.is_sequence:
        frame = parse_frame_range(frames_arg)[0] if frames_arg else 1
        if not os.path.exists(inputs.text):
            return [], [frame]
        return [FrameJob(frame, inputs.text, output(frame))], []
    if frames_arg:
        frames = parse_frame_range(frames_arg)
        missing = [f for f in frames if not os.path.exists(inputs.path(f))]
    else:
        frames = inputs.existing_frames()
        if not frames:
            raise PatternError(f"no files match '{inputs.text}'")
        missing = gaps(frames)
    absent = set(missing)
    return [FrameJob(f, inputs.path(f), output(f)) for f in frames if f not in absent], missing


def _missing_outcome(inputs: FramePattern, frame: int) -> FrameOutcome:
    path = inputs.path(frame)
    return FrameOutcome(frame, "failed", "missing", f"{path} (frame {frame}): input file is missing", path, "")


def _use_paths(choice: str, info: pb.GetServerInfoResponse, address: str) -> bool:
    from facebridge_wire.v1 import facebridge_pb2 as pb

    offered = pb.TRANSPORT_PATH in info.transports
    if choice == "path" and not offered:
        raise ClientError(f"server {address} does not offer path transport; use --transport stream")
    if choice == "auto":
        return offered and info.hostname == socket.gethostname()
    return choice == "path"


def private_roots(*patterns: str) -> list[str]:
    """The folders of ``patterns`` that exist (absolute, once each): what a private server may read and write."""
    folders: list[str] = []
    for pattern in patterns:
        folder = os.path.dirname(os.path.abspath(pattern))
        if os.path.isdir(folder) and folder not in folders:
            folders.append(folder)
    return folders


@contextmanager
def _connected(args: argparse.Namespace, roots: list[str] | None = None,
               allow_unverified: bool = False) -> Iterator[tuple[FaceBridgeClient, pb.GetServerInfoResponse, bool]]:
    """A client of ``--server``, or of a private server allowed ``roots`` (and ``--allow-unverified`` when the
    user asked for unverified models: it is the user's own server).

    A private server is spawned first: it starts while this process imports its gRPC client."""
    with ExitStack() as stack:
        private = None
        if not args.server:
            private = LocalServer(device=args.device, cache_dir=args.cache_dir,
                                  models_dir=getattr(args, "models_dir", None),
                                  allow_roots=roots or [], allow_unverified=allow_unverified)
            stack.callback(private.stop)
            private.spawn()
        from .grpc_client import FaceBridgeClient

        if private is None:
            address = args.server
            client = stack.enter_context(FaceBridgeClient(address))  # token and TLS found as the server finds them
        else:  # a private server: its own fresh token, plain loopback TCP
            stack.enter_context(private)  # (waits for its address)
            address = private.address
            client = stack.enter_context(FaceBridgeClient(address, token=private.token, tls=PLAIN))
        client.wait_ready(timeout=60.0)
        info = client.server_info()
        yield client, info, _use_paths(args.transport, info, address)


def _close_session(client: FaceBridgeClient, session_id: str) -> None:
    """Close the session whatever happened (a dead server or an expired session is no second error)."""
    try:
        client.close_session(session_id)
    except ClientError:
        pass


def run_analysis(client: FaceBridgeClient, session_id: str, jobs: list[FrameJob], use_paths: bool,
                 progress: Progress) -> dict[str, Any]:
    """Analyse the shot over ``jobs``; returns a summary for the report (JSON values)."""
    outcomes: list[AnalyseOutcome] = []
    for outcome in client.analyse(session_id, sorted(jobs, key=lambda j: j.frame_number), use_paths):
        outcomes.append(outcome)
        progress.analysed(outcome)
    return {
        "frames": len(outcomes),
        "replayed": sum(o.replayed for o in outcomes),
        "keyframes": sum(o.keyframe for o in outcomes),
        "cuts": len({o.cut for o in outcomes if not o.failed}),
        "tracks": sorted({t for o in outcomes for t in o.tracks}),
        "failed": [o.message for o in outcomes if o.failed],
    }


def _remember(args: argparse.Namespace, shot: str, analysis: dict[str, Any], sources: list[str]) -> None:
    """Note where the analysed shot's plates and sources are (``recent``), for ``facebridge panel``."""
    if int(analysis["frames"]) > len(analysis["failed"]):
        recent.record(args.cache_dir or default_cache_dir(), shot, args.input, sources, args.server or "")


def _write_analysis(client: FaceBridgeClient, shot: str, path: str) -> dict[str, Any]:
    """Export the shot's analysis from the server and write it to ``path`` (read-only, atomically)."""
    data = client.export_analysis(shot)
    try:
        checked = analysis_file.summarise(analysis_file.decode(data), path, data)
    except AnalysisFileError as exc:
        raise ClientError(f"the server's analysis of shot '{shot}' is not a usable shot-analysis file: {exc}") from exc
    try:
        analysis_file.write_readonly(path, data)
    except OSError as exc:
        raise ClientError(f"analysis {path}: cannot write it ({exc.strerror or exc})") from exc
    return {"path": os.path.abspath(path), "sha256": checked.sha256, "bytes": len(data),
            "frames": len(checked.frames)}


def _read_analysis(args: argparse.Namespace, shot: str) -> AnalysisFile:
    """The ``--analysis`` file, checked against the shot (ClientError: one line naming the file and the shot)."""
    if args.analyse_range:
        raise ClientError(f"--analysis {args.analysis} and --analyse-range cannot be combined: the analysis file "
                          "decides what was analysed")
    try:
        analysis = analysis_file.read(args.analysis)
    except AnalysisFileError as exc:
        raise ClientError(f"analysis {args.analysis} (for shot '{shot}'): {exc}") from exc
    if analysis.shot != shot:
        raise ClientError(f"analysis {args.analysis} is for shot '{analysis.shot}', not '{shot}'")
    given = given_settings(args).get("keyframe_interval")
    if given is not None and str(given).strip() != str(analysis.settings["keyframe_interval"]):
        raise ClientError(f"analysis {args.analysis} of shot '{shot}' was made with --keyframe-interval "
                          f"{analysis.settings['keyframe_interval']}, not {given}")
    return analysis


def replay_jobs(inputs: FramePattern, analysis: AnalysisFile, frames: list[int]) -> list[FrameJob]:
    """The analysed frames a render of ``frames`` needs replayed: each frame and its two neighbours (their
    plates around the faces stabilise it), those the analysis holds and the disk has, in increasing order."""
    wanted = sorted({f + d for f in frames for d in (-1, 0, 1)} & set(analysis.frames))
    jobs = [FrameJob(f, inputs.path(f) if inputs.is_sequence else inputs.text, "") for f in wanted]
    return [job for job in jobs if os.path.exists(job.input_path)]


def _import_analysis(client: FaceBridgeClient, session_id: str, analysis: AnalysisFile, shot: str,
                     jobs: list[FrameJob], use_paths: bool, progress: Progress) -> dict[str, Any]:
    """Import the analysis file into the server's shot database and replay it over ``jobs`` (the server keeps
    their plates around the faces); ClientError, one line naming the file and the shot, when the server
    refuses the file or a plate on disk is not the one analysed."""
    try:
        imported = client.import_analysis(session_id, analysis.data)
    except ClientError as exc:
        raise ClientError(f"analysis {analysis.path} (for shot '{shot}'): {exc}") from exc
    replay = run_analysis(client, session_id, jobs, use_paths, progress)
    if replay["failed"]:
        raise ClientError(f"analysis {analysis.path} of shot '{shot}' does not match the plates on disk: "
                          f"{replay['failed'][0]}; analyse the shot again")
    return {"path": os.path.abspath(analysis.path), "sha256": analysis.sha256, "frames": imported["frames"],
            "tracks": imported["tracks"], "replayed": replay["replayed"]}


def run_analyse(args: argparse.Namespace) -> int:
    """``facebridge analyse``."""
    try:
        params = render_params(args)
        inputs = parse_pattern(args.input)
        jobs, missing = plan_jobs(inputs, None, args.frames)
    except (PatternError, SettingError) as exc:
        print(f"facebridge: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    shot = args.shot or default_shot(args.input)
    progress = Progress(args.progress, len(jobs))
    started = time.monotonic()
    try:
        with _connected(args, private_roots(args.input), params.allow_unverified) as (client, _info, use_paths):
            session = client.open_session([], shot=shot, params=params)
            try:
                progress.start(client.address)
                summary = run_analysis(client, session.session_id, jobs, use_paths, progress)
                _remember(args, shot, summary, [])
                if getattr(args, "analysis_out", None):
                    summary["analysis_file"] = _write_analysis(client, shot, args.analysis_out)
            finally:
                _close_session(client, session.session_id)
    except ClientError as exc:
        print(f"facebridge: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    progress.end()
    summary.update(shot=shot, missing=missing, elapsed_s=round(time.monotonic() - started, 3))
    if args.report:
        write_report(args.report, {"analysis": summary})
    for message in summary["failed"]:
        print(f"facebridge: error: {message}", file=sys.stderr)
    return EXIT_FRAMES_FAILED if summary["failed"] or missing else EXIT_OK


def run(args: argparse.Namespace) -> int:
    """``facebridge process``."""
    try:
        params = render_params(args)
        inputs, outputs = parse_pattern(args.input), parse_pattern(args.output)
        jobs, missing = plan_jobs(inputs, outputs, args.frames)
        shot = args.shot or default_shot(args.input)
        analysis = _read_analysis(args, shot) if getattr(args, "analysis", None) else None
        if analysis is not None:  # no analysis pass: the file's analysis, replayed where the frames need it
            params = params.with_overrides({"keyframe_interval": analysis.settings["keyframe_interval"]})
            shot_jobs = replay_jobs(inputs, analysis, [j.frame_number for j in jobs])
        else:
            shot_jobs = [] if args.no_analyse else plan_jobs(inputs, None, args.analyse_range)[0]
    except (PatternError, SettingError, ClientError) as exc:
        print(f"facebridge: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    output_format = Path(outputs.suffix or outputs.text).suffix.lstrip(".").lower() or "exr"
    progress = Progress(args.progress, len(jobs) + len(missing), analyse_total=len(shot_jobs))
    outcomes: list[FrameOutcome] = []
    started = time.monotonic()
    run_info: dict[str, object] = {"input": args.input, "output": args.output, "sources": args.source, "shot": shot,
                                   "params": {**params.as_dict(), "output_format": output_format}}
    try:
        if not args.server:  # the output folder exists before a private server is allowed it
            try:
                Path(os.path.abspath(args.output)).parent.mkdir(parents=True, exist_ok=True)
            except OSError:
                pass  # not a folder, or not writable: each frame fails with the cause
        with _connected(args, private_roots(args.input, args.output), params.allow_unverified) as (client, info,
                                                                                                    use_paths):
            session = client.open_session(args.source, shot=shot, params=params, output_format=output_format)
            try:
                run_info.update(server=client.address, server_version=info.server_version, device=info.device,
                                transport="path" if use_paths else "stream", params_hash=session.params_hash,
                                model_ids=session.model_ids, source_faces=session.sources,
                                model_notes=list(session.notes))
                for note in session.notes:
                    print(f"facebridge: note: {note}", file=sys.stderr)
                progress.start(client.address)
                if analysis is not None:
                    run_info["analysis_file"] = _import_analysis(client, session.session_id, analysis, shot,
                                                                 shot_jobs, use_paths, progress)
                elif shot_jobs:
                    summary = run_analysis(client, session.session_id, shot_jobs, use_paths, progress)
                    run_info["analysis"] = summary
                    _remember(args, shot, summary, args.source)
                for frame in missing:
                    outcomes.append(_missing_outcome(inputs, frame))
                    progress.frame(outcomes[-1])
                for job in jobs:
                    try:
                        Path(job.output_path).parent.mkdir(parents=True, exist_ok=True)
                    except OSError:
                        pass  # the frame's write fails and is reported with its cause
                for outcome in client.process(session.session_id, jobs, use_paths):
                    outcomes.append(outcome)
                    progress.frame(outcome)
            finally:
                _close_session(client, session.session_id)
    except ClientError as exc:
        print(f"facebridge: error: {exc}", file=sys.stderr)
        progress.end()
        if args.report:
            write_report(args.report, build_report(outcomes, time.monotonic() - started, {**run_info, "error": str(exc)}))
        return EXIT_ERROR
    progress.end()
    if args.report:
        write_report(args.report, build_report(outcomes, time.monotonic() - started, run_info))
    return EXIT_FRAMES_FAILED if any(o.failed for o in outcomes) else EXIT_OK
