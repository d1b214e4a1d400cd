"""The frames of one AnalyseShot stream through the shot analysis, its three steps overlapped on the cores.

A frame's analysis is three steps: ``prepare`` (read and decode the plate, its content hash and display
proxy: independent of every other frame), ``analyse`` (the shot analyser: sequential, frames in order) and
``store`` (the plate crops around the faces found into the payload cache). Here ``prepare`` runs up to
``ahead`` frames ahead of the analysis on ``readers`` threads (decoding, hashing and the proxy's numpy work
release the GIL), and a frame's ``store`` runs in a writer thread
while the next frame is analysed on the calling thread. The analyser sees the same frames in the same order
with the same inputs as in the sequential run (``ahead=0``), so the shot database and the stored payloads are
the same; results come out in the order of the requests, each only once its frame's ``store`` is done, so
every crop of a frame is stored before its result is given (and before the stream ends), and a step that
fails a frame fails it as in the sequential run.

Memory: at most ``ahead`` decoded plates wait for the analysis, one is analysed, at most two are held by
stores (one written, one waiting) and one by the analyser (the previous frame, when it replayed: its proxy is
made from it only if the next frame needs it), whatever the length of the stream.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar, cast


def analysis_readers(cpu_count: int | None) -> int:
    """Threads preparing frames: one a core, at most 3 (a replay is all ``prepare``; a first analysis has the
    analyser and the stores beside them)."""
    return max(1, min(3, cpu_count or 1))


ANALYSIS_READERS = analysis_readers(os.cpu_count())
ANALYSIS_AHEAD = ANALYSIS_READERS + 1  # frames decoded ahead of the analysis (a 1080p RGBA float32 plate is 33 MB,
                                       # a 4K 142 MB)

Q = TypeVar("Q")  # a frame request
P = TypeVar("P")  # a prepared frame
A = TypeVar("A")  # an analysed frame
R = TypeVar("R")  # a frame's result (also what a step that fails the frame gives)


def _settled(item: object) -> bool:
    return not isinstance(item, Future) or item.done()


def analyse_in_order(items: Iterable[Q | R], result_type: type[R], prepare: Callable[[Q], P | R],
                     analyse: Callable[[P], A | R], store: Callable[[A], R],
                     ahead: int = ANALYSIS_AHEAD, readers: int = ANALYSIS_READERS) -> Generator[R, None, None]:
    """The results of ``items`` in their order. A ``result_type`` item is a result already (given in its
    place); any other is a frame request, run through ``prepare`` (any thread, independent of the other
    frames), ``analyse`` (the calling thread, frames in order) and ``store`` (any thread; gives the frame's
    result). A step that fails the frame returns its result instead of passing the frame on.

    ``ahead`` 0: every step on the calling thread, one frame after the other (the sequential analysis);
    otherwise overlapped as the module says, ``prepare`` on ``min(readers, ahead)`` threads. An exception a
    step raises (rather than returning a result) ends the iteration with it, as in the sequential run; a frame
    already analysed has its store finished first.
    """
    if ahead <= 0:
        for item in items:
            if isinstance(item, result_type):
                yield item
                continue
            prepared = prepare(cast(Q, item))
            if isinstance(prepared, result_type):
                yield prepared
                continue
            analysed = analyse(cast(P, prepared))
            yield analysed if isinstance(analysed, result_type) else store(cast(A, analysed))
        return
    reader = ThreadPoolExecutor(max(1, min(readers, ahead)), thread_name_prefix="facebridge-analysis-read")
    writer = ThreadPoolExecutor(1, thread_name_prefix="facebridge-analysis-store")
    waiting: deque[Future[P | R] | R] = deque()  # prepared (or being prepared), not yet analysed
    stored: deque[Future[R] | R] = deque()       # analysed, results not yet given

    def analyse_oldest() -> None:
        head = waiting.popleft()
        prepared = head.result() if isinstance(head, Future) else head
        if isinstance(prepared, result_type):
            stored.append(prepared)
            return
        analysed = analyse(cast(P, prepared))
        stored.append(analysed if isinstance(analysed, result_type) else writer.submit(store, cast(A, analysed)))

    def finished(drain: bool) -> Iterator[R]:
        # at most one store in flight besides the newest: wait for the older ones
        while stored and (drain or len(stored) > 1 or _settled(stored[0])):
            head = stored.popleft()
            yield head.result() if isinstance(head, Future) else head

    incoming = iter(items)
    failure: Exception | None = None  # the requests' own (a malformed stream): raised once the frames before
    try:                              # it are analysed and given, as in the sequential run
        while True:
            try:
                item = next(incoming)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 (raised again below, after the frames before it)
                failure = exc
                break
            waiting.append(item if isinstance(item, result_type) else reader.submit(prepare, cast(Q, item)))
            while len(waiting) > ahead or (waiting and _settled(waiting[0])):
                analyse_oldest()
                yield from finished(drain=False)
        while waiting:
            analyse_oldest()
            yield from finished(drain=False)
        yield from finished(drain=True)
        if failure is not None:
            raise failure
    finally:
        reader.shutdown(wait=True, cancel_futures=True)  # frames read ahead and never analysed: dropped
        writer.shutdown(wait=True)                        # frames analysed: their crops are stored all the same
