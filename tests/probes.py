"""Helpers of the resource and stream-fault probes: small servers with tight limits on loopback, raw stubs that
send hand-made (hostile) messages, the process's memory, and small plates built from a package photo."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import grpc
import numpy as np
from facebridge_wire.v1 import facebridge_pb2 as pb
from facebridge_wire.v1 import facebridge_pb2_grpc as pb_grpc

from support import srgb8_to_linear, write_exr


def token_metadata() -> tuple[tuple[str, str], ...]:
    """The bearer token of the test session (``$FACEBRIDGE_TOKEN``), for raw calls; none when unset."""
    token = os.environ.get("FACEBRIDGE_TOKEN", "")
    return (("authorization", f"Bearer {token}"),) if token else ()


def start_tight_server(dlib_models: Any, tmp: Path, **limits: Any) -> Any:
    """A real server on 127.0.0.1:<free port> with its own cache, no model files, and ``limits``
    (``ServerConfig`` fields), taking the test session's token; the path transport may use ``tmp``."""
    from inference_server.server.app import ServerConfig, start_server

    config = ServerConfig(host="127.0.0.1", port=0, device="cpu", audit_log=tmp / "audit.jsonl",
                          cache_dir=tmp / "cache", models_dir=tmp / "no-models",
                          token=os.environ.get("FACEBRIDGE_TOKEN") or None, allow_roots=(tmp,), **limits)
    (tmp / "no-models").mkdir(exist_ok=True)
    return start_server(config, models=dlib_models)


class RawStub:
    """A FaceBridge stub on its own channel that attaches the token to every call."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 * 1024 * 1024),
                                                               ("grpc.max_receive_message_length", 64 * 1024 * 1024)])
        self.stub = pb_grpc.FaceBridgeStub(self.channel)
        self.metadata = token_metadata()

    def process(self, messages: Iterator[pb.ProcessFramesRequest], timeout: float = 30.0) -> Any:
        return self.stub.ProcessFrames(messages, timeout=timeout, metadata=self.metadata)

    def open_session(self, timeout: float = 30.0, **fields: Any) -> str:
        return str(self.stub.OpenSession(pb.OpenSessionRequest(**fields), timeout=timeout,
                                         metadata=self.metadata).session_id)

    def close(self) -> None:
        self.channel.close()


def start(session_id: str) -> pb.ProcessFramesRequest:
    return pb.ProcessFramesRequest(start=pb.StreamStart(session_id=session_id))


def header(frame_id: int, total: int, name: str = "plate.exr", number: int = 1) -> pb.ProcessFramesRequest:
    return pb.ProcessFramesRequest(header=pb.FrameHeader(frame_id=frame_id, frame_number=number, name=name,
                                                         transport=pb.TRANSPORT_STREAM, total_bytes=total))


def chunk(frame_id: int, offset: int, data: bytes) -> pb.ProcessFramesRequest:
    return pb.ProcessFramesRequest(chunk=pb.FrameChunk(frame_id=frame_id, offset=offset, data=data))


def held(messages: list[pb.ProcessFramesRequest], release: threading.Event) -> Iterator[pb.ProcessFramesRequest]:
    """Send ``messages`` and then nothing until ``release`` is set (an idle, open stream)."""
    yield from messages
    release.wait(60.0)


def memory_kib() -> dict[str, int]:
    """VmRSS and VmHWM of this process (the in-process server's memory), KiB."""
    values = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M))
    return {key: int(value) for key, value in values.items()}


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def astronaut_plate(path: Path, side: int = 256, shift: int = 0) -> Path:
    """A small linear half RGBA EXR of skimage's astronaut (one face), ``shift`` pixels to the right."""
    from skimage import data

    rgb8 = cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    if shift:
        rgb8 = np.roll(rgb8, shift, axis=1)
    lin = srgb8_to_linear(rgb8)
    return write_exr(path, np.concatenate([lin, np.ones((side, side, 1), np.float32)], axis=2), ("R", "G", "B", "A"))


def astronaut_source(path: Path) -> Path:
    from skimage import data

    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def png_bomb(path: Path, side: int = 16384) -> Path:
    """A valid, small (~800 KB) RGB PNG of ``side`` x ``side`` black pixels: it decodes to side² x 3 x 4 bytes."""
    import struct
    import zlib

    def png_chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    packer = zlib.compressobj(9)
    rows = (b"\x00" * (1 + side * 3)) * 256
    idat = b"".join(packer.compress(rows) for _ in range(side // 256)) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
                     + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))
    return path
