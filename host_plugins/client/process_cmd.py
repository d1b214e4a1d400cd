"""``facebridge process``: run an image sequence through a facebridge server."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from facebridge.v1 import facebridge_pb2 as pb

from .errors import ClientError
from .grpc_client import FaceBridgeClient, FrameJob, FrameOutcome
from .local_server import LocalServer
from .progress import MODES, Progress
from .report import build_report, write_report
from .sequence import FramePattern, PatternError, gaps, parse_frame_range, parse_pattern

EXIT_OK, EXIT_FRAMES_FAILED, EXIT_ERROR = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", action="append", required=True, metavar="IMG",
                        help="source identity image; repeat for several (the best pose match is used per face)")
    parser.add_argument("--input", required=True, metavar="PATTERN",
                        help="input frames: plate.####.exr, plate.%%04d.exr or a single file")
    parser.add_argument("--output", required=True, metavar="PATTERN",
                        help="output frames, same tokens; the format follows the extension (EXR by default)")
    parser.add_argument("--frames", metavar="A-B", help="frame range, e.g. 1001-1024 or 1-10,20 (default: all on disk)")
    parser.add_argument("--blend", type=float, default=1.0, metavar="F", help="face blend strength 0..1 (default 1)")
    parser.add_argument("--colorspace", default="", metavar="NAME",
                        help="plate colourspace (OCIO name); default: the plate's metadata, else linear Rec.709")
    parser.add_argument("--server", metavar="HOST:PORT", help="use this server (default: start a private local one)")
    parser.add_argument("--device", default="auto", help="device of the private server: auto|cpu|cuda[:N]|mps")
    parser.add_argument("--shot", default="", help="shot id recorded in the audit log")
    parser.add_argument("--transport", choices=("auto", "stream", "path"), default="auto",
                        help="how frames travel: stream them, or pass paths (same machine); default auto")
    parser.add_argument("--report", metavar="FILE.json", help="write a JSON report of every frame")
    parser.add_argument("--progress", choices=MODES, default="auto",
                        help="bar on a terminal, json lines on stdout for host plugins, or none")


def plan_jobs(inputs: FramePattern, outputs: FramePattern, frames_arg: str | None) -> tuple[list[FrameJob], list[int]]:
    """Jobs for the frames whose input exists, and the frame numbers that are missing.

    Raises:
        PatternError: mismatched patterns, or nothing to process.
    """
    if inputs.is_sequence != outputs.is_sequence:
        raise PatternError("--input and --output must both be sequences (#### or %04d) or both single files")
    if not inputs.is_sequence:
        frame = parse_frame_range(frames_arg)[0] if frames_arg else 1
        if not os.path.exists(inputs.text):
            return [], [frame]
        return [FrameJob(frame, inputs.text, outputs.text)], []
    if frames_arg:
        frames = parse_frame_range(frames_arg)
        missing = [f for f in frames if not os.path.exists(inputs.path(f))]
    else:
        frames = inputs.existing_frames()
        if not frames:
            raise PatternError(f"no files match '{inputs.text}'")
        missing = gaps(frames)
    absent = set(missing)
    present = [f for f in frames if f not in absent]
    return [FrameJob(f, inputs.path(f), outputs.path(f)) for f in present], missing


def _missing_outcome(inputs: FramePattern, frame: int) -> FrameOutcome:
    path = inputs.path(frame)
    return FrameOutcome(frame, "failed", "missing", f"{path} (frame {frame}): input file is missing", path, "")


def _use_paths(choice: str, info: pb.GetServerInfoResponse, address: str) -> bool:
    offered = pb.TRANSPORT_PATH in info.transports
    if choice == "path" and not offered:
        raise ClientError(f"server {address} does not offer path transport; use --transport stream")
    if choice == "auto":
        return offered and info.hostname == socket.gethostname()
    return choice == "path"


def run(args: argparse.Namespace) -> int:
    try:
        inputs, outputs = parse_pattern(args.input), parse_pattern(args.output)
        jobs, missing = plan_jobs(inputs, outputs, args.frames)
    except PatternError as exc:
        print(f"facebridge: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    output_format = Path(outputs.suffix or outputs.text).suffix.lstrip(".").lower() or "exr"
    progress = Progress(args.progress, len(jobs) + len(missing))
    outcomes: list[FrameOutcome] = []
    started = time.monotonic()
    run_info: dict[str, object] = {"input": args.input, "output": args.output, "sources": args.source,
                                   "params": {"mode": "swap", "blend": args.blend, "colorspace": args.colorspace,
                                              "output_format": output_format}}
    try:
        with ExitStack() as stack:
            address = args.server or stack.enter_context(LocalServer(device=args.device)).address
            client = stack.enter_context(FaceBridgeClient(address))
            client.wait_ready(timeout=60.0)
            info = client.server_info()
            use_paths = _use_paths(args.transport, info, address)
            session = client.open_session(args.source, shot=args.shot, blend=args.blend,
                                          colorspace=args.colorspace, output_format=output_format)
            run_info.update(server=address, server_version=info.server_version, device=info.device,
                            transport="path" if use_paths else "stream", params_hash=session.params_hash,
                            model_ids=session.model_ids, source_faces=session.sources)
            progress.start(address)
            for frame in missing:
                outcomes.append(_missing_outcome(inputs, frame))
                progress.frame(outcomes[-1])
            for job in jobs:
                Path(job.output_path).parent.mkdir(parents=True, exist_ok=True)
            for outcome in client.process(session.session_id, jobs, use_paths):
                outcomes.append(outcome)
                progress.frame(outcome)
            client.close_session(session.session_id)
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
