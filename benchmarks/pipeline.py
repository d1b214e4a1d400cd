"""Pipeline throughput on a 1080p plate with one face: frames/s and milliseconds per stage.

Runs the engine in-process (no gRPC) on a 1080p shot of matplotlib's Grace Hopper photo under a slow
camera move (each frame new to the model cache), swapping in scikit-image's astronaut, with per-frame
detection (no shot analysis), and then the same frames through a real server. Baseline
measured in the same run: reading and writing the same EXR with OpenImageIO (the I/O floor). Also the cost
of one 1080p keyframe's detection: HOG alone (what runs where HOG finds every face) next to the CNN fallback
(what runs in addition where HOG finds fewer faces than expected), on the same frame.

Usage: python benchmarks/pipeline.py [--frames 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _plates import astronaut_png, moving_shot  # noqa: E402

from facebridge.client.grpc_client import FaceBridgeClient, FrameJob  # noqa: E402
from inference_server.faces.dlib_models import CNN_PROXY_SIDE  # noqa: E402
from inference_server.plates.colour import ColourSpace  # noqa: E402
from inference_server.plates.image_file import read_plate, write_plate_atomic  # noqa: E402
from inference_server.server.app import ServerConfig, start_server  # noqa: E402
from inference_server.server.engine import FaceSwapEngine, FrameRequest  # noqa: E402
from inference_server.server.file_roots import FileRoots  # noqa: E402
from inference_server.server.sessions import SessionParams  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fb-bench-"))
    plates = moving_shot(work, args.frames)
    plate = plates[0]
    source = astronaut_png(work / "src.png")

    io_ms = []
    for k in range(args.frames):
        t = time.perf_counter()
        p = read_plate(plate)
        write_plate_atomic(work / f"io_{k}.exr", p, p.pixels, {})
        io_ms.append((time.perf_counter() - t) * 1000)
    io = statistics.median(io_ms)

    engine = FaceSwapEngine(work, work / "cache-engine", roots=FileRoots((work,)))
    session = engine.open_session("bench", "bench", [(source.name, source.read_bytes())], SessionParams())
    stages: dict[str, list[float]] = {}
    walls = []
    for k in range(args.frames):
        t = time.perf_counter()
        result = engine.process_frame(session, FrameRequest(k, plates[k].name, input_path=str(plates[k]),
                                                            output_path=str(work / f"eng_{k}.exr")))
        walls.append((time.perf_counter() - t) * 1000)
        assert result.status == "ok", result.message
        for stage, ms in result.timings_ms.items():
            stages.setdefault(stage, []).append(ms)
    wall = statistics.median(walls)
    print(f"1080p one face, {args.frames} frames, in-process engine: {1000 / wall:.2f} frames/s "
          f"({wall:.0f} ms/frame; EXR read+write baseline {io:.0f} ms, ratio {wall / io:.1f}x)")
    for stage, values in stages.items():
        print(f"  {stage:>10}: {statistics.median(values):8.1f} ms")

    first = read_plate(plate)
    proxy = ColourSpace().to_proxy8(first.pixels[..., first.channel_index(("R", "G", "B"))])
    engine.models.detect_cnn(proxy)  # load the CNN weights outside the timing
    hog_ms, cnn_ms = [], []
    for _ in range(3):
        t = time.perf_counter()
        engine.models.detect(proxy)
        hog_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        engine.models.detect_cnn(proxy)
        cnn_ms.append((time.perf_counter() - t) * 1000)
    print(f"detection per 1080p keyframe: HOG {statistics.median(hog_ms):.0f} ms, CNN fallback "
          f"({CNN_PROXY_SIDE} px proxy + full-resolution landmarks) {statistics.median(cnn_ms):.0f} ms")

    running = start_server(ServerConfig(port=0, device="cpu", cache_dir=work / "cache-server", allow_roots=(work,)),
                           models=engine.models)
    try:
        with FaceBridgeClient(f"127.0.0.1:{running.port}") as client:
            jobs = [FrameJob(k, str(p), str(work / f"srv_{k}.exr")) for k, p in enumerate(plates)]
            for use_paths in (False, True):
                info = client.open_session([source], shot=f"per-frame-{use_paths}")
                t = time.perf_counter()
                outcomes = list(client.process(info.session_id, jobs, use_paths=use_paths))
                elapsed = time.perf_counter() - t
                assert all(o.status == "ok" for o in outcomes)
                hits = sum(f["cache"] == "hit" for o in outcomes for f in o.faces)
                print(f"through the server ({'path' if use_paths else 'stream'}, {hits}/{len(jobs)} model-cache hits): "
                      f"{len(jobs) / elapsed:.2f} frames/s ({elapsed / len(jobs) * 1000:.0f} ms/frame, "
                      f"{elapsed / len(jobs) * 1000 / wall:.2f}x in-process)")
    finally:
        running.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
