"""Soak: concurrent clients push many small plates through one server; throughput, errors and the server's RSS.

    python benchmarks/soak.py                      # 8 clients, 1000 frames, --memory-budget 256M
    python benchmarks/soak.py --frames 200 --clients 8

The server runs as ``facebridge serve`` in a subprocess (its own token, cache and scratch), its RSS read from
/proc/PID/status every ``--sample-s``. Every frame is a distinct 256x256 linear EXR of skimage's astronaut
(shifted and exposed differently), so the caches keep filling: the RSS must level off within the baseline
(after the first frames: models, libraries) plus ``--memory-budget``.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _plates import write_half_rgba  # noqa: E402


def _rss_mib(pid: int) -> float:
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(match.group(1)) / 1024 if match else 0.0


def _plates(folder: Path, count: int, side: int) -> list[Path]:
    from skimage import data

    rgb8 = cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    lin = rgb8.astype(np.float32) / 255.0
    lin = np.where(lin <= 0.04045, lin / 12.92, ((lin + 0.055) / 1.055) ** 2.4).astype(np.float32)
    alpha = np.ones((side, side, 1), np.float32)
    paths = []
    for i in range(count):
        frame = np.roll(lin, (i % 40) - 20, axis=1) * np.float32(1.0 + 0.002 * (i // 40))
        paths.append(write_half_rgba(folder / f"plate.{1001 + i}.exr", np.concatenate([frame, alpha], axis=2)))
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--memory-budget", default="256M")
    parser.add_argument("--sample-s", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=25, help="frames per stream (a client opens several)")
    args = parser.parse_args()

    from facebridge.cli import _bytes
    from facebridge.client.errors import ClientError
    from facebridge.client.grpc_client import FaceBridgeClient, FrameJob

    budget = _bytes(args.memory_budget)
    work = Path(tempfile.mkdtemp(prefix="facebridge-soak-"))
    env = {**os.environ, "FACEBRIDGE_TOKEN": secrets.token_urlsafe(32), "XDG_CONFIG_HOME": str(work / "config"),
           "XDG_CACHE_HOME": str(work / "xdg-cache"), "XDG_DATA_HOME": str(work / "xdg-data")}
    os.environ.update({k: env[k] for k in ("FACEBRIDGE_TOKEN", "XDG_CONFIG_HOME")})
    (work / "plates").mkdir()
    started = time.monotonic()
    plates = _plates(work / "plates", args.frames, args.side)
    source = work / "source.png"
    from skimage import data
    cv2.imwrite(str(source), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    print(f"{args.frames} plates of {args.side}x{args.side} written in {time.monotonic() - started:.1f} s", flush=True)

    server = subprocess.Popen(
        [sys.executable, "-m", "facebridge.cli", "serve", "--port", "0", "--device", "cpu",
         "--cache-dir", str(work / "cache"), "--models-dir", str(work / "no-models"),
         "--memory-budget", str(budget), "--max-streams", str(args.clients),
         "--max-sessions-per-peer", str(max(16, args.clients * 2))],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    (work / "no-models").mkdir()
    try:
        line = server.stdout.readline() if server.stdout else ""
        match = re.search(r"serving on [^:]+:(\d+)", line)
        if not match:
            print(f"server did not start: {line!r}", file=sys.stderr)
            return 2
        address = f"127.0.0.1:{match.group(1)}"
        samples: list[tuple[float, float, int]] = []  # (t, rss MiB, frames done)
        done = [0]
        errors: list[str] = []
        failed = [0]
        lock = threading.Lock()
        stop = threading.Event()
        t0 = time.monotonic()

        def sample() -> None:
            while not stop.wait(args.sample_s):
                samples.append((time.monotonic() - t0, _rss_mib(server.pid), done[0]))

        def client(index: int) -> None:
            mine = [FrameJob(1001 + i, str(p), str(work / "out" / f"c{index}" / f"out.{1001 + i}.exr"))
                    for i, p in enumerate(plates) if i % args.clients == index]
            (work / "out" / f"c{index}").mkdir(parents=True, exist_ok=True)
            with FaceBridgeClient(address) as c:
                c.wait_ready(60)
                session = c.open_session([source], shot=f"soak-{index}")
                try:
                    for start in range(0, len(mine), args.batch):
                        batch = mine[start:start + args.batch]
                        for attempt in range(20):
                            try:
                                for outcome in c.process(session.session_id, batch):
                                    with lock:
                                        done[0] += 1
                                        failed[0] += outcome.failed
                                    Path(outcome.output_path).unlink(missing_ok=True) if outcome.output_path else None
                                break
                            except ClientError as exc:
                                if not exc.retryable or attempt == 19:
                                    raise
                                time.sleep(0.5)
                finally:
                    c.close_session(session.session_id)

        def run(index: int) -> None:
            try:
                client(index)
            except Exception as exc:  # noqa: BLE001 - counted and printed
                with lock:
                    errors.append(f"client {index}: {exc}")

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        threads = [threading.Thread(target=run, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        last_print = 0.0
        while any(t.is_alive() for t in threads):
            time.sleep(0.5)
            if samples and samples[-1][0] - last_print >= 10:
                at, rss, n = samples[-1]
                last_print = at
                print(f"  t={at:6.1f} s  frames {n:5d}  {n / at:5.2f} fps  server RSS {rss:7.1f} MiB", flush=True)
        elapsed = time.monotonic() - t0
        stop.set()
        rss_now = _rss_mib(server.pid)
        samples.append((elapsed, rss_now, done[0]))
        # baseline: the RSS once every client had its first frames (models and libraries loaded, caches empty)
        warm = [s for s in samples if s[2] >= min(args.frames, 2 * args.clients)]
        baseline = warm[0][1] if warm else samples[0][1]
        peak = max(s[1] for s in samples)
        print(f"clients {args.clients}, frames {done[0]}/{args.frames} in {elapsed:.1f} s: "
              f"{done[0] / elapsed:.2f} frames/s; failed frames {failed[0]}; client errors {len(errors)}")
        for message in errors[:5]:
            print(f"  {message}")
        print("server RSS over time (MiB): " + ", ".join(
            f"{at:.0f}s={rss:.0f}" for at, rss, _ in samples[:: max(1, len(samples) // 12)]))
        within = peak - baseline <= budget / 1024**2
        print(f"memory budget {budget / 1024**2:.0f} MiB; RSS baseline {baseline:.0f} MiB, peak {peak:.0f} MiB, "
              f"end {rss_now:.0f} MiB; peak - baseline = {peak - baseline:.0f} MiB: "
              f"{'within' if within else 'OVER'} budget")
        return 0 if within and not errors and done[0] == args.frames else 1
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        import shutil
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
