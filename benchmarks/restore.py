"""End-to-end restore throughput at 1080p with the embedded classical enhancer (no model files).

A 1920x1080 linear shot (matplotlib's Grace Hopper under a slow push-in) goes through an in-process
server with ``--mode restore``: analysed, then rendered with a cold model cache. Printed: frames/s of the
render, the per-frame server stages, and the ratio against a baseline measured in the same run: reading
and writing the same EXR frames with OpenImageIO (what any tool pays for the I/O alone).

Usage: python benchmarks/restore.py [--frames 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _plates import moving_shot  # noqa: E402

from facebridge.client.grpc_client import FaceBridgeClient, FrameJob  # noqa: E402
from facebridge.settings import RenderParams  # noqa: E402
from inference_server.plates.image_file import read_plate, write_plate_atomic  # noqa: E402
from inference_server.server.app import ServerConfig, start_server  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fb-restore-"))
    (work / "models").mkdir()
    paths = moving_shot(work, args.frames)
    t = time.perf_counter()
    for k, p in enumerate(paths):
        plate = read_plate(p)
        write_plate_atomic(work / f"copy.{k:04d}.exr", plate, plate.pixels, {})
    io_ms = (time.perf_counter() - t) / len(paths) * 1000.0
    running = start_server(ServerConfig(port=0, device="cpu", cache_dir=work / "cache", models_dir=work / "models"))
    try:
        with FaceBridgeClient(f"127.0.0.1:{running.port}") as client:
            jobs = [FrameJob(1001 + k, str(p), str(work / f"out.{1001 + k:04d}.exr")) for k, p in enumerate(paths)]
            session = client.open_session([], shot="restore", params=RenderParams(mode="restore"), quality_checks=False)
            assert all(a.status == "ok" for a in client.analyse(session.session_id, jobs, use_paths=True))
            t = time.perf_counter()
            outcomes = list(client.process(session.session_id, jobs, use_paths=True))
            render_s = time.perf_counter() - t
            assert all(o.status == "ok" for o in outcomes), [o.message for o in outcomes]
    finally:
        running.stop()
    per_frame = render_s / len(outcomes) * 1000.0
    print(f"restore (embedded enhancer, default stabilisation, QC off): {len(outcomes) / render_s:.2f} frames/s at "
          f"1080p ({per_frame:.0f} ms/frame, {args.frames} frames, cold model cache)")
    print(f"baseline, EXR read + write of the same frames: {io_ms:.0f} ms/frame -> restore costs "
          f"{per_frame / io_ms:.1f}x the I/O alone")
    print("  server stages (median ms):", {k: round(statistics.median(o.timings_ms.get(k, 0.0) for o in outcomes), 1)
                                           for k in outcomes[len(outcomes) // 2].timings_ms})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
