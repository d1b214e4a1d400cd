"""Frame transport round trip through the server, as a ratio to an in-process copy of the same bytes.

For 1080p and 4K half RGBA plates (no face in them), each frame goes client -> server -> client through
a real server on a loopback port, by stream (4 MiB chunks) and by path. The server reports how long it
spent decoding, detecting and encoding; the rest of the wall time is transport. Baseline: copying the
same encoded bytes in-process (``bytearray(data)``), measured in the same run.

Usage: python benchmarks/transport.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _plates import astronaut_png, noise_plate  # noqa: E402

from facebridge.client.grpc_client import FaceBridgeClient, FrameJob  # noqa: E402
from inference_server.server.app import ServerConfig, start_server  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fb-bench-"))
    running = start_server(ServerConfig(port=0, device="cpu", cache_dir=work / "cache"))
    try:
        with FaceBridgeClient(f"127.0.0.1:{running.port}") as client:
            session = client.open_session([astronaut_png(work / "src.png")])
            print(f"{'frame':>10} {'transport':>9} {'MB':>7} {'round trip ms':>14} {'server ms':>10} "
                  f"{'transport ms':>13} {'copy ms':>8} {'ratio':>7}")
            for label, (w, h) in (("1080p", (1920, 1080)), ("4K", (3840, 2160))):
                plate = noise_plate(work / f"{label}.exr", w, h)
                data = plate.read_bytes()
                copies = []
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    bytearray(data)
                    copies.append((time.perf_counter() - t) * 1000)
                copy_ms = statistics.median(copies)
                for use_paths in (False, True):
                    walls, servers = [], []
                    for k in range(args.repeats):
                        job = FrameJob(k, str(plate), str(work / f"out_{label}_{k}.exr"))
                        t = time.perf_counter()
                        (outcome,) = list(client.process(session.session_id, [job], use_paths=use_paths))
                        walls.append((time.perf_counter() - t) * 1000)
                        servers.append(sum(outcome.timings_ms.values()))
                    wall, server = statistics.median(walls), statistics.median(servers)
                    transport = max(0.0, wall - server)
                    print(f"{label:>10} {'path' if use_paths else 'stream':>9} {len(data) / 1e6:7.1f} {wall:14.1f} "
                          f"{server:10.1f} {transport:13.1f} {copy_ms:8.2f} {transport / copy_ms:6.0f}x")
            client.close_session(session.session_id)
    finally:
        running.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
