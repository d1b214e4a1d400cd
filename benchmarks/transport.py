"""Frame transport round trip through the server, against raw gRPC streaming the same bytes in the same run.

For 1080p and 4K half RGBA plates without a face, and a 1080p plate with one (Grace Hopper), each frame goes
client -> server -> client through a real server on a loopback port, in two sessions: one with the quality
checks on (the default) and one with them off (nothing computed beyond decode, detection and encode). Three
transports: ``stream`` (chunks of ``MAX_CHUNK_BYTES``; the result's unchanged EXR chunks come back as references
to the input the client sent, which it copies from its file: ``FrameCopy``), ``stream full`` (the same with every
byte of the result sent back: ``input_copies=False``) and ``path``. The server reports how long it spent on the
frame (decode, detection, encode); the rest of the wall time is transport. ``back MB``: the result's bytes that
came back over the wire (a faceless plate's result is its plate's chunks under a new header: nearly nothing comes
back with copies; a face's rows do).

Baseline: a generic gRPC bidi stream (bytes in, the same bytes out, no protobuf) on a second loopback
server with the same channel and server options, echoing the same file's bytes in 4 MiB chunks; the
client keeps the pieces as they come back (no file read, no reassembly, no file written). ``ratio`` is
our stream transport's throughput over the raw stream's (1.0: as fast as gRPC itself; the goal is >= 0.8).
The raw echo sends each piece back as it arrives, so its two directions overlap; a frame is processed
only when whole, so ours cannot overlap them: ``raw s&f`` is the same echo store-and-forward (the server
answers once it has every piece) and ``ratio s&f`` ours against it. Throughput counts the frame's bytes
once per round trip (its size over the transport time), whatever came back. The in-process copy of the bytes
is printed too. Medians of ``--repeats`` frames (after one not measured, each plate's first render); each frame's raw baselines are measured just before it
(medians of ``RAW_PER_FRAME`` round trips) and the ratios are the medians of the per-frame ratios, so that the
machine's drift during the run (one frame takes seconds of server time) moves both sides of a ratio alike.
The plates are older than ``FRESH_S`` when sent, as files on disk are (a file changed just before it is sent is
answered in full).

Usage: python benchmarks/transport.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import functools
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _plates import astronaut_png, noise_plate, one_face_1080p  # noqa: E402

from facebridge.client import grpc_client  # noqa: E402
from facebridge.client.grpc_client import MAX_MESSAGE_BYTES, FaceBridgeClient, FrameJob  # noqa: E402
from facebridge.client.input_buffer import FRESH_S  # noqa: E402
from inference_server.server.app import ServerConfig, start_server  # noqa: E402
from inference_server.server.service import MAX_MESSAGE_BYTES as SERVER_MAX_MESSAGE_BYTES  # noqa: E402

RAW_CHUNK_BYTES = 4 * 1024 * 1024
RAW_PER_FRAME = 3  # raw round trips measured before each frame (their median is that frame's baseline)
PLATES: dict[str, Callable[[Path], Path]] = {
    "1080p": lambda path: noise_plate(path, 1920, 1080),
    "4K": lambda path: noise_plate(path, 3840, 2160),
    "1080p face": one_face_1080p,
}
TRANSPORTS: dict[str, dict[str, bool]] = {
    "stream": {}, "stream full": {"input_copies": False}, "path": {"use_paths": True},
}


class ChunkBytes:
    """The result bytes the client received in chunks, counted as they arrive (wraps ``_ResultFile.add``)."""

    def __init__(self) -> None:
        self.count = 0
        add = grpc_client._ResultFile.add

        def counted(result_file: grpc_client._ResultFile, offset: int, data: bytes | memoryview) -> bool:
            self.count += len(data)
            return add(result_file, offset, data)

        setattr(grpc_client._ResultFile, "add", counted)  # noqa: B010 - a spy on the class, for this benchmark


def _echo(requests: Iterator[bytes], _context: grpc.ServicerContext) -> Iterator[bytes]:
    yield from requests


def _gather_then_echo(requests: Iterator[bytes], _context: grpc.ServicerContext) -> Iterator[bytes]:
    yield from list(requests)


class RawEcho:
    """A loopback gRPC server echoing a bidi stream of bytes, and a channel to it (options as facebridge's)."""

    def __init__(self) -> None:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[
            ("grpc.max_receive_message_length", SERVER_MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", SERVER_MAX_MESSAGE_BYTES),
        ])
        handler = grpc.method_handlers_generic_handler("bench.Raw", {
            "Echo": grpc.stream_stream_rpc_method_handler(_echo),
            "GatherThenEcho": grpc.stream_stream_rpc_method_handler(_gather_then_echo),
        })
        self.server.add_generic_rpc_handlers((handler,))
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ])
        self.calls: dict[bool, grpc.StreamStreamMultiCallable] = {
            False: self.channel.stream_stream("/bench.Raw/Echo"),
            True: self.channel.stream_stream("/bench.Raw/GatherThenEcho"),
        }

    def round_trip(self, data: bytes, gather: bool = False) -> list[bytes]:
        """``data`` there and back: the pieces as they came back (not joined: gRPC's cost alone). ``gather``:
        the server sends nothing back before it has every piece (as a frame is processed only when whole)."""
        chunks = (data[o:o + RAW_CHUNK_BYTES] for o in range(0, len(data), RAW_CHUNK_BYTES))
        return list(self.calls[gather](chunks))

    def close(self) -> None:
        self.channel.close()
        self.server.stop(None)


def _median_ms(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _gbps(size: int, ms: float) -> float:
    return size / (ms * 1e6) if ms > 0 else float("inf")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fb-bench-"))
    running = start_server(ServerConfig(port=0, device="cpu", cache_dir=work / "cache", allow_roots=(work,)))
    raw = RawEcho()
    try:
        with FaceBridgeClient(f"127.0.0.1:{running.port}") as client:
            source = astronaut_png(work / "src.png")
            sessions = {"qc on": client.open_session([source]).session_id,
                        "qc off": client.open_session([source], quality_checks=False).session_id}
            print(f"{'frame':>10} {'MB':>5} {'transport':>11} {'session':>7} {'round trip':>10} {'server':>7} "
                  f"{'transport':>9} {'back MB':>7} {'GB/s':>5} {'raw ms':>7} {'raw GB/s':>8} {'ratio':>6} "
                  f"{'raw s&f ms':>10} {'ratio s&f':>9} {'copy ms':>7}")
            received = ChunkBytes()
            for label, make_plate in PLATES.items():
                plate = make_plate(work / f"{label.replace(' ', '_')}.exr")
                data = plate.read_bytes()
                size = len(data)
                if b"".join(raw.round_trip(data)) != data or b"".join(raw.round_trip(data, True)) != data:
                    raise AssertionError("raw echo changed the bytes")
                copy_ms = _median_ms(functools.partial(bytearray, data), args.repeats)
                time.sleep(max(0.0, plate.stat().st_ctime + FRESH_S + 0.05 - time.time()))  # a file on disk, settled
                for session_id in sessions.values():  # not measured: the plate's first render (model, cache writes)
                    list(client.process(session_id, [FrameJob(0, str(plate), str(work / f"warm_{plate.stem}.exr"))]))
                for transport_label, transport in TRANSPORTS.items():
                    for session_label, session_id in sessions.items():
                        walls, servers, raws, gathered, back = [], [], [], [], []
                        for k in range(args.repeats):
                            # the raw streams measured beside each frame (medians of RAW_PER_FRAME), so that the
                            # machine's drift over the run moves both sides of each ratio alike
                            raws.append(_median_ms(functools.partial(raw.round_trip, data), RAW_PER_FRAME))
                            gathered.append(_median_ms(functools.partial(raw.round_trip, data, True), RAW_PER_FRAME))
                            # each plate's own outputs: replacing another plate's larger file costs its unlink
                            job = FrameJob(k, str(plate), str(work / f"out_{plate.stem}_{k}.exr"))
                            received.count = 0
                            t = time.perf_counter()
                            (outcome,) = list(client.process(session_id, [job], **transport))
                            walls.append((time.perf_counter() - t) * 1000)
                            if outcome.failed:
                                raise RuntimeError(f"{label}: {outcome.message}")
                            servers.append(sum(outcome.timings_ms.values()))
                            back.append(received.count)
                        wall, server = statistics.median(walls), statistics.median(servers)
                        transports = [max(1e-3, w - s) for w, s in zip(walls, servers)]
                        transport_ms = statistics.median(transports)
                        raw_ms, gathered_ms = statistics.median(raws), statistics.median(gathered)
                        ratio = statistics.median(r / t for r, t in zip(raws, transports))
                        ratio_gathered = statistics.median(g / t for g, t in zip(gathered, transports))
                        back_mb = f"{statistics.median(back) / 1e6:7.2f}" if transport_label != "path" else f"{'-':>7}"
                        print(f"{label:>10} {size / 1e6:5.1f} {transport_label:>11} {session_label:>7} {wall:10.1f} "
                              f"{server:7.1f} {transport_ms:9.1f} {back_mb} {_gbps(size, transport_ms):5.2f} "
                              f"{raw_ms:7.1f} {_gbps(size, raw_ms):8.2f} {ratio:6.2f} {gathered_ms:10.1f} "
                              f"{ratio_gathered:9.2f} {copy_ms:7.2f}")
            for session_id in sessions.values():
                client.close_session(session_id)
    finally:
        raw.close()
        running.stop()
        shutil.rmtree(work, ignore_errors=True)  # the plates and every output (hundreds of MB)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
