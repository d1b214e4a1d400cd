"""``facebridge process`` and ``facebridge analyse``: run an image sequence through a facebridge server."""

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

from facebridge_wire.v1 import facebridge_pb2 as pb

from .errors import ClientError
from .grpc_client import AnalyseOutcome, FaceBridgeClient, FrameJob, FrameOutcome
from .local_server import LocalServer
from .params import ParamsError, RenderParams, load_preset, parse_regions, with_overrides
from .progress import MODES, Progress
from .report import build_report, write_report
from .sequence import FramePattern, PatternError, gaps, parse_frame_range, parse_pattern

EXIT_OK, EXIT_FRAMES_FAILED, EXIT_ERROR = 0, 1, 2


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, metavar="PATTERN",
                        help="input frames: plate.####.exr, plate.%%04d.exr or a single file")
    parser.add_argument("--shot", default="",
                        help="shot id shared by analyse and process (default: derived from the input pattern)")
    parser.add_argument("--preset", metavar="FILE.json", help="parameters from a preset (the command line overrides it)")
    parser.add_argument("--keyframe-interval", type=int, metavar="N", help="detect faces every N frames while tracking")
    parser.add_argument("--server", metavar="HOST:PORT", help="use this server (default: start a private local one)")
    parser.add_argument("--device", default="auto", help="device of the private server: auto|cpu|cuda[:N]|mps")
    parser.add_argument("--cache-dir", type=Path, help="shot database and model cache of the private server")
    parser.add_argument("--models-dir", type=Path, help="model files of the private server (default: $FACEBRIDGE_MODELS_DIR, "
                        "the config file, else ~/.local/share/facebridge/models)")
    parser.add_argument("--transport", choices=("auto", "stream", "path"), default="auto",
                        help="how frames travel: stream them, or pass paths (same machine); default auto")
    parser.add_argument("--report", metavar="FILE.json", help="write a JSON report of every frame")
    parser.add_argument("--progress", choices=MODES, default="auto",
                        help="bar on a terminal, json lines on stdout for host plugins, or none")


def add_analyse_arguments(parser: argparse.ArgumentParser) -> None:
    _add_common(parser)
    parser.add_argument("--frames", metavar="A-B", help="frames to analyse (default: every frame on disk)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``facebridge process``."""
    _add_common(parser)
    parser.add_argument("--source", action="append", default=[], metavar="IMG",
                        help="source identity image; repeat for several (the best pose match is used per face); "
                             "needed by the swap modes")
    parser.add_argument("--mode", choices=("swap", "restore", "swap+restore"),
                        help="swap faces, restore them, or both (default swap)")
    parser.add_argument("--swapper", metavar="NAME|FILE", help="swap model: registry name or file (default: the best "
                        "verified one in the models folder, else the embedded classical swap)")
    parser.add_argument("--restorer", metavar="NAME|FILE", help="restoration model, e.g. gpen_bfr_512 or "
                        "GPEN-BFR-512.pth (default: the best verified one, else the embedded classical enhancer)")
    parser.add_argument("--parser", metavar="NAME|FILE|none", help="face parser refining the region masks "
                        "(default: the best verified one, else landmark masks)")
    parser.add_argument("--allow-unverified", action="store_true",
                        help="use model files whose sha256 differs from the registry's (the report says so)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"), help="precision of neural models (default fp32)")
    parser.add_argument("--output", required=True, metavar="PATTERN",
                        help="output frames, same tokens; the format follows the extension (EXR by default)")
    parser.add_argument("--frames", metavar="A-B", help="frames to render, e.g. 1001-1024 or 1-10,20 (default: all on disk)")
    parser.add_argument("--analyse-range", metavar="A-B",
                        help="frames the shot analysis covers (default: every frame of the input on disk)")
    parser.add_argument("--no-analyse", action="store_true",
                        help="skip the analysis pass: frames the shot's analysis already covers render from it, "
                             "others are detected on their own (no tracking, no smoothing)")
    parser.add_argument("--blend", type=float, metavar="F", help="face blend strength 0..1 (default 1)")
    parser.add_argument("--regions", metavar="R=W,...", help="region weights 0..1, e.g. eyes=1,mouth=0.3 "
                        "(eyes, brows, nose, mouth, cheeks, forehead, jaw, skin)")
    parser.add_argument("--grain", type=float, metavar="F", help="keep the plate's grain and texture 0..1 (default 0)")
    parser.add_argument("--feather", type=float, metavar="F", help="extra mask softening, fraction of face size")
    parser.add_argument("--erode", type=float, metavar="F", help="shrink (>0) or grow (<0) the mask, fraction of face size")
    parser.add_argument("--colour-match", choices=("none", "mean-std", "histogram"), help="colour match in linear light")
    parser.add_argument("--smooth", type=float, metavar="F", help="landmark smoothing over the track, frames (0 = off; default 2)")
    parser.add_argument("--stabilise", type=float, metavar="F", help="temporal stabilisation: blend each face with "
                        "its neighbours carried along the plate's optical flow, weight F per neighbour (default 1; 0 = off)")
    parser.add_argument("--flow-threshold", type=float, metavar="F",
                        help="grey difference 0..1 up to which the plate's flow is trusted (default 0.04)")
    parser.add_argument("--face", metavar="all|track:N|ref:IMG", help="which faces: all (default), one track, or "
                        "the track nearest the identity in IMG")
    parser.add_argument("--colorspace", metavar="NAME",
                        help="plate colourspace (OCIO name); default: the plate's metadata, else linear Rec.709")


def render_params(args: argparse.Namespace) -> RenderParams:
    """Preset (if any) overridden by the command line."""
    base = load_preset(args.preset) if getattr(args, "preset", None) else RenderParams()
    overrides = {
        "blend": getattr(args, "blend", None),
        "regions": parse_regions(args.regions) if getattr(args, "regions", None) else None,
        "grain": getattr(args, "grain", None),
        "feather": getattr(args, "feather", None),
        "erode": getattr(args, "erode", None),
        "colour_match": getattr(args, "colour_match", None),
        "smoothing": getattr(args, "smooth", None),
        "keyframe_interval": getattr(args, "keyframe_interval", None),
        "face": getattr(args, "face", None),
        "colorspace": getattr(args, "colorspace", None),
        "stabilise": getattr(args, "stabilise", None),
        "flow_threshold": getattr(args, "flow_threshold", None),
        "mode": getattr(args, "mode", None),
        "swapper": getattr(args, "swapper", None),
        "restorer": getattr(args, "restorer", None),
        "parser": getattr(args, "parser", None),
        "allow_unverified": True if getattr(args, "allow_unverified", False) else None,
        "precision": getattr(args, "precision", None),
    }
    return with_overrides(base, overrides)


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
    offered = pb.TRANSPORT_PATH in info.transports
    if choice == "path" and not offered:
        raise ClientError(f"server {address} does not offer path transport; use --transport stream")
    if choice == "auto":
        return offered and info.hostname == socket.gethostname()
    return choice == "path"


@contextmanager
def _connected(args: argparse.Namespace) -> Iterator[tuple[FaceBridgeClient, pb.GetServerInfoResponse, bool]]:
    with ExitStack() as stack:
        address = args.server or stack.enter_context(LocalServer(device=args.device, cache_dir=args.cache_dir,
                                                                     models_dir=getattr(args, "models_dir", None))).address
        client = stack.enter_context(FaceBridgeClient(address))
        client.wait_ready(timeout=60.0)
        info = client.server_info()
        yield client, info, _use_paths(args.transport, info, address)


def run_analysis(client: FaceBridgeClient, session_id: str, jobs: list[FrameJob], use_paths: bool,
                 progress: Progress) -> dict[str, object]:
    """Analyse the shot over ``jobs``; returns a summary for the report."""
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


def run_analyse(args: argparse.Namespace) -> int:
    """``facebridge analyse``."""
    try:
        params = render_params(args)
        inputs = parse_pattern(args.input)
        jobs, missing = plan_jobs(inputs, None, args.frames)
    except (PatternError, ParamsError) as exc:
        print(f"facebridge: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    shot = args.shot or default_shot(args.input)
    progress = Progress(args.progress, len(jobs))
    started = time.monotonic()
    try:
        with _connected(args) as (client, _info, use_paths):
            session = client.open_session([], shot=shot, params=params)
            progress.start(client.address)
            summary = run_analysis(client, session.session_id, jobs, use_paths, progress)
            client.close_session(session.session_id)
    except ClientError as exc:
        print(f"facebridge: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    progress.end()
    summary.update(shot=shot, missing=missing, elapsed_s=round(time.monotonic() - started, 3))
    if args.report:
        write_report(args.report, {"analysis": summary})
    for message in summary["failed"]:  # type: ignore[union-attr]
        print(f"facebridge: error: {message}", file=sys.stderr)
    return EXIT_FRAMES_FAILED if summary["failed"] or missing else EXIT_OK


def run(args: argparse.Namespace) -> int:
    """``facebridge process``."""
    try:
        params = render_params(args)
        inputs, outputs = parse_pattern(args.input), parse_pattern(args.output)
        jobs, missing = plan_jobs(inputs, outputs, args.frames)
        shot_jobs = [] if args.no_analyse else plan_jobs(inputs, None, args.analyse_range)[0]
    except (PatternError, ParamsError) as exc:
        print(f"facebridge: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    output_format = Path(outputs.suffix or outputs.text).suffix.lstrip(".").lower() or "exr"
    shot = args.shot or default_shot(args.input)
    progress = Progress(args.progress, len(jobs) + len(missing), analyse_total=len(shot_jobs))
    outcomes: list[FrameOutcome] = []
    started = time.monotonic()
    run_info: dict[str, object] = {"input": args.input, "output": args.output, "sources": args.source, "shot": shot,
                                   "params": {**params.as_dict(), "output_format": output_format}}
    try:
        with _connected(args) as (client, info, use_paths):
            session = client.open_session(args.source, shot=shot, params=params, output_format=output_format)
            run_info.update(server=client.address, server_version=info.server_version, device=info.device,
                            transport="path" if use_paths else "stream", params_hash=session.params_hash,
                            model_ids=session.model_ids, source_faces=session.sources,
                            model_notes=list(session.notes))
            for note in session.notes:
                print(f"facebridge: note: {note}", file=sys.stderr)
            progress.start(client.address)
            if shot_jobs:
                run_info["analysis"] = run_analysis(client, session.session_id, shot_jobs, use_paths, progress)
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
