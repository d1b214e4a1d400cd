"""Writing a streamed result's chunks to its file on a helper thread, so that the next chunk is received while
the last one is written (a 4K EXR's page-cache writes take about as long as receiving it).
"""

from __future__ import annotations

import queue
import threading

from facebridge.files import AtomicFile

QUEUED_PIECES = 4
"""Pieces received and not yet written, at most (each a chunk: ``MAX_CHUNK_BYTES``)."""


class QueuedWriter:
    """Appends pieces to an :class:`AtomicFile` in order on a helper thread; :meth:`finish` commits it
    (renamed into place) or :meth:`abandon` discards it, either after every queued piece is written.

    A write error stops the writing (later pieces are dropped) and is raised by :meth:`finish`; the file is
    then discarded, nothing is left at its path. Pieces must not change once queued (``bytes`` or views of
    them).

    Args:
        file: the temporary file, the writer's from now on.
        queued: pieces queued at most (``write`` waits beyond).
    """

    def __init__(self, file: AtomicFile, queued: int = QUEUED_PIECES) -> None:
        self._file = file
        self._queue: queue.Queue[bytes | memoryview | None] = queue.Queue(maxsize=queued)
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="facebridge-result-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (piece := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._file.write(piece)
                except OSError as exc:
                    self._error = exc

    def write(self, piece: bytes | memoryview) -> None:
        """Queue ``piece`` to be appended."""
        self._queue.put(piece)

    def _drain(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def finish(self) -> None:
        """Write what is queued, then commit the file (OSError, file discarded, when a write or the commit
        failed)."""
        self._drain()
        if self._error is not None:
            self._file.discard()
            raise self._error
        self._file.commit()

    def abandon(self) -> None:
        """Stop, and discard the file (nothing is left at its path)."""
        self._drain()
        self._file.discard()
