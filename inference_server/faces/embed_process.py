"""dlib's identity network in a process of its own, so that an embedding does not stall the server; the same
process builds dlib's HOG face detector for the server while the server starts. (Embeddings run here only when
the network file cannot be read by :mod:`.dlib_resnet`, which runs it with numpy in the server: the child loads
the network at its first request.)

dlib's Python binding keeps Python's GIL for the whole of ``compute_face_descriptor`` (~0.12 s on the
2-core development machine): every other thread of the server (the second frame in flight, the stream
readers) stops meanwhile. Here the face chip — ``(150, 150, 3)`` uint8 RGB, cut in the server by
``dlib.get_face_chip`` with the padding ``compute_face_descriptor`` uses itself (0.25) — is sent to a child
process over a pipe, and its ``(128,)`` float64 descriptor comes back: the same bits as the in-process call
(test). While the server's thread waits on the pipe the GIL is free.

``dlib.get_frontal_face_detector()`` takes 0.4-0.6 s, all of it holding the GIL (it decodes and decompresses
the detector from a string compiled into dlib), while rebuilding the same detector from dlib's own binary
serialization takes ~2 ms. So the child builds it first thing, in parallel with the server's own start on the
other core, and sends that serialization back; the server rebuilds the detector from it (the same detections, bit
for bit: test) and runs it in its own process — HOG detection releases the GIL (measured: a spinning Python thread
keeps going, its longest stall 40 ms over a 0.9 s detection), so it needs no process of its own.

The child is ``python -m inference_server.faces.embed_process MODEL_FILE``. Protocol, on its stdout then stdin:

1. once, at start, child -> server: the HOG detector's serialization, an 8-byte little-endian unsigned length
   ``N`` then ``N`` bytes (``dlib.fhog_object_detector.__getstate__()[0]``, ~155 kB);
2. then, per request, server -> child: a face chip, ``(150, 150, 3)`` uint8 RGB, C order (67,500 bytes);
   child -> server: its descriptor, ``(128,)`` float64, native byte order (1,024 bytes);

until stdin closes. Both sides write with :func:`_write_all` (``os.write`` until every byte is out), not through
a buffered file: a write larger than the pipe's buffer (the chip, the serialization) that a SIGSTOP/SIGCONT
interrupts (job control, a farm's suspend and resume) lost bytes through Python 3.11's buffered stdout and the
reader then waited forever (reproduced; test). A child that does not answer within ``timeout`` seconds (stopped
for good, or starved) is killed, so the server never waits on it for ever. One request at a time (a lock); if the
child cannot be started or dies, :meth:`EmbeddingProcess.descriptor` and :meth:`EmbeddingProcess.detector_state`
return None from then on (one warning) and the caller works in-process (the same results, only slower for the
other threads).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import dlib

CHIP_SIZE = 150       # dlib's face chip for its ResNet (get_face_chip's default size)
CHIP_PADDING = 0.25   # compute_face_descriptor's default padding
CHIP_BYTES = CHIP_SIZE * CHIP_SIZE * 3
DESCRIPTOR_BYTES = 128 * 8
LENGTH_BYTES = 8      # the detector serialization's length prefix: little-endian unsigned

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


def _write_all(fd: int, data: bytes) -> None:
    """Every byte of ``data`` to the file descriptor ``fd`` (a pipe): ``os.write`` again after a partial write,
    as an interrupted write to a full pipe returns one."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class EmbeddingProcess:
    """A child process running dlib's identity network on face chips (see the module docstring).

    Thread-safe: requests are answered one at a time. Started on construction (the child builds the HOG
    detector and loads its model while the server starts); :meth:`close` stops it.
    """

    def __init__(self, model_file: Path, timeout: float = 60.0) -> None:
        self.model_file = Path(model_file)
        self.timeout = timeout  # seconds the child may take to answer (its first message included)
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._failed = False
        self._detector_state: bytes | None = None  # the child's first message, once read
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
        _LOG.warning("the HOG detector is built and identity embeddings run in the server process from now on: "
                     "the embedding process %s", why)
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

    def _watched(self, process: subprocess.Popen[bytes]) -> tuple[threading.Timer, threading.Event]:
        """A started watchdog that kills ``process`` if the exchange it watches is not over (the timer cancelled)
        within ``timeout`` seconds, and the event it sets when it does: a stopped or starved child then ends
        the exchange (the read sees the pipe close, the write a broken pipe) instead of blocking the server."""
        fired = threading.Event()

        def kill() -> None:
            fired.set()
            process.kill()

        timer = threading.Timer(self.timeout, kill)
        timer.daemon = True
        timer.start()
        return timer, fired

    def _lost(self, fired: threading.Event, why: str) -> None:
        self._give_up(f"did not answer within {self.timeout:g} s (stopped, or starved of CPU?)" if fired.is_set()
                      else why)

    def _read_detector_state(self, process: subprocess.Popen[bytes]) -> bytes | None:
        """The child's first message (the lock held): the detector's serialization, read once; None (and the
        process given up) when it cannot be read."""
        if self._detector_state is None:
            assert process.stdout is not None
            timer, fired = self._watched(process)
            try:
                prefix = _read_exactly(process.stdout, LENGTH_BYTES)
                size = int.from_bytes(prefix, "little") if len(prefix) == LENGTH_BYTES else -1
                state = _read_exactly(process.stdout, size) if size > 0 else b""
            except (OSError, ValueError) as error:
                self._lost(fired, f"failed ({error})")
                return None
            finally:
                timer.cancel()
            if size <= 0 or len(state) != size:
                self._lost(fired, f"ended (exit status {process.poll()})")
                return None
            self._detector_state = state
        return self._detector_state

    def detector_state(self) -> bytes | None:
        """dlib's serialization of ``dlib.get_frontal_face_detector()`` as the child built it (waits for it), or
        None when the process is not available (the caller builds the detector in-process).

        ``fhog_object_detector.__setstate__((state,))`` on a new instance rebuilds the detector (see
        :func:`detector_from_state`)."""
        with self._lock:
            process = self._process
            if self._failed or process is None or process.stdout is None:
                return None
            return self._read_detector_state(process)

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
            if self._read_detector_state(process) is None:  # (the child's first message comes first)
                return None
            timer, fired = self._watched(process)
            try:
                _write_all(process.stdin.fileno(), data.tobytes())
                answer = _read_exactly(process.stdout, DESCRIPTOR_BYTES)
            except (OSError, ValueError) as error:
                self._lost(fired, f"failed ({error})")
                return None
            finally:
                timer.cancel()
            if len(answer) != DESCRIPTOR_BYTES:
                self._lost(fired, f"ended (exit status {process.poll()})")
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


def detector_from_state(state: bytes) -> dlib.fhog_object_detector:
    """The HOG detector rebuilt from its serialization (:meth:`EmbeddingProcess.detector_state`), ~2 ms: what
    unpickling a dlib detector does, without unpickling."""
    import dlib

    detector = dlib.fhog_object_detector.__new__(dlib.fhog_object_detector)
    detector.__setstate__((state,))
    return detector


def main(argv: list[str]) -> int:
    """The child: the HOG detector's serialization first, then descriptors for the chips on stdin, until it
    closes (see the module docstring)."""
    import dlib

    source, sink = sys.stdin.buffer, sys.stdout.fileno()
    (state,) = dlib.get_frontal_face_detector().__getstate__()
    _write_all(sink, len(state).to_bytes(LENGTH_BYTES, "little") + state)
    encoder = None  # loaded at the first request (~0.5 s): a server whose embeddings run in numpy never sends one
    while True:
        data = _read_exactly(source, CHIP_BYTES)
        if len(data) < CHIP_BYTES:
            return 0
        if encoder is None:
            encoder = dlib.face_recognition_model_v1(argv[0])
        chip = np.frombuffer(data, np.uint8).reshape(CHIP_SIZE, CHIP_SIZE, 3).copy()
        _write_all(sink, np.asarray(encoder.compute_face_descriptor(chip), np.float64).tobytes())


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
