"""dlib's identity network in a process of its own, so that an embedding does not stall the server.

dlib's Python binding keeps Python's GIL for the whole of ``compute_face_descriptor`` (~0.12 s on the
2-core development machine): every other thread of the server (the second frame in flight, the stream
readers) stops meanwhile. Here the face chip — ``(150, 150, 3)`` uint8 RGB, cut in the server by
``dlib.get_face_chip`` with the padding ``compute_face_descriptor`` uses itself (0.25) — is sent to a child
process over a pipe, and its ``(128,)`` float64 descriptor comes back: the same bits as the in-process call
(test). While the server's thread waits on the pipe the GIL is free.

The child is ``python -m inference_server.faces.embed_process MODEL_FILE``: it reads chips from stdin and
writes descriptors to stdout until stdin closes. One request at a time (a lock); if the child cannot be
started or dies, :meth:`EmbeddingProcess.descriptor` returns None from then on and the caller computes
in-process (the same result, only slower for the other threads).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import numpy as np

CHIP_SIZE = 150       # dlib's face chip for its ResNet (get_face_chip's default size)
CHIP_PADDING = 0.25   # compute_face_descriptor's default padding
CHIP_BYTES = CHIP_SIZE * CHIP_SIZE * 3
DESCRIPTOR_BYTES = 128 * 8

_LOG = logging.getLogger(__name__)


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    """``size`` bytes from ``stream``; fewer only when it ends."""
    data = bytearray()
    while len(data) < size:
        piece = stream.read(size - len(data))
        if not piece:
            break
        data += piece
    return bytes(data)


class EmbeddingProcess:
    """A child process running dlib's identity network on face chips (see the module docstring).

    Thread-safe: requests are answered one at a time. Started on construction (the child loads its model
    while the server starts); :meth:`close` stops it.
    """

    def __init__(self, model_file: Path) -> None:
        self.model_file = Path(model_file)
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._failed = False
        with self._lock:
            self._start()

    def _start(self) -> None:
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "inference_server.faces.embed_process", str(self.model_file)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except OSError as error:
            self._give_up(f"cannot start it ({error})")

    def _give_up(self, why: str) -> None:
        _LOG.warning("identity embeddings run in the server process from now on: the embedding process %s", why)
        self._failed = True
        self._stop()

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def descriptor(self, chip: np.ndarray) -> np.ndarray | None:
        """The ``(128,)`` float64 descriptor of a ``(150, 150, 3)`` uint8 RGB face chip, or None when the
        process is not available (the caller computes it in-process)."""
        data = np.ascontiguousarray(chip, np.uint8)
        if data.shape != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"a face chip is ({CHIP_SIZE}, {CHIP_SIZE}, 3) uint8, got {chip.shape}")
        with self._lock:
            process = self._process
            if self._failed or process is None or process.stdin is None or process.stdout is None:
                return None
            try:
                process.stdin.write(data.tobytes())
                process.stdin.flush()
                answer = _read_exactly(process.stdout, DESCRIPTOR_BYTES)
            except (OSError, ValueError) as error:
                self._give_up(f"failed ({error})")
                return None
            if len(answer) != DESCRIPTOR_BYTES:
                self._give_up(f"ended (exit status {process.poll()})")
                return None
            return np.frombuffer(answer, np.float64).copy()

    @property
    def running(self) -> bool:
        """Whether the child is there to answer."""
        with self._lock:
            return self._process is not None and not self._failed and self._process.poll() is None

    def close(self) -> None:
        """Stop the child (later requests return None)."""
        with self._lock:
            self._failed = True
            self._stop()


def main(argv: list[str]) -> int:
    """The child: descriptors for the chips on stdin, until it closes."""
    import dlib

    encoder = dlib.face_recognition_model_v1(argv[0])
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    while True:
        data = _read_exactly(source, CHIP_BYTES)
        if len(data) < CHIP_BYTES:
            return 0
        chip = np.frombuffer(data, np.uint8).reshape(CHIP_SIZE, CHIP_SIZE, 3).copy()
        sink.write(np.asarray(encoder.compute_face_descriptor(chip), np.float64).tobytes())
        sink.flush()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
