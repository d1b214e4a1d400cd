"""Temporal engine figures on a 1080p one-face shot: analyse throughput, first render vs re-composite.

A 1920x1080 linear shot (matplotlib's Grace Hopper under a slow push-in) is analysed, rendered once
(cold model cache, default stabilisation), then rendered again with only the blend changed (every face a
cache hit), and once more without stabilisation. Printed: analyse frames/s; wall-clock ms per frame of
both renders and their ratio; the server's per-frame stage sums with and without the EXR decode/encode
both renders share; and the server-side re-composite stages (cache read + composite) for a cached 1080p
frame against the 40 ms target.

Usage: python benchmarks/temporal.py [--frames 8]
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

from facebridge.client.grpc_client import FaceBridgeClient, FrameJob, FrameOutcome  # noqa: E402
from inference_server.server.app import ServerConfig, start_server  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fb-bench-"))
    paths = moving_shot(work, args.frames)
    source = astronaut_png(work / "src.png")
    running = start_server(ServerConfig(port=0, device="cpu", cache_dir=work / "cache", allow_roots=(work,)))
    try:
        with FaceBridgeClient(f"127.0.0.1:{running.port}") as client:
            jobs = [FrameJob(1001 + k, str(p), str(work / f"out.{1001 + k:04d}.exr")) for k, p in enumerate(paths)]
            session = client.open_session([source], shot="bench")
            t = time.perf_counter()
            analysis = list(client.analyse(session.session_id, jobs, use_paths=True))
            analyse_s = time.perf_counter() - t
            assert all(a.status == "ok" for a in analysis)
            t = time.perf_counter()
            first = list(client.process(session.session_id, jobs, use_paths=True))
            first_wall = (time.perf_counter() - t) / len(jobs) * 1000.0
            again_session = client.open_session([source], shot="bench", blend=0.7, quality_checks=False)
            t = time.perf_counter()
            again = list(client.process(again_session.session_id, jobs, use_paths=True))
            again_wall = (time.perf_counter() - t) / len(jobs) * 1000.0
            assert all(f["cache"] == "hit" for o in again for f in o.faces)
            plain_session = client.open_session([source], shot="bench", blend=0.6, quality_checks=False, stabilise=0.0)
            plain = list(client.process(plain_session.session_id, jobs, use_paths=True))
    finally:
        running.stop()

    def server_ms(outcomes: list[FrameOutcome], stages: tuple[str, ...] | None = None) -> float:
        return statistics.median(sum(v for k, v in o.timings_ms.items() if stages is None or k in stages)
                                 for o in outcomes)

    def no_io(outcomes: list[FrameOutcome]) -> float:
        return statistics.median(sum(v for k, v in o.timings_ms.items() if k not in ("decode", "encode"))
                                 for o in outcomes)

    first_ms, again_ms = server_ms(first), server_ms(again)
    recomposite = server_ms(again, ("cache", "composite", "stabilise"))
    recomposite_plain = server_ms(plain, ("cache", "composite"))
    print(f"analyse: {len(analysis) / analyse_s:.2f} frames/s at 1080p ({args.frames} frames)")
    print(f"first render: {first_wall:.0f} ms/frame wall clock (QC on); blend-only re-render: {again_wall:.0f} ms/frame "
          f"(QC off) -> {first_wall / again_wall:.1f}x faster (frames overlap in the server: one frame's EXR "
          f"decode/encode runs beside another's compositing)")
    print(f"  per frame, server stages summed: first {first_ms:.0f} ms, re-render {again_ms:.0f} ms "
          f"({first_ms / again_ms:.1f}x); without EXR decode and encode (the same work in both): "
          f"{no_io(first):.0f} ms vs {no_io(again):.1f} ms ({no_io(first) / no_io(again):.0f}x)")
    print(f"re-composite of a cached 1080p frame (cache read + composite): {recomposite_plain:.1f} ms without "
          f"stabilisation (target <= 40 ms), {recomposite:.1f} ms with the default stabilisation (two neighbours "
          f"composited and flow-warped); whole frame with decode/encode: {again_ms:.0f} ms")
    print("  stages of the re-render:", {k: round(statistics.median(o.timings_ms.get(k, 0.0) for o in again), 1)
                                         for k in again[0].timings_ms})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
